/* The external address vote: threshold, one vote per /24, hysteresis,
 * ageing, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "addr.h"
#include "extaddr.h"
#include "testutil.h"

#define T0 1000

/* Responder number i, each in its own /24. */
static mdht_addr src(uint32_t i) {
  return test_addr4(50, (uint8_t)(i >> 8), (uint8_t)i, 7, 6881);
}

static const mdht_addr *vote(mdht_extaddr *x, mdht_addr s, mdht_addr claim,
                             mdht_time now, bool *changed) {
  bool c = mdht_extaddr_vote(x, &s, &claim, now);
  if (changed) *changed = c;
  return mdht_extaddr_get(x);
}

static void test_adopts_after_three_sources(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  bool changed;
  assert_null(vote(&x, src(1), me, T0, &changed));
  assert_false(changed);
  assert_null(vote(&x, src(2), me, T0, &changed));
  const mdht_addr *a = vote(&x, src(3), me, T0, &changed);
  assert_true(changed);
  assert_non_null(a);
  assert_true(mdht_addr_eq(a, &me));
  /* more agreeing votes change nothing */
  vote(&x, src(4), me, T0, &changed);
  assert_false(changed);
  mdht_extaddr_free(&x);
}

static void test_one_vote_per_slash24(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  /* 50 addresses of one /24 (and another port each) count once */
  for (uint8_t i = 1; i <= 50; i++)
    vote(&x, test_addr4(60, 1, 2, i, (uint16_t)(1000 + i)), me, T0, NULL);
  assert_null(mdht_extaddr_get(&x));
  assert_int_equal(mdht_extaddr_votes(&x, &me, T0), 1);
  /* IPv6: one /64 counts once */
  mdht_extaddr_free(&x);
  mdht_extaddr_init(&x, MDHT_AF_INET6);
  mdht_addr me6 = {.family = MDHT_AF_INET6, .port = 1, .ip = {0x20, 0x01, 9}};
  for (uint8_t i = 1; i <= 10; i++) {
    mdht_addr s6 = {.family = MDHT_AF_INET6, .port = 1, .ip = {0x2a, 0x02}};
    s6.ip[15] = i;
    vote(&x, s6, me6, T0, NULL);
  }
  assert_null(mdht_extaddr_get(&x));
  mdht_extaddr_free(&x);
}

static void test_minority_does_not_flap(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  mdht_addr liar = test_addr4(1, 2, 3, 4, 40000);
  for (uint32_t i = 0; i < 10; i++)
    vote(&x, src(i), me, T0, NULL);
  bool changed;
  /* 9 sources disagree: less than twice the 10 that agree */
  for (uint32_t i = 100; i < 109; i++) {
    vote(&x, src(i), liar, T0 + i, &changed);
    assert_false(changed);
  }
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &me));
  /* the minority repeating itself gains nothing */
  for (int k = 0; k < 5; k++)
    for (uint32_t i = 100; i < 109; i++)
      vote(&x, src(i), liar, T0 + 500, &changed);
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &me));
  mdht_extaddr_free(&x);
}

static void test_changes_when_clearly_outvoted(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr old = test_addr4(93, 184, 216, 34, 40000);
  mdht_addr now_ = test_addr4(93, 184, 217, 1, 40000);
  for (uint32_t i = 0; i < 6; i++)
    vote(&x, src(i), old, T0, NULL);
  bool changed = false;
  /* The NAT rebinds: the same sources now report the new address. Each
   * re-vote replaces that source's old vote. */
  uint32_t flips = 0;
  for (uint32_t i = 0; i < 6; i++) {
    vote(&x, src(i), now_, T0 + 10 + i, &changed);
    flips += changed;
    /* 3 vs 3 is no majority; 4 vs 2 is twice */
    if (i < 3) assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &old));
  }
  assert_int_equal(flips, 1);
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &now_));
  mdht_extaddr_free(&x);
}

static void test_votes_age_out(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr old = test_addr4(93, 184, 216, 34, 40000);
  mdht_addr nw = test_addr4(8, 8, 4, 4, 40000);
  for (uint32_t i = 0; i < 20; i++)
    vote(&x, src(i), old, T0, NULL);
  /* Three new sources are outnumbered while the old votes live... */
  for (uint32_t i = 100; i < 103; i++)
    vote(&x, src(i), nw, T0 + 1000, NULL);
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &old));
  assert_int_equal(mdht_extaddr_votes(&x, &old, T0 + 1000), 20);
  /* ... and win once those have aged out. */
  mdht_time later = T0 + MDHT_EXTADDR_TTL_MS + 1;
  assert_int_equal(mdht_extaddr_votes(&x, &old, later), 0);
  /* the next vote decides: 4 live votes, all for the new address */
  bool changed;
  vote(&x, src(103), nw, later, &changed);
  assert_true(changed);
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &nw));
  mdht_extaddr_free(&x);
}

static void test_rejects_implausible_votes(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr pub = test_addr4(93, 184, 216, 34, 40000);
  /* LAN and loopback peers claiming a public address for us */
  for (uint8_t i = 1; i <= 10; i++) {
    assert_false(
        mdht_extaddr_vote(&x, &(mdht_addr){0}, &pub, T0)); /* no family */
    mdht_addr lan = test_addr4(192, 168, 1, i, 6881);
    assert_false(mdht_extaddr_vote(&x, &lan, &pub, T0));
  }
  /* martian claims, and claims of the other family */
  mdht_addr zero = test_addr4(0, 0, 0, 0, 40000);
  mdht_addr six = {.family = MDHT_AF_INET6, .port = 1, .ip = {0x20, 0x01}};
  for (uint32_t i = 0; i < 10; i++) {
    mdht_addr s = src(i);
    assert_false(mdht_extaddr_vote(&x, &s, &zero, T0));
    assert_false(mdht_extaddr_vote(&x, &s, &six, T0));
  }
  assert_null(mdht_extaddr_get(&x));
  assert_int_equal(mdht_extaddr_votes(&x, &pub, T0), 0);
  mdht_extaddr_free(&x);
}

static void test_private_sources_count_per_address(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(127, 0, 0, 1, 6881);
  /* loopback peers, all in 127.0.0.0/24: each counts */
  for (uint8_t i = 2; i <= 4; i++)
    vote(&x, test_addr4(127, 0, 0, i, 6881), me, T0, NULL);
  assert_non_null(mdht_extaddr_get(&x));
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &me));
  mdht_extaddr_free(&x);
}

static void test_bounded_table(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  /* ten thousand sources: the table keeps the newest 64 */
  for (uint32_t i = 0; i < 10000; i++)
    vote(&x, src(i), me, T0 + i, NULL);
  assert_int_equal(mdht_extaddr_votes(&x, &me, T0 + 10000),
                   MDHT_EXTADDR_SOURCES);
  /* 64 records of 12 bytes for IPv4. */
  assert_int_equal(x.rec_len, 12);
  mdht_extaddr_free(&x);
}

/* The records exist from the first vote on, sized by the family (12
 * bytes a source for IPv4, 36 for IPv6); a vote of the other family is
 * refused and allocates nothing; free empties the table. */
static void test_records_by_family(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  assert_null(x.rec);
  mdht_addr s6 = {.family = MDHT_AF_INET6, .port = 1, .ip = {0x2a, 0x02}};
  mdht_addr me6 = {.family = MDHT_AF_INET6, .port = 1, .ip = {0x20, 0x01, 9}};
  assert_false(mdht_extaddr_vote(&x, &s6, &me6, T0));
  assert_null(x.rec);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  vote(&x, src(1), me, T0, NULL);
  assert_non_null(x.rec);
  assert_int_equal(x.rec_len, 12);
  assert_int_equal(mdht_extaddr_votes(&x, &me, T0), 1);
  mdht_extaddr_free(&x);
  assert_null(x.rec);
  assert_int_equal(mdht_extaddr_votes(&x, &me, T0), 0);
  mdht_extaddr_init(&x, MDHT_AF_INET6);
  assert_int_equal(x.rec_len, 36);
  mdht_addr s4 = src(1);
  assert_false(mdht_extaddr_vote(&x, &s4, &me, T0)); /* IPv4 */
  assert_null(x.rec);
  for (uint8_t i = 1; i <= 3; i++) {
    s6.ip[7] = i; /* three /64s */
    mdht_extaddr_vote(&x, &s6, &me6, T0);
  }
  assert_non_null(mdht_extaddr_get(&x));
  assert_true(mdht_addr_ip_eq(mdht_extaddr_get(&x), &me6));
  mdht_extaddr_free(&x);
}

/* A source's time is a 32-bit tick, moved to a
 * new epoch once it would not fit; votes cast just before the move still
 * count after it, within MDHT_EXTADDR_TTL_MS, and expire on time. */
static void test_ticks_move_epoch(void **state) {
  (void)state;
  mdht_extaddr x;
  mdht_extaddr_init(&x, MDHT_AF_INET);
  mdht_addr me = test_addr4(93, 184, 216, 34, 40000);
  mdht_time t = ((mdht_time)1 << 32) - 500; /* the last ticks that fit */
  assert_null(vote(&x, src(1), me, t, NULL));
  assert_null(vote(&x, src(2), me, t + 100, NULL));
  assert_int_equal(x.epoch, 0);
  /* The third vote does not fit: the epoch moves, the two count still. */
  bool changed;
  const mdht_addr *a = vote(&x, src(3), me, t + 1000, &changed);
  assert_true(x.epoch > 0);
  assert_true(changed);
  assert_non_null(a);
  assert_int_equal(mdht_extaddr_votes(&x, &me, t + 1000), 3);
  /* src(1) voted at t: gone at t + TTL, src(2) 100 ms later. */
  assert_int_equal(mdht_extaddr_votes(&x, &me, t + MDHT_EXTADDR_TTL_MS - 1), 3);
  assert_int_equal(mdht_extaddr_votes(&x, &me, t + MDHT_EXTADDR_TTL_MS), 2);
  assert_int_equal(mdht_extaddr_votes(&x, &me, t + 100 + MDHT_EXTADDR_TTL_MS),
                   1);
  mdht_extaddr_free(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_adopts_after_three_sources),
      cmocka_unit_test(test_one_vote_per_slash24),
      cmocka_unit_test(test_minority_does_not_flap),
      cmocka_unit_test(test_changes_when_clearly_outvoted),
      cmocka_unit_test(test_votes_age_out),
      cmocka_unit_test(test_rejects_implausible_votes),
      cmocka_unit_test(test_private_sources_count_per_address),
      cmocka_unit_test(test_bounded_table),
      cmocka_unit_test(test_ticks_move_epoch),
      cmocka_unit_test(test_records_by_family),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
