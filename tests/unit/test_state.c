/* Node state to bytes and back: round trip, questionable loaded nodes and
 * their paced pings, peer lifetimes across the downtime, and every class
 * of bad file (truncated, bit-flipped, empty, foreign, future version,
 * malformed sections under a valid checksum). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "id.h"
#include "krpc.h"
#include "item.h"
#include "node.h"
#include "state.h"
#include "testutil.h"

#define T0 1000000u             /* monotonic time of the first node */
#define T1 5000u                /* of the restarted node: the clock restarts */
#define WALL 1800000000000ull   /* Unix ms of the save */
#define TTL (30u * 60u * 1000u) /* default peer_ttl_ms */

typedef struct fixture {
  uint64_t seed;
  mdht_node *node;
  uint32_t events[MDHT_EV_COUNT_];
  mdht_event last[MDHT_EV_COUNT_];
} fixture;

static void on_event(const mdht_event *ev, void *user) {
  fixture *f = user;
  f->events[ev->type]++;
  f->last[ev->type] = *ev;
}

static void make_cfg(fixture *f, const mdht_config *cfg, const mdht_id *id,
                     mdht_time now) {
  memset(f, 0, sizeof *f);
  f->seed = 99;
  mdht_callbacks cb = {.random = test_random, .user = &f->seed};
  mdht_addr bound = test_addr4(1, 2, 3, 4, 6881);
  assert_int_equal(mdht_node_new(&f->node, cfg, &cb, id, &bound, now), 0);
  assert_true(mdht_node_subscribe(f->node, on_event, f) >= 0);
}

static void make(fixture *f, const mdht_id *id, mdht_time now) {
  make_cfg(f, NULL, id, now);
}

static void unmake(fixture *f) {
  mdht_node_del(f->node);
}

/* A public address per index, so that no node is refused as private. */
static mdht_addr addr_n(uint32_t i) {
  return test_host4(i, (uint16_t)(1000 + i % 50000));
}

static mdht_id random_id(uint64_t *seed) {
  mdht_id id;
  test_random(id.b, sizeof id.b, seed);
  return id;
}

/* Ids at every depth from ours, several per depth: full buckets, splits,
 * replacement candidates. All answered us, so they are good. */
static void populate_nodes(fixture *f, uint32_t n, mdht_time now) {
  uint64_t s = 1234;
  const mdht_id *self = mdht_node_id(f->node);
  for (uint32_t i = 0; i < n; i++) {
    mdht_id id = random_id(&s);
    uint32_t depth = i % 24;
    uint8_t rnd[MDHT_ID_LEN];
    memcpy(rnd, id.b, sizeof rnd);
    /* share exactly `depth` leading bits with our id */
    mdht_id_random_in(&id, self, (int)depth, rnd);
    int bit = (int)depth;
    if (mdht_id_bit(&id, bit) == mdht_id_bit(self, bit))
      id.b[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
    mdht_addr a = addr_n(i + 1);
    mdht_rtable_heard(&f->node->rt, &id, &a, MDHT_RT_HEARD_REPLY, now, NULL);
  }
}

static mdht_id ih_n(uint32_t n) {
  mdht_id id = test_id(0xab);
  id.b[18] = (uint8_t)(n >> 8);
  id.b[19] = (uint8_t)n;
  return id;
}

static void populate_peers(fixture *f, uint32_t nih, uint32_t per,
                           mdht_time now) {
  for (uint32_t i = 0; i < nih; i++) {
    mdht_id ih = ih_n(i);
    for (uint32_t j = 0; j < per; j++) {
      mdht_addr p = test_addr4(9, 9, (uint8_t)i, (uint8_t)j, 6000);
      assert_int_equal(
          mdht_peers_add(&f->node->peers, &ih, &p, j % 2 == 0, now), 0);
    }
  }
}

static void save(fixture *f, mdht_time now, uint8_t **buf, size_t *len,
                 mdht_state_info *info) {
  assert_int_equal(mdht_state_save(f->node, now, WALL, buf, len, info), 0);
  assert_non_null(*buf);
}

/* An exact-size copy, so that ASan catches a read one byte past it. */
static uint8_t *exact(const uint8_t *p, size_t n) {
  uint8_t *c = malloc(n ? n : 1);
  assert_non_null(c);
  if (n) memcpy(c, p, n);
  return c;
}

static uint32_t table_total(const mdht_node *node) {
  uint32_t total, repl;
  mdht_rtable_counts(&node->rt, 0, NULL, NULL, &total, &repl);
  return total + repl;
}

/* Every bucket and candidate entry of `a` (not bad) is in `b`. */
static void assert_same_entries(const mdht_node *a, const mdht_node *b,
                                mdht_time now) {
  for (uint32_t bi = 0; bi < a->rt.nbuckets; bi++) {
    const mdht_rt_bucket *bk = &a->rt.buckets[bi];
    for (int r = 0; r < 2; r++) {
      const mdht_rt_entry *v = r ? bk->repl : bk->nodes;
      uint32_t n = r ? bk->nrepl : bk->n;
      for (uint32_t i = 0; i < n; i++) {
        if (mdht_rtable_state(&a->rt, &v[i], now) == MDHT_RT_BAD) continue;
        uint32_t bj = mdht_rtable_bucket_of(&b->rt, &v[i].id);
        const mdht_rt_bucket *o = &b->rt.buckets[bj];
        mdht_addr va = mdht_rtable_addr(&a->rt, &v[i]);
        bool found = false;
        for (uint32_t k = 0; k < o->n && !found; k++) {
          mdht_addr oa = mdht_rtable_addr(&b->rt, &o->nodes[k]);
          found = mdht_id_eq(&o->nodes[k].id, &v[i].id) &&
                  mdht_addr_eq(&oa, &va) && !r;
        }
        for (uint32_t k = 0; k < o->nrepl && !found; k++) {
          mdht_addr oa = mdht_rtable_addr(&b->rt, &o->repl[k]);
          found = mdht_id_eq(&o->repl[k].id, &v[i].id) &&
                  mdht_addr_eq(&oa, &va) && r;
        }
        assert_true(found);
      }
    }
  }
}

/* ------------------------------------------------------ a test writer */

/* Builds files by hand, to reach the parser's checks behind a valid
 * checksum. */
typedef struct tb {
  uint8_t b[4096];
  size_t n;
} tb;

static void tb_bytes(tb *t, const void *p, size_t n) {
  assert_true(t->n + n <= sizeof t->b);
  memcpy(t->b + t->n, p, n);
  t->n += n;
}

static void tb_be(tb *t, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++)
    t->b[t->n++] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void tb_header(tb *t, uint16_t version, uint16_t flags) {
  t->n = 0;
  tb_bytes(t, "MDHTSTATE", 9);
  tb_be(t, version, 2);
  tb_be(t, flags, 2);
  tb_be(t, 0, 4);
}

static void tb_meta(tb *t, const mdht_id *id) {
  tb_be(t, 1, 1);
  tb_be(t, 28, 4);
  tb_be(t, WALL, 8);
  tb_bytes(t, id->b, MDHT_ID_LEN);
}

static void tb_node(tb *t, uint8_t kind, uint8_t fails, const mdht_addr *a,
                    const mdht_id *id) {
  tb_be(t, kind, 1);
  tb_be(t, fails, 1);
  tb_be(t, a->family, 1);
  tb_bytes(t, a->ip, a->family == MDHT_AF_INET6 ? 16 : 4);
  tb_be(t, a->port, 2);
  tb_bytes(t, id->b, MDHT_ID_LEN);
  tb_be(t, 1000, 8);
  tb_be(t, UINT64_MAX, 8);
  tb_be(t, 5000, 8);
}

/* Fixes the body length and appends the checksum. */
static void tb_finish(tb *t) {
  uint32_t body = (uint32_t)(t->n - 17);
  for (int i = 0; i < 4; i++)
    t->b[13 + i] = (uint8_t)(body >> (8 * (3 - i)));
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, t->n, t->b);
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, t->b + t->n);
  t->n += SHA256_DIGEST_SIZE;
}

/* Re-hashes a buffer after the test changed it. */
static void rehash(uint8_t *p, size_t n) {
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, n - 32, p);
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, p + n - 32);
}

static int check_tb(tb *t, mdht_state_info *info) {
  uint8_t *c = exact(t->b, t->n);
  int rc = mdht_state_check(c, t->n, info);
  free(c);
  return rc;
}

/* ---------------------------------------------------------- round trip */

static void test_round_trip(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 300, T0);
  populate_peers(&a, 20, 7, T0);
  uint32_t a_good, a_q, a_total, a_repl;
  mdht_rtable_counts(&a.node->rt, T0 + 10, &a_good, &a_q, &a_total, &a_repl);
  assert_true(a_total > 50 && a_repl > 10);
  assert_int_equal(a_good, a_total);

  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0 + 10, &buf, &len, &si);
  assert_int_equal(si.nodes, a_total);
  assert_int_equal(si.replacements, a_repl);
  assert_int_equal(si.infohashes, 20);
  assert_int_equal(si.peers, 140);
  assert_int_equal(mdht_state_check(buf, len, NULL), 0);

  mdht_id peek;
  assert_int_equal(mdht_state_peek_id(buf, len, &peek), 0);
  assert_true(mdht_id_eq(&peek, &id));

  /* restart: new process, new monotonic clock, 10 s of wall time later */
  make(&b, &peek, T1);
  mdht_state_info li;
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL + 10000, &li), 0);
  assert_int_equal(li.downtime_ms, 10000);
  assert_true(mdht_id_eq(&li.id, &id));
  assert_int_equal(li.nodes, a_total);
  assert_int_equal(li.replacements, a_repl);
  assert_int_equal(li.nodes_skipped, 0);
  assert_int_equal(li.peers, 140);
  assert_int_equal(li.infohashes, 20);
  assert_int_equal(li.peers_expired, 0);
  assert_int_equal(b.node->rt.nbuckets, a.node->rt.nbuckets);
  assert_same_entries(a.node, b.node, T0 + 10);

  /* STATE_LOADED, with the counts */
  assert_int_equal(b.events[MDHT_EV_STATE_LOADED], 1);
  assert_int_equal(b.last[MDHT_EV_STATE_LOADED].u.state.nodes,
                   a_total + a_repl);
  assert_int_equal(b.last[MDHT_EV_STATE_LOADED].u.state.peers, 140);

  /* Peers keep what they had left, minus the downtime. */
  for (uint32_t i = 0; i < 20; i++) {
    mdht_id ih = ih_n(i);
    for (uint32_t j = 0; j < 7; j++) {
      mdht_addr p = test_addr4(9, 9, (uint8_t)i, (uint8_t)j, 6000);
      mdht_peer got;
      assert_int_equal(mdht_peers_find(&b.node->peers, &ih, &p, &got), 0);
      assert_int_equal(got.expires, T1 + (TTL - 10) - 10000);
      assert_int_equal(got.seed, j % 2 == 0);
    }
  }

  /* The restarted node's own save lists the same nodes and peers. */
  uint8_t *buf2;
  size_t len2;
  mdht_state_info si2;
  save(&b, T1, &buf2, &len2, &si2);
  assert_int_equal(si2.nodes, si.nodes);
  assert_int_equal(si2.replacements, si.replacements);
  assert_int_equal(si2.peers, si.peers);
  free(buf2);
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* The public API (mdht.h): the same bytes as mdht_state_save, the saved
 * id, and a load that restores the table and the peers, or changes
 * nothing when the bytes are bad. */
static void test_public_save_load(void **state) {
  (void)state;
  fixture a, b, c;
  mdht_id id = test_id(0x5a), got;
  make(&a, &id, T0);
  populate_nodes(&a, 100, T0);
  populate_peers(&a, 3, 2, T0);
  mdht_stats sa, sb;
  mdht_node_stats(a.node, T0 + 10, &sa);
  assert_true(sa.nodes_total > 20);

  uint8_t *buf, *ref;
  size_t len, ref_len;
  assert_int_equal(mdht_node_save(a.node, T0 + 10, WALL, &buf, &len), 0);
  save(&a, T0 + 10, &ref, &ref_len, NULL);
  assert_int_equal(len, ref_len);
  assert_memory_equal(buf, ref, len);
  assert_int_equal(mdht_node_saved_id(buf, len, &got), 0);
  assert_true(mdht_id_eq(&got, &id));

  make(&b, &got, T1);
  assert_int_equal(mdht_node_load(b.node, buf, len, T1, WALL + 10000), 0);
  mdht_node_stats(b.node, T1, &sb);
  assert_int_equal(sb.nodes_total, sa.nodes_total);
  assert_int_equal(sb.replacements, sa.replacements);
  assert_int_equal(sb.nodes_good, 0); /* questionable until they answer */
  assert_int_equal(sb.peers, 6);
  assert_int_equal(b.events[MDHT_EV_STATE_LOADED], 1);
  assert_same_entries(a.node, b.node, T0 + 10);

  /* One flipped byte: refused whole, the node untouched. */
  buf[len / 2] ^= 0x40;
  assert_int_equal(mdht_node_saved_id(buf, len, &got), MDHT_ERR_CORRUPT);
  make(&c, &id, T1);
  assert_int_equal(mdht_node_load(c.node, buf, len, T1, WALL),
                   MDHT_ERR_CORRUPT);
  mdht_node_stats(c.node, T1, &sb);
  assert_int_equal(sb.nodes_total, 0);
  assert_int_equal(sb.peers, 0);
  assert_int_equal(c.events[MDHT_EV_STATE_LOADED], 0);

  assert_int_equal(mdht_node_save(NULL, T0, WALL, &buf, &len), MDHT_ERR_INVAL);
  assert_int_equal(mdht_node_load(NULL, ref, ref_len, T1, WALL),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_node_saved_id(ref, ref_len, NULL), MDHT_ERR_INVAL);
  free(buf);
  free(ref);
  unmake(&a);
  unmake(&b);
  unmake(&c);
}

/* Loaded nodes are questionable and not handed to others until they
 * answer; the saved ages do not make them good. */
static void test_loaded_nodes_questionable(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 100, T0);
  uint8_t *buf;
  size_t len;
  save(&a, T0 + 1, &buf, &len, NULL);
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL + 1, NULL), 0);

  uint32_t good, q, total;
  mdht_rtable_counts(&b.node->rt, T1, &good, &q, &total, NULL);
  assert_true(total > 0);
  assert_int_equal(good, 0);
  assert_int_equal(q, total);
  mdht_rt_entry out[8];
  mdht_id target = test_id(0x33);
  assert_int_equal(mdht_rtable_closest(&b.node->rt, &target, 0, out, 8, T1), 0);
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* Paced pings: each loaded node once, with its id; an answer makes it good
 * and visible; a timeout counts a failure. */
static void test_ping_pending(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 60, T0);
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0, &buf, &len, &si);
  uint32_t all = si.nodes + si.replacements;
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, NULL), 0);
  assert_int_equal(mdht_state_pending(b.node), all);
  assert_int_equal(mdht_state_ping_pending(b.node, T1, 0), MDHT_ERR_INVAL);

  mdht_time now = T1;
  uint32_t pinged = 0, answered = 0;
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  for (;;) {
    int n = mdht_state_ping_pending(b.node, now, 5);
    assert_true(n >= 0 && n <= 5);
    if (n == 0) break;
    pinged += (uint32_t)n;
    assert_int_equal(mdht_state_pending(b.node), all - pinged);
    uint8_t pkt[MDHT_MAX_PACKET];
    mdht_addr to;
    int got = 0, len2;
    while ((len2 = mdht_node_next_packet(b.node, &to, pkt, sizeof pkt)) > 0) {
      mdht_krpc_msg q;
      assert_int_equal(
          mdht_krpc_decode(&q, pkt, (size_t)len2, toks, MDHT_KRPC_TOKENS), 0);
      assert_int_equal(q.y, 'q');
      assert_int_equal(q.method, MDHT_M_PING);
      got++;
      /* every other node answers, with the id it is known by */
      mdht_rt_entry *e = mdht_rtable_find(&b.node->rt, &to);
      if (!e || (pinged + (uint32_t)got) % 2) continue;
      mdht_krpc_msg r;
      uint8_t tid[64];
      memcpy(tid, q.t.p, q.t.len);
      mdht_krpc_msg_init(&r, 'r');
      r.t.p = tid;
      r.t.len = q.t.len;
      r.id = e->id;
      uint8_t out[MDHT_MAX_PACKET];
      int rn = mdht_krpc_encode(&r, out, sizeof out);
      assert_true(rn > 0);
      mdht_node_recv(b.node, &to, out, (size_t)rn, now + 20);
      answered++;
    }
    assert_int_equal(got, n);
    now += 50; /* the caller's pace */
  }
  assert_int_equal(pinged, all);
  assert_int_equal(mdht_state_pending(b.node), 0);
  assert_true(answered > 0);

  uint32_t good;
  mdht_rtable_counts(&b.node->rt, now, &good, NULL, NULL, NULL);
  assert_int_equal(good, answered);
  mdht_rt_entry out[8];
  mdht_id target = test_id(0x33);
  assert_true(mdht_rtable_closest(&b.node->rt, &target, 0, out, 8, now) > 0);

  /* The others time out: a failure each, not good. */
  mdht_node_tick(b.node, now + 60000);
  uint32_t q, total;
  mdht_rtable_counts(&b.node->rt, now + 60000, &good, &q, &total, NULL);
  assert_int_equal(good, answered);
  for (uint32_t bi = 0; bi < b.node->rt.nbuckets; bi++) {
    const mdht_rt_bucket *bk = &b.node->rt.buckets[bi];
    for (uint32_t i = 0; i < bk->n; i++)
      if (bk->nodes[i].last_reply == 0) assert_int_equal(bk->nodes[i].fails, 1);
  }
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* With the transaction table full, pinging waits (AGAIN) and the nodes
 * stay pending. */
static void test_ping_pending_blocked(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 40, T0);
  uint8_t *buf;
  size_t len;
  save(&a, T0, &buf, &len, NULL);
  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.max_txns = 3;
  make_cfg(&b, &cfg, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, NULL), 0);
  uint32_t all = mdht_state_pending(b.node);
  assert_int_equal(mdht_state_ping_pending(b.node, T1, 10), 3);
  assert_int_equal(mdht_state_ping_pending(b.node, T1, 10), MDHT_ERR_AGAIN);
  assert_int_equal(mdht_state_pending(b.node), all - 3);
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* ---------------------------------------------------------------- peers */

static void test_expired_peers_dropped(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  /* 10 peers announced at T0, 10 more 20 minutes later */
  populate_peers(&a, 1, 10, T0);
  mdht_id ih = ih_n(77);
  for (uint32_t j = 0; j < 10; j++) {
    mdht_addr p = test_addr4(7, 7, 7, (uint8_t)j, 7000);
    assert_int_equal(
        mdht_peers_add(&a.node->peers, &ih, &p, false, T0 + 20 * 60000), 0);
  }
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0 + 20 * 60000, &buf, &len, &si);
  assert_int_equal(si.peers, 20);

  /* 15 minutes down: the first 10 had 10 minutes left, now gone. */
  make(&b, &id, T1);
  mdht_state_info li;
  assert_int_equal(
      mdht_state_load(b.node, buf, len, T1, WALL + 15 * 60000, &li), 0);
  assert_int_equal(li.peers, 10);
  assert_int_equal(li.peers_expired, 10);
  assert_int_equal(li.infohashes, 1);
  assert_int_equal(b.node->peers.npeers, 10);
  mdht_addr got[16];
  assert_int_equal(mdht_peers_get(&b.node->peers, &ih, 0, got, 16, T1), 10);
  assert_int_equal(
      mdht_peers_get(&b.node->peers, &(mdht_id){0}, 0, got, 16, T1), 0);
  mdht_id ih0 = ih_n(0);
  assert_int_equal(mdht_peers_get(&b.node->peers, &ih0, 0, got, 16, T1), 0);
  unmake(&b);

  /* A day down: everything gone. */
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL + 86400000, &li),
                   0);
  assert_int_equal(li.peers, 0);
  assert_int_equal(li.peers_expired, 20);
  assert_int_equal(b.node->peers.npeers, 0);
  unmake(&b);

  /* A wall clock that went backwards counts as no downtime. */
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL - 3600000, &li),
                   0);
  assert_int_equal(li.downtime_ms, 0);
  assert_int_equal(li.peers, 20);
  unmake(&b);

  /* A shorter TTL now caps what the file promised. */
  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.peer_ttl_ms = 60000;
  make_cfg(&b, &cfg, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, &li), 0);
  mdht_peer pr;
  mdht_addr p0 = test_addr4(7, 7, 7, 0, 7000);
  assert_int_equal(mdht_peers_find(&b.node->peers, &ih, &p0, &pr), 0);
  assert_int_equal(pr.expires, T1 + 60000);
  unmake(&b);

  free(buf);
  unmake(&a);
}

/* Peers already expired in the store (not yet purged) are not saved. */
static void test_expired_not_saved(void **state) {
  (void)state;
  fixture a;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_peers(&a, 3, 4, T0);
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0 + TTL, &buf, &len, &si);
  assert_int_equal(si.peers, 0);
  assert_int_equal(si.infohashes, 0);
  free(buf);
  unmake(&a);
}

/* ------------------------------------------------------------ bad files */

static void small_file(uint8_t **buf, size_t *len) {
  fixture a;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 3, T0);
  populate_peers(&a, 1, 1, T0);
  save(&a, T0, buf, len, NULL);
  unmake(&a);
}

static void test_truncated_every_length(void **state) {
  (void)state;
  uint8_t *buf;
  size_t len;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_nodes(&a, 40, T0);
  populate_peers(&a, 3, 3, T0);
  save(&a, T0, &buf, &len, NULL);
  make(&b, &id, T1);
  for (size_t n = 0; n < len; n++) {
    uint8_t *c = exact(buf, n);
    mdht_state_info info;
    assert_int_equal(mdht_state_check(c, n, &info), MDHT_ERR_CORRUPT);
    assert_non_null(info.why);
    mdht_id x;
    assert_int_equal(mdht_state_peek_id(c, n, &x), MDHT_ERR_CORRUPT);
    assert_int_equal(mdht_state_load(b.node, c, n, T1, WALL, NULL),
                     MDHT_ERR_CORRUPT);
    free(c);
  }
  /* nothing was loaded from any of them */
  assert_int_equal(table_total(b.node), 0);
  assert_int_equal(b.node->peers.npeers, 0);
  assert_int_equal(b.events[MDHT_EV_STATE_LOADED], 0);
  free(buf);
  unmake(&a);
  unmake(&b);
}

static void test_every_bit_flipped(void **state) {
  (void)state;
  uint8_t *buf;
  size_t len;
  small_file(&buf, &len);
  assert_true(len < 400);
  fixture b;
  mdht_id id = test_id(0x5a);
  make(&b, &id, T1);
  for (size_t bit = 0; bit < len * 8; bit++) {
    uint8_t *c = exact(buf, len);
    c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    int rc = mdht_state_check(c, len, NULL);
    /* the version and flags fields are refused as versions */
    if (bit / 8 >= 9 && bit / 8 < 13)
      assert_int_equal(rc, MDHT_ERR_VERSION);
    else
      assert_int_equal(rc, MDHT_ERR_CORRUPT);
    assert_int_equal(mdht_state_load(b.node, c, len, T1, WALL, NULL), rc);
    free(c);
  }
  assert_int_equal(table_total(b.node), 0);
  free(buf);
  unmake(&b);
}

static void test_empty_and_foreign(void **state) {
  (void)state;
  mdht_state_info info;
  assert_int_equal(mdht_state_check(NULL, 0, &info), MDHT_ERR_CORRUPT);
  assert_string_equal(info.why, "empty file");
  uint8_t *c = exact(NULL, 0);
  assert_int_equal(mdht_state_check(c, 0, &info), MDHT_ERR_CORRUPT);
  free(c);

  static const struct {
    const char *name;
    const char *bytes;
  } foreign[] = {
      {"bencode", "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"},
      {"png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR"},
      {"text", "hello, world\n"},
      {"near miss", "MDHTSTATF\0\1\0\0\0\0\0\0"},
      {"one byte", "M"},
  };
  for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
    size_t n = strlen(foreign[i].bytes);
    if (strcmp(foreign[i].name, "near miss") == 0) n = 17;
    c = exact((const uint8_t *)foreign[i].bytes, n);
    int rc = mdht_state_check(c, n, &info);
    assert_int_equal(rc, MDHT_ERR_CORRUPT);
    if (n >= 9) assert_string_equal(info.why, "not a mdht state file");
    free(c);
  }

  /* A big file of the right magic but garbage after: corrupt. */
  uint8_t *buf;
  size_t len;
  small_file(&buf, &len);
  uint8_t *big = calloc(1, 100000);
  memcpy(big, buf, 17);
  assert_int_equal(mdht_state_check(big, 100000, &info), MDHT_ERR_CORRUPT);
  free(big);
  free(buf);
}

static void test_future_version(void **state) {
  (void)state;
  uint8_t *buf;
  size_t len;
  small_file(&buf, &len);
  mdht_state_info info;
  mdht_id x;

  uint8_t *c = exact(buf, len);
  c[10] = 2; /* version 2, checksum left stale */
  assert_int_equal(mdht_state_check(c, len, &info), MDHT_ERR_VERSION);
  assert_int_equal(info.version, 2);
  rehash(c, len); /* and with a valid one */
  assert_int_equal(mdht_state_check(c, len, &info), MDHT_ERR_VERSION);
  assert_int_equal(mdht_state_peek_id(c, len, &x), MDHT_ERR_VERSION);
  /* a newer format may be framed differently: any length is refused as a
   * version, not as corrupt */
  assert_int_equal(mdht_state_check(c, 20, &info), MDHT_ERR_VERSION);
  free(c);

  c = exact(buf, len);
  c[9] = 0xff; /* version 0xff01 */
  assert_int_equal(mdht_state_check(c, len, &info), MDHT_ERR_VERSION);
  free(c);

  c = exact(buf, len);
  c[12] = 1; /* an unknown flag */
  rehash(c, len);
  assert_int_equal(mdht_state_check(c, len, &info), MDHT_ERR_VERSION);
  assert_string_equal(info.why, "unsupported flags");
  free(c);

  c = exact(buf, len);
  c[10] = 0; /* version 0 */
  rehash(c, len);
  assert_int_equal(mdht_state_check(c, len, &info), MDHT_ERR_VERSION);
  free(c);
  free(buf);
}

/* Behind a valid checksum: every structural rule. */
static void test_malformed_sections(void **state) {
  (void)state;
  tb t;
  mdht_state_info info;
  mdht_id id = test_id(0x5a);
  mdht_id nid = test_id(0x01);
  mdht_addr a = addr_n(1);

  /* minimal valid: META only */
  tb_header(&t, 1, 0);
  tb_meta(&t, &id);
  tb_finish(&t);
  assert_int_equal(check_tb(&t, &info), 0);
  assert_true(mdht_id_eq(&info.id, &id));
  assert_int_equal(info.saved_wall_ms, WALL);

  /* unknown section types are skipped, before and after the others */
  tb_header(&t, 1, 0);
  tb_meta(&t, &id);
  tb_be(&t, 200, 1);
  tb_be(&t, 3, 4);
  tb_bytes(&t, "xyz", 3);
  tb_be(&t, 2, 1);
  tb_be(&t, 4 + 53, 4);
  tb_be(&t, 1, 4);
  tb_node(&t, 0, 0, &a, &nid);
  tb_be(&t, 201, 1);
  tb_be(&t, 0, 4);
  tb_finish(&t);
  assert_int_equal(check_tb(&t, &info), 0);
  assert_int_equal(info.nodes, 1);

  /* each of these must be refused, for its own reason */
  static const char *const whys[] = {
      "no META section",
      "duplicate section",
      "first section is not META",
      "malformed META section",
      "malformed section",
      "malformed routing entry",
      "routing section length mismatch",
      "unknown address family",
      "unknown routing entry kind",
      "duplicate section",
      "info-hash without peers",
      "bad seed flag",
      "malformed peer entry",
      "malformed section",
  };
  for (int k = 0; k < 14; k++) {
    tb_header(&t, 1, 0);
    switch (k) {
    case 0: /* no META */
      break;
    case 1: /* META twice */
      tb_meta(&t, &id);
      tb_meta(&t, &id);
      break;
    case 2: /* META not first */
      tb_be(&t, 200, 1);
      tb_be(&t, 0, 4);
      tb_meta(&t, &id);
      break;
    case 3: /* META of the wrong size */
      tb_be(&t, 1, 1);
      tb_be(&t, 27, 4);
      tb_be(&t, WALL, 8);
      tb_bytes(&t, id.b, 19);
      break;
    case 4: /* section longer than the body */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 1000, 4);
      tb_be(&t, 0, 4);
      break;
    case 5: /* node count says 2, one entry */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 4 + 53, 4);
      tb_be(&t, 2, 4);
      tb_node(&t, 0, 0, &a, &nid);
      break;
    case 6: /* node count says 0, one entry: trailing bytes */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 4 + 53, 4);
      tb_be(&t, 0, 4);
      tb_node(&t, 0, 0, &a, &nid);
      break;
    case 7: { /* family 5 */
      mdht_addr bad = a;
      bad.family = 5;
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 4 + 53, 4);
      tb_be(&t, 1, 4);
      tb_node(&t, 0, 0, &bad, &nid);
      break;
    }
    case 8: /* kind 2 */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 4 + 53, 4);
      tb_be(&t, 1, 4);
      tb_node(&t, 2, 0, &a, &nid);
      break;
    case 9: /* two NODES sections */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 4, 4);
      tb_be(&t, 0, 4);
      tb_be(&t, 2, 1);
      tb_be(&t, 4, 4);
      tb_be(&t, 0, 4);
      break;
    case 10: /* info-hash with 0 peers */
      tb_meta(&t, &id);
      tb_be(&t, 3, 1);
      tb_be(&t, 4 + 24, 4);
      tb_be(&t, 1, 4);
      tb_bytes(&t, id.b, 20);
      tb_be(&t, 0, 4);
      break;
    case 11: /* seed flag 2 */
      tb_meta(&t, &id);
      tb_be(&t, 3, 1);
      tb_be(&t, 4 + 24 + 16, 4);
      tb_be(&t, 1, 4);
      tb_bytes(&t, id.b, 20);
      tb_be(&t, 1, 4);
      tb_be(&t, 4, 1);
      tb_bytes(&t, a.ip, 4);
      tb_be(&t, 80, 2);
      tb_be(&t, 2, 1);
      tb_be(&t, 1000, 8);
      break;
    case 12: /* peer count beyond the section */
      tb_meta(&t, &id);
      tb_be(&t, 3, 1);
      tb_be(&t, 4 + 24, 4);
      tb_be(&t, 1, 4);
      tb_bytes(&t, id.b, 20);
      tb_be(&t, 1000000, 4);
      break;
    case 13: /* a section header cut short at the end of the body */
      tb_meta(&t, &id);
      tb_be(&t, 2, 1);
      tb_be(&t, 0, 2);
      break;
    }
    tb_finish(&t);
    assert_int_equal(check_tb(&t, &info), MDHT_ERR_CORRUPT);
    assert_non_null(info.why);
    assert_string_equal(info.why, whys[k]);
  }

  /* trailing bytes after the checksum */
  tb_header(&t, 1, 0);
  tb_meta(&t, &id);
  tb_finish(&t);
  tb_be(&t, 0, 1);
  assert_int_equal(check_tb(&t, &info), MDHT_ERR_CORRUPT);
  assert_string_equal(info.why, "trailing bytes");
}

/* Entries the node cannot use are skipped, not fatal: bad, other family,
 * martian, duplicates; an entry the live table knows is left alone. */
static void test_skipped_entries(void **state) {
  (void)state;
  tb t;
  mdht_id id = test_id(0x5a);
  mdht_addr v4 = addr_n(1), v4b = addr_n(2), v4c = addr_n(3);
  mdht_addr mart = test_addr4(0, 0, 0, 0, 0);
  mdht_addr v6 = {.family = MDHT_AF_INET6, .port = 80};
  v6.ip[0] = 0x20;
  v6.ip[1] = 0x01;
  v6.ip[15] = 1;
  mdht_id n1 = test_id(0x01), n2 = test_id(0x02), n3 = test_id(0x03);
  mdht_id n4 = test_id(0x04), n5 = test_id(0x05);

  tb_header(&t, 1, 0);
  tb_meta(&t, &id);
  tb_be(&t, 2, 1);
  tb_be(&t, 4 + 53 * 5 + 65, 4);
  tb_be(&t, 6, 4);
  tb_node(&t, 0, 0, &v4, &n1);  /* ok */
  tb_node(&t, 0, 3, &v4b, &n2); /* bad: 3 failures */
  tb_node(&t, 0, 0, &mart, &n3);
  tb_node(&t, 1, 0, &v4, &n1);  /* duplicate of the first */
  tb_node(&t, 0, 0, &v6, &n4);  /* other family */
  tb_node(&t, 1, 2, &v4c, &n5); /* candidate with 2 failures: kept */
  tb_finish(&t);

  fixture b;
  make(&b, &id, T1);
  mdht_state_info info;
  assert_int_equal(mdht_state_load(b.node, t.b, t.n, T1, WALL, &info), 0);
  assert_int_equal(info.nodes_skipped, 4);
  /* the candidate found a free slot in the bucket */
  assert_int_equal(info.nodes + info.replacements, 2);
  mdht_rt_entry *e = mdht_rtable_find(&b.node->rt, &v4c);
  assert_non_null(e);
  assert_int_equal(e->fails, 2);
  unmake(&b);

  /* Loading into a node that already knows n1: its entry is untouched. */
  make(&b, &id, T1);
  mdht_rtable_heard(&b.node->rt, &n1, &v4, MDHT_RT_HEARD_REPLY, T1, NULL);
  assert_int_equal(mdht_state_load(b.node, t.b, t.n, T1 + 5, WALL, &info), 0);
  e = mdht_rtable_find(&b.node->rt, &v4);
  assert_non_null(e);
  assert_int_equal(e->last_reply, T1);
  assert_int_equal(mdht_rtable_state(&b.node->rt, e, T1 + 5), MDHT_RT_GOOD);
  assert_int_equal(mdht_state_pending(b.node), 1); /* v4c only */
  unmake(&b);
}

/* A node id other than the saved one: nodes are placed by the node's id,
 * the saved peers come along. */
static void test_other_id(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a), other = test_id(0xa5);
  make(&a, &id, T0);
  populate_nodes(&a, 50, T0);
  populate_peers(&a, 2, 2, T0);
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0, &buf, &len, &si);
  make(&b, &other, T1);
  mdht_state_info li;
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, &li), 0);
  assert_true(mdht_id_eq(&li.id, &id));
  assert_true(li.nodes > 0);
  assert_int_equal(li.nodes + li.replacements + li.nodes_skipped,
                   si.nodes + si.replacements);
  assert_int_equal(li.peers, 4);
  free(buf);
  unmake(&a);
  unmake(&b);
}

static void test_empty_node_and_saved_event(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  save(&a, T0, &buf, &len, &si);
  assert_int_equal(si.nodes + si.replacements + si.peers, 0);
  assert_int_equal(len, 17 + 5 + 28 + 5 + 4 + 5 + 4 + 32);
  assert_memory_equal(buf, "MDHTSTATE\0\1\0\0", 13);
  mdht_state_publish_saved(a.node, &si, T0);
  assert_int_equal(a.events[MDHT_EV_STATE_SAVED], 1);
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, NULL), 0);
  assert_int_equal(mdht_state_pending(b.node), 0);
  assert_int_equal(mdht_state_ping_pending(b.node, T1, 5), 0);
  assert_int_equal(mdht_state_save(NULL, T0, WALL, &buf, &len, NULL),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_state_load(NULL, buf, len, T1, WALL, NULL),
                   MDHT_ERR_INVAL);
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* peers.c additions used by the state code. */
static int count_group(const mdht_id *ih, const mdht_peer *peers, size_t n,
                       void *user) {
  (void)ih, (void)peers;
  size_t *total = user;
  *total += n;
  return *total >= 6 ? 7 : 0;
}

static void test_peers_foreach_and_add_until(void **state) {
  (void)state;
  fixture a;
  mdht_id id = test_id(0x5a);
  make(&a, &id, T0);
  populate_peers(&a, 4, 3, T0);
  size_t total = 0;
  /* stops when the callback says so, and returns what it said */
  assert_int_equal(mdht_peers_foreach(&a.node->peers, count_group, &total), 7);
  assert_int_equal(total, 6);

  mdht_peer_store *ps = &a.node->peers;
  mdht_id ih = ih_n(0);
  mdht_addr p = test_addr4(9, 9, 0, 0, 6000); /* stored, expires T0+TTL */
  mdht_peer got;
  assert_int_equal(mdht_peers_add_until(ps, &ih, &p, false, T0, T0),
                   MDHT_ERR_RANGE);
  /* never shortens an existing record */
  assert_int_equal(mdht_peers_add_until(ps, &ih, &p, false, T0 + 5, T0), 0);
  assert_int_equal(mdht_peers_find(ps, &ih, &p, &got), 0);
  assert_int_equal(got.expires, T0 + TTL);
  /* new peer, own expiry; capped at the TTL */
  mdht_addr q = test_addr4(9, 9, 0, 99, 6000);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &q, true, T0 + 5, T0), 0);
  assert_int_equal(mdht_peers_find(ps, &ih, &q, &got), 0);
  assert_int_equal(got.expires, T0 + 5);
  assert_true(ps->next_expiry <= T0 + 5);
  mdht_addr r = test_addr4(9, 9, 0, 98, 6000);
  assert_int_equal(
      mdht_peers_add_until(ps, &ih, &r, true, T0 + 10 * (mdht_time)TTL, T0), 0);
  assert_int_equal(mdht_peers_find(ps, &ih, &r, &got), 0);
  assert_int_equal(got.expires, T0 + TTL);
  mdht_addr m = test_addr4(0, 0, 0, 0, 0);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &m, true, T0 + 5, T0),
                   MDHT_ERR_ADDR);
  /* expiry drops the short-lived one on time */
  assert_int_equal(mdht_peers_expire(ps, T0 + 5), 1);
  assert_int_equal(mdht_peers_find(ps, &ih, &q, NULL), MDHT_ERR_NOTFOUND);
  unmake(&a);

  /* At max_peers_per_ih, only a peer that outlives the soonest gets in. */
  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.max_peers_per_ih = 2;
  make_cfg(&a, &cfg, &id, T0);
  ps = &a.node->peers;
  mdht_addr x = test_addr4(9, 1, 1, 1, 1), y = test_addr4(9, 1, 1, 2, 1);
  mdht_addr z = test_addr4(9, 1, 1, 3, 1);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &x, false, T0 + 100, T0), 0);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &y, false, T0 + 200, T0), 0);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &z, false, T0 + 50, T0),
                   MDHT_ERR_FULL);
  assert_int_equal(mdht_peers_add_until(ps, &ih, &z, false, T0 + 150, T0), 0);
  assert_int_equal(mdht_peers_find(ps, &ih, &x, NULL), MDHT_ERR_NOTFOUND);
  assert_int_equal(ps->npeers, 2);
  unmake(&a);
}

/* ------------------------------------------------------------ BEP 44 */

/* Puts a signed mutable item (salt "s") and an immutable one into a's
 * store; returns their targets. */
static void put_items(fixture *f, mdht_time now, mdht_id *mt, mdht_id *it) {
  uint8_t seed[32] = {7}, pk[32], sk[64], sig[64];
  mdht_item_keypair(seed, pk, sk);
  const char *v = "l1:ai2ee";
  assert_int_equal(mdht_item_sign(sk, (const uint8_t *)"s", 1, 3,
                                  (const uint8_t *)v, 8, sig),
                   0);
  mdht_item_mutable_target(pk, (const uint8_t *)"s", 1, mt);
  mdht_item_put p = {.v = (const uint8_t *)v,
                     .vlen = 8,
                     .is_mutable = true,
                     .k = pk,
                     .sig = sig,
                     .salt = (const uint8_t *)"s",
                     .salt_len = 1,
                     .seq = 3};
  mdht_addr src = addr_n(1);
  assert_int_equal(mdht_items_put(&f->node->items, mt, &p, &src, now), 0);
  mdht_item_put q = {.v = (const uint8_t *)"5:hello", .vlen = 7};
  mdht_item_immutable_target(q.v, q.vlen, it);
  src = addr_n(2);
  assert_int_equal(mdht_items_put(&f->node->items, it, &q, &src, now), 0);
}

/* Items come back after a restart with the lifetime they had left, less
 * the downtime; their source still counts against its quota. */
static void test_items_round_trip(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5b), mt, it;
  make(&a, &id, T0);
  put_items(&a, T0, &mt, &it);
  uint8_t *buf;
  size_t len;
  mdht_state_info si;
  mdht_time later = T0 + 60000;
  save(&a, later, &buf, &len, &si);
  assert_int_equal(si.items, 2);
  make(&b, &id, T1);
  mdht_state_info li;
  /* saved WALL, loaded 10 s later */
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL + 10000, &li), 0);
  assert_int_equal(li.items, 2);
  assert_int_equal(li.items_skipped, 0);
  const mdht_item *m = mdht_items_get(&b.node->items, &mt, T1);
  assert_non_null(m);
  assert_true(m->is_mutable);
  assert_int_equal(m->seq, 3);
  assert_int_equal(m->salt_len, 1);
  assert_memory_equal(m->v, "l1:ai2ee", 8);
  mdht_time ttl = a.node->cfg.item_ttl_ms;
  assert_true(m->expires == T1 + ttl - 60000 - 10000);
  const mdht_item *im = mdht_items_get(&b.node->items, &it, T1);
  assert_non_null(im);
  assert_memory_equal(im->v, "5:hello", 7);
  mdht_addr src = addr_n(2);
  assert_int_equal(mdht_items_of_ip(&b.node->items, &src), 1);
  assert_int_equal(mdht_state_check(buf, len, &si), 0);
  assert_int_equal(si.items, 2);
  free(buf);
  unmake(&b);
  /* A downtime longer than the lifetime left: skipped, not loaded. */
  make(&b, &id, T1);
  save(&a, later, &buf, &len, NULL);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL + ttl, &li), 0);
  assert_int_equal(li.items, 0);
  assert_int_equal(li.items_skipped, 2);
  assert_int_equal(b.node->items.n, 0);
  free(buf);
  unmake(&a);
  unmake(&b);
}

/* An item whose signature or target does not hold (a file edited behind
 * a valid checksum) is skipped; the rest of the file loads. A truncated
 * item record is corrupt. */
static void test_items_checked_on_load(void **state) {
  (void)state;
  fixture a, b;
  mdht_id id = test_id(0x5c), mt, it;
  make(&a, &id, T0);
  put_items(&a, T0, &mt, &it);
  uint8_t *buf;
  size_t len;
  save(&a, T0, &buf, &len, NULL);
  /* The mutable value "l1:ai2ee" -> "l1:bi2ee": the signature fails. */
  uint8_t *v = memmem(buf, len, "l1:ai2ee", 8);
  assert_non_null(v);
  v[3] = 'b';
  rehash(buf, len);
  make(&b, &id, T1);
  mdht_state_info li;
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, &li), 0);
  assert_int_equal(li.items, 1);
  assert_int_equal(li.items_skipped, 1);
  assert_null(mdht_items_get(&b.node->items, &mt, T1));
  assert_non_null(mdht_items_get(&b.node->items, &it, T1));
  unmake(&b);
  /* The immutable value changed: its target no longer matches. */
  v[3] = 'a';
  uint8_t *h = memmem(buf, len, "5:hello", 7);
  assert_non_null(h);
  h[2] = 'j';
  rehash(buf, len);
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, &li), 0);
  assert_int_equal(li.items, 1);
  assert_null(mdht_items_get(&b.node->items, &it, T1));
  unmake(&b);
  /* A value length of 0 behind a valid checksum: corrupt, nothing
   * applied. */
  h[-2] = 0;
  h[-1] = 0;
  rehash(buf, len);
  make(&b, &id, T1);
  assert_int_equal(mdht_state_load(b.node, buf, len, T1, WALL, &li),
                   MDHT_ERR_CORRUPT);
  assert_int_equal(b.node->items.n, 0);
  free(buf);
  unmake(&a);
  unmake(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_public_save_load),
      cmocka_unit_test(test_loaded_nodes_questionable),
      cmocka_unit_test(test_ping_pending),
      cmocka_unit_test(test_ping_pending_blocked),
      cmocka_unit_test(test_expired_peers_dropped),
      cmocka_unit_test(test_expired_not_saved),
      cmocka_unit_test(test_truncated_every_length),
      cmocka_unit_test(test_every_bit_flipped),
      cmocka_unit_test(test_empty_and_foreign),
      cmocka_unit_test(test_future_version),
      cmocka_unit_test(test_malformed_sections),
      cmocka_unit_test(test_skipped_entries),
      cmocka_unit_test(test_other_id),
      cmocka_unit_test(test_empty_node_and_saved_event),
      cmocka_unit_test(test_peers_foreach_and_add_until),
      cmocka_unit_test(test_items_round_trip),
      cmocka_unit_test(test_items_checked_on_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
