/* The outgoing queue: order, bounds, compaction, too-small buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "outq.h"
#include "testutil.h"

static void push(mdht_outq *q, uint8_t tag, size_t len, bool expect_ok) {
  uint8_t *p = mdht_outq_reserve(q, len);
  if (!expect_ok) {
    assert_null(p);
    return;
  }
  assert_non_null(p);
  memset(p, tag, len);
  mdht_addr to = test_addr4(127, 0, 0, tag, tag);
  mdht_outq_commit(q, &to, len);
}

static void pop_expect(mdht_outq *q, uint8_t tag, size_t len) {
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_addr to;
  assert_int_equal(mdht_outq_pop(q, &to, buf, sizeof buf), (int)len);
  assert_int_equal(to.port, tag);
  for (size_t i = 0; i < len; i++)
    assert_int_equal(buf[i], tag);
}

static void test_fifo_order(void **state) {
  (void)state;
  mdht_outq q;
  mdht_outq_init(&q, 1 << 20);
  for (int i = 1; i <= 50; i++)
    push(&q, (uint8_t)i, (size_t)(i * 7), true);
  assert_int_equal(q.count, 50);
  for (int i = 1; i <= 50; i++)
    pop_expect(&q, (uint8_t)i, (size_t)(i * 7));
  uint8_t buf[8];
  mdht_addr to;
  assert_int_equal(mdht_outq_pop(&q, &to, buf, sizeof buf), 0);
  mdht_outq_free(&q);
}

static void test_bound_and_reuse(void **state) {
  (void)state;
  mdht_outq q;
  mdht_outq_init(&q, 8192);
  int pushed = 0;
  while (mdht_outq_reserve(&q, 1000)) {
    push(&q, 9, 1000, true);
    pushed++;
  }
  assert_true(pushed >= 7 && pushed <= 8);
  assert_true(q.cap <= 8192);
  /* Draining the front makes room again (compaction, not growth). */
  pop_expect(&q, 9, 1000);
  pop_expect(&q, 9, 1000);
  push(&q, 10, 1000, true);
  assert_true(q.cap <= 8192);
  mdht_outq_free(&q);
}

static void test_small_buffer_keeps_datagram(void **state) {
  (void)state;
  mdht_outq q;
  mdht_outq_init(&q, 1 << 16);
  push(&q, 3, 100, true);
  uint8_t small[10];
  mdht_addr to;
  assert_int_equal(mdht_outq_pop(&q, &to, small, sizeof small), MDHT_ERR_NOBUF);
  pop_expect(&q, 3, 100);
  push(&q, 4, 70000, false); /* longer than a datagram can be */
  mdht_outq_free(&q);
}

/* trim gives the buffer back only when nothing is queued; taking the
 * last datagram keeps it (for the next ones); the queue works again
 * afterwards. */
static void test_trim_when_drained(void **state) {
  (void)state;
  mdht_outq q;
  mdht_outq_init(&q, 1 << 16);
  mdht_outq_trim(&q); /* nothing allocated yet: a no-op */
  assert_null(q.buf);
  push(&q, 1, 1400, true);
  push(&q, 2, 1400, true);
  size_t cap = q.cap;
  assert_true(cap >= 2800);
  mdht_outq_trim(&q); /* two queued: kept */
  assert_int_equal(q.cap, cap);
  pop_expect(&q, 1, 1400);
  mdht_outq_trim(&q); /* one queued: kept */
  assert_non_null(q.buf);
  assert_int_equal(q.cap, cap);
  pop_expect(&q, 2, 1400); /* the last one: the buffer stays */
  assert_non_null(q.buf);
  assert_int_equal(q.cap, cap);
  mdht_outq_trim(&q);
  assert_null(q.buf);
  assert_int_equal(q.cap, 0);
  push(&q, 3, 500, true);
  assert_non_null(q.buf);
  pop_expect(&q, 3, 500);
  mdht_outq_trim(&q);
  assert_null(q.buf);
  /* A reservation never committed leaves an empty queue with a buffer:
   * trim takes it. */
  assert_non_null(mdht_outq_reserve(&q, 500));
  assert_non_null(q.buf);
  uint8_t buf[8];
  mdht_addr to;
  assert_int_equal(mdht_outq_pop(&q, &to, buf, sizeof buf), 0);
  mdht_outq_trim(&q);
  assert_null(q.buf);
  assert_int_equal(q.cap, 0);
  mdht_outq_free(&q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fifo_order),
      cmocka_unit_test(test_bound_and_reuse),
      cmocka_unit_test(test_small_buffer_keeps_datagram),
      cmocka_unit_test(test_trim_when_drained),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
