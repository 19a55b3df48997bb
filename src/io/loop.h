/*
 * The event loop: one epoll set that every part of a process shares.
 * Nodes (through their UDP bindings, binding.h), the control server,
 * persistence and the client commands each register what they wait for;
 * none makes an epoll set, timerfd, eventfd or signalfd of its own.
 *
 * What a loop holds:
 *
 *   fd watchers   a callback per file descriptor, with the epoll events
 *                 wanted (EPOLLIN, EPOLLOUT, ...).
 *   timers        caller-owned mdht_loop_timer structs in a binary heap,
 *                 ordered by deadline (ties: in the order they were set).
 *                 The earliest deadline is the epoll_wait timeout: no
 *                 timerfd, so moving a timer costs no system call. That
 *                 matters because every binding moves its timer to the
 *                 node's next deadline after each batch it receives. Time
 *                 is CLOCK_MONOTONIC in ms (mdht_loop_now), the node's own
 *                 clock and resolution.
 *   wake-ups      caller-owned mdht_loop_wakeup structs over one eventfd:
 *                 mdht_loop_wake marks one pending and makes the loop run
 *                 its callback soon, outside whatever called it. Safe from
 *                 inside a node callback (which must not call into the
 *                 node), from another thread, and from a signal handler.
 *   signals       delivered through one signalfd, as callbacks from the
 *                 loop: no handler runs at an arbitrary point. A signal
 *                 registered here is blocked in the calling thread until
 *                 mdht_loop_free.
 *   prepare hooks run before each wait: a binding sends here what its
 *                 node queued when someone else called into it.
 *
 * One iteration: prepare hooks, epoll_wait (until the earliest timer),
 * ready fds, due timers. Everything runs on the loop's thread; callbacks
 * may add and remove any watcher, timer or hook, their own included.
 *
 * Functions return 0 or a negative errno: this is the I/O side.
 */
#ifndef MDHT_LOOP_H
#define MDHT_LOOP_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "mdht.h"
#include "sock.h"

#define MDHT_LOOP_NSIG 65 /* signal numbers 1..64 */

typedef struct mdht_loop mdht_loop;
typedef struct mdht_loop_timer mdht_loop_timer;
typedef struct mdht_loop_wakeup mdht_loop_wakeup;
typedef struct mdht_loop_prepare mdht_loop_prepare;

/* `events` are the epoll events that are ready. */
typedef void (*mdht_loop_fd_cb)(mdht_loop *loop, int fd, uint32_t events,
                                void *user);
typedef void (*mdht_loop_timer_cb)(mdht_loop *loop, mdht_loop_timer *t,
                                   void *user);
typedef void (*mdht_loop_wakeup_cb)(mdht_loop *loop, mdht_loop_wakeup *w,
                                    void *user);
typedef void (*mdht_loop_signal_cb)(mdht_loop *loop, int signo, void *user);
typedef void (*mdht_loop_prepare_cb)(mdht_loop *loop, void *user);

/* A timer: set it to an absolute time; it fires once. A periodic timer
 * sets itself again from its callback. */
struct mdht_loop_timer {
  mdht_time at;
  uint64_t seq;  /* when it was set: orders equal deadlines */
  uint32_t slot; /* heap index + 1; 0 when not set */
  mdht_loop_timer_cb cb;
  void *user;
};

struct mdht_loop_wakeup {
  atomic_bool pending;
  mdht_loop_wakeup_cb cb;
  void *user;
  mdht_loop_wakeup *next; /* the loop's list */
};

struct mdht_loop_prepare {
  mdht_loop_prepare_cb cb;
  void *user;
  mdht_loop_prepare *next; /* the loop's list */
};

typedef struct mdht_loop_watcher {
  mdht_loop_fd_cb cb; /* NULL: not watched */
  void *user;
  uint32_t events;
  uint32_t gen; /* tells a reused fd from the one an event was for */
} mdht_loop_watcher;

struct mdht_loop {
  int epfd, evfd, sigfd;
  bool stop;
  /* Watchers indexed by fd: a lookup per event, and an fd removed by an
   * earlier callback of the same round is seen as gone. */
  mdht_loop_watcher *fds;
  size_t nfds;
  uint32_t gen;
  mdht_loop_timer **heap;
  size_t nheap, heapcap;
  uint64_t seq;
  mdht_loop_wakeup *wakeups;
  mdht_loop_prepare *prepares, *prep_next; /* prep_next: the walk's cursor */
  struct {
    mdht_loop_signal_cb cb;
    void *user;
  } sig[MDHT_LOOP_NSIG];
  sigset_t sigmask, old_mask; /* old_mask: restored by mdht_loop_free */
  bool masked;
  /* The dispositions we replaced (see mdht_loop_signal), restored by
   * mdht_loop_free. */
  struct sigaction old_act[MDHT_LOOP_NSIG];
  bool act_saved[MDHT_LOOP_NSIG];
  /* The signal that stopped the loop through mdht_loop_stop_on_signals,
   * or 0. */
  int stop_signal;
  /* One receive batch (64 x 64 KiB) that every binding of the loop reads
   * into in turn, so that a thousand nodes do not need a thousand. */
  mdht_sock_rx rx;
  bool rx_ready;
};

/* CLOCK_MONOTONIC in ms: the time of timers and of nodes. */
mdht_time mdht_loop_now(void);

/* Creates the epoll set and the eventfd. Returns 0 or -errno. */
int mdht_loop_init(mdht_loop *loop);
/* Closes what the loop made (not the watched fds) and restores the signal
 * mask. Its users (bindings, servers, ...) stop their timers and hooks
 * first; the loop does not touch them again. */
void mdht_loop_free(mdht_loop *loop);

/* Runs until mdht_loop_stop, or until `until` (mdht_loop_now time; 0: no
 * limit). Returns 0 when stopped, 1 when `until` came first, or -errno
 * when epoll_wait fails. */
int mdht_loop_run(mdht_loop *loop, mdht_time until);
/* Makes mdht_loop_run return once the current iteration is done. */
void mdht_loop_stop(mdht_loop *loop);

/* Watches `fd` (stays the caller's). Returns 0, -EEXIST when it is
 * watched already, -ENOMEM, or -errno from epoll_ctl. */
int mdht_loop_watch(mdht_loop *loop, int fd, uint32_t events,
                    mdht_loop_fd_cb cb, void *user);
int mdht_loop_modify(mdht_loop *loop, int fd, uint32_t events);
/* Returns 0 or -ENOENT. A closed fd may be unwatched after the fact. */
int mdht_loop_unwatch(mdht_loop *loop, int fd);

void mdht_loop_timer_init(mdht_loop_timer *t, mdht_loop_timer_cb cb,
                          void *user);
/* Sets (or moves) the timer to `at`; a time already past fires in the next
 * iteration. Returns 0 or -ENOMEM. */
int mdht_loop_timer_set(mdht_loop *loop, mdht_loop_timer *t, mdht_time at);
void mdht_loop_timer_stop(mdht_loop *loop, mdht_loop_timer *t);
static inline bool mdht_loop_timer_armed(const mdht_loop_timer *t) {
  return t->slot != 0;
}

void mdht_loop_wakeup_add(mdht_loop *loop, mdht_loop_wakeup *w,
                          mdht_loop_wakeup_cb cb, void *user);
void mdht_loop_wakeup_del(mdht_loop *loop, mdht_loop_wakeup *w);
/* Runs w's callback from the loop, once, however often it is called
 * before that. Thread-safe and async-signal-safe. */
void mdht_loop_wake(mdht_loop *loop, mdht_loop_wakeup *w);

void mdht_loop_prepare_add(mdht_loop *loop, mdht_loop_prepare *p,
                           mdht_loop_prepare_cb cb, void *user);
void mdht_loop_prepare_del(mdht_loop *loop, mdht_loop_prepare *p);

/* Delivers `signo` to `cb` from the loop (one callback per signal; a new
 * one replaces the old). Returns 0 or -errno. */
int mdht_loop_signal(mdht_loop *loop, int signo, mdht_loop_signal_cb cb,
                     void *user);
/* SIGINT and SIGTERM stop the loop, silently; loop->stop_signal says
 * which (a command exits 128 + it, as a shell expects). */
int mdht_loop_stop_on_signals(mdht_loop *loop);

/* The loop's shared receive batch, allocated on first use; NULL when out
 * of memory. Valid until the next receive into it. */
mdht_sock_rx *mdht_loop_rx(mdht_loop *loop);

#endif
