/* The routing manager: which questionable nodes to ping, which buckets to
 * refresh, on virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "id.h"
#include "maint.h"
#include "testutil.h"
#include <stdlib.h>

#define MIN ((mdht_time)60 * 1000)

typedef struct fx {
  mdht_config cfg;
  mdht_rtable rt;
  mdht_maint m;
  mdht_id self;
  uint64_t seed;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  mdht_config_default(&f->cfg);
  f->cfg.allow_private = true;
  f->self = test_id(0x00);
  f->seed = 3;
  assert_int_equal(mdht_rtable_init(&f->rt, &f->self, &f->cfg, NULL, 1), 0);
  mdht_maint_init(&f->m, 1000);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mdht_rtable_free(&f->rt);
  free(f);
  return 0;
}

/* Ten nodes in the far bucket (ids starting with 0x80 | i), answered at
 * 1000 + i seconds. */
static void add_nodes(fx *f, int n) {
  for (int i = 0; i < n; i++) {
    mdht_id id = test_id((uint8_t)(0x80 | i));
    mdht_addr a = test_addr4(127, 0, 0, (uint8_t)(i + 1), 6881);
    mdht_rt_entry ping;
    mdht_rtable_heard(&f->rt, &id, &a, MDHT_RT_HEARD_REPLY,
                      1000 + (mdht_time)i * 1000, &ping);
  }
}

static void test_nothing_before_due(void **state) {
  fx *f = *state;
  add_nodes(f, 4);
  mdht_maint_action act[MDHT_MAINT_PINGS + 1];
  uint8_t rnd[MDHT_ID_LEN] = {0};
  assert_int_equal(mdht_maint_run(&f->m, &f->rt, 1500, rnd, act), 0);
  assert_int_equal(mdht_maint_next(&f->m), 2000);
  /* due, but every node is good: nothing to ping, nothing stale */
  assert_int_equal(mdht_maint_run(&f->m, &f->rt, 5000, rnd, act), 0);
}

static void test_pings_least_recently_seen_first(void **state) {
  fx *f = *state;
  add_nodes(f, 8);
  mdht_time now = 1000 + 16 * MIN; /* all questionable now */
  mdht_maint_action act[MDHT_MAINT_PINGS + 1];
  uint8_t rnd[MDHT_ID_LEN] = {0};
  size_t n = mdht_maint_run(&f->m, &f->rt, now, rnd, act);
  size_t pings = 0;
  for (size_t i = 0; i < n; i++) {
    if (act[i].kind != MDHT_MAINT_PING) continue;
    /* the oldest four: ids 0x80..0x83, in that order */
    assert_int_equal(act[i].id.b[0], 0x80 | pings);
    pings++;
  }
  assert_int_equal(pings, MDHT_MAINT_PINGS);
  /* A second later: the next four, not the same ones again. */
  n = mdht_maint_run(&f->m, &f->rt, now + 1000, rnd, act);
  pings = 0;
  for (size_t i = 0; i < n; i++)
    if (act[i].kind == MDHT_MAINT_PING)
      assert_int_equal(act[i].id.b[0], 0x84 | pings++);
  assert_int_equal(pings, 4);
  /* All eight are waiting for answers: none is pinged again before the
   * query timeout. */
  n = mdht_maint_run(&f->m, &f->rt, now + 2000, rnd, act);
  for (size_t i = 0; i < n; i++)
    assert_int_not_equal(act[i].kind, MDHT_MAINT_PING);
}

static void test_refresh_stale_bucket(void **state) {
  fx *f = *state;
  /* Enough nodes on both sides of the first bit to split once. */
  for (int i = 0; i < 9; i++) {
    mdht_id id = test_id((uint8_t)(0x80 | i));
    id.b[0] = (uint8_t)(i < 5 ? 0x80 | i : 0x01 + i);
    mdht_addr a = test_addr4(127, 0, 1, (uint8_t)(i + 1), 6881);
    mdht_rt_entry ping;
    mdht_rtable_heard(&f->rt, &id, &a, MDHT_RT_HEARD_REPLY, 1000, &ping);
  }
  assert_true(f->rt.nbuckets >= 2);
  mdht_time now = 1000 + 15 * MIN;
  uint8_t rnd[MDHT_ID_LEN];
  for (int i = 0; i < MDHT_ID_LEN; i++)
    rnd[i] = (uint8_t)(0x5a + i * 37);
  mdht_maint_action act[MDHT_MAINT_PINGS + 1];
  size_t n = mdht_maint_run(&f->m, &f->rt, now, rnd, act);
  size_t refresh = 0;
  for (size_t i = 0; i < n; i++) {
    if (act[i].kind != MDHT_MAINT_REFRESH) continue;
    refresh++;
    /* the target falls in the bucket it refreshes */
    assert_int_equal(mdht_rtable_bucket_of(&f->rt, &act[i].target),
                     act[i].bucket);
  }
  assert_int_equal(refresh, 1); /* one per period */
  /* the next period refreshes the other bucket, then none */
  n = mdht_maint_run(&f->m, &f->rt, now + 1000, rnd, act);
  refresh = 0;
  for (size_t i = 0; i < n; i++)
    refresh += act[i].kind == MDHT_MAINT_REFRESH;
  assert_int_equal(refresh, 1);
}

static void test_bucket_target_ranges(void **state) {
  fx *f = *state;
  for (int i = 0; i < 40; i++) {
    mdht_id id = test_id(0);
    id.b[i / 8] = (uint8_t)(0x80 >> (i % 8));
    mdht_addr a = test_addr4(127, 0, 2, (uint8_t)(i + 1), 6881);
    mdht_rt_entry ping;
    mdht_rtable_heard(&f->rt, &id, &a, MDHT_RT_HEARD_REPLY, 1000, &ping);
  }
  uint8_t rnd[MDHT_ID_LEN];
  for (uint32_t b = 0; b < f->rt.nbuckets; b++) {
    for (int t = 0; t < 20; t++) {
      test_random(rnd, sizeof rnd, &f->seed);
      mdht_id target;
      mdht_maint_bucket_target(&f->rt, b, rnd, &target);
      assert_int_equal(mdht_rtable_bucket_of(&f->rt, &target), b);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_nothing_before_due, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pings_least_recently_seen_first,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_refresh_stale_bucket, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bucket_target_ranges, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
