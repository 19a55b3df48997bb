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

static mdht_addr v6(uint16_t w0, uint16_t w1, uint16_t w2, uint16_t w3,
                    uint64_t iid) {
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  uint16_t w[4] = {w0, w1, w2, w3};
  for (int i = 0; i < 4; i++) {
    a.ip[2 * i] = (uint8_t)(w[i] >> 8);
    a.ip[2 * i + 1] = (uint8_t)w[i];
  }
  for (int i = 0; i < 8; i++)
    a.ip[8 + i] = (uint8_t)(iid >> (56 - 8 * i));
  a.port = 6881;
  return a;
}

/* Every address of one /64 shares one bucket: 5000 addresses get the
 * burst, not 5000 bursts. */
static void test_v6_one_bucket_per_64(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 4096, 250, 500, 7), 0);
  int ok = 0;
  for (uint64_t i = 0; i < 5000; i++) {
    mdht_addr a = v6(0x2001, 0x0db8, 0x0001, 0x0000, 0x1000 + i * 7919);
    ok += mdht_rl_allow(&rl, &a, 0);
  }
  assert_int_equal(ok, 500);
  /* One second later: the rate, whatever address it comes from. */
  ok = 0;
  for (uint64_t i = 0; i < 5000; i++) {
    mdht_addr a = v6(0x2001, 0x0db8, 0x0001, 0x0000, 0x99 + i);
    ok += mdht_rl_allow(&rl, &a, 1000);
  }
  assert_int_equal(ok, 250);
  /* Another /64 of another /48 is untouched. */
  mdht_addr b = v6(0x2001, 0x0db8, 0x0002, 0x0000, 1);
  assert_int_equal(allowed(&rl, &b, 600, 1000), 500);
  mdht_rl_free(&rl);
}

/* The /48 tier: /64s of one site each have their own bucket, but all of
 * them together get MDHT_RL_SITE_FACTOR times one bucket. */
static void test_v6_site_tier(void **state) {
  (void)state;
  enum { RATE = 100, BURST = 50, F = MDHT_RL_SITE_FACTOR };
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 4096, RATE, BURST, 7), 0);
  int ok = 0;
  for (uint16_t sub = 0; sub < 1000; sub++) {
    mdht_addr a = v6(0x2001, 0x0db8, 0x00aa, sub, 1);
    ok += allowed(&rl, &a, BURST + 10, 0);
  }
  assert_int_equal(ok, F * BURST);
  /* The first F /64s took it all; a fresh /64 of the site gets nothing. */
  mdht_addr fresh = v6(0x2001, 0x0db8, 0x00aa, 0xffff, 1);
  assert_int_equal(allowed(&rl, &fresh, 10, 0), 0);
  /* Over 1 s of spraying /64s, the site refills F * RATE tokens. */
  ok = 0;
  for (mdht_time t = 1; t <= 1000; t++) {
    mdht_addr a = v6(0x2001, 0x0db8, 0x00aa, (uint16_t)(2000 + t), 1);
    ok += allowed(&rl, &a, 5, t);
  }
  assert_int_equal(ok, F * RATE);
  /* A refused /64 does not drain its site: the next /48 is independent,
   * and a /64 on its own stays at its own burst. */
  mdht_addr other = v6(0x2001, 0x0db8, 0x00ab, 0, 1);
  assert_int_equal(allowed(&rl, &other, BURST * 3, 1000), BURST);
  mdht_rl_free(&rl);
}

/* Costs in bytes, as the reply budget spends them. */
static void test_cost(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 64, 8000, 16000, 3), 0);
  mdht_addr a = test_addr4(10, 0, 0, 1, 1);
  assert_true(mdht_rl_take(&rl, &a, 15000, 0));
  assert_false(mdht_rl_take(&rl, &a, 1001, 0)); /* takes nothing */
  assert_true(mdht_rl_take(&rl, &a, 1000, 0));
  assert_false(mdht_rl_take(&rl, &a, 1, 0));
  /* 100 ms at 8000 B/s = 800 bytes. */
  assert_false(mdht_rl_take(&rl, &a, 801, 100));
  assert_true(mdht_rl_take(&rl, &a, 800, 100));
  /* A long idle time refills to the depth, without overflow. */
  assert_true(mdht_rl_take(&rl, &a, 16000, UINT64_MAX / 2));
  assert_false(mdht_rl_take(&rl, &a, 1, UINT64_MAX / 2));
  mdht_rl_free(&rl);
}

/* A flood of one-datagram sources does not make the table forget a busy
 * source: eviction takes the fullest bucket, never the drained one. */
static void test_busy_source_not_evicted(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 64, 10, 5, 9), 0);
  mdht_addr busy = test_addr4(10, 9, 9, 9, 1);
  assert_int_equal(allowed(&rl, &busy, 10, 0), 5);
  for (int i = 0; i < 20000; i++) {
    mdht_addr a =
        test_addr4(11, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i, 1);
    assert_true(mdht_rl_allow(&rl, &a, 0));
  }
  assert_int_equal(allowed(&rl, &busy, 10, 0), 0);
  mdht_rl_free(&rl);
}

/* A table starts at 2 sets and doubles instead of forgetting a source
 * that has spent tokens: 200 sources that each emptied their bucket are
 * all still limited afterwards, and the table stopped at the size they
 * needed, not its full 4096 slots. Sources that spent nothing never make
 * it grow. */
static void test_grows_with_sources(void **state) {
  (void)state;
  mdht_ratelimit rl;
  assert_int_equal(mdht_rl_init(&rl, 4096, 1, 3, 7), 0);
  assert_null(rl.host.slots); /* nothing until first used */
  mdht_addr a = test_addr4(10, 0, 0, 1, 1);
  assert_int_equal(allowed(&rl, &a, 1, 0), 1);
  assert_int_equal(rl.host.nsets, 2);
  for (int i = 0; i < 200; i++) {
    mdht_addr s = test_addr4(10, 1, (uint8_t)(i >> 8), (uint8_t)i, 1);
    assert_int_equal(allowed(&rl, &s, 5, 0), 3);
  }
  for (int i = 0; i < 200; i++) {
    mdht_addr s = test_addr4(10, 1, (uint8_t)(i >> 8), (uint8_t)i, 1);
    assert_int_equal(allowed(&rl, &s, 1, 0), 0); /* still remembered */
  }
  assert_true(rl.host.nsets > 2);
  assert_true(rl.host.nsets < rl.host.max_sets);
  uint32_t sets = rl.host.nsets;
  /* Sources whose buckets refilled are as good as absent: they cost no
   * room, and a fresh crowd at a later time does not grow the table. */
  for (int i = 0; i < 2000; i++) {
    mdht_addr s = test_addr4(10, 2, (uint8_t)(i >> 8), (uint8_t)i, 1);
    mdht_rl_take(&rl, &s, 0, 100000 + (mdht_time)i * 10000);
  }
  assert_int_equal(rl.host.nsets, sets);
  mdht_rl_free(&rl);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_rate),
      cmocka_unit_test(test_grows_with_sources),
      cmocka_unit_test(test_per_ip_not_per_port),
      cmocka_unit_test(test_unlimited),
      cmocka_unit_test(test_many_sources_bounded),
      cmocka_unit_test(test_v6_one_bucket_per_64),
      cmocka_unit_test(test_v6_site_tier),
      cmocka_unit_test(test_cost),
      cmocka_unit_test(test_busy_source_not_evicted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
