/*
 * mdht testnet: N real nodes on loopback in one process, for trying
 * things by hand. Node i is bound to base-ip + i (127.0.10.1, .2, ...) on
 * one port; all bootstrap from node 0.
 *
 * One epoll loop serves every socket (the driver, src/io/driver.c, owns one
 * node and its own loop): batched receive with one shared buffer set,
 * batched send per socket, and each node's timer from
 * mdht_node_next_deadline. SIGINT / SIGTERM arrive through a signalfd and
 * end the run with status 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli.h"
#include "driver.h"
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
  mdht_sock sock;
  bool want_out;
} tn_node;

typedef struct testnet {
  tn_node *n;
  uint32_t count;
  int epfd;
  mdht_sock_rx rx;
} testnet;

static int opt_base_ip(void *ctx, const char *v) {
  ((tn_args *)ctx)->base_ip = v;
  return 0;
}

#define OFF(f) offsetof(tn_args, f)
static const cli_opt opts[] = {
    {"--nodes", "N", "nodes to run", CLI_U32, OFF(nodes), 1, TESTNET_MAX_NODES,
     NULL},
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

/* Drains what node i queued into its socket and sends; watches EPOLLOUT
 * while the kernel pushes back. */
static void flush_node(testnet *t, uint32_t i) {
  tn_node *n = &t->n[i];
  for (;;) {
    size_t cap;
    uint8_t *slot = mdht_sock_tx_slot(&n->sock, &cap);
    if (!slot) {
      if (mdht_sock_flush(&n->sock) <= 0) break;
      continue;
    }
    mdht_addr to;
    int len = mdht_node_next_packet(n->node, &to, slot, cap);
    if (len <= 0) break;
    mdht_sock_tx_commit(&n->sock, &to, (size_t)len);
  }
  mdht_sock_flush(&n->sock);
  bool want = mdht_sock_tx_pending(&n->sock) > 0;
  if (want != n->want_out) {
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.u32 = i};
    if (epoll_ctl(t->epfd, EPOLL_CTL_MOD, n->sock.fd, &ev) == 0)
      n->want_out = want;
  }
}

static void receive(testnet *t, uint32_t i) {
  tn_node *n = &t->n[i];
  for (int batches = 0; batches < 16; batches++) {
    int got = mdht_sock_recv_batch(&n->sock, &t->rx);
    if (got <= 0) break;
    mdht_time now = mdht_driver_now();
    for (uint32_t k = 0; k < t->rx.n; k++)
      mdht_node_recv(n->node, &t->rx.from[k], t->rx.data[k], t->rx.len[k], now);
    if (got < MDHT_SOCK_BATCH) break;
  }
  flush_node(t, i);
}

static void raise_nofile(uint32_t want) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) return;
  rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
  setrlimit(RLIMIT_NOFILE, &rl);
}

static int run(testnet *t, int sigfd) {
  struct epoll_event evs[64];
  for (;;) {
    mdht_time now = mdht_driver_now();
    mdht_time next = UINT64_MAX;
    for (uint32_t i = 0; i < t->count; i++) {
      mdht_time d = mdht_node_next_deadline(t->n[i].node);
      if (d <= now) {
        mdht_node_tick(t->n[i].node, now);
        flush_node(t, i);
        d = mdht_node_next_deadline(t->n[i].node);
      }
      if (d < next) next = d;
    }
    int timeout = -1;
    if (next != UINT64_MAX) {
      now = mdht_driver_now();
      timeout = next <= now          ? 0
                : next - now > 60000 ? 60000
                                     : (int)(next - now);
    }
    int n = epoll_wait(t->epfd, evs, 64, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      cli_error("epoll_wait: %s", strerror(errno));
      return CLI_USAGE_ERROR;
    }
    for (int k = 0; k < n; k++) {
      uint32_t i = evs[k].data.u32;
      if (i == UINT32_MAX) {
        struct signalfd_siginfo si;
        if (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) return 0;
        continue;
      }
      if (evs[k].events & EPOLLOUT) flush_node(t, i);
      if (evs[k].events & (EPOLLIN | EPOLLERR)) receive(t, i);
    }
  }
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

  testnet t;
  memset(&t, 0, sizeof t);
  t.epfd = -1;
  int sigfd = -1;
  sigset_t mask, old;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  sigprocmask(SIG_BLOCK, &mask, &old);
  rc = CLI_USAGE_ERROR;
  t.n = calloc(a.nodes, sizeof *t.n);
  if (!t.n || mdht_sock_rx_init(&t.rx) < 0) {
    cli_error("out of memory");
    goto out;
  }
  t.epfd = epoll_create1(EPOLL_CLOEXEC);
  sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (t.epfd < 0 || sigfd < 0) {
    cli_error("epoll/signalfd: %s", strerror(errno));
    goto out;
  }
  struct epoll_event sev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
  epoll_ctl(t.epfd, EPOLL_CTL_ADD, sigfd, &sev);

  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.allow_private = true;
  mdht_callbacks cb = {.random = mdht_driver_random, .user = NULL};
  for (uint32_t i = 0; i < a.nodes; i++) {
    tn_node *n = &t.n[i];
    uint32_t ip = ip0 + i;
    mdht_addr at = base;
    at.ip[0] = (uint8_t)(ip >> 24);
    at.ip[1] = (uint8_t)(ip >> 16);
    at.ip[2] = (uint8_t)(ip >> 8);
    at.ip[3] = (uint8_t)ip;
    n->sock.fd = -1;
    int e = mdht_sock_open(&n->sock, &at);
    if (e < 0) {
      char s[64];
      mdht_addr_format(&at, s, sizeof s);
      cli_error("cannot bind %s: %s", s, strerror(-e));
      goto out;
    }
    t.count = i + 1;
    e = mdht_node_new(&n->node, &cfg, &cb, NULL, &n->sock.local,
                      mdht_driver_now());
    if (e < 0) {
      cli_error("cannot create node %u: %s", i, mdht_strerror(e));
      goto out;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    if (epoll_ctl(t.epfd, EPOLL_CTL_ADD, n->sock.fd, &ev) < 0) {
      cli_error("epoll_ctl: %s", strerror(errno));
      goto out;
    }
  }
  for (uint32_t i = 0; i < t.count; i++) {
    char hex[41], s[64];
    mdht_id_format(mdht_node_id(t.n[i].node), hex);
    mdht_addr_format(&t.n[i].sock.local, s, sizeof s);
    printf("%s %s\n", hex, s);
  }
  char boot[64];
  mdht_addr_format(&t.n[0].sock.local, boot, sizeof boot);
  printf("bootstrap: %s\n", boot);
  fflush(stdout);
  for (uint32_t i = 1; i < t.count; i++) {
    mdht_node_add_bootstrap(t.n[i].node, &t.n[0].sock.local, mdht_driver_now());
    flush_node(&t, i);
  }
  rc = run(&t, sigfd);

out:
  for (uint32_t i = 0; i < t.count; i++) {
    mdht_node_del(t.n[i].node);
    mdht_sock_close(&t.n[i].sock);
  }
  free(t.n);
  mdht_sock_rx_free(&t.rx);
  if (sigfd >= 0) close(sigfd);
  if (t.epfd >= 0) close(t.epfd);
  sigprocmask(SIG_SETMASK, &old, NULL);
  return rc;
}
