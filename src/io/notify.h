/*
 * Service notification: what `mdht run` tells systemd (or anything else
 * that sets NOTIFY_SOCKET) through libsystemd's sd_notify.
 *
 *   READY=1      once the node is bound and serving, with a STATUS= line
 *                saying where it listens and what its table holds;
 *   STATUS=...   again every MDHT_NOTIFY_STATUS_MS, when the text changed;
 *   WATCHDOG=1   every half WATCHDOG_USEC (sd_watchdog_enabled: only when
 *                WATCHDOG_PID is unset or names this process), from a
 *                timer of the program's loop, so that a stuck loop stops
 *                the pings and systemd restarts the service;
 *   STOPPING=1   when the program shuts down.
 *
 * sd_notify writes to a blocking datagram socket: a receiver that never
 * reads (systemd always does) would stall the loop once its few queued
 * messages fill up. Tests that stand in for systemd drain as they go.
 *
 * Without NOTIFY_SOCKET everything here is a no-op: a node started by hand
 * behaves exactly as before.
 */
#ifndef MDHT_NOTIFY_H
#define MDHT_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "mdht.h"

/* Status updates at most this often: the table changes slowly, and every
 * message wakes the service manager. */
#define MDHT_NOTIFY_STATUS_MS 10000

/* Writes the status text into buf (NUL-terminated). */
typedef void (*mdht_notify_status_fn)(char *buf, size_t cap, void *user);

typedef struct mdht_notify {
  bool active;           /* NOTIFY_SOCKET is set */
  mdht_time watchdog_ms; /* ping interval; 0: no watchdog asked for */
  mdht_loop *loop;
  mdht_loop_timer watchdog, status;
  mdht_notify_status_fn status_fn; /* NULL: no STATUS= */
  void *status_user;
  char last[256]; /* the last STATUS= text sent */
} mdht_notify;

/* Reads the environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID); sends
 * nothing yet. */
void mdht_notify_init(mdht_notify *n, mdht_loop *loop, mdht_notify_status_fn fn,
                      void *user);
/* READY=1 and the status, then starts the watchdog and status timers.
 * Returns 0 (also when inactive) or a negative errno from sd_notify or
 * the loop. */
int mdht_notify_ready(mdht_notify *n);
/* STOPPING=1; stops the timers. */
void mdht_notify_stopping(mdht_notify *n);
/* Stops the timers (before the loop is freed). */
void mdht_notify_free(mdht_notify *n);

/* The ping interval for a WATCHDOG_USEC of `usec`: half of it, in ms, and
 * at least 1 ms; 0 when usec is 0 (no watchdog). */
mdht_time mdht_notify_watchdog_interval(uint64_t usec);

/* "127.0.0.1:6881, 12 nodes (9 good), 3 info-hashes, 7 peers": the
 * STATUS= text. Returns the length snprintf would write. */
int mdht_notify_status_text(char *buf, size_t cap, const mdht_addr *addr,
                            const mdht_stats *st);

#endif
