#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "txn.h"

#define TIMEOUT 5000

static mdht_addr v4(uint8_t last, uint16_t port) {
  mdht_addr a = {.family = MDHT_AF_INET, .port = port};
  a.ip[0] = 198;
  a.ip[1] = 51;
  a.ip[2] = 100;
  a.ip[3] = last;
  return a;
}

static mdht_txn_owner owner(uint32_t cookie) {
  return (mdht_txn_owner){.kind = 3, .cookie = cookie, .cookie2 = ~cookie};
}

static int open_(mdht_txn_mgr *tm, const mdht_addr *a, uint32_t check,
                 mdht_time now, uint8_t tid[MDHT_TID_LEN]) {
  return mdht_txn_open(tm, a, NULL, MDHT_M_PING, owner(check), check, now, tid);
}

static void test_init_bounds(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 0, TIMEOUT), MDHT_ERR_INVAL);
  assert_int_equal(mdht_txn_init(&tm, 65536, TIMEOUT), MDHT_ERR_INVAL);
  assert_int_equal(mdht_txn_init(&tm, 65535, TIMEOUT), 0);
  assert_int_equal(mdht_txn_next_deadline(&tm), UINT64_MAX);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, NULL), MDHT_ERR_AGAIN);
  mdht_txn_free(&tm);
  mdht_txn_free(&tm); /* idempotent */
}

static void test_open_and_match(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 16, TIMEOUT), 0);
  mdht_addr a = v4(1, 6881);
  mdht_id id;
  memset(id.b, 0x5a, sizeof id.b);
  uint8_t tid[MDHT_TID_LEN];
  int slot = mdht_txn_open(&tm, &a, &id, MDHT_M_GET_PEERS, owner(42),
                           0xdeadbeef, 100, tid);
  assert_int_equal(slot, 0);
  assert_int_equal(tm.n, 1);
  const uint8_t want[] = {0x00, 0x00, 0xde, 0xad, 0xbe, 0xef};
  assert_memory_equal(tid, want, MDHT_TID_LEN);
  assert_int_equal(mdht_txn_next_deadline(&tm), 100 + TIMEOUT);

  mdht_txn out;
  assert_int_equal(mdht_txn_match(&tm, tid, sizeof tid, &a, &out), 0);
  assert_true(out.has_id);
  assert_memory_equal(out.id.b, id.b, MDHT_ID_LEN);
  assert_int_equal(out.method, MDHT_M_GET_PEERS);
  assert_int_equal(out.sent, 100);
  assert_int_equal(out.deadline, 100 + TIMEOUT);
  assert_int_equal(out.owner.kind, 3);
  assert_int_equal(out.owner.cookie, 42);
  assert_int_equal(out.owner.cookie2, ~42u);
  assert_true(mdht_addr_eq(&out.addr, &a));
  assert_int_equal(tm.n, 0);
  assert_int_equal(mdht_txn_next_deadline(&tm), UINT64_MAX);
  /* A duplicate answer finds nothing. */
  assert_int_equal(mdht_txn_match(&tm, tid, sizeof tid, &a, &out),
                   MDHT_ERR_NOTFOUND);

  /* Without an id, has_id is false; the slot index is big-endian. */
  mdht_txn_free(&tm);
  assert_int_equal(mdht_txn_init(&tm, 400, TIMEOUT), 0);
  for (int i = 0; i < 0x102; i++)
    assert_int_equal(open_(&tm, &a, 7, 0, tid), i);
  const uint8_t want2[] = {0x01, 0x01, 0x00, 0x00, 0x00, 0x07};
  assert_memory_equal(tid, want2, MDHT_TID_LEN);
  assert_int_equal(mdht_txn_match(&tm, tid, sizeof tid, &a, &out), 0);
  assert_false(out.has_id);
  mdht_txn_free(&tm);
}

static void test_rejects(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 8, TIMEOUT), 0);
  mdht_addr a = v4(1, 6881);
  uint8_t tid[MDHT_TID_LEN + 1];
  assert_int_equal(open_(&tm, &a, 0x1234, 0, tid), 0);
  tid[MDHT_TID_LEN] = 0;
  mdht_txn out;

  mdht_addr other_port = v4(1, 6882), other_ip = v4(2, 6881);
  mdht_addr v6 = {.family = MDHT_AF_INET6, .port = 6881};
  memcpy(v6.ip, a.ip, 4);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN, &other_port, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN, &other_ip, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN, &v6, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, 4, &a, &out), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN + 1, &a, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, 0, &a, &out), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, NULL, MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN, NULL, &out),
                   MDHT_ERR_NOTFOUND);

  uint8_t bad[MDHT_TID_LEN];
  for (int bit = 0; bit < 32; bit++) { /* every one-bit-wrong check */
    memcpy(bad, tid, sizeof bad);
    bad[2 + bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_int_equal(mdht_txn_match(&tm, bad, MDHT_TID_LEN, &a, &out),
                     MDHT_ERR_NOTFOUND);
  }
  memcpy(bad, tid, sizeof bad);
  bad[1] = 1; /* in range, unused */
  assert_int_equal(mdht_txn_match(&tm, bad, MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  bad[0] = 0xff; /* out of range */
  bad[1] = 0xf0;
  assert_int_equal(mdht_txn_match(&tm, bad, MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  bad[0] = 0;
  bad[1] = 8; /* == cap */
  assert_int_equal(mdht_txn_match(&tm, bad, MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);

  /* None of the rejected attempts closed the transaction. */
  assert_int_equal(tm.n, 1);
  assert_int_equal(mdht_txn_match(&tm, tid, MDHT_TID_LEN, &a, &out), 0);
  mdht_txn_free(&tm);
}

static void test_timeouts_in_order(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 8, TIMEOUT), 0);
  mdht_addr a = v4(1, 1);
  uint8_t tid[5][MDHT_TID_LEN];
  for (int i = 0; i < 5; i++)
    assert_int_equal(
        open_(&tm, &a, (uint32_t)(100 + i), (mdht_time)i * 10, tid[i]), i);
  mdht_txn out;
  assert_int_equal(mdht_txn_next_deadline(&tm), TIMEOUT);
  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT - 1, &out), MDHT_ERR_AGAIN);
  assert_int_equal(tm.n, 5);

  /* Answering one in the middle removes it from the deadline order. */
  assert_int_equal(mdht_txn_match(&tm, tid[2], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(out.owner.cookie, 102);

  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT + 35, &out), 0);
  assert_int_equal(out.owner.cookie, 100);
  assert_int_equal(out.deadline, TIMEOUT);
  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT + 35, &out), 0);
  assert_int_equal(out.owner.cookie, 101);
  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT + 35, &out), 0);
  assert_int_equal(out.owner.cookie, 103);
  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT + 35, &out), MDHT_ERR_AGAIN);
  assert_int_equal(mdht_txn_next_deadline(&tm), TIMEOUT + 40);
  assert_int_equal(tm.n, 1);

  /* Late answers to the expired ones are not matched. */
  assert_int_equal(mdht_txn_match(&tm, tid[0], MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, tid[3], MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);

  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT + 40, NULL), 0);
  assert_int_equal(mdht_txn_next_deadline(&tm), UINT64_MAX);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), MDHT_ERR_AGAIN);
  assert_int_equal(tm.n, 0);
  mdht_txn_free(&tm);
}

static void test_full_and_reuse(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 4, TIMEOUT), 0);
  mdht_addr a = v4(1, 1);
  uint8_t tid[4][MDHT_TID_LEN], t5[MDHT_TID_LEN];
  for (int i = 0; i < 4; i++)
    assert_int_equal(open_(&tm, &a, (uint32_t)(0x1111 * (i + 1)), 0, tid[i]),
                     i);
  assert_int_equal(open_(&tm, &a, 0x9999, 0, t5), MDHT_ERR_FULL);
  assert_int_equal(tm.n, 4);

  mdht_txn out;
  assert_int_equal(mdht_txn_match(&tm, tid[1], MDHT_TID_LEN, &a, &out), 0);
  /* The freed slot is reused, with a new check. */
  assert_int_equal(open_(&tm, &a, 0x7777, 1, t5), 1);
  assert_int_equal(open_(&tm, &a, 0x8888, 1, t5 /* unused */), MDHT_ERR_FULL);
  assert_int_equal(mdht_txn_match(&tm, tid[1], MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  uint8_t t_new[MDHT_TID_LEN] = {0, 1, 0, 0, 0x77, 0x77};
  assert_int_equal(mdht_txn_match(&tm, t_new, MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(out.owner.cookie, 0x7777);

  /* Expiry frees slots too. */
  for (int i = 0; i < 3; i++)
    assert_int_equal(mdht_txn_expire(&tm, TIMEOUT, NULL), 0);
  assert_int_equal(tm.n, 0);
  assert_int_equal(tm.nfree_, 4);
  mdht_txn_free(&tm);
}

/* Even if the caller's random check repeats, the reopened slot gets a
 * different tid, so a late answer to the old query cannot match. */
static void test_reuse_same_check(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 2, TIMEOUT), 0);
  mdht_addr a = v4(1, 1);
  uint8_t old[MDHT_TID_LEN], neu[MDHT_TID_LEN];
  assert_int_equal(open_(&tm, &a, 0x4242, 0, old), 0);
  assert_int_equal(mdht_txn_expire(&tm, TIMEOUT, NULL), 0);
  assert_int_equal(open_(&tm, &a, 0x4242, TIMEOUT, neu), 0);
  assert_memory_not_equal(old, neu, MDHT_TID_LEN);
  mdht_txn out;
  assert_int_equal(mdht_txn_match(&tm, old, MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_txn_match(&tm, neu, MDHT_TID_LEN, &a, &out), 0);
  mdht_txn_free(&tm);
}

/* Removing the newest (tail) or oldest (head) must leave the FIFO able to
 * take and yield new transactions. */
static void test_unlink_ends(void **state) {
  (void)state;
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, 8, TIMEOUT), 0);
  mdht_addr a = v4(1, 1);
  uint8_t t1[MDHT_TID_LEN], t2[MDHT_TID_LEN], t3[MDHT_TID_LEN],
      t4[MDHT_TID_LEN];
  mdht_txn out;
  open_(&tm, &a, 1, 0, t1);
  open_(&tm, &a, 2, 1, t2);
  assert_int_equal(mdht_txn_match(&tm, t2, MDHT_TID_LEN, &a, &out),
                   0); /* tail */
  open_(&tm, &a, 3, 2, t3);
  assert_int_equal(mdht_txn_match(&tm, t1, MDHT_TID_LEN, &a, &out),
                   0); /* head */
  open_(&tm, &a, 4, 3, t4);
  assert_int_equal(mdht_txn_next_deadline(&tm), 2 + TIMEOUT);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), 0);
  assert_int_equal(out.owner.cookie, 3);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), 0);
  assert_int_equal(out.owner.cookie, 4);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), MDHT_ERR_AGAIN);
  /* Emptied by matching alone, then reused. */
  open_(&tm, &a, 5, 4, t1);
  assert_int_equal(mdht_txn_match(&tm, t1, MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(mdht_txn_next_deadline(&tm), UINT64_MAX);
  open_(&tm, &a, 6, 5, t1);
  assert_int_equal(mdht_txn_next_deadline(&tm), 5 + TIMEOUT);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), 0);
  assert_int_equal(out.owner.cookie, 6);
  assert_int_equal(tm.n, 0);
  mdht_txn_free(&tm);
}

/* Many opens, answers and expiries in a pattern; the FIFO stays intact:
 * every transaction is closed exactly once, expiries come in deadline
 * order, and each is the one that was open in that slot. */
static void test_churn(void **state) {
  (void)state;
  enum { CAP = 64, ROUNDS = 3000 };
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, CAP, 100), 0);
  mdht_addr a = v4(9, 9);
  uint8_t tids[CAP][MDHT_TID_LEN];
  uint32_t seq_in[CAP]; /* which open lives in each slot, 0 = none */
  memset(seq_in, 0, sizeof seq_in);
  uint32_t x = 12345, closed = 0, opened = 0, full = 0;
  mdht_time last_deadline = 0;
  for (mdht_time now = 0; now < ROUNDS; now++) {
    x = x * 1103515245u + 12345u;
    uint8_t tid[MDHT_TID_LEN];
    int r = mdht_txn_open(&tm, &a, NULL, MDHT_M_PING, owner(opened + 1), x, now,
                          tid);
    if (r >= 0) {
      assert_int_equal(seq_in[r], 0);
      memcpy(tids[r], tid, MDHT_TID_LEN);
      seq_in[r] = ++opened;
    } else {
      assert_int_equal(r, MDHT_ERR_FULL);
      full++;
    }
    int k = (int)((x >> 8) % CAP);
    mdht_txn out;
    if ((x & 0x300) == 0) {
      int m = mdht_txn_match(&tm, tids[k], MDHT_TID_LEN, &a, &out);
      if (seq_in[k]) {
        assert_int_equal(m, 0);
        assert_int_equal(out.owner.cookie, seq_in[k]);
        seq_in[k] = 0;
        closed++;
      } else {
        assert_int_equal(m, MDHT_ERR_NOTFOUND);
      }
    }
    while (mdht_txn_expire(&tm, now, &out) == 0) {
      assert_true(out.deadline >= last_deadline);
      assert_true(out.deadline <= now);
      last_deadline = out.deadline;
      int slot = -1;
      for (int i = 0; i < CAP; i++)
        if (seq_in[i] == out.owner.cookie) slot = i;
      assert_true(slot >= 0);
      seq_in[slot] = 0;
      closed++;
    }
    assert_int_equal(opened - closed, tm.n);
    /* Every allocated slot is open or free, and the bound holds. */
    assert_int_equal(tm.n + tm.nfree_, tm.cap);
    assert_true(tm.cap <= CAP);
    assert_true(mdht_txn_next_deadline(&tm) > now);
  }
  assert_true(full > 0); /* the pattern did reach the bound */
  /* Every open transaction is still reachable through the FIFO. */
  mdht_txn out;
  while (mdht_txn_expire(&tm, UINT64_MAX, &out) == 0)
    closed++;
  assert_int_equal(tm.n, 0);
  assert_int_equal(opened, closed);
  mdht_txn_free(&tm);
}

/* The table grows by doubling past its first MDHT_TXN_MIN_SLOTS slots up
 * to the bound, keeps every open transaction (and its id) valid across a
 * doubling, and gives memory back once it is idle again. */
static void test_grows_and_shrinks(void **state) {
  (void)state;
  enum { MAX = 100 };
  mdht_txn_mgr tm;
  assert_int_equal(mdht_txn_init(&tm, MAX, TIMEOUT), 0);
  assert_int_equal(tm.cap, MDHT_TXN_MIN_SLOTS);
  mdht_addr a = v4(7, 7);
  uint8_t tids[MAX][MDHT_TID_LEN];
  for (int i = 0; i < MAX; i++)
    assert_int_equal(open_(&tm, &a, 0x1000u + (uint32_t)i, 1, tids[i]), i);
  /* 4, 8, 16, 32, 64, then capped at the bound rather than 128. */
  assert_int_equal(tm.cap, MAX);
  uint8_t t[MDHT_TID_LEN];
  assert_int_equal(open_(&tm, &a, 1, 1, t), MDHT_ERR_FULL);
  /* Ids handed out before the table grew still match. */
  mdht_txn out;
  assert_int_equal(mdht_txn_match(&tm, tids[0], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(out.owner.cookie, 0x1000);
  /* Closing the upper slots lets it halve as soon as at most a quarter is
   * in use and the upper half is empty. */
  for (int i = MAX - 1; i >= 4; i--)
    assert_int_equal(mdht_txn_match(&tm, tids[i], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(tm.n, 3);
  /* 100, 50, 25, 12, 6: a quarter of 6 is less than the 3 still open. */
  assert_int_equal(tm.cap, 6);
  assert_int_equal(tm.n + tm.nfree_, tm.cap);
  /* A closed slot that was dropped no longer matches. */
  assert_int_equal(mdht_txn_match(&tm, tids[50], MDHT_TID_LEN, &a, &out),
                   MDHT_ERR_NOTFOUND);
  /* The ones left are intact, and expire in order. */
  assert_int_equal(mdht_txn_match(&tm, tids[2], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(out.owner.cookie, 0x1002);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), 0);
  assert_int_equal(out.owner.cookie, 0x1001);
  assert_int_equal(mdht_txn_expire(&tm, UINT64_MAX, &out), 0);
  assert_int_equal(out.owner.cookie, 0x1003);
  assert_int_equal(tm.n, 0);

  /* An open transaction in the upper half holds the table at its size
   * however few others are open. */
  int slot[16], high = -1;
  for (int i = 0; i < 16; i++) {
    slot[i] = open_(&tm, &a, 0x2000u + (uint32_t)i, 2, tids[i]);
    assert_true(slot[i] >= 0 && slot[i] < 16);
    if (slot[i] == 15) high = i;
  }
  assert_int_equal(tm.cap, 16);
  assert_true(high >= 0);
  for (int i = 0; i < 16; i++)
    if (i != high)
      assert_int_equal(mdht_txn_match(&tm, tids[i], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(tm.n, 1);
  assert_int_equal(tm.cap, 16);
  assert_int_equal(mdht_txn_match(&tm, tids[high], MDHT_TID_LEN, &a, &out), 0);
  assert_int_equal(tm.cap, MDHT_TXN_MIN_SLOTS);
  mdht_txn_free(&tm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_bounds),
      cmocka_unit_test(test_open_and_match),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_timeouts_in_order),
      cmocka_unit_test(test_full_and_reuse),
      cmocka_unit_test(test_grows_and_shrinks),
      cmocka_unit_test(test_reuse_same_check),
      cmocka_unit_test(test_unlink_ends),
      cmocka_unit_test(test_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
