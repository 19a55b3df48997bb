/* BEP 32 dual stack: two nodes, one per address family, paired with
 * mdht_node_pair. On virtual time: datagrams in, datagrams out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "id.h"
#include "krpc.h"
#include "node.h"
#include "state.h"
#include "item.h"
#include "testutil.h"

typedef struct pair {
  uint64_t seed;
  mdht_node *n4, *n6;
  mdht_time now;
  /* the last datagram drained, decoded */
  mdht_addr to;
  uint8_t pkt[MDHT_MAX_PACKET];
  int len;
  mdht_krpc_msg msg;
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  /* the last result reported */
  int results;
  mdht_result res;
  mdht_addr peers[MDHT_RESULT_PEERS];
} pair;

/* 2a0N:M::1, a public address of its own /48 for each (n, m). */
static mdht_addr addr6(uint8_t n, uint8_t m, uint16_t port) {
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  a.ip[0] = 0x2a;
  a.ip[1] = n;
  a.ip[2] = 0;
  a.ip[3] = m;
  a.ip[15] = 1;
  a.port = port;
  return a;
}

static mdht_node *make_node(pair *p, const mdht_addr *bound) {
  mdht_callbacks cb = {.random = test_random, .user = &p->seed};
  mdht_config c;
  mdht_config_default(&c);
  mdht_id id = test_id(0x80);
  mdht_node *n;
  assert_int_equal(mdht_node_new(&n, &c, &cb, &id, bound, p->now), 0);
  return n;
}

static pair *make(bool paired) {
  pair *p = calloc(1, sizeof *p);
  p->seed = 11;
  p->now = 1000000;
  mdht_addr b4 = test_addr4(203, 0, 113, 1, 6881);
  mdht_addr b6 = addr6(0x01, 1, 6881);
  p->n4 = make_node(p, &b4);
  p->n6 = make_node(p, &b6);
  if (paired) assert_int_equal(mdht_node_pair(p->n4, p->n6), 0);
  return p;
}

static int setup(void **state) {
  *state = make(true);
  return 0;
}

static int teardown(void **state) {
  pair *p = *state;
  mdht_node_del(p->n4);
  mdht_node_del(p->n6);
  free(p);
  return 0;
}

/* A node that has answered us, in `n`'s table. */
static void known(pair *p, mdht_node *n, uint8_t idfill, const mdht_addr *a) {
  mdht_id id = test_id(idfill);
  assert_true(
      mdht_rtable_heard(&n->rt, &id, a, MDHT_RT_HEARD_REPLY, p->now, NULL) > 0);
}

/* Drains `n`'s queue; keeps the first datagram (decoded) to `to` (or any,
 * with NULL). Returns true if one was found. */
static bool next_to(pair *p, mdht_node *n, const mdht_addr *to) {
  for (;;) {
    p->len = mdht_node_next_packet(n, &p->to, p->pkt, sizeof p->pkt);
    if (p->len <= 0) return false;
    if (to && !mdht_addr_eq(&p->to, to)) continue;
    assert_int_equal(mdht_krpc_decode(&p->msg, p->pkt, (size_t)p->len, p->toks,
                                      MDHT_KRPC_TOKENS),
                     0);
    return true;
  }
}

/* Sends `q` to `n` from `from` and decodes the answer to it. */
static void ask(pair *p, mdht_node *n, const mdht_addr *from,
                mdht_krpc_msg *q) {
  uint8_t buf[MDHT_MAX_PACKET];
  int len = mdht_krpc_encode(q, buf, sizeof buf);
  assert_true(len > 0);
  assert_int_equal(mdht_node_recv(n, from, buf, (size_t)len, p->now), 0);
  do {
    assert_true(next_to(p, n, from));
  } while (p->msg.y == 'q'); /* a confirmation ping of ours: skip */
}

static mdht_krpc_msg *query(mdht_method m, uint8_t idfill, const mdht_id *t,
                            uint8_t want) {
  static mdht_krpc_msg q; /* test-only scratch */
  static mdht_id id;
  id = test_id(idfill);
  mdht_krpc_msg_init(&q, 'q');
  q.method = m;
  q.id = id;
  q.t.p = (const uint8_t *)"tt";
  q.t.len = 2;
  if (t) q.target = *t;
  q.want = want;
  return &q;
}

static void seed_tables(pair *p) {
  for (uint8_t i = 0; i < 3; i++) {
    mdht_addr a4 = test_host4(i, 1000 + i);
    mdht_addr a6 = addr6(0x10 + i, 2, 2000 + i);
    known(p, p->n4, (uint8_t)(0x10 + i), &a4);
    known(p, p->n6, (uint8_t)(0x20 + i), &a6);
  }
}

/* want n6 on the IPv4 socket is answered from the IPv6 table (38-byte
 * entries), want n4 on the IPv6 socket from the IPv4 table, both lists
 * for both, and without want only the socket's family. */
static void test_want_both_ways(void **state) {
  pair *p = *state;
  seed_tables(p);
  mdht_id t = test_id(0x33);
  mdht_addr c4 = test_addr4(198, 51, 100, 9, 4000);
  mdht_addr c6 = addr6(0x40, 9, 4000);

  ask(p, p->n4, &c4, query(MDHT_M_FIND_NODE, 0x55, &t, MDHT_WANT_N6));
  assert_int_equal(p->msg.y, 'r');
  assert_int_equal(p->msg.nodes.len, 0);
  assert_int_equal(p->msg.nodes6.len, 3 * MDHT_COMPACT_NODE6);
  mdht_id id;
  mdht_addr a;
  assert_int_equal(
      mdht_node_from_compact(&id, &a, p->msg.nodes6.p, MDHT_COMPACT_NODE6), 0);
  assert_int_equal(a.family, MDHT_AF_INET6);

  ask(p, p->n6, &c6, query(MDHT_M_FIND_NODE, 0x56, &t, MDHT_WANT_N4));
  assert_int_equal(p->msg.nodes.len, 3 * MDHT_COMPACT_NODE4);
  assert_int_equal(p->msg.nodes6.len, 0);

  ask(p, p->n4, &c4,
      query(MDHT_M_GET_PEERS, 0x57, &t, MDHT_WANT_N4 | MDHT_WANT_N6));
  assert_int_equal(p->msg.nodes.len, 3 * MDHT_COMPACT_NODE4);
  assert_int_equal(p->msg.nodes6.len, 3 * MDHT_COMPACT_NODE6);

  ask(p, p->n6, &c6, query(MDHT_M_FIND_NODE, 0x58, &t, 0));
  assert_int_equal(p->msg.nodes.len, 0);
  assert_int_equal(p->msg.nodes6.len, 3 * MDHT_COMPACT_NODE6);
}

/* Without a sibling, want n6 on IPv4 still gets no list (as before). */
static void test_unpaired_want_n6_empty(void **state) {
  pair *p = make(false);
  *state = p;
  seed_tables(p);
  mdht_id t = test_id(0x33);
  mdht_addr c4 = test_addr4(198, 51, 100, 9, 4000);
  ask(p, p->n4, &c4, query(MDHT_M_FIND_NODE, 0x55, &t, MDHT_WANT_N6));
  assert_int_equal(p->msg.nodes.len, 0);
  assert_int_equal(p->msg.nodes6.len, 0);
}

/* Announces through one socket, get_peers through the other: one store,
 * each answer with the values of the asker's family, 6 or 18 bytes. */
static void announce_via(pair *p, mdht_node *n, const mdht_addr *from,
                         const mdht_id *ih) {
  ask(p, n, from, query(MDHT_M_GET_PEERS, 0x61, ih, 0));
  uint8_t tok[64];
  size_t tl = p->msg.token.len;
  memcpy(tok, p->msg.token.p, tl);
  mdht_krpc_msg *q = query(MDHT_M_ANNOUNCE_PEER, 0x61, ih, 0);
  q->implied_port = true;
  q->token.p = tok;
  q->token.len = tl;
  ask(p, n, from, q);
  assert_int_equal(p->msg.y, 'r');
}

static void test_shared_store(void **state) {
  pair *p = *state;
  mdht_id ih = test_id(0x44);
  mdht_addr c4 = test_addr4(198, 51, 100, 9, 4000);
  mdht_addr c6 = addr6(0x40, 9, 4001);
  announce_via(p, p->n6, &c6, &ih);
  announce_via(p, p->n4, &c4, &ih);
  /* one store: both peers, whichever node is asked */
  mdht_stats s4, s6;
  mdht_node_stats(p->n4, p->now, &s4);
  mdht_node_stats(p->n6, p->now, &s6);
  assert_int_equal(s4.peers, 2);
  assert_int_equal(s6.peers, 2);

  mdht_addr other6 = addr6(0x41, 9, 5000);
  ask(p, p->n6, &other6, query(MDHT_M_GET_PEERS, 0x62, &ih, 0));
  assert_int_equal(p->msg.nvalues, 1);
  mdht_bytes vals[2];
  assert_int_equal(mdht_krpc_values(&p->msg, vals, 2), 1);
  assert_int_equal(vals[0].len, MDHT_COMPACT_PEER6);
  mdht_addr got;
  assert_int_equal(mdht_addr_from_compact(&got, vals[0].p, vals[0].len), 0);
  assert_true(mdht_addr_eq(&got, &c6));

  mdht_addr other4 = test_addr4(198, 51, 100, 10, 5000);
  ask(p, p->n4, &other4, query(MDHT_M_GET_PEERS, 0x63, &ih, 0));
  assert_int_equal(p->msg.nvalues, 1);
  assert_int_equal(mdht_krpc_values(&p->msg, vals, 2), 1);
  assert_int_equal(vals[0].len, MDHT_COMPACT_PEER4);
  assert_int_equal(mdht_addr_from_compact(&got, vals[0].p, vals[0].len), 0);
  assert_true(mdht_addr_eq(&got, &c4));
}

/* BEP 44 items are shared as peers are: an item put over IPv6 is served
 * over IPv4, and both nodes count it once. */
static void test_shared_items(void **state) {
  pair *p = *state;
  static const uint8_t v[] = "12:Hello World!";
  mdht_id target;
  mdht_item_immutable_target(v, sizeof v - 1, &target);
  mdht_addr c6 = addr6(0x42, 9, 4002);
  ask(p, p->n6, &c6, query(MDHT_M_GET, 0x64, &target, 0));
  assert_int_equal(p->msg.y, 'r');
  uint8_t tok[64];
  size_t tl = p->msg.token.len;
  assert_true(tl > 0 && tl <= sizeof tok);
  memcpy(tok, p->msg.token.p, tl);
  mdht_krpc_msg *q = query(MDHT_M_PUT, 0x64, NULL, 0);
  q->token = (mdht_bytes){tok, tl};
  q->item_v = (mdht_bytes){v, sizeof v - 1};
  ask(p, p->n6, &c6, q);
  assert_int_equal(p->msg.y, 'r');

  mdht_addr c4 = test_addr4(198, 51, 100, 11, 4003);
  ask(p, p->n4, &c4, query(MDHT_M_GET, 0x65, &target, 0));
  assert_int_equal(p->msg.y, 'r');
  assert_int_equal(p->msg.item_v.len, sizeof v - 1);
  assert_memory_equal(p->msg.item_v.p, v, sizeof v - 1);
  mdht_stats s4, s6;
  mdht_node_stats(p->n4, p->now, &s4);
  mdht_node_stats(p->n6, p->now, &s6);
  assert_int_equal(s4.items, 1);
  assert_int_equal(s6.items, 1);
}

static void on_result(const mdht_result *r, void *user) {
  pair *p = user;
  p->results++;
  p->res = *r;
  memcpy(p->peers, r->peers, r->npeers * sizeof *r->peers);
  p->res.peers = p->peers;
}

/* Answers the next lookup query `n` sends with `values` (and no nodes);
 * returns the queried address. */
static mdht_addr answer_next(pair *p, mdht_node *n, const mdht_addr *value,
                             uint8_t want_expected) {
  assert_true(next_to(p, n, NULL));
  assert_int_equal(p->msg.y, 'q');
  assert_int_equal(p->msg.want, want_expected);
  mdht_addr to = p->to;
  uint8_t t[16];
  memcpy(t, p->msg.t.p, p->msg.t.len);
  mdht_krpc_msg r;
  mdht_krpc_msg_init(&r, 'r');
  r.method = p->msg.method;
  r.t.p = t;
  r.t.len = p->msg.t.len;
  /* the ids of seed_tables */
  r.id = test_id(to.family == MDHT_AF_INET ? 0x10 : 0x20);
  r.token.p = (const uint8_t *)"tok";
  r.token.len = 3;
  uint8_t v[MDHT_COMPACT_PEER6];
  mdht_bytes vb[1];
  if (value) {
    vb[0].p = v;
    vb[0].len = mdht_addr_to_compact(value, v);
    r.values = vb;
    r.nvalues = 1;
  }
  uint8_t buf[MDHT_MAX_PACKET];
  int len = mdht_krpc_encode(&r, buf, sizeof buf);
  assert_true(len > 0);
  mdht_node_recv(n, &to, buf, (size_t)len, p->now);
  return to;
}

/* A get_peers on the IPv4 node of a pair runs in both families, its
 * queries ask for both lists, and one report carries the peers of both
 * and the nodes of both. */
static void test_lookup_runs_in_both(void **state) {
  pair *p = *state;
  mdht_addr a4 = test_host4(0, 1000);
  mdht_addr a6 = addr6(0x10, 2, 2000);
  known(p, p->n4, 0x10, &a4);
  known(p, p->n6, 0x20, &a6);
  mdht_id ih = test_id(0x44);
  int64_t id = mdht_node_get_peers(p->n4, &ih, on_result, p, p->now);
  assert_true(id > 0);
  mdht_addr peer4 = test_addr4(198, 51, 100, 20, 6000);
  mdht_addr peer6 = addr6(0x50, 1, 6000);
  const uint8_t both = MDHT_WANT_N4 | MDHT_WANT_N6;
  answer_next(p, p->n4, &peer4, both);
  assert_int_equal(p->results, 0); /* the IPv6 half still runs */
  answer_next(p, p->n6, &peer6, both);
  for (int i = 0; i < 50 && p->results == 0; i++) {
    p->now += 100;
    mdht_node_tick(p->n4, p->now);
    mdht_node_tick(p->n6, p->now);
  }
  assert_int_equal(p->results, 1);
  assert_int_equal(p->res.id, (uint32_t)id);
  assert_true(p->res.ok);
  assert_int_equal(p->res.npeers, 2);
  bool s4 = false, s6 = false;
  for (size_t i = 0; i < p->res.npeers; i++) {
    s4 |= mdht_addr_eq(&p->res.peers[i], &peer4);
    s6 |= mdht_addr_eq(&p->res.peers[i], &peer6);
  }
  assert_true(s4 && s6);
  assert_int_equal(p->res.nnodes, 2);
  assert_int_equal(p->res.nodes[0].addr.family, MDHT_AF_INET); /* ours first */
  assert_int_equal(p->res.nodes[1].addr.family, MDHT_AF_INET6);
  assert_int_equal(p->res.responses, 2);
}

/* The IPv6 half may end first: its peers are kept until the IPv4 half
 * has written its own result, then merged. */
static void test_lookup_twin_ends_first(void **state) {
  pair *p = *state;
  mdht_addr a4 = test_host4(0, 1000);
  mdht_addr a6 = addr6(0x10, 2, 2000);
  known(p, p->n4, 0x10, &a4);
  known(p, p->n6, 0x20, &a6);
  mdht_id ih = test_id(0x44);
  assert_true(mdht_node_get_peers(p->n4, &ih, on_result, p, p->now) > 0);
  mdht_addr peer4 = test_addr4(198, 51, 100, 20, 6000);
  mdht_addr peer6 = addr6(0x50, 1, 6000);
  const uint8_t both = MDHT_WANT_N4 | MDHT_WANT_N6;
  answer_next(p, p->n6, &peer6, both);
  for (int i = 0; i < 5; i++) {
    p->now += 100;
    mdht_node_tick(p->n6, p->now);
  }
  assert_int_equal(p->results, 0); /* the IPv4 half still runs */
  answer_next(p, p->n4, &peer4, both);
  for (int i = 0; i < 50 && p->results == 0; i++) {
    p->now += 100;
    mdht_node_tick(p->n4, p->now);
    mdht_node_tick(p->n6, p->now);
  }
  assert_int_equal(p->results, 1);
  assert_int_equal(p->res.npeers, 2);
  assert_true(mdht_addr_eq(&p->res.peers[0], &peer4));
  assert_true(mdht_addr_eq(&p->res.peers[1], &peer6));
  assert_int_equal(p->res.nnodes, 2);
}

/* With an empty IPv4 table, the pair's lookup still runs (in IPv6); and
 * a cancel stops both halves. */
static void test_one_side_empty_and_cancel(void **state) {
  pair *p = *state;
  mdht_addr a6 = addr6(0x10, 2, 2000);
  known(p, p->n6, 0x20, &a6);
  mdht_id ih = test_id(0x44);
  int64_t id = mdht_node_get_peers(p->n4, &ih, on_result, p, p->now);
  assert_true(id > 0);
  assert_int_equal(p->n6->lookups.n_active, 1);
  mdht_node_cancel(p->n4, id);
  assert_int_equal(p->n6->lookups.n_active, 0);
  assert_null(p->n4->ops);
  assert_null(p->n6->ops);
  for (int i = 0; i < 100; i++) {
    p->now += 100;
    mdht_node_tick(p->n4, p->now);
    mdht_node_tick(p->n6, p->now);
  }
  assert_int_equal(p->results, 0);
  /* unpaired and empty: the usual error */
  pair *q = make(false);
  assert_int_equal(mdht_node_get_peers(q->n4, &ih, on_result, q, q->now),
                   MDHT_ERR_AGAIN);
  teardown((void **)&q);
}

/* A single-family node's queries carry no want, as before pairing. */
static void test_unpaired_query_no_want(void **state) {
  pair *p = make(false);
  *state = p;
  mdht_addr a4 = test_host4(0, 1000);
  known(p, p->n4, 0x10, &a4);
  mdht_id ih = test_id(0x44);
  assert_true(mdht_node_get_peers(p->n4, &ih, on_result, p, p->now) > 0);
  answer_next(p, p->n4, NULL, 0);
}

/* Nodes of the other family in an answer are pinged from the sibling
 * (not more than two per answer), and enter its table when they answer. */
static void test_other_family_nodes_offered(void **state) {
  pair *p = *state;
  mdht_addr a4 = test_host4(0, 1000);
  known(p, p->n4, 0x10, &a4);
  mdht_id ih = test_id(0x44);
  assert_true(mdht_node_find_node(p->n4, &ih, on_result, p, p->now) > 0);
  assert_true(next_to(p, p->n4, &a4));
  uint8_t t[16];
  memcpy(t, p->msg.t.p, p->msg.t.len);
  mdht_krpc_msg r;
  mdht_krpc_msg_init(&r, 'r');
  r.method = MDHT_M_FIND_NODE;
  r.t.p = t;
  r.t.len = p->msg.t.len;
  r.id = test_id(0x10);
  uint8_t n6[3 * MDHT_COMPACT_NODE6];
  mdht_addr h[3];
  for (uint8_t i = 0; i < 3; i++) {
    mdht_id hid = test_id((uint8_t)(0x70 + i));
    h[i] = addr6(0x60 + i, 1, 7000);
    mdht_node_to_compact(&hid, &h[i], n6 + i * MDHT_COMPACT_NODE6);
  }
  r.nodes6.p = n6;
  r.nodes6.len = sizeof n6;
  uint8_t buf[MDHT_MAX_PACKET];
  int len = mdht_krpc_encode(&r, buf, sizeof buf);
  mdht_node_recv(p->n4, &a4, buf, (size_t)len, p->now);
  /* the sibling pings the first two */
  assert_true(next_to(p, p->n6, NULL));
  assert_true(mdht_addr_eq(&p->to, &h[0]));
  assert_int_equal(p->msg.method, MDHT_M_PING);
  uint8_t t0[16];
  size_t t0len = p->msg.t.len;
  memcpy(t0, p->msg.t.p, t0len);
  assert_true(next_to(p, p->n6, NULL));
  assert_true(mdht_addr_eq(&p->to, &h[1]));
  assert_false(next_to(p, p->n6, NULL));
  assert_int_equal(p->n6->hint_pings, 2);
  /* h[0] answers: it is in the IPv6 table */
  mdht_krpc_msg_init(&r, 'r');
  r.method = MDHT_M_PING;
  r.t.p = t0;
  r.t.len = t0len;
  r.id = test_id(0x70);
  len = mdht_krpc_encode(&r, buf, sizeof buf);
  mdht_node_recv(p->n6, &h[0], buf, (size_t)len, p->now);
  assert_non_null(mdht_rtable_find(&p->n6->rt, &h[0]));
  assert_int_equal(p->n6->hint_pings, 1);
}

/* Pairing rules. */
static void test_pair_errors(void **state) {
  pair *p = make(false);
  *state = p;
  assert_int_equal(mdht_node_pair(p->n4, p->n4), MDHT_ERR_INVAL);
  mdht_addr b4 = test_addr4(203, 0, 113, 2, 6881);
  mdht_node *other4 = make_node(p, &b4);
  assert_int_equal(mdht_node_pair(p->n4, other4), MDHT_ERR_INVAL);
  mdht_node_del(other4);
  mdht_callbacks cb = {.random = test_random, .user = &p->seed};
  mdht_id id2 = test_id(0x81);
  mdht_addr b6 = addr6(0x02, 1, 6881);
  mdht_node *diff;
  assert_int_equal(mdht_node_new(&diff, NULL, &cb, &id2, &b6, p->now), 0);
  assert_int_equal(mdht_node_pair(p->n4, diff), MDHT_ERR_INVAL);
  mdht_node_del(diff);
  assert_int_equal(mdht_node_pair(p->n4, p->n6), 0);
  assert_ptr_equal(mdht_node_sibling(p->n4), p->n6);
  assert_int_equal(mdht_node_pair(p->n4, p->n6), MDHT_ERR_STATE);
  /* deleting one leaves the other whole and alone */
  mdht_node_del(p->n6);
  p->n6 = NULL;
  assert_null(mdht_node_sibling(p->n4));
}

/* One state file holds both tables; a pair loads each into its node,
 * and a lone IPv4 node loads its own and skips the IPv6 entries. */
static void test_state_both_tables(void **state) {
  pair *p = *state;
  seed_tables(p);
  mdht_id ih = test_id(0x44);
  mdht_addr c6 = addr6(0x40, 9, 4001);
  announce_via(p, p->n6, &c6, &ih);
  uint8_t *buf;
  size_t len;
  mdht_state_info info;
  assert_int_equal(mdht_state_save(p->n4, p->now, 5000, &buf, &len, &info), 0);
  /* 3 + 3, and the IPv6 announcer (it queried us) */
  assert_int_equal(info.nodes, 7);
  assert_int_equal(info.peers, 1);

  pair *q = make(true);
  assert_int_equal(mdht_state_load(q->n4, buf, len, q->now, 5000, &info), 0);
  assert_int_equal(info.nodes, 7);
  assert_int_equal(mdht_state_pending(q->n4), 7);
  mdht_stats s;
  mdht_node_stats(q->n6, q->now, &s);
  assert_int_equal(s.nodes_total, 4);
  assert_int_equal(s.peers, 1);
  /* the pings of loaded nodes go out from both sockets */
  assert_int_equal(mdht_state_ping_pending(q->n4, q->now, 10), 7);
  assert_int_equal(mdht_state_pending(q->n4), 0);
  teardown((void **)&q);

  pair *lone = make(false);
  assert_int_equal(mdht_state_load(lone->n4, buf, len, lone->now, 5000, &info),
                   0);
  assert_int_equal(info.nodes, 3);
  teardown((void **)&lone);
  free(buf);
}

static int teardown_any(void **state) {
  pair *p = *state;
  if (p) teardown(state);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_want_both_ways, setup, teardown),
      cmocka_unit_test_teardown(test_unpaired_want_n6_empty, teardown_any),
      cmocka_unit_test_setup_teardown(test_shared_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_items, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup_runs_in_both, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_lookup_twin_ends_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_one_side_empty_and_cancel, setup,
                                      teardown),
      cmocka_unit_test_teardown(test_unpaired_query_no_want, teardown_any),
      cmocka_unit_test_setup_teardown(test_other_family_nodes_offered, setup,
                                      teardown),
      cmocka_unit_test_teardown(test_pair_errors, teardown_any),
      cmocka_unit_test_setup_teardown(test_state_both_tables, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
