/* HOST:PORT (hostport.c), as the command line and the driver read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hostport.h"

static void test_split(void **state) {
  char host[16];
  const char *port = NULL;
  (void)state;

  assert_int_equal(
      mdht_hostport_split("router.example:6881", host, sizeof host, &port), 0);
  assert_string_equal(host, "router.example");
  assert_string_equal(port, "6881");
  assert_int_equal(mdht_hostport_split("[::1]:1", host, sizeof host, &port), 0);
  assert_string_equal(host, "::1");
  assert_string_equal(port, "1");
  assert_int_equal(
      mdht_hostport_split("127.0.0.1:65535", host, sizeof host, &port), 0);
}

static void test_refused(void **state) {
  static const char *const bad[] = {
      "",          "host",
      ":6881",     "host:",
      "host:0",    "host:65536",
      "host:+1",   "host:1x",
      "::1:6881",  "[]:1",
      "[::1]",     "[::1]6881",
      "[::1:6881", "averyveryverylonghost:1",
  };
  char host[16];
  const char *port;
  (void)state;

  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (mdht_hostport_split(bad[i], host, sizeof host, &port) == 0)
      fail_msg("accepted '%s'", bad[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
