/* The simulator's event queue: events come out in time order, equal times
 * in push order (so a run is repeatable), interleaved pushes and pops keep
 * that order, and each operation costs O(log N) comparisons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "evq.h"

static uint64_t rng(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Random times with many ties: out in (time, push order), every item
 * once. `to` carries the push index. */
static void test_order_and_ties(void **state) {
  (void)state;
  enum { N = 20000 };
  mdht_evq q;
  mdht_evq_init(&q);
  uint64_t s = 7;
  for (uint32_t i = 0; i < N; i++) {
    mdht_evq_item it = {.at = 1000 + rng(&s) % 50, .to = i};
    assert_int_equal(mdht_evq_push(&q, it), 0);
  }
  assert_int_equal(mdht_evq_size(&q), N);
  mdht_evq_item prev = {0}, it;
  uint32_t n = 0;
  while (mdht_evq_pop(&q, &it)) {
    if (n > 0) {
      assert_true(it.at >= prev.at);
      if (it.at == prev.at) assert_true(it.to > prev.to);
    }
    assert_int_equal(it.seq, it.to); /* seq is the push order */
    prev = it;
    n++;
  }
  assert_int_equal(n, N);
  assert_null(mdht_evq_peek(&q));
  assert_false(mdht_evq_pop(&q, &it));
  mdht_evq_free(&q);
}

/* A simulation's pattern: pop the earliest, push some later ones (never
 * earlier than now). The popped times never go back, and an item pushed
 * for the current time comes after those already queued for it. */
static void test_interleaved(void **state) {
  (void)state;
  mdht_evq q;
  mdht_evq_init(&q);
  uint64_t s = 11, pushed = 0, popped = 0;
  for (uint32_t i = 0; i < 100; i++) {
    mdht_evq_item it = {.at = rng(&s) % 10, .to = (uint32_t)pushed++};
    mdht_evq_push(&q, it);
  }
  mdht_time now = 0;
  uint64_t last_seq_at_now = 0;
  mdht_evq_item it;
  while (popped < 50000 && mdht_evq_pop(&q, &it)) {
    assert_true(it.at >= now);
    if (it.at == now && popped > 0) assert_true(it.seq > last_seq_at_now);
    now = it.at;
    last_seq_at_now = it.seq;
    popped++;
    uint32_t k = (uint32_t)(rng(&s) % 3);
    for (uint32_t j = 0; j < k && pushed < 60000; j++) {
      mdht_evq_item nx = {.at = now + rng(&s) % 5, .to = (uint32_t)pushed++};
      assert_int_equal(mdht_evq_push(&q, nx), 0);
    }
  }
  assert_true(popped > 1000);
  mdht_evq_free(&q);
}

/* The cost bound: with N queued, a push and a pop together make at most
 * 5 log4(N) + 5 comparisons (4 per level down, 1 per level up), however
 * large N is: measured at 1,000 and at 500,000 items. A sorted list or a
 * scan would make N. */
static void check_cost(uint32_t n) {
  mdht_evq q;
  mdht_evq_init(&q);
  uint64_t s = n;
  for (uint32_t i = 0; i < n; i++) {
    mdht_evq_item it = {.at = rng(&s) % 1000000};
    mdht_evq_push(&q, it);
  }
  double bound = 5 * (log((double)n) / log(4.0)) + 5;
  uint64_t worst = 0;
  for (uint32_t r = 0; r < 2000; r++) {
    mdht_evq_item it;
    uint64_t c0 = q.cmps;
    mdht_evq_pop(&q, &it);
    it.at += rng(&s) % 1000000;
    mdht_evq_push(&q, it);
    uint64_t c = q.cmps - c0;
    if (c > worst) worst = c;
  }
  assert_true((double)worst <= bound);
  assert_int_equal(mdht_evq_size(&q), n);
  mdht_evq_free(&q);
}

static void test_log_cost(void **state) {
  (void)state;
  check_cost(1000);
  check_cost(500000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_and_ties),
      cmocka_unit_test(test_interleaved),
      cmocka_unit_test(test_log_cost),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
