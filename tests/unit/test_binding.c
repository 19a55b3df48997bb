/* UDP bindings: several real nodes on one loop in one process, over
 * loopback sockets on distinct 127.x addresses (each in its own /24, so the
 * routing table's per-prefix rule keeps them all). Every run is bounded by
 * its `until` argument: a broken binding fails, never hangs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "binding.h"
#include "loop.h"
#include "testutil.h"

#define NNODES 3

typedef struct net {
  mdht_loop loop;
  mdht_binding b[NNODES];
  mdht_node *node[NNODES];
  uint64_t seed[NNODES];
} net;

/* Node i on 127.0.(30 + i).1, any port. */
static void net_start(net *n, int count) {
  memset(n, 0, sizeof *n);
  assert_int_equal(mdht_loop_init(&n->loop), 0);
  for (int i = 0; i < count; i++) {
    mdht_addr at = test_addr4(127, 0, (uint8_t)(30 + i), 1, 0);
    mdht_config cfg;
    mdht_callbacks cb = {test_random, &n->seed[i]};
    n->seed[i] = 1000 + (uint64_t)i;
    mdht_config_default(&cfg);
    cfg.allow_private = true;
    assert_int_equal(mdht_binding_open(&n->b[i], &n->loop, &at), 0);
    assert_int_not_equal(n->b[i].sock.local.port, 0);
    assert_int_equal(mdht_node_new(&n->node[i], &cfg, &cb, NULL,
                                   &n->b[i].sock.local, mdht_loop_now()),
                     0);
    assert_int_equal(mdht_binding_start(&n->b[i], n->node[i]), 0);
  }
}

static void net_free(net *n, int count) {
  for (int i = 0; i < count; i++) {
    mdht_binding_close(&n->b[i]);
    mdht_binding_close(&n->b[i]); /* twice is fine */
    mdht_node_del(n->node[i]);
  }
  mdht_loop_free(&n->loop);
}

typedef struct outcome {
  mdht_loop *loop;
  bool called, ok;
  mdht_result r; /* nodes copied; peers not kept */
} outcome;

/* Called from inside the node: records, and stops the loop (which is not
 * a call into the node). */
static void on_result(const mdht_result *r, void *user) {
  outcome *o = user;
  o->called = true;
  o->ok = r->ok;
  o->r = *r;
  o->r.peers = NULL;
  mdht_loop_stop(o->loop);
}

/* A pings B. The ping is queued from outside the loop, between runs: the
 * binding's prepare hook sends it, B's binding receives and answers, A's
 * receives the answer. */
static void ping_through_one_loop(void **state) {
  net n;
  outcome o = {0};
  (void)state;
  net_start(&n, 2);
  o.loop = &n.loop;
  /* Settled: A's own timer is far off, so only the prepare hook can send
   * the ping in time. */
  assert_int_equal(mdht_loop_run(&n.loop, mdht_loop_now() + 50), 1);
  mdht_time now = mdht_loop_now();
  assert_true(mdht_node_next_deadline(n.node[0]) > now + 500);
  assert_true(mdht_node_ping_addr(n.node[0], &n.b[1].sock.local, on_result, &o,
                                  now) > 0);
  assert_int_equal(mdht_loop_run(&n.loop, now + 400), 0);
  assert_true(o.called);
  assert_true(o.ok);
  assert_int_equal(o.r.nnodes, 1);
  assert_memory_equal(&o.r.nodes[0].id, mdht_node_id(n.node[1]),
                      sizeof(mdht_id));
  /* Both sides counted real datagrams. */
  assert_true(n.b[0].sock.stats.sent >= 1 && n.b[0].sock.stats.recv >= 1);
  assert_true(n.b[1].sock.stats.sent >= 1 && n.b[1].sock.stats.recv >= 1);
  net_free(&n, 2);
}

typedef struct waiter {
  mdht_loop *loop;
  mdht_node *node;
} waiter;

static void stop_when_bootstrapped(const mdht_event *ev, void *user) {
  waiter *w = user;
  if (ev->type == MDHT_EV_BOOTSTRAP_DONE) mdht_loop_stop(w->loop);
}

/* Three nodes: B knows C, A joins through B, then A's find_node for C's id
 * finds C, which A has never been told of: two hops, all on one loop, with
 * each node's timer (lookup rounds, bootstrap) run by its binding. */
static void find_node_across_three(void **state) {
  net n;
  outcome o = {0};
  waiter w;
  (void)state;
  net_start(&n, 3);
  o.loop = &n.loop;
  w.loop = &n.loop;
  w.node = n.node[0];
  mdht_time now = mdht_loop_now();
  assert_int_equal(mdht_node_add_bootstrap(n.node[1], &n.b[2].sock.local, now),
                   0);
  assert_int_equal(mdht_loop_run(&n.loop, now + 300), 1); /* B meets C */
  int sub = mdht_node_subscribe(n.node[0], stop_when_bootstrapped, &w);
  assert_true(sub >= 0);
  assert_int_equal(
      mdht_node_add_bootstrap(n.node[0], &n.b[1].sock.local, mdht_loop_now()),
      0);
  assert_int_equal(mdht_loop_run(&n.loop, mdht_loop_now() + 10000), 0);
  mdht_node_unsubscribe(n.node[0], sub);
  assert_true(mdht_node_find_node(n.node[0], mdht_node_id(n.node[2]), on_result,
                                  &o, mdht_loop_now()) > 0);
  assert_int_equal(mdht_loop_run(&n.loop, mdht_loop_now() + 10000), 0);
  assert_true(o.called && o.ok);
  assert_true(o.r.nnodes >= 1);
  /* Closest first: C itself. */
  assert_memory_equal(&o.r.nodes[0].id, mdht_node_id(n.node[2]),
                      sizeof(mdht_id));
  assert_true(mdht_addr_eq(&o.r.nodes[0].addr, &n.b[2].sock.local));
  net_free(&n, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(ping_through_one_loop),
      cmocka_unit_test(find_node_across_three),
  };
  return cmocka_run_group_tests(tests, 0, NULL);
}
