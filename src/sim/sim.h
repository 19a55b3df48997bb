/*
 * The simulator: many sans-I/O nodes on one virtual network, in virtual
 * time, in one process. Datagrams between nodes are delayed by a latency
 * and lost with a given probability; everything is driven by one seeded
 * generator, so a run is repeatable for a given seed.
 *
 * The one-way latency of a datagram from i to j is the link's base plus a
 * per-datagram jitter drawn uniformly from 0..jitter_ms:
 *   - by default (per_link off, uniform) every link's base is latency_ms;
 *   - with per_link, each (unordered) pair {i, j} has its own base, a
 *     deterministic function of the seed and the pair, so that the same
 *     link is always as slow in both directions and on every datagram:
 *       MDHT_SIM_LAT_UNIFORM:   latency_ms * U(0.5, 1.5)
 *       MDHT_SIM_LAT_LOGNORMAL: latency_ms * exp(sigma * Z), Z ~ N(0, 1),
 *                               clamped to [latency_ms / 10, 20 latency_ms]
 *     (both have median latency_ms; the log-normal has the long right
 *     tail of Internet paths). LOGNORMAL implies per_link.
 *
 * It is what the core's design is for: the same node code that runs under
 * the epoll driver runs here thousands of times over, without sockets or
 * sleeping, on as many threads as asked (`threads` below).
 */
#ifndef MDHT_SIM_H
#define MDHT_SIM_H

#include "mdht.h"

typedef struct mdht_sim mdht_sim;

typedef enum mdht_sim_latency_dist {
  MDHT_SIM_LAT_UNIFORM,
  MDHT_SIM_LAT_LOGNORMAL
} mdht_sim_latency_dist;

typedef struct mdht_sim_opts {
  uint32_t nodes;
  uint64_t seed;
  mdht_time latency_ms; /* one-way base latency (median with per_link) */
  mdht_time jitter_ms;  /* plus uniform 0..jitter per datagram */
  mdht_sim_latency_dist dist;
  bool per_link;   /* each link its own base (see above) */
  double sigma;    /* LOGNORMAL shape: 0.6 */
  double loss;     /* probability a datagram is lost, 0..1 */
  mdht_config cfg; /* for every node (allow_private is forced on) */
  /* Public virtual addresses: node i at 20.0.0.1 + 256 i, each in its own
   * /24, instead of 127.0.0.1 + i (private, where BEP 42 does not apply).
   * Virtual only: the simulator never touches a socket. Every node then
   * gets a BEP 42 id valid for its address. At most 2^20 nodes. */
  bool public_addrs;
  /* Called as node i is made (may be NULL): may change its `cfg`, and may
   * choose its id (then returns true). For the attackers of a scenario. */
  bool (*node_setup)(void *user, uint32_t i, const mdht_addr *addr, mdht_id *id,
                     mdht_config *cfg);
  void *node_setup_user;
  /* Threads delivering events (0 or 1: the caller's only). Nodes are
   * split between them (runs of 64 nodes take turns) and time advances
   * in windows of the lookahead (mdht_sim_lookahead): every datagram
   * takes at least that long, so what one thread sends within a window
   * is due after it, and each thread runs its own nodes' events of the
   * window without waiting for the others. Events due at the same
   * millisecond are ordered by what they are (sender and its datagram
   * count, or the node of a timer), loss and jitter are drawn from the
   * sender's own stream: the results are the same, bit for bit, whatever
   * the number of threads. With a lookahead of 0 (latency 0) there are
   * no windows and one thread runs. Node callbacks (bus subscribers,
   * lookup callbacks) run on these threads, each for its own nodes; what
   * they share must be per thread (mdht_sim_thread) or commutative and
   * atomic. mdht_sim_run and everything else is called from one thread,
   * between runs. */
  uint32_t threads;
} mdht_sim_opts;

void mdht_sim_opts_default(mdht_sim_opts *o);
/* Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL. */
int mdht_sim_new(mdht_sim **out, const mdht_sim_opts *o);
void mdht_sim_del(mdht_sim *sim);

uint32_t mdht_sim_count(const mdht_sim *sim);
mdht_node *mdht_sim_node(mdht_sim *sim, uint32_t i);
const mdht_addr *mdht_sim_addr(const mdht_sim *sim, uint32_t i);
/* Virtual ms: inside a node callback, the time of the event being
 * delivered; outside, the time mdht_sim_run reached. */
mdht_time mdht_sim_now(const mdht_sim *sim);
/* Threads in use (see `threads` above), and the one calling: 0 outside
 * mdht_sim_run, else the worker delivering (a node callback's index into
 * per-thread accumulators). */
uint32_t mdht_sim_threads(const mdht_sim *sim);
uint32_t mdht_sim_thread(const mdht_sim *sim);
/* The shortest one-way latency the model can give, in ms: latency for
 * uniform, latency / 2 per link, latency / 10 log-normal (rounded down). */
mdht_time mdht_sim_lookahead(const mdht_sim *sim);
/* A dead node receives nothing and is never woken. */
void mdht_sim_kill(mdht_sim *sim, uint32_t i);
bool mdht_sim_alive(const mdht_sim *sim, uint32_t i);
/* Replaces node i by a new node with a new id at the same address
 * (churn); it starts with an empty table. Returns 0 or an error. */
int mdht_sim_restart(mdht_sim *sim, uint32_t i);
/* The same, keeping its id when `same_id` (a client that saved its id);
 * its table still starts empty. */
int mdht_sim_restart_as(mdht_sim *sim, uint32_t i, bool same_id);
/* After calling into node i from outside (starting a lookup, adding a
 * bootstrap address), so that its datagrams leave and its timer is set.
 * From a node callback (on a simulator thread), only for that node. */
void mdht_sim_touch(mdht_sim *sim, uint32_t i);
/* Runs every delivery and timer up to `until` (virtual ms). */
void mdht_sim_run(mdht_sim *sim, mdht_time until);
/* What the event loop has done so far, for progress and the scaling
 * figures. */
typedef struct mdht_sim_counts {
  uint64_t events;    /* popped from the queue */
  uint64_t datagrams; /* ... delivered to a live node */
  uint64_t timers;    /* ... timers of a live node */
  uint64_t early;     /* ... of which found nothing due: the node's
                         deadline had moved later since it was queued */
  uint64_t dropped;   /* ... for a node dead or replaced since */
  uint64_t queued;    /* in the queue now */
} mdht_sim_counts;
void mdht_sim_counts_get(const mdht_sim *sim, mdht_sim_counts *out);
/* Calls fn(user) from inside mdht_sim_run every `every` events (the
 * command's progress line: wall time is not the simulator's business);
 * with threads, between windows, once `every` events have passed. fn runs
 * on the caller's thread and must not call back into the simulator but to
 * read it. NULL fn: none. */
void mdht_sim_set_poll(mdht_sim *sim, uint64_t every, void (*fn)(void *user),
                       void *user);
/* Datagrams sent and lost so far. */
uint64_t mdht_sim_sent(const mdht_sim *sim);
uint64_t mdht_sim_lost(const mdht_sim *sim);
/* A deterministic random number from the simulation's generator. */
uint64_t mdht_sim_rand(mdht_sim *sim);
/* The same, as a double in [0, 1). */
double mdht_sim_uniform(mdht_sim *sim);
/* Which node lives at `a`: true and *i, or false. */
bool mdht_sim_index(const mdht_sim *sim, const mdht_addr *a, uint32_t *i);
/* The base one-way latency of the link between i and j (no jitter). */
mdht_time mdht_sim_link_latency(const mdht_sim *sim, uint32_t i, uint32_t j);

#endif
