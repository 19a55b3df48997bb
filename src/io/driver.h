/*
 * The driver: everything the sans-I/O node needs from the world. It owns
 * the UDP socket, the clock (CLOCK_MONOTONIC, in ms), the randomness
 * (getrandom) and an epoll loop that
 *
 *   - receives datagrams in batches and hands each to mdht_node_recv,
 *   - drains mdht_node_next_packet into batched sends,
 *   - calls mdht_node_tick when mdht_node_next_deadline passes,
 *   - stops cleanly on SIGINT / SIGTERM (through a signalfd, so there is no
 *     signal handler and no async-signal-safety to worry about),
 *   - and calls back for extra file descriptors (the control socket, ...).
 *
 * Its own messages go through LogForge, so that a JSON log stays JSON.
 */
#ifndef MDHT_DRIVER_H
#define MDHT_DRIVER_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logforge.h"
#include "mdht.h"
#include "sock.h"

#define MDHT_DRIVER_MAX_HOOKS 8
#define MDHT_DRIVER_MAX_UNRESOLVED 8
#define MDHT_DRIVER_RESOLVE_MIN_MS 30000
#define MDHT_DRIVER_RESOLVE_MAX_MS (10 * 60 * 1000)

/* The public DHT's usual entry points, used when the caller gives none. */
extern const char *const mdht_default_bootstrap[];
extern const size_t mdht_default_bootstrap_count;

typedef struct mdht_driver mdht_driver;

/* Called when a watched fd is ready; `events` are the epoll events. It may
 * call mdht_driver_stop, mdht_driver_del_fd (on its own fd too) and use the
 * node: the driver sends whatever the node queued once it returns. */
typedef void (*mdht_driver_fd_cb)(mdht_driver *d, int fd, uint32_t events,
                                  void *user);

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
} mdht_driver_opts;

struct mdht_driver {
  mdht_node *node;
  mdht_sock sock;
  mdht_sock_rx rx;
  mdht_logforge *log;
  int epfd;
  int sigfd;
  sigset_t old_mask; /* restored by mdht_driver_free */
  bool masked;
  bool want_out; /* EPOLLOUT registered on the socket */
  bool stop;
  /* Bootstrap names that did not resolve (offline at start): tried again
   * with backoff, so that a node started before the network came up still
   * finds its routers. */
  char unresolved[MDHT_DRIVER_MAX_UNRESOLVED][264];
  size_t nunresolved;
  mdht_time resolve_at, resolve_backoff;
  /* getrandom(2) output handed out in pieces: the node draws a few bytes
   * per query it sends, and one system call per 256 bytes is cheaper than
   * one per draw. */
  struct {
    uint8_t buf[256];
    size_t pos;
  } rnd;
  int log_sub; /* subscription handle, or -1 */
  /* SIGHUP: called from the loop (set after mdht_driver_init; NULL =
   * ignored). mdht run saves its state here. */
  void (*on_hup)(mdht_driver *d, void *user);
  void *hup_user;
  struct {
    int fd;
    mdht_driver_fd_cb cb;
    void *user;
  } hooks[MDHT_DRIVER_MAX_HOOKS];
  size_t nhooks;
  /* Why mdht_driver_init failed, in one line, for programs that print
   * their own errors instead of a log. */
  char error[160];
};

void mdht_driver_opts_default(mdht_driver_opts *o);

/* Binds the socket, creates the node, logs the "listening" line and pings
 * the bootstrap addresses. Blocks SIGINT, SIGTERM and SIGHUP in the calling
 * thread (they arrive through the signalfd instead). Returns 0 or a
 * negative errno (-EADDRINUSE, ...) or MDHT_ERR_* code (from
 * mdht_node_new); on failure everything is released and a message saying
 * why has been logged at error level. */
int mdht_driver_init(mdht_driver *d, const mdht_driver_opts *opts);

/* Runs until SIGINT/SIGTERM or mdht_driver_stop. Returns 0, or a negative
 * errno when epoll itself fails. */
int mdht_driver_run(mdht_driver *d);

/* Makes mdht_driver_run return after the current iteration. Safe from a
 * hook or event callback; not from a signal handler (use the signals). */
void mdht_driver_stop(mdht_driver *d);

void mdht_driver_free(mdht_driver *d);

/* Watches `fd` (EPOLLIN, EPOLLOUT, ...). Returns 0, -ENOSPC when the hook
 * table is full, or -errno from epoll_ctl. The fd stays the caller's. */
int mdht_driver_add_fd(mdht_driver *d, int fd, uint32_t events,
                       mdht_driver_fd_cb cb, void *user);
int mdht_driver_del_fd(mdht_driver *d, int fd);

/* Sends whatever the node has queued. Hooks need not call it; code that
 * pokes the node from outside the loop does. */
void mdht_driver_flush(mdht_driver *d);

/* Resolves one "HOST:PORT" (AI_NUMERICSERV) and adds every address of the
 * node's family as a bootstrap router (mdht_node_add_bootstrap: pinged now,
 * and again whenever the routing table empties). Returns how many were
 * added; failures are logged as warnings. */
int mdht_driver_bootstrap(mdht_driver *d, const char *hostport);

/* CLOCK_MONOTONIC in ms: the node's time. */
mdht_time mdht_driver_now(void);
/* CLOCK_REALTIME in ms since the epoch: LogForge's clock. */
uint64_t mdht_driver_wallclock(void *user);
/* The mdht_random_cb: getrandom(2). Aborts if the kernel cannot provide
 * randomness, since a DHT node with predictable ids and tokens is worse
 * than none. */
void mdht_driver_random(uint8_t *buf, size_t len, void *user);

#endif
