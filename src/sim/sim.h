/*
 * The simulator: many sans-I/O nodes on one virtual network, in virtual
 * time, in one process. Datagrams between nodes are delayed by a latency
 * drawn per datagram (base + uniform jitter) and lost with a given
 * probability; everything is driven by one seeded generator, so a run is
 * repeatable for a given seed.
 *
 * It is what the core's design is for: the same node code that runs under
 * the epoll driver runs here thousands of times over, without sockets,
 * threads or sleeping.
 */
#ifndef MDHT_SIM_H
#define MDHT_SIM_H

#include "mdht.h"

typedef struct mdht_sim mdht_sim;

typedef struct mdht_sim_opts {
  uint32_t nodes;
  uint64_t seed;
  mdht_time latency_ms; /* one-way base latency */
  mdht_time jitter_ms;  /* plus uniform 0..jitter */
  double loss;          /* probability a datagram is lost, 0..1 */
  mdht_config cfg;      /* for every node (allow_private is forced on) */
} mdht_sim_opts;

void mdht_sim_opts_default(mdht_sim_opts *o);
/* Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL. */
int mdht_sim_new(mdht_sim **out, const mdht_sim_opts *o);
void mdht_sim_del(mdht_sim *sim);

uint32_t mdht_sim_count(const mdht_sim *sim);
mdht_node *mdht_sim_node(mdht_sim *sim, uint32_t i);
const mdht_addr *mdht_sim_addr(const mdht_sim *sim, uint32_t i);
mdht_time mdht_sim_now(const mdht_sim *sim);
/* A dead node receives nothing and is never woken. */
void mdht_sim_kill(mdht_sim *sim, uint32_t i);
bool mdht_sim_alive(const mdht_sim *sim, uint32_t i);
/* Replaces node i by a new node with a new id at the same address
 * (churn); it starts with an empty table. Returns 0 or an error. */
int mdht_sim_restart(mdht_sim *sim, uint32_t i);
/* After calling into node i from outside (starting a lookup, adding a
 * bootstrap address), so that its datagrams leave and its timer is set. */
void mdht_sim_touch(mdht_sim *sim, uint32_t i);
/* Runs every delivery and timer up to `until` (virtual ms). */
void mdht_sim_run(mdht_sim *sim, mdht_time until);
/* Datagrams sent and lost so far. */
uint64_t mdht_sim_sent(const mdht_sim *sim);
uint64_t mdht_sim_lost(const mdht_sim *sim);
/* A deterministic random number from the simulation's generator. */
uint64_t mdht_sim_rand(mdht_sim *sim);

#endif
