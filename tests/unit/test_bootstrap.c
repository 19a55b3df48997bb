/* The bootstrapper's bookkeeping: routers, seeds, backoff. (Joining a
 * network end to end is tested in test_sim.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "bootstrap.h"
#include "testutil.h"

static void test_routers_bounded_and_unique(void **state) {
  (void)state;
  mdht_bootstrap b;
  mdht_boot_init(&b);
  mdht_addr a = test_addr4(127, 0, 0, 1, 1);
  assert_int_equal(mdht_boot_add_router(&b, &a), 0);
  assert_int_equal(mdht_boot_add_router(&b, &a), MDHT_ERR_EXISTS);
  assert_true(mdht_boot_is_router(&b, &a));
  for (int i = 1; i < MDHT_BOOT_MAX_ROUTERS; i++) {
    mdht_addr x = test_addr4(127, 0, 0, 1, (uint16_t)(i + 1));
    assert_int_equal(mdht_boot_add_router(&b, &x), 0);
  }
  mdht_addr y = test_addr4(127, 0, 0, 2, 1);
  assert_int_equal(mdht_boot_add_router(&b, &y), MDHT_ERR_LIMIT);
  assert_false(mdht_boot_is_router(&b, &y));
  mdht_boot_free(&b);
}

static void test_backoff_doubles_to_cap(void **state) {
  (void)state;
  mdht_bootstrap b;
  mdht_boot_init(&b);
  mdht_time now = 1000;
  mdht_time waits[12];
  for (int i = 0; i < 12; i++) {
    mdht_boot_pinged(&b, now);
    waits[i] = b.next_attempt - now;
    now = b.next_attempt;
  }
  assert_int_equal(waits[0], MDHT_BOOT_BACKOFF_MIN_MS);
  assert_int_equal(waits[1], 2 * MDHT_BOOT_BACKOFF_MIN_MS);
  assert_int_equal(waits[2], 4 * MDHT_BOOT_BACKOFF_MIN_MS);
  assert_int_equal(waits[11], MDHT_BOOT_BACKOFF_MAX_MS);
  assert_int_equal(b.phase, MDHT_BOOT_PINGING);
  /* A failed attempt keeps the backoff; a success resets it. */
  mdht_boot_reset(&b, now);
  assert_int_equal(b.backoff, MDHT_BOOT_BACKOFF_MAX_MS);
  mdht_boot_succeeded(&b);
  assert_int_equal(b.backoff, MDHT_BOOT_BACKOFF_MIN_MS);
  assert_true(b.ever_done);
  mdht_boot_free(&b);
}

static void test_seeds(void **state) {
  (void)state;
  mdht_bootstrap b;
  mdht_boot_init(&b);
  mdht_addr a = test_addr4(127, 0, 0, 1, 1);
  mdht_id i1 = test_id(1), i2 = test_id(2);
  assert_int_equal(mdht_boot_add_router(&b, &a), 0);
  mdht_boot_router_answered(&b, &i1, &a);
  mdht_boot_router_answered(&b, &i2, &a); /* restarted with a new id */
  assert_int_equal(b.nseeds, 1);
  assert_memory_equal(b.seeds[0].id.b, i2.b, MDHT_ID_LEN);
  /* Seeds are forgotten when the table is lost: they must answer again. */
  mdht_boot_reset(&b, 5000);
  assert_int_equal(b.nseeds, 0);
  assert_int_equal(b.phase, MDHT_BOOT_IDLE);
  mdht_boot_free(&b);
}

static void test_failed_attempt_backs_off(void **state) {
  (void)state;
  mdht_bootstrap b;
  mdht_boot_init(&b);
  mdht_id id = test_id(1);
  mdht_addr a = test_addr4(127, 0, 0, 1, 1);
  assert_int_equal(mdht_boot_add_router(&b, &a), 0);
  mdht_boot_router_answered(&b, &id, &a);
  assert_int_equal(b.nseeds, 1);
  mdht_boot_failed(&b, 1000);
  assert_int_equal(b.phase, MDHT_BOOT_IDLE);
  assert_int_equal(b.nseeds, 0);
  assert_int_equal(b.next_attempt, 1000 + MDHT_BOOT_BACKOFF_MIN_MS);
  mdht_boot_failed(&b, 2000);
  assert_int_equal(b.next_attempt, 2000 + 2 * MDHT_BOOT_BACKOFF_MIN_MS);
  mdht_boot_free(&b);
}

/* A node without routers holds no router or seed array; each router adds
 * room for one of each, and the seeds (routers that answered, at most one
 * per router) never outgrow it. Freeing gives both back. */
static void test_arrays_follow_routers(void **state) {
  (void)state;
  mdht_bootstrap b;
  mdht_boot_init(&b);
  assert_null(b.routers);
  assert_null(b.seeds);
  mdht_addr r[2] = {test_addr4(127, 0, 0, 1, 1), test_addr4(127, 0, 0, 2, 1)};
  mdht_id id[3] = {test_id(1), test_id(2), test_id(3)};
  assert_int_equal(mdht_boot_add_router(&b, &r[0]), 0);
  assert_non_null(b.routers);
  assert_non_null(b.seeds);
  assert_int_equal(mdht_boot_add_router(&b, &r[1]), 0);
  mdht_boot_router_answered(&b, &id[0], &r[0]);
  mdht_boot_router_answered(&b, &id[1], &r[1]);
  assert_int_equal(b.nseeds, 2);
  /* A third answer (not a router: the node never sends one) is not kept
   * past the room. */
  mdht_addr other = test_addr4(127, 0, 0, 3, 1);
  mdht_boot_router_answered(&b, &id[2], &other);
  assert_int_equal(b.nseeds, 2);
  assert_true(mdht_addr_eq(&b.seeds[1].addr, &r[1]));
  assert_true(mdht_addr_eq(&b.routers[0], &r[0]));
  assert_true(mdht_addr_eq(&b.routers[1], &r[1]));
  mdht_boot_free(&b);
  assert_null(b.routers);
  assert_int_equal(b.nrouters, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_routers_bounded_and_unique),
      cmocka_unit_test(test_backoff_doubles_to_cap),
      cmocka_unit_test(test_seeds),
      cmocka_unit_test(test_failed_attempt_backs_off),
      cmocka_unit_test(test_arrays_follow_routers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
