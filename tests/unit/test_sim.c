/* The whole node on a simulated network, on virtual time: bootstrap,
 * find_node convergence, announce and get_peers, and lookups that survive
 * 20 % of the nodes dying. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "sim.h"

#define N 200

typedef struct outcome {
  bool done;
  mdht_result r;
  mdht_addr peers[MDHT_RESULT_PEERS];
} outcome;

static void on_result(const mdht_result *r, void *user) {
  outcome *o = user;
  o->done = true;
  o->r = *r;
  if (r->npeers) memcpy(o->peers, r->peers, r->npeers * sizeof *r->peers);
  o->r.peers = o->peers;
}

static mdht_sim *boot_network(uint32_t n, double loss) {
  mdht_sim_opts o;
  mdht_sim_opts_default(&o);
  o.nodes = n;
  o.seed = 42;
  o.latency_ms = 20;
  o.jitter_ms = 20;
  o.loss = loss;
  mdht_sim *sim;
  assert_int_equal(mdht_sim_new(&sim, &o), 0);
  /* Everyone joins through node 0, a few at a time. */
  for (uint32_t i = 1; i < n; i++) {
    assert_int_equal(mdht_node_add_bootstrap(mdht_sim_node(sim, i),
                                             mdht_sim_addr(sim, 0),
                                             mdht_sim_now(sim)),
                     0);
    mdht_sim_touch(sim, i);
    if (i % 10 == 0) mdht_sim_run(sim, mdht_sim_now(sim) + 200);
  }
  mdht_sim_run(sim, mdht_sim_now(sim) + 60000);
  return sim;
}

static void random_id(mdht_sim *sim, mdht_id *id) {
  for (int i = 0; i < MDHT_ID_LEN; i += 8) {
    uint64_t v = mdht_sim_rand(sim);
    memcpy(id->b + i, &v, (size_t)(MDHT_ID_LEN - i < 8 ? MDHT_ID_LEN - i : 8));
  }
}

/* Runs an operation started on node `at` until it reports. */
static void wait_for(mdht_sim *sim, uint32_t at, outcome *o) {
  mdht_sim_touch(sim, at);
  for (int i = 0; i < 600 && !o->done; i++)
    mdht_sim_run(sim, mdht_sim_now(sim) + 100);
  assert_true(o->done);
}

static int cmp_target;
static const mdht_id *sort_target;
static int by_distance(const void *a, const void *b) {
  (void)cmp_target;
  return mdht_id_cmp_dist(sort_target, a, b);
}

static void test_bootstrap_and_find_node(void **state) {
  (void)state;
  mdht_sim *sim = boot_network(N, 0);
  uint32_t boot = 0;
  for (uint32_t i = 0; i < N; i++)
    boot += mdht_node_bootstrapped(mdht_sim_node(sim, i));
  /* node 0 bootstraps from those who join through it */
  assert_true(boot >= N - 1);

  mdht_id ids[N];
  for (uint32_t i = 0; i < N; i++)
    ids[i] = *mdht_node_id(mdht_sim_node(sim, i));
  uint32_t rounds = 0, queries = 0, exact = 0;
  for (int t = 0; t < 20; t++) {
    mdht_id target;
    random_id(sim, &target);
    uint32_t at = (uint32_t)(mdht_sim_rand(sim) % N);
    outcome o = {0};
    assert_true(mdht_node_find_node(mdht_sim_node(sim, at), &target, on_result,
                                    &o, mdht_sim_now(sim)) > 0);
    wait_for(sim, at, &o);
    assert_true(o.r.ok);
    /* the 8 closest of the whole network, except the asking node itself */
    mdht_id sorted[N];
    size_t ns = 0;
    for (uint32_t i = 0; i < N; i++)
      if (i != at) sorted[ns++] = ids[i];
    sort_target = &target;
    qsort(sorted, ns, sizeof sorted[0], by_distance);
    /* Every node returned is among the 10 closest, in order, and at most
     * one of the 8 closest is missed: a Kademlia lookup may stop before
     * it hears of a node that no table it reached holds (whether one does
     * depends on the run's randomness: seeds 43 and 45 miss one with any
     * event order), but not go astray. */
    assert_int_equal(o.r.nnodes, 8);
    uint32_t hit = 0;
    int last = -1;
    for (size_t k = 0; k < 8; k++) {
      int pos = -1;
      for (size_t q = 0; q < 10; q++)
        if (mdht_id_eq(&o.r.nodes[k].id, &sorted[q])) pos = (int)q;
      assert_true(pos > last);
      last = pos;
      hit += pos < 8;
    }
    assert_true(hit >= 7);
    exact += hit == 8;
    rounds += o.r.rounds;
    queries += o.r.queries;
  }
  /* ... and most find exactly the 8 closest. */
  assert_true(exact >= 14);
  printf("# find_node over %d nodes: %.1f rounds, %.1f queries per lookup, "
         "%u of 20 found the 8 closest\n",
         N, rounds / 20.0, queries / 20.0, exact);
  mdht_sim_del(sim);
}

static void announce_and_find(mdht_sim *sim, uint32_t announcer, mdht_id *ih,
                              uint16_t port) {
  random_id(sim, ih);
  outcome o = {0};
  assert_true(mdht_node_announce(mdht_sim_node(sim, announcer), ih, port, false,
                                 false, on_result, &o, mdht_sim_now(sim)) > 0);
  wait_for(sim, announcer, &o);
  assert_true(o.r.ok);
  assert_true(o.r.nnodes >= 6); /* most of the 8 closest accepted */
}

static bool finds(mdht_sim *sim, uint32_t at, const mdht_id *ih,
                  const mdht_addr *want) {
  outcome o = {0};
  assert_true(mdht_node_get_peers(mdht_sim_node(sim, at), ih, on_result, &o,
                                  mdht_sim_now(sim)) > 0);
  wait_for(sim, at, &o);
  for (size_t i = 0; i < o.r.npeers; i++)
    if (mdht_addr_eq(&o.r.peers[i], want)) return true;
  return false;
}

static void test_announce_get_peers_with_churn(void **state) {
  (void)state;
  mdht_sim *sim = boot_network(N, 0.02);
  mdht_id ih;
  uint32_t announcer = 7;
  announce_and_find(sim, announcer, &ih, 5555);
  mdht_addr want = *mdht_sim_addr(sim, announcer);
  want.port = 5555;
  for (int t = 0; t < 20; t++) {
    uint32_t at = (uint32_t)(mdht_sim_rand(sim) % N);
    assert_true(finds(sim, at, &ih, &want));
  }
  /* Kill 20 % (not the announcer, whose address is the peer). */
  uint32_t killed = 0;
  while (killed < N / 5) {
    uint32_t k = (uint32_t)(mdht_sim_rand(sim) % N);
    if (k == announcer || !mdht_sim_alive(sim, k)) continue;
    mdht_sim_kill(sim, k);
    killed++;
  }
  for (int t = 0; t < 20; t++) {
    uint32_t at;
    do
      at = (uint32_t)(mdht_sim_rand(sim) % N);
    while (!mdht_sim_alive(sim, at));
    assert_true(finds(sim, at, &ih, &want));
  }
  printf("# %llu datagrams, %llu lost\n",
         (unsigned long long)mdht_sim_sent(sim),
         (unsigned long long)mdht_sim_lost(sim));
  mdht_sim_del(sim);
}

typedef struct ping_count {
  mdht_addr router;
  uint32_t pings;
} ping_count;

static void count_router_pings(const mdht_event *ev, void *user) {
  ping_count *c = user;
  if (ev->type == MDHT_EV_QUERY_SENT && mdht_addr_eq(&ev->addr, &c->router))
    c->pings++;
}

/* A node whose table empties joins again through its router, with
 * exponential backoff while the router is down. */
static void test_rebootstrap_after_loss(void **state) {
  (void)state;
  mdht_sim *sim = boot_network(20, 0);
  mdht_node *n5 = mdht_sim_node(sim, 5);
  assert_true(mdht_node_bootstrapped(n5));
  ping_count c = {.router = *mdht_sim_addr(sim, 0)};
  assert_true(mdht_node_subscribe(n5, count_router_pings, &c) >= 0);
  for (uint32_t i = 0; i < 20; i++)
    if (i != 5) mdht_sim_kill(sim, i);
  /* An hour alone: every node it knew turns bad. */
  mdht_sim_run(sim, mdht_sim_now(sim) + 3600 * 1000);
  mdht_stats st;
  mdht_node_stats(n5, mdht_sim_now(sim), &st);
  assert_int_equal(st.nodes_good + st.nodes_questionable, 0);
  /* It kept trying its router, but backing off: 5 s doubling to 5 min
   * gives about 15 tries in an hour, not 720. */
  printf("# router pinged %u times in an hour alone\n", c.pings);
  assert_true(c.pings >= 5);
  assert_true(c.pings <= 30);
  /* The router comes back (a new node at the same address). */
  assert_int_equal(mdht_sim_restart(sim, 0), 0);
  mdht_sim_run(sim, mdht_sim_now(sim) + 10 * 60 * 1000);
  mdht_node_stats(n5, mdht_sim_now(sim), &st);
  assert_true(st.nodes_good >= 1);
  mdht_sim_del(sim);
}

/* On a network of two, the peer is stored on the node that looks it up:
 * its own store counts. */
static void test_own_store_counts(void **state) {
  (void)state;
  mdht_sim *sim = boot_network(2, 0);
  mdht_id ih;
  random_id(sim, &ih);
  outcome o = {0};
  assert_true(mdht_node_announce(mdht_sim_node(sim, 1), &ih, 4000, false, false,
                                 on_result, &o, mdht_sim_now(sim)) > 0);
  wait_for(sim, 1, &o);
  assert_int_equal(o.r.nnodes, 1); /* node 0 accepted */
  mdht_addr want = *mdht_sim_addr(sim, 1);
  want.port = 4000;
  assert_true(finds(sim, 0, &ih, &want));
  mdht_sim_del(sim);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bootstrap_and_find_node),
      cmocka_unit_test(test_announce_get_peers_with_churn),
      cmocka_unit_test(test_rebootstrap_after_loss),
      cmocka_unit_test(test_own_store_counts),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
