#include "scenario.h"
#include "dist.h"
#include "evq.h"
#include "id.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Round-trip times are counted in a histogram of 1 ms bins; longer ones
 * land in the last bin. */
#define RTT_BINS 65536

typedef struct scen scen;

typedef struct lookup_rec {
  scen *sc;
  uint32_t node; /* origin */
  uint32_t ih;   /* announced info-hash index */
  uint32_t lookup_id;
  int32_t next; /* next active lookup of the same origin, -1 none */
  bool have_id, active, done, found, aborted, first, thin;
  mdht_time start, first_ms, done_ms;
  uint32_t rounds, queries, datagrams;
} lookup_rec;

typedef struct announce_rec {
  mdht_id ih;
  mdht_addr peer;
  bool done, ok;
  uint32_t nnodes;
} announce_rec;

typedef struct nodectx {
  scen *sc;
  uint32_t idx;
  int32_t head; /* its active lookups */
} nodectx;

struct scen {
  const mdht_scenario_opts *o;
  mdht_scenario_report *r;
  mdht_sim *sim;
  uint32_t n;
  nodectx *ctx;
  lookup_rec *lk;
  uint32_t nlk;
  announce_rec *an;
  uint32_t nan;
  lookup_rec *pending; /* the get_peers being started */
  bool measure_rtt;
  uint64_t *rtt;  /* RTT_BINS per simulator thread, summed at the end */
  uint32_t *pool; /* nodes that left through churn */
  uint32_t npool;
  bool churn_on;
  double next_churn;
  mdht_evq cq; /* WEIBULL: leaves (from 0) and rejoins (from 1) */
  uint32_t alive;
  const char *phase;
};

enum { CHURN_LEAVE = 0, CHURN_REJOIN = 1 };

void mdht_scenario_opts_default(mdht_scenario_opts *o) {
  memset(o, 0, sizeof *o);
  mdht_sim_opts_default(&o->sim);
  o->sim.nodes = 1000;
  o->sim.latency_ms = 50;
  o->sim.jitter_ms = 20;
  o->sim.per_link = true;
  /* Memory per node: 10,000 nodes in one process. A sim node has at most
   * some tens of queries in flight; the defaults are sized for a busy
   * public node. Every node shares one address range: no rate limit. */
  o->sim.cfg.max_txns = 512;
  o->sim.cfg.max_lookups = 32;
  o->sim.cfg.rate_limit_per_sec = 0;
  o->routers = 4;
  o->join_batch = 0; /* auto: max(25, N / 400) */
  o->join_step_ms = 100;
  o->settle_ms = 30000;
  o->churn = 0;
  o->churn_model = MDHT_CHURN_POISSON;
  /* Stutzbach and Rejaie (IMC 2006), BitTorrent (Debian swarm) session
   * lengths: Weibull k = 0.38, lambda = 42.4 minutes. The time away is
   * taken from the same distribution (they found downtimes heavy-tailed
   * too, without a fit we could cite). */
  o->session_shape = 0.38;
  o->session_scale_ms = 42.4 * 60000;
  o->down_scale_ms = 42.4 * 60000;
  o->dead = 0;
  o->infohashes = 10;
  o->lookups = 200;
  o->lookup_step_ms = 20;
  o->lookup_limit_ms = 60000;
}

/* ------------------------------------------------------------ events */

/* The node callbacks below run on the simulator's threads (sim.h), each
 * for the nodes of its thread, while the scenario's own code runs only
 * between mdht_sim_run calls. What they touch:
 *   on_event: RESPONSE_RECEIVED counts into its thread's RTT histogram;
 *     LOOKUP_STARTED reads `pending`, which is set only while the scenario
 *     starts a lookup (no run under way), and fills that record;
 *     LOOKUP_PROGRESS walks and writes the lookup records of its own node.
 *   on_lookup_done: the record of a lookup of its own node (and that
 *     node's list); reads the announce records, fixed during the lookups;
 *     mdht_sim_now gives the time of the delivery on its thread.
 *   on_announce_done: the record of its own announce.
 * No record is shared between nodes, so no order between threads shows
 * in the figures. */

static void unlink_lookup(scen *s, lookup_rec *l) {
  int32_t *p = &s->ctx[l->node].head;
  int32_t me = (int32_t)(l - s->lk);
  while (*p >= 0) {
    if (*p == me) {
      *p = l->next;
      break;
    }
    p = &s->lk[*p].next;
  }
  l->next = -1;
  l->active = false;
}

static void on_event(const mdht_event *ev, void *user) {
  nodectx *c = user;
  scen *s = c->sc;
  switch (ev->type) {
  case MDHT_EV_RESPONSE_RECEIVED:
    if (s->measure_rtt) {
      mdht_time t = ev->u.response.rtt_ms;
      /* Node callbacks run on the simulator's threads: each counts
       * into its own histogram. */
      size_t th = mdht_sim_thread(s->sim);
      s->rtt[th * RTT_BINS + (t < RTT_BINS ? t : RTT_BINS - 1)]++;
    }
    break;
  case MDHT_EV_LOOKUP_STARTED:
    if (s->pending && s->pending->node == c->idx && !s->pending->have_id &&
        ev->method == MDHT_M_GET_PEERS) {
      s->pending->lookup_id = ev->u.lookup.lookup_id;
      s->pending->have_id = true;
    }
    break;
  case MDHT_EV_LOOKUP_PROGRESS:
    if (ev->u.lookup.peers == 0) break;
    for (int32_t i = c->head; i >= 0; i = s->lk[i].next) {
      lookup_rec *l = &s->lk[i];
      if (l->have_id && l->lookup_id == ev->u.lookup.lookup_id) {
        if (!l->first) {
          l->first = true;
          l->first_ms = ev->now - l->start;
        }
        break;
      }
    }
    break;
  default:
    break;
  }
}

static void on_lookup_done(const mdht_result *res, void *user) {
  lookup_rec *l = user;
  scen *s = l->sc;
  if (!l->active) return;
  l->done = true;
  l->done_ms = mdht_sim_now(s->sim) - l->start;
  l->rounds = res->rounds;
  l->queries = res->queries;
  l->datagrams = res->queries + res->responses;
  for (size_t i = 0; i < res->npeers; i++)
    if (mdht_addr_eq(&res->peers[i], &s->an[l->ih].peer)) l->found = true;
  unlink_lookup(s, l);
}

static void on_announce_done(const mdht_result *res, void *user) {
  announce_rec *a = user;
  a->done = true;
  a->ok = res->ok && res->nnodes > 0;
  a->nnodes = (uint32_t)res->nnodes;
}

static int subscribe(scen *s, uint32_t i) {
  int h = mdht_node_subscribe(mdht_sim_node(s->sim, i), on_event, &s->ctx[i]);
  return h < 0 ? h : 0;
}

/* ------------------------------------------------------------- churn */

static bool is_router(const scen *s, uint32_t i) {
  return i < s->o->routers;
}

static double expo_ms(scen *s) {
  return -log(1.0 - mdht_sim_uniform(s->sim)) / s->o->churn * 1000.0;
}

/* Node i leaves: its lookups are aborted. */
static void leave(scen *s, uint32_t i) {
  if (mdht_sim_alive(s->sim, i)) s->alive--;
  mdht_sim_kill(s->sim, i);
  while (s->ctx[i].head >= 0) {
    lookup_rec *l = &s->lk[s->ctx[i].head];
    l->aborted = true;
    unlink_lookup(s, l);
  }
}

static void join(scen *s, uint32_t i, uint32_t router) {
  mdht_node_add_bootstrap(mdht_sim_node(s->sim, i),
                          mdht_sim_addr(s->sim, router), mdht_sim_now(s->sim));
  mdht_sim_touch(s->sim, i);
}

/* Node i comes back at its address; false if it could not be made. */
static bool rejoin(scen *s, uint32_t i) {
  if (mdht_sim_restart_as(s->sim, i, s->o->rejoin_same_id) < 0 ||
      subscribe(s, i) < 0)
    return false;
  s->alive++;
  s->ctx[i].head = -1;
  join(s, i, (uint32_t)(mdht_sim_rand(s->sim) % s->o->routers));
  s->r->churn_joined++;
  return true;
}

static double draw_u(void *user) {
  return mdht_sim_uniform(user);
}

/* Queues a WEIBULL churn event for node i `ms` from now. */
static void churn_at(scen *s, uint32_t i, uint32_t kind, double ms) {
  double at = (double)mdht_sim_now(s->sim) + ms + 1;
  mdht_evq_item it = {
      .at = at > 1e15 ? (mdht_time)1e15 : (mdht_time)at, .to = i, .from = kind};
  mdht_evq_push(&s->cq, it); /* out of memory: that node just stays */
}

/* WEIBULL: every live node but the routers gets the rest of its current
 * session. */
static void weibull_start(scen *s) {
  const mdht_scenario_opts *o = s->o;
  for (uint32_t i = o->routers; i < s->n; i++)
    if (mdht_sim_alive(s->sim, i))
      churn_at(s, i, CHURN_LEAVE,
               mdht_weibull_residual(draw_u, s->sim, o->session_shape,
                                     o->session_scale_ms));
}

static void weibull_event(scen *s, const mdht_evq_item *it) {
  const mdht_scenario_opts *o = s->o;
  uint32_t i = it->to;
  if (it->from == CHURN_LEAVE) {
    if (!mdht_sim_alive(s->sim, i)) return; /* the dead phase took it */
    leave(s, i);
    s->r->churn_left++;
    churn_at(s, i, CHURN_REJOIN,
             mdht_weibull(draw_u, s->sim, o->session_shape, o->down_scale_ms));
  } else if (rejoin(s, i)) {
    churn_at(
        s, i, CHURN_LEAVE,
        mdht_weibull(draw_u, s->sim, o->session_shape, o->session_scale_ms));
  }
}

static void churn_event(scen *s) {
  /* One joins (a node that left earlier, with a new id), one leaves. */
  if (s->npool > 0) {
    uint32_t k = (uint32_t)(mdht_sim_rand(s->sim) % s->npool);
    uint32_t i = s->pool[k];
    s->pool[k] = s->pool[--s->npool];
    rejoin(s, i);
  }
  for (int tries = 0; tries < 1000; tries++) {
    uint32_t i = (uint32_t)(mdht_sim_rand(s->sim) % s->n);
    if (is_router(s, i) || !mdht_sim_alive(s->sim, i)) continue;
    leave(s, i);
    s->pool[s->npool++] = i;
    s->r->churn_left++;
    break;
  }
}

/* Runs the network to `until`, with churn events on the way. */
static void advance(scen *s, mdht_time until) {
  bool poisson = s->o->churn_model == MDHT_CHURN_POISSON;
  while (s->churn_on && poisson && s->next_churn <= (double)until) {
    mdht_sim_run(s->sim, (mdht_time)s->next_churn);
    churn_event(s);
    s->next_churn += expo_ms(s);
  }
  const mdht_evq_item *top;
  while (s->churn_on && (top = mdht_evq_peek(&s->cq)) && top->at <= until) {
    mdht_evq_item it;
    mdht_evq_pop(&s->cq, &it);
    mdht_sim_run(s->sim, it.at);
    weibull_event(s, &it);
  }
  mdht_sim_run(s->sim, until);
}

static void status(scen *s, bool start) {
  mdht_scenario_status st = {.phase = s->phase,
                             .phase_start = start,
                             .vt = mdht_sim_now(s->sim),
                             .nodes = s->n,
                             .alive = s->alive,
                             .threads = mdht_sim_threads(s->sim)};
  mdht_sim_counts_get(s->sim, &st.c);
  s->o->progress(&st, s->o->progress_user);
}

static void on_poll(void *user) {
  status(user, false);
}

static void progress(scen *s, const char *phase) {
  s->phase = phase;
  if (s->o->progress) status(s, true);
}

/* A random live node (bootstrapped, if asked), or UINT32_MAX. */
static uint32_t pick_live(scen *s, bool bootstrapped) {
  for (int tries = 0; tries < 100000; tries++) {
    uint32_t i = (uint32_t)(mdht_sim_rand(s->sim) % s->n);
    if (!mdht_sim_alive(s->sim, i)) continue;
    if (bootstrapped && !mdht_node_bootstrapped(mdht_sim_node(s->sim, i)))
      continue;
    return i;
  }
  return UINT32_MAX;
}

/* --------------------------------------------------------- dead share */

typedef struct visit_ctx {
  scen *s;
  uint64_t total, stale;
} visit_ctx;

static void visit_entry(uint32_t bucket, const mdht_id *id,
                        const mdht_addr *addr, bool good, mdht_time last_reply,
                        void *user) {
  (void)bucket;
  (void)good;
  (void)last_reply;
  visit_ctx *v = user;
  uint32_t j;
  v->total++;
  if (!mdht_sim_index(v->s->sim, addr, &j) || !mdht_sim_alive(v->s->sim, j) ||
      memcmp(id->b, mdht_node_id(mdht_sim_node(v->s->sim, j))->b,
             MDHT_ID_LEN) != 0)
    v->stale++;
}

static double stale_share(scen *s, uint64_t *total) {
  visit_ctx v = {s, 0, 0};
  for (uint32_t i = 0; i < s->n; i++)
    if (mdht_sim_alive(s->sim, i))
      mdht_node_visit(mdht_sim_node(s->sim, i), mdht_sim_now(s->sim),
                      visit_entry, &v);
  *total = v.total;
  return v.total ? (double)v.stale / (double)v.total : 0;
}

static uint32_t kill_some(scen *s, uint32_t want) {
  uint32_t killed = 0;
  for (uint64_t tries = 0; killed < want && tries < 100ull * s->n; tries++) {
    uint32_t i = (uint32_t)(mdht_sim_rand(s->sim) % s->n);
    if (is_router(s, i) || !mdht_sim_alive(s->sim, i)) continue;
    leave(s, i);
    killed++;
  }
  return killed;
}

/* -------------------------------------------------------------- stats */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double rank(const double *v, uint32_t n, double p) {
  uint32_t k = (uint32_t)ceil(p * n);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return v[k - 1];
}

static void stat_of(double *v, uint32_t n, mdht_scenario_stat *st) {
  memset(st, 0, sizeof *st);
  st->n = n;
  if (n == 0) return;
  qsort(v, n, sizeof *v, cmp_double);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++)
    sum += v[i];
  st->mean = sum / n;
  st->median = rank(v, n, 0.5);
  st->p95 = rank(v, n, 0.95);
  st->p99 = rank(v, n, 0.99);
  st->max = v[n - 1];
}

static void stat_of_hist(const uint64_t *h, mdht_scenario_stat *st) {
  memset(st, 0, sizeof *st);
  uint64_t n = 0;
  double sum = 0;
  for (uint32_t t = 0; t < RTT_BINS; t++) {
    n += h[t];
    sum += (double)h[t] * t;
    if (h[t]) st->max = t;
  }
  st->n = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  if (n == 0) return;
  st->mean = sum / (double)n;
  double ps[3] = {0.5, 0.95, 0.99};
  double *out[3] = {&st->median, &st->p95, &st->p99};
  for (int k = 0; k < 3; k++) {
    uint64_t want = (uint64_t)ceil(ps[k] * (double)n), acc = 0;
    if (want < 1) want = 1;
    for (uint32_t t = 0; t < RTT_BINS; t++) {
      acc += h[t];
      if (acc >= want) {
        *out[k] = t;
        break;
      }
    }
  }
}

static void report_lookups(scen *s) {
  mdht_scenario_report *r = s->r;
  double *v = malloc((s->nlk ? s->nlk : 1) * sizeof *v);
  if (!v) return;
  uint32_t n;
#define COLLECT(field, cond, expr)                                             \
  n = 0;                                                                       \
  for (uint32_t i = 0; i < s->nlk; i++)                                        \
    if (cond) v[n++] = (double)(expr);                                         \
  stat_of(v, n, &r->field)
  COLLECT(rounds, s->lk[i].done, s->lk[i].rounds);
  COLLECT(queries, s->lk[i].done, s->lk[i].queries);
  COLLECT(datagrams, s->lk[i].done, s->lk[i].datagrams);
  COLLECT(done_ms, s->lk[i].done, s->lk[i].done_ms);
  COLLECT(ttfp_ms, s->lk[i].first, s->lk[i].first_ms);
#undef COLLECT
  free(v);
  uint32_t nt = mdht_sim_threads(s->sim);
  for (uint32_t th = 1; th < nt; th++)
    for (uint32_t t = 0; t < RTT_BINS; t++)
      s->rtt[t] += s->rtt[(size_t)th * RTT_BINS + t];
  stat_of_hist(s->rtt, &r->rtt_ms);
}

/* ---------------------------------------------------------------- run */

/* Phase 1: the routers join each other, everyone else joins in batches
 * through them, then the network settles (with churn, if asked). */
static void phase_join(scen *s) {
  const mdht_scenario_opts *o = s->o;
  mdht_sim *sim = s->sim;
  uint32_t nr = o->routers;

  progress(s, "join");
  for (uint32_t i = 1; i < nr; i++)
    join(s, i, 0);
  advance(s, mdht_sim_now(sim) + 1000);
  if (nr > 1) join(s, 0, 1);
  uint32_t batch = o->join_batch;
  if (batch == 0) batch = s->n / 400 > 25 ? s->n / 400 : 25;
  s->r->join_batch = batch;
  for (uint32_t i = nr; i < s->n;) {
    for (uint32_t b = 0; b < batch && i < s->n; b++, i++)
      join(s, i, (i - nr) % nr);
    advance(s, mdht_sim_now(sim) + o->join_step_ms);
  }
  progress(s, "settle");
  if (o->churn_model == MDHT_CHURN_WEIBULL) {
    s->churn_on = true;
    weibull_start(s);
  } else if (o->churn > 0) {
    s->churn_on = true;
    s->next_churn = (double)mdht_sim_now(sim) + expo_ms(s);
  }
  advance(s, mdht_sim_now(sim) + o->settle_ms);
  mdht_scenario_report *r = s->r;
  for (uint32_t i = 0; i < s->n; i++) {
    if (!mdht_sim_alive(sim, i)) continue;
    const mdht_node *nd = mdht_sim_node(sim, i);
    r->bootstrapped += mdht_node_bootstrapped(nd);
    mdht_memory m;
    mdht_node_memory(nd, &m);
    r->mem_nodes++;
    r->mem_total += m.total;
    r->mem_node += m.node;
    r->mem_routing += m.routing;
    r->mem_repl += m.replacements;
    r->mem_index += m.index;
    r->mem_txns += m.transactions;
    r->mem_lookups += m.lookups;
    r->mem_peers += m.peers;
    r->mem_items += m.items;
    r->mem_limits += m.limits;
    r->mem_other += m.other;
    r->mem_entries += m.entries;
  }
}

/* Phase 2: each info-hash is announced from a random bootstrapped node,
 * then the announces get up to two virtual minutes to finish. */
static void phase_announce(scen *s) {
  mdht_sim *sim = s->sim;
  progress(s, "announce");
  for (uint32_t k = 0; k < s->nan; k++) {
    announce_rec *a = &s->an[k];
    for (int j = 0; j < MDHT_ID_LEN; j += 4) {
      uint64_t x = mdht_sim_rand(sim);
      memcpy(a->ih.b + j, &x, 4);
    }
    uint32_t at = pick_live(s, true);
    if (at == UINT32_MAX) continue;
    a->peer = *mdht_sim_addr(sim, at);
    a->peer.port = (uint16_t)(10000 + k % 50000);
    s->r->announces++;
    if (mdht_node_announce(mdht_sim_node(sim, at), &a->ih, a->peer.port, false,
                           false, on_announce_done, a, mdht_sim_now(sim)) > 0)
      mdht_sim_touch(sim, at);
    else
      a->done = true;
    advance(s, mdht_sim_now(sim) + 10);
  }
  for (mdht_time limit = mdht_sim_now(sim) + 120000;
       mdht_sim_now(sim) < limit;) {
    bool all = true;
    for (uint32_t k = 0; k < s->nan; k++)
      all = all && s->an[k].done;
    if (all) break;
    advance(s, mdht_sim_now(sim) + 500);
  }
}

/* Fills okset with the info-hashes whose announce succeeded (the only ones
 * worth looking up), reports them, and returns how many there are. */
static uint32_t announced_ok(scen *s, uint32_t *okset) {
  uint32_t nok = 0;
  uint64_t accepted = 0;
  for (uint32_t k = 0; k < s->nan; k++)
    if (s->an[k].ok) {
      okset[nok++] = k;
      accepted += s->an[k].nnodes;
    }
  s->r->announces_ok = nok;
  s->r->announce_nodes = nok ? (double)accepted / nok : 0;
  return nok;
}

/* Phase 3: kill nodes until the asked share of routing entries is stale,
 * then count what is left alive and which live nodes have a thin table. */
static void phase_kill(scen *s) {
  const mdht_scenario_opts *o = s->o;
  mdht_scenario_report *r = s->r;
  mdht_sim *sim = s->sim;

  progress(s, "kill");
  /* Each count of stale entries is a pass over every routing table (126 M
   * entries, over a minute at a million nodes): the last count made is
   * the one reported, not a pass of its own. */
  bool counted = false;
  if (o->dead > 0) {
    uint32_t want = (uint32_t)floor(o->dead * s->n);
    r->killed += kill_some(s, want);
    uint32_t step = s->n / 200 ? s->n / 200 : 1;
    for (int round = 0; round < 200; round++) {
      r->dead_entries = stale_share(s, &r->rt_entries);
      counted = true;
      if (r->dead_entries >= o->dead) break;
      uint32_t k = kill_some(s, step);
      r->killed += k;
      counted = false;
      if (k == 0) break;
    }
  }
  if (!counted) r->dead_entries = stale_share(s, &r->rt_entries);
  for (uint32_t i = 0; i < s->n; i++) {
    if (!mdht_sim_alive(sim, i)) continue;
    r->alive++;
    mdht_stats st;
    mdht_node_stats(mdht_sim_node(sim, i), mdht_sim_now(sim), &st);
    r->thin += st.nodes_total < o->sim.cfg.k;
  }
}

/* Starts lookup k from a random bootstrapped node for one of the announced
 * info-hashes; a lookup that cannot start is counted as such. */
static void start_lookup(scen *s, uint32_t k, const uint32_t *okset,
                         uint32_t nok) {
  mdht_sim *sim = s->sim;
  lookup_rec *l = &s->lk[k];
  l->sc = s;
  l->next = -1;
  l->start = mdht_sim_now(sim);
  s->r->lookups++;
  uint32_t at = pick_live(s, true);
  if (at == UINT32_MAX || nok == 0) {
    s->r->lookups_failed_start++;
    return;
  }
  l->node = at;
  l->ih = okset[mdht_sim_rand(sim) % nok];
  mdht_stats st;
  mdht_node_stats(mdht_sim_node(sim, at), mdht_sim_now(sim), &st);
  l->thin = st.nodes_total < s->o->sim.cfg.k;
  l->active = true;
  l->next = s->ctx[at].head;
  s->ctx[at].head = (int32_t)k;
  s->pending = l;
  int64_t id = mdht_node_get_peers(mdht_sim_node(sim, at), &s->an[l->ih].ih,
                                   on_lookup_done, l, mdht_sim_now(sim));
  s->pending = NULL;
  if (id < 0) {
    unlink_lookup(s, l);
    s->r->lookups_failed_start++;
  } else {
    mdht_sim_touch(sim, at);
  }
}

/* Phase 4: lookups start one every lookup_step_ms, measuring RTTs, then get
 * up to lookup_limit_ms to finish. */
static void phase_lookups(scen *s, const uint32_t *okset, uint32_t nok) {
  mdht_sim *sim = s->sim;
  progress(s, "lookups");
  s->measure_rtt = true;
  for (uint32_t k = 0; k < s->nlk; k++) {
    start_lookup(s, k, okset, nok);
    advance(s, mdht_sim_now(sim) + s->o->lookup_step_ms);
  }
  for (mdht_time limit = mdht_sim_now(sim) + s->o->lookup_limit_ms;
       mdht_sim_now(sim) < limit;) {
    bool any = false;
    for (uint32_t k = 0; k < s->nlk && !any; k++)
      any = s->lk[k].active;
    if (!any) break;
    advance(s, mdht_sim_now(sim) + 200);
  }
  s->measure_rtt = false;
  progress(s, "done");
}

/* Sums the lookups' outcomes into the report. Aborted lookups (their node
 * died under them) do not count against the success rate. */
static void tally_lookups(scen *s) {
  mdht_scenario_report *r = s->r;
  for (uint32_t k = 0; k < s->nlk; k++) {
    lookup_rec *l = &s->lk[k];
    r->lookups_aborted += l->aborted;
    r->lookups_unfinished += l->active;
    r->lookups_done += l->done;
    r->lookups_found += l->found;
    r->lookups_thin += l->thin;
    r->lookups_thin_found += l->thin && l->found;
  }
  uint32_t denom = r->lookups - r->lookups_aborted;
  r->success = denom ? (double)r->lookups_found / denom : 0;
  report_lookups(s);
}

static int phases(scen *s) {
  phase_join(s);
  phase_announce(s);
  uint32_t *okset = malloc((s->nan ? s->nan : 1) * sizeof *okset);
  if (!okset) return MDHT_ERR_NOMEM;
  uint32_t nok = announced_ok(s, okset);
  phase_kill(s);
  phase_lookups(s, okset, nok);
  free(okset);
  tally_lookups(s);
  return 0;
}

int mdht_scenario_run(const mdht_scenario_opts *o, mdht_scenario_report *r) {
  if (!o || !r || o->routers == 0 || o->routers > o->sim.nodes ||
      o->routers > 16 || !(o->dead >= 0) || o->dead >= 1 || !(o->churn >= 0) ||
      o->churn > 1e6 ||
      (o->churn_model != MDHT_CHURN_POISSON &&
       o->churn_model != MDHT_CHURN_WEIBULL) ||
      (o->churn_model == MDHT_CHURN_WEIBULL &&
       !(o->session_shape >= 0.05 && o->session_shape <= 10 &&
         o->session_scale_ms >= 1 && o->down_scale_ms >= 1)))
    return MDHT_ERR_INVAL;
  memset(r, 0, sizeof *r);
  scen s;
  memset(&s, 0, sizeof s);
  s.o = o;
  s.r = r;
  int rc = mdht_sim_new(&s.sim, &o->sim);
  if (rc < 0) return rc;
  s.n = mdht_sim_count(s.sim);
  s.alive = s.n;
  r->nodes = s.n;
  mdht_evq_init(&s.cq);
  if (o->progress)
    mdht_sim_set_poll(s.sim, o->progress_events ? o->progress_events : 1 << 16,
                      on_poll, &s);
  s.nlk = o->lookups;
  s.nan = o->infohashes;
  s.ctx = calloc(s.n, sizeof *s.ctx);
  s.lk = calloc(s.nlk ? s.nlk : 1, sizeof *s.lk);
  s.an = calloc(s.nan ? s.nan : 1, sizeof *s.an);
  s.rtt = calloc((size_t)RTT_BINS * mdht_sim_threads(s.sim), sizeof *s.rtt);
  s.pool = calloc(s.n, sizeof *s.pool);
  if (!s.ctx || !s.lk || !s.an || !s.rtt || !s.pool) rc = MDHT_ERR_NOMEM;
  for (uint32_t i = 0; rc == 0 && i < s.n; i++) {
    s.ctx[i] = (nodectx){.sc = &s, .idx = i, .head = -1};
    rc = subscribe(&s, i);
  }
  if (rc == 0) rc = phases(&s);
  r->sent = mdht_sim_sent(s.sim);
  r->lost = mdht_sim_lost(s.sim);
  r->virtual_ms = mdht_sim_now(s.sim);
  mdht_sim_counts c;
  mdht_sim_counts_get(s.sim, &c);
  r->events = c.events;
  mdht_sim_del(s.sim);
  mdht_evq_free(&s.cq);
  free(s.ctx);
  free(s.lk);
  free(s.an);
  free(s.rtt);
  free(s.pool);
  return rc;
}

/* ------------------------------------------------------------- output */

static double ratio(double a, double b) {
  return b > 0 ? a / b : 0;
}

static const char *dist_name(const mdht_sim_opts *so) {
  return so->dist == MDHT_SIM_LAT_LOGNORMAL ? "lognormal" : "uniform";
}

/* "churn 0.5/s", or the Weibull parameters in minutes. */
static void churn_desc(char *buf, size_t len, const mdht_scenario_opts *o) {
  if (o->churn_model == MDHT_CHURN_WEIBULL)
    snprintf(buf, len, "churn weibull (k %g, sessions %g min, away %g min, %s)",
             o->session_shape, o->session_scale_ms / 60000,
             o->down_scale_ms / 60000,
             o->rejoin_same_id ? "same id" : "new id");
  else
    snprintf(buf, len, "churn %g/s", o->churn);
}

void mdht_scenario_print(FILE *f, const mdht_scenario_opts *o,
                         const mdht_scenario_report *r) {
  const mdht_sim_opts *so = &o->sim;
  double rtt = r->rtt_ms.median;
  char churn[128];
  churn_desc(churn, sizeof churn, o);
  fprintf(f,
          "mdht sim: %u nodes, seed %llu, one-way latency %llu ms (%s%s) "
          "+ 0..%llu ms jitter, loss %.1f %%, %s, alpha %u, "
          "soft timeout %llu ms\n",
          r->nodes, (unsigned long long)so->seed,
          (unsigned long long)so->latency_ms, dist_name(so),
          so->per_link || so->dist == MDHT_SIM_LAT_LOGNORMAL ? ", per link"
                                                             : "",
          (unsigned long long)so->jitter_ms, so->loss * 100, churn,
          so->cfg.alpha, (unsigned long long)so->cfg.query_soft_timeout_ms);
  fprintf(f,
          "network:  %u bootstrapped; %u/%u announces stored (on %.1f nodes "
          "each); %u killed, %u alive: %.1f %% of %llu routing entries "
          "stale, %u live nodes with fewer than k; churn %u left, %u joined\n",
          r->bootstrapped, r->announces_ok, r->announces, r->announce_nodes,
          r->killed, r->alive, r->dead_entries * 100,
          (unsigned long long)r->rt_entries, r->thin, r->churn_left,
          r->churn_joined);
  if (r->mem_nodes) {
    double n = r->mem_nodes;
    double e = r->mem_entries ? (double)r->mem_entries : 1;
    fprintf(f,
            "memory:   a settled node holds %.0f B: struct %.0f, routing "
            "slots %.0f, replacements %.0f, index %.0f, transactions %.0f, "
            "lookups %.0f, peers %.0f, items %.0f, limits %.0f, other %.0f; "
            "%.1f routing entries, %.1f B each (slots, candidates, index)\n",
            r->mem_total / n, r->mem_node / n, r->mem_routing / n,
            r->mem_repl / n, r->mem_index / n, r->mem_txns / n,
            r->mem_lookups / n, r->mem_peers / n, r->mem_items / n,
            r->mem_limits / n, r->mem_other / n, r->mem_entries / n,
            (double)(r->mem_routing + r->mem_repl + r->mem_index) / e);
  }
  fprintf(f,
          "lookups:  %u started, %u found the peer: %.2f %% (%u aborted as "
          "their node left, %u unfinished, %u refused)\n",
          r->lookups, r->lookups_found, r->success * 100, r->lookups_aborted,
          r->lookups_unfinished, r->lookups_failed_start);
  if (r->lookups_thin)
    fprintf(f,
            "          %u of them from nodes with fewer than k routing "
            "entries, of which %u found the peer; from the others: %.2f %%\n",
            r->lookups_thin, r->lookups_thin_found,
            100 * ratio(r->lookups_found - r->lookups_thin_found,
                        r->lookups - r->lookups_aborted - r->lookups_thin));
  fprintf(f, "%-22s %7s %9s %9s %9s %9s %9s  %s\n", "", "n", "mean", "median",
          "p95", "p99", "max", "median/p95/p99 : RTT");
  struct {
    const char *name;
    const mdht_scenario_stat *st;
    bool vs_rtt;
  } rows[] = {{"time to first peer ms", &r->ttfp_ms, true},
              {"time to completion ms", &r->done_ms, true},
              {"rounds", &r->rounds, false},
              {"queries", &r->queries, false},
              {"datagrams", &r->datagrams, false},
              {"link RTT ms", &r->rtt_ms, false}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const mdht_scenario_stat *st = rows[i].st;
    fprintf(f, "%-22s %7u %9.1f %9.1f %9.1f %9.1f %9.1f", rows[i].name, st->n,
            st->mean, st->median, st->p95, st->p99, st->max);
    if (rows[i].vs_rtt)
      fprintf(f, "  %.2f / %.2f / %.2f", ratio(st->median, rtt),
              ratio(st->p95, rtt), ratio(st->p99, rtt));
    fputc('\n', f);
  }
  fprintf(f,
          "datagrams: %llu sent, %llu lost; %.1f s of virtual time, %llu "
          "events; joined %u per %llu ms\n",
          (unsigned long long)r->sent, (unsigned long long)r->lost,
          (double)r->virtual_ms / 1000, (unsigned long long)r->events,
          r->join_batch, (unsigned long long)o->join_step_ms);
}

static void json_stat(FILE *f, const char *name, const mdht_scenario_stat *st) {
  fprintf(f,
          "\"%s\":{\"n\":%u,\"mean\":%.3f,\"median\":%.3f,\"p95\":%.3f,"
          "\"p99\":%.3f,\"max\":%.3f}",
          name, st->n, st->mean, st->median, st->p95, st->p99, st->max);
}

void mdht_scenario_print_json(FILE *f, const mdht_scenario_opts *o,
                              const mdht_scenario_report *r,
                              const char *extra) {
  const mdht_sim_opts *so = &o->sim;
  double rtt = r->rtt_ms.median;
  fprintf(f,
          "{\"nodes\":%u,\"seed\":%llu,\"latency_ms\":%llu,\"jitter_ms\":%llu,"
          "\"latency_dist\":\"%s\",\"loss\":%g,\"churn\":%g,\"dead\":%g,"
          "\"alpha\":%u,\"soft_timeout_ms\":%llu,",
          r->nodes, (unsigned long long)so->seed,
          (unsigned long long)so->latency_ms, (unsigned long long)so->jitter_ms,
          dist_name(so), so->loss, o->churn, o->dead, so->cfg.alpha,
          (unsigned long long)so->cfg.query_soft_timeout_ms);
  if (o->churn_model == MDHT_CHURN_WEIBULL)
    fprintf(f,
            "\"churn_model\":\"weibull\",\"session_shape\":%g,"
            "\"session_scale_min\":%g,\"down_scale_min\":%g,",
            o->session_shape, o->session_scale_ms / 60000,
            o->down_scale_ms / 60000);
  else
    fprintf(f, "\"churn_model\":\"poisson\",");
  fprintf(f, "\"rejoin\":\"%s\",\"join_batch\":%u,",
          o->rejoin_same_id ? "same-id" : "new-id", r->join_batch);
  fprintf(f,
          "\"bootstrapped\":%u,\"announces\":%u,\"announces_ok\":%u,"
          "\"announce_nodes\":%.3f,\"killed\":%u,\"alive\":%u,"
          "\"dead_entries\":%.5f,\"routing_entries\":%llu,\"thin\":%u,"
          "\"churn_left\":%u,\"churn_joined\":%u,",
          r->bootstrapped, r->announces, r->announces_ok, r->announce_nodes,
          r->killed, r->alive, r->dead_entries,
          (unsigned long long)r->rt_entries, r->thin, r->churn_left,
          r->churn_joined);
  fprintf(f,
          "\"lookups\":%u,\"found\":%u,\"success\":%.5f,\"aborted\":%u,"
          "\"unfinished\":%u,\"refused\":%u,\"from_thin\":%u,"
          "\"from_thin_found\":%u,",
          r->lookups, r->lookups_found, r->success, r->lookups_aborted,
          r->lookups_unfinished, r->lookups_failed_start, r->lookups_thin,
          r->lookups_thin_found);
  {
    double n = r->mem_nodes ? r->mem_nodes : 1;
    double e = r->mem_entries ? (double)r->mem_entries : 1;
    fprintf(f,
            "\"memory\":{\"nodes\":%u,\"per_node\":{\"total\":%.1f,"
            "\"node\":%.1f,\"routing\":%.1f,\"replacements\":%.1f,"
            "\"index\":%.1f,\"transactions\":%.1f,\"lookups\":%.1f,"
            "\"peers\":%.1f,\"items\":%.1f,\"limits\":%.1f,\"other\":%.1f},"
            "\"entries_per_node\":%.2f,\"bytes_per_entry\":%.2f},",
            r->mem_nodes, r->mem_total / n, r->mem_node / n, r->mem_routing / n,
            r->mem_repl / n, r->mem_index / n, r->mem_txns / n,
            r->mem_lookups / n, r->mem_peers / n, r->mem_items / n,
            r->mem_limits / n, r->mem_other / n, r->mem_entries / n,
            (double)(r->mem_routing + r->mem_repl + r->mem_index) / e);
  }
  json_stat(f, "ttfp_ms", &r->ttfp_ms);
  fputc(',', f);
  json_stat(f, "done_ms", &r->done_ms);
  fputc(',', f);
  json_stat(f, "rounds", &r->rounds);
  fputc(',', f);
  json_stat(f, "queries", &r->queries);
  fputc(',', f);
  json_stat(f, "datagrams", &r->datagrams);
  fputc(',', f);
  json_stat(f, "rtt_ms", &r->rtt_ms);
  fprintf(f,
          ",\"ratios\":{\"ttfp_median\":%.3f,\"ttfp_p95\":%.3f,"
          "\"ttfp_p99\":%.3f,\"done_median\":%.3f,\"done_p95\":%.3f,"
          "\"done_p99\":%.3f},",
          ratio(r->ttfp_ms.median, rtt), ratio(r->ttfp_ms.p95, rtt),
          ratio(r->ttfp_ms.p99, rtt), ratio(r->done_ms.median, rtt),
          ratio(r->done_ms.p95, rtt), ratio(r->done_ms.p99, rtt));
  fprintf(f,
          "\"sent\":%llu,\"lost\":%llu,\"virtual_ms\":%llu,\"events\":%llu"
          "%s%s}\n",
          (unsigned long long)r->sent, (unsigned long long)r->lost,
          (unsigned long long)r->virtual_ms, (unsigned long long)r->events,
          extra ? "," : "", extra ? extra : "");
}

/* ------------------------------------------------------------ eclipse */

static uint64_t splitmix_scen(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

typedef struct eclipse {
  const mdht_eclipse_opts *o;
  mdht_eclipse_report *r;
  mdht_sim *sim;
  mdht_id target;
  uint64_t idseed;
  mdht_id *truth; /* the k honest ids closest to the target, closest first */
  uint32_t ntruth;
  uint32_t pending; /* lookups not reported yet */
  /* ecl_done runs on the simulator's threads: the sums it adds to (and
   * pending) are taken under this lock; sums do not depend on order. */
  pthread_mutex_t mu;
} eclipse;

void mdht_eclipse_opts_default(mdht_eclipse_opts *o) {
  mdht_scenario_opts so;
  mdht_scenario_opts_default(&so);
  memset(o, 0, sizeof *o);
  o->sim = so.sim;
  o->honest = 400;
  o->attackers = 32;
  o->routers = 4;
  o->enforce = true;
  o->settle_ms = 60000;
  o->lookups = 40;
}

static bool eclipse_setup(void *user, uint32_t i, const mdht_addr *addr,
                          mdht_id *id, mdht_config *cfg) {
  eclipse *e = user;
  (void)addr;
  if (i < e->o->honest) {
    cfg->enforce_node_id = e->o->enforce;
    return false;
  }
  /* The attacker: next to the target, whatever its addresses. */
  *id = e->target;
  uint64_t s = e->idseed ^ i;
  for (int b = 12; b < MDHT_ID_LEN; b++)
    id->b[b] = (uint8_t)(splitmix_scen(&s) >> 24);
  cfg->fixed_id = true;
  cfg->enforce_node_id = false;
  return true;
}

static bool is_attacker(const eclipse *e, const mdht_addr *a) {
  uint32_t j;
  return mdht_sim_index(e->sim, a, &j) && j >= e->o->honest;
}

typedef struct ecl_visit {
  eclipse *e;
  uint64_t total, bad;
} ecl_visit;

static void ecl_entry(uint32_t bucket, const mdht_id *id, const mdht_addr *addr,
                      bool good, mdht_time last_reply, void *user) {
  ecl_visit *v = user;
  (void)bucket;
  (void)id;
  (void)good;
  (void)last_reply;
  v->total++;
  v->bad += is_attacker(v->e, addr);
}

/* The k honest ids closest to the target (the right answer). */
static int ecl_truth(eclipse *e, uint32_t k) {
  e->truth = calloc(k, sizeof *e->truth);
  if (!e->truth) return MDHT_ERR_NOMEM;
  for (uint32_t i = 0; i < e->o->honest; i++) {
    const mdht_id *id = mdht_node_id(mdht_sim_node(e->sim, i));
    uint32_t j = e->ntruth < k ? e->ntruth++ : k;
    if (j == k && mdht_id_cmp_dist(&e->target, id, &e->truth[k - 1]) >= 0)
      continue;
    if (j == k) j = k - 1;
    while (j > 0 && mdht_id_cmp_dist(&e->target, id, &e->truth[j - 1]) < 0) {
      e->truth[j] = e->truth[j - 1];
      j--;
    }
    e->truth[j] = *id;
  }
  return 0;
}

static void ecl_done(const mdht_result *res, void *user) {
  eclipse *e = user;
  mdht_eclipse_report *r = e->r;
  uint64_t nodes = 0, bad = 0, good = 0;
  size_t n = res->nnodes < e->ntruth ? res->nnodes : e->ntruth;
  for (size_t i = 0; i < n; i++) {
    nodes++;
    bad += is_attacker(e, &res->nodes[i].addr);
    for (uint32_t t = 0; t < e->ntruth; t++)
      if (mdht_id_eq(&res->nodes[i].id, &e->truth[t])) good++;
  }
  pthread_mutex_lock(&e->mu);
  e->pending--;
  r->lookups_ok += res->ok;
  r->result_nodes += nodes;
  r->result_attacker += bad;
  r->result_true += good;
  r->closest_found += n > 0 && mdht_id_eq(&res->nodes[0].id, &e->truth[0]);
  pthread_mutex_unlock(&e->mu);
}

static void ecl_join(eclipse *e, uint32_t i, uint32_t router) {
  mdht_node_add_bootstrap(mdht_sim_node(e->sim, i),
                          mdht_sim_addr(e->sim, router), mdht_sim_now(e->sim));
  mdht_sim_touch(e->sim, i);
}

static void ecl_advance(eclipse *e, mdht_time ms) {
  mdht_sim_run(e->sim, mdht_sim_now(e->sim) + ms);
}

/* Every attacker pings every honest node, 100 at a time per attacker so
 * that its transaction table and send queue keep up. */
static void ecl_attack(eclipse *e) {
  const mdht_eclipse_opts *o = e->o;
  uint32_t n = o->honest + o->attackers;
  for (uint32_t a = o->honest; a < n; a++)
    ecl_join(e, a, (a - o->honest) % o->routers);
  ecl_advance(e, 10000);
  for (uint32_t h0 = 0; h0 < o->honest; h0 += 100) {
    for (uint32_t a = o->honest; a < n; a++) {
      mdht_node *an = mdht_sim_node(e->sim, a);
      for (uint32_t h = h0; h < h0 + 100 && h < o->honest; h++)
        mdht_node_ping(an, mdht_sim_addr(e->sim, h), mdht_sim_now(e->sim));
      mdht_sim_touch(e->sim, a);
    }
    ecl_advance(e, 6000);
  }
  ecl_advance(e, o->settle_ms);
}

static int ecl_phases(eclipse *e) {
  const mdht_eclipse_opts *o = e->o;
  mdht_eclipse_report *r = e->r;
  uint32_t nr = o->routers;
  for (uint32_t i = 1; i < nr; i++)
    ecl_join(e, i, 0);
  ecl_advance(e, 1000);
  if (nr > 1) ecl_join(e, 0, 1);
  for (uint32_t i = nr; i < o->honest;) {
    for (uint32_t b = 0; b < 25 && i < o->honest; b++, i++)
      ecl_join(e, i, (i - nr) % nr);
    ecl_advance(e, 100);
  }
  ecl_advance(e, 30000);
  ecl_attack(e);

  for (uint32_t i = 0; i < o->honest; i++) {
    ecl_visit v = {e, 0, 0};
    mdht_node_visit(mdht_sim_node(e->sim, i), mdht_sim_now(e->sim), ecl_entry,
                    &v);
    r->honest_entries += v.total;
    r->attacker_entries += v.bad;
    r->tables_hit += v.bad > 0;
  }
  int rc = ecl_truth(e, o->sim.cfg.k);
  if (rc < 0) return rc;
  for (uint32_t k = 0; k < o->lookups; k++) {
    uint32_t at = (uint32_t)(mdht_sim_rand(e->sim) % o->honest);
    if (mdht_node_find_node(mdht_sim_node(e->sim, at), &e->target, ecl_done, e,
                            mdht_sim_now(e->sim)) > 0) {
      e->pending++;
      r->lookups++;
      mdht_sim_touch(e->sim, at);
    }
    ecl_advance(e, 200);
  }
  for (int t = 0; t < 300 && e->pending > 0; t++)
    ecl_advance(e, 200);
  return 0;
}

int mdht_eclipse_run(const mdht_eclipse_opts *o, mdht_eclipse_report *r) {
  if (!o || !r || o->routers == 0 || o->routers > o->honest ||
      o->attackers == 0 || o->sim.cfg.k == 0)
    return MDHT_ERR_INVAL;
  memset(r, 0, sizeof *r);
  eclipse e;
  memset(&e, 0, sizeof e);
  e.o = o;
  e.r = r;
  uint64_t s = o->sim.seed ^ 0xec1195eull;
  for (int b = 0; b < MDHT_ID_LEN; b++)
    e.target.b[b] = (uint8_t)(splitmix_scen(&s) >> 24);
  e.idseed = splitmix_scen(&s);
  pthread_mutex_init(&e.mu, NULL);
  mdht_sim_opts so = o->sim;
  so.nodes = o->honest + o->attackers;
  so.public_addrs = true;
  so.node_setup = eclipse_setup;
  so.node_setup_user = &e;
  int rc = mdht_sim_new(&e.sim, &so);
  if (rc < 0) {
    pthread_mutex_destroy(&e.mu);
    return rc;
  }
  r->honest = o->honest;
  r->attackers = o->attackers;
  rc = ecl_phases(&e);
  mdht_sim_del(e.sim);
  pthread_mutex_destroy(&e.mu);
  free(e.truth);
  return rc;
}

void mdht_eclipse_print(FILE *f, const mdht_eclipse_opts *o,
                        const mdht_eclipse_report *r) {
  fprintf(f,
          "eclipse: %u honest nodes (BEP 42 enforcement %s), %u attacker "
          "addresses in %u /24s with ids next to the target\n",
          r->honest, o->enforce ? "on" : "off", r->attackers, r->attackers);
  fprintf(f,
          "routing entries of honest nodes: %llu, of the attacker: %llu "
          "(%u of %u tables)\n",
          (unsigned long long)r->honest_entries,
          (unsigned long long)r->attacker_entries, r->tables_hit, r->honest);
  fprintf(f,
          "find_node for the target: %u lookups, %u ok; of %llu nodes "
          "returned, %llu the attacker's, %llu among the %u true closest; "
          "closest honest node first in %u\n",
          r->lookups, r->lookups_ok, (unsigned long long)r->result_nodes,
          (unsigned long long)r->result_attacker,
          (unsigned long long)r->result_true, o->sim.cfg.k, r->closest_found);
}
