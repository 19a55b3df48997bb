#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "addr.h"
#include "bus.h"
#include "id.h"
#include "lookup.h"
#include "testutil.h"

#define SOFT 1000
#define HARD 5000
#define MAXQ 16384
#define MAXDONE 256
#define MAXTRACK 256

/* ------------------------------------------------------------ harness */

/* What the owner saw: every query the engine sent, every done callback
 * and every lookup event. */
typedef struct sent_q {
  uint32_t lookup_id;
  mdht_method method;
  mdht_id target, node_id;
  mdht_addr addr;
  mdht_time sent;
  bool closed; /* the test delivered its answer or failure */
} sent_q;

typedef struct done_rec {
  mdht_lookup_results r;
  mdht_lookup_result nodes[MDHT_LOOKUP_MAX_K];
  mdht_addr peers[MDHT_LOOKUP_MAX_PEERS];
  mdht_time at;
} done_rec;

typedef struct track {
  uint32_t lookup_id;
  uint32_t started, progress, done;
  uint32_t last_answered, last_bits, last_round;
  mdht_time started_at; /* the time of LOOKUP_STARTED */
  mdht_event done_ev;
} track;

struct sim;

typedef struct h {
  mdht_config cfg;
  mdht_bus bus;
  mdht_lookups ls;
  mdht_id self;
  mdht_time now;
  sent_q *q;
  int nq;
  done_rec *done;
  int ndone;
  track tr[MAXTRACK];
  int ntr;
  int events;
  bool fail_sends;            /* every send returns an error */
  uint16_t fail_port;         /* sends to this port return an error */
  bool check_dup_ids;         /* ids are honest: none may be queried twice */
  uint32_t max_fresh;         /* most queries of one lookup in flight and
                                 younger than SOFT, seen at a send */
  uint32_t max_open;          /* most queries of one lookup in flight */
  uint32_t max_closer_normal; /* most fresh queries to nodes closer than
                                 the one being asked, outside the end
                                 game, seen at a send (itself included) */
  struct sim *net;
} h;

static int h_send(void *user, uint32_t lookup_id, mdht_method method,
                  const mdht_id *target, const mdht_id *node_id,
                  const mdht_addr *addr, mdht_time now) {
  h *t = user;
  assert_int_not_equal(lookup_id, 0);
  assert_true(method == MDHT_M_FIND_NODE || method == MDHT_M_GET_PEERS);
  assert_false(mdht_id_eq(node_id, &t->self));
  assert_false(mdht_addr_is_martian(addr));
  uint32_t fresh = 0, open = 0, closer = 0;
  for (int i = 0; i < t->nq; i++) {
    const sent_q *p = &t->q[i];
    if (p->lookup_id != lookup_id) continue;
    /* Never the same node twice in one lookup, by address or by id. */
    assert_false(mdht_addr_eq(&p->addr, addr));
    if (t->check_dup_ids) assert_false(mdht_id_eq(&p->node_id, node_id));
    if (p->closed) continue;
    open++;
    if (now - p->sent < t->ls.soft_ms) {
      fresh++;
      closer += mdht_id_cmp_dist(target, &p->node_id, node_id) < 0;
    }
  }
  /* The alpha bound (lookup.h, "The window"): fewer than alpha fresh
   * queries to closer nodes, or K in the end game (a closer node has
   * answered); alpha in all for a lookup whose alpha was lowered. */
  const mdht_lookup *l = mdht_lookup_find(&t->ls, lookup_id);
  assert_non_null(l);
  if (l->capped) {
    assert_true(fresh < l->alpha);
  } else {
    bool end_game = false;
    for (uint32_t i = 0; i < l->n_cands; i++)
      end_game |= l->cands[i].state == MDHT_LC_ANSWERED &&
                  mdht_id_cmp_dist(target, &l->cands[i].id, node_id) < 0;
    uint32_t bound = end_game && t->cfg.k > t->cfg.alpha ? t->cfg.k : l->alpha;
    assert_true(closer < bound);
    if (!end_game)
      t->max_closer_normal =
          closer + 1 > t->max_closer_normal ? closer + 1 : t->max_closer_normal;
  }
  if (fresh + 1 > t->max_fresh) t->max_fresh = fresh + 1;
  if (open + 1 > t->max_open) t->max_open = open + 1;
  assert_true(t->nq < MAXQ);
  bool fails = t->fail_sends || (t->fail_port && addr->port == t->fail_port);
  t->q[t->nq++] = (sent_q){.lookup_id = lookup_id,
                           .method = method,
                           .target = *target,
                           .node_id = *node_id,
                           .addr = *addr,
                           .sent = now,
                           .closed = fails};
  return fails ? MDHT_ERR_NOBUF : 0;
}

static void h_done(void *user, const mdht_lookup_results *r) {
  h *t = user;
  assert_true(t->ndone < MAXDONE);
  done_rec *d = &t->done[t->ndone++];
  d->r = *r;
  assert_true(r->n_nodes <= t->cfg.k);
  assert_true(r->n_peers <= MDHT_LOOKUP_MAX_PEERS);
  memcpy(d->nodes, r->nodes, r->n_nodes * sizeof *r->nodes);
  memcpy(d->peers, r->peers, r->n_peers * sizeof *r->peers);
  d->r.nodes = d->nodes;
  d->r.peers = d->peers;
  d->at = t->now;
  /* Closest first. */
  for (uint32_t i = 1; i < r->n_nodes; i++)
    assert_true(
        mdht_id_cmp_dist(&r->target, &r->nodes[i - 1].id, &r->nodes[i].id) < 0);
}

static track *h_track(h *t, uint32_t id) {
  for (int i = 0; i < t->ntr; i++)
    if (t->tr[i].lookup_id == id) return &t->tr[i];
  assert_true(t->ntr < MAXTRACK);
  track *k = &t->tr[t->ntr++];
  memset(k, 0, sizeof *k);
  k->lookup_id = id;
  return k;
}

static void h_event(const mdht_event *ev, void *user) {
  h *t = user;
  t->events++;
  if (ev->type != MDHT_EV_LOOKUP_STARTED &&
      ev->type != MDHT_EV_LOOKUP_PROGRESS && ev->type != MDHT_EV_LOOKUP_DONE)
    fail_msg("unexpected event %d", (int)ev->type);
  track *k = h_track(t, ev->u.lookup.lookup_id);
  assert_int_equal(k->done, 0); /* nothing after DONE */
  switch (ev->type) {
  case MDHT_EV_LOOKUP_STARTED:
    assert_int_equal(k->started++, 0);
    k->started_at = ev->now;
    assert_int_equal(ev->u.lookup.elapsed_ms, 0);
    assert_int_equal(ev->u.lookup.queried, 0);
    assert_int_equal(ev->u.lookup.answered, 0);
    break;
  case MDHT_EV_LOOKUP_PROGRESS:
    assert_int_equal(k->started, 1);
    k->progress++;
    assert_int_equal(ev->u.lookup.answered, k->last_answered + 1);
    assert_true(ev->u.lookup.closest_bits >= k->last_bits);
    assert_true(ev->u.lookup.round >= k->last_round);
    assert_true(ev->u.lookup.round >= 1);
    assert_true(ev->u.lookup.queried >= ev->u.lookup.answered);
    assert_true(ev->addr.family != 0);
    k->last_answered = ev->u.lookup.answered;
    k->last_bits = ev->u.lookup.closest_bits;
    k->last_round = ev->u.lookup.round;
    break;
  default:
    /* The duration the metrics' histogram is made of. */
    assert_int_equal(ev->u.lookup.elapsed_ms, ev->now - k->started_at);
    k->done++;
    k->done_ev = *ev;
    break;
  }
}

static void h_config(mdht_config *c) {
  memset(c, 0, sizeof *c);
  c->k = 8;
  c->alpha = 3;
  c->query_timeout_ms = HARD;
  c->query_soft_timeout_ms = SOFT;
  c->max_lookups = 64;
}

static h *h_new_cfg(const mdht_config *cfg) {
  h *t = calloc(1, sizeof *t);
  assert_non_null(t);
  t->q = calloc(MAXQ, sizeof *t->q);
  t->done = calloc(MAXDONE, sizeof *t->done);
  assert_non_null(t->q);
  assert_non_null(t->done);
  t->cfg = *cfg;
  t->check_dup_ids = true;
  memset(t->self.b, 0xee, sizeof t->self.b);
  mdht_bus_init(&t->bus);
  assert_true(mdht_bus_subscribe(&t->bus, h_event, t) >= 0);
  mdht_lookup_cbs cbs = {.send = h_send, .done = h_done, .user = t};
  assert_int_equal(mdht_lookups_init(&t->ls, &t->cfg, &t->bus, &cbs, &t->self),
                   0);
  return t;
}

static h *h_new(void) {
  mdht_config c;
  h_config(&c);
  return h_new_cfg(&c);
}

static void h_del(h *t) {
  mdht_lookups_free(&t->ls);
  mdht_bus_free(&t->bus);
  free(t->q);
  free(t->done);
  free(t);
}

/* The query sent to addr in lookup `id`, or NULL. */
static sent_q *h_query(h *t, uint32_t id, const mdht_addr *addr) {
  for (int i = 0; i < t->nq; i++)
    if (t->q[i].lookup_id == id && mdht_addr_eq(&t->q[i].addr, addr))
      return &t->q[i];
  return NULL;
}

/* Checks the DONE event of a finished lookup against its results. */
static void h_check_done_event(h *t, const done_rec *d) {
  track *k = h_track(t, d->r.lookup_id);
  assert_int_equal(k->started, 1);
  assert_int_equal(k->done, 1);
  assert_int_equal(k->progress, d->r.responses);
  const mdht_event *ev = &k->done_ev;
  assert_true(mdht_id_eq(&ev->id, &d->r.target));
  assert_int_equal(ev->method, d->r.kind);
  assert_int_equal(ev->u.lookup.ok, d->r.ok);
  assert_int_equal(ev->u.lookup.queried, d->r.queries);
  assert_int_equal(ev->u.lookup.answered, d->r.responses);
  assert_int_equal(ev->u.lookup.failed, d->r.failures);
  assert_int_equal(ev->u.lookup.round, d->r.rounds);
  assert_int_equal(ev->u.lookup.peers, d->r.n_peers);
  if (d->r.n_nodes)
    assert_int_equal(ev->u.lookup.closest_bits,
                     mdht_id_common_prefix(&d->r.nodes[0].id, &d->r.target));
}

/* ------------------------------------------------- hand-made networks */

/* An id at XOR distance `d` (in the last byte) from the all-zero target,
 * so that tests can order candidates by hand. */
static mdht_id near(uint8_t d) {
  mdht_id id;
  memset(id.b, 0, sizeof id.b);
  id.b[19] = d;
  return id;
}

static mdht_lookup_node lnode(uint8_t d, uint8_t host) {
  return (mdht_lookup_node){.id = near(d),
                            .addr = test_addr4(20, host, 0, 1, 6881)};
}

static int respond(h *t, uint32_t id, const mdht_lookup_node *who,
                   const mdht_lookup_node *nodes, size_t n) {
  sent_q *q = h_query(t, id, &who->addr);
  if (q) q->closed = true;
  return mdht_lookup_on_response(&t->ls, id, &who->id, &who->addr, nodes, n,
                                 NULL, 0, NULL, 0, t->now);
}

static int fail_(h *t, uint32_t id, const mdht_lookup_node *who) {
  sent_q *q = h_query(t, id, &who->addr);
  if (q) q->closed = true;
  return mdht_lookup_on_failure(&t->ls, id, &who->addr, t->now);
}

static uint32_t start(h *t, mdht_method kind, const mdht_lookup_node *seeds,
                      size_t n) {
  mdht_id target = near(0);
  int64_t id = mdht_lookup_start(&t->ls, kind, &target, seeds, n, t->now);
  assert_true(id > 0);
  return (uint32_t)id;
}

static bool queried(h *t, uint32_t id, const mdht_lookup_node *n) {
  return h_query(t, id, &n->addr) != NULL;
}

/* ------------------------------------------------- simulated network */

#define SIM_N 500
#define SIM_KNOWN 48
#define SIM_BUCKETS 9
#define SIM_PER_BUCKET 3

typedef struct simnode {
  mdht_id id;
  mdht_addr addr;
  uint16_t known[SIM_KNOWN];
  int n_known;
  mdht_time latency; /* answer after this long */
  bool dead;         /* never answers: the owner reports a hard timeout */
  uint8_t token[40];
  uint8_t token_len;
  mdht_addr peers[8];
  int n_peers;
} simnode;

typedef struct sim {
  simnode n[SIM_N];
  uint64_t rng;
  uint32_t responses_ignored; /* answers the engine refused (late) */
  bool learned[SIM_N];        /* seeds and nodes in accepted answers */
  bool answered[SIM_N];       /* nodes whose answer was accepted */
} sim;

static uint32_t sim_rand(sim *s) {
  uint32_t r;
  test_random((uint8_t *)&r, sizeof r, &s->rng);
  return r;
}

static int sim_index(const mdht_addr *a) {
  return a->ip[1] * 256 + a->ip[2];
}

/* Inserts candidate `j` into best[] (size *n, capacity cap) by distance
 * to target. */
static void top_insert(const sim *s, const mdht_id *target, uint16_t *best,
                       int *n, int cap, uint16_t j) {
  int pos = *n;
  while (pos > 0 &&
         mdht_id_cmp_dist(target, &s->n[j].id, &s->n[best[pos - 1]].id) < 0)
    pos--;
  if (pos >= cap) return;
  int last = *n < cap ? *n : cap - 1;
  memmove(&best[pos + 1], &best[pos], (size_t)(last - pos) * sizeof *best);
  best[pos] = j;
  if (*n < cap) (*n)++;
}

/* The `cap` closest live nodes of the whole network to target. */
static int sim_truth(const sim *s, const mdht_id *target, uint16_t *best,
                     int cap) {
  int n = 0;
  for (int j = 0; j < SIM_N; j++)
    if (!s->n[j].dead) top_insert(s, target, best, &n, cap, (uint16_t)j);
  return n;
}

static bool knows(const simnode *x, int j) {
  for (int i = 0; i < x->n_known; i++)
    if (x->known[i] == j) return true;
  return false;
}

/* Each node knows its 8-16 closest peers plus a few in each of its top
 * buckets (a Kademlia routing table), so that greedy routing converges. */
static sim *sim_new(uint64_t seed) {
  sim *s = calloc(1, sizeof *s);
  assert_non_null(s);
  s->rng = seed;
  for (int i = 0; i < SIM_N; i++) {
    simnode *x = &s->n[i];
    test_random(x->id.b, sizeof x->id.b, &s->rng);
    x->addr =
        test_addr4(21, (uint8_t)(i >> 8), (uint8_t)i, 1, (uint16_t)(1000 + i));
    x->latency = 10 + sim_rand(s) % 190;
    x->token_len = 8;
    for (int b = 0; b < 8; b++)
      x->token[b] = (uint8_t)(i * 7 + b);
  }
  for (int i = 0; i < SIM_N; i++) {
    simnode *x = &s->n[i];
    int closest = 8 + i % 9;
    uint16_t best[16];
    int nb = 0;
    for (int j = 0; j < SIM_N; j++)
      if (j != i) top_insert(s, &x->id, best, &nb, closest, (uint16_t)j);
    memcpy(x->known, best, (size_t)nb * sizeof *best);
    x->n_known = nb;
    int per[SIM_BUCKETS] = {0};
    uint32_t off = sim_rand(s) % SIM_N;
    for (int m = 0; m < SIM_N; m++) {
      int j = (int)((off + (uint32_t)m) % SIM_N);
      if (j == i) continue;
      int b = mdht_id_common_prefix(&x->id, &s->n[j].id);
      if (b >= SIM_BUCKETS || per[b] >= SIM_PER_BUCKET || knows(x, j)) continue;
      per[b]++;
      x->known[x->n_known++] = (uint16_t)j;
    }
  }
  return s;
}

/* Seeds as an owner would take them from its routing table: the k
 * closest to target that node `origin` knows. */
static size_t sim_seeds(const sim *s, int origin, const mdht_id *target,
                        mdht_lookup_node *out, int k) {
  uint16_t best[MDHT_LOOKUP_MAX_K];
  int n = 0;
  const simnode *o = &s->n[origin];
  for (int i = 0; i < o->n_known; i++)
    top_insert(s, target, best, &n, k, o->known[i]);
  for (int i = 0; i < n; i++)
    out[i] =
        (mdht_lookup_node){.id = s->n[best[i]].id, .addr = s->n[best[i]].addr};
  return (size_t)n;
}

static mdht_time sim_due(const h *t, const sent_q *q) {
  const simnode *x = &t->net->n[sim_index(&q->addr)];
  return q->sent + (x->dead ? t->cfg.query_timeout_ms : x->latency);
}

static void sim_deliver(h *t, sent_q *q) {
  sim *s = t->net;
  simnode *x = &s->n[sim_index(&q->addr)];
  q->closed = true;
  int rc;
  if (x->dead) {
    rc = mdht_lookup_on_failure(&t->ls, q->lookup_id, &q->addr, t->now);
  } else {
    uint16_t best[MDHT_LOOKUP_MAX_K];
    int nb = 0;
    for (int i = 0; i < x->n_known; i++)
      top_insert(s, &q->target, best, &nb, (int)t->cfg.k, x->known[i]);
    mdht_lookup_node nodes[MDHT_LOOKUP_MAX_K];
    for (int i = 0; i < nb; i++)
      nodes[i] = (mdht_lookup_node){.id = s->n[best[i]].id,
                                    .addr = s->n[best[i]].addr};
    bool gp = q->method == MDHT_M_GET_PEERS;
    rc = mdht_lookup_on_response(
        &t->ls, q->lookup_id, &x->id, &x->addr, nodes, (size_t)nb,
        gp ? x->peers : NULL, gp ? (size_t)x->n_peers : 0, gp ? x->token : NULL,
        gp ? x->token_len : 0, t->now);
  }
  if (rc == MDHT_ERR_NOTFOUND) {
    s->responses_ignored++;
    return;
  }
  assert_int_equal(rc, 0);
  if (x->dead) return;
  s->answered[sim_index(&x->addr)] = true;
  for (int i = 0; i < x->n_known; i++) {
    /* Recomputed: which of x's nodes it just returned. */
    int rank = 0;
    for (int j = 0; j < x->n_known; j++)
      if (mdht_id_cmp_dist(&q->target, &s->n[x->known[j]].id,
                           &s->n[x->known[i]].id) < 0)
        rank++;
    if (rank < (int)t->cfg.k) s->learned[x->known[i]] = true;
  }
}

/* Runs virtual time until nothing is pending or `limit`: at each step the
 * answers due are delivered first, then the engine's timers. */
static void sim_run(h *t, mdht_time limit) {
  for (int steps = 0;; steps++) {
    /* Time must move: a timer that keeps firing at the same instant is a
     * bug, not a long test. */
    assert_true(steps < 100000);
    mdht_time next = mdht_lookups_next_deadline(&t->ls);
    for (int i = 0; i < t->nq; i++)
      if (!t->q[i].closed) {
        mdht_time d = sim_due(t, &t->q[i]);
        if (d < next) next = d;
      }
    if (next == UINT64_MAX || next > limit) break;
    if (next > t->now) t->now = next;
    /* Index loop: deliveries append new queries. */
    for (int i = 0; i < t->nq; i++)
      if (!t->q[i].closed && sim_due(t, &t->q[i]) <= t->now)
        sim_deliver(t, &t->q[i]);
    mdht_lookups_tick(&t->ls, t->now);
  }
}

/* The results are exactly the k closest live nodes that the lookup
 * heard of (seeds and accepted answers): the termination rule, on a
 * network whose answers may name dead nodes and so hide live ones. */
static void assert_closest_learned(const h *t, const done_rec *d) {
  uint16_t best[MDHT_LOOKUP_MAX_K];
  int n = 0;
  for (int j = 0; j < SIM_N; j++)
    if (t->net->learned[j] && !t->net->n[j].dead)
      top_insert(t->net, &d->r.target, best, &n, (int)t->cfg.k, (uint16_t)j);
  assert_int_equal(d->r.n_nodes, n);
  for (int i = 0; i < n; i++)
    assert_true(mdht_id_eq(&d->nodes[i].id, &t->net->n[best[i]].id));
}

/* The results are exactly the k closest nodes whose answers the engine
 * accepted (since answered[] was last cleared): the result of a lookup
 * that does not wait for every node. */
static void assert_closest_answered(const h *t, const done_rec *d) {
  uint16_t best[MDHT_LOOKUP_MAX_K];
  int n = 0;
  for (int j = 0; j < SIM_N; j++)
    if (t->net->answered[j])
      top_insert(t->net, &d->r.target, best, &n, (int)t->cfg.k, (uint16_t)j);
  assert_int_equal(d->r.n_nodes, n);
  for (int i = 0; i < n; i++)
    assert_true(mdht_id_eq(&d->nodes[i].id, &t->net->n[best[i]].id));
}

static h *sim_h(uint64_t seed) {
  h *t = h_new();
  t->net = sim_new(seed);
  return t;
}

static void sim_h_del(h *t) {
  free(t->net);
  h_del(t);
}

static mdht_id rand_id(sim *s) {
  mdht_id id;
  test_random(id.b, sizeof id.b, &s->rng);
  return id;
}

static const done_rec *done_of(const h *t, uint32_t id) {
  for (int i = 0; i < t->ndone; i++)
    if (t->done[i].r.lookup_id == id) return &t->done[i];
  return NULL;
}

/* The results are exactly the true k closest live nodes of the network. */
static void assert_true_closest(const h *t, const done_rec *d) {
  uint16_t truth[MDHT_LOOKUP_MAX_K];
  int n = sim_truth(t->net, &d->r.target, truth, (int)t->cfg.k);
  assert_int_equal(d->r.n_nodes, n);
  for (int i = 0; i < n; i++) {
    const simnode *x = &t->net->n[truth[i]];
    assert_true(mdht_id_eq(&d->nodes[i].id, &x->id));
    assert_true(mdht_addr_eq(&d->nodes[i].addr, &x->addr));
  }
}

/* ---------------------------------------------------------------- tests */

static void test_init_bounds(void **state) {
  (void)state;
  mdht_config c;
  mdht_lookups ls;
  mdht_lookup_cbs cbs = {.send = h_send};
  h_config(&c);
  assert_int_equal(mdht_lookups_init(&ls, NULL, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  mdht_lookup_cbs nosend = {0};
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &nosend, NULL),
                   MDHT_ERR_INVAL);
  c.k = 0;
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  c.k = MDHT_LOOKUP_MAX_K + 1;
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  h_config(&c);
  c.alpha = 0;
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  h_config(&c);
  c.max_lookups = 0;
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  h_config(&c);
  c.query_soft_timeout_ms = HARD + 1;
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL),
                   MDHT_ERR_INVAL);
  h_config(&c);
  assert_int_equal(mdht_lookups_init(&ls, &c, NULL, &cbs, NULL), 0);
  assert_int_equal(mdht_lookups_next_deadline(&ls), UINT64_MAX);
  assert_int_equal(mdht_lookups_tick(&ls, 12345), 0);
  assert_null(mdht_lookup_find(&ls, 1));
  mdht_lookups_free(&ls);
  mdht_lookups_free(&ls); /* idempotent */
}

static void test_start_errors(void **state) {
  (void)state;
  h *t = h_new();
  mdht_id target = near(0);
  mdht_lookup_node good = lnode(1, 1);
  assert_int_equal(mdht_lookup_start(&t->ls, MDHT_M_PING, &target, &good, 1, 0),
                   MDHT_ERR_INVAL);
  assert_int_equal(
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, NULL, &good, 1, 0),
      MDHT_ERR_INVAL);
  assert_int_equal(
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, NULL, 0, 0),
      MDHT_ERR_AGAIN);
  /* Only unusable seeds: martian, private, ourselves. */
  mdht_lookup_node bad[3] = {
      {.id = near(1), .addr = test_addr4(0, 0, 0, 0, 6881)},
      {.id = near(2), .addr = test_addr4(192, 168, 1, 1, 6881)},
      {.id = t->self, .addr = test_addr4(20, 9, 0, 1, 6881)}};
  assert_int_equal(
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, bad, 3, 0),
      MDHT_ERR_AGAIN);
  assert_int_equal(t->nq, 0);
  assert_int_equal(t->events, 0);
  assert_int_equal(t->ls.n_active, 0);
  /* A lookup that never started holds no slot. */
  assert_int_equal(t->ls.n_alloc, 0);
  assert_null(t->ls.slots[0]);
  h_del(t);
}

/* The termination rule and the quality of the result: on a complete,
 * responsive network the lookup ends with exactly the true K closest. */
static void test_converges_to_true_closest(void **state) {
  (void)state;
  h *t = sim_h(1);
  for (int round = 0; round < 24; round++) {
    mdht_id target = rand_id(t->net);
    int origin = (int)(sim_rand(t->net) % SIM_N);
    t->self = t->net->n[origin].id;
    t->ls.self = t->self; /* the origin is "us": never queried */
    mdht_lookup_node seeds[8];
    size_t ns = sim_seeds(t->net, origin, &target, seeds, 8);
    mdht_time t0 = t->now;
    int nd = t->ndone;
    int64_t id =
        mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, t0);
    assert_true(id > 0);
    sim_run(t, UINT64_MAX - 1);
    assert_int_equal(t->ndone, nd + 1);
    const done_rec *d = &t->done[nd];
    assert_int_equal(d->r.lookup_id, (uint32_t)id);
    assert_true(d->r.ok);
    assert_int_equal(d->r.kind, MDHT_M_FIND_NODE);
    assert_true(mdht_id_eq(&d->r.target, &target));
    /* Truth excludes the origin, like the engine. */
    simnode saved = t->net->n[origin];
    t->net->n[origin].dead = true;
    assert_true_closest(t, d);
    t->net->n[origin] = saved;
    assert_int_equal(d->r.failures, 0);
    /* Queries to nodes beyond the K-th responder may still be out. */
    assert_true(d->r.responses <= d->r.queries);
    assert_true(d->r.queries - d->r.responses <= t->cfg.alpha + t->cfg.k);
    assert_true(d->r.rounds >= 2);
    assert_true(d->r.rounds <= d->r.queries);
    assert_true(d->r.queries >= t->cfg.k);
    assert_true(d->r.queries < 80);
    /* All answers are well under the soft timeout. */
    assert_true(d->r.elapsed < SOFT);
    assert_int_equal(d->r.elapsed, d->at - t0);
    assert_int_equal(d->r.n_peers, 0);
    for (uint32_t i = 0; i < d->r.n_nodes; i++)
      assert_int_equal(d->nodes[i].token_len, 0);
    h_check_done_event(t, d);
  }
  /* Outside the end game, never alpha fresh queries to closer nodes at a
   * send (h_send), and the bound is reached; in all, more may be out. */
  assert_int_equal(t->max_closer_normal, t->cfg.alpha);
  assert_true(t->max_fresh >= t->cfg.alpha);
  assert_int_equal(t->ls.n_active, 0);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), UINT64_MAX);
  sim_h_del(t);
}

/* The precise alpha bound under slow nodes: outside the end game, fresh
 * queries (younger than the soft timeout) to nodes closer than the one
 * asked never reach alpha (h_send); with slow nodes, more than alpha are
 * in flight in all. A slow node's answer counts when it comes before
 * the end; once K others have answered the lookup does not wait for it,
 * so the result is the K closest nodes that answered in time, which here
 * often leaves out slow nodes of the true K closest. */
static void test_alpha_bound_with_slow_nodes(void **state) {
  (void)state;
  h *t = sim_h(2);
  for (int i = 0; i < SIM_N; i++)
    if (sim_rand(t->net) % 4 == 0) t->net->n[i].latency = 2500;
  int slow_counted = 0, slow_missed = 0;
  for (int round = 0; round < 12; round++) {
    mdht_id target = rand_id(t->net);
    mdht_lookup_node seeds[8];
    size_t ns = sim_seeds(t->net, round, &target, seeds, 8);
    memset(t->net->answered, 0, sizeof t->net->answered);
    int nd = t->ndone;
    int64_t id =
        mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, t->now);
    assert_true(id > 0);
    sim_run(t, UINT64_MAX - 1);
    assert_int_equal(t->ndone, nd + 1);
    const done_rec *d = &t->done[nd];
    assert_closest_answered(t, d);
    assert_int_equal(d->r.failures, 0); /* no hard timeout: all answer */
    for (uint32_t i = 0; i < d->r.n_nodes; i++)
      slow_counted += t->net->n[sim_index(&d->nodes[i].addr)].latency == 2500;
    /* Slow nodes of the true K closest that were asked and left out:
     * their answers came after the end. */
    uint16_t truth[8];
    sim_truth(t->net, &target, truth, 8);
    for (int i = 0; i < 8; i++) {
      const simnode *x = &t->net->n[truth[i]];
      if (x->latency == 2500 && h_query(t, (uint32_t)id, &x->addr) &&
          !t->net->answered[truth[i]])
        slow_missed++;
    }
    h_check_done_event(t, d);
  }
  assert_int_equal(t->max_closer_normal, t->cfg.alpha);
  assert_true(t->max_open > t->cfg.alpha);
  /* Slow answers before the end count (test_soft_timeout_one_more); here
   * none comes in time any more: the end game asks the K closest at once,
   * and the lookups end long before a 2,500 ms node answers. */
  (void)slow_counted;
  assert_true(slow_missed > 0); /* slow nodes do not hold the lookup */
  assert_true(t->net->responses_ignored > 0);
  sim_h_del(t);
}

/* mdht_lookup_set_alpha: a lookup lowered to one query in flight sends
 * the next only once every answer it awaited is in; values out of range
 * are clamped to 1..cfg.alpha. */
static void test_set_alpha_lowers_inflight(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node seeds[8];
  for (uint8_t i = 0; i < 8; i++)
    seeds[i] = lnode((uint8_t)(10 + i), (uint8_t)(1 + i));
  uint32_t id = start(t, MDHT_M_FIND_NODE, seeds, 8);
  assert_int_equal(t->nq, 3); /* cfg alpha */
  assert_int_equal(mdht_lookup_set_alpha(&t->ls, id + 1, 1), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookup_set_alpha(&t->ls, id, 0), 0);
  assert_int_equal(mdht_lookup_find(&t->ls, id)->alpha, 1);
  assert_int_equal(respond(t, id, &seeds[0], NULL, 0), 0);
  assert_int_equal(t->nq, 3); /* two still in flight: none sent */
  assert_int_equal(respond(t, id, &seeds[1], NULL, 0), 0);
  assert_int_equal(t->nq, 3);
  assert_int_equal(respond(t, id, &seeds[2], NULL, 0), 0);
  assert_int_equal(t->nq, 4); /* none in flight: one more */
  assert_int_equal(mdht_lookup_set_alpha(&t->ls, id, 99), 0);
  assert_int_equal(mdht_lookup_find(&t->ls, id)->alpha, 3);
  assert_int_equal(respond(t, id, &seeds[3], NULL, 0), 0);
  /* Back to 3 in flight in all: once set, alpha bounds every fresh query,
   * with no end game (s3, closer than the rest, has answered). */
  assert_int_equal(t->nq, 7);
  h_del(t);
}

/* Dead nodes (the owner would report hard timeouts) are left out of the
 * results, and the lookups still find the K closest live nodes; they
 * end at a dead node's soft timeout, not its hard timeout, so the
 * owner's failure reports come after the end and are ignored. */
static void test_dead_nodes(void **state) {
  (void)state;
  h *t = sim_h(3);
  for (int i = 0; i < SIM_N; i++)
    if (sim_rand(t->net) % 6 == 0) t->net->n[i].dead = true;
  uint32_t dead_in_window = 0;
  int exact = 0;
  for (int round = 0; round < 12; round++) {
    mdht_id target = rand_id(t->net);
    int origin = round;
    while (t->net->n[origin].dead)
      origin++;
    mdht_lookup_node seeds[8];
    size_t ns = sim_seeds(t->net, origin, &target, seeds, 8);
    memset(t->net->learned, 0, sizeof t->net->learned);
    for (size_t i = 0; i < ns; i++)
      t->net->learned[sim_index(&seeds[i].addr)] = true;
    int nd = t->ndone;
    mdht_time t0 = t->now;
    int64_t id =
        mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, t0);
    assert_true(id > 0);
    sim_run(t, UINT64_MAX - 1);
    assert_int_equal(t->ndone, nd + 1);
    const done_rec *d = &t->done[nd];
    assert_closest_learned(t, d);
    /* Well under the hard timeout, and none was reached. */
    assert_true(d->r.elapsed < HARD / 2);
    assert_int_equal(d->r.failures, 0);
    /* Dead nodes asked and closer than the K-th result: each held the
     * lookup until its soft timeout, no longer. */
    for (int i = 0; i < t->nq; i++) {
      const sent_q *q = &t->q[i];
      if (q->lookup_id != (uint32_t)id) continue;
      if (!t->net->n[sim_index(&q->addr)].dead) continue;
      if (d->r.n_nodes == t->cfg.k &&
          mdht_id_cmp_dist(&target, &q->node_id, &d->nodes[t->cfg.k - 1].id) >
              0)
        continue;
      dead_in_window++;
      assert_true(d->at >= q->sent + SOFT);
    }
    /* Most of the time dead entries hide nothing. */
    uint16_t truth[MDHT_LOOKUP_MAX_K];
    sim_truth(t->net, &target, truth, (int)t->cfg.k);
    exact += mdht_id_eq(&d->nodes[t->cfg.k - 1].id,
                        &t->net->n[truth[t->cfg.k - 1]].id);
    for (uint32_t i = 0; i < d->r.n_nodes; i++)
      assert_false(t->net->n[sim_index(&d->nodes[i].addr)].dead);
    assert_true(d->r.responses <= d->r.queries);
    h_check_done_event(t, d);
  }
  /* Dead nodes were asked, inside the window, and reported after the
   * end. */
  assert_true(dead_in_window >= 3);
  assert_true(t->net->responses_ignored >= dead_in_window);
  assert_true(exact >= 9);
  sim_h_del(t);
}

/* A node that never answers, queried first but far from the target,
 * does not stall the lookup: it ends long before that node's hard
 * timeout, with the query still out. */
static void test_slow_node_does_not_stall(void **state) {
  (void)state;
  h *t = sim_h(4);
  mdht_id target = rand_id(t->net);
  mdht_lookup_node seeds[8];
  size_t ns = sim_seeds(t->net, 7, &target, seeds, 8);
  assert_int_equal(ns, 8);
  int mute = sim_index(&seeds[2].addr);
  uint16_t truth[8];
  sim_truth(t->net, &target, truth, 8);
  for (int i = 0; i < 8; i++)
    assert_int_not_equal(truth[i], mute);
  t->net->n[mute].dead = true;
  int64_t id =
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, 0);
  assert_true(id > 0);
  assert_non_null(h_query(t, (uint32_t)id, &seeds[2].addr));
  sim_run(t, UINT64_MAX - 1);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_true(d->r.elapsed < HARD / 2);
  assert_int_equal(d->r.failures, 0); /* ended before its hard timeout */
  assert_true_closest(t, d);
  /* Its hard-timeout report came after the end, and was ignored. */
  assert_true(d->r.queries > d->r.responses);
  assert_int_equal(t->net->responses_ignored, d->r.queries - d->r.responses);
  sim_h_del(t);
}

/* The closest node is slow: once the rest of the window has answered,
 * it does not hold the lookup open for long. The lookup ends at its end
 * wait (1.25 soft timeouts after its query), not at its answer nor at its
 * hard timeout;
 * the result is the K closest of the others, and its answer, which comes
 * after the end, is ignored. */
static void test_slow_closest_not_awaited(void **state) {
  (void)state;
  h *t = sim_h(8);
  mdht_id target = rand_id(t->net);
  uint16_t truth[8];
  sim_truth(t->net, &target, truth, 8);
  simnode *slow = &t->net->n[truth[0]];
  slow->latency = 3000;
  mdht_lookup_node seeds[8];
  size_t ns = sim_seeds(t->net, 9, &target, seeds, 8);
  int64_t id =
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, 0);
  assert_true(id > 0);
  sim_run(t, UINT64_MAX - 1);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  const sent_q *q = h_query(t, (uint32_t)id, &slow->addr);
  assert_non_null(q);
  assert_int_equal(d->at, q->sent + SOFT + SOFT / 4);
  assert_int_equal(d->r.failures, 0);
  /* Not in the result: the 8 closest without it. */
  for (uint32_t i = 0; i < d->r.n_nodes; i++)
    assert_false(mdht_id_eq(&d->nodes[i].id, &slow->id));
  slow->dead = true; /* leaves it out of the truth */
  assert_true_closest(t, d);
  /* Its answer was delivered (sim_run runs until nothing is pending)
   * after the end and refused, like every other answer that did not
   * count. */
  assert_true(q->closed);
  assert_true(t->net->responses_ignored >= 1);
  assert_int_equal(t->net->responses_ignored, d->r.queries - d->r.responses);
  assert_int_equal(t->ndone, 1);
  sim_h_del(t);
}

/* A slow node that answers before the end still counts, and the closer
 * node it names is asked. Meanwhile a closer node that never answers does
 * not hold the lookup once K have answered. k = 2, alpha = 2. */
static void test_slow_answer_before_end_counts(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.k = 2;
  c.alpha = 2;
  h *t = h_new_cfg(&c);
  mdht_lookup_node mute = lnode(1, 1);
  mdht_lookup_node s[3] = {lnode(10, 2), lnode(20, 3), lnode(30, 4)};
  mdht_lookup_node n = lnode(5, 9);
  mdht_lookup_node seeds[4] = {mute, s[0], s[1], s[2]};
  uint32_t id = start(t, MDHT_M_FIND_NODE, seeds, 4);
  assert_true(queried(t, id, &mute) && queried(t, id, &s[0]));
  /* Both turn slow: s1 and s2 go. */
  t->now = SOFT;
  mdht_lookups_tick(&t->ls, t->now);
  assert_true(queried(t, id, &s[1]) && queried(t, id, &s[2]));
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_non_null(l);
  assert_int_equal(l->n_slow, 2);
  assert_int_equal(l->n_inflight, 2);
  t->now = 1100;
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  assert_int_equal(t->ndone, 0); /* one answer of k = 2 */
  /* s0 answers at 1.5 s, past its soft timeout, while s2 is in flight:
   * it counts, and names n, closer than all but the mute node. */
  t->now = 1500;
  assert_int_equal(respond(t, id, &s[0], &n, 1), 0);
  assert_int_equal(l->n_slow, 1);
  assert_int_equal(l->responses, 2);
  assert_int_equal(t->ndone, 0);
  assert_true(queried(t, id, &n));
  /* n answers: n and s0 are the 2 closest responders. The mute node,
   * closer still, is slow and not waited for. */
  t->now = 1600;
  assert_int_equal(respond(t, id, &n, NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_int_equal(d->r.elapsed, 1600);
  assert_int_equal(d->r.n_nodes, 2);
  assert_true(mdht_id_eq(&d->nodes[0].id, &n.id));
  assert_true(mdht_id_eq(&d->nodes[1].id, &s[0].id));
  assert_int_equal(d->r.responses, 3);
  assert_int_equal(d->r.failures, 0);
  assert_int_equal(d->r.rounds, 2);
  h_check_done_event(t, d);
  /* After the end: ignored. */
  assert_int_equal(respond(t, id, &s[2], NULL, 0), MDHT_ERR_NOTFOUND);
  t->now = HARD;
  assert_int_equal(fail_(t, id, &mute), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), UINT64_MAX);
  h_del(t);
}

/* alpha = 3, K = 8, and one dead node among the true 8 closest: the
 * lookup does not wait out its hard timeout. It ends once that node's
 * query turns slow (soft timeout) and the others have answered, within
 * the soft timeout plus a few round trips (the simulated latency is under
 * 200 ms), with the 8 closest live nodes. */
static void test_dead_node_among_closest(void **state) {
  (void)state;
  h *t = sim_h(9);
  assert_int_equal(t->cfg.alpha, 3);
  assert_int_equal(t->cfg.k, 8);
  for (int round = 0; round < 8; round++) {
    mdht_id target = rand_id(t->net);
    uint16_t truth[8];
    assert_int_equal(sim_truth(t->net, &target, truth, 8), 8);
    simnode *dead = &t->net->n[truth[round % 8]];
    dead->dead = true;
    int origin = 100 + round;
    assert_false(t->net->n[origin].dead);
    mdht_lookup_node seeds[8];
    size_t ns = sim_seeds(t->net, origin, &target, seeds, 8);
    int nd = t->ndone;
    uint32_t ignored = t->net->responses_ignored;
    mdht_time t0 = t->now;
    int64_t id =
        mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &target, seeds, ns, t0);
    assert_true(id > 0);
    sim_run(t, UINT64_MAX - 1);
    assert_int_equal(t->ndone, nd + 1);
    const done_rec *d = &t->done[nd];
    const sent_q *q = h_query(t, (uint32_t)id, &dead->addr);
    assert_non_null(q); /* it was asked */
    /* Held until its soft timeout, then the end came at once or within a
     * few round trips; never near the hard timeout. */
    assert_true(d->at >= q->sent + SOFT);
    assert_true(d->at <= q->sent + SOFT + 3 * 200);
    assert_true(d->r.elapsed <= SOFT + 5 * 200);
    assert_int_equal(d->r.failures, 0);
    /* The 8 closest live nodes (the truth leaves dead nodes out). */
    assert_true(d->r.ok);
    assert_int_equal(d->r.n_nodes, 8);
    assert_true_closest(t, d);
    /* The owner's hard-timeout report for it came after the end. */
    assert_true(q->closed);
    assert_true(t->net->responses_ignored > ignored);
    h_check_done_event(t, d);
    dead->dead = false;
  }
  sim_h_del(t);
}

/* While fewer than K have answered, slow nodes are all that can still add
 * to the result: they are awaited, not dropped at the soft timeout. A
 * lookup seeded with one slow router must not fail at the soft timeout,
 * nor every lookup when the soft timeout is 0. */
static void test_slow_awaited_below_k(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node r = lnode(50, 1), n = lnode(5, 2);
  uint32_t id = start(t, MDHT_M_FIND_NODE, &r, 1);
  t->now = SOFT;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->ndone, 0);
  /* Its end wait, then (still fewer than K answers) its hard timeout. */
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), SOFT + SOFT / 4);
  t->now = SOFT + SOFT / 4;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->ndone, 0);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), HARD);
  t->now = 1500;
  assert_int_equal(respond(t, id, &r, &n, 1), 0);
  assert_true(queried(t, id, &n));
  t->now = 1600;
  assert_int_equal(respond(t, id, &n, NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  assert_true(t->done[0].r.ok);
  assert_int_equal(t->done[0].r.n_nodes, 2);
  h_check_done_event(t, &t->done[0]);
  h_del(t);

  mdht_config c;
  h_config(&c);
  c.k = 2;
  c.query_soft_timeout_ms = 0;
  t = h_new_cfg(&c);
  mdht_lookup_node s[3] = {lnode(1, 1), lnode(2, 2), lnode(3, 3)};
  id = start(t, MDHT_M_FIND_NODE, s, 3);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), 0);
  assert_int_equal(mdht_lookups_tick(&t->ls, 0), 0); /* all slow at once */
  assert_int_equal(mdht_lookup_find(&t->ls, id)->n_slow, 3);
  t->now = 100;
  assert_int_equal(respond(t, id, &s[2], NULL, 0), 0);
  assert_int_equal(t->ndone, 0);
  t->now = 200;
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  /* K answered: s0, slow, is not waited for. */
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.n_nodes, 2);
  assert_true(mdht_id_eq(&t->done[0].nodes[0].id, &s[1].id));
  h_check_done_event(t, &t->done[0]);
  h_del(t);
}

/* Soft timeout by hand: exactly one more query per slow node, and the
 * slow node's late answer still counts. */
/* The owner may shorten the soft timeout (from measured round trips);
 * the configured value stays its upper bound. */
static void test_soft_timeout_set_by_owner(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 1;
  c.k = 2;
  h *t = h_new_cfg(&c);
  mdht_lookups_set_soft_timeout(&t->ls, 200);
  assert_int_equal(t->ls.soft_ms, 200);
  mdht_lookup_node s[3] = {lnode(1, 1), lnode(2, 2), lnode(3, 3)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 3);
  assert_int_equal(t->nq, 1);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), 200);
  t->now = 199;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->nq, 1);
  t->now = 200;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->nq, 2); /* the next one starts at 200 ms, not SOFT */
  assert_true(queried(t, id, &s[1]));
  mdht_lookups_set_soft_timeout(&t->ls, SOFT * 10);
  assert_int_equal(t->ls.soft_ms, SOFT);
  h_del(t);
}

static void test_soft_timeout_one_more(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 2;
  c.k = 2; /* not above alpha: no wider end game */
  h *t = h_new_cfg(&c);
  mdht_lookup_node s[5] = {lnode(1, 1), lnode(2, 2), lnode(3, 3), lnode(4, 4),
                           lnode(5, 5)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 5);
  assert_int_equal(t->nq, 2);
  assert_true(queried(t, id, &s[0]) && queried(t, id, &s[1]));
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), SOFT);
  t->now = 500;
  assert_int_equal(respond(t, id, &s[0], NULL, 0), 0);
  assert_int_equal(t->nq, 3);
  assert_true(queried(t, id, &s[2]));
  /* s[1] was sent at 0, s[2] at 500. */
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), SOFT);
  t->now = SOFT - 1;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->nq, 3);
  t->now = SOFT;
  mdht_lookups_tick(&t->ls, t->now);
  assert_int_equal(t->nq, 4); /* exactly one more */
  assert_true(queried(t, id, &s[3]));
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_non_null(l);
  assert_int_equal(l->n_inflight, 2);
  assert_int_equal(l->n_slow, 1);
  /* s1's end wait, before s2's soft timeout at 500 + SOFT. */
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), SOFT + SOFT / 4);
  /* The slow node answers late: it counts, and with s0 it makes the K = 2
   * closest; s2 and s3, in flight and farther, do not hold the end. */
  t->now = 1200;
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  assert_int_equal(t->nq, 4);
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.n_nodes, 2);
  assert_int_equal(t->done[0].r.responses, 2);
  assert_true(mdht_id_eq(&t->done[0].nodes[1].id, &s[1].id));
  assert_false(queried(t, id, &s[4]));
  /* s2's answer comes after the end: ignored. */
  assert_int_equal(respond(t, id, &s[2], NULL, 0), MDHT_ERR_NOTFOUND);
  h_check_done_event(t, &t->done[0]);
  h_del(t);
}

/* The end game: once a node closer than every unqueried candidate has
 * answered, K fresh queries (not alpha) may be out to closer nodes, so the
 * rest of the K closest are asked at once instead of alpha at a time. */
static void test_end_game_asks_k(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 2;
  c.k = 4;
  h *t = h_new_cfg(&c);
  mdht_lookup_node s[6];
  for (uint8_t i = 0; i < 6; i++)
    s[i] = lnode((uint8_t)(10 + i), (uint8_t)(1 + i));
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 6);
  assert_int_equal(t->nq, 2); /* alpha: nobody has answered */
  t->now = 10;
  /* s0 answers, naming nobody closer: s1 is still out, and s2, s3, s4 go
   * (1, 2, 3 fresh queries closer than each, below K = 4); s5 waits. */
  assert_int_equal(respond(t, id, &s[0], NULL, 0), 0);
  assert_int_equal(t->nq, 5);
  assert_true(queried(t, id, &s[4]));
  assert_false(queried(t, id, &s[5]));
  t->now = 20;
  /* s1's answer leaves 3 fresh queries closer than s5: it goes. */
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  assert_int_equal(t->nq, 6);
  assert_int_equal(respond(t, id, &s[2], NULL, 0), 0);
  assert_int_equal(t->ndone, 0);
  assert_int_equal(respond(t, id, &s[3], NULL, 0), 0);
  assert_int_equal(t->ndone, 1); /* the 4 closest answered */
  h_del(t);
}

/* A node closer than every query in flight is asked at once, even when
 * alpha is taken by a query that has fallen outside the window (alpha
 * counts fresh queries to closer nodes only: lookup.h, "The window"); and
 * the end waits for its answer. */
static void test_end_waits_for_closer_unqueried(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.k = 2;
  c.alpha = 1;
  h *t = h_new_cfg(&c);
  mdht_lookup_node s[3] = {lnode(10, 1), lnode(20, 2), lnode(30, 3)};
  mdht_lookup_node n = lnode(5, 9);
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 3);
  t->now = 10;
  assert_int_equal(respond(t, id, &s[0], NULL, 0), 0);
  assert_true(queried(t, id, &s[1]));
  t->now = 10 + SOFT;
  mdht_lookups_tick(&t->ls, t->now);
  assert_true(queried(t, id, &s[2])); /* s1 slow: s2 goes */
  /* s1 answers late naming n, closer than all: s0 and s1 are two
   * responders, but n comes first and must be asked; s2, fresh, is
   * farther and does not hold it back (it did under "alpha in all"). */
  t->now = 1500;
  assert_int_equal(respond(t, id, &s[1], &n, 1), 0);
  assert_int_equal(t->ndone, 0);
  assert_true(queried(t, id, &n));
  t->now = 1600;
  assert_int_equal(respond(t, id, &s[2], NULL, 0), 0);
  assert_int_equal(t->ndone, 0);
  t->now = 1700;
  assert_int_equal(respond(t, id, &n, NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  assert_true(mdht_id_eq(&t->done[0].nodes[0].id, &n.id));
  assert_true(mdht_id_eq(&t->done[0].nodes[1].id, &s[0].id));
  assert_int_equal(t->done[0].r.rounds, 2);
  h_check_done_event(t, &t->done[0]);
  h_del(t);
}

/* A failure report takes the node out; the lookup moves on to the next
 * candidate and ends with the closest that answered. */
static void test_failure_removes_node(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.k = 2;
  c.alpha = 2;
  h *t = h_new_cfg(&c);
  mdht_lookup_node s[4] = {lnode(1, 1), lnode(2, 2), lnode(3, 3), lnode(4, 4)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 4);
  t->now = 100;
  assert_int_equal(fail_(t, id, &s[0]), 0);
  assert_true(queried(t, id, &s[2]));
  /* A second report for the same query is ignored. */
  assert_int_equal(fail_(t, id, &s[0]), MDHT_ERR_NOTFOUND);
  assert_int_equal(respond(t, id, &s[0], NULL, 0), MDHT_ERR_NOTFOUND);
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  assert_int_equal(t->ndone, 0);
  assert_int_equal(respond(t, id, &s[2], NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_int_equal(d->r.n_nodes, 2);
  assert_true(mdht_id_eq(&d->nodes[0].id, &s[1].id));
  assert_true(mdht_id_eq(&d->nodes[1].id, &s[2].id));
  assert_int_equal(d->r.failures, 1);
  assert_int_equal(d->r.responses, 2);
  /* With one responder, s3 was inside the window: it was asked too, and
   * its answer is no longer needed. */
  assert_int_equal(d->r.queries, 4);
  assert_true(queried(t, id, &s[3]));
  assert_int_equal(respond(t, id, &s[3], NULL, 0), MDHT_ERR_NOTFOUND);
  h_check_done_event(t, d);
  h_del(t);
}

/* If the owner never reports, the engine fails a query itself at the
 * hard timeout of a lookup that is still running; a report after that is
 * ignored. A slow node is awaited only while fewer than K have answered,
 * or while something else holds the lookup. */
static void test_own_hard_timeout(void **state) {
  (void)state;
  mdht_lookup_node s[2] = {lnode(1, 1), lnode(2, 2)};
  for (uint32_t k = 1; k <= 2; k++) {
    mdht_config c;
    h_config(&c);
    c.k = k;
    c.alpha = 1;
    h *t = h_new_cfg(&c);
    uint32_t id = start(t, MDHT_M_FIND_NODE, s, 2);
    assert_int_equal(t->nq, 1);
    t->now = SOFT;
    mdht_lookups_tick(&t->ls, t->now);
    assert_int_equal(t->nq, 2); /* soft: s1 starts */
    /* s0's end wait comes before s1's soft timeout. */
    assert_int_equal(mdht_lookups_next_deadline(&t->ls), SOFT + SOFT / 4);
    t->now = 1500;
    assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
    if (k == 1) {
      /* K answered: s0, closer but slow, is not waited for. */
      assert_int_equal(t->ndone, 1);
      assert_int_equal(t->done[0].r.elapsed, 1500);
      assert_int_equal(t->done[0].r.failures, 0);
      assert_int_equal(mdht_lookups_next_deadline(&t->ls), UINT64_MAX);
      t->now = HARD;
      assert_int_equal(mdht_lookups_tick(&t->ls, t->now), 0);
    } else {
      /* One answer of two: s0 is all that can still add, so it is
       * awaited until the engine fails it at its hard timeout. */
      assert_int_equal(t->ndone, 0);
      assert_int_equal(mdht_lookups_next_deadline(&t->ls), HARD);
      t->now = HARD - 1;
      assert_int_equal(mdht_lookups_tick(&t->ls, t->now), 0);
      t->now = HARD;
      assert_int_equal(mdht_lookups_tick(&t->ls, t->now), 1);
      assert_int_equal(t->done[0].r.failures, 1);
    }
    assert_int_equal(t->ndone, 1);
    assert_true(t->done[0].r.ok);
    assert_int_equal(t->done[0].r.n_nodes, 1);
    assert_true(mdht_id_eq(&t->done[0].nodes[0].id, &s[1].id));
    assert_int_equal(fail_(t, id, &s[0]), MDHT_ERR_NOTFOUND);
    h_check_done_event(t, &t->done[0]);
    h_del(t);
  }

  /* K answered, but fresh queries keep the lookup running past the hard
   * timeout of a mute node: the engine fails it then, and the owner's
   * report that follows is ignored although the lookup still runs. Each
   * answer names a closer node, 900 ms later (under the soft timeout). */
  mdht_config c;
  h_config(&c);
  c.k = 1;
  c.alpha = 1;
  h *t = h_new_cfg(&c);
  mdht_lookup_node mute = lnode(1, 1);
  mdht_lookup_node chain[6] = {lnode(20, 2), lnode(10, 3), lnode(6, 4),
                               lnode(5, 5),  lnode(4, 6),  lnode(3, 7)};
  mdht_lookup_node seeds[2] = {mute, chain[0]};
  uint32_t id = start(t, MDHT_M_FIND_NODE, seeds, 2);
  t->now = SOFT;
  mdht_lookups_tick(&t->ls, t->now); /* mute is slow: chain[0] goes */
  for (int i = 0; i < 5; i++) {
    assert_true(queried(t, id, &chain[i]));
    t->now = SOFT + 100 + 900 * (mdht_time)i; /* 1100 .. 4700 */
    assert_int_equal(respond(t, id, &chain[i], &chain[i + 1], 1), 0);
    assert_int_equal(t->ndone, 0);
  }
  assert_true(queried(t, id, &chain[5])); /* sent at 4700 */
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), HARD);
  t->now = HARD;
  assert_int_equal(mdht_lookups_tick(&t->ls, t->now), 0);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_non_null(l);
  assert_int_equal(l->failures, 1);
  assert_int_equal(l->n_slow, 0);
  assert_int_equal(fail_(t, id, &mute), MDHT_ERR_NOTFOUND);
  t->now = 5100;
  assert_int_equal(respond(t, id, &chain[5], NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.failures, 1);
  assert_int_equal(t->done[0].r.n_nodes, 1);
  assert_true(mdht_id_eq(&t->done[0].nodes[0].id, &chain[5].id));
  h_check_done_event(t, &t->done[0]);
  h_del(t);
}

/* Nodes already known by id or by address, and the responder itself,
 * are never queried again. */
static void test_no_duplicate_queries(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 1;
  h *t = h_new_cfg(&c);
  t->check_dup_ids = true;
  mdht_lookup_node s[2] = {lnode(10, 1), lnode(20, 2)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 2);
  mdht_lookup_node back[6] = {
      s[0],                                                     /* itself */
      {.id = s[1].id, .addr = test_addr4(20, 77, 0, 1, 6881)},  /* id */
      {.id = near(5), .addr = s[1].addr},                       /* addr */
      {.id = near(5), .addr = test_addr4(20, 78, 0, 1, 6881)},  /* new */
      {.id = near(5), .addr = test_addr4(20, 79, 0, 1, 6881)},  /* id */
      {.id = near(6), .addr = test_addr4(20, 78, 0, 1, 6881)}}; /* addr */
  t->now = 10;
  assert_int_equal(respond(t, id, &s[0], back, 6), 0);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_non_null(l);
  assert_int_equal(l->n_cands, 3);
  /* The new node, closest, then s[1]: s[0], closer than s[1], has
   * answered, so the end game asks it at once despite alpha = 1. */
  assert_int_equal(t->nq, 3);
  assert_true(mdht_addr_eq(&t->q[1].addr, &back[3].addr));
  assert_true(mdht_addr_eq(&t->q[2].addr, &s[1].addr));
  /* Same again from the new node: nothing new to ask. */
  t->now = 20;
  assert_int_equal(respond(t, id, &back[3], back, 6), 0);
  assert_int_equal(t->nq, 3);
  t->now = 30;
  assert_int_equal(respond(t, id, &s[1], back, 6), 0);
  assert_int_equal(t->nq, 3);
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.n_nodes, 3);
  h_del(t);
}

/* Across whole simulated lookups too (h_send asserts it for every send):
 * many lookups for one target, each sees each node at most once. */
static void test_no_duplicates_in_network(void **state) {
  (void)state;
  h *t = sim_h(5);
  mdht_id target = rand_id(t->net);
  for (int i = 0; i < 8; i++) {
    mdht_lookup_node seeds[16];
    size_t ns = sim_seeds(t->net, i * 50, &target, seeds, 16);
    assert_true(mdht_lookup_start(&t->ls, MDHT_M_GET_PEERS, &target, seeds, ns,
                                  t->now) > 0);
  }
  sim_run(t, UINT64_MAX - 1);
  assert_int_equal(t->ndone, 8);
  for (int i = 0; i < 8; i++)
    assert_true_closest(t, &t->done[i]);
  sim_h_del(t);
}

/* get_peers: peers gathered and deduplicated (martian ones dropped),
 * tokens kept per responder, oversized tokens refused. */
static void test_peers_and_tokens(void **state) {
  (void)state;
  h *t = sim_h(6);
  mdht_id target = rand_id(t->net);
  uint16_t truth[8];
  assert_int_equal(sim_truth(t->net, &target, truth, 8), 8);
  mdht_addr pool[12];
  for (int i = 0; i < 12; i++)
    pool[i] = test_addr4(30, 0, 0, (uint8_t)(i + 1), (uint16_t)(7000 + i));
  for (int j = 0; j < 8; j++) {
    simnode *x = &t->net->n[truth[j]];
    /* Overlapping windows of the pool, and one martian peer. */
    for (int p = 0; p < 5; p++)
      x->peers[x->n_peers++] = pool[(j + p) % 12];
    x->peers[x->n_peers++] = test_addr4(30, 0, 0, 99, 0);
    x->token_len = (uint8_t)(4 + j * 2); /* 4..18 bytes */
  }
  simnode *big = &t->net->n[truth[3]];
  big->token_len = MDHT_LOOKUP_TOKEN_MAX + 1;
  memset(big->token, 0xab, sizeof big->token);
  simnode *max = &t->net->n[truth[4]];
  max->token_len = MDHT_LOOKUP_TOKEN_MAX;
  mdht_lookup_node seeds[8];
  size_t ns = sim_seeds(t->net, 11, &target, seeds, 8);
  int64_t id =
      mdht_lookup_start(&t->ls, MDHT_M_GET_PEERS, &target, seeds, ns, 0);
  assert_true(id > 0);
  sim_run(t, UINT64_MAX - 1);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_int_equal(d->r.kind, MDHT_M_GET_PEERS);
  for (int i = 0; i < t->nq; i++)
    assert_int_equal(t->q[i].method, MDHT_M_GET_PEERS);
  assert_true_closest(t, d);
  /* 8 windows of 5 over 12 cover pool[0..11]. */
  assert_int_equal(d->r.n_peers, 12);
  for (int i = 0; i < 12; i++) {
    bool found = false;
    for (uint32_t p = 0; p < d->r.n_peers; p++)
      found = found || mdht_addr_eq(&d->peers[p], &pool[i]);
    assert_true(found);
  }
  for (uint32_t i = 0; i < d->r.n_nodes; i++) {
    const simnode *x = &t->net->n[truth[i]];
    if (i == 3) {
      assert_int_equal(d->nodes[i].token_len, 0);
      continue;
    }
    assert_int_equal(d->nodes[i].token_len, x->token_len);
    assert_memory_equal(d->nodes[i].token, x->token, x->token_len);
  }
  h_check_done_event(t, d);
  sim_h_del(t);
}

/* A slot holds what its kind needs: a find_node lookup (the node's own
 * bootstrap, fill and refresh lookups) has neither tokens nor peers, and
 * room for MDHT_LOOKUP_CANDS_INIT candidates; a get_peers lookup has both. */
static void test_slot_sized_by_kind(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node s = lnode(1, 1);
  uint32_t fn = start(t, MDHT_M_FIND_NODE, &s, 1);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, fn);
  assert_non_null(l);
  assert_null(l->peers);
  assert_null(l->tokens);
  assert_non_null(l->cands);
  assert_int_equal(l->cap, MDHT_LOOKUP_CANDS_INIT);
  mdht_lookup_node s2 = lnode(2, 2);
  uint32_t gp = start(t, MDHT_M_GET_PEERS, &s2, 1);
  l = mdht_lookup_find(&t->ls, gp);
  assert_non_null(l->peers);
  assert_non_null(l->tokens);
  assert_int_equal(l->cap, MDHT_LOOKUP_CANDS_INIT);
  h_del(t);
}

/* The candidates grow by doubling as they come (40 seeds: room for 64),
 * and each token stays with its node while closer nodes are inserted in
 * front of it. */
static void test_candidates_grow_tokens_follow(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.k = 4;
  c.alpha = 2;
  h *t = h_new_cfg(&c);
  enum { NS = 40 };
  mdht_lookup_node seeds[NS];
  for (int i = 0; i < NS; i++)
    seeds[i] = lnode((uint8_t)(10 + i), (uint8_t)(i + 1));
  uint32_t id = start(t, MDHT_M_GET_PEERS, seeds, NS);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_int_equal(l->n_cands, NS);
  assert_int_equal(l->cap, 2 * MDHT_LOOKUP_CANDS_INIT);
  mdht_lookup_node closer[2] = {lnode(1, 100), lnode(2, 101)};
  const uint8_t tok[4][5] = {"aaaa", "bbbbb", "c", "dd"};
  const size_t len[4] = {4, 5, 1, 2};
  const mdht_lookup_node *who[4] = {&seeds[0], &seeds[1], &closer[0],
                                    &closer[1]};
  for (int i = 0; i < 4; i++) {
    assert_true(queried(t, id, who[i]));
    sent_q *q = h_query(t, id, &who[i]->addr);
    q->closed = true;
    /* The first answer names two nodes closer than every candidate. */
    assert_int_equal(
        mdht_lookup_on_response(&t->ls, id, &who[i]->id, &who[i]->addr,
                                i == 0 ? closer : NULL, i == 0 ? 2 : 0, NULL, 0,
                                tok[i], len[i], t->now),
        0);
  }
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_int_equal(d->r.n_nodes, 4);
  const int order[4] = {2, 3, 0, 1}; /* closest first */
  for (int i = 0; i < 4; i++) {
    assert_true(mdht_id_eq(&d->nodes[i].id, &who[order[i]]->id));
    assert_int_equal(d->nodes[i].token_len, len[order[i]]);
    assert_memory_equal(d->nodes[i].token, tok[order[i]], len[order[i]]);
  }
  h_del(t);
}

/* The per-lookup peer bound. */
static void test_peer_bound(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node s = lnode(1, 1);
  uint32_t id = start(t, MDHT_M_GET_PEERS, &s, 1);
  enum { NV = MDHT_LOOKUP_MAX_PEERS + 50 };
  mdht_addr *v = calloc(NV, sizeof *v);
  assert_non_null(v);
  for (int i = 0; i < NV; i++)
    v[i] = test_addr4(30, 1, (uint8_t)(i >> 8), (uint8_t)i, 6881);
  uint8_t tok[4] = {1, 2, 3, 4};
  assert_int_equal(mdht_lookup_on_response(&t->ls, id, &s.id, &s.addr, NULL, 0,
                                           v, NV, tok, sizeof tok, 5),
                   0);
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.n_peers, MDHT_LOOKUP_MAX_PEERS);
  assert_memory_equal(t->done[0].peers, v, MDHT_LOOKUP_MAX_PEERS * sizeof *v);
  assert_int_equal(t->done[0].nodes[0].token_len, 4);
  assert_memory_equal(t->done[0].nodes[0].token, tok, 4);
  free(v);
  h_del(t);
}

/* max_lookups concurrent lookups on the network, interleaved; one more is
 * refused with FULL; each ends with its own true K closest; ids are
 * distinct, never 0, and not reused when a slot is. */
static void test_many_concurrent(void **state) {
  (void)state;
  h *t = sim_h(7);
  uint32_t ids[64];
  mdht_id targets[64];
  /* The slot table starts small and doubles as lookups pile up. */
  assert_int_equal(t->ls.cap, 4);
  for (int i = 0; i < 64; i++) {
    if (i == 5) assert_int_equal(t->ls.cap, 8);
    targets[i] = rand_id(t->net);
    mdht_lookup_node seeds[8];
    size_t ns = sim_seeds(t->net, i * 7, &targets[i], seeds, 8);
    int64_t id =
        mdht_lookup_start(&t->ls, i % 2 ? MDHT_M_GET_PEERS : MDHT_M_FIND_NODE,
                          &targets[i], seeds, ns, t->now);
    assert_true(id > 0);
    ids[i] = (uint32_t)id;
    for (int j = 0; j < i; j++)
      assert_int_not_equal(ids[j], ids[i]);
  }
  assert_int_equal(t->ls.n_active, 64);
  assert_int_equal(t->ls.cap, 64); /* max_lookups, and no further */
  mdht_lookup_node s = lnode(1, 1);
  assert_int_equal(
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &targets[0], &s, 1, t->now),
      MDHT_ERR_FULL);
  sim_run(t, UINT64_MAX - 1);
  assert_int_equal(t->ndone, 64);
  for (int i = 0; i < 64; i++) {
    const done_rec *d = done_of(t, ids[i]);
    assert_non_null(d);
    assert_true(mdht_id_eq(&d->r.target, &targets[i]));
    assert_true_closest(t, d);
    h_check_done_event(t, d);
  }
  assert_int_equal(t->max_closer_normal, t->cfg.alpha);
  assert_int_equal(t->ls.n_active, 0);
  /* Every slot's memory was given back when its lookup ended. */
  assert_int_equal(t->ls.n_alloc, 64);
  for (uint32_t i = 0; i < t->ls.cfg->max_lookups; i++)
    assert_null(t->ls.slots[i]);
  /* Slots free again; the new id differs from the old ones. */
  int64_t again =
      mdht_lookup_start(&t->ls, MDHT_M_FIND_NODE, &targets[0], &s, 1, t->now);
  assert_true(again > 0);
  for (int i = 0; i < 64; i++)
    assert_int_not_equal(ids[i], (uint32_t)again);
  sim_h_del(t);
}

/* Garbage in responses: martian, private (not allowed), unknown family
 * and our own id are never queried; private is when allowed. */
static void test_martians_skipped(void **state) {
  (void)state;
  for (int allow = 0; allow < 2; allow++) {
    mdht_config c;
    h_config(&c);
    c.allow_private = allow;
    c.alpha = 8;
    h *t = h_new_cfg(&c);
    mdht_lookup_node s = lnode(50, 1);
    uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
    mdht_lookup_node junk[8] = {
        {.id = near(1), .addr = test_addr4(20, 2, 0, 1, 0)},        /* port */
        {.id = near(2), .addr = test_addr4(0, 0, 0, 0, 6881)},      /* 0/8 */
        {.id = near(3), .addr = test_addr4(239, 1, 1, 1, 6881)},    /* mcast */
        {.id = near(4), .addr = test_addr4(255, 255, 255, 255, 1)}, /* bcast */
        {.id = t->self, .addr = test_addr4(20, 3, 0, 1, 6881)},     /* us */
        {.id = near(6), .addr = {.family = 9, .port = 1}},          /* af */
        {.id = near(7), .addr = test_addr4(10, 1, 2, 3, 6881)},  /* private */
        {.id = near(8), .addr = test_addr4(20, 4, 0, 1, 6881)}}; /* good */
    t->now = 1;
    assert_int_equal(respond(t, id, &s, junk, 8), 0);
    assert_int_equal(t->nq, 2 + allow);
    assert_true(queried(t, id, &junk[7]));
    assert_int_equal(queried(t, id, &junk[6]), allow);
    assert_int_equal(mdht_lookup_find(&t->ls, id)->n_cands, 2 + allow);
    h_del(t);
  }
}

/* Reports for a finished lookup are ignored: no callback, no event; a
 * reused slot has a new id, so the old id stays dead. */
static void test_after_done_ignored(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.max_lookups = 1;
  h *t = h_new_cfg(&c);
  mdht_lookup_node s[2] = {lnode(1, 1), lnode(2, 2)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 1);
  assert_int_equal(respond(t, id, &s[0], &s[1], 1), 0);
  /* k=8, s1 learned: not over. */
  assert_int_equal(respond(t, id, &s[1], NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  int events = t->events;
  assert_int_equal(respond(t, id, &s[0], &s[1], 1), MDHT_ERR_NOTFOUND);
  assert_int_equal(fail_(t, id, &s[1]), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookup_cancel(&t->ls, id, t->now), MDHT_ERR_NOTFOUND);
  assert_int_equal(t->events, events);
  assert_int_equal(t->ndone, 1);
  uint32_t id2 = start(t, MDHT_M_FIND_NODE, s, 2);
  assert_int_not_equal(id2, id);
  assert_int_equal(id2 & 0xffff, id & 0xffff); /* same slot */
  assert_int_equal(respond(t, id, &s[0], NULL, 0), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookup_find(&t->ls, id2)->responses, 0);
  assert_null(mdht_lookup_find(&t->ls, id));
  assert_null(mdht_lookup_find(&t->ls, 0));
  assert_null(mdht_lookup_find(&t->ls, 0x10002)); /* slot out of range */
  /* Unsolicited: an address we never asked. */
  mdht_lookup_node other = lnode(3, 3);
  assert_int_equal(respond(t, id2, &other, NULL, 0), MDHT_ERR_NOTFOUND);
  h_del(t);
}

static void test_cancel(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node s[2] = {lnode(1, 1), lnode(2, 2)};
  uint32_t id = start(t, MDHT_M_GET_PEERS, s, 2);
  assert_int_equal(t->ls.n_active, 1);
  assert_non_null(t->ls.slots[0]);
  t->now = 50;
  assert_int_equal(mdht_lookup_cancel(&t->ls, id, t->now), 0);
  assert_int_equal(t->ls.n_active, 0);
  assert_null(t->ls.slots[0]);   /* freed at once */
  assert_int_equal(t->ndone, 0); /* no callback */
  track *k = h_track(t, id);
  assert_int_equal(k->done, 1);
  assert_false(k->done_ev.u.lookup.ok);
  assert_int_equal(k->done_ev.u.lookup.queried, 2);
  assert_int_equal(respond(t, id, &s[0], NULL, 0), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookup_cancel(&t->ls, id, t->now), MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), UINT64_MAX);
  h_del(t);
}

/* Failed sends count as failures; when every first send fails, the
 * lookup ends at the next tick, not inside start. */
static void test_send_errors(void **state) {
  (void)state;
  h *t = h_new();
  t->fail_sends = true;
  t->now = 70;
  mdht_lookup_node s[3] = {lnode(1, 1), lnode(2, 2), lnode(3, 3)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 3);
  assert_int_equal(t->nq, 3);
  assert_int_equal(t->ndone, 0);
  assert_int_equal(mdht_lookups_next_deadline(&t->ls), 70);
  assert_int_equal(mdht_lookups_tick(&t->ls, 70), 1);
  assert_int_equal(t->ndone, 1);
  assert_int_equal(t->done[0].r.lookup_id, id);
  assert_false(t->done[0].r.ok);
  assert_int_equal(t->done[0].r.failures, 3);
  assert_int_equal(t->done[0].r.n_nodes, 0);
  h_check_done_event(t, &t->done[0]);

  /* One failing send among several: the next candidate goes instead. */
  t->fail_sends = false;
  t->fail_port = 6999;
  mdht_lookup_node m[4] = {lnode(1, 1), lnode(2, 2), lnode(3, 3), lnode(4, 4)};
  m[1].addr.port = 6999;
  uint32_t id2 = start(t, MDHT_M_FIND_NODE, m, 4);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id2);
  assert_int_equal(l->n_inflight, 3);
  assert_int_equal(l->failures, 1);
  assert_true(queried(t, id2, &m[3]));
  h_del(t);
}

/* The candidate array keeps the closest: many seeds fill it, and closer
 * ones evict the farthest unqueried ones; a queried one stays. */
static void test_candidate_bound(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 1;
  h *t = h_new_cfg(&c);
  enum { N = 300 };
  mdht_lookup_node *nodes = calloc(N + 1, sizeof *nodes);
  assert_non_null(nodes);
  for (int i = 0; i < N; i++) {
    memset(&nodes[i].id, 0, sizeof nodes[i].id);
    /* Distances 300..1 (descending: each newcomer is closer). */
    nodes[i].id.b[18] = (uint8_t)((N - i) >> 8);
    nodes[i].id.b[19] = (uint8_t)(N - i);
    nodes[i].addr = test_addr4(22, (uint8_t)(i >> 8), (uint8_t)i, 1, 1);
  }
  uint32_t id = start(t, MDHT_M_FIND_NODE, nodes, N);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_int_equal(l->n_cands, MDHT_LOOKUP_MAX_CANDS);
  /* Sorted; the closest 128 kept. */
  for (uint32_t i = 1; i < l->n_cands; i++)
    assert_true(
        mdht_id_cmp_dist(&l->target, &l->cands[i - 1].id, &l->cands[i].id) < 0);
  assert_int_equal(l->cands[0].id.b[19], 1);
  assert_int_equal(l->cands[MDHT_LOOKUP_MAX_CANDS - 1].id.b[19],
                   MDHT_LOOKUP_MAX_CANDS);
  /* The one query sent went to the closest. */
  assert_int_equal(t->nq, 1);
  assert_int_equal(t->q[0].node_id.b[19], 1);
  free(nodes);
  h_del(t);
}

/* A reply is looked at up to K nodes per family: 300 closer nodes, on
 * 300 distinct hosts, add K candidates. */
static void test_reply_capped_at_k(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 1;
  h *t = h_new_cfg(&c);
  mdht_lookup_node s = {.id = near(0), .addr = test_addr4(20, 1, 0, 1, 1)};
  s.id.b[0] = 0xff; /* far */
  uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
  enum { N = 300 };
  mdht_lookup_node *nodes = calloc(N, sizeof *nodes);
  assert_non_null(nodes);
  for (int i = 0; i < N; i++) {
    memset(&nodes[i].id, 0, sizeof nodes[i].id);
    nodes[i].id.b[18] = (uint8_t)((N - i) >> 8);
    nodes[i].id.b[19] = (uint8_t)(N - i);
    nodes[i].addr = test_addr4(22, (uint8_t)(i >> 8), (uint8_t)i, 1, 1);
  }
  assert_int_equal(respond(t, id, &s, nodes, N), 0);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_int_equal(l->n_cands, 1 + t->cfg.k);
  /* The first K of the reply, not the closest it names. */
  assert_int_equal(l->cands[0].id.b[19], (uint8_t)(N - (int)t->cfg.k + 1));
  free(nodes);
  h_del(t);
}

/* A network that always knows closer nodes: the lookup stops at
 * MDHT_LOOKUP_MAX_QUERIES and still ends. */
static void test_query_budget(void **state) {
  (void)state;
  h *t = h_new();
  uint64_t next_d = UINT64_MAX - 1;
  uint32_t host = 1;
  mdht_lookup_node s = {.addr = test_addr4(23, 0, 0, 0, 1)};
  memset(&s.id, 0, sizeof s.id);
  memcpy(&s.id.b[12], &next_d, 8);
  uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
  int answered = 0;
  while (t->ndone == 0) {
    assert_true(answered < t->nq);
    sent_q *q = &t->q[answered++];
    mdht_lookup_node nodes[8];
    for (int i = 0; i < 8; i++) {
      /* Big-endian-free trick: a descending counter in the low bytes
       * (stored big-endian) is ever closer to the zero target. */
      next_d -= 1000;
      memset(&nodes[i].id, 0, sizeof nodes[i].id);
      for (int b = 0; b < 8; b++)
        nodes[i].id.b[12 + b] = (uint8_t)(next_d >> (56 - 8 * b));
      host++;
      nodes[i].addr = test_addr4(23, (uint8_t)(host >> 8), (uint8_t)host, 1, 1);
    }
    t->now += 10;
    mdht_lookup_node who = {.id = q->node_id, .addr = q->addr};
    assert_int_equal(respond(t, id, &who, nodes, 8), 0);
  }
  assert_int_equal(t->nq, MDHT_LOOKUP_MAX_QUERIES);
  assert_int_equal(t->done[0].r.queries, MDHT_LOOKUP_MAX_QUERIES);
  assert_int_equal(t->done[0].r.responses, MDHT_LOOKUP_MAX_QUERIES);
  assert_true(t->done[0].r.ok);
  assert_int_equal(t->done[0].r.n_nodes, t->cfg.k);
  h_del(t);
}

/* The node at an address answers with another id than we were told: it
 * takes its real id; an id another candidate has is rejected. */
static void test_id_mismatch(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.k = 2;
  h *t = h_new_cfg(&c);
  t->check_dup_ids = false;
  mdht_lookup_node s[3] = {lnode(10, 1), lnode(20, 2), lnode(30, 3)};
  uint32_t id = start(t, MDHT_M_FIND_NODE, s, 3);
  mdht_lookup_node real = {.id = near(5), .addr = s[2].addr};
  assert_int_equal(respond(t, id, &real, NULL, 0), 0);
  const mdht_lookup *l = mdht_lookup_find(&t->ls, id);
  assert_true(mdht_id_eq(&l->cands[0].id, &real.id));
  assert_int_equal(l->cands[0].state, MDHT_LC_ANSWERED);
  /* s1 claims to be s0: one node must not count twice. */
  mdht_lookup_node liar = {.id = s[0].id, .addr = s[1].addr};
  assert_int_equal(respond(t, id, &liar, NULL, 0), 0);
  assert_int_equal(l->failures, 1);
  /* And our own id is no one's. */
  assert_int_equal(respond(t, id, &s[0], NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  const done_rec *d = &t->done[0];
  assert_int_equal(d->r.n_nodes, 2);
  assert_true(mdht_id_eq(&d->nodes[0].id, &real.id));
  assert_true(mdht_addr_eq(&d->nodes[0].addr, &s[2].addr));
  assert_true(mdht_id_eq(&d->nodes[1].id, &s[0].id));

  uint32_t id2 = start(t, MDHT_M_FIND_NODE, s, 1);
  mdht_lookup_node me = {.id = t->self, .addr = s[0].addr};
  assert_int_equal(respond(t, id2, &me, NULL, 0), 0);
  /* Its only candidate failed: over at once. */
  assert_int_equal(t->ndone, 2);
  assert_false(t->done[1].r.ok);
  assert_int_equal(t->done[1].r.failures, 1);
  h_del(t);
}

/* Starting a lookup from inside `done` works and uses another slot. */
typedef struct chain {
  h *t;
  int starts;
  int64_t started_id;
} chain;

static void chain_done(void *user, const mdht_lookup_results *r) {
  chain *ch = user;
  h_done(ch->t, r);
  if (ch->starts-- > 0) {
    mdht_lookup_node s = lnode(1, 1);
    ch->started_id = mdht_lookup_start(&ch->t->ls, MDHT_M_FIND_NODE, &r->target,
                                       &s, 1, ch->t->now);
  }
}

static int chain_send(void *user, uint32_t lookup_id, mdht_method method,
                      const mdht_id *target, const mdht_id *node_id,
                      const mdht_addr *addr, mdht_time now) {
  chain *ch = user;
  return h_send(ch->t, lookup_id, method, target, node_id, addr, now);
}

static void test_start_from_done(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.max_lookups = 2;
  h *t = h_new_cfg(&c);
  chain ch = {.t = t, .starts = 1};
  mdht_lookups_free(&t->ls);
  mdht_lookup_cbs cbs = {.send = chain_send, .done = chain_done, .user = &ch};
  assert_int_equal(mdht_lookups_init(&t->ls, &c, &t->bus, &cbs, &t->self), 0);
  mdht_lookup_node s = lnode(1, 1);
  uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
  assert_int_equal(respond(t, id, &s, NULL, 0), 0);
  assert_int_equal(t->ndone, 1);
  assert_true(ch.started_id > 0);
  assert_int_not_equal((uint32_t)ch.started_id & 0xffff, id & 0xffff);
  assert_int_equal(t->ls.n_active, 1);
  assert_non_null(mdht_lookup_find(&t->ls, (uint32_t)ch.started_id));
  h_del(t);
}

/* ------------------------------------------------ one host, one candidate */

static size_t n_cands_of(h *t, uint32_t id) {
  return mdht_lookup_find(&t->ls, id)->n_cands;
}

/* Nodes at distances base+n-1 .. base, i.e. each closer than the one
 * before, at addresses made by `mk`. */
static void closer_nodes(mdht_lookup_node *v, int n, uint32_t base,
                         mdht_addr (*mk)(int)) {
  for (int i = 0; i < n; i++) {
    memset(&v[i].id, 0, sizeof v[i].id);
    uint32_t d = base + (uint32_t)(n - i);
    v[i].id.b[17] = (uint8_t)(d >> 16);
    v[i].id.b[18] = (uint8_t)(d >> 8);
    v[i].id.b[19] = (uint8_t)d;
    v[i].addr = mk(i);
  }
}

static mdht_addr one_ip(int i) {
  return test_addr4(40, 1, 1, 1, (uint16_t)(1000 + i));
}
static mdht_addr one_24(int i) {
  return test_addr4(40, 2, 2, (uint8_t)(1 + i), 6881);
}
static mdht_addr lan(int i) {
  return test_addr4(10, 0, 0, (uint8_t)(1 + i), 6881);
}
static mdht_addr lan_one_ip(int i) {
  return test_addr4(10, 0, 0, 1, (uint16_t)(1000 + i));
}
static mdht_addr one_64(int i) {
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  a.ip[0] = 0x2a;
  a.ip[7] = 1;
  a.ip[9] = (uint8_t)i; /* inside the /64 */
  a.ip[15] = 1;
  a.port = 6881;
  return a;
}

/* One reply naming K nodes of one host (`mk`); returns the candidates
 * added. */
static size_t added_from_reply(const mdht_config *c, mdht_addr (*mk)(int)) {
  h *t = h_new_cfg(c);
  mdht_lookup_node s = {.id = near(0), .addr = test_addr4(20, 1, 0, 1, 1)};
  s.id.b[0] = 0xff; /* far */
  uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
  mdht_lookup_node v[8];
  closer_nodes(v, 8, 100, mk);
  assert_int_equal(respond(t, id, &s, v, 8), 0);
  size_t n = n_cands_of(t, id) - 1;
  h_del(t);
  return n;
}

static void test_one_candidate_per_host(void **state) {
  (void)state;
  mdht_config c;
  h_config(&c);
  c.alpha = 1;
  assert_int_equal(added_from_reply(&c, one_ip), 1);
  assert_int_equal(added_from_reply(&c, one_24), 1);
  assert_int_equal(added_from_reply(&c, one_64), 1);
  c.allow_private = true;
  /* The prefix rule is for public addresses; the IP rule for all. */
  assert_int_equal(added_from_reply(&c, lan), 8);
  assert_int_equal(added_from_reply(&c, lan_one_ip), 1);
  c.allow_same_ip = true;
  assert_int_equal(added_from_reply(&c, lan_one_ip), 8);
  assert_int_equal(added_from_reply(&c, one_24), 1);
  c.allow_same_prefix = true;
  assert_int_equal(added_from_reply(&c, one_24), 8);
  assert_int_equal(added_from_reply(&c, one_ip), 8);
  assert_int_equal(added_from_reply(&c, one_64), 8);
}

/* Seeds (from the own table or routers) obey the same rules. */
static void test_seeds_one_per_host(void **state) {
  (void)state;
  h *t = h_new();
  mdht_lookup_node v[8];
  closer_nodes(v, 8, 100, one_ip);
  uint32_t id = start(t, MDHT_M_FIND_NODE, v, 8);
  assert_int_equal(n_cands_of(t, id), 1);
  assert_int_equal(t->nq, 1);
  h_del(t);
}

static int flood_i;
static mdht_addr flood_host(int i) {
  /* Even entries: ports of one IP; odd: hosts of their own. */
  if (i % 2 == 0) return test_addr4(40, 9, 9, 9, (uint16_t)(1000 + i));
  int n = flood_i++;
  return test_addr4(41, (uint8_t)(n >> 8), (uint8_t)n, 1, 6881);
}

/* Every answer is a forged 300-node reply, half of it ports of one IP,
 * half fresh hosts, all closer than anything known: the lookup still
 * stops within MDHT_LOOKUP_MAX_QUERIES, queries the flooded IP at most
 * once, and ends. */
static void test_forged_stream_bounded(void **state) {
  (void)state;
  h *t = h_new();
  flood_i = 0;
  mdht_lookup_node s = {.id = near(0), .addr = test_addr4(20, 1, 0, 1, 1)};
  s.id.b[0] = 0xff;
  uint32_t id = start(t, MDHT_M_FIND_NODE, &s, 1);
  enum { N = 300 };
  mdht_lookup_node *v = calloc(N, sizeof *v);
  assert_non_null(v);
  uint32_t base = 0xffff00;
  int answered = 0;
  while (t->ndone == 0) {
    assert_true(answered < t->nq);
    sent_q *q = &t->q[answered++];
    base -= 2 * N;
    closer_nodes(v, N, base, flood_host);
    t->now += 10;
    mdht_lookup_node who = {.id = q->node_id, .addr = q->addr};
    assert_int_equal(respond(t, id, &who, v, N), 0);
  }
  int to_flood = 0;
  mdht_addr fl = test_addr4(40, 9, 9, 9, 0);
  for (int i = 0; i < t->nq; i++)
    to_flood += mdht_addr_ip_eq(&t->q[i].addr, &fl);
  assert_true(to_flood <= 1);
  assert_true(t->nq <= MDHT_LOOKUP_MAX_QUERIES);
  assert_int_equal(t->done[0].r.queries, t->nq);
  assert_true(t->done[0].r.ok);
  free(v);
  h_del(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_bounds),
      cmocka_unit_test(test_start_errors),
      cmocka_unit_test(test_converges_to_true_closest),
      cmocka_unit_test(test_alpha_bound_with_slow_nodes),
      cmocka_unit_test(test_set_alpha_lowers_inflight),
      cmocka_unit_test(test_dead_nodes),
      cmocka_unit_test(test_slow_node_does_not_stall),
      cmocka_unit_test(test_slow_closest_not_awaited),
      cmocka_unit_test(test_slow_answer_before_end_counts),
      cmocka_unit_test(test_dead_node_among_closest),
      cmocka_unit_test(test_slow_awaited_below_k),
      cmocka_unit_test(test_soft_timeout_one_more),
      cmocka_unit_test(test_soft_timeout_set_by_owner),
      cmocka_unit_test(test_end_waits_for_closer_unqueried),
      cmocka_unit_test(test_end_game_asks_k),
      cmocka_unit_test(test_failure_removes_node),
      cmocka_unit_test(test_own_hard_timeout),
      cmocka_unit_test(test_no_duplicate_queries),
      cmocka_unit_test(test_no_duplicates_in_network),
      cmocka_unit_test(test_peers_and_tokens),
      cmocka_unit_test(test_peer_bound),
      cmocka_unit_test(test_slot_sized_by_kind),
      cmocka_unit_test(test_candidates_grow_tokens_follow),
      cmocka_unit_test(test_many_concurrent),
      cmocka_unit_test(test_martians_skipped),
      cmocka_unit_test(test_after_done_ignored),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_send_errors),
      cmocka_unit_test(test_candidate_bound),
      cmocka_unit_test(test_reply_capped_at_k),
      cmocka_unit_test(test_one_candidate_per_host),
      cmocka_unit_test(test_seeds_one_per_host),
      cmocka_unit_test(test_forged_stream_bounded),
      cmocka_unit_test(test_query_budget),
      cmocka_unit_test(test_id_mismatch),
      cmocka_unit_test(test_start_from_done),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
