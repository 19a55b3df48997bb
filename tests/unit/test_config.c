/* Defaults are BEP 5's numbers; error and event names come from one list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "config.h"

static void test_defaults(void **state) {
  (void)state;
  mdht_config c;
  mdht_config_default(&c);
  assert_int_equal(c.k, 8);
  assert_int_equal(c.node_fresh_ms, 15 * 60 * 1000);
  assert_int_equal(c.token_rotate_ms, 5 * 60 * 1000);
  assert_int_equal(mdht_config_check(&c), 0);
  assert_memory_equal(c.client_version, "MD", 2);
}

static void test_check_rejects(void **state) {
  (void)state;
  mdht_config c;
  mdht_config_default(&c);
  c.k = 0;
  assert_int_equal(mdht_config_check(&c), MDHT_ERR_INVAL);
  mdht_config_default(&c);
  c.k = 17;
  assert_int_equal(mdht_config_check(&c), MDHT_ERR_INVAL);
  mdht_config_default(&c);
  c.max_txns = 70000;
  assert_int_equal(mdht_config_check(&c), MDHT_ERR_INVAL);
  mdht_config_default(&c);
  c.query_soft_timeout_ms = c.query_timeout_ms + 1;
  assert_int_equal(mdht_config_check(&c), MDHT_ERR_INVAL);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(mdht_strerror(MDHT_ERR_NOMEM), "out of memory");
  assert_string_equal(mdht_strerror(MDHT_ERR_TOKEN), "bad token");
  assert_string_equal(mdht_strerror(0), "success");
  assert_string_equal(mdht_strerror(-9999), "unknown error");
  assert_string_equal(mdht_event_name(MDHT_EV_NODE_ADDED), "node_added");
  assert_string_equal(mdht_event_name(MDHT_EV_LOG), "log");
  assert_string_equal(mdht_event_name(MDHT_EV_COUNT_), "unknown");
  assert_string_equal(mdht_method_name(MDHT_M_ANNOUNCE_PEER), "announce_peer");
  assert_string_equal(mdht_drop_reason_name(MDHT_DROP_TOO_BIG),
                      "oversized datagram");
  /* every error code has its own text */
#define CHECK_TEXT(name, code, text)                                           \
  assert_string_equal(mdht_strerror(MDHT_ERR_##name), text);
  MDHT_ERRORS(CHECK_TEXT)
#undef CHECK_TEXT
}

/* One error domain: an MDHT_ERR_* and a -errno never share a number, so
 * one int says which it is, and mdht_strerror names both. */
static void test_one_error_domain(void **state) {
  (void)state;
#define CHECK_APART(name, code, text)                                          \
  assert_true(MDHT_ERR_##name < -MDHT_ERRNO_MAX);
  MDHT_ERRORS(CHECK_APART)
#undef CHECK_APART
  /* Values that collided before: -11 was both MDHT_ERR_RANGE and -EAGAIN,
   * -13 both MDHT_ERR_IO and -EACCES. */
  assert_string_equal(mdht_strerror(-EAGAIN), strerror(EAGAIN));
  assert_string_equal(mdht_strerror(-EACCES), strerror(EACCES));
  assert_string_equal(mdht_strerror(-ENOSPC), strerror(ENOSPC));
  assert_string_equal(mdht_strerror(MDHT_ERR_RANGE), "value out of range");
  assert_string_equal(mdht_strerror(MDHT_ERR_IO), "input/output error");
  assert_string_not_equal(mdht_strerror(MDHT_ERR_IO), strerror(EIO));
  /* Between the two ranges, and beyond either: unknown. */
  assert_string_equal(mdht_strerror(-MDHT_ERRNO_MAX - 1), "unknown error");
  assert_string_equal(mdht_strerror(MDHT_ERR_TOKEN - 1), "unknown error");
  assert_string_equal(mdht_strerror(1), "unknown error");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_check_rejects),
      cmocka_unit_test(test_one_error_domain),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
