/* The node as a whole, on virtual time: datagrams in, datagrams out. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "bep42.h"
#include "id.h"
#include "krpc.h"
#include "node.h"
#include "bloom.h"
#include "item.h"
#include "testutil.h"

typedef struct fixture {
  uint64_t seed;
  mdht_node *node;
  mdht_addr bound;
  mdht_time now;
  int sub; /* the fixture's subscription */
  uint32_t events[MDHT_EV_COUNT_];
  mdht_event last[MDHT_EV_COUNT_];
  mdht_event_type seq[64]; /* the first events, in the order heard */
  size_t nseq;
  /* the last datagram drained */
  mdht_addr to;
  uint8_t pkt[MDHT_MAX_PACKET];
  int len;
  mdht_krpc_msg msg;
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
} fixture;

static void on_event(const mdht_event *ev, void *user) {
  fixture *f = user;
  f->events[ev->type]++;
  f->last[ev->type] = *ev;
  if (f->nseq < sizeof f->seq / sizeof f->seq[0]) f->seq[f->nseq++] = ev->type;
}

static fixture *make(const mdht_config *cfg) {
  fixture *f = calloc(1, sizeof *f);
  f->seed = 7;
  f->now = 1000000;
  f->bound = test_addr4(127, 0, 0, 1, 6881);
  mdht_callbacks cb = {.random = test_random, .user = &f->seed};
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  if (cfg) c = *cfg;
  mdht_id id = test_id(0x80);
  assert_int_equal(mdht_node_new(&f->node, &c, &cb, &id, &f->bound, f->now), 0);
  f->sub = mdht_node_subscribe(f->node, on_event, f);
  assert_true(f->sub >= 0);
  return f;
}

static int setup(void **state) {
  *state = make(NULL);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  mdht_node_del(f->node);
  free(f);
  return 0;
}

/* Sends a query from `from` and returns the node's first datagram back to
 * `from`, decoded into f->msg (other datagrams, e.g. confirmation pings,
 * are skipped). Returns false if none. */
static bool exchange(fixture *f, const mdht_addr *from, mdht_krpc_msg *q) {
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(q, buf, sizeof buf);
  assert_true(n > 0);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
  for (;;) {
    f->len = mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt);
    if (f->len <= 0) return false;
    if (mdht_addr_eq(&f->to, from)) {
      assert_int_equal(mdht_krpc_decode(&f->msg, f->pkt, (size_t)f->len,
                                        f->toks, MDHT_KRPC_TOKENS),
                       0);
      if (f->msg.y != 'q') return true;
    }
  }
}

static void drain(fixture *f) {
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
  }
}

static mdht_krpc_msg *query(mdht_method method, const mdht_id *id,
                            const char *t) {
  static mdht_krpc_msg q; /* test-only scratch */
  mdht_krpc_msg_init(&q, 'q');
  q.method = method;
  q.id = *id;
  q.t.p = (const uint8_t *)t;
  q.t.len = strlen(t);
  return &q;
}

static void test_ping_response_fields(void **state) {
  fixture *f = *state;
  mdht_addr from = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  assert_true(exchange(f, &from, query(MDHT_M_PING, &them, "ab")));
  assert_int_equal(f->msg.y, 'r');
  assert_int_equal(f->msg.t.len, 2);
  assert_memory_equal(f->msg.t.p, "ab", 2);
  assert_memory_equal(f->msg.id.b, mdht_node_id(f->node)->b, 20);
  assert_true(f->msg.has_ip);
  assert_true(mdht_addr_eq(&f->msg.ip, &from));
  assert_int_equal(f->msg.v.len, 4);
  assert_int_equal(f->events[MDHT_EV_QUERY_RECEIVED], 1);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 1);
}

/* A node that queries us gets a confirmation ping; once it answers, it is
 * good and handed out in find_node responses. */
static void test_confirm_then_find_node(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id aid = test_id(0x11);
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(query(MDHT_M_PING, &aid, "p1"), buf, sizeof buf);
  mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);

  /* the response, then a ping to a */
  bool saw_ping = false;
  mdht_krpc_msg ping;
  uint8_t tid[16];
  size_t tidlen = 0;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(mdht_krpc_decode(&ping, f->pkt, (size_t)f->len, f->toks,
                                      MDHT_KRPC_TOKENS),
                     0);
    if (ping.y == 'q') {
      assert_int_equal(ping.method, MDHT_M_PING);
      assert_true(mdht_addr_eq(&f->to, &a));
      memcpy(tid, ping.t.p, ping.t.len);
      tidlen = ping.t.len;
      saw_ping = true;
    }
  }
  assert_true(saw_ping);

  /* Before a answers, find_node does not hand it out. */
  mdht_addr b = test_addr4(127, 0, 0, 3, 5001);
  mdht_id bid = test_id(0x22);
  mdht_krpc_msg *q = query(MDHT_M_FIND_NODE, &bid, "fn");
  q->target = aid;
  assert_true(exchange(f, &b, q));
  /* the key is there, empty, as BEP 5 and libtorrent have it */
  assert_int_equal(f->msg.nodes.len, 0);
  assert_non_null(f->msg.nodes.p);
  assert_non_null(memmem(f->pkt, (size_t)f->len, "5:nodes0:", 9));

  /* a answers the ping */
  mdht_krpc_msg r;
  mdht_krpc_msg_init(&r, 'r');
  r.t.p = tid;
  r.t.len = tidlen;
  r.id = aid;
  n = mdht_krpc_encode(&r, buf, sizeof buf);
  f->now += 30;
  mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_RECEIVED], 1);
  assert_int_equal(f->last[MDHT_EV_RESPONSE_RECEIVED].u.response.rtt_ms, 30);
  drain(f);

  q = query(MDHT_M_FIND_NODE, &bid, "fm");
  q->target = aid;
  assert_true(exchange(f, &b, q));
  assert_int_equal(f->msg.nodes.len, 26);
  mdht_id got;
  mdht_addr gota;
  assert_int_equal(mdht_node_from_compact(&got, &gota, f->msg.nodes.p, 26), 0);
  assert_true(mdht_id_eq(&got, &aid));
  assert_true(mdht_addr_eq(&gota, &a));

  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_true(st.nodes_good >= 1);
}

static void test_query_timeout_on_virtual_time(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 5, 6000);
  assert_int_equal(mdht_node_ping(f->node, &a, f->now), 0);
  drain(f);
  assert_int_equal(f->events[MDHT_EV_QUERY_SENT], 1);
  /* The node wakes at least by the query's deadline (earlier for its
   * routing maintenance). */
  mdht_time due = f->now + 5000;
  assert_true(mdht_node_next_deadline(f->node) <= due);
  mdht_node_tick(f->node, due - 1);
  assert_int_equal(f->events[MDHT_EV_QUERY_TIMEOUT], 0);
  mdht_node_tick(f->node, due);
  assert_int_equal(f->events[MDHT_EV_QUERY_TIMEOUT], 1);
  mdht_stats st;
  mdht_node_stats(f->node, due, &st);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(st.txns_outstanding, 0);
}

static mdht_bytes get_token(fixture *f, const mdht_addr *from,
                            const mdht_id *ih, uint8_t *store) {
  mdht_id me = test_id(0x33);
  mdht_krpc_msg *q = query(MDHT_M_GET_PEERS, &me, "gp");
  q->target = *ih;
  assert_true(exchange(f, from, q));
  assert_int_equal(f->msg.y, 'r');
  assert_true(f->msg.token.len > 0);
  memcpy(store, f->msg.token.p, f->msg.token.len);
  return (mdht_bytes){store, f->msg.token.len};
}

static char announce(fixture *f, const mdht_addr *from, const mdht_id *ih,
                     mdht_bytes token, int64_t port, bool implied) {
  mdht_id me = test_id(0x33);
  mdht_krpc_msg *q = query(MDHT_M_ANNOUNCE_PEER, &me, "an");
  q->target = *ih;
  q->token = token;
  q->port = port;
  q->implied_port = implied;
  assert_true(exchange(f, from, q));
  return f->msg.y;
}

static void test_token_lifetime(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  mdht_id ih = test_id(0x44);
  uint8_t store[64];
  mdht_bytes tok = get_token(f, &a, &ih, store);
  assert_int_equal(announce(f, &a, &ih, tok, 1234, false), 'r');

  /* One rotation later the token is still good. */
  f->now += 5 * 60 * 1000;
  mdht_node_tick(f->node, f->now);
  assert_int_equal(announce(f, &a, &ih, tok, 1234, false), 'r');
  /* After a second rotation it is refused with 203. */
  f->now += 5 * 60 * 1000;
  mdht_node_tick(f->node, f->now);
  assert_int_equal(announce(f, &a, &ih, tok, 1234, false), 'e');
  assert_int_equal(f->msg.ecode, 203);
  assert_int_equal(f->events[MDHT_EV_TOKEN_REJECTED], 1);
}

static void test_announce_then_values(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  mdht_id ih = test_id(0x45);
  uint8_t store[64];
  mdht_bytes tok = get_token(f, &a, &ih, store);
  assert_int_equal(announce(f, &a, &ih, tok, 0, false), 'e'); /* port 0 */
  assert_int_equal(f->msg.ecode, 203);
  assert_int_equal(announce(f, &a, &ih, tok, 0, true), 'r'); /* implied */
  get_token(f, &a, &ih, store);
  assert_int_equal(f->msg.nvalues, 1);
  mdht_addr p;
  mdht_bytes v0;
  assert_int_equal(mdht_krpc_values(&f->msg, &v0, 1), 1);
  assert_int_equal(mdht_addr_from_compact(&p, v0.p, 6), 0);
  assert_true(mdht_addr_eq(&p, &a)); /* implied port: the source port */
  assert_int_equal(f->events[MDHT_EV_PEER_STORED], 1);
}

static size_t memory_parts(const mdht_memory *m) {
  return m->node + m->routing + m->replacements + m->index + m->transactions +
         m->lookups + m->peers + m->items + m->limits + m->other;
}

/* mdht_node_memory: the parts add up to the total, and each grows with
 * what the node holds (routing entries, peers), not with its limits. */
/* mdht_node_trim gives back the drained send queue's buffer (kept by
 * the node between ticks for speed), and the node sends again after it. */
static void test_trim_gives_queue_back(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(10, 9, 0, 1, 6881);
  mdht_id id = test_id(0x21);
  assert_true(exchange(f, &a, query(MDHT_M_PING, &id, "tq")));
  drain(f);
  assert_non_null(f->node->outq.buf);
  size_t cap = f->node->outq.cap;
  assert_true(cap >= MDHT_MAX_PACKET);
  mdht_memory m0, m1;
  mdht_node_memory(f->node, &m0);
  mdht_node_trim(f->node);
  assert_null(f->node->outq.buf);
  mdht_node_memory(f->node, &m1);
  assert_int_equal(m0.other - m1.other, cap);
  mdht_node_trim(NULL); /* harmless */
  assert_true(exchange(f, &a, query(MDHT_M_PING, &id, "tr")));
}

static void test_memory_follows_content(void **state) {
  fixture *f = *state;
  mdht_memory m0, m1, m2;
  mdht_node_memory(f->node, &m0);
  assert_int_equal(m0.total, memory_parts(&m0));
  assert_int_equal(m0.entries, 0);
  assert_int_equal(m0.node, sizeof(mdht_node));
  /* One bucket of 2 slots (a block grows with its nodes); no candidates;
   * no lookup running. */
  assert_int_equal(m0.routing,
                   sizeof(mdht_rt_bucket) + 2 * sizeof(mdht_rt_entry));
  assert_int_equal(m0.replacements, 0);
  /* Far below what max_txns (4096 slots) would take. */
  assert_true(m0.transactions < 1024);
  assert_true(m0.total < 16384);

  /* 200 nodes, each on its own IP, query us: they fill buckets (which
   * split) and replacement lists. */
  for (uint32_t i = 0; i < 200; i++) {
    mdht_addr a = test_addr4(10, 1, (uint8_t)(i / 250), (uint8_t)(i + 1), 6881);
    mdht_id id;
    for (int k = 0; k < MDHT_ID_LEN; k++)
      id.b[k] = (uint8_t)(i * 37 + k * 11 + (i >> 3));
    id.b[0] = (uint8_t)(i * 131);
    assert_true(exchange(f, &a, query(MDHT_M_PING, &id, "mp")));
  }
  drain(f);
  mdht_node_memory(f->node, &m1);
  assert_int_equal(m1.total, memory_parts(&m1));
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(m1.entries, st.nodes_total + st.replacements);
  assert_true(m1.entries > 8);
  /* Node slots follow the nodes: at least one each, at most twice as
   * many (blocks double), never more than k a bucket. */
  size_t slots = (m1.routing - st.buckets * sizeof(mdht_rt_bucket)) /
                 sizeof(mdht_rt_entry);
  assert_int_equal(m1.routing, st.buckets * sizeof(mdht_rt_bucket) +
                                   slots * sizeof(mdht_rt_entry));
  assert_true(slots >= st.nodes_total);
  assert_true(slots <= 2 * st.nodes_total + 2 * st.buckets);
  assert_true(slots <= st.buckets * f->node->cfg.k);
  assert_true(m1.replacements >= st.replacements * sizeof(mdht_rt_entry));
  assert_true(m1.index >= m1.entries * sizeof(uint32_t));
  assert_int_equal(m1.peers, m0.peers);

  /* Announced peers show in the peer store's part. */
  for (uint32_t i = 0; i < 50; i++) {
    mdht_addr a = test_addr4(10, 2, 0, (uint8_t)(i + 1), 7000);
    mdht_id ih = test_id((uint8_t)(0x80 + i));
    uint8_t store[64];
    mdht_bytes tok = get_token(f, &a, &ih, store);
    assert_int_equal(announce(f, &a, &ih, tok, 7001, false), 'r');
  }
  mdht_node_memory(f->node, &m2);
  assert_int_equal(m2.total, memory_parts(&m2));
  assert_true(m2.peers >= m1.peers + 50 * sizeof(mdht_peer));
}

/* With far more peers stored than fit, the response stays within 1,400
 * bytes and still carries as many values as fit. */
static void test_get_peers_size_bound(void **state) {
  fixture *f = *state;
  mdht_id ih = test_id(0x46);
  uint8_t store[64];
  for (int i = 0; i < 400; i++) {
    mdht_addr a = test_addr4(127, 1, (uint8_t)(i >> 8), (uint8_t)i, 7000);
    mdht_bytes tok = get_token(f, &a, &ih, store);
    assert_int_equal(announce(f, &a, &ih, tok, 1000 + i, false), 'r');
  }
  mdht_addr a = test_addr4(127, 0, 0, 8, 7000);
  get_token(f, &a, &ih, store);
  assert_true(f->len <= MDHT_RESPONSE_LIMIT);
  assert_true(f->msg.nvalues >= 100);
  assert_true(f->msg.nvalues < 400);
  /* More would fit in 1,400 bytes: max_values (100) is the bound. */
  assert_int_equal(f->msg.nvalues, 100);
  f->node->cfg.max_values = 30;
  get_token(f, &a, &ih, store);
  assert_int_equal(f->msg.nvalues, 30);
}

/* BEP 33: a scrape gets the filters of the stored seeds and downloaders,
 * within the size bound; noseed fills the values with downloaders first;
 * an unknown info-hash or a plain get_peers gets no filters. */
static void announce_as(fixture *f, const mdht_addr *from, const mdht_id *ih,
                        bool seed) {
  uint8_t store[64];
  mdht_bytes tok = get_token(f, from, ih, store);
  mdht_id me = test_id(0x33);
  mdht_krpc_msg *q = query(MDHT_M_ANNOUNCE_PEER, &me, "an");
  q->target = *ih;
  q->token = tok;
  q->port = 6881;
  q->seed = seed;
  assert_true(exchange(f, from, q));
  assert_int_equal(f->msg.y, 'r');
}

static void scrape_query(fixture *f, const mdht_id *ih, bool scrape,
                         bool noseed) {
  mdht_id me = test_id(0x34);
  mdht_krpc_msg *q = query(MDHT_M_GET_PEERS, &me, "sc");
  q->target = *ih;
  q->scrape = scrape;
  q->noseed = noseed;
  mdht_addr asker = test_addr4(127, 0, 0, 9, 7000);
  assert_true(exchange(f, &asker, q));
  assert_int_equal(f->msg.y, 'r');
  assert_true(f->len <= MDHT_RESPONSE_LIMIT);
}

static void test_get_peers_scrape(void **state) {
  fixture *f = *state;
  mdht_id ih = test_id(0x47);
  enum { SEEDS = 40, LEECH = 120 };
  for (int i = 0; i < SEEDS + LEECH; i++) {
    mdht_addr a = test_addr4(127, 2, (uint8_t)(i >> 8), (uint8_t)i, 7000);
    announce_as(f, &a, &ih, i < SEEDS);
  }
  /* A second announce of one seed from a new port is the same host. */
  mdht_addr again = test_addr4(127, 2, 0, 0, 7001);
  announce_as(f, &again, &ih, true);

  scrape_query(f, &ih, true, false);
  assert_int_equal(f->msg.bfsd.len, MDHT_BLOOM_BYTES);
  assert_int_equal(f->msg.bfpe.len, MDHT_BLOOM_BYTES);
  mdht_bloom sd, pe;
  assert_int_equal(mdht_bloom_from_bytes(&sd, f->msg.bfsd.p, f->msg.bfsd.len),
                   0);
  assert_int_equal(mdht_bloom_from_bytes(&pe, f->msg.bfpe.p, f->msg.bfpe.len),
                   0);
  double es = mdht_bloom_estimate(&sd), ep = mdht_bloom_estimate(&pe);
  assert_true(es > SEEDS * 0.85 && es < SEEDS * 1.15);
  assert_true(ep > LEECH * 0.85 && ep < LEECH * 1.15);
  mdht_addr s0 = test_addr4(127, 2, 0, 0, 1), l0 = test_addr4(127, 2, 0, 99, 1);
  assert_true(mdht_bloom_test(&sd, &s0));
  assert_true(mdht_bloom_test(&pe, &l0));
  /* The filters took room from the values, never the size bound. */
  assert_true(f->msg.nvalues > 0 && f->msg.nvalues < 100);

  /* noseed: with room for fewer values than downloaders, none is a seed. */
  f->node->cfg.max_values = 50;
  scrape_query(f, &ih, false, true);
  assert_int_equal(f->msg.bfsd.len, 0);
  assert_int_equal(f->msg.nvalues, 50);
  mdht_bytes vs[MDHT_KRPC_MAX_VALUES];
  assert_int_equal(mdht_krpc_values(&f->msg, vs, MDHT_KRPC_MAX_VALUES),
                   f->msg.nvalues);
  for (size_t i = 0; i < f->msg.nvalues; i++) {
    mdht_addr p;
    assert_int_equal(mdht_addr_from_compact(&p, vs[i].p, 6), 0);
    assert_true(p.ip[2] * 256 + p.ip[3] >= SEEDS);
  }
  /* An info-hash we hold nothing for: no filters. */
  mdht_id other = test_id(0x48);
  scrape_query(f, &other, true, false);
  assert_int_equal(f->msg.bfsd.len, 0);
  assert_int_equal(f->msg.bfpe.len, 0);
}

static void test_bad_input_is_counted(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 9, 9000);
  static const char *bad[] = {"",
                              "d",
                              "i1e",
                              "le",
                              "x",
                              "d1:rd2:id20:aaaaaaaaaaaaaaaaaaaae1:t2:aa1:y1:re",
                              "d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    mdht_node_recv(f->node, &a, (const uint8_t *)bad[i], strlen(bad[i]),
                   f->now);
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.dropped[MDHT_DROP_PARSE], 3); /* "", "d", "x" */
  assert_int_equal(st.dropped[MDHT_DROP_PROTO], 3); /* i1e, le, short id */
  assert_int_equal(st.dropped[MDHT_DROP_UNMATCHED], 1);
  /* The short-id query had a readable t: it got a 203. */
  assert_int_equal(st.errors_out, 1);
  f->len = mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt);
  assert_true(f->len > 0);
  assert_int_equal(mdht_krpc_decode(&f->msg, f->pkt, (size_t)f->len, f->toks,
                                    MDHT_KRPC_TOKENS),
                   0);
  assert_int_equal(f->msg.y, 'e');
  assert_int_equal(f->msg.ecode, 203);

  static uint8_t big[MDHT_MAX_DATAGRAM + 1];
  mdht_node_recv(f->node, &a, big, sizeof big, f->now);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.dropped[MDHT_DROP_TOO_BIG], 1);

  mdht_addr martian = test_addr4(0, 0, 0, 0, 9000);
  mdht_node_recv(f->node, &martian, (const uint8_t *)"de", 2, f->now);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.dropped[MDHT_DROP_ADDR], 1);
}

static void test_unknown_method_204(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  mdht_krpc_msg *q = query(MDHT_M_UNKNOWN, &them, "zz");
  q->q.p = (const uint8_t *)"vote";
  q->q.len = 4;
  assert_true(exchange(f, &a, q));
  assert_int_equal(f->msg.y, 'e');
  assert_int_equal(f->msg.ecode, 204);
}

static void test_rate_limit(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.rate_limit_per_sec = 10;
  c.rate_limit_burst = 20;
  fixture *f = make(&c);
  *state = f;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(query(MDHT_M_PING, &them, "rl"), buf, sizeof buf);
  for (int i = 0; i < 30; i++)
    mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 20);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 10);
  /* Another IP is not affected. */
  mdht_addr b = test_addr4(127, 0, 0, 3, 5000);
  mdht_node_recv(f->node, &b, buf, (size_t)n, f->now);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 21);
  /* A second later, 10 more tokens. */
  f->now += 1000;
  for (int i = 0; i < 15; i++)
    mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 31);
}

static void test_read_only(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.read_only = true;
  fixture *f = make(&c);
  *state = f;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  assert_false(exchange(f, &a, query(MDHT_M_PING, &them, "ro")));
  assert_int_equal(f->events[MDHT_EV_DATAGRAM_DROPPED], 1);
  /* Its own queries carry ro=1 (BEP 43). */
  assert_int_equal(mdht_node_ping(f->node, &a, f->now), 0);
  f->len = mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt);
  assert_true(f->len > 0);
  assert_int_equal(mdht_krpc_decode(&f->msg, f->pkt, (size_t)f->len, f->toks,
                                    MDHT_KRPC_TOKENS),
                   0);
  assert_true(f->msg.ro);
}

/* A query marked ro=1 is answered, but its sender never enters the
 * table (and so is not pinged to confirm it). */
static void test_ro_sender_not_added(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  mdht_krpc_msg *q = query(MDHT_M_PING, &them, "r1");
  q->ro = true;
  assert_true(exchange(f, &a, q));
  assert_int_equal(f->events[MDHT_EV_QUERY_SENT], 0);
  assert_int_equal(f->events[MDHT_EV_NODE_ADDED], 0);
  q = query(MDHT_M_PING, &them, "r2");
  assert_true(exchange(f, &a, q));
  assert_int_equal(f->events[MDHT_EV_NODE_ADDED], 1);
}

static void test_queue_bound(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.out_queue = 1; /* the queue holds at least 4 KB whatever this says */
  c.rate_limit_per_sec = 0;
  fixture *f = make(&c);
  *state = f;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id them = test_id(0x11);
  mdht_krpc_msg *q = query(MDHT_M_PING, &them, "qb");
  q->ro = true;
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(q, buf, sizeof buf);
  for (int i = 0; i < 100; i++)
    mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_true(st.dropped[MDHT_DROP_QUEUE_FULL] > 0);
  assert_int_equal(st.responses_out + st.dropped[MDHT_DROP_QUEUE_FULL], 100);
}

/* BEP 42 enforcement: a public node whose id does not match its IP is
 * answered but never enters the table; one whose id matches does. */
static void test_enforce_node_id(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.enforce_node_id = true;
  fixture *f = make(&c);
  *state = f;
  mdht_addr a = test_addr4(124, 31, 75, 21, 6881);
  mdht_id bad = test_id(0x11);
  assert_true(exchange(f, &a, query(MDHT_M_PING, &bad, "b1")));
  assert_int_equal(f->events[MDHT_EV_NODE_ADDED], 0);
  mdht_addr b = test_addr4(124, 31, 75, 22, 6881);
  uint8_t rnd[MDHT_ID_LEN] = {0};
  mdht_id good;
  mdht_bep42_make(&good, &b, rnd);
  assert_true(exchange(f, &b, query(MDHT_M_PING, &good, "b2")));
  assert_int_equal(f->events[MDHT_EV_NODE_ADDED], 1);
}

/* Drains the node's queue; returns the number of queries of `method` to
 * `to`, and the transaction id of the last one in tid/tidlen. */
static int queries_to(fixture *f, const mdht_addr *to, mdht_method method,
                      uint8_t *tid, size_t *tidlen) {
  int n = 0;
  mdht_krpc_msg m;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y == 'q' && m.method == method && mdht_addr_eq(&f->to, to)) {
      n++;
      memcpy(tid, m.t.p, m.t.len);
      *tidlen = m.t.len;
    }
  }
  return n;
}

static void answer(fixture *f, const mdht_addr *from, const mdht_id *id,
                   const uint8_t *tid, size_t tidlen) {
  mdht_krpc_msg r;
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_krpc_msg_init(&r, 'r');
  r.t.p = tid;
  r.t.len = tidlen;
  r.id = *id;
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
}

/* Adds `router` as a bootstrap address and answers its ping (as `rid`,
 * 20 ms later): the node then asks it for its own id. */
static void router_answers_ping(fixture *f, const mdht_addr *router,
                                const mdht_id *rid) {
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_add_bootstrap(f->node, router, f->now), 0);
  assert_int_equal(queries_to(f, router, MDHT_M_PING, tid, &tl), 1);
  f->now += 20;
  answer(f, router, rid, tid, tl);
}

/* The router answers the ping, but its answer to the lookup for our own id
 * is lost: the bootstrap is not declared done with a one-entry table; it
 * asks again after the backoff, and completes when the router answers. */
static void test_bootstrap_retries_lost_self_lookup(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  uint8_t tid[16];
  size_t tl;
  router_answers_ping(f, &router, &rid);
  assert_int_equal(queries_to(f, &router, MDHT_M_FIND_NODE, tid, &tl), 1);
  /* lost: time passes, ticking as the driver would */
  mdht_time end = f->now + 6500;
  int again = 0;
  while (f->now < end && !again) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    again = queries_to(f, &router, MDHT_M_FIND_NODE, tid, &tl);
  }
  assert_false(mdht_node_bootstrapped(f->node));
  /* Not at once: the lookup waits out its query (5 s), then the backoff,
   * which the first router ping already doubled to 2 s. */
  assert_int_equal(again, 0);
  end = f->now + 10000;
  while (f->now < end && !again) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    again = queries_to(f, &router, MDHT_M_FIND_NODE, tid, &tl);
  }
  assert_int_equal(again, 1);
  answer(f, &router, &rid, tid, tl);
  mdht_node_tick(f->node, f->now);
  assert_true(mdht_node_bootstrapped(f->node));
  assert_int_equal(f->events[MDHT_EV_BOOTSTRAP_DONE], 1);
}

/* After the lookup of our own id, the buckets that are not full get a
 * fill lookup each, but at most MDHT_BOOT_FILL_PARALLEL at a time: a
 * joiner's burst of lookups and queries in flight stays small. */
static void test_bootstrap_fills_few_at_a_time(void **state) {
  fixture *f = *state;
  /* A table of several buckets, none full: six nodes at each of the
   * first six prefix lengths, each having answered us. */
  for (uint32_t i = 0; i < 36; i++) {
    mdht_addr a = test_addr4(10, 3, 0, (uint8_t)(i + 1), 6881);
    mdht_id id = test_id((uint8_t)(i * 4 + 1));
    id.b[0] = (uint8_t)(0x80 ^ (0x80 >> (i % 6)));
    id.b[1] = (uint8_t)(i * 37);
    mdht_krpc_msg *q = query(MDHT_M_PING, &id, "fp");
    uint8_t buf[MDHT_MAX_PACKET], tid[16];
    size_t tl = 0;
    int n = mdht_krpc_encode(q, buf, sizeof buf);
    mdht_node_recv(f->node, &a, buf, (size_t)n, f->now);
    /* it answers the ping that checks it: a node that has answered */
    if (queries_to(f, &a, MDHT_M_PING, tid, &tl) > 0) {
      f->now += 10;
      answer(f, &a, &id, tid, tl);
    }
  }
  drain(f);
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_true(st.buckets >= 5);
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  uint8_t tid[16];
  size_t tl;
  router_answers_ping(f, &router, &rid);
  assert_int_equal(queries_to(f, &router, MDHT_M_FIND_NODE, tid, &tl), 1);
  uint32_t most = 0, started0 = f->events[MDHT_EV_LOOKUP_STARTED];
  answer(f, &router, &rid, tid, tl);
  /* Nobody else answers: every lookup waits out its queries. */
  for (int step = 0; step < 1200 && !mdht_node_bootstrapped(f->node); step++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    drain(f);
    mdht_node_stats(f->node, f->now, &st);
    if (st.lookups_running > most) most = st.lookups_running;
  }
  uint32_t fills = f->events[MDHT_EV_LOOKUP_STARTED] - started0;
  assert_int_equal(st.lookups_running, 0); /* every fill has ended */
  /* one per bucket that is not full, the last excepted */
  assert_int_equal(fills, st.buckets - 1);
  assert_true(fills > MDHT_BOOT_FILL_PARALLEL); /* more fills than at once */
  assert_int_equal(most, MDHT_BOOT_FILL_PARALLEL);
}

/* The operation of the node's own bootstrap lookup carries no buffer of
 * a user lookup (peers, item values): a joining node runs about ten such
 * lookups at once. A user get_peers gets room for MDHT_RESULT_PEERS peers,
 * a ping none. The bootstrap lookup keeps the plain alpha bound. */
static void test_internal_op_is_small(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  router_answers_ping(f, &router, &rid);
  const mdht_op *boot = f->node->ops;
  assert_non_null(boot);
  assert_int_equal(boot->purpose, MDHT_OP_BOOT_SELF);
  assert_null(boot->peers);
  assert_null(boot->found_v);
  assert_true(malloc_usable_size((void *)boot) < 2048);
  /* Housekeeping keeps the plain alpha bound; a user lookup gets the
   * wider window (lookup.h, "The window"). */
  const mdht_lookup *bl = mdht_lookup_find(&f->node->lookups, boot->lookup_id);
  assert_non_null(bl);
  assert_true(bl->capped);
  assert_int_equal(bl->alpha, f->node->cfg.alpha);
  assert_true(mdht_node_get_peers(f->node, &rid, NULL, NULL, f->now) > 0);
  const mdht_op *user = f->node->ops;
  assert_int_equal(user->purpose, MDHT_OP_USER);
  const mdht_lookup *ul = mdht_lookup_find(&f->node->lookups, user->lookup_id);
  assert_non_null(ul);
  assert_false(ul->capped);
  assert_non_null(user->peers);
  assert_true(malloc_usable_size((void *)user) >=
              sizeof *user + MDHT_RESULT_PEERS * sizeof(mdht_addr));
  assert_null(user->found_v);
  assert_true(mdht_node_ping_addr(f->node, &router, NULL, NULL, f->now) > 0);
  assert_null(f->node->ops->peers);
}

/* The lookups' soft timeout follows the measured round trips (srtt + 2
 * rttvar), never above the configured one, never below 50 ms. */
static void test_soft_timeout_adapts_to_rtt(void **state) {
  fixture *f = *state;
  assert_int_equal(f->node->lookups.soft_ms, 1000);
  mdht_addr a = test_addr4(127, 0, 0, 60, 6881);
  mdht_id aid = test_id(0x60);
  uint8_t tid[16];
  size_t tl;
  assert_true(mdht_node_ping_addr(f->node, &a, NULL, NULL, f->now) > 0);
  assert_int_equal(queries_to(f, &a, MDHT_M_PING, tid, &tl), 1);
  f->now += 30;
  answer(f, &a, &aid, tid, tl);
  assert_int_equal(f->node->lookups.soft_ms, 30 + 2 * 15); /* rttvar = rtt/2 */
  /* steady 30 ms answers shrink the variance, down to the 50 ms floor */
  for (int i = 0; i < 40; i++) {
    assert_true(mdht_node_ping_addr(f->node, &a, NULL, NULL, f->now) > 0);
    assert_int_equal(queries_to(f, &a, MDHT_M_PING, tid, &tl), 1);
    f->now += 30;
    answer(f, &a, &aid, tid, tl);
  }
  assert_int_equal(f->node->lookups.soft_ms, 50);
  /* a very slow answer cannot push it past the configured bound */
  assert_true(mdht_node_ping_addr(f->node, &a, NULL, NULL, f->now) > 0);
  assert_int_equal(queries_to(f, &a, MDHT_M_PING, tid, &tl), 1);
  f->now += 4000;
  answer(f, &a, &aid, tid, tl);
  assert_int_equal(f->node->lookups.soft_ms, 1000);
}

/* A query from `from` (id `id`); the node's confirmation ping to it is
 * answered, so that it becomes a good node. */
static void confirm(fixture *f, const mdht_addr *from, const mdht_id *id) {
  uint8_t buf[MDHT_MAX_PACKET], tid[16];
  size_t tl;
  mdht_krpc_msg *q = query(MDHT_M_PING, id, "cf");
  int n = mdht_krpc_encode(q, buf, sizeof buf);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
  assert_int_equal(queries_to(f, from, MDHT_M_PING, tid, &tl), 1);
  f->now += 10;
  answer(f, from, id, tid, tl);
}

/* Review finding: a node that only queries us (one spoofed datagram every
 * few seconds) must not stop the bootstrapper from pinging its routers. */
static void test_bootstrap_not_stalled_by_queriers(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  int pings = queries_to(f, &router, MDHT_M_PING, tid, &tl);
  uint8_t buf[MDHT_MAX_PACKET];
  for (int t = 0; t < 600; t++) { /* 60 s, the router never answers */
    f->now += 100;
    if (t % 30 == 0) {
      mdht_addr spoof = test_addr4(127, 0, 1, (uint8_t)(t / 30 + 1), 7000);
      mdht_id sid = test_id((uint8_t)(0x20 + t / 30));
      int n = mdht_krpc_encode(query(MDHT_M_PING, &sid, "sp"), buf, sizeof buf);
      mdht_node_recv(f->node, &spoof, buf, (size_t)n, f->now);
    }
    mdht_node_tick(f->node, f->now);
    pings += queries_to(f, &router, MDHT_M_PING, tid, &tl);
  }
  /* at 0, 5, 15 and 35 s */
  assert_true(pings >= 4);
}

/* Issue 13 (simulator, 5 % loss, seed 7: 39.5 % of lookups found their
 * peer): a router whose own first ping was lost, flooded by joiners that
 * knew only it, bootstrapped from them alone and never pinged its router
 * again, so the joiners grew an island beside the network. Now the
 * routers are asked until one answers, even with a table of nodes that
 * found us, and the router that answers late gets a lookup of our id that
 * starts from it alone. */
static void test_bootstrap_island_rejoins_through_router(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  mdht_addr q = test_addr4(127, 0, 0, 70, 6881);
  mdht_id qid = test_id(0x81); /* near our 0x80...: the island */
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  assert_int_equal(queries_to(f, &router, MDHT_M_PING, tid, &tl), 1); /* lost */
  confirm(f, &q, &qid); /* a joiner that knows only us */
  /* The table is not empty: the node bootstraps from it. */
  int asked = 0;
  for (int t = 0; t < 100 && !asked; t++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    asked = queries_to(f, &q, MDHT_M_FIND_NODE, tid, &tl);
  }
  assert_int_equal(asked, 1);
  answer(f, &q, &qid, tid, tl);
  mdht_node_tick(f->node, f->now);
  assert_true(mdht_node_bootstrapped(f->node));
  /* ... and still asks its router, which answers at last. */
  int pings = 0;
  for (int t = 0; t < 100 && !pings; t++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    pings = queries_to(f, &router, MDHT_M_PING, tid, &tl);
  }
  assert_int_equal(pings, 1);
  f->now += 20;
  answer(f, &router, &rid, tid, tl);
  /* The lookup of our id through the router, from it alone. */
  int to_router = 0, to_q = 0;
  mdht_krpc_msg m;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y != 'q' || m.method != MDHT_M_FIND_NODE) continue;
    assert_true(mdht_id_eq(&m.target, mdht_node_id(f->node)));
    if (mdht_addr_eq(&f->to, &router)) {
      to_router++;
      memcpy(tid, m.t.p, m.t.len);
      tl = m.t.len;
    }
    to_q += mdht_addr_eq(&f->to, &q);
  }
  assert_int_equal(to_router, 1);
  assert_int_equal(to_q, 0);
  f->now += 20;
  answer(f, &router, &rid, tid, tl);
  /* Joined through a router: it is not pinged again. */
  for (int t = 0; t < 300; t++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    assert_int_equal(queries_to(f, &router, MDHT_M_PING, tid, &tl), 0);
  }
}

/* A router whose first ping to the others is lost is flooded, before its
 * retry is answered, by joiners that know only it (50,000 nodes, 5 %
 * loss, seed 1: router 3 of 4). When the retry is answered, its lookup of
 * its own id must go through the router that answered: seeded from the
 * joiners, closer to its id, it never asked the router, and it and its
 * joiners stayed an island (62.8 % of lookups found their peer). */
static void test_bootstrap_router_answer_joins_despite_joiners(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  assert_int_equal(queries_to(f, &router, MDHT_M_PING, tid, &tl), 1); /* lost */
  int pings = 0;
  for (int t = 0; t < 20 && !pings; t++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    pings = queries_to(f, &router, MDHT_M_PING, tid, &tl);
  }
  assert_int_equal(pings, 1); /* the retry, after 1 s; empty table */
  uint8_t rtid[16];
  size_t rtl = tl;
  memcpy(rtid, tid, tl);
  /* Joiners that know only us: K and more, all good, near our id. */
  mdht_addr j[12];
  mdht_id jid[12];
  for (int i = 0; i < 12; i++) {
    j[i] = test_addr4(127, 0, 1, (uint8_t)(i + 1), 6881);
    jid[i] = test_id((uint8_t)(0x81 + i));
    confirm(f, &j[i], &jid[i]);
  }
  mdht_node_tick(f->node, f->now);
  f->now += 10;
  answer(f, &router, &rid, rtid, rtl); /* the retry is answered */
  mdht_node_tick(f->node, f->now);
  int to_router = 0, to_joiners = 0;
  mdht_krpc_msg m;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y != 'q' || m.method != MDHT_M_FIND_NODE) continue;
    assert_true(mdht_id_eq(&m.target, mdht_node_id(f->node)));
    to_router += mdht_addr_eq(&f->to, &router);
    for (int i = 0; i < 12; i++)
      to_joiners += mdht_addr_eq(&f->to, &j[i]);
  }
  assert_int_equal(to_router, 1);
  assert_int_equal(to_joiners, 0);
}

/* That lookup through the router reaches nobody (its find_node is lost):
 * the router is pinged again, although the table holds the joiners. Were
 * the node taken as joined through the router, it would never ask again. */
static void test_bootstrap_router_lookup_lost_asks_again(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  mdht_id rid = test_id(0x10);
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  assert_int_equal(queries_to(f, &router, MDHT_M_PING, tid, &tl), 1);
  for (int i = 0; i < 12; i++) {
    mdht_addr j = test_addr4(127, 0, 1, (uint8_t)(i + 1), 6881);
    mdht_id jid = test_id((uint8_t)(0x81 + i));
    confirm(f, &j, &jid);
  }
  f->now += 10;
  answer(f, &router, &rid, tid, tl);
  assert_int_equal(queries_to(f, &router, MDHT_M_FIND_NODE, tid, &tl), 1);
  /* Lost. The joiners answer everything (they know no one else); the
   * router nothing: it is pinged again all the same. */
  int pings = 0;
  mdht_krpc_msg m;
  for (int t = 0; t < 600 && !pings; t++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    mdht_addr to[64];
    mdht_id ids[64];
    uint8_t tids[64][16];
    size_t tls[64], n = 0;
    while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                           sizeof f->pkt)) > 0) {
      assert_int_equal(mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks,
                                        MDHT_KRPC_TOKENS),
                       0);
      if (m.y != 'q') continue;
      if (mdht_addr_eq(&f->to, &router)) {
        pings += m.method == MDHT_M_PING;
        continue;
      }
      if (n == 64 || f->to.ip[2] != 1 || f->to.ip[3] < 1 || f->to.ip[3] > 12)
        continue;
      to[n] = f->to;
      ids[n] = test_id((uint8_t)(0x80 + f->to.ip[3]));
      memcpy(tids[n], m.t.p, m.t.len);
      tls[n++] = m.t.len;
    }
    for (size_t i = 0; i < n; i++)
      answer(f, &to[i], &ids[i], tids[i], tls[i]);
  }
  assert_true(pings >= 1);
}

/* A router ping that gets no answer is repeated after 1 s (then 2, 4...
 * s), not 5: every second a router spends unjoined, the joiners that
 * arrive through it can only meet each other. */
static void test_bootstrap_first_retry_after_1s(void **state) {
  fixture *f = *state;
  mdht_addr router = test_addr4(127, 0, 0, 50, 6881);
  uint8_t tid[16];
  size_t tl;
  mdht_time t0 = f->now;
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  assert_int_equal(queries_to(f, &router, MDHT_M_PING, tid, &tl), 1);
  mdht_time at[3];
  int n = 0;
  while (n < 3 && f->now < t0 + 10000) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    if (queries_to(f, &router, MDHT_M_PING, tid, &tl) > 0) at[n++] = f->now;
  }
  assert_int_equal(n, 3);
  assert_int_equal(at[0] - t0, 1000);
  assert_int_equal(at[1] - t0, 3000);
  assert_int_equal(at[2] - t0, 7000);
}

/* Four routers added at once (the defaults) are one round: none answers,
 * and the first retry still comes after 1 s, not 8 s. */
static void test_bootstrap_routers_one_round(void **state) {
  fixture *f = *state;
  mdht_addr r[4];
  uint8_t tid[16];
  size_t tl;
  mdht_time t0 = f->now;
  for (int i = 0; i < 4; i++) {
    r[i] = test_addr4(127, 0, 0, (uint8_t)(50 + i), 6881);
    assert_int_equal(mdht_node_add_bootstrap(f->node, &r[i], f->now), 0);
  }
  assert_int_equal(queries_to(f, &r[3], MDHT_M_PING, tid, &tl), 1);
  mdht_time at[2];
  int n = 0;
  while (n < 2 && f->now < t0 + 10000) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    int got = 0;
    f->len = 0;
    for (;;) {
      f->len = mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt);
      if (f->len <= 0) break;
      got++;
    }
    if (got > 0) {
      assert_int_equal(got, 4); /* every router in each round */
      at[n++] = f->now;
    }
  }
  assert_int_equal(n, 2);
  assert_int_equal(at[0] - t0, 1000);
  assert_int_equal(at[1] - t0, 3000);
}

/* Review finding: an unknown method sent without an id gets its 204, but
 * no routing slot and no confirmation ping. */
static void test_unknown_without_id_not_added(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 70, 6881);
  static const char pkt[] = "d1:q3:foo1:t2:aa1:y1:qe";
  mdht_node_recv(f->node, &a, (const uint8_t *)pkt, sizeof pkt - 1, f->now);
  f->len = mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt);
  assert_true(f->len > 0);
  assert_int_equal(mdht_krpc_decode(&f->msg, f->pkt, (size_t)f->len, f->toks,
                                    MDHT_KRPC_TOKENS),
                   0);
  assert_int_equal(f->msg.ecode, 204);
  assert_int_equal(
      mdht_node_next_packet(f->node, &f->to, f->pkt, sizeof f->pkt),
      0); /* no confirmation ping */
  assert_int_equal(f->events[MDHT_EV_NODE_ADDED], 0);
}

typedef struct outcome {
  bool done;
  mdht_result r;
} outcome;

static void on_result(const mdht_result *r, void *user) {
  outcome *o = user;
  o->done = true;
  o->r = *r;
}

/* Review finding: an announce whose lookup got no usable token sent no
 * announce_peer, and must not report success. */
static void test_announce_without_tokens_fails(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 80, 6881);
  mdht_id aid = test_id(0x33);
  confirm(f, &a, &aid);
  outcome o = {0};
  mdht_id ih = test_id(0x44);
  assert_true(mdht_node_announce(f->node, &ih, 1234, false, false, on_result,
                                 &o, f->now) > 0);
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(queries_to(f, &a, MDHT_M_GET_PEERS, tid, &tl), 1);
  f->now += 10;
  answer(f, &a, &aid, tid, tl); /* a get_peers answer without a token */
  mdht_node_tick(f->node, f->now);
  assert_true(o.done);
  assert_false(o.r.ok);
  assert_int_equal(o.r.nnodes, 0);
  assert_int_equal(queries_to(f, &a, MDHT_M_ANNOUNCE_PEER, tid, &tl), 0);
}

/* BEP 33 scrape: every get_peers of the lookup asks for the filters (the
 * first ones too, sent before the engine returns the lookup's id); the
 * report holds the union's estimates; a node that sends values but no
 * filters adds its values as downloaders, except one a seed filter holds. */
static void scrape_answer(fixture *f, const mdht_addr *from, const mdht_id *id,
                          const uint8_t *tid, size_t tl, const mdht_bloom *sd,
                          const mdht_bloom *pe, const mdht_addr *vals,
                          size_t nv) {
  mdht_krpc_msg r;
  uint8_t buf[MDHT_MAX_PACKET], compact[8][6];
  mdht_krpc_msg_init(&r, 'r');
  r.t = (mdht_bytes){tid, tl};
  r.id = *id;
  r.token = (mdht_bytes){(const uint8_t *)"tok", 3};
  if (sd) r.bfsd = (mdht_bytes){sd->bits, sizeof sd->bits};
  if (pe) r.bfpe = (mdht_bytes){pe->bits, sizeof pe->bits};
  mdht_bytes vb[sizeof compact / sizeof compact[0]];
  for (size_t i = 0; i < nv; i++) {
    mdht_addr_to_compact(&vals[i], compact[i]);
    vb[i] = (mdht_bytes){compact[i], 6};
  }
  r.values = vb;
  r.nvalues = nv;
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  assert_true(n > 0);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
}

static void test_scrape_merges_filters(void **state) {
  fixture *f = *state;
  mdht_addr a[3];
  mdht_id aid[3];
  for (int i = 0; i < 3; i++) {
    a[i] = test_addr4(127, 0, 3, (uint8_t)(i + 1), 6881);
    aid[i] = test_id((uint8_t)(0x60 + i));
    confirm(f, &a[i], &aid[i]);
  }
  mdht_bloom sd, pe1, pe2;
  mdht_bloom_clear(&sd);
  mdht_bloom_clear(&pe1);
  mdht_bloom_clear(&pe2);
  for (int i = 0; i < 20; i++) {
    mdht_addr s = test_addr4(10, 9, 0, (uint8_t)i, 1);
    mdht_bloom_insert(&sd, &s);
  }
  for (int i = 0; i < 60; i++) { /* 40 in one, 40 in the other, 20 shared */
    mdht_addr p = test_addr4(10, 8, 0, (uint8_t)i, 1);
    if (i < 40) mdht_bloom_insert(&pe1, &p);
    if (i >= 20) mdht_bloom_insert(&pe2, &p);
  }
  /* The legacy node: one value is a seed already counted, two are new. */
  mdht_addr legacy[3] = {test_addr4(10, 9, 0, 3, 1), test_addr4(10, 7, 0, 1, 1),
                         test_addr4(10, 7, 0, 2, 1)};

  outcome o = {0};
  mdht_id ih = test_id(0x44);
  assert_true(mdht_node_scrape(f->node, &ih, on_result, &o, f->now) > 0);
  /* Collect the get_peers queries: each must carry scrape=1. */
  uint8_t tid[3][16];
  size_t tl[3] = {0};
  int asked = 0;
  mdht_krpc_msg m;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y != 'q' || m.method != MDHT_M_GET_PEERS) continue;
    assert_true(m.scrape);
    for (int i = 0; i < 3; i++)
      if (mdht_addr_eq(&f->to, &a[i])) {
        memcpy(tid[i], m.t.p, m.t.len);
        tl[i] = m.t.len;
        asked++;
      }
  }
  assert_int_equal(asked, 3);
  f->now += 10;
  scrape_answer(f, &a[0], &aid[0], tid[0], tl[0], &sd, &pe1, NULL, 0);
  scrape_answer(f, &a[1], &aid[1], tid[1], tl[1], &sd, &pe2, NULL, 0);
  scrape_answer(f, &a[2], &aid[2], tid[2], tl[2], NULL, NULL, legacy, 3);
  for (int i = 0; i < 100 && !o.done; i++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    drain(f);
  }
  assert_true(o.done);
  assert_true(o.r.scraped);
  assert_int_equal(o.r.scrape_nodes, 2);
  assert_true(o.r.scrape_seeds > 18 && o.r.scrape_seeds < 22);
  /* 60 downloaders from the filters, 2 more from the legacy values */
  assert_true(o.r.scrape_peers > 56 && o.r.scrape_peers < 68);
  assert_true(o.r.scrape_peers > o.r.scrape_seeds);

  /* A plain get_peers does not ask. */
  assert_true(mdht_node_get_peers(f->node, &ih, NULL, NULL, f->now) > 0);
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y == 'q') assert_false(m.scrape);
  }
}

/* Review finding: with k = 16 on IPv6, 40 samples beside 16 nodes went
 * past 1,400 bytes (and past 1,500: no answer at all). */
static void test_sample_infohashes_size_bound(void **state) {
  fixture *f = calloc(1, sizeof *f);
  *state = f;
  f->seed = 9;
  f->now = 1000000;
  memset(&f->bound, 0, sizeof f->bound);
  f->bound.family = MDHT_AF_INET6;
  f->bound.ip[15] = 1;
  f->bound.port = 6881;
  mdht_callbacks cb = {.random = test_random, .user = &f->seed};
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.k = 16;
  mdht_id id = test_id(0x80);
  assert_int_equal(mdht_node_new(&f->node, &c, &cb, &id, &f->bound, f->now), 0);
  assert_true(mdht_node_subscribe(f->node, on_event, f) >= 0);
  for (int i = 0; i < 16; i++) {
    mdht_addr a;
    memset(&a, 0, sizeof a);
    a.family = MDHT_AF_INET6;
    a.ip[0] = 0xfd;
    a.ip[15] = (uint8_t)(i + 2);
    a.port = 7000;
    mdht_id nid = test_id((uint8_t)(0x90 + i));
    confirm(f, &a, &nid);
  }
  for (int i = 0; i < 40; i++) {
    mdht_id ih = test_id((uint8_t)(0x10 + i));
    mdht_addr p;
    memset(&p, 0, sizeof p);
    p.family = MDHT_AF_INET6;
    p.ip[0] = 0xfd;
    p.ip[14] = 1;
    p.ip[15] = (uint8_t)i;
    p.port = 5000;
    assert_int_equal(mdht_peers_add(&f->node->peers, &ih, &p, false, f->now),
                     0);
  }
  mdht_addr from;
  memset(&from, 0, sizeof from);
  from.family = MDHT_AF_INET6;
  from.ip[0] = 0xfd;
  from.ip[15] = 0x77;
  from.port = 9000;
  mdht_id me = test_id(0x55);
  mdht_krpc_msg *q = query(MDHT_M_SAMPLE_INFOHASHES, &me, "si");
  q->target = test_id(0x91);
  assert_true(exchange(f, &from, q));
  assert_true(f->len <= MDHT_RESPONSE_LIMIT);
  assert_int_equal(f->msg.nodes6.len, 16 * MDHT_COMPACT_NODE6);
  printf("# sample_infohashes: %d bytes, %zu samples\n", f->len,
         f->msg.samples.len / MDHT_ID_LEN);
  assert_true(f->msg.samples.len >= 20 * MDHT_ID_LEN);
  assert_true(f->msg.samples.len < 40 * MDHT_ID_LEN);
  assert_int_equal(f->msg.num, 40);
}

/* A query is answered with its t echoed whatever its length; only a t so
 * long that the reply would pass 1,400 bytes is dropped, and counted. */
static void test_tid_any_length_echoed(void **state) {
  fixture *f = *state;
  static const size_t lens[] = {1, 2, 16, 20, 64, 200};
  static const mdht_method methods[] = {MDHT_M_PING, MDHT_M_FIND_NODE,
                                        MDHT_M_GET_PEERS};
  mdht_id them = test_id(0x21);
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (size_t k = 0; k < 3; k++) {
      char t[201];
      for (size_t j = 0; j < lens[i]; j++)
        t[j] = (char)('a' + (j * 7 + k) % 26);
      t[lens[i]] = 0;
      mdht_addr from = test_addr4(127, 0, 3, (uint8_t)(i * 3 + k + 1), 5000);
      mdht_krpc_msg *q = query(methods[k], &them, t);
      q->target = test_id(0x33);
      assert_true(exchange(f, &from, q));
      assert_int_equal(f->msg.y, 'r');
      assert_int_equal(f->msg.t.len, lens[i]);
      assert_memory_equal(f->msg.t.p, t, lens[i]);
    }
  }
}

static void test_tid_too_long_for_reply(void **state) {
  fixture *f = *state;
  /* Fill the table so that find_node answers carry 8 nodes (26 bytes
   * each) beside the t. */
  for (int i = 0; i < 8; i++) {
    mdht_addr a = test_addr4(127, 0, 4, (uint8_t)(i + 1), 6000);
    mdht_id id = test_id((uint8_t)(0x10 + i));
    confirm(f, &a, &id);
  }
  mdht_id them = test_id(0x22);
  static char t[1300];
  memset(t, 'x', sizeof t - 1);
  mdht_addr from = test_addr4(127, 0, 5, 1, 5000);
  /* A ping with this t still fits (about 1,340 bytes)... */
  assert_true(exchange(f, &from, query(MDHT_M_PING, &them, t)));
  assert_int_equal(f->msg.t.len, sizeof t - 1);
  assert_true(f->len <= MDHT_RESPONSE_LIMIT);
  /* ...a find_node reply with 8 nodes would not: dropped and counted. */
  mdht_krpc_msg *q = query(MDHT_M_FIND_NODE, &them, t);
  q->target = test_id(0x33);
  assert_false(exchange(f, &from, q));
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.dropped[MDHT_DROP_REPLY_TOO_BIG], 1);
}

/* ------------------------------------------- BEP 42: our own id */

/* Our address as the public responders see it. */
#define EXT_IP 93, 184, 216, 34

/* Responder i: its own /24, an id whose first byte spreads the
 * responders over the id space (so that any table holds all of them). */
static mdht_addr responder(uint32_t i) {
  return test_addr4(50, 0, (uint8_t)i, 7, 6881);
}
static mdht_id responder_id(uint32_t i) {
  mdht_id id = test_id((uint8_t)(0x33 + i));
  id.b[0] = (uint8_t)(i * 21 + 3);
  return id;
}

/* An answer to our query `tid` that tells us we are `ip`. */
static void answer_ip(fixture *f, const mdht_addr *from, const mdht_id *id,
                      const uint8_t *tid, size_t tidlen, const mdht_addr *ip) {
  mdht_krpc_msg r;
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_krpc_msg_init(&r, 'r');
  r.t.p = tid;
  r.t.len = tidlen;
  r.id = *id;
  if (ip) {
    r.has_ip = true;
    r.ip = *ip;
  }
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
}

/* We ping `a`; it answers as `id`, saying we are `ip` (NULL: silent). */
static void ping_vote(fixture *f, const mdht_addr *a, const mdht_id *id,
                      const mdht_addr *ip) {
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_ping(f->node, a, f->now), 0);
  assert_int_equal(queries_to(f, a, MDHT_M_PING, tid, &tl), 1);
  f->now += 10;
  answer_ip(f, a, id, tid, tl, ip);
}

typedef struct sent_q {
  mdht_addr to;
  mdht_id id; /* the id we sent */
  uint8_t tid[16];
  size_t tl;
} sent_q;

/* Drains the queue, keeping the queries. */
static size_t collect(fixture *f, sent_q *out, size_t cap) {
  size_t n = 0;
  mdht_krpc_msg m;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    assert_int_equal(
        mdht_krpc_decode(&m, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (m.y != 'q' || n == cap) continue;
    out[n].to = f->to;
    out[n].id = m.id;
    memcpy(out[n].tid, m.t.p, m.t.len);
    out[n].tl = m.t.len;
    n++;
  }
  return n;
}

static uint32_t responder_of(const mdht_addr *a) {
  return a->ip[2];
}

typedef struct table_seen {
  uint32_t n;
  uint32_t present[32]; /* responder index -> times seen */
} table_seen;

static void on_visit(uint32_t bucket, const mdht_id *id, const mdht_addr *addr,
                     bool good, mdht_time last_reply, void *user) {
  table_seen *t = user;
  (void)bucket;
  (void)good;
  (void)last_reply;
  uint32_t i = responder_of(addr);
  assert_true(i < 32);
  assert_memory_equal(id->b, responder_id(i).b, MDHT_ID_LEN);
  t->present[i]++;
  t->n++;
}

/* A fake network of WORLD_N nodes on 127.3.x.y that answers every ping
 * and find_node at once, find_node with the K nodes of the world closest
 * to the target; it logs the targets of the find_node queries. */
#define WORLD_N 512
typedef struct world {
  mdht_id id[WORLD_N];
  uint32_t fill_queries[MDHT_ID_LEN * 8 + 1]; /* by shared prefix with us */
  uint32_t find_nodes;
} world;

static mdht_addr world_addr(uint32_t i) {
  return test_addr4(127, 3, (uint8_t)(i >> 8), (uint8_t)(i & 0xff), 6881);
}

static void world_init(world *w) {
  memset(w, 0, sizeof *w);
  uint64_t seed = 99;
  for (uint32_t i = 0; i < WORLD_N; i++)
    test_random(w->id[i].b, MDHT_ID_LEN, &seed);
}

static void world_answer(fixture *f, world *w, uint32_t i,
                         const mdht_krpc_msg *q) {
  uint8_t blob[8 * MDHT_COMPACT_NODE4], buf[MDHT_MAX_PACKET];
  mdht_krpc_msg r;
  mdht_krpc_msg_init(&r, 'r');
  r.t = q->t;
  r.id = w->id[i];
  if (q->method == MDHT_M_FIND_NODE) {
    /* The 8 closest to the target that node i knows: as in a real
     * network, an answer gets a lookup a few bits closer, not there. */
    int reach = mdht_id_common_prefix(&w->id[i], &q->target) + 2;
    bool used[WORLD_N] = {false};
    size_t len = 0;
    for (int n = 0; n < 8; n++) {
      int best = -1;
      for (uint32_t j = 0; j < WORLD_N; j++)
        if (!used[j] && mdht_id_common_prefix(&w->id[j], &q->target) <= reach &&
            (best < 0 ||
             mdht_id_cmp_dist(&q->target, &w->id[j], &w->id[best]) < 0))
          best = (int)j;
      if (best < 0) break;
      used[best] = true;
      mdht_addr a = world_addr((uint32_t)best);
      len += mdht_node_to_compact(&w->id[best], &a, blob + len);
    }
    r.nodes = (mdht_bytes){blob, len};
  }
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  assert_true(n > 0);
  mdht_addr from = world_addr(i);
  mdht_node_recv(f->node, &from, buf, (size_t)n, f->now);
}

/* Answers whatever the node sent, 5 ms later, and ticks; until it has
 * bootstrapped and gone quiet, or `ms` of virtual time passed. */
static void world_run(fixture *f, world *w, mdht_time ms) {
  mdht_time end = f->now + ms;
  mdht_krpc_msg q[64];
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  uint8_t pkts[64][MDHT_MAX_PACKET];
  mdht_addr to[64];
  mdht_id self = test_id(0x80);
  while (f->now < end) {
    size_t nq = 0;
    int len;
    while (nq < 64 && (len = mdht_node_next_packet(f->node, &to[nq], pkts[nq],
                                                   MDHT_MAX_PACKET)) > 0) {
      assert_int_equal(mdht_krpc_decode(&q[nq], pkts[nq], (size_t)len, toks,
                                        MDHT_KRPC_TOKENS),
                       0);
      /* the message points into pkts[nq]; the token array is reused, but
       * only t, method and target are read, which are copied below */
      if (q[nq].y != 'q' || to[nq].ip[1] != 3) continue;
      if (q[nq].method == MDHT_M_FIND_NODE) {
        w->find_nodes++;
        int p = mdht_id_common_prefix(&q[nq].target, &self);
        w->fill_queries[p]++;
      }
      nq++;
    }
    if (nq == 0 && mdht_node_bootstrapped(f->node)) return;
    f->now += 5;
    for (size_t i = 0; i < nq; i++)
      world_answer(f, w, (uint32_t)to[i].ip[2] << 8 | to[i].ip[3], &q[i]);
    mdht_node_tick(f->node, f->now);
  }
}

static void count_bucket(const mdht_node_entry *e, void *user) {
  uint32_t *per = user;
  if (e->state == MDHT_NODE_GOOD && e->bucket < 8) per[e->bucket]++;
}

/* Issue 13: a bucket-fill lookup of the bootstrap stops once its bucket
 * holds k good nodes, instead of running to convergence (~25 queries
 * each; 221 find_node per node in a 20,000-node simulation), and keeps
 * no more queries in flight than the bucket lacks nodes. The world's 512
 * nodes put some 256 in bucket 0 and 128 in bucket 1: each fills with at
 * most k + alpha queries (13 and 12 here); run to convergence they took
 * 25 and 19, stopped at k good nodes but with alpha in flight 17 and 16.
 * The table is as full as before: buckets 0 to 3 hold k good nodes. */
static void test_fill_lookup_stops_when_bucket_full(void **state) {
  fixture *f = *state;
  world *w = malloc(sizeof *w);
  world_init(w);
  mdht_addr router = world_addr(0);
  assert_int_equal(mdht_node_add_bootstrap(f->node, &router, f->now), 0);
  world_run(f, w, 60000);
  assert_true(mdht_node_bootstrapped(f->node));
  mdht_config c;
  mdht_config_default(&c);
  uint32_t per[8] = {0};
  mdht_node_visit_table(f->node, f->now, count_bucket, per);
  /* as rich as before: the far buckets are full */
  for (int b = 0; b < 4; b++)
    assert_int_equal(per[b], c.k);
  /* queries aimed at bucket 0 and 1 (the self lookup aims elsewhere) */
  assert_true(w->fill_queries[0] > 0);
  assert_true(w->fill_queries[0] <= c.k + c.alpha);
  assert_true(w->fill_queries[1] <= c.k + c.alpha);
  free(w);
}

/* stats.lookups_running (the metrics' gauge) counts a lookup from its
 * start to its end, a cancelled one included. */
static void test_stats_lookups_running(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 81, 6881);
  mdht_id aid = test_id(0x35);
  mdht_stats st;
  ping_vote(f, &a, &aid, NULL);
  mdht_node_stats(f->node, f->now, &st);
  uint32_t before = st.lookups_running;
  outcome out = {0};
  mdht_id target = test_id(0x42);
  int64_t op = mdht_node_find_node(f->node, &target, on_result, &out, f->now);
  assert_true(op > 0);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.lookups_running, before + 1);
  mdht_node_cancel(f->node, op);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.lookups_running, before);
  assert_false(out.done);
}

/* Responders at public addresses report our public address: after the
 * third distinct /24 agrees, the node derives a BEP 42 id for it, once;
 * it keeps every routing entry (now sorted around the new id), a lookup
 * started before the change completes, later queries carry the new id,
 * and a disagreeing minority changes nothing. */
static void test_bep42_new_id_from_vote(void **state) {
  fixture *f = make(NULL);
  *state = f;
  enum { N = 12 };
  mdht_addr ext = test_addr4(EXT_IP, 40000);
  mdht_id old = *mdht_node_id(f->node);
  assert_false(mdht_bep42_valid(&old, &ext));
  for (uint32_t i = 0; i < N; i++) { /* the table, without votes */
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, NULL);
  }
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.nodes_total, N);
  for (uint32_t i = 0; i < 2; i++) { /* two votes: not enough */
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &ext);
  }
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 0);
  assert_memory_equal(mdht_node_id(f->node)->b, old.b, MDHT_ID_LEN);

  /* a lookup in flight across the change */
  outcome out = {0};
  mdht_id target = test_id(0x42);
  assert_true(mdht_node_find_node(f->node, &target, on_result, &out, f->now) >
              0);
  sent_q q[64];
  size_t nq = collect(f, q, 64);
  assert_true(nq > 0);

  mdht_addr a2 = responder(2);
  mdht_id id2 = responder_id(2);
  ping_vote(f, &a2, &id2, &ext); /* the third /24 */
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 1);
  assert_true(mdht_addr_eq(&f->last[MDHT_EV_EXTERNAL_ADDR].addr, &ext));
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 1);
  const mdht_event *ch = &f->last[MDHT_EV_NODE_ID_CHANGED];
  mdht_id now_id = *mdht_node_id(f->node);
  assert_memory_equal(ch->id.b, now_id.b, MDHT_ID_LEN);
  assert_memory_equal(ch->u.replaced.old_id.b, old.b, MDHT_ID_LEN);
  assert_true(mdht_addr_eq(&ch->addr, &ext));
  assert_true(mdht_bep42_valid(&now_id, &ext));
  assert_memory_equal(f->node->rt.self.b, now_id.b, MDHT_ID_LEN);

  /* the table: the same twelve nodes, each once */
  table_seen seen = {0};
  mdht_node_visit(f->node, f->now, on_visit, &seen);
  assert_int_equal(seen.n, N);
  for (uint32_t i = 0; i < N; i++)
    assert_int_equal(seen.present[i], 1);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.nodes_good, N);

  /* the lookup goes on and ends well; what it sends now carries the new
   * id */
  size_t more = collect(f, q + nq, 64 - nq); /* the self lookup, if any */
  nq += more;
  for (int round = 0; round < 10 && !out.done; round++) {
    for (size_t i = 0; i < nq; i++) {
      mdht_id rid = responder_id(responder_of(&q[i].to));
      answer_ip(f, &q[i].to, &rid, q[i].tid, q[i].tl, &ext);
    }
    f->now += 10;
    mdht_node_tick(f->node, f->now);
    nq = collect(f, q, 64);
    for (size_t i = 0; i < nq; i++)
      assert_memory_equal(q[i].id.b, now_id.b, MDHT_ID_LEN);
  }
  assert_true(out.done);
  assert_true(out.r.ok);

  /* every responder agrees; then five other /24s disagree: no flap */
  for (uint32_t i = 0; i < N; i++) {
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &ext);
  }
  mdht_addr liar_says = test_addr4(1, 2, 3, 4, 40000);
  for (uint32_t i = 20; i < 25; i++) {
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &liar_says);
  }
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 1);
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 1);
  assert_memory_equal(mdht_node_id(f->node)->b, now_id.b, MDHT_ID_LEN);
}

/* Loopback responders (the integration tests, the testnet): the address
 * is voted, but private addresses are exempt from BEP 42: same id. */
static void test_bep42_private_keeps_id(void **state) {
  fixture *f = make(NULL);
  *state = f;
  mdht_id old = *mdht_node_id(f->node);
  mdht_addr me = f->bound;
  for (uint8_t i = 0; i < 10; i++) {
    mdht_addr a = test_addr4(127, 0, 0, (uint8_t)(10 + i), 6881);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &me);
  }
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 1);
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 0);
  assert_memory_equal(mdht_node_id(f->node)->b, old.b, MDHT_ID_LEN);
}

/* --id (fixed_id) keeps the id whatever the vote; an id that is already
 * valid for the voted address (one loaded from the state file) is kept. */
static void test_bep42_fixed_or_valid_id_kept(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.fixed_id = true;
  fixture *f = make(&c);
  *state = f;
  mdht_addr ext = test_addr4(EXT_IP, 40000);
  mdht_id old = *mdht_node_id(f->node);
  for (uint32_t i = 0; i < 5; i++) {
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &ext);
  }
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 1);
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 0);
  assert_memory_equal(mdht_node_id(f->node)->b, old.b, MDHT_ID_LEN);
  mdht_node_del(f->node);

  /* not fixed, but valid already */
  c.fixed_id = false;
  uint8_t rnd[MDHT_ID_LEN];
  memset(rnd, 0x5a, sizeof rnd);
  mdht_id valid;
  mdht_bep42_make(&valid, &ext, rnd);
  mdht_callbacks cb = {.random = test_random, .user = &f->seed};
  assert_int_equal(mdht_node_new(&f->node, &c, &cb, &valid, &f->bound, f->now),
                   0);
  memset(f->events, 0, sizeof f->events);
  assert_true(mdht_node_subscribe(f->node, on_event, f) >= 0);
  for (uint32_t i = 0; i < 5; i++) {
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    ping_vote(f, &a, &id, &ext);
  }
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 1);
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 0);
  assert_memory_equal(mdht_node_id(f->node)->b, valid.b, MDHT_ID_LEN);
}

/* Votes count only in answers to our own queries: unsolicited responses
 * (no matching transaction) carrying `ip` are dropped unread. */
static void test_bep42_unsolicited_votes_ignored(void **state) {
  fixture *f = make(NULL);
  *state = f;
  mdht_addr ext = test_addr4(EXT_IP, 40000);
  for (uint32_t i = 0; i < 10; i++) {
    mdht_addr a = responder(i);
    mdht_id id = responder_id(i);
    uint8_t tid[2] = {(uint8_t)i, 1};
    answer_ip(f, &a, &id, tid, sizeof tid, &ext);
  }
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.dropped[MDHT_DROP_UNMATCHED], 10);
  assert_int_equal(f->events[MDHT_EV_EXTERNAL_ADDR], 0);
  assert_int_equal(f->events[MDHT_EV_NODE_ID_CHANGED], 0);
}

/* ------------------------------------- rate limit tiers, reply budget */

static mdht_addr pub6(uint16_t w2, uint16_t w3, uint64_t iid, uint16_t port) {
  /* 2a01:4f8::/32, a public allocation: no martian rule applies. */
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  const uint16_t w[4] = {0x2a01, 0x04f8, w2, w3};
  for (int i = 0; i < 4; i++) {
    a.ip[2 * i] = (uint8_t)(w[i] >> 8);
    a.ip[2 * i + 1] = (uint8_t)w[i];
  }
  for (int i = 0; i < 8; i++)
    a.ip[8 + i] = (uint8_t)(iid >> (56 - 8 * i));
  a.port = port;
  return a;
}

/* A node bound to a public IPv6 address, with the given limits. */
static fixture *make6(uint32_t rate, uint32_t burst, uint32_t budget) {
  fixture *f = calloc(1, sizeof *f);
  f->seed = 7;
  f->now = 1000000;
  f->bound = pub6(0xffff, 0, 1, 6881);
  mdht_callbacks cb = {.random = test_random, .user = &f->seed};
  mdht_config c;
  mdht_config_default(&c);
  c.rate_limit_per_sec = rate;
  c.rate_limit_burst = burst;
  c.reply_bytes_per_sec = budget;
  mdht_id id = test_id(0x80);
  assert_int_equal(mdht_node_new(&f->node, &c, &cb, &id, &f->bound, f->now), 0);
  assert_true(mdht_node_subscribe(f->node, on_event, f) >= 0);
  return f;
}

static void recv_msg(fixture *f, const mdht_addr *from, mdht_krpc_msg *m) {
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(m, buf, sizeof buf);
  assert_true(n > 0);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
}

/* Attack 5 in the core: 5000 addresses of one /64 get one bucket (the
 * burst, 500), and the /64s of one /48 together get 4 bursts. */
static void test_rate_limit_v6_tiers(void **state) {
  fixture *f = make6(250, 500, 0);
  *state = f;
  mdht_id them = test_id(0x11);
  mdht_krpc_msg *q = query(MDHT_M_PING, &them, "p6");
  for (uint64_t i = 0; i < 5000; i++) {
    mdht_addr a = pub6(0x0001, 0x0001, 0x100 + i * 104729, 6881);
    recv_msg(f, &a, q);
    drain(f);
  }
  printf("# 5000 pings from one /64: %u answered, %u limited\n",
         f->events[MDHT_EV_RESPONSE_SENT], f->events[MDHT_EV_RATE_LIMITED]);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 500);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 4500);

  /* 600 pings from each of 20 /64s of another /48: 4 bursts in all. */
  uint32_t before = f->events[MDHT_EV_RESPONSE_SENT];
  for (uint16_t sub = 0; sub < 20; sub++)
    for (int i = 0; i < 600; i++) {
      mdht_addr a = pub6(0x0002, sub, (uint64_t)i + 1, 6881);
      recv_msg(f, &a, q);
      drain(f);
    }
  uint32_t site = f->events[MDHT_EV_RESPONSE_SENT] - before;
  printf("# 600 pings from each of 20 /64s of one /48: %u answered\n", site);
  assert_int_equal(site, 4 * 500);
  /* A third /48 is untouched; a second later the first /64 gets the
   * rate (250), not another burst. */
  mdht_addr other = pub6(0x0003, 0, 1, 6881);
  recv_msg(f, &other, q);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], before + site + 1);
  drain(f);
  f->now += 1000;
  before = f->events[MDHT_EV_RESPONSE_SENT];
  for (int i = 0; i < 400; i++) {
    mdht_addr a = pub6(0x0001, 0x0001, 0x7777 + (uint64_t)i, 6881);
    recv_msg(f, &a, q);
    drain(f);
  }
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT] - before, 250);
}

/* Attack 6 in the core: junk from a node's IP empties the IP's bucket;
 * the node's answer to our ping (right tid, right port) still counts,
 * while an unmatched reply from the same IP is limited. */
static void test_matched_reply_passes_limit(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.rate_limit_per_sec = 10;
  c.rate_limit_burst = 20;
  fixture *f = make(&c);
  *state = f;
  mdht_addr good = test_addr4(127, 0, 0, 9, 6881);
  mdht_addr junk = test_addr4(127, 0, 0, 9, 6999); /* same IP */
  mdht_id gid = test_id(0x22);
  uint8_t tid[16];
  size_t tl;
  assert_int_equal(mdht_node_ping(f->node, &good, f->now), 0);
  assert_int_equal(queries_to(f, &good, MDHT_M_PING, tid, &tl), 1);
  assert_int_equal(tl, MDHT_TID_LEN);
  for (int i = 0; i < 50; i++)
    mdht_node_recv(f->node, &junk, (const uint8_t *)"junk", 4, f->now);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 30);

  /* An unmatched reply (wrong check) and the right tid from the wrong
   * port: both unsolicited, both limited, and the query stays open. */
  uint8_t bad[16];
  memcpy(bad, tid, tl);
  bad[tl - 1] ^= 1;
  answer(f, &good, &gid, bad, tl);
  answer(f, &junk, &gid, tid, tl);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 32);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_RECEIVED], 0);
  assert_int_equal(f->node->txns.n, 1);
  /* The real answer passes though the bucket is empty. */
  answer(f, &good, &gid, tid, tl);
  assert_int_equal(f->events[MDHT_EV_RESPONSE_RECEIVED], 1);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 32);
  assert_int_equal(f->node->txns.n, 0);
  /* Answered twice: the second is unmatched, hence limited. */
  answer(f, &good, &gid, tid, tl);
  assert_int_equal(f->events[MDHT_EV_RATE_LIMITED], 33);
}

/* Bytes of the datagrams queued to `to` (replies and errors), drained. */
static size_t bytes_to(fixture *f, const mdht_addr *to, int *queries) {
  size_t sum = 0;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    if (!mdht_addr_eq(&f->to, to)) continue;
    if (f->len > 2 && f->pkt[f->len - 2] == 'q') {
      (*queries)++;
      continue;
    }
    sum += (size_t)f->len;
  }
  return sum;
}

/* Attack 7 in the core: responses and errors to one destination stay
 * within its byte budget (1000 B/s, burst 2000 here); queries do not
 * spend it; another destination has its own; 0 turns it off. */
static void test_reply_budget(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.rate_limit_per_sec = 0;
  c.reply_bytes_per_sec = 1000;
  fixture *f = make(&c);
  *state = f;
  mdht_addr victim = test_addr4(127, 0, 0, 7, 6881);
  mdht_id them = test_id(0x11), target = test_id(0x33);
  int queries = 0;
  size_t sent = 0;
  for (int i = 0; i < 100; i++) {
    mdht_krpc_msg *q = query(MDHT_M_GET_PEERS, &them, "gp");
    q->target = target;
    recv_msg(f, &victim, q);
    q = query(MDHT_M_UNKNOWN, &them, "zz"); /* answered by an error */
    q->q.p = (const uint8_t *)"vote";
    q->q.len = 4;
    recv_msg(f, &victim, q);
    sent += bytes_to(f, &victim, &queries);
  }
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  printf("# budget 1000 B/s: %zu bytes in a burst, %llu replies dropped\n",
         sent, (unsigned long long)st.dropped[MDHT_DROP_REPLY_BUDGET]);
  assert_true(sent <= 2000);
  assert_true(sent > 2000 - MDHT_MAX_PACKET);
  assert_true(st.dropped[MDHT_DROP_REPLY_BUDGET] > 150);
  /* Our own query to the victim is not budgeted. */
  queries = 0;
  assert_int_equal(mdht_node_ping(f->node, &victim, f->now), 0);
  assert_int_equal(bytes_to(f, &victim, &queries), 0);
  assert_int_equal(queries, 1);
  /* Another destination is not affected. */
  mdht_addr other = test_addr4(127, 0, 0, 8, 6881);
  assert_true(exchange(f, &other, query(MDHT_M_PING, &them, "ok")));
  /* One second refills 1000 bytes. */
  f->now += 1000;
  size_t more = 0;
  for (int i = 0; i < 100; i++) {
    recv_msg(f, &victim, query(MDHT_M_PING, &them, "pp"));
    more += bytes_to(f, &victim, &queries);
  }
  assert_true(sent + more <= 2000 + 1000);
  assert_true(more > 900);
}

static void test_reply_budget_off(void **state) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.rate_limit_per_sec = 0;
  c.reply_bytes_per_sec = 0;
  fixture *f = make(&c);
  *state = f;
  mdht_addr victim = test_addr4(127, 0, 0, 7, 6881);
  mdht_id them = test_id(0x11);
  int queries = 0;
  size_t sent = 0;
  for (int i = 0; i < 1000; i++) {
    recv_msg(f, &victim, query(MDHT_M_PING, &them, "pp"));
    sent += bytes_to(f, &victim, &queries);
  }
  assert_int_equal(f->events[MDHT_EV_RESPONSE_SENT], 1000);
  assert_true(sent > 50000);
}

/* ------------------------------------------- the bus only observes */

/* Asserts that the events heard since the last reset are exactly `want`. */
static void assert_seq(const fixture *f, const mdht_event_type *want,
                       size_t n) {
  for (size_t i = 0; i < n && i < f->nseq; i++) {
    if (f->seq[i] != want[i])
      fail_msg("event %zu: heard %s, expected %s", i,
               mdht_event_name(f->seq[i]), mdht_event_name(want[i]));
  }
  assert_int_equal(f->nseq, n);
}

static void reset_seq(fixture *f) {
  f->nseq = 0;
}

/* Position of the first event of `type` heard, or -1. */
static int seq_find(const fixture *f, mdht_event_type type) {
  for (size_t i = 0; i < f->nseq; i++)
    if (f->seq[i] == type) return (int)i;
  return -1;
}

/* Finds our queued query to `to` and answers it as `id`; other datagrams
 * are dropped. Returns false if there was none. */
static bool answer_query(fixture *f, const mdht_addr *to, const mdht_id *id) {
  mdht_krpc_msg q, r;
  uint8_t tid[32];
  size_t tidlen = 0;
  bool found = false;
  while ((f->len = mdht_node_next_packet(f->node, &f->to, f->pkt,
                                         sizeof f->pkt)) > 0) {
    if (!mdht_addr_eq(&f->to, to)) continue;
    assert_int_equal(
        mdht_krpc_decode(&q, f->pkt, (size_t)f->len, f->toks, MDHT_KRPC_TOKENS),
        0);
    if (q.y != 'q' || q.t.len > sizeof tid) continue;
    memcpy(tid, q.t.p, q.t.len);
    tidlen = q.t.len;
    found = true;
  }
  if (!found) return false;
  mdht_krpc_msg_init(&r, 'r');
  r.t.p = tid;
  r.t.len = tidlen;
  r.id = *id;
  recv_msg(f, to, &r);
  return true;
}

/* A query from a node we did not know: the user hears the query, then
 * the table taking its sender, then the confirmation ping that this
 * caused, then our answer. (When the table learnt from the bus, the ping
 * went out, and was heard, before the query that caused it.) */
static void test_order_query_from_new_node(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id aid = test_id(0x11);
  reset_seq(f);
  recv_msg(f, &a, query(MDHT_M_PING, &aid, "p1"));
  const mdht_event_type want[] = {MDHT_EV_QUERY_RECEIVED, MDHT_EV_NODE_ADDED,
                                  MDHT_EV_QUERY_SENT, MDHT_EV_RESPONSE_SENT};
  assert_seq(f, want, sizeof want / sizeof want[0]);
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_ADDED].id, &aid));
  assert_int_equal(f->last[MDHT_EV_QUERY_SENT].method, MDHT_M_PING);
  assert_true(mdht_addr_eq(&f->last[MDHT_EV_QUERY_SENT].addr, &a));
}

/* k = 1 and one failure makes a node bad: two ids below ours (first bit
 * 0, ours is 1) share bucket 0, which holds one node. */
static fixture *make_tiny_table(void) {
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.k = 1;
  c.max_fails = 1;
  return make(&c);
}

/* A response: the user hears it before the node it adds, and before the
 * node it replaces. */
static void test_order_response_then_table(void **state) {
  fixture *f = make_tiny_table();
  *state = f;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_addr b = test_addr4(127, 0, 0, 3, 5000);
  mdht_id aid = test_id(0x11), bid = test_id(0x22);

  /* a answers our ping: added. */
  assert_int_equal(mdht_node_ping(f->node, &a, f->now), 0);
  reset_seq(f);
  f->now += 20;
  assert_true(answer_query(f, &a, &aid));
  const mdht_event_type added[] = {MDHT_EV_RESPONSE_RECEIVED,
                                   MDHT_EV_NODE_ADDED};
  assert_seq(f, added, 2);

  /* a stops answering and goes bad (max_fails 1) ... */
  mdht_time due = f->now + f->node->cfg.query_timeout_ms;
  assert_int_equal(mdht_node_ping(f->node, &a, f->now), 0);
  drain(f);
  mdht_node_tick(f->node, due);
  mdht_rt_entry *ea = mdht_rtable_find(&f->node->rt, &a);
  assert_non_null(ea);
  assert_int_equal(mdht_rtable_state(&f->node->rt, ea, due), MDHT_RT_BAD);
  /* ... and b, answering, takes its slot. */
  f->now = due + 10;
  drain(f);
  assert_int_equal(mdht_node_ping(f->node, &b, f->now), 0);
  reset_seq(f);
  assert_true(answer_query(f, &b, &bid));
  int rr = seq_find(f, MDHT_EV_RESPONSE_RECEIVED);
  int nr = seq_find(f, MDHT_EV_NODE_REPLACED);
  assert_int_equal(rr, 0);
  assert_true(nr > rr);
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].id, &bid));
  assert_true(
      mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].u.replaced.old_id, &aid));
}

/* A timeout: the user hears the query time out before the node that
 * failed is replaced by the candidate waiting for its slot. */
static void test_order_timeout_then_replaced(void **state) {
  fixture *f = make_tiny_table();
  *state = f;
  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_addr b = test_addr4(127, 0, 0, 3, 5000);
  mdht_id aid = test_id(0x11), bid = test_id(0x22);
  /* a queries us: it takes the one slot, and we ping it to confirm. */
  recv_msg(f, &a, query(MDHT_M_PING, &aid, "p1"));
  /* b queries us: the bucket is full, b waits as the candidate. */
  recv_msg(f, &b, query(MDHT_M_PING, &bid, "p2"));
  assert_non_null(mdht_rtable_find(&f->node->rt, &a));
  assert_null(mdht_rtable_find(&f->node->rt, &b));
  drain(f);
  reset_seq(f);
  /* a never answers the confirmation. */
  mdht_node_tick(f->node, f->now + f->node->cfg.query_timeout_ms);
  int to = seq_find(f, MDHT_EV_QUERY_TIMEOUT);
  int nr = seq_find(f, MDHT_EV_NODE_REPLACED);
  assert_int_equal(to, 0);
  assert_true(nr > to);
  assert_true(mdht_id_eq(&f->last[MDHT_EV_QUERY_TIMEOUT].id, &aid));
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].id, &bid));
  assert_true(
      mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].u.replaced.old_id, &aid));
  assert_non_null(mdht_rtable_find(&f->node->rt, &b));
}

/* No subscriber is the node's own: the user's first subscription is
 * handle 0, every handle may be unsubscribed, all 16 slots are the
 * user's, and with none left the table and the statistics still work. */
static void test_unsubscribe_any_handle(void **state) {
  fixture *f = *state;
  assert_int_equal(f->sub, 0);
  mdht_node_unsubscribe(f->node, 0);
  mdht_node_unsubscribe(f->node, 0);  /* twice: ignored */
  mdht_node_unsubscribe(f->node, -1); /* unknown: ignored */
  mdht_node_unsubscribe(f->node, 99);

  mdht_addr a = test_addr4(127, 0, 0, 2, 5000);
  mdht_id aid = test_id(0x11);
  recv_msg(f, &a, query(MDHT_M_PING, &aid, "p1"));
  assert_int_equal(f->nseq, 0); /* nobody heard anything */
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.queries_in[MDHT_M_PING], 1);
  assert_int_equal(st.responses_out, 1);
  assert_int_equal(st.queries_out[MDHT_M_PING], 1); /* the confirmation */
  assert_int_equal(st.nodes_total, 1);
  /* It answers: good, and handed out. */
  f->now += 15;
  assert_true(answer_query(f, &a, &aid));
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.responses_in, 1);
  assert_int_equal(st.nodes_good, 1);
  /* It goes quiet: timeouts count and the table hears of them. */
  assert_int_equal(mdht_node_ping(f->node, &a, f->now), 0);
  drain(f);
  f->now += f->node->cfg.query_timeout_ms;
  mdht_node_tick(f->node, f->now);
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.timeouts, 1);
  assert_int_equal(mdht_rtable_find(&f->node->rt, &a)->fails, 1);

  /* Sixteen subscriptions, from handle 0, then full. */
  for (int i = 0; i < 16; i++)
    assert_int_equal(mdht_node_subscribe(f->node, on_event, f), i);
  assert_int_equal(mdht_node_subscribe(f->node, on_event, f), MDHT_ERR_FULL);
}

/* ------------------------------------------- inspection (mdht table ...) */

typedef struct inspect_seen {
  mdht_node_entry nodes[8];
  size_t nn;
  mdht_store_entry ihs[8];
  size_t nih;
  mdht_stored_peer peers[8];
  size_t np;
} inspect_seen;

static void on_entry(const mdht_node_entry *e, void *user) {
  inspect_seen *s = user;
  if (s->nn < 8) s->nodes[s->nn++] = *e;
}
static void on_store(const mdht_store_entry *e, void *user) {
  inspect_seen *s = user;
  if (s->nih < 8) s->ihs[s->nih++] = *e;
}
static void on_peer(const mdht_stored_peer *p, void *user) {
  inspect_seen *s = user;
  if (s->np < 8) s->peers[s->np++] = *p;
}

/* The table as `mdht table` sees it: a node confirmed by a ping answered
 * 10 ms later is good with a 10 ms RTT and its times; one that fails is
 * bad. */
static void test_visit_table(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 21, 6881);
  mdht_addr b = test_addr4(127, 0, 0, 22, 6881);
  mdht_id ia = test_id(0x01), ib = test_id(0x02);
  mdht_time t0 = f->now;
  inspect_seen s = {0};

  confirm(f, &a, &ia); /* answered at t0 + 10 */
  mdht_node_visit_table(f->node, f->now, on_entry, &s);
  assert_int_equal(s.nn, 1);
  assert_int_equal(s.nodes[0].state, MDHT_NODE_GOOD);
  assert_int_equal(s.nodes[0].rtt_ms, 10);
  assert_true(mdht_addr_eq(&s.nodes[0].addr, &a));
  assert_memory_equal(s.nodes[0].id.b, ia.b, MDHT_ID_LEN);
  assert_int_equal(s.nodes[0].added, t0);
  assert_int_equal(s.nodes[0].last_reply, t0 + 10);
  assert_int_equal(s.nodes[0].bucket, mdht_rtable_bucket_of(&f->node->rt, &ia));

  /* b only queried us, and its confirmation ping goes unanswered until
   * it counts as failed: no RTT, never answered, bad. */
  mdht_krpc_msg *q = query(MDHT_M_PING, &ib, "qb");
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(q, buf, sizeof buf);
  mdht_node_recv(f->node, &b, buf, (size_t)n, f->now);
  for (uint32_t i = 0; i < f->node->cfg.max_fails; i++)
    mdht_rtable_failed(&f->node->rt, &ib, &b, f->now);
  memset(&s, 0, sizeof s);
  mdht_node_visit_table(f->node, f->now, on_entry, &s);
  assert_int_equal(s.nn, 2);
  for (size_t i = 0; i < s.nn; i++) {
    if (!mdht_addr_eq(&s.nodes[i].addr, &b)) continue;
    assert_int_equal(s.nodes[i].state, MDHT_NODE_BAD);
    assert_int_equal(s.nodes[i].rtt_ms, 0);
    assert_int_equal(s.nodes[i].last_reply, 0);
    assert_int_equal(s.nodes[i].fails, f->node->cfg.max_fails);
  }
}

/* The store as `mdht infohashes` and `mdht peers` see it: counts, ages
 * since the last announce, and expired records left out. */
static void test_visit_store(void **state) {
  fixture *f = *state;
  mdht_id ih1 = test_id(0x51), ih2 = test_id(0x52), none = test_id(0x53);
  mdht_addr p1 = test_addr4(127, 0, 0, 31, 7000);
  mdht_addr p2 = test_addr4(127, 0, 0, 32, 7000);
  uint8_t store[64];
  inspect_seen s = {0};

  assert_int_equal(
      announce(f, &p1, &ih1, get_token(f, &p1, &ih1, store), 1001, false), 'r');
  f->now += 5000;
  assert_int_equal(
      announce(f, &p2, &ih1, get_token(f, &p2, &ih1, store), 1002, false), 'r');
  assert_int_equal(
      announce(f, &p2, &ih2, get_token(f, &p2, &ih2, store), 1003, false), 'r');
  f->now += 1000;

  mdht_node_visit_store(f->node, f->now, on_store, &s);
  assert_int_equal(s.nih, 2);
  for (size_t i = 0; i < s.nih; i++) {
    bool first = mdht_id_eq(&s.ihs[i].infohash, &ih1);
    assert_int_equal(s.ihs[i].peers, first ? 2 : 1);
    assert_int_equal(s.ihs[i].seeds, 0);
    assert_int_equal(s.ihs[i].newest_ms, 1000);
    assert_int_equal(s.ihs[i].oldest_ms, first ? 6000 : 1000);
  }

  assert_int_equal(mdht_node_visit_peers(f->node, &ih1, f->now, on_peer, &s),
                   2);
  assert_int_equal(s.np, 2);
  for (size_t i = 0; i < 2; i++) {
    bool one = mdht_addr_ip_eq(&s.peers[i].addr, &p1);
    assert_int_equal(s.peers[i].addr.port, one ? 1001 : 1002);
    assert_int_equal(s.peers[i].age_ms, one ? 6000 : 1000);
    assert_int_equal(s.peers[i].ttl_ms,
                     f->node->cfg.peer_ttl_ms - s.peers[i].age_ms);
  }
  assert_int_equal(mdht_node_visit_peers(f->node, &none, f->now, on_peer, &s),
                   MDHT_ERR_NOTFOUND);

  /* p1's record has expired (not yet swept): gone from both views. */
  f->now += f->node->cfg.peer_ttl_ms - 6000;
  memset(&s, 0, sizeof s);
  mdht_node_visit_store(f->node, f->now, on_store, &s);
  for (size_t i = 0; i < s.nih; i++)
    if (mdht_id_eq(&s.ihs[i].infohash, &ih1))
      assert_int_equal(s.ihs[i].peers, 1);
  assert_int_equal(mdht_node_visit_peers(f->node, &ih1, f->now, on_peer, &s),
                   1);
  f->now += 5000; /* and now every record */
  memset(&s, 0, sizeof s);
  mdht_node_visit_store(f->node, f->now, on_store, &s);
  assert_int_equal(s.nih, 0);
}

/* ---------------------------------------------------------------- BEP 44 */

static void assert_bytes_equal_v(fixture *f, const char *v) {
  assert_int_equal(f->msg.item_v.len, strlen(v));
  assert_memory_equal(f->msg.item_v.p, v, strlen(v));
}

/* A get for `target` from `from`; the answer is in f->msg. Copies the
 * token into `store`. */
static mdht_bytes item_get(fixture *f, const mdht_addr *from,
                           const mdht_id *target, bool has_seq, int64_t seq,
                           uint8_t *store) {
  mdht_id me = test_id(0x35);
  mdht_krpc_msg *q = query(MDHT_M_GET, &me, "gt");
  q->target = *target;
  q->has_seq = has_seq;
  q->seq = seq;
  assert_true(exchange(f, from, q));
  assert_int_equal(f->msg.y, 'r');
  assert_true(f->len <= MDHT_RESPONSE_LIMIT);
  assert_true(f->msg.token.len > 0);
  memcpy(store, f->msg.token.p, f->msg.token.len);
  return (mdht_bytes){store, f->msg.token.len};
}

typedef struct signer {
  uint8_t pk[32], sk[64], sig[64];
} signer;

static void signer_init(signer *s, uint8_t fill) {
  uint8_t seed[32];
  memset(seed, fill, sizeof seed);
  mdht_item_keypair(seed, s->pk, s->sk);
}

/* A put of `v`; mutable when `s` is given (signed with seq and salt).
 * Returns the reply's y; f->msg has it. */
static char item_put(fixture *f, const mdht_addr *from, mdht_bytes token,
                     const char *v, signer *s, int64_t seq, const char *salt,
                     bool has_cas, int64_t cas) {
  mdht_id me = test_id(0x35);
  mdht_krpc_msg *q = query(MDHT_M_PUT, &me, "pt");
  q->token = token;
  q->item_v = (mdht_bytes){(const uint8_t *)v, strlen(v)};
  if (s) {
    size_t sl = salt ? strlen(salt) : 0;
    assert_int_equal(mdht_item_sign(s->sk, (const uint8_t *)salt,
                                    sl > 64 ? 0 : sl, seq, q->item_v.p,
                                    q->item_v.len > 1000 ? 1 : q->item_v.len,
                                    s->sig),
                     0);
    q->item_k = (mdht_bytes){s->pk, 32};
    q->item_sig = (mdht_bytes){s->sig, 64};
    q->salt = (mdht_bytes){(const uint8_t *)salt, sl};
    q->has_seq = true;
    q->seq = seq;
    q->has_cas = has_cas;
    q->cas = cas;
  }
  assert_true(exchange(f, from, q));
  return f->msg.y;
}

/* Immutable: put with the get's token, then any node's get returns the
 * value verbatim under SHA-1(v); a put without a valid token is 203. */
static void test_item_immutable(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  mdht_addr b = test_addr4(127, 0, 0, 8, 7000);
  const char *v = "d1:ali1ei2ee1:b3:xyze";
  mdht_id target;
  mdht_item_immutable_target((const uint8_t *)v, strlen(v), &target);
  uint8_t store[64], other[64];
  mdht_bytes tok = item_get(f, &a, &target, false, 0, store);
  assert_int_equal(f->msg.item_v.len, 0);
  /* b's token is not a's */
  mdht_bytes btok = item_get(f, &b, &target, false, 0, other);
  assert_int_equal(item_put(f, &a, btok, v, NULL, 0, NULL, false, 0), 'e');
  assert_int_equal(f->msg.ecode, 203);
  assert_int_equal(f->events[MDHT_EV_TOKEN_REJECTED], 1);
  assert_int_equal(item_put(f, &a, tok, v, NULL, 0, NULL, false, 0), 'r');
  assert_int_equal(f->events[MDHT_EV_ITEM_STORED], 1);
  assert_memory_equal(f->last[MDHT_EV_ITEM_STORED].id.b, target.b, 20);

  item_get(f, &b, &target, false, 0, other);
  assert_bytes_equal_v(f, v);
  assert_int_equal(f->msg.item_k.len, 0);
  assert_false(f->msg.has_seq);
  assert_true(f->msg.nodes.p != NULL); /* nodes are always there */
  assert_int_equal(f->events[MDHT_EV_ITEM_SERVED], 1);
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.items, 1);
  assert_int_equal(st.items_stored, 1);
  assert_int_equal(st.items_served, 1);
  assert_int_equal(st.puts_rejected, 1);
  assert_int_equal(st.queries_in[MDHT_M_PUT], 2);
  assert_int_equal(st.queries_in[MDHT_M_GET], 3);

  /* Gone 2 h after the put. */
  f->now += f->node->cfg.item_ttl_ms;
  mdht_node_tick(f->node, f->now);
  item_get(f, &b, &target, false, 0, other);
  assert_int_equal(f->msg.item_v.len, 0);
}

/* Mutable: signatures checked (206), seq and cas rules (302, 301), salt
 * bound (207), value bound (205); get with seq leaves the value out when
 * the requester is up to date. */
static void test_item_mutable(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  signer s;
  signer_init(&s, 3);
  mdht_id target;
  mdht_item_mutable_target(s.pk, (const uint8_t *)"salt", 4, &target);
  uint8_t store[64];
  mdht_bytes tok = item_get(f, &a, &target, false, 0, store);
  assert_int_equal(item_put(f, &a, tok, "5:first", &s, 1, "salt", false, 0),
                   'r');
  item_get(f, &a, &target, false, 0, store);
  assert_bytes_equal_v(f, "5:first");
  assert_true(f->msg.has_seq && f->msg.seq == 1);
  assert_int_equal(f->msg.item_k.len, 32);
  assert_memory_equal(f->msg.item_k.p, s.pk, 32);
  assert_true(mdht_item_verify(f->msg.item_k.p, f->msg.item_sig.p,
                               (const uint8_t *)"salt", 4, 1, f->msg.item_v.p,
                               f->msg.item_v.len));
  /* up to date: seq only */
  item_get(f, &a, &target, true, 1, store);
  assert_true(f->msg.has_seq && f->msg.seq == 1);
  assert_int_equal(f->msg.item_v.len, 0);
  assert_int_equal(f->msg.item_sig.len, 0);
  item_get(f, &a, &target, true, 0, store);
  assert_bytes_equal_v(f, "5:first");

  /* a signature over other bytes: 206, nothing changes */
  assert_int_equal(item_put(f, &a, tok, "5:first", &s, 1, "salt", false, 0),
                   'r'); /* the same item again: a refresh */
  signer wrong;
  signer_init(&wrong, 4);
  memcpy(wrong.pk, s.pk, 32); /* k says s, sig is wrong's */
  assert_int_equal(
      item_put(f, &a, tok, "6:second", &wrong, 2, "salt", false, 0), 'e');
  assert_int_equal(f->msg.ecode, 206);
  /* lower seq, same seq with another value: 302 */
  assert_int_equal(item_put(f, &a, tok, "6:second", &s, 0, "salt", false, 0),
                   'e');
  assert_int_equal(f->msg.ecode, 302);
  assert_int_equal(item_put(f, &a, tok, "6:second", &s, 1, "salt", false, 0),
                   'e');
  assert_int_equal(f->msg.ecode, 302);
  /* cas not the stored seq: 301; right cas: stored */
  assert_int_equal(item_put(f, &a, tok, "6:second", &s, 2, "salt", true, 5),
                   'e');
  assert_int_equal(f->msg.ecode, 301);
  assert_int_equal(item_put(f, &a, tok, "6:second", &s, 2, "salt", true, 1),
                   'r');
  item_get(f, &a, &target, false, 0, store);
  assert_bytes_equal_v(f, "6:second");
  assert_int_equal(f->msg.seq, 2);

  /* salt of 65 bytes: 207 */
  char salt[66];
  memset(salt, 's', 65);
  salt[65] = 0;
  assert_int_equal(item_put(f, &a, tok, "1:x", &s, 1, salt, false, 0), 'e');
  assert_int_equal(f->msg.ecode, 207);
  /* v of 1,001 bytes: 205 (immutable and mutable) */
  static char big[1100];
  snprintf(big, sizeof big, "997:%0997d", 0);
  assert_int_equal(strlen(big), 1001);
  assert_int_equal(item_put(f, &a, tok, big, NULL, 0, NULL, false, 0), 'e');
  assert_int_equal(f->msg.ecode, 205);
  assert_int_equal(item_put(f, &a, tok, big, &s, 9, "salt", false, 0), 'e');
  assert_int_equal(f->msg.ecode, 205);
  /* a negative seq: 203 */
  assert_int_equal(item_put(f, &a, tok, "1:x", &s, -1, NULL, false, 0), 'e');
  assert_int_equal(f->msg.ecode, 203);
  mdht_stats st;
  mdht_node_stats(f->node, f->now, &st);
  assert_int_equal(st.puts_rejected, 8);
  assert_int_equal(st.items, 1);
}

/* A 1,000-byte value beside a full list of nodes stays within 1,400
 * bytes: the nodes give way, the value is served. */
static void test_item_size_bound(void **state) {
  fixture *f = *state;
  for (int i = 0; i < 8; i++) {
    mdht_addr n = test_addr4(127, 0, (uint8_t)(10 + i), 1, 6881);
    mdht_id nid = test_id((uint8_t)(0x10 + i));
    confirm(f, &n, &nid);
  }
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  signer s;
  signer_init(&s, 5);
  static char v[1100];
  snprintf(v, sizeof v, "996:%0996d", 0);
  assert_int_equal(strlen(v), 1000);
  mdht_id target;
  mdht_item_mutable_target(s.pk, NULL, 0, &target);
  uint8_t store[64];
  mdht_bytes tok = item_get(f, &a, &target, false, 0, store);
  assert_true(f->msg.nodes.len >= 8 * 26);
  assert_int_equal(item_put(f, &a, tok, v, &s, 1, NULL, false, 0), 'r');
  item_get(f, &a, &target, false, 0, store); /* asserts len <= 1400 */
  assert_bytes_equal_v(f, v);
  assert_int_equal(f->msg.item_sig.len, 64);
}

/* BEP 43: a read-only node stores nothing and answers nothing. */
static void test_item_read_only(void **state) {
  (void)state;
  mdht_config c;
  mdht_config_default(&c);
  c.allow_private = true;
  c.read_only = true;
  fixture *f = make(&c);
  mdht_addr a = test_addr4(127, 0, 0, 7, 7000);
  mdht_id me = test_id(0x35), target = test_id(1);
  mdht_krpc_msg *q = query(MDHT_M_GET, &me, "gt");
  q->target = target;
  assert_false(exchange(f, &a, q));
  assert_int_equal(f->events[MDHT_EV_DATAGRAM_DROPPED], 1);
  mdht_node_del(f->node);
  free(f);
}

/* ------------------------------------------------- BEP 44 client side */

typedef struct item_outcome {
  bool done;
  mdht_result r;
  uint8_t v[1000];
} item_outcome;

static void on_item(const mdht_result *r, void *user) {
  item_outcome *o = user;
  o->done = true;
  o->r = *r;
  if (r->item_vlen) memcpy(o->v, r->item_v, r->item_vlen);
  o->r.item_v = o->v;
}

/* Answers a get query with a token and, when v is given, an item. */
static void answer_item(fixture *f, const mdht_addr *from, const mdht_id *id,
                        const uint8_t *tid, size_t tl, const char *v,
                        const signer *s, int64_t seq) {
  mdht_krpc_msg r;
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_krpc_msg_init(&r, 'r');
  r.t = (mdht_bytes){tid, tl};
  r.id = *id;
  r.token = (mdht_bytes){(const uint8_t *)"tok", 3};
  if (v) r.item_v = (mdht_bytes){(const uint8_t *)v, strlen(v)};
  if (s) {
    r.item_k = (mdht_bytes){s->pk, 32};
    r.item_sig = (mdht_bytes){s->sig, 64};
    r.has_seq = true;
    r.seq = seq;
  }
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  assert_true(n > 0);
  mdht_node_recv(f->node, from, buf, (size_t)n, f->now);
}

/* Drains the send queue; each of the n addresses must have been sent
 * exactly one query of `method`: its transaction id and bytes. */
typedef struct item_q {
  uint8_t tid[16];
  size_t tl;
  bool seen;
  uint8_t pkt[MDHT_MAX_PACKET];
  size_t len;
} item_q;

static void take_queries(fixture *f, const mdht_addr *to, size_t n,
                         mdht_method method, item_q *out) {
  uint8_t tmp[MDHT_MAX_PACKET];
  mdht_addr dst;
  int len;
  for (size_t i = 0; i < n; i++)
    out[i].seen = false;
  while ((len = mdht_node_next_packet(f->node, &dst, tmp, sizeof tmp)) > 0) {
    mdht_krpc_msg x;
    assert_int_equal(
        mdht_krpc_decode(&x, tmp, (size_t)len, f->toks, MDHT_KRPC_TOKENS), 0);
    if (x.y != 'q' || x.method != method) continue;
    for (size_t i = 0; i < n; i++) {
      if (!mdht_addr_eq(&dst, &to[i])) continue;
      assert_false(out[i].seen);
      out[i].seen = true;
      memcpy(out[i].tid, x.t.p, x.t.len);
      out[i].tl = x.t.len;
      memcpy(out[i].pkt, tmp, (size_t)len);
      out[i].len = (size_t)len;
    }
  }
  for (size_t i = 0; i < n; i++)
    assert_true(out[i].seen);
}

static void three_nodes(fixture *f, mdht_addr *a, mdht_id *id) {
  for (int i = 0; i < 3; i++) {
    a[i] = test_addr4(127, 0, (uint8_t)(60 + i), 1, 6881);
    id[i] = test_id((uint8_t)(0x21 + i));
    confirm(f, &a[i], &id[i]);
  }
  drain(f);
}

/* Runs ticks until the operation reports (bounded). */
static void until_done(fixture *f, item_outcome *o) {
  for (int i = 0; i < 100 && !o->done; i++) {
    f->now += 100;
    mdht_node_tick(f->node, f->now);
    drain(f);
  }
  assert_true(o->done);
}

/* An immutable get ignores a value that does not hash to the target and
 * stops at the first that does, without waiting for the others. */
static void test_item_get_immutable_client(void **state) {
  fixture *f = *state;
  mdht_addr a[3];
  mdht_id id[3];
  three_nodes(f, a, id);
  const char *v = "4:good";
  mdht_id target;
  mdht_item_immutable_target((const uint8_t *)v, strlen(v), &target);
  item_outcome o = {0};
  assert_true(mdht_node_get_immutable(f->node, &target, on_item, &o, f->now) >
              0);
  item_q q[3];
  take_queries(f, a, 3, MDHT_M_GET, q);
  f->now += 5;
  answer_item(f, &a[0], &id[0], q[0].tid, q[0].tl, "3:bad", NULL, 0);
  answer_item(f, &a[1], &id[1], q[1].tid, q[1].tl, v, NULL, 0);
  mdht_node_tick(f->node, f->now); /* a[2] has not answered: no matter */
  assert_true(o.done);
  assert_true(o.r.ok);
  assert_int_equal(o.r.kind, MDHT_M_GET);
  assert_int_equal(o.r.item_vlen, strlen(v));
  assert_memory_equal(o.v, v, strlen(v));
  assert_false(o.r.item_mutable);
  /* Nobody has it: done, ok, no value. */
  item_outcome o2 = {0};
  assert_true(mdht_node_get_immutable(f->node, &target, on_item, &o2, f->now) >
              0);
  take_queries(f, a, 3, MDHT_M_GET, q);
  for (int i = 0; i < 3; i++)
    answer_item(f, &a[i], &id[i], q[i].tid, q[i].tl, i ? NULL : "3:bad", NULL,
                0);
  until_done(f, &o2);
  assert_true(o2.r.ok);
  assert_int_equal(o2.r.item_vlen, 0);
}

/* Regression: with one node, its answer is the lookup's last, and the
 * engine ends the lookup inside the report of that answer; the item in it
 * must count all the same (it was looked at after the end, and lost). */
static void test_item_get_one_node(void **state) {
  fixture *f = *state;
  mdht_addr a = test_addr4(127, 0, 70, 1, 6881);
  mdht_id aid = test_id(0x31);
  confirm(f, &a, &aid);
  drain(f);
  signer s;
  signer_init(&s, 8);
  assert_int_equal(
      mdht_item_sign(s.sk, NULL, 0, 2, (const uint8_t *)"1:z", 3, s.sig), 0);
  item_outcome o = {0};
  assert_true(
      mdht_node_get_mutable(f->node, s.pk, NULL, 0, on_item, &o, f->now) > 0);
  item_q q[1];
  take_queries(f, &a, 1, MDHT_M_GET, q);
  answer_item(f, &a, &aid, q[0].tid, q[0].tl, "1:z", &s, 2);
  until_done(f, &o);
  assert_int_equal(o.r.item_vlen, 3);
  assert_int_equal(o.r.item_seq, 2);
}

/* A mutable get keeps the highest seq whose signature holds under the
 * key and salt asked for. */
static void test_item_get_mutable_client(void **state) {
  fixture *f = *state;
  mdht_addr a[3];
  mdht_id id[3];
  three_nodes(f, a, id);
  signer s;
  signer_init(&s, 7);
  const uint8_t *salt = (const uint8_t *)"x";
  item_outcome o = {0};
  assert_true(
      mdht_node_get_mutable(f->node, s.pk, salt, 1, on_item, &o, f->now) > 0);
  item_q q[3];
  take_queries(f, a, 3, MDHT_M_GET, q);
  f->now += 5;
  signer s1 = s, s3 = s, s9 = s;
  assert_int_equal(
      mdht_item_sign(s.sk, salt, 1, 1, (const uint8_t *)"2:v1", 4, s1.sig), 0);
  assert_int_equal(
      mdht_item_sign(s.sk, salt, 1, 3, (const uint8_t *)"2:v3", 4, s3.sig), 0);
  /* seq 9 claims v9 but signs v3: refused */
  assert_int_equal(
      mdht_item_sign(s.sk, salt, 1, 9, (const uint8_t *)"2:v3", 4, s9.sig), 0);
  answer_item(f, &a[0], &id[0], q[0].tid, q[0].tl, "2:v1", &s1, 1);
  answer_item(f, &a[1], &id[1], q[1].tid, q[1].tl, "2:v3", &s3, 3);
  answer_item(f, &a[2], &id[2], q[2].tid, q[2].tl, "2:v9", &s9, 9);
  until_done(f, &o);
  assert_true(o.r.item_mutable);
  assert_int_equal(o.r.item_seq, 3);
  assert_memory_equal(o.v, "2:v3", 4);
  assert_memory_equal(o.r.item_sig, s3.sig, 64);
  assert_memory_equal(o.r.item_k, s.pk, 32);
}

/* A mutable put without a seq: one above the highest found, signed, sent
 * with the token to every node that gave one; ok once they accept. */
static void test_item_put_mutable_client(void **state) {
  fixture *f = *state;
  mdht_addr a[3];
  mdht_id id[3];
  three_nodes(f, a, id);
  signer s;
  uint8_t seed[32];
  memset(seed, 7, sizeof seed);
  signer_init(&s, 7);
  item_outcome o = {0};
  assert_true(mdht_node_put_mutable(f->node, seed, NULL, 0,
                                    (const uint8_t *)"3:new", 5, -1, false, 0,
                                    on_item, &o, f->now) > 0);
  item_q q[3];
  take_queries(f, a, 3, MDHT_M_GET, q);
  f->now += 5;
  assert_int_equal(
      mdht_item_sign(s.sk, NULL, 0, 4, (const uint8_t *)"3:old", 5, s.sig), 0);
  answer_item(f, &a[0], &id[0], q[0].tid, q[0].tl, "3:old", &s, 4);
  answer_item(f, &a[1], &id[1], q[1].tid, q[1].tl, NULL, NULL, 0);
  answer_item(f, &a[2], &id[2], q[2].tid, q[2].tl, NULL, NULL, 0);
  f->now += 5;
  mdht_node_tick(f->node, f->now);
  take_queries(f, a, 3, MDHT_M_PUT, q);
  for (int i = 0; i < 3; i++) {
    mdht_krpc_msg m;
    mdht_be_tok toks[64];
    assert_int_equal(mdht_krpc_decode(&m, q[i].pkt, q[i].len, toks, 64), 0);
    assert_true(m.has_seq);
    assert_int_equal(m.seq, 5);
    assert_int_equal(m.item_v.len, 5);
    assert_memory_equal(m.item_v.p, "3:new", 5);
    assert_memory_equal(m.token.p, "tok", 3);
    assert_memory_equal(m.item_k.p, s.pk, 32);
    assert_true(mdht_item_verify(m.item_k.p, m.item_sig.p, NULL, 0, 5,
                                 m.item_v.p, m.item_v.len));
  }
  answer(f, &a[0], &id[0], q[0].tid, q[0].tl);
  answer(f, &a[1], &id[1], q[1].tid, q[1].tl);
  assert_false(o.done);
  answer(f, &a[2], &id[2], q[2].tid, q[2].tl);
  assert_true(o.done);
  assert_true(o.r.ok);
  assert_int_equal(o.r.kind, MDHT_M_PUT);
  assert_int_equal(o.r.nnodes, 3);
  assert_int_equal(o.r.item_seq, 5);
  /* Bad arguments. */
  assert_int_equal(mdht_node_put_immutable(f->node, (const uint8_t *)"3:ab", 4,
                                           on_item, &o, f->now),
                   MDHT_ERR_INVAL); /* not one bencoded value */
  uint8_t salt[65] = {0};
  assert_int_equal(
      mdht_node_get_mutable(f->node, s.pk, salt, 65, on_item, &o, f->now),
      MDHT_ERR_INVAL);
}

/* An immutable put: the target's nodes get the value as given. */
static void test_item_put_immutable_client(void **state) {
  fixture *f = *state;
  mdht_addr a[3];
  mdht_id id[3];
  three_nodes(f, a, id);
  item_outcome o = {0};
  const char *v = "li1ei2ee";
  assert_true(mdht_node_put_immutable(f->node, (const uint8_t *)v, strlen(v),
                                      on_item, &o, f->now) > 0);
  item_q q[3];
  take_queries(f, a, 3, MDHT_M_GET, q);
  answer_item(f, &a[0], &id[0], q[0].tid, q[0].tl, NULL, NULL, 0);
  mdht_krpc_msg r; /* a[1] gives no token: it gets no put */
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_krpc_msg_init(&r, 'r');
  r.t = (mdht_bytes){q[1].tid, q[1].tl};
  r.id = id[1];
  int n = mdht_krpc_encode(&r, buf, sizeof buf);
  mdht_node_recv(f->node, &a[1], buf, (size_t)n, f->now);
  answer_item(f, &a[2], &id[2], q[2].tid, q[2].tl, NULL, NULL, 0);
  mdht_node_tick(f->node, f->now);
  item_q p[2];
  mdht_addr two[2] = {a[0], a[2]};
  take_queries(f, two, 2, MDHT_M_PUT, p);
  mdht_krpc_msg m;
  mdht_be_tok toks[64];
  assert_int_equal(mdht_krpc_decode(&m, p[0].pkt, p[0].len, toks, 64), 0);
  assert_int_equal(m.item_v.len, strlen(v));
  assert_memory_equal(m.item_v.p, v, strlen(v));
  assert_int_equal(m.item_k.len, 0);
  answer(f, &a[0], &id[0], p[0].tid, p[0].tl);
  /* a[2] refuses: an error reply counts as a failure */
  uint8_t eb[256];
  int en =
      mdht_krpc_encode_error(eb, sizeof eb, (mdht_bytes){p[1].tid, p[1].tl},
                             205, "too big", NULL, (mdht_bytes){0});
  mdht_node_recv(f->node, &a[2], eb, (size_t)en, f->now);
  assert_true(o.done);
  assert_true(o.r.ok);
  assert_int_equal(o.r.nnodes, 1);
  assert_int_equal(o.r.failures, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_item_immutable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_item_mutable, setup, teardown),
      cmocka_unit_test_setup_teardown(test_item_size_bound, setup, teardown),
      cmocka_unit_test(test_item_read_only),
      cmocka_unit_test_setup_teardown(test_item_get_immutable_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_item_get_mutable_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_item_get_one_node, setup, teardown),
      cmocka_unit_test_setup_teardown(test_item_put_mutable_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_item_put_immutable_client, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_ping_response_fields, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_fills_few_at_a_time, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_trim_gives_queue_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_memory_follows_content, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_confirm_then_find_node, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_query_timeout_on_virtual_time, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_token_lifetime, setup, teardown),
      cmocka_unit_test_setup_teardown(test_announce_then_values, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_get_peers_size_bound, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_get_peers_scrape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_input_is_counted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_unknown_method_204, setup, teardown),
      cmocka_unit_test_teardown(test_rate_limit, teardown),
      cmocka_unit_test_teardown(test_read_only, teardown),
      cmocka_unit_test_setup_teardown(test_ro_sender_not_added, setup,
                                      teardown),
      cmocka_unit_test_teardown(test_queue_bound, teardown),
      cmocka_unit_test_teardown(test_enforce_node_id, teardown),
      cmocka_unit_test_setup_teardown(test_internal_op_is_small, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_retries_lost_self_lookup,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_soft_timeout_adapts_to_rtt, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_bootstrap_island_rejoins_through_router, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_first_retry_after_1s,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_bootstrap_router_answer_joins_despite_joiners, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_bootstrap_router_lookup_lost_asks_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fill_lookup_stops_when_bucket_full,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_routers_one_round, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bootstrap_not_stalled_by_queriers,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_without_id_not_added, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_stats_lookups_running, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_announce_without_tokens_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_scrape_merges_filters, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tid_any_length_echoed, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_tid_too_long_for_reply, setup,
                                      teardown),
      cmocka_unit_test_teardown(test_sample_infohashes_size_bound, teardown),
      cmocka_unit_test_teardown(test_bep42_new_id_from_vote, teardown),
      cmocka_unit_test_teardown(test_bep42_private_keeps_id, teardown),
      cmocka_unit_test_teardown(test_bep42_fixed_or_valid_id_kept, teardown),
      cmocka_unit_test_teardown(test_bep42_unsolicited_votes_ignored, teardown),
      cmocka_unit_test_teardown(test_rate_limit_v6_tiers, teardown),
      cmocka_unit_test_teardown(test_matched_reply_passes_limit, teardown),
      cmocka_unit_test_teardown(test_reply_budget, teardown),
      cmocka_unit_test_teardown(test_reply_budget_off, teardown),
      cmocka_unit_test_setup_teardown(test_order_query_from_new_node, setup,
                                      teardown),
      cmocka_unit_test_teardown(test_order_response_then_table, teardown),
      cmocka_unit_test_teardown(test_order_timeout_then_replaced, teardown),
      cmocka_unit_test_setup_teardown(test_unsubscribe_any_handle, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_visit_table, setup, teardown),
      cmocka_unit_test_setup_teardown(test_visit_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
