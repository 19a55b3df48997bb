#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peers.h"

#define TTL 1000

/* ---------------------------------------------------------- fixtures */

#define MAX_EVENTS 4096

typedef struct recorder {
  int n;
  mdht_event ev[MAX_EVENTS];
  int stored, expired;
} recorder;

static void on_event(const mdht_event *ev, void *user) {
  recorder *r = user;
  if (ev->type == MDHT_EV_PEER_STORED) r->stored++;
  if (ev->type == MDHT_EV_PEER_EXPIRED) r->expired++;
  if (r->n < MAX_EVENTS) r->ev[r->n++] = *ev;
}

typedef struct fx {
  mdht_config cfg;
  mdht_bus bus;
  recorder rec;
  mdht_peer_store ps;
} fx;

static fx *fx_new(uint32_t max_ih, uint32_t max_peers) {
  fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  f->cfg.peer_ttl_ms = TTL;
  f->cfg.max_infohashes = max_ih;
  f->cfg.max_peers_per_ih = max_peers;
  mdht_bus_init(&f->bus);
  assert_true(mdht_bus_subscribe(&f->bus, on_event, &f->rec) >= 0);
  assert_int_equal(
      mdht_peers_init(&f->ps, &f->cfg, &f->bus, 0x1234567890abcdefULL, 42), 0);
  return f;
}

static void fx_del(fx *f) {
  mdht_peers_free(&f->ps);
  mdht_bus_free(&f->bus);
  free(f);
}

static mdht_id ih_n(uint32_t n) {
  mdht_id id;
  memset(&id, 0, sizeof id);
  id.b[0] = 0xab;
  id.b[16] = (uint8_t)(n >> 24);
  id.b[17] = (uint8_t)(n >> 16);
  id.b[18] = (uint8_t)(n >> 8);
  id.b[19] = (uint8_t)n;
  return id;
}

/* Public (non-martian) addresses: 1.x.y.z and 2001:db8::x. */
static mdht_addr p4(uint32_t n, uint16_t port) {
  mdht_addr a = {.family = MDHT_AF_INET, .port = port};
  a.ip[0] = 1;
  a.ip[1] = (uint8_t)(n >> 16);
  a.ip[2] = (uint8_t)(n >> 8);
  a.ip[3] = (uint8_t)n;
  return a;
}

static mdht_addr p6(uint32_t n, uint16_t port) {
  mdht_addr a = {.family = MDHT_AF_INET6, .port = port};
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[2] = 0x0d;
  a.ip[3] = 0xb8;
  a.ip[14] = (uint8_t)(n >> 8);
  a.ip[15] = (uint8_t)n;
  return a;
}

static bool has(const mdht_addr *set, size_t n, const mdht_addr *a) {
  for (size_t i = 0; i < n; i++)
    if (mdht_addr_eq(&set[i], a)) return true;
  return false;
}

static bool no_dups(const mdht_addr *set, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (mdht_addr_eq(&set[i], &set[j])) return false;
  return true;
}

/* ------------------------------------------------------------- tests */

/* An empty store holds no tables (issue 13): every read answers
 * "nothing", and the first record makes them. */
static void test_empty_store_holds_nothing(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  assert_int_equal(mdht_peers_bytes(&f->ps), 0);
  mdht_id ih = ih_n(1);
  mdht_addr out[4], a = p4(1, 6881);
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 4, 1), 0);
  assert_int_equal(mdht_peers_expire(&f->ps, 1), 0);
  mdht_id smp[2];
  assert_int_equal(mdht_peers_sample(&f->ps, smp, 2), 0);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &a), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 10), 0);
  assert_true(mdht_peers_bytes(&f->ps) > 0);
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 4, 11), 1);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &a), 1);
  fx_del(f);
}

static void test_add_get_and_events(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id ih = ih_n(1);
  mdht_addr a = p4(1, 6881);
  assert_int_equal(f->ps.next_expiry, UINT64_MAX);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 10), 0);
  assert_int_equal(f->ps.nih, 1);
  assert_int_equal(f->ps.npeers, 1);
  assert_int_equal(f->ps.next_expiry, 10 + TTL);

  assert_int_equal(f->rec.n, 1);
  const mdht_event *ev = &f->rec.ev[0];
  assert_int_equal(ev->type, MDHT_EV_PEER_STORED);
  assert_int_equal(ev->now, 10);
  assert_memory_equal(ev->id.b, ih.b, MDHT_ID_LEN);
  assert_true(mdht_addr_eq(&ev->u.peer.peer, &a));
  assert_int_equal(ev->u.peer.count, 1);

  mdht_addr out[4];
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 4, 11), 1);
  assert_true(mdht_addr_eq(&out[0], &a));
  mdht_id other = ih_n(2);
  assert_int_equal(mdht_peers_get(&f->ps, &other, 0, out, 4, 11), 0);
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 0, 11), 0);
  fx_del(f);
}

static void test_martian_rejected(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id ih = ih_n(1);
  mdht_addr port0 = p4(1, 0);
  mdht_addr zero = {.family = MDHT_AF_INET, .port = 1};
  mdht_addr mcast = p4(1, 1);
  mcast.ip[0] = 224;
  mdht_addr v6zero = {.family = MDHT_AF_INET6, .port = 1};
  mdht_addr badfam = p4(1, 1);
  badfam.family = 5;
  const mdht_addr *bad[] = {&port0, &zero, &mcast, &v6zero, &badfam};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mdht_peers_add(&f->ps, &ih, bad[i], false, 0),
                     MDHT_ERR_ADDR);
  assert_int_equal(f->ps.nih, 0);
  assert_int_equal(f->ps.npeers, 0);
  assert_int_equal(f->rec.n, 0);
  assert_int_equal(mdht_peers_add(&f->ps, NULL, &port0, false, 0),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, NULL, false, 0), MDHT_ERR_INVAL);
  fx_del(f);
}

static void test_dedupe_and_refresh(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id ih = ih_n(7);
  mdht_addr a = p4(1, 6881), a_port = p4(1, 6882), b = p4(2, 6881);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  assert_int_equal(f->ps.npeers, 1);
  /* Junk past a v4 address's 4 bytes does not make it another peer. */
  mdht_addr a_junk = a;
  memset(a_junk.ip + 4, 0x77, 12);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a_junk, false, 0), 0);
  assert_int_equal(f->ps.npeers, 1);
  /* and what is stored and handed out is the clean address. */
  mdht_addr got;
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, &got, 1, 0), 1);
  assert_memory_equal(&got, &a, sizeof got);
  /* Same IP, other port: the same peer, moved (one record per IP). */
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a_port, false, 0), 0);
  assert_int_equal(f->ps.npeers, 1);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a_port, NULL), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a_port, NULL),
                   MDHT_ERR_NOTFOUND);
  mdht_addr c = p4(3, 6881);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &b, false, 0), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &c, false, 0), 0);
  assert_int_equal(f->ps.npeers, 3);
  assert_int_equal(f->ps.nih, 1);

  /* Re-announce at 600 moves a's expiry and sets the seed flag. */
  mdht_peer rec;
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, &rec), 0);
  assert_false(rec.seed);
  assert_int_equal(rec.expires, TTL);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, true, 600), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, &rec), 0);
  assert_true(rec.seed);
  assert_int_equal(rec.expires, 600 + TTL);
  assert_int_equal(f->ps.npeers, 3);
  assert_int_equal(f->rec.stored, 8); /* every announce is reported */

  /* At TTL the other two lapse, a lives on. */
  mdht_addr out[8];
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 8, TTL), 1);
  assert_true(mdht_addr_eq(&out[0], &a));
  assert_int_equal(mdht_peers_expire(&f->ps, TTL), 2);
  assert_int_equal(f->ps.npeers, 1);
  assert_int_equal(f->ps.next_expiry, 600 + TTL);
  /* A seed re-announcing as a leecher is a leecher again. */
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 700), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, &rec), 0);
  assert_false(rec.seed);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &b, &rec), MDHT_ERR_NOTFOUND);
  fx_del(f);
}

static void test_expiry_events(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id x = ih_n(1), y = ih_n(2);
  mdht_addr a = p4(1, 1), b = p4(2, 1), c = p6(3, 1);
  assert_int_equal(mdht_peers_add(&f->ps, &x, &a, false, 0), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &x, &b, false, 100), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &y, &c, false, 50), 0);
  assert_int_equal(f->ps.next_expiry, TTL);
  f->rec.n = 0;

  /* Nothing is due yet. */
  assert_int_equal(mdht_peers_expire(&f->ps, TTL - 1), 0);
  assert_int_equal(f->rec.n, 0);
  assert_int_equal(f->ps.next_expiry, TTL);

  /* Peers that expired but were not yet expired are not handed out. */
  mdht_addr out[4];
  assert_int_equal(mdht_peers_get(&f->ps, &x, 0, out, 4, TTL), 1);
  assert_true(mdht_addr_eq(&out[0], &b));

  assert_int_equal(mdht_peers_expire(&f->ps, TTL), 1);
  assert_int_equal(f->rec.n, 1);
  assert_int_equal(f->rec.ev[0].type, MDHT_EV_PEER_EXPIRED);
  assert_int_equal(f->rec.ev[0].now, TTL);
  assert_memory_equal(f->rec.ev[0].id.b, x.b, MDHT_ID_LEN);
  assert_true(mdht_addr_eq(&f->rec.ev[0].u.peer.peer, &a));
  assert_int_equal(f->rec.ev[0].u.peer.count, 1);
  assert_int_equal(f->ps.nih, 2);
  assert_int_equal(f->ps.npeers, 2);
  assert_int_equal(f->ps.next_expiry, 50 + TTL);

  /* y empties and disappears; x keeps b. */
  assert_int_equal(mdht_peers_expire(&f->ps, 50 + TTL), 1);
  assert_int_equal(f->ps.nih, 1);
  assert_int_equal(f->ps.npeers, 1);
  assert_memory_equal(f->rec.ev[1].id.b, y.b, MDHT_ID_LEN);
  assert_true(mdht_addr_eq(&f->rec.ev[1].u.peer.peer, &c));
  assert_int_equal(f->rec.ev[1].u.peer.count, 0);
  mdht_id s[4];
  assert_int_equal(mdht_peers_sample(&f->ps, s, 4), 1);
  assert_memory_equal(s[0].b, x.b, MDHT_ID_LEN);

  /* Everything gone: counters at zero, no deadline. */
  assert_int_equal(mdht_peers_expire(&f->ps, 100000), 1);
  assert_int_equal(f->ps.nih, 0);
  assert_int_equal(f->ps.npeers, 0);
  assert_int_equal(f->ps.next_expiry, UINT64_MAX);
  assert_int_equal(mdht_peers_get(&f->ps, &x, 0, out, 4, 0), 0);
  assert_int_equal(mdht_peers_sample(&f->ps, s, 4), 0);
  assert_int_equal(mdht_peers_expire(&f->ps, 200000), 0);
  fx_del(f);
}

/* next_expiry is never later than the earliest expiry, and exact after
 * an expire pass even when refreshes moved the earliest peer. */
static void test_next_expiry(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id x = ih_n(1), y = ih_n(2);
  mdht_addr a = p4(1, 1), b = p4(2, 1);
  assert_int_equal(mdht_peers_add(&f->ps, &x, &a, false, 0), 0);
  assert_int_equal(mdht_peers_add(&f->ps, &y, &b, false, 300), 0);
  assert_int_equal(f->ps.next_expiry, TTL);
  assert_int_equal(mdht_peers_add(&f->ps, &x, &a, false, 500), 0);
  assert_true(f->ps.next_expiry <= 300 + TTL);
  assert_int_equal(mdht_peers_expire(&f->ps, 501), 0);
  assert_int_equal(f->ps.next_expiry, 300 + TTL);
  fx_del(f);
}

static void test_peer_bound_replaces_soonest(void **state) {
  (void)state;
  fx *f = fx_new(100, 4);
  mdht_id ih = ih_n(1);
  for (uint32_t i = 0; i < 4; i++) {
    mdht_addr a = p4(i, 1);
    /* Peer 2 announced first, so it is the one closest to expiry. */
    mdht_time t = i == 2 ? 0 : 10 + i;
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, t), 0);
  }
  f->rec.n = 0;
  mdht_addr newcomer = p4(99, 1);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &newcomer, true, 20), 0);
  assert_int_equal(f->ps.npeers, 4);
  mdht_addr gone = p4(2, 1);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &gone, NULL),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &newcomer, NULL), 0);
  for (uint32_t i = 0; i < 4; i++) {
    mdht_addr a = p4(i, 1);
    if (i != 2) assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
  }
  /* The displaced peer is reported, then the newcomer. */
  assert_int_equal(f->rec.n, 2);
  assert_int_equal(f->rec.ev[0].type, MDHT_EV_PEER_EXPIRED);
  assert_true(mdht_addr_eq(&f->rec.ev[0].u.peer.peer, &gone));
  assert_int_equal(f->rec.ev[1].type, MDHT_EV_PEER_STORED);
  assert_true(mdht_addr_eq(&f->rec.ev[1].u.peer.peer, &newcomer));
  /* The earliest expiry is now peer 0's. */
  assert_int_equal(mdht_peers_expire(&f->ps, 10 + TTL), 1);
  assert_int_equal(f->ps.next_expiry, 11 + TTL);

  /* Many more: the bound holds, a re-announce is still a refresh. */
  for (uint32_t i = 100; i < 300; i++) {
    mdht_addr a = p4(i, 1);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 30 + i), 0);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 30 + i), 0);
    assert_true(f->ps.npeers <= 4);
  }
  mdht_addr out[8];
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 8, 300), 4);
  for (uint32_t i = 296; i < 300; i++) {
    mdht_addr a = p4(i, 1);
    assert_true(has(out, 4, &a));
  }
  fx_del(f);
}

static void test_infohash_bound_evicts_stalest(void **state) {
  (void)state;
  fx *f = fx_new(4, 10);
  mdht_addr a = p4(1, 1), b = p4(2, 1);
  mdht_id zero = {0};
  /* Five info-hashes into four: the first one stored (the zero id; ties
   * go to the oldest) makes way for the fifth. */
  assert_int_equal(mdht_peers_add(&f->ps, &zero, &a, false, 0), 0);
  for (uint32_t i = 0; i < 4; i++) {
    mdht_id ih = ih_n(i);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  }
  assert_int_equal(f->ps.nih, 4);
  assert_int_equal(f->ps.npeers, 4);
  assert_int_equal(f->rec.expired, 1);
  assert_int_equal(mdht_peers_find(&f->ps, &zero, &a, NULL), MDHT_ERR_NOTFOUND);

  /* All but ih 1 are announced again later: ih 1 is now the stalest,
   * though it was neither the first created nor first in any order. */
  for (uint32_t i = 0; i < 4; i++) {
    mdht_id ih = ih_n(i);
    mdht_time t = i == 1 ? 5 : 100;
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &b, false, t), 0);
  }
  assert_int_equal(f->ps.nih, 4);
  assert_int_equal(f->ps.npeers, 8);
  f->rec.n = 0;
  mdht_id nw = ih_n(50);
  assert_int_equal(mdht_peers_add(&f->ps, &nw, &a, false, 200), 0);
  assert_int_equal(f->ps.nih, 4);
  assert_int_equal(f->ps.npeers, 7);
  mdht_id ih1 = ih_n(1);
  assert_int_equal(mdht_peers_find(&f->ps, &ih1, &a, NULL), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_peers_find(&f->ps, &nw, &a, NULL), 0);
  for (uint32_t i = 0; i < 4; i++) {
    mdht_id ih = ih_n(i);
    if (i != 1) assert_int_equal(mdht_peers_find(&f->ps, &ih, &b, NULL), 0);
  }
  /* Both of ih 1's peers are reported gone, then the newcomer stored. */
  assert_int_equal(f->rec.expired, 1 + 2);
  assert_int_equal(f->rec.n, 3);
  assert_int_equal(f->rec.ev[0].type, MDHT_EV_PEER_EXPIRED);
  assert_memory_equal(f->rec.ev[0].id.b, ih1.b, MDHT_ID_LEN);
  assert_int_equal(f->rec.ev[1].type, MDHT_EV_PEER_EXPIRED);
  assert_memory_equal(f->rec.ev[1].id.b, ih1.b, MDHT_ID_LEN);
  assert_int_equal(f->rec.ev[1].u.peer.count, 0);
  assert_int_equal(f->rec.ev[2].type, MDHT_EV_PEER_STORED);
  assert_memory_equal(f->rec.ev[2].id.b, nw.b, MDHT_ID_LEN);
  fx_del(f);
}

/* Far more info-hashes than the bound: counters and index stay bounded
 * (sampled eviction path), and the most recent one is always present. */
static void test_infohash_bound_many(void **state) {
  (void)state;
  fx *f = fx_new(100, 3);
  for (uint32_t i = 0; i < 5000; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(i % 7, 1);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
    assert_true(f->ps.nih <= 100);
    assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
  }
  assert_int_equal(f->ps.nih, 100);
  assert_int_equal(f->ps.npeers, 100);
  assert_true(f->ps.cap_ <= 256);
  /* Sampled LRU mostly spares recent ones: an eviction picks from the
   * fresher half only if all 8 samples fall there (1 in 256), so of the
   * last 50 added nearly all must remain. */
  int recent = 0;
  for (uint32_t i = 4950; i < 5000; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(i % 7, 1);
    recent += mdht_peers_find(&f->ps, &ih, &a, NULL) == 0;
  }
  assert_true(recent >= 45);
  fx_del(f);
}

/* The bound on all peers: the store never holds more, a new swarm evicts
 * a stale one, and a new peer of a known swarm replaces that swarm's peer
 * closest to expiry instead of growing it. */
static void test_total_peer_bound(void **state) {
  (void)state;
  fx *f = fx_new(1000, 100);
  f->cfg.max_peers = 50;
  mdht_time now = 1000;
  /* 10 swarms of 5 peers: exactly at the bound */
  for (uint32_t i = 0; i < 10; i++)
    for (uint32_t j = 0; j < 5; j++) {
      mdht_id ih = ih_n(i);
      mdht_addr a = p4(i * 10 + j, 6881);
      assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, now + i), 0);
    }
  assert_int_equal(f->ps.npeers, 50);
  /* a known swarm does not grow past the bound */
  mdht_id ih9 = ih_n(9);
  mdht_addr extra = p4(999, 6881);
  assert_int_equal(mdht_peers_add(&f->ps, &ih9, &extra, false, now + 20), 0);
  assert_int_equal(f->ps.npeers, 50);
  mdht_peer got;
  assert_int_equal(mdht_peers_find(&f->ps, &ih9, &extra, &got), 0);
  /* a new swarm evicts another one entirely, and is stored */
  mdht_id fresh = ih_n(77);
  mdht_addr a = p4(777, 6881);
  assert_int_equal(mdht_peers_add(&f->ps, &fresh, &a, false, now + 30), 0);
  assert_true(f->ps.npeers <= 50);
  assert_int_equal(f->ps.nih, 10);
  assert_int_equal(mdht_peers_find(&f->ps, &fresh, &a, &got), 0);
  /* many more: never above the bound */
  for (uint32_t i = 100; i < 400; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr b = p4(i, 6881);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &b, false, now + i), 0);
    assert_true(f->ps.npeers <= 50);
  }
  fx_del(f);
}

static void test_random_sample(void **state) {
  (void)state;
  fx *f = fx_new(100, 500);
  mdht_id ih = ih_n(3);
  mdht_addr all[50];
  for (uint32_t i = 0; i < 50; i++) {
    all[i] = p4(i, (uint16_t)(1000 + i));
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &all[i], false, 0), 0);
  }
  int hits[50] = {0};
  mdht_addr first[8];
  bool varied = false;
  for (int round = 0; round < 200; round++) {
    mdht_addr out[8];
    assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 8, 1), 8);
    assert_true(no_dups(out, 8));
    for (int j = 0; j < 8; j++) {
      assert_true(has(all, 50, &out[j]));
      for (int i = 0; i < 50; i++)
        hits[i] += mdht_addr_eq(&out[j], &all[i]);
    }
    if (round == 0)
      memcpy(first, out, sizeof out);
    else
      for (int j = 0; j < 8; j++)
        varied |= !has(first, 8, &out[j]);
  }
  assert_true(varied);
  /* 1600 picks over 50 peers, 32 expected each: every peer is reachable
   * and none is strongly favoured (bounds are > 5 sigma). */
  for (int i = 0; i < 50; i++) {
    assert_true(hits[i] > 5);
    assert_true(hits[i] < 70);
  }
  /* Exactly as many as stored, when they fit: all of them. */
  mdht_addr out[60];
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 60, 1), 50);
  assert_true(no_dups(out, 50));
  for (int i = 0; i < 50; i++)
    assert_true(has(out, 50, &all[i]));
  fx_del(f);
}

static void test_family_filter(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id ih = ih_n(4);
  for (uint32_t i = 0; i < 3; i++) {
    mdht_addr a = p4(i, 1);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  }
  for (uint32_t i = 0; i < 2; i++) {
    mdht_addr a = p6(i, 1);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  }
  mdht_addr out[10];
  size_t n = mdht_peers_get(&f->ps, &ih, MDHT_AF_INET, out, 10, 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(out[i].family, MDHT_AF_INET);
  n = mdht_peers_get(&f->ps, &ih, MDHT_AF_INET6, out, 10, 0);
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(out[i].family, MDHT_AF_INET6);
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 10, 0), 5);
  /* Sampling within a family never leaks the other one. */
  for (int r = 0; r < 20; r++) {
    n = mdht_peers_get(&f->ps, &ih, MDHT_AF_INET6, out, 1, 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].family, MDHT_AF_INET6);
  }
  fx_del(f);
}

static void test_sample_infohashes(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_addr a = p4(1, 1);
  for (uint32_t i = 0; i < 10; i++) {
    mdht_id ih = ih_n(i);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 0), 0);
  }
  bool seen[10] = {0};
  for (int r = 0; r < 50; r++) {
    mdht_id out[4];
    assert_int_equal(mdht_peers_sample(&f->ps, out, 4), 4);
    for (int i = 0; i < 4; i++) {
      uint32_t n = out[i].b[19];
      assert_true(n < 10);
      assert_memory_equal(out[i].b, ih_n(n).b, MDHT_ID_LEN);
      seen[n] = true;
      for (int j = 0; j < i; j++)
        assert_memory_not_equal(out[i].b, out[j].b, MDHT_ID_LEN);
    }
  }
  for (int i = 0; i < 10; i++)
    assert_true(seen[i]);
  mdht_id out[20];
  assert_int_equal(mdht_peers_sample(&f->ps, out, 20), 10);
  /* Sampling shuffles the dense array; lookups must still work. */
  for (uint32_t i = 0; i < 10; i++) {
    mdht_id ih = ih_n(i);
    assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
  }
  fx_del(f);
}

/* Index integrity under heavy insertion and deletion (rehashing and
 * backward-shift deletion): after each phase, exactly the live
 * info-hashes are found. */
static void test_index_churn(void **state) {
  (void)state;
  enum { N = 3000 };
  fx *f = fx_new(N, 2);
  mdht_addr a = p4(1, 1);
  static mdht_time exp[N]; /* expected expiry, 0 = absent */
  /* ih i announced at time (i * 7919) % N: expiries interleave with the
   * insertion order, so deletions hit all over the probe runs. */
  for (uint32_t i = 0; i < N; i++) {
    mdht_id ih = ih_n(i);
    mdht_time t = (mdht_time)(i * 7919u) % N;
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, t), 0);
    exp[i] = t + TTL;
  }
  assert_int_equal(f->ps.nih, N);
  for (mdht_time cut = 0; cut <= N; cut += 500) {
    mdht_peers_expire(&f->ps, cut + TTL);
    uint32_t count = 0;
    for (uint32_t i = 0; i < N; i++) {
      if (exp[i] && exp[i] <= cut + TTL) exp[i] = 0;
      mdht_id ih = ih_n(i);
      bool got = mdht_peers_find(&f->ps, &ih, &a, NULL) == 0;
      assert_int_equal(got, exp[i] != 0);
      count += got;
    }
    assert_int_equal(f->ps.nih, count);
    assert_int_equal(f->ps.npeers, count);
    /* Bring back some of the dropped ones (they lapse next phase), so
     * insertions and deletions mix. */
    for (uint32_t i = 0; i < N; i++) {
      if (exp[i] || (i % 3) != 0) continue;
      mdht_id ih = ih_n(i);
      assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, cut + 250), 0);
      exp[i] = cut + 250 + TTL;
    }
  }
  mdht_peers_expire(&f->ps, UINT64_MAX - 1);
  assert_int_equal(f->ps.nih, 0);
  assert_int_equal(f->ps.npeers, 0);
  fx_del(f);
}

static void test_zero_bounds_and_no_bus(void **state) {
  (void)state;
  mdht_config cfg = {
      .peer_ttl_ms = TTL, .max_infohashes = 0, .max_peers_per_ih = 10};
  mdht_peer_store ps;
  assert_int_equal(mdht_peers_init(&ps, &cfg, NULL, 1, 0), 0);
  mdht_id ih = ih_n(1);
  mdht_addr a = p4(1, 1);
  assert_int_equal(mdht_peers_add(&ps, &ih, &a, false, 0), MDHT_ERR_FULL);
  cfg.max_infohashes = 10;
  cfg.max_peers_per_ih = 0;
  assert_int_equal(mdht_peers_add(&ps, &ih, &a, false, 0), MDHT_ERR_FULL);
  cfg.max_peers_per_ih = 1;
  /* No bus: nothing is published, nothing breaks; rng seed 0 works. */
  assert_int_equal(mdht_peers_add(&ps, &ih, &a, false, 0), 0);
  mdht_addr b = p4(2, 1);
  assert_int_equal(mdht_peers_add(&ps, &ih, &b, false, 1), 0);
  assert_int_equal(ps.npeers, 1);
  mdht_addr out[2];
  assert_int_equal(mdht_peers_get(&ps, &ih, 0, out, 2, 1), 1);
  assert_true(mdht_addr_eq(&out[0], &b));
  assert_int_equal(mdht_peers_expire(&ps, 1 + TTL), 1);
  mdht_peers_free(&ps);
  mdht_peers_free(&ps); /* idempotent */
  assert_int_equal(mdht_peers_init(&ps, NULL, NULL, 1, 1), MDHT_ERR_INVAL);
  mdht_peers_free(&ps);
}

/* ---------------------------------------------- one host cannot steer */

/* One IP announcing 500 ports for a swarm is one record; the swarm's
 * other peers all stay (attack 3 of docs/SECURITY.md). */
static void test_one_record_per_ip(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  mdht_id ih = ih_n(1);
  for (uint32_t i = 0; i < 20; i++) {
    mdht_addr a = p4(100 + i, 6881);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
  }
  mdht_addr evil = p4(666, 1), evil6 = p6(666, 1);
  for (uint16_t port = 1; port <= 500; port++) {
    evil.port = evil6.port = port;
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &evil, false, 100 + port), 0);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &evil6, false, 100 + port), 0);
  }
  assert_int_equal(f->ps.npeers, 22);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &evil), 1);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &evil6), 1);
  assert_int_equal(f->ps.nsrc, 22);
  mdht_addr out[64];
  assert_int_equal(mdht_peers_get(&f->ps, &ih, 0, out, 64, 700), 22);
  for (uint32_t i = 0; i < 20; i++) {
    mdht_addr a = p4(100 + i, 6881);
    assert_true(has(out, 22, &a));
  }
  /* The record holds the last port named. */
  evil.port = 500;
  assert_true(has(out, 22, &evil));
  /* A restored record of the same IP replaces it too, port and all. */
  mdht_addr evil_old = p4(666, 9999);
  assert_int_equal(
      mdht_peers_add_until(&f->ps, &ih, &evil_old, false, 600 + TTL, 600), 0);
  assert_int_equal(f->ps.npeers, 22);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &evil, NULL),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &evil_old, NULL), 0);
  fx_del(f);
}

/* At its quota, an IP's own stalest record gives way to its new
 * info-hash; re-announces are never limited, other IPs never touched. */
static void test_quota_own_stalest_gives_way(void **state) {
  (void)state;
  fx *f = fx_new(100, 50);
  f->cfg.max_ih_per_ip = 5;
  mdht_addr a = p4(1, 1), b = p4(2, 1);
  mdht_id shared = ih_n(200);
  for (uint32_t i = 0; i < 5; i++) {
    mdht_id ih = ih_n(i);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
  }
  assert_int_equal(mdht_peers_add(&f->ps, &shared, &b, false, 0), 0);
  /* Refreshing ih 0 at quota costs nothing, and makes ih 1 the stalest. */
  mdht_id ih0 = ih_n(0), ih1 = ih_n(1);
  assert_int_equal(mdht_peers_add(&f->ps, &ih0, &a, false, 10), 0);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &a), 5);
  assert_int_equal(f->rec.expired, 0);
  f->rec.n = 0;
  mdht_id nw = ih_n(50);
  assert_int_equal(mdht_peers_add(&f->ps, &nw, &a, false, 20), 0);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &a), 5);
  assert_int_equal(mdht_peers_find(&f->ps, &ih1, &a, NULL), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_peers_find(&f->ps, &ih0, &a, NULL), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &nw, &a, NULL), 0);
  assert_int_equal(f->ps.nih, 6); /* ih 1 went with its only record */
  assert_int_equal(f->rec.n, 2);
  assert_int_equal(f->rec.ev[0].type, MDHT_EV_PEER_EXPIRED);
  assert_memory_equal(f->rec.ev[0].id.b, ih1.b, MDHT_ID_LEN);
  /* Thousands more: a stays at 5, b's record stays, memory stays. */
  for (uint32_t i = 100; i < 3100; i++) {
    mdht_id ih = ih_n(i);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, 20 + i), 0);
    assert_true(mdht_peers_of_ip(&f->ps, &a) <= 5);
    assert_true(f->ps.nih <= 6);
  }
  assert_int_equal(mdht_peers_find(&f->ps, &shared, &b, NULL), 0);
  assert_int_equal(mdht_peers_of_ip(&f->ps, &a), 5);
  assert_int_equal(f->ps.npeers, 6);
  assert_int_equal(f->ps.nsrc, 2);
  /* Restored records count against the quota the same way. */
  mdht_addr c = p4(3, 1);
  for (uint32_t i = 0; i < 20; i++) {
    mdht_id ih = ih_n(5000 + i);
    assert_int_equal(
        mdht_peers_add_until(&f->ps, &ih, &c, false, 4000 + TTL, 3500), 0);
  }
  assert_int_equal(mdht_peers_of_ip(&f->ps, &c), 5);
  fx_del(f);
}

/* Attack 4: one IP floods a full store with fresh info-hashes; every
 * eviction falls on its own records. It also joins every legitimate
 * swarm first, which must not make those records the ones to go. */
static void test_flood_evicts_only_own(void **state) {
  (void)state;
  fx *f = fx_new(300, 50);
  f->cfg.max_ih_per_ip = 256;
  mdht_addr evil = p4(666, 1);
  for (uint32_t i = 0; i < 100; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(1000 + i, 6881);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &evil, false, i), 0);
  }
  for (uint32_t i = 0; i < 5000; i++) {
    mdht_id ih = ih_n(10000 + i);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &evil, false, 200 + i), 0);
    assert_true(f->ps.nih <= 300);
    assert_true(mdht_peers_of_ip(&f->ps, &evil) <= 256);
  }
  for (uint32_t i = 0; i < 100; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(1000 + i, 6881);
    assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
  }
  /* 200 fresh info-hashes fit beside the 100; the quota gave way to them
   * from its records in the legitimate swarms, down to 255 (the next
   * fresh one evicts one of its own instead). */
  assert_int_equal(f->ps.nih, 300);
  uint32_t held = mdht_peers_of_ip(&f->ps, &evil);
  assert_true(held >= 200 && held <= 256);
  assert_int_equal(f->ps.npeers, 100 + held);
  /* Without a quota, the same flood still only evicts its own. */
  fx *g = fx_new(300, 50);
  for (uint32_t i = 0; i < 100; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(1000 + i, 6881);
    assert_int_equal(mdht_peers_add(&g->ps, &ih, &a, false, i), 0);
  }
  for (uint32_t i = 0; i < 5000; i++) {
    mdht_id ih = ih_n(10000 + i);
    assert_int_equal(mdht_peers_add(&g->ps, &ih, &evil, false, 200 + i), 0);
  }
  assert_int_equal(mdht_peers_of_ip(&g->ps, &evil), 200);
  assert_int_equal(g->ps.npeers, 300);
  for (uint32_t i = 0; i < 100; i++) {
    mdht_id ih = ih_n(i);
    mdht_addr a = p4(1000 + i, 6881);
    assert_int_equal(mdht_peers_find(&g->ps, &ih, &a, NULL), 0);
  }
  fx_del(g);
  fx_del(f);
}

/* At max_peers, one IP announcing into known swarms and fresh ones only
 * ever displaces its own records. */
static void test_total_bound_heaviest_pays(void **state) {
  (void)state;
  fx *f = fx_new(1000, 100);
  f->cfg.max_peers = 150;
  for (uint32_t i = 0; i < 20; i++)
    for (uint32_t j = 0; j < 5; j++) {
      mdht_id ih = ih_n(i);
      mdht_addr a = p4(1000 + i * 10 + j, 6881);
      assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
    }
  mdht_addr evil = p4(666, 1);
  for (uint32_t i = 0; i < 3000; i++) {
    mdht_id ih = ih_n(i % 3 ? 5000 + i : i % 20);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &evil, false, 100 + i), 0);
    assert_true(f->ps.npeers <= 150);
  }
  for (uint32_t i = 0; i < 20; i++)
    for (uint32_t j = 0; j < 5; j++) {
      mdht_id ih = ih_n(i);
      mdht_addr a = p4(1000 + i * 10 + j, 6881);
      assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
    }
  assert_int_equal(mdht_peers_of_ip(&f->ps, &evil), 50);
  fx_del(f);
}

/* In a full swarm, the record of the IP holding the most records goes,
 * not the legitimate peer closest to expiry. */
static void test_swarm_bound_heaviest_pays(void **state) {
  (void)state;
  fx *f = fx_new(100, 10);
  mdht_id ih = ih_n(1);
  mdht_addr heavy = p4(666, 1);
  for (uint32_t i = 0; i < 20; i++) {
    mdht_id other = ih_n(100 + i);
    assert_int_equal(mdht_peers_add(&f->ps, &other, &heavy, false, 50), 0);
  }
  for (uint32_t i = 0; i < 9; i++) {
    mdht_addr a = p4(i, 1);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, i), 0);
  }
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &heavy, false, 60), 0);
  mdht_addr nw = p4(99, 1);
  assert_int_equal(mdht_peers_add(&f->ps, &ih, &nw, false, 70), 0);
  assert_int_equal(mdht_peers_find(&f->ps, &ih, &heavy, NULL),
                   MDHT_ERR_NOTFOUND);
  for (uint32_t i = 0; i < 9; i++) {
    mdht_addr a = p4(i, 1);
    assert_int_equal(mdht_peers_find(&f->ps, &ih, &a, NULL), 0);
  }
  assert_int_equal(mdht_peers_of_ip(&f->ps, &heavy), 20);
  fx_del(f);
}

/* Random churn under every bound at once: the per-IP table always agrees
 * with the records (sum of counts = peers, at most one entry per IP that
 * holds a record), quotas and bounds hold, and it empties with them. */
static void test_source_table_consistent(void **state) {
  (void)state;
  fx *f = fx_new(40, 6);
  f->cfg.max_peers = 120;
  f->cfg.max_ih_per_ip = 7;
  uint64_t x = 88172645463325252ULL;
  for (uint32_t step = 0; step < 20000; step++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    mdht_id ih = ih_n((uint32_t)(x % 97));
    mdht_addr a = (x >> 8) % 5 ? p4((uint32_t)((x >> 16) % 60), 1)
                               : p6((uint32_t)((x >> 16) % 20), 1);
    a.port = (uint16_t)(1 + (x >> 32) % 3);
    mdht_time now = step;
    if ((x >> 40) % 4)
      assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, false, now), 0);
    else
      mdht_peers_add_until(&f->ps, &ih, &a, false, now + (x >> 44) % TTL + 1,
                           now);
    if (step % 97 == 0) mdht_peers_expire(&f->ps, now);
    assert_true(f->ps.nih <= 40 && f->ps.npeers <= 120);
    assert_true(f->ps.nsrc <= f->ps.npeers);
    if (step % 500 == 0 || step > 19900) {
      uint32_t sum = 0, held = 0;
      for (uint32_t i = 0; i < 60; i++) {
        mdht_addr b = p4(i, 0);
        uint32_t n = mdht_peers_of_ip(&f->ps, &b);
        assert_true(n <= 7);
        sum += n;
        held += n > 0;
      }
      for (uint32_t i = 0; i < 20; i++) {
        mdht_addr b = p6(i, 0);
        uint32_t n = mdht_peers_of_ip(&f->ps, &b);
        assert_true(n <= 7);
        sum += n;
        held += n > 0;
      }
      assert_int_equal(sum, f->ps.npeers);
      assert_int_equal(held, f->ps.nsrc);
    }
  }
  mdht_peers_expire(&f->ps, UINT64_MAX - 1);
  assert_int_equal(f->ps.npeers, 0);
  assert_int_equal(f->ps.nsrc, 0);
  assert_int_equal(f->ps.nih, 0);
  fx_del(f);
}

/* Free with everything still stored: ASan's leak check covers it. */
static void test_free_full_store(void **state) {
  (void)state;
  fx *f = fx_new(200, 20);
  for (uint32_t i = 0; i < 300; i++) {
    mdht_id ih = ih_n(i % 150);
    mdht_addr a = p4(i, 1), b = p6(i, 2);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &a, i & 1, i), 0);
    assert_int_equal(mdht_peers_add(&f->ps, &ih, &b, false, i), 0);
  }
  assert_int_equal(f->ps.nih, 150);
  assert_int_equal(f->ps.npeers, 600);
  fx_del(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty_store_holds_nothing),
      cmocka_unit_test(test_add_get_and_events),
      cmocka_unit_test(test_martian_rejected),
      cmocka_unit_test(test_dedupe_and_refresh),
      cmocka_unit_test(test_expiry_events),
      cmocka_unit_test(test_next_expiry),
      cmocka_unit_test(test_peer_bound_replaces_soonest),
      cmocka_unit_test(test_infohash_bound_evicts_stalest),
      cmocka_unit_test(test_infohash_bound_many),
      cmocka_unit_test(test_total_peer_bound),
      cmocka_unit_test(test_random_sample),
      cmocka_unit_test(test_family_filter),
      cmocka_unit_test(test_sample_infohashes),
      cmocka_unit_test(test_index_churn),
      cmocka_unit_test(test_zero_bounds_and_no_bus),
      cmocka_unit_test(test_one_record_per_ip),
      cmocka_unit_test(test_quota_own_stalest_gives_way),
      cmocka_unit_test(test_flood_evicts_only_own),
      cmocka_unit_test(test_total_bound_heaviest_pays),
      cmocka_unit_test(test_swarm_bound_heaviest_pays),
      cmocka_unit_test(test_source_table_consistent),
      cmocka_unit_test(test_free_full_store),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
