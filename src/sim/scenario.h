/*
 * A scenario on the simulator (sim.h): a whole DHT of N nodes built and
 * measured on virtual time, the way `mdht sim` and bench/sim.sh run it.
 *
 *   1. Join: `routers` nodes bootstrap from router 0; then every other
 *      node joins through one of the routers (round robin), join_batch
 *      nodes every join_step_ms; then the network settles for settle_ms.
 *   2. Announce: `infohashes` random info-hashes, each announced by a
 *      random node with its own port (10000 + k), so the peer to find is
 *      that node's address with that port.
 *   3. Dead: nodes (never the routers) are killed at random until at least
 *      `dead` of the routing entries of the live nodes point at a node that
 *      is gone (killed, or replaced by churn with a new id). The share is
 *      measured, not assumed.
 *   4. Lookups: `lookups` get_peers lookups, one every lookup_step_ms, each
 *      from a random live bootstrapped node for a random announced
 *      info-hash. Per lookup: found the announced peer or not, rounds,
 *      queries, datagrams (queries sent + responses accepted), time to the
 *      first peer (the first LOOKUP_PROGRESS of that lookup with peers > 0;
 *      the engine's lookup id is learned from LOOKUP_STARTED, published
 *      synchronously inside mdht_node_get_peers) and time to completion.
 *   Churn: from the end of the join phase to the end of the run, nodes
 *   leave (killed) and come back (at the same address, with a new id or,
 *   with rejoin_same_id, the id they had; an empty table; through a
 *   router), either
 *     MDHT_CHURN_POISSON: `churn` leave-and-join pairs per virtual second,
 *       as a Poisson process; or
 *     MDHT_CHURN_WEIBULL: every node (but the routers) lives through
 *       sessions of Weibull(session_shape, session_scale_ms) length and
 *       stays away Weibull(session_shape, down_scale_ms) in between. The
 *       network is taken as already running: each node's first session
 *       is the residual of a stationary renewal process (dist.h), not a
 *       fresh session. Nodes the dead phase kills stay dead.
 *   A lookup whose origin leaves is "aborted" and counted apart.
 *
 * Joining: join_batch 0 (the default) means max(25, N / 400) nodes every
 * join_step_ms, so that the join phase lasts at most some 40 virtual
 * seconds whatever N is; a fixed batch would make it last N / 250 s and
 * the whole run grow as N^2 (every node already in does its maintenance
 * while the others join).
 *
 * The link RTT of the run is measured, not derived from the model: the
 * median of the round-trip times of every response received by any node
 * during the lookup phase (RESPONSE_RECEIVED's rtt_ms).
 *
 * Everything (ids, latencies, losses, choices) comes from the seed: the
 * same options give the same report, bit for bit.
 */
#ifndef MDHT_SCENARIO_H
#define MDHT_SCENARIO_H

#include <stdio.h>

#include "sim.h"

typedef enum mdht_churn_model {
  MDHT_CHURN_POISSON,
  MDHT_CHURN_WEIBULL
} mdht_churn_model;

/* Where a run is, for progress output. */
typedef struct mdht_scenario_status {
  const char *phase; /* "join", "settle", "announce", "kill", "lookups",
                        "done" */
  bool phase_start;  /* called because the phase just began */
  mdht_time vt;      /* virtual ms */
  uint32_t nodes, alive;
  uint32_t threads; /* the simulator's (mdht_sim_threads) */
  mdht_sim_counts c;
} mdht_scenario_status;

typedef struct mdht_scenario_opts {
  mdht_sim_opts sim;      /* nodes, seed, latency model, loss, cfg */
  uint32_t routers;       /* bootstrap nodes: 4 */
  uint32_t join_batch;    /* nodes joining together: 0 = auto */
  mdht_time join_step_ms; /* between batches: 100 */
  mdht_time settle_ms;    /* after the last join: 30 s */
  mdht_churn_model churn_model;
  double churn;              /* POISSON: leaves (and joins) per second */
  double session_shape;      /* WEIBULL k: 0.38 */
  double session_scale_ms;   /* WEIBULL lambda of sessions: 42.4 min */
  double down_scale_ms;      /* ... of the time away: 42.4 min */
  bool rejoin_same_id;       /* a node comes back with the id it had */
  double dead;               /* share of routing entries to dead nodes */
  uint32_t infohashes;       /* announced: 10 */
  uint32_t lookups;          /* get_peers lookups measured: 200 */
  mdht_time lookup_step_ms;  /* between lookup starts: 20 */
  mdht_time lookup_limit_ms; /* a lookup not done this long after its
                                start counts as failed: 60 s */
  /* Called as each phase begins and, within phases, every
   * progress_events events, for progress output; may be NULL. */
  void (*progress)(const mdht_scenario_status *st, void *user);
  void *progress_user;
  uint64_t progress_events; /* 0: 1 << 16 */
} mdht_scenario_opts;

typedef struct mdht_scenario_stat {
  uint32_t n;
  double mean, median, p95, p99, max;
} mdht_scenario_stat;

typedef struct mdht_scenario_report {
  uint32_t nodes;
  uint32_t bootstrapped; /* nodes bootstrapped after the settle phase */
  uint32_t announces;    /* started */
  uint32_t announces_ok; /* accepted by at least one node */
  double announce_nodes; /* mean nodes that accepted an announce */
  uint32_t killed;       /* by the dead phase */
  double dead_entries;   /* measured share of stale routing entries */
  uint64_t rt_entries;   /* routing entries of the live nodes then */
  uint32_t alive;        /* live nodes when the lookups start */
  uint32_t thin;         /* ... of which with fewer than k routing
                            entries */
  uint32_t churn_left, churn_joined;
  uint32_t lookups;              /* started */
  uint32_t lookups_failed_start; /* mdht_node_get_peers refused */
  uint32_t lookups_aborted;      /* their node left (churn) */
  uint32_t lookups_unfinished;   /* not done within lookup_limit_ms */
  uint32_t lookups_done;         /* ended with their callback */
  uint32_t lookups_found;        /* ... and the announced peer among
                                    the peers */
  uint32_t lookups_thin;         /* started from a node with fewer than
                                    k routing entries */
  uint32_t lookups_thin_found;
  double success; /* found / (started - aborted) */
  mdht_scenario_stat rounds, queries, datagrams; /* done lookups */
  mdht_scenario_stat ttfp_ms;                    /* found lookups */
  mdht_scenario_stat done_ms;                    /* done lookups */
  mdht_scenario_stat rtt_ms;                     /* link RTT (responses) */
  uint64_t sent, lost; /* datagrams of the whole run */
  uint64_t events;     /* the simulator's events (deliveries, timers) */
  uint32_t join_batch; /* the join batch used (join_batch 0: auto) */
  /* mdht_node_memory summed over the live nodes at the end of the settle
   * phase: what a settled node holds, by part. Deterministic, like the
   * rest of the report (bytes asked of the allocator, not RSS). */
  uint32_t mem_nodes;
  uint64_t mem_total, mem_node, mem_routing, mem_repl, mem_index, mem_txns,
      mem_lookups, mem_peers, mem_items, mem_limits, mem_other, mem_entries;
  mdht_time virtual_ms; /* virtual time the run took */
} mdht_scenario_report;

void mdht_scenario_opts_default(mdht_scenario_opts *o);
/* Runs the scenario; fills `r` (zeroed first, padding included, so that
 * two reports compare with memcmp). Errors: MDHT_ERR_INVAL, MDHT_ERR_NOMEM
 * and those of mdht_sim_new. */
int mdht_scenario_run(const mdht_scenario_opts *o, mdht_scenario_report *r);
/* The report as a table for people, or as one JSON object (and a
 * newline); `extra` (may be NULL) is more members, "\"k\":v,...", put
 * at its end (the caller's wall time and memory, which are not part of
 * the deterministic report). */
void mdht_scenario_print(FILE *f, const mdht_scenario_opts *o,
                         const mdht_scenario_report *r);
void mdht_scenario_print_json(FILE *f, const mdht_scenario_opts *o,
                              const mdht_scenario_report *r, const char *extra);

/* ------------------------------------------------------------ eclipse */

/* An eclipse attempt against one target id, to show what BEP 42
 * enforcement does. Every node has a public virtual address in its own
 * /24 (sim.public_addrs).
 *
 *   1. `honest` nodes, with ids valid for their addresses, join as in the
 *      scenario above and settle for 30 s.
 *   2. The attacker: `attackers` nodes at addresses it holds, each in a
 *      different /24 (so that one-entry-per-IP and one-per-/24 rules do
 *      not stop it), with ids it chose next to the target (the first 12
 *      bytes of the target): not valid for those addresses, since it can
 *      choose ids but not derive valid ones. They keep those ids
 *      (fixed_id), join through the routers, and ping every honest node
 *      so that each hears of all of them; then the network settles for
 *      settle_ms.
 *   3. Measured: routing entries of the honest nodes that point at the
 *      attacker; then `lookups` find_node lookups for the target from
 *      random honest nodes: how many of the k nodes each returns are the
 *      attacker's, and how many are among the k honest nodes truly
 *      closest to the target.
 * The honest nodes enforce BEP 42 when `enforce` is set. */
typedef struct mdht_eclipse_opts {
  mdht_sim_opts sim;   /* seed, latencies, loss, cfg of every node */
  uint32_t honest;     /* 400 */
  uint32_t attackers;  /* 32 */
  uint32_t routers;    /* 4 */
  bool enforce;        /* honest nodes refuse ids invalid for their IP */
  mdht_time settle_ms; /* after the attack: 60 s */
  uint32_t lookups;    /* 40 */
} mdht_eclipse_opts;

typedef struct mdht_eclipse_report {
  uint32_t honest, attackers;
  uint64_t honest_entries;   /* routing entries of the honest nodes */
  uint64_t attacker_entries; /* ... that point at the attacker */
  uint32_t tables_hit;       /* honest tables with at least one of those */
  uint32_t lookups, lookups_ok;
  uint64_t result_nodes;    /* nodes returned (the first k of each) */
  uint64_t result_attacker; /* ... of the attacker */
  uint64_t result_true;     /* ... among the k honest nodes closest to
                               the target */
  uint32_t closest_found;   /* lookups whose first node is the honest
                               node closest to the target */
} mdht_eclipse_report;

void mdht_eclipse_opts_default(mdht_eclipse_opts *o);
/* Errors: MDHT_ERR_INVAL, MDHT_ERR_NOMEM, those of mdht_sim_new. */
int mdht_eclipse_run(const mdht_eclipse_opts *o, mdht_eclipse_report *r);
void mdht_eclipse_print(FILE *f, const mdht_eclipse_opts *o,
                        const mdht_eclipse_report *r);

#endif
