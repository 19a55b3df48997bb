/* Defaults are BEP 5's numbers; event, method and drop names come from
 * their lists (error names: test_error.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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
  assert_string_equal(mdht_event_name(MDHT_EV_NODE_ADDED), "node_added");
  assert_string_equal(mdht_event_name(MDHT_EV_LOG), "log");
  assert_string_equal(mdht_event_name(MDHT_EV_COUNT_), "unknown");
  assert_string_equal(mdht_method_name(MDHT_M_ANNOUNCE_PEER), "announce_peer");
  assert_string_equal(mdht_drop_reason_name(MDHT_DROP_TOO_BIG),
                      "oversized datagram");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_check_rejects),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
