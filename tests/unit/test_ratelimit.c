/* Per-IP token buckets on virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ratelimit.h"
#include "testutil.h"

static int allowed(mdht_ratelimit *rl, const mdht_addr *a, int n,
                   mdht_time now) {
  int ok = 0;
  for (int i = 0; i < n; i++)
    ok += mdht_rl_allow(rl, a, now);
  return ok;
}

static void test_burst_then_rate(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 64, 100, 50, 1), 0);
  mdht_addr a = test_addr4(10, 0, 0, 1, 1);
  assert_int_equal(allowed(&rl, &a, 80, 0), 50);
  /* 100 ms at 100/s refills 10 tokens. */
  assert_int_equal(allowed(&rl, &a, 80, 100), 10);
  /* Never more than the burst, however long it was idle. */
  assert_int_equal(allowed(&rl, &a, 80, 1000000), 50);
  mdht_rl_free(&rl);
}

static void test_per_ip_not_per_port(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 64, 10, 5, 1), 0);
  mdht_addr a = test_addr4(10, 0, 0, 1, 1);
  mdht_addr a2 = test_addr4(10, 0, 0, 1, 2);
  mdht_addr b = test_addr4(10, 0, 0, 2, 1);
  assert_int_equal(allowed(&rl, &a, 5, 0), 5);
  assert_int_equal(allowed(&rl, &a2, 5, 0), 0); /* same IP, other port */
  assert_int_equal(allowed(&rl, &b, 5, 0), 5);
  mdht_rl_free(&rl);
}

static void test_unlimited(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 64, 0, 0, 1), 0);
  mdht_addr a = test_addr4(10, 0, 0, 1, 1);
  assert_int_equal(allowed(&rl, &a, 10000, 0), 10000);
  mdht_rl_free(&rl);
}

/* Memory stays bounded with many sources: the table never grows. */
static void test_many_sources_bounded(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 100, 10, 5, 1), 0);
  assert_int_equal(rl.cap, 128);
  for (int i = 0; i < 100000; i++) {
    mdht_addr a =
        test_addr4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 1);
    assert_true(mdht_rl_allow(&rl, &a, 0));
  }
  assert_int_equal(rl.cap, 128);
  mdht_rl_free(&rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_rate),
      cmocka_unit_test(test_per_ip_not_per_port),
      cmocka_unit_test(test_unlimited),
      cmocka_unit_test(test_many_sources_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
