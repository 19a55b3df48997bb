#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"
#include "crawl.h"
#include "id.h"
#include "testutil.h"

/* ------------------------------------------------------------ harness */

/* A made-up network: nodes with ids, addresses, stored info-hashes, an
 * interval and a way of answering. The crawl's queries are recorded; the
 * test delivers their answers (or failures) in order, on virtual time. */
#define NMAX 128
#define QMAX 4096
#define SMAX 1200

enum { ANSWER, ERR204, NOSAMPLES, SILENT };

typedef struct fnode {
  mdht_id id;
  mdht_addr addr;
  int how;
  int64_t interval;
  uint32_t nih;
  mdht_id ih[SMAX];
  /* if set, the nodes it names instead of the closest to the target */
  mdht_crawl_node fixed[8];
  uint32_t nfixed;
} fnode;

typedef struct query {
  uint32_t slot;
  mdht_id target, id;
  mdht_addr addr;
  mdht_time at;
  bool done;
} query;

typedef struct h {
  fnode *net;
  uint32_t nnet;
  query q[QMAX];
  uint32_t nq, next; /* next: first query not yet answered */
  mdht_id found[70000];
  mdht_addr found_from[8];
  uint32_t nfound;
  uint64_t rnd;
  mdht_time now;
  mdht_crawl *c;
} h;

static int h_send(void *user, uint32_t slot, const mdht_id *target,
                  const mdht_id *id, const mdht_addr *addr, mdht_time now) {
  h *t = user;
  assert_true(t->nq < QMAX);
  t->q[t->nq++] = (query){
      .slot = slot, .target = *target, .id = *id, .addr = *addr, .at = now};
  return 0;
}

static void h_found(void *user, const mdht_id *ih, const mdht_addr *from) {
  h *t = user;
  /* Dedupe: no info-hash is ever reported twice. */
  for (uint32_t i = 0; i < t->nfound && t->nfound < 2000; i++)
    assert_false(mdht_id_eq(&t->found[i], ih));
  if (t->nfound < 8) t->found_from[t->nfound] = *from;
  t->found[t->nfound++] = *ih;
}

static void h_random(void *user, void *buf, size_t len) {
  h *t = user;
  test_random(buf, len, &t->rnd);
}

static mdht_crawl_params params(mdht_time deadline, uint32_t max) {
  mdht_crawl_params p = {.max = max,
                         .deadline = deadline,
                         .alpha = 3,
                         .k = 8,
                         .soft_timeout = 1000,
                         .family = MDHT_AF_INET,
                         .self = test_id(0xee),
                         .hash_seed = 42};
  return p;
}

static void h_init(h *t, fnode *net, uint32_t n, const mdht_crawl_params *p) {
  memset(t, 0, sizeof *t);
  t->net = net;
  t->nnet = n;
  t->rnd = 7;
  mdht_crawl_cbs cb = {
      .send = h_send, .found = h_found, .random = h_random, .user = t};
  assert_int_equal(mdht_crawl_new(&t->c, p, &cb), 0);
}

static fnode *find(h *t, const mdht_addr *a) {
  for (uint32_t i = 0; i < t->nnet; i++)
    if (mdht_addr_eq(&t->net[i].addr, a)) return &t->net[i];
  return NULL;
}

/* The 8 nodes of the network closest to `target`, closest first, but for
 * `self` (a node does not name itself). */
static size_t closest(h *t, const mdht_id *target, const fnode *self,
                      mdht_crawl_node *out) {
  bool taken[NMAX] = {false};
  taken[self - t->net] = true;
  size_t n = 0;
  for (; n < 8 && n + 1 < t->nnet; n++) {
    int best = -1;
    for (uint32_t i = 0; i < t->nnet; i++)
      if (!taken[i] && (best < 0 || mdht_id_cmp_dist(target, &t->net[i].id,
                                                     &t->net[best].id) < 0))
        best = (int)i;
    taken[best] = true;
    out[n] =
        (mdht_crawl_node){.id = t->net[best].id, .addr = t->net[best].addr};
  }
  return n;
}

/* Answers query `i` as its node would. */
static void deliver(h *t, uint32_t i) {
  query *q = &t->q[i];
  fnode *f = find(t, &q->addr);
  assert_non_null(f);
  q->done = true;
  if (f->how == SILENT) {
    mdht_crawl_on_failure(t->c, q->slot, &q->addr, 0, t->now);
    return;
  }
  if (f->how == ERR204) {
    mdht_crawl_on_failure(t->c, q->slot, &q->addr, 204, t->now);
    return;
  }
  mdht_crawl_node nodes[8];
  size_t nn = f->nfixed;
  if (nn)
    memcpy(nodes, f->fixed, sizeof nodes);
  else
    nn = closest(t, &q->target, f, nodes);
  mdht_crawl_reply r = {.id = f->id,
                        .samples =
                            f->how == NOSAMPLES ? NULL : (const uint8_t *)f->ih,
                        .nsamples = f->how == NOSAMPLES ? 0 : f->nih,
                        .interval = f->interval,
                        .nodes = nodes,
                        .nnodes = nn};
  mdht_crawl_on_response(t->c, q->slot, &q->addr, &r, t->now);
}

/* Answers every query, those sent meanwhile too, 10 ms apart. */
static void run(h *t) {
  while (t->next < t->nq) {
    t->now += 10;
    deliver(t, t->next++);
  }
}

static uint32_t queries_to(h *t, const mdht_addr *a) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < t->nq; i++)
    n += mdht_addr_eq(&t->q[i].addr, a);
  return n;
}

/* n nodes at 10.0.i.1 (a /24 each: "one per /24" keeps them all), random
 * ids, `per` info-hashes each out of a pool of `pool`. */
static fnode *make_net(uint32_t n, uint32_t per, uint32_t pool, uint64_t seed) {
  fnode *net = calloc(n, sizeof *net);
  assert_non_null(net);
  for (uint32_t i = 0; i < n; i++) {
    test_random(net[i].id.b, MDHT_ID_LEN, &seed);
    net[i].addr = test_host4(i, 6881);
    net[i].how = ANSWER;
    net[i].interval = 21600;
    net[i].nih = per;
    for (uint32_t j = 0; j < per; j++) {
      uint32_t v = (i * 7 + j * 13) % pool;
      memset(net[i].ih[j].b, 0, MDHT_ID_LEN);
      net[i].ih[j].b[0] = 0xab;
      net[i].ih[j].b[1] = (uint8_t)(v >> 8);
      net[i].ih[j].b[2] = (uint8_t)v;
    }
  }
  return net;
}

/* -------------------------------------------------------------- tests */

/* From one seed, the walk reaches every node of a network through the
 * answers' nodes, asks each exactly once (their 6 h interval is beyond
 * the deadline), reports each distinct info-hash once, and ends when
 * nobody is left. */
static void walk(uint32_t n, uint64_t seed) {
  enum { POOL = 300 };
  fnode *net = make_net(n, 20, POOL, seed);
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(3600 * 1000, 0);
  h_init(t, net, n, &p);
  assert_int_equal(mdht_crawl_add(t->c, &net[0].id, &net[0].addr), 0);
  mdht_crawl_tick(t->c, t->now);
  assert_int_equal(t->nq, 1);
  run(t);
  const mdht_crawl_stats *st = mdht_crawl_get_stats(t->c);
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_EXHAUSTED);
  uint32_t missed = 0;
  for (uint32_t i = 0; i < n; i++)
    missed += queries_to(t, &net[i].addr) != 1;
  assert_int_equal(missed, 0);
  /* Every pool value is held by some node: (i*7 + j*13) % 300 covers it
   * once there are 50 nodes. */
  assert_int_equal(t->nfound, POOL);
  assert_int_equal(st->distinct, POOL);
  assert_int_equal(st->samples, (uint64_t)n * 20);
  assert_int_equal(st->answered, n);
  assert_int_equal(st->queries, n);
  assert_int_equal(mdht_crawl_next_deadline(t->c), UINT64_MAX);
  /* Targets: every other one is the node's own id (its neighbourhood). */
  for (uint32_t i = 1; i < t->nq; i += 2)
    assert_true(mdht_id_eq(&t->q[i].target, &t->q[i].id));
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* Over 60 made-up networks. A walk that asked only for neighbourhoods
 * missed 6 of 100 nodes (those alone in a small subtree); one that asked
 * for random targets in random subtrees missed a cluster of 13 (seed 6,
 * 100 nodes); aiming at the least known region misses none (and none of
 * 180 networks with seeds up to 60). */
static void test_walk_reaches_all(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    walk(50, seed);
    walk(100, seed);
    walk(NMAX, seed);
  }
}

/* A node that gave interval 120 s is not asked again before 120 s have
 * passed, is asked then, and at most MDHT_CRAWL_REVISITS times again. */
static void test_interval_honoured(void **state) {
  (void)state;
  fnode *net = make_net(1, 5, 5, 2);
  net[0].interval = 120;
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(3600 * 1000, 0);
  h_init(t, net, 1, &p);
  mdht_crawl_add(t->c, &net[0].id, &net[0].addr);
  mdht_crawl_tick(t->c, 0);
  assert_int_equal(t->nq, 1);
  t->now = 100;
  deliver(t, 0);
  t->next = 1;
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_RUNNING);
  assert_int_equal(mdht_crawl_next_deadline(t->c), 100 + 120000);
  mdht_crawl_tick(t->c, 100 + 119999);
  assert_int_equal(t->nq, 1);
  mdht_crawl_tick(t->c, 100 + 120000);
  assert_int_equal(t->nq, 2);
  assert_int_equal(t->q[1].at, 100 + 120000);
  /* The same samples again: nothing new is reported. */
  t->now = t->q[1].at + 5;
  deliver(t, 1);
  assert_int_equal(t->nfound, 5);
  for (int round = 0; round < 10; round++)
    mdht_crawl_tick(t->c, t->now += 120000);
  if (t->nq == 3) deliver(t, 2);
  for (int round = 0; round < 10; round++)
    mdht_crawl_tick(t->c, t->now += 120000);
  assert_int_equal(t->nq, 1 + MDHT_CRAWL_REVISITS);
  assert_int_equal(mdht_crawl_get_stats(t->c)->revisits, MDHT_CRAWL_REVISITS);
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_EXHAUSTED);
  assert_int_equal(mdht_crawl_get_stats(t->c)->samples, 15);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* An interval of 0 (or a short one) waits MDHT_CRAWL_MIN_INTERVAL_MS, and
 * no revisit is planned past the deadline: the crawl ends instead of
 * waiting. */
static void test_interval_floor_and_deadline(void **state) {
  (void)state;
  fnode *net = make_net(1, 1, 1, 3);
  net[0].interval = 0;
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(100000, 0);
  h_init(t, net, 1, &p);
  mdht_crawl_add(t->c, &net[0].id, &net[0].addr);
  mdht_crawl_tick(t->c, 0);
  deliver(t, 0);
  assert_int_equal(mdht_crawl_next_deadline(t->c), MDHT_CRAWL_MIN_INTERVAL_MS);
  mdht_crawl_tick(t->c, MDHT_CRAWL_MIN_INTERVAL_MS - 1);
  assert_int_equal(t->nq, 1);
  mdht_crawl_tick(t->c, MDHT_CRAWL_MIN_INTERVAL_MS);
  assert_int_equal(t->nq, 2);
  t->now = MDHT_CRAWL_MIN_INTERVAL_MS;
  deliver(t, 1);
  /* The next visit (at 120 s) falls after the deadline (100 s). */
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_EXHAUSTED);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* A node answering error 204, and one answering without samples (it
 * treats the method as find_node), count as unsupported, are never asked
 * again, and the nodes the second one names are still asked. */
static void test_unsupported_skipped(void **state) {
  (void)state;
  fnode *net = make_net(3, 4, 12, 4);
  net[0].how = ERR204;
  net[1].how = NOSAMPLES;
  net[1].interval = 0;
  net[1].fixed[0] = (mdht_crawl_node){.id = net[2].id, .addr = net[2].addr};
  net[1].nfixed = 1;
  for (uint32_t j = 0; j < 4; j++)
    net[2].ih[j].b[5] = 0x77;
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(3600 * 1000, 0);
  h_init(t, net, 3, &p);
  mdht_crawl_add(t->c, &net[0].id, &net[0].addr);
  mdht_crawl_add(t->c, &net[1].id, &net[1].addr);
  mdht_crawl_tick(t->c, 0);
  run(t);
  for (int i = 0; i < 10; i++)
    mdht_crawl_tick(t->c, t->now += 600000);
  const mdht_crawl_stats *st = mdht_crawl_get_stats(t->c);
  assert_int_equal(st->unsupported, 2);
  assert_int_equal(st->answered, 1);
  assert_int_equal(queries_to(t, &net[0].addr), 1);
  assert_int_equal(queries_to(t, &net[1].addr), 1);
  assert_int_equal(queries_to(t, &net[2].addr), 1);
  assert_int_equal(t->nfound, 4);
  assert_true(mdht_addr_eq(&t->found_from[0], &net[2].addr));
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_EXHAUSTED);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* `max` stops the crawl at exactly max info-hashes, even in the middle of
 * an answer, and nothing more is sent. */
static void test_stop_at_max(void **state) {
  (void)state;
  enum { N = 20 };
  fnode *net = make_net(N, 30, 600, 5);
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(3600 * 1000, 45);
  h_init(t, net, N, &p);
  for (uint32_t i = 0; i < N; i++)
    mdht_crawl_add(t->c, &net[i].id, &net[i].addr);
  mdht_crawl_tick(t->c, 0);
  assert_int_equal(t->nq, 3); /* alpha */
  run(t);
  assert_int_equal(t->nfound, 45);
  assert_int_equal(mdht_crawl_get_stats(t->c)->distinct, 45);
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_MAX);
  uint32_t sent = t->nq;
  assert_true(sent < N);
  mdht_crawl_tick(t->c, t->now + 1000000);
  assert_int_equal(t->nq, sent);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* Bounds on queries in flight: alpha young ones; one more once a query is
 * older than the soft timeout; MDHT_CRAWL_MAX_INFLIGHT in all. Silent
 * nodes fail, and the deadline ends the crawl. */
static void test_inflight_and_deadline(void **state) {
  (void)state;
  enum { N = 100 };
  fnode *net = make_net(N, 1, 1, 6);
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(60000, 0);
  h_init(t, net, N, &p);
  for (uint32_t i = 0; i < N; i++)
    mdht_crawl_add(t->c, &net[i].id, &net[i].addr);
  mdht_crawl_tick(t->c, 0);
  assert_int_equal(t->nq, 3);
  assert_int_equal(mdht_crawl_next_deadline(t->c), 1000);
  mdht_crawl_tick(t->c, 999);
  assert_int_equal(t->nq, 3);
  mdht_crawl_tick(t->c, 1000);
  assert_int_equal(t->nq, 6);
  for (mdht_time now = 1000; now < 50000; now += 1000)
    mdht_crawl_tick(t->c, now);
  assert_int_equal(t->nq, MDHT_CRAWL_MAX_INFLIGHT);
  /* One failure frees one place. */
  net[0].how = SILENT;
  t->now = 50000;
  deliver(t, 0);
  assert_int_equal(t->nq, MDHT_CRAWL_MAX_INFLIGHT + 1);
  assert_int_equal(mdht_crawl_get_stats(t->c)->failed, 1);
  /* An answer from another address than the query's, or for a slot not
   * in flight, is ignored. */
  mdht_crawl_reply r = {
      .id = net[1].id, .samples = net[1].ih->b, .nsamples = 1};
  mdht_crawl_on_response(t->c, t->q[1].slot, &net[5].addr, &r, 50001);
  mdht_crawl_on_response(t->c, 4000, &net[1].addr, &r, 50001);
  assert_int_equal(t->nfound, 0);
  mdht_crawl_tick(t->c, 60000);
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_DEADLINE);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* One candidate per host: the same IP on other ports, or another IP of
 * the same public /24, is not a second candidate; private addresses count
 * per IP; allow_same_ip makes it per IP and port. The candidate table is
 * bounded, and what it cannot hold is counted. */
static void test_one_per_host_and_bounds(void **state) {
  (void)state;
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(60000, 0);
  h_init(t, NULL, 0, &p);
  mdht_id id = test_id(1);
  mdht_addr a = test_addr4(8, 8, 8, 8, 1000);
  assert_int_equal(mdht_crawl_add(t->c, &id, &a), 0);
  a.port = 1001;
  assert_int_equal(mdht_crawl_add(t->c, &id, &a), MDHT_ERR_EXISTS);
  a.ip[3] = 9;
  assert_int_equal(mdht_crawl_add(t->c, &id, &a), MDHT_ERR_EXISTS);
  mdht_addr l1 = test_addr4(127, 0, 0, 1, 1), l2 = test_addr4(127, 0, 0, 2, 1);
  assert_int_equal(mdht_crawl_add(t->c, &id, &l1), 0);
  assert_int_equal(mdht_crawl_add(t->c, &id, &l2), 0);
  l2.port = 2;
  assert_int_equal(mdht_crawl_add(t->c, &id, &l2), MDHT_ERR_EXISTS);
  mdht_id self = test_id(0xee);
  mdht_addr m = test_addr4(0, 0, 0, 0, 1);
  assert_int_equal(mdht_crawl_add(t->c, &self, &l1), MDHT_ERR_ADDR);
  assert_int_equal(mdht_crawl_add(t->c, &id, &m), MDHT_ERR_ADDR);
  for (uint32_t i = 0; i < MDHT_CRAWL_MAX_NODES + 10; i++) {
    mdht_addr x = test_host4(i, 6881);
    mdht_crawl_add(t->c, &id, &x);
  }
  const mdht_crawl_stats *st = mdht_crawl_get_stats(t->c);
  assert_int_equal(st->nodes, MDHT_CRAWL_MAX_NODES);
  assert_int_equal(st->dropped, 3 + 10);
  mdht_crawl_del(t->c);

  p.allow_same_ip = true;
  h_init(t, NULL, 0, &p);
  assert_int_equal(mdht_crawl_add(t->c, &id, &l1), 0);
  l1.port = 2;
  assert_int_equal(mdht_crawl_add(t->c, &id, &l1), 0);
  assert_int_equal(mdht_crawl_add(t->c, &id, &l1), MDHT_ERR_EXISTS);
  mdht_crawl_del(t->c);
  free(t);
}

/* Only K nodes of an answer are looked at: a reply naming 30 is forged. */
static void test_k_nodes_per_answer(void **state) {
  (void)state;
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(60000, 0);
  fnode *net = make_net(1, 1, 1, 8);
  h_init(t, net, 1, &p);
  mdht_crawl_add(t->c, &net[0].id, &net[0].addr);
  mdht_crawl_tick(t->c, 0);
  mdht_crawl_node many[30];
  for (uint32_t i = 0; i < 30; i++)
    many[i] = (mdht_crawl_node){.id = test_id((uint8_t)(i + 1)),
                                .addr = test_host4(i + 1, 1)};
  mdht_crawl_reply r = {.id = net[0].id,
                        .samples = net[0].ih->b,
                        .nsamples = 1,
                        .interval = -1,
                        .nodes = many,
                        .nnodes = 30};
  mdht_crawl_on_response(t->c, t->q[0].slot, &net[0].addr, &r, 10);
  assert_int_equal(mdht_crawl_get_stats(t->c)->nodes, 1 + 8);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

/* The set of seen info-hashes is bounded: with no max, a crawl reports at
 * most MDHT_CRAWL_MAX_SEEN and then ends. */
static void test_seen_bounded(void **state) {
  (void)state;
  enum { N = 60, PER = SMAX };
  fnode *net = make_net(N, 0, 1, 9);
  for (uint32_t i = 0; i < N; i++) {
    net[i].nih = PER;
    for (uint32_t j = 0; j < PER; j++) {
      uint32_t v = i * PER + j;
      memcpy(net[i].ih[j].b, &v, sizeof v);
      net[i].ih[j].b[19] = 1;
    }
  }
  h *t = malloc(sizeof *t);
  mdht_crawl_params p = params(3600 * 1000, 0);
  h_init(t, net, N, &p);
  for (uint32_t i = 0; i < N; i++)
    mdht_crawl_add(t->c, &net[i].id, &net[i].addr);
  mdht_crawl_tick(t->c, 0);
  run(t);
  assert_int_equal(t->nfound, MDHT_CRAWL_MAX_SEEN);
  assert_int_equal(mdht_crawl_ended(t->c), MDHT_CRAWL_END_MAX);
  mdht_crawl_del(t->c);
  free(t);
  free(net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_walk_reaches_all),
      cmocka_unit_test(test_interval_honoured),
      cmocka_unit_test(test_interval_floor_and_deadline),
      cmocka_unit_test(test_unsupported_skipped),
      cmocka_unit_test(test_stop_at_max),
      cmocka_unit_test(test_inflight_and_deadline),
      cmocka_unit_test(test_one_per_host_and_bounds),
      cmocka_unit_test(test_k_nodes_per_answer),
      cmocka_unit_test(test_seen_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
