/*
 * Metrics: `mdht run --metrics ADDR:PORT` serves GET /metrics in the
 * Prometheus text exposition format (version 0.0.4).
 *
 * Two halves:
 *
 *   the text      pure functions. mdht_metrics_observe() folds the node's
 *                 events into fixed arrays (lookups by method and outcome,
 *                 the histograms of lookup duration and reply round-trip
 *                 time): no allocation per event. mdht_metrics_format()
 *                 writes the exposition from a snapshot (the node's
 *                 mdht_stats plus those arrays).
 *   the server    libmicrohttpd, never hand-written HTTP. MHD runs without
 *                 a thread of its own (MHD_USE_EPOLL, external polling):
 *                 its epoll fd is watched by our loop, and its timeouts
 *                 are a loop timer. The page is therefore built on the
 *                 loop's thread, the node's only thread, so reading the
 *                 node needs no lock.
 *
 * Bounded: at most MDHT_METRICS_MAX_CONNS connections (MHD refuses more),
 * each closed after MDHT_METRICS_CONN_TIMEOUT_S idle seconds. Anything but
 * GET or HEAD is 405, any path but /metrics 404.
 */
#ifndef MDHT_METRICS_H
#define MDHT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logforge.h"
#include "loop.h"
#include "mdht.h"

#define MDHT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define MDHT_METRICS_MAX_CONNS 16
#define MDHT_METRICS_CONN_TIMEOUT_S 10
/* The page's bound: every line is fixed but for the numbers and the
 * version; a snapshot of all-maximum counters takes about 9 KiB. */
#define MDHT_METRICS_MAX_TEXT 16384

/* Upper bounds of the histogram buckets, in ms (the events' unit); the
 * exposition gives them in seconds, and +Inf after them. */
#define MDHT_METRICS_NBUCKETS 10
extern const mdht_time mdht_metrics_lookup_bounds[MDHT_METRICS_NBUCKETS];
extern const mdht_time mdht_metrics_rtt_bounds[MDHT_METRICS_NBUCKETS];

typedef struct mdht_metrics_hist {
  uint64_t bucket[MDHT_METRICS_NBUCKETS + 1]; /* per bucket, last = +Inf;
                                                 not cumulative */
  uint64_t count;
  uint64_t sum_ms;
} mdht_metrics_hist;

/* What the events tell that mdht_stats does not. */
typedef struct mdht_metrics_acc {
  uint64_t lookups[MDHT_M_COUNT_][2]; /* [method][0 failed, 1 ok] */
  mdht_metrics_hist lookup_ms;        /* LOOKUP_DONE's elapsed_ms */
  mdht_metrics_hist rtt_ms;           /* RESPONSE_RECEIVED's rtt_ms */
} mdht_metrics_acc;

/* Everything one page shows. */
typedef struct mdht_metrics_snapshot {
  mdht_stats stats;
  mdht_metrics_acc acc;
  const char *version;    /* mdht_info's label, escaped as needed */
  char node_id[41];       /* hex */
  uint64_t start_wall_ms; /* Unix time the node started, ms */
} mdht_metrics_snapshot;

/* Adds `ms` to `h` under `bounds`. */
void mdht_metrics_hist_add(mdht_metrics_hist *h, const mdht_time *bounds,
                           mdht_time ms);
/* Folds one node event into `acc` (the others are ignored). */
void mdht_metrics_observe(mdht_metrics_acc *acc, const mdht_event *ev);

/* Writes a label value escaped as the format wants (\\, \" and \n) into
 * `out` with a NUL. Returns the length, or -1 when `cap` is too small. */
int mdht_metrics_escape(const char *in, char *out, size_t cap);

/* Writes the exposition into `buf` with a NUL. Returns its length, or -1
 * when `cap` is too small. */
int mdht_metrics_format(const mdht_metrics_snapshot *s, char *buf, size_t cap);

/* ---------------------------------------------------------- the server */

struct MHD_Daemon;

typedef struct mdht_metrics_server {
  int lfd;        /* the listening socket, until MHD owns it */
  char where[80]; /* ADDR:PORT as given, for messages */
  struct MHD_Daemon *mhd;
  int mhd_epfd;
  mdht_loop *loop;
  mdht_loop_timer timer; /* MHD_get_timeout's deadline */
  mdht_node *node;
  int sub; /* event subscription, or -1 */
  mdht_logforge *log;
  mdht_metrics_acc acc;
  uint64_t start_wall_ms;
  uint64_t requests; /* pages served, for tests and the log */
} mdht_metrics_server;

/* Checks "ADDR:PORT" or "[V6]:PORT" (numeric address, or a name that
 * resolves). Returns 0 or -1. */
int mdht_metrics_check_addr(const char *hostport);

/* Binds and listens on `hostport`, so that a busy port is refused before
 * the node starts. On failure writes "cannot serve metrics on HOSTPORT:
 * why" into `err` and returns a negative errno. */
int mdht_metrics_open(mdht_metrics_server *m, const char *hostport, char *err,
                      size_t errcap);

/* Starts serving `node` on `loop`: subscribes to its events and hands the
 * socket to MHD. Returns 0 or a negative errno / MDHT_ERR_*. */
int mdht_metrics_attach(mdht_metrics_server *m, mdht_loop *loop,
                        mdht_node *node, mdht_logforge *log,
                        uint64_t start_wall_ms);

/* Stops serving and closes everything. Safe after a failed open/attach
 * and on a zeroed struct with lfd = -1 (mdht_metrics_open sets it). */
void mdht_metrics_close(mdht_metrics_server *m);

#endif
