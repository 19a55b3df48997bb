/* The scenario behind `mdht sim`: the latency model of the simulator, a
 * small network with loss and dead nodes that must still find announced
 * peers, determinism for a seed, and churn. */
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
#include "scenario.h"

static int cmp_time(const void *a, const void *b) {
  mdht_time x = *(const mdht_time *)a, y = *(const mdht_time *)b;
  return x < y ? -1 : x > y;
}

/* Per-link latencies: symmetric, deterministic for a seed, within the
 * model's range, with the configured median. */
static void test_latency_model(void **state) {
  (void)state;
  enum { N = 120 };
  mdht_sim_opts o;
  mdht_sim_opts_default(&o);
  o.nodes = N;
  o.seed = 7;
  o.latency_ms = 50;
  o.per_link = true;
  for (int dist = 0; dist < 2; dist++) {
    o.dist = dist ? MDHT_SIM_LAT_LOGNORMAL : MDHT_SIM_LAT_UNIFORM;
    mdht_sim *a, *b;
    assert_int_equal(mdht_sim_new(&a, &o), 0);
    assert_int_equal(mdht_sim_new(&b, &o), 0);
    static mdht_time lat[N * (N - 1) / 2];
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++)
      for (uint32_t j = i + 1; j < N; j++) {
        mdht_time l = mdht_sim_link_latency(a, i, j);
        assert_int_equal(l, mdht_sim_link_latency(a, j, i));
        assert_int_equal(l, mdht_sim_link_latency(b, i, j));
        if (dist == 0) {
          assert_true(l >= 25 && l <= 75);
        } else {
          assert_true(l >= 5 && l <= 1000);
        }
        lat[n++] = l;
      }
    qsort(lat, n, sizeof lat[0], cmp_time);
    mdht_time median = lat[n / 2];
    printf("# %s: link latency median %llu ms, p99 %llu ms\n",
           dist ? "lognormal" : "uniform", (unsigned long long)median,
           (unsigned long long)lat[n * 99 / 100]);
    assert_true(median >= 46 && median <= 54);
    if (dist == 1) assert_true(lat[n * 99 / 100] > 150); /* the long tail */
    mdht_sim_del(a);
    mdht_sim_del(b);
  }
  /* Without per_link, every link has the base latency. */
  o.dist = MDHT_SIM_LAT_UNIFORM;
  o.per_link = false;
  mdht_sim *c;
  assert_int_equal(mdht_sim_new(&c, &o), 0);
  assert_int_equal(mdht_sim_link_latency(c, 3, 77), 50);
  mdht_sim_del(c);
}

static void small_opts(mdht_scenario_opts *o, uint32_t nodes, double loss) {
  mdht_scenario_opts_default(o);
  o->sim.nodes = nodes;
  o->sim.seed = 1;
  o->sim.loss = loss;
  o->settle_ms = 20000;
}

static void check_accounting(const mdht_scenario_report *r) {
  assert_int_equal(r->lookups_failed_start + r->lookups_aborted +
                       r->lookups_unfinished + r->lookups_done,
                   r->lookups);
  assert_true(r->lookups_found <= r->lookups_done);
  assert_int_equal(r->done_ms.n, r->lookups_done);
  assert_true(r->ttfp_ms.n >= r->lookups_found);
}

/* 300 nodes, 2 % loss, 10 % of the routing entries pointing at dead
 * nodes: at least 99 % of the lookups find the announced peer. (The issue's
 * target, 99.5 %, is for 10,000 nodes and 5 % loss; see bench/sim.sh. On
 * 300 nodes seeds 1..8 give 99.5 to 100 %.) */
static void test_small_network(void **state) {
  (void)state;
  mdht_scenario_opts o;
  small_opts(&o, 300, 0.02);
  o.dead = 0.10;
  o.lookups = 300;
  mdht_scenario_report r;
  assert_int_equal(mdht_scenario_run(&o, &r), 0);
  mdht_scenario_print(stdout, &o, &r);
  check_accounting(&r);
  assert_int_equal(r.announces_ok, o.infohashes);
  assert_true(r.dead_entries >= 0.10);
  assert_true(r.dead_entries < 0.20);
  assert_true(r.killed > 0);
  assert_int_equal(r.lookups_aborted, 0);
  assert_true(r.success >= 0.99);
  assert_true(r.lost > 0);
  /* Link RTT: two one-way latencies of 25..75 ms, plus 0..20 ms of jitter
   * each way. */
  assert_true(r.rtt_ms.median >= 60 && r.rtt_ms.median <= 180);
  /* A peer is never found before one round trip. */
  assert_true(r.ttfp_ms.median >= r.rtt_ms.median / 2);
  assert_true(r.done_ms.median >= r.ttfp_ms.median);
  assert_true(r.rounds.median >= 1 && r.queries.median >= 3);
  assert_true(r.datagrams.median > r.queries.median);
}

/* The same seed gives the same report, bit for bit, even with loss, churn
 * and dead nodes; another seed gives another. */
static void test_deterministic(void **state) {
  (void)state;
  mdht_scenario_opts o;
  small_opts(&o, 150, 0.05);
  o.churn = 1;
  o.dead = 0.05;
  o.lookups = 60;
  o.sim.dist = MDHT_SIM_LAT_LOGNORMAL;
  mdht_scenario_report a, b, c;
  assert_int_equal(mdht_scenario_run(&o, &a), 0);
  assert_int_equal(mdht_scenario_run(&o, &b), 0);
  assert_memory_equal(&a, &b, sizeof a);
  o.sim.seed = 2;
  assert_int_equal(mdht_scenario_run(&o, &c), 0);
  assert_true(memcmp(&a, &c, sizeof a) != 0);
  char ja[4096], jb[4096];
  FILE *f = fmemopen(ja, sizeof ja, "w");
  mdht_scenario_print_json(f, &o, &a, NULL);
  fclose(f);
  f = fmemopen(jb, sizeof jb, "w");
  mdht_scenario_print_json(f, &o, &b, NULL);
  fclose(f);
  assert_string_equal(ja, jb);
  assert_true(strstr(ja, "\"success\":") != NULL);
}

/* Nodes leave and join while the network announces and looks up: lookups
 * from nodes that left are aborted and counted apart, the others still
 * find the peers. */
static void test_churn(void **state) {
  (void)state;
  mdht_scenario_opts o;
  small_opts(&o, 200, 0.02);
  o.churn = 2; /* some 120 nodes replaced over the run */
  o.lookups = 150;
  mdht_scenario_report r;
  assert_int_equal(mdht_scenario_run(&o, &r), 0);
  mdht_scenario_print(stdout, &o, &r);
  check_accounting(&r);
  /* Poisson, 2/s over some 25 s of churn: about 50, and the draws move
   * with every change to the traffic (43 to 59 seen); 30 is 3 sigma. */
  assert_true(r.churn_left >= 30);
  assert_true(r.churn_joined >= 30);
  assert_true(r.churn_joined <= r.churn_left);
  assert_true(r.dead_entries > 0.02); /* churn leaves stale entries */
  /* With 2 % loss on 200 nodes this run finds 100 %. */
  assert_true(r.success >= 0.97);
}

static void test_bad_options(void **state) {
  (void)state;
  mdht_scenario_opts o;
  mdht_scenario_report r;
  small_opts(&o, 10, 0);
  o.routers = 11;
  assert_int_equal(mdht_scenario_run(&o, &r), MDHT_ERR_INVAL);
  small_opts(&o, 10, 0);
  o.dead = 1.0;
  assert_int_equal(mdht_scenario_run(&o, &r), MDHT_ERR_INVAL);
  small_opts(&o, 10, 2.0);
  assert_int_equal(mdht_scenario_run(&o, &r), MDHT_ERR_INVAL);
}

/* Public virtual addresses: one node per /24, ids valid for BEP 42, and
 * the index maps each address back. */
static void test_public_addrs(void **state) {
  (void)state;
  mdht_sim_opts o;
  mdht_sim_opts_default(&o);
  o.nodes = 300;
  o.public_addrs = true;
  mdht_sim *sim;
  assert_int_equal(mdht_sim_new(&sim, &o), 0);
  for (uint32_t i = 0; i < 300; i++) {
    const mdht_addr *a = mdht_sim_addr(sim, i);
    assert_false(mdht_addr_is_private(a));
    assert_false(mdht_addr_is_martian(a));
    if (i > 0) /* another /24 than its neighbour */
      assert_memory_not_equal(a->ip, mdht_sim_addr(sim, i - 1)->ip, 3);
    assert_true(mdht_bep42_valid(mdht_node_id(mdht_sim_node(sim, i)), a));
    uint32_t j;
    assert_true(mdht_sim_index(sim, a, &j));
    assert_int_equal(j, i);
  }
  mdht_sim_del(sim);
}

static void seen_threads(const mdht_scenario_status *st, void *user) {
  *(uint32_t *)user = st->threads;
}

/* Runs o on `threads` threads; checks the simulator really used them. */
static void run_on(mdht_scenario_opts *o, uint32_t threads,
                   mdht_scenario_report *r) {
  uint32_t used = 0;
  o->sim.threads = threads;
  o->progress = seen_threads;
  o->progress_user = &used;
  assert_int_equal(mdht_scenario_run(o, r), 0);
  assert_int_equal(used, threads);
}

/* The report does not depend on the number of threads, bit for bit: with
 * loss, dead nodes, churn (Poisson, then Weibull with nodes coming back),
 * log-normal and per-link uniform latencies. Had the threads drawn loss or
 * jitter from one shared generator, or ordered equal-time events by when
 * they were queued, the figures would differ. */
static void test_threads_same_report(void **state) {
  (void)state;
  mdht_scenario_opts o;
  small_opts(&o, 300, 0.05);
  o.churn = 1;
  o.dead = 0.1;
  o.lookups = 100;
  o.sim.dist = MDHT_SIM_LAT_LOGNORMAL;
  mdht_scenario_report one, two, three;
  run_on(&o, 1, &one);
  run_on(&o, 2, &two);
  run_on(&o, 3, &three);
  assert_memory_equal(&one, &two, sizeof one);
  assert_memory_equal(&one, &three, sizeof one);
  assert_true(one.lookups_found > 90 && one.churn_left > 0);

  small_opts(&o, 300, 0.05);
  o.churn_model = MDHT_CHURN_WEIBULL;
  o.session_scale_ms = 120000; /* some nodes leave and come back */
  o.down_scale_ms = 60000;
  o.rejoin_same_id = true;
  o.lookups = 60;
  run_on(&o, 1, &one);
  run_on(&o, 2, &two);
  assert_memory_equal(&one, &two, sizeof one);
  assert_true(one.churn_joined > 0 && one.rtt_ms.n > 0);
}

/* Every link's latency is at least the lookahead the threads run ahead
 * by; with no lookahead (latency 0) the simulator runs on one thread. */
static void test_lookahead(void **state) {
  (void)state;
  struct {
    mdht_sim_latency_dist dist;
    bool per_link;
    mdht_time want;
  } cases[] = {{MDHT_SIM_LAT_UNIFORM, false, 50},
               {MDHT_SIM_LAT_UNIFORM, true, 25},
               {MDHT_SIM_LAT_LOGNORMAL, true, 5}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    mdht_sim_opts o;
    mdht_sim_opts_default(&o);
    o.nodes = 400;
    o.latency_ms = 50;
    o.dist = cases[c].dist;
    o.per_link = cases[c].per_link;
    o.sigma = 2; /* a wide log-normal: the clamp at latency / 10 is hit */
    o.threads = 2;
    mdht_sim *sim;
    assert_int_equal(mdht_sim_new(&sim, &o), 0);
    assert_int_equal(mdht_sim_threads(sim), 2);
    mdht_time l = mdht_sim_lookahead(sim), lo = UINT64_MAX;
    assert_int_equal(l, cases[c].want);
    for (uint32_t i = 0; i < 400; i++)
      for (uint32_t j = i + 1; j < 400; j++) {
        mdht_time t = mdht_sim_link_latency(sim, i, j);
        if (t < lo) lo = t;
      }
    assert_true(lo >= l);
    if (cases[c].dist == MDHT_SIM_LAT_LOGNORMAL) assert_int_equal(lo, l);
    mdht_sim_del(sim);
  }
  mdht_sim_opts o;
  mdht_sim_opts_default(&o);
  o.latency_ms = 0;
  o.threads = 4;
  mdht_sim *sim;
  assert_int_equal(mdht_sim_new(&sim, &o), 0);
  assert_int_equal(mdht_sim_threads(sim), 1);
  mdht_sim_del(sim);
}

static void eclipse(bool enforce, mdht_eclipse_report *r) {
  mdht_eclipse_opts o;
  mdht_eclipse_opts_default(&o);
  o.honest = 300;
  o.attackers = 24;
  o.lookups = 30;
  o.enforce = enforce;
  assert_int_equal(mdht_eclipse_run(&o, r), 0);
  mdht_eclipse_print(stdout, &o, r);
}

/* The eclipse attempt: an attacker with addresses in 24 distinct /24s and
 * ids it chose next to the target. With BEP 42 enforcement, none of them
 * enters an honest table and the lookups for the target return honest
 * nodes, the closest first; without it, they get in and dominate the
 * lookups' answers. */
static void test_eclipse_bep42(void **state) {
  (void)state;
  mdht_eclipse_report on, off;
  eclipse(true, &on);
  assert_int_equal(on.attacker_entries, 0);
  assert_int_equal(on.tables_hit, 0);
  assert_true(on.honest_entries > 300 * 8);
  assert_int_equal(on.lookups, 30);
  assert_int_equal(on.lookups_ok, 30);
  assert_int_equal(on.result_attacker, 0);
  /* nearly all the nodes returned are the true closest honest ones */
  assert_true(on.result_true * 10 >= on.result_nodes * 9);
  assert_true(on.closest_found * 10 >= on.lookups * 9);

  eclipse(false, &off);
  assert_true(off.attacker_entries > 0);
  assert_true(off.tables_hit > 0);
  assert_true(off.result_attacker * 2 > off.result_nodes);
  assert_true(off.closest_found < off.lookups / 2);

  /* Its lookups' callback adds up from both threads: the same report. */
  mdht_eclipse_opts o;
  mdht_eclipse_opts_default(&o);
  o.honest = 300;
  o.attackers = 24;
  o.lookups = 30;
  o.enforce = false;
  o.sim.threads = 2;
  mdht_eclipse_report two;
  assert_int_equal(mdht_eclipse_run(&o, &two), 0);
  assert_memory_equal(&off, &two, sizeof off);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_latency_model),
      cmocka_unit_test(test_small_network),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_churn),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_public_addrs),
      cmocka_unit_test(test_eclipse_bep42),
      cmocka_unit_test(test_threads_same_report),
      cmocka_unit_test(test_lookahead),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
