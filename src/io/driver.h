/*
 * The driver: one node as `mdht run` and the client commands host it. It
 * gives the sans-I/O node what it needs from the world:
 *
 *   - a UDP binding on a loop (binding.h: the socket, batched receive and
 *     send, the node's timer),
 *   - the clock (CLOCK_MONOTONIC, in ms) and randomness (getrandom),
 *   - bootstrap routers by name ("HOST:PORT", resolved with getaddrinfo;
 *     names that do not resolve are tried again with backoff, on a loop
 *     timer),
 *   - and its log: the node's events and the driver's own messages go
 *     through LogForge, so that a JSON log stays JSON.
 *
 * The loop, its signals and the other users of the loop (persistence, the
 * control server) belong to the program.
 */
#ifndef MDHT_DRIVER_H
#define MDHT_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "binding.h"
#include "logforge.h"
#include "loop.h"
#include "mdht.h"
#include "sock.h"

#define MDHT_DRIVER_MAX_UNRESOLVED 8
#define MDHT_DRIVER_RESOLVE_MIN_MS 30000
#define MDHT_DRIVER_RESOLVE_MAX_MS (10 * 60 * 1000)

/* The public DHT's usual entry points, used when the caller gives none. */
extern const char *const mdht_default_bootstrap[];
extern const size_t mdht_default_bootstrap_count;

typedef struct mdht_driver mdht_driver;

typedef struct mdht_driver_opts {
  mdht_addr bind;    /* port 0: the kernel picks one */
  const mdht_id *id; /* NULL: random */
  mdht_config cfg;   /* copied; allow_private is set when `bind` is a
                        loopback or private address */
  /* "HOST:PORT" or "[V6]:PORT" entries, resolved with getaddrinfo and
   * pinged at start. A name that does not resolve is a warning, never an
   * error. */
  const char *const *bootstrap;
  size_t nbootstrap;
  mdht_logforge *log; /* NULL: silent; subscribed to the node's events */
  /* BEP 32 dual stack: a second address, of the other family than
   * `bind`, for a second node with the same id, paired with the first
   * (mdht_node_pair). `bind2_optional`: if it cannot be bound because
   * the machine has no such family (EAFNOSUPPORT, EADDRNOTAVAIL), the
   * driver runs with `bind` alone (the default `mdht run` probes IPv6
   * this way). */
  bool has_bind2;
  bool bind2_optional;
  mdht_addr bind2;
} mdht_driver_opts;

struct mdht_driver {
  mdht_loop *loop;
  mdht_binding bind;
  mdht_node *node; /* the driver's; also bind.node */
  /* BEP 32: the other family's binding and node (node2 is node's
   * sibling), or node2 NULL. Everything that works on `node` (a lookup,
   * the state, the control socket) reaches node2 through the pair. */
  mdht_binding bind2;
  mdht_node *node2;
  int log_sub2;
  mdht_logforge *log;
  /* Bootstrap names that did not resolve (offline at start): tried again
   * with backoff, so that a node started before the network came up still
   * finds its routers. */
  char unresolved[MDHT_DRIVER_MAX_UNRESOLVED][264];
  size_t nunresolved;
  mdht_time resolve_backoff;
  mdht_loop_timer resolve_timer;
  /* getrandom(2) output handed out in pieces: the node draws a few bytes
   * per query it sends, and one system call per 256 bytes is cheaper than
   * one per draw. */
  struct {
    uint8_t buf[256];
    size_t pos;
  } rnd;
  int log_sub; /* subscription handle, or -1 */
  /* Why mdht_driver_init failed, in one line, for programs that print
   * their own errors instead of a log. */
  char error[160];
};

void mdht_driver_opts_default(mdht_driver_opts *o);

/* Binds the socket, creates the node, starts serving it on `loop`, logs
 * the "listening" line and pings the bootstrap addresses. Returns 0 or a
 * negative errno (-EADDRINUSE, ...) or MDHT_ERR_* code (from
 * mdht_node_new); on failure everything is released and a message saying
 * why is in d->error, for the caller to print (not logged: the command's
 * error is one "mdht: ..." line). */
int mdht_driver_init(mdht_driver *d, mdht_loop *loop,
                     const mdht_driver_opts *opts);

/* Stops serving and deletes the node. Safe after a failed init. */
void mdht_driver_free(mdht_driver *d);

/* The node of address family `family` (MDHT_AF_*), or NULL. */
mdht_node *mdht_driver_node_of(mdht_driver *d, int family);

/* Resolves one "HOST:PORT" (AI_NUMERICSERV) and adds every address of the
 * node's family (both families on a dual-stack driver, each to its node)
 * as a bootstrap router (mdht_node_add_bootstrap: pinged now,
 * and again whenever the routing table empties). Returns how many were
 * added; failures are logged as warnings. */
int mdht_driver_bootstrap(mdht_driver *d, const char *hostport);

/* CLOCK_MONOTONIC in ms: the node's time (mdht_loop_now). */
mdht_time mdht_driver_now(void);
/* CLOCK_REALTIME in ms since the epoch: LogForge's clock. */
uint64_t mdht_driver_wallclock(void *user);
/* The mdht_random_cb: getrandom(2). Aborts if the kernel cannot provide
 * randomness, since a DHT node with predictable ids and tokens is worse
 * than none. */
void mdht_driver_random(uint8_t *buf, size_t len, void *user);

#endif
