/*
 * mdht testnet: N real nodes on loopback in one process, for trying
 * things by hand. Node i is bound to base-ip + i (127.0.10.1, .2, ...) on
 * one port; all bootstrap from node 0.
 *
 * Each node is a UDP binding (src/io/binding.c) on one shared loop
 * (src/io/loop.c): the same receive, send and timer code as `mdht run`,
 * N times over. SIGTERM stops the loop and ends the run with status 0,
 * SIGINT (Ctrl-C) with 130.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "binding.h"
#include "cli.h"
#include "driver.h"
#include "loop.h"
#include "mdht.h"
#include "sock.h"

int mdht_cmd_testnet(int argc, char **argv);

#define TESTNET_MAX_NODES 1000

typedef struct tn_args {
  uint32_t nodes;
  const char *base_ip;
  uint32_t port;
} tn_args;

typedef struct tn_node {
  mdht_node *node;
  mdht_binding b;
} tn_node;

typedef struct testnet {
  mdht_loop loop;
  tn_node *n;
  uint32_t count; /* bindings opened */
} testnet;

static int opt_base_ip(void *ctx, const char *v) {
  ((tn_args *)ctx)->base_ip = v;
  return 0;
}

#define OFF(f) offsetof(tn_args, f)
static const cli_opt opts[] = {
    {"--nodes", "N", "nodes to run, 1 to 1000 (required)", CLI_U32, OFF(nodes),
     1, TESTNET_MAX_NODES, NULL},
    {"--base-ip", "ADDR",
     "loopback address of node 0; node i gets ADDR + i (default 127.0.10.1)",
     CLI_CUSTOM, 0, 0, 0, opt_base_ip},
    {"--port", "P", "UDP port of every node", CLI_U32, OFF(port), 1, 65535,
     NULL},
};
#undef OFF

static void usage(const tn_args *d) {
  printf("usage: mdht testnet --nodes N [--base-ip ADDR] [--port P]\n"
         "Runs N DHT nodes on loopback in one process, each on its own "
         "address, all\njoined through the first. Prints \"nodeid ip:port\" "
         "per node, then\n\"bootstrap: ip:port\" (for --bootstrap of the "
         "other commands), and runs\nuntil SIGINT or SIGTERM.\n\noptions:\n");
  cli_print_options(opts, sizeof opts / sizeof opts[0], d);
}

static void raise_nofile(uint32_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
  setrlimit(RLIMIT_NOFILE, &rl);
}

/* Node i on base + i. Returns 0, or -1 after saying why. */
static int start_node(testnet *t, uint32_t i, const mdht_addr *base,
                      uint32_t ip0) {
  mdht_config cfg;
  mdht_callbacks cb = {.random = mdht_driver_random, .user = NULL};
  tn_node *n = &t->n[i];
  uint32_t ip = ip0 + i;
  mdht_addr at = *base;
  char s[64];

  at.ip[0] = (uint8_t)(ip >> 24);
  at.ip[1] = (uint8_t)(ip >> 16);
  at.ip[2] = (uint8_t)(ip >> 8);
  at.ip[3] = (uint8_t)ip;
  t->count = i + 1;
  int e = mdht_binding_open(&n->b, &t->loop, &at);
  if (e < 0) {
    mdht_addr_format(&at, s, sizeof s);
    cli_error("cannot bind %s: %s", s, strerror(-e));
    return -1;
  }
  mdht_config_default(&cfg);
  cfg.allow_private = true;
  e = mdht_node_new(&n->node, &cfg, &cb, NULL, &n->b.sock.local,
                    mdht_loop_now());
  if (e < 0) {
    cli_error("cannot create node %u: %s", i, mdht_strerror(e));
    return -1;
  }
  if ((e = mdht_binding_start(&n->b, n->node)) < 0) {
    cli_error("cannot watch node %u: %s", i, strerror(-e));
    return -1;
  }
  return 0;
}

/* "nodeid ip:port" per node, then the bootstrap line; all but node 0 join
 * through node 0. */
static void announce(testnet *t) {
  char hex[41], s[64];
  for (uint32_t i = 0; i < t->count; i++) {
    mdht_id_format(mdht_node_id(t->n[i].node), hex);
    mdht_addr_format(&t->n[i].b.sock.local, s, sizeof s);
    printf("%s %s\n", hex, s);
  }
  mdht_addr_format(&t->n[0].b.sock.local, s, sizeof s);
  printf("bootstrap: %s\n", s);
  fflush(stdout);
  for (uint32_t i = 1; i < t->count; i++)
    mdht_node_add_bootstrap(t->n[i].node, &t->n[0].b.sock.local,
                            mdht_loop_now());
}

static int run(const tn_args *a, const mdht_addr *base, uint32_t ip0) {
  testnet t;
  int rc = CLI_USAGE_ERROR, e;

  memset(&t, 0, sizeof t);
  if ((e = mdht_loop_init(&t.loop)) < 0) {
    cli_error("event loop: %s", strerror(-e));
    return rc;
  }
  t.n = calloc(a->nodes, sizeof *t.n);
  if (!t.n) {
    cli_error("out of memory");
  } else if ((e = mdht_loop_stop_on_signals(&t.loop)) < 0) {
    cli_error("signals: %s", strerror(-e));
  } else {
    uint32_t i = 0;
    while (i < a->nodes && start_node(&t, i, base, ip0) == 0)
      i++;
    if (i == a->nodes) {
      announce(&t);
      e = mdht_loop_run(&t.loop, 0);
      if (e < 0) cli_error("event loop: %s", strerror(-e));
      /* As `mdht run`: SIGTERM is a clean stop, Ctrl-C exits 130. */
      rc = e < 0                          ? CLI_USAGE_ERROR
           : t.loop.stop_signal == SIGINT ? 128 + SIGINT
                                          : 0;
    }
  }
  for (uint32_t i = 0; t.n && i < t.count; i++) {
    mdht_binding_close(&t.n[i].b);
    mdht_node_del(t.n[i].node);
  }
  free(t.n);
  mdht_loop_free(&t.loop);
  return rc;
}

int mdht_cmd_testnet(int argc, char **argv) {
  tn_args a = {.nodes = 0, .base_ip = "127.0.10.1", .port = 6881};
  tn_args d = a;
  const char *pos[1];
  size_t npos;
  int rc = cli_parse(opts, sizeof opts / sizeof opts[0], argc, argv, &a, pos, 0,
                     &npos);
  if (rc == 1) {
    usage(&d);
    return 0;
  }
  if (rc < 0) return CLI_USAGE_ERROR;
  if (a.nodes == 0) {
    cli_error("testnet needs --nodes N (1 to %d)", TESTNET_MAX_NODES);
    return CLI_USAGE_ERROR;
  }
  mdht_addr base;
  if (mdht_sock_parse_ip(&base, a.base_ip, (uint16_t)a.port) < 0 ||
      base.family != MDHT_AF_INET || base.ip[0] != 127) {
    cli_error("bad value '%s' for --base-ip (want an IPv4 loopback address, "
              "127.x.y.z)",
              a.base_ip);
    return CLI_USAGE_ERROR;
  }
  uint32_t ip0 = (uint32_t)base.ip[0] << 24 | (uint32_t)base.ip[1] << 16 |
                 (uint32_t)base.ip[2] << 8 | base.ip[3];
  if (ip0 + (a.nodes - 1) > 0x7fffffffu) {
    cli_error("--base-ip %s + %u nodes leaves 127.0.0.0/8", a.base_ip, a.nodes);
    return CLI_USAGE_ERROR;
  }
  raise_nofile(a.nodes + 64);
  return run(&a, &base, ip0);
}
