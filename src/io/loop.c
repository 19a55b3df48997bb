#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* Events taken per epoll_wait; more wait for the next round. */
#define LOOP_EVENTS 64

mdht_time mdht_loop_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (mdht_time)ts.tv_sec * 1000 + (mdht_time)ts.tv_nsec / 1000000;
}

/* ----------------------------------------------------------- fd watchers */

static int grow_fds(mdht_loop *l, int fd) {
  size_t want = l->nfds ? l->nfds : 64;
  while (want <= (size_t)fd)
    want *= 2;
  if (want == l->nfds) return 0;
  mdht_loop_watcher *p = realloc(l->fds, want * sizeof *p);
  if (!p) return -ENOMEM;
  memset(p + l->nfds, 0, (want - l->nfds) * sizeof *p);
  l->fds = p;
  l->nfds = want;
  return 0;
}

static mdht_loop_watcher *watcher(mdht_loop *l, int fd) {
  if (fd < 0 || (size_t)fd >= l->nfds || !l->fds[fd].cb) return NULL;
  return &l->fds[fd];
}

static int ctl(mdht_loop *l, int op, int fd, const mdht_loop_watcher *w) {
  struct epoll_event ev = {0};
  ev.events = w->events;
  ev.data.u64 = (uint64_t)w->gen << 32 | (uint32_t)fd;
  return epoll_ctl(l->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int mdht_loop_watch(mdht_loop *l, int fd, uint32_t events, mdht_loop_fd_cb cb,
                    void *user) {
  if (fd < 0 || !cb) return -EINVAL;
  if (watcher(l, fd)) return -EEXIST;
  int rc = grow_fds(l, fd);
  if (rc < 0) return rc;
  mdht_loop_watcher w = {cb, user, events, ++l->gen};
  if ((rc = ctl(l, EPOLL_CTL_ADD, fd, &w)) < 0) return rc;
  l->fds[fd] = w;
  return 0;
}

int mdht_loop_modify(mdht_loop *l, int fd, uint32_t events) {
  mdht_loop_watcher *w = watcher(l, fd);
  if (!w) return -ENOENT;
  if (w->events == events) return 0;
  uint32_t old = w->events;
  w->events = events;
  int rc = ctl(l, EPOLL_CTL_MOD, fd, w);
  if (rc < 0) w->events = old;
  return rc;
}

int mdht_loop_unwatch(mdht_loop *l, int fd) {
  mdht_loop_watcher *w = watcher(l, fd);
  if (!w) return -ENOENT;
  w->cb = NULL;
  /* Fails harmlessly when the fd was closed already: epoll forgot it. */
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
  return 0;
}

static void dispatch(mdht_loop *l, const struct epoll_event *ev) {
  int fd = (int)(uint32_t)ev->data.u64;
  mdht_loop_watcher *w = watcher(l, fd);
  /* Looked up per event: an earlier callback may have removed this fd, or
   * closed it and watched a new one under the same number. */
  if (!w || w->gen != (uint32_t)(ev->data.u64 >> 32)) return;
  w->cb(l, fd, ev->events, w->user);
}

/* ---------------------------------------------------------------- timers */

static bool before(const mdht_loop_timer *a, const mdht_loop_timer *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_put(mdht_loop *l, size_t i, mdht_loop_timer *t) {
  l->heap[i] = t;
  t->slot = (uint32_t)i + 1;
}

static void sift_up(mdht_loop *l, size_t i) {
  mdht_loop_timer *t = l->heap[i];
  while (i > 0 && before(t, l->heap[(i - 1) / 2])) {
    heap_put(l, i, l->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  heap_put(l, i, t);
}

static void sift_down(mdht_loop *l, size_t i) {
  mdht_loop_timer *t = l->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= l->nheap) break;
    if (c + 1 < l->nheap && before(l->heap[c + 1], l->heap[c])) c++;
    if (!before(l->heap[c], t)) break;
    heap_put(l, i, l->heap[c]);
    i = c;
  }
  heap_put(l, i, t);
}

void mdht_loop_timer_init(mdht_loop_timer *t, mdht_loop_timer_cb cb,
                          void *user) {
  memset(t, 0, sizeof *t);
  t->cb = cb;
  t->user = user;
}

void mdht_loop_timer_stop(mdht_loop *l, mdht_loop_timer *t) {
  if (!t->slot) return;
  size_t i = t->slot - 1;
  t->slot = 0;
  mdht_loop_timer *last = l->heap[--l->nheap];
  if (i == l->nheap) return;
  heap_put(l, i, last);
  sift_up(l, i);
  sift_down(l, last->slot - 1);
}

int mdht_loop_timer_set(mdht_loop *l, mdht_loop_timer *t, mdht_time at) {
  mdht_loop_timer_stop(l, t);
  if (l->nheap == l->heapcap) {
    size_t cap = l->heapcap ? l->heapcap * 2 : 16;
    mdht_loop_timer **h = realloc(l->heap, cap * sizeof *h);
    if (!h) return -ENOMEM;
    l->heap = h;
    l->heapcap = cap;
  }
  t->at = at;
  t->seq = l->seq++;
  heap_put(l, l->nheap++, t);
  sift_up(l, l->nheap - 1);
  return 0;
}

/* Runs the timers due at `now`. One set again (or first) during this walk
 * waits for the next iteration, so that a timer that keeps setting itself
 * to the past cannot hold the loop here. */
static void run_timers(mdht_loop *l, mdht_time now) {
  uint64_t limit = l->seq;
  while (l->nheap > 0 && !l->stop) {
    mdht_loop_timer *t = l->heap[0];
    if (t->at > now || t->seq >= limit) break;
    mdht_loop_timer_stop(l, t);
    t->cb(l, t, t->user);
  }
}

static int wait_ms(const mdht_loop *l, mdht_time now, mdht_time until) {
  mdht_time next = until ? until : UINT64_MAX;
  if (l->nheap > 0 && l->heap[0]->at < next) next = l->heap[0]->at;
  if (l->stop || next <= now) return 0;
  if (next == UINT64_MAX) return -1;
  return next - now > (mdht_time)INT_MAX ? INT_MAX : (int)(next - now);
}

/* -------------------------------------------------------------- wake-ups */

void mdht_loop_wakeup_add(mdht_loop *l, mdht_loop_wakeup *w,
                          mdht_loop_wakeup_cb cb, void *user) {
  atomic_init(&w->pending, false);
  w->cb = cb;
  w->user = user;
  w->next = l->wakeups;
  l->wakeups = w;
}

void mdht_loop_wakeup_del(mdht_loop *l, mdht_loop_wakeup *w) {
  for (mdht_loop_wakeup **p = &l->wakeups; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      return;
    }
  }
}

void mdht_loop_wake(mdht_loop *l, mdht_loop_wakeup *w) {
  uint64_t one = 1;
  /* One write per burst: later calls find it pending already. */
  if (atomic_exchange(&w->pending, true)) return;
  if (write(l->evfd, &one, sizeof one) < 0) {
    /* EAGAIN: the counter is readable already, which is all we want. */
  }
}

static void on_wakeups(mdht_loop *l, int fd, uint32_t events, void *user) {
  uint64_t v;
  (void)events, (void)user;
  if (read(fd, &v, sizeof v) < 0) return;
  /* A callback may remove any wake-up: start over after each one. The
   * list is short (a handful per process). */
  for (bool again = true; again;) {
    again = false;
    for (mdht_loop_wakeup *w = l->wakeups; w; w = w->next) {
      if (!atomic_exchange(&w->pending, false)) continue;
      w->cb(l, w, w->user);
      again = true;
      break;
    }
  }
}

/* --------------------------------------------------------- prepare hooks */

void mdht_loop_prepare_add(mdht_loop *l, mdht_loop_prepare *p,
                           mdht_loop_prepare_cb cb, void *user) {
  p->cb = cb;
  p->user = user;
  p->next = l->prepares;
  l->prepares = p;
}

void mdht_loop_prepare_del(mdht_loop *l, mdht_loop_prepare *p) {
  if (l->prep_next == p) l->prep_next = p->next;
  for (mdht_loop_prepare **q = &l->prepares; *q; q = &(*q)->next) {
    if (*q == p) {
      *q = p->next;
      return;
    }
  }
}

static void run_prepares(mdht_loop *l) {
  for (mdht_loop_prepare *p = l->prepares; p; p = l->prep_next) {
    l->prep_next = p->next; /* moved on by mdht_loop_prepare_del */
    p->cb(l, p->user);
  }
  l->prep_next = NULL;
}

/* --------------------------------------------------------------- signals */

static void on_signals(mdht_loop *l, int fd, uint32_t events, void *user) {
  struct signalfd_siginfo si;
  (void)events, (void)user;
  while (read(fd, &si, sizeof si) == (ssize_t)sizeof si) {
    int s = (int)si.ssi_signo;
    if (s > 0 && s < MDHT_LOOP_NSIG && l->sig[s].cb)
      l->sig[s].cb(l, s, l->sig[s].user);
  }
}

/* Never runs while the loop holds the signal blocked; only a signal still
 * pending when mdht_loop_free unblocks it lands here, and is dropped. */
static void ignore_signal(int signo) {
  (void)signo;
}

/* A disposition of our own: an ignored signal is discarded when it is
 * sent, before any signalfd could see it, and non-interactive shells start
 * background jobs with SIGINT ignored ("cmd &" then "kill -INT"). */
static int take_disposition(mdht_loop *l, int signo) {
  struct sigaction sa;
  if (l->act_saved[signo]) return 0;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = ignore_signal;
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, &l->old_act[signo]) < 0) return -errno;
  l->act_saved[signo] = true;
  return 0;
}

int mdht_loop_signal(mdht_loop *l, int signo, mdht_loop_signal_cb cb,
                     void *user) {
  sigset_t one;
  if (signo <= 0 || signo >= MDHT_LOOP_NSIG || !cb) return -EINVAL;
  sigemptyset(&one);
  sigaddset(&one, signo);
  /* Blocked, so that it waits in the signalfd instead of running a
   * handler (or the default action) somewhere in the middle of a node. */
  if (sigprocmask(SIG_BLOCK, &one, l->masked ? NULL : &l->old_mask) < 0)
    return -errno;
  l->masked = true;
  sigaddset(&l->sigmask, signo);
  int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return -errno;
  if (l->sigfd < 0) {
    int rc = mdht_loop_watch(l, fd, EPOLLIN, on_signals, NULL);
    if (rc < 0) {
      close(fd);
      return rc;
    }
    l->sigfd = fd;
  }
  l->sig[signo].cb = cb;
  l->sig[signo].user = user;
  return take_disposition(l, signo);
}

static void stop_on_signal(mdht_loop *l, int signo, void *user) {
  (void)user;
  if (!l->stop_signal) l->stop_signal = signo;
  mdht_loop_stop(l);
}

int mdht_loop_stop_on_signals(mdht_loop *l) {
  int rc = mdht_loop_signal(l, SIGINT, stop_on_signal, NULL);
  return rc < 0 ? rc : mdht_loop_signal(l, SIGTERM, stop_on_signal, NULL);
}

/* ------------------------------------------------------------ life cycle */

int mdht_loop_init(mdht_loop *l) {
  memset(l, 0, sizeof *l);
  l->epfd = l->evfd = l->sigfd = -1;
  sigemptyset(&l->sigmask);
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int rc = l->epfd < 0 || l->evfd < 0 ? -errno : 0;
  if (rc == 0) rc = mdht_loop_watch(l, l->evfd, EPOLLIN, on_wakeups, NULL);
  if (rc < 0) mdht_loop_free(l);
  return rc;
}

void mdht_loop_free(mdht_loop *l) {
  if (l->epfd >= 0) close(l->epfd);
  if (l->evfd >= 0) close(l->evfd);
  if (l->sigfd >= 0) close(l->sigfd);
  l->epfd = l->evfd = l->sigfd = -1;
  if (l->masked) sigprocmask(SIG_SETMASK, &l->old_mask, NULL);
  l->masked = false;
  /* After the unblocking: a signal still pending goes to our handler. */
  for (int s = 1; s < MDHT_LOOP_NSIG; s++)
    if (l->act_saved[s]) sigaction(s, &l->old_act[s], NULL);
  memset(l->act_saved, 0, sizeof l->act_saved);
  free(l->heap);
  free(l->fds);
  l->heap = NULL;
  l->fds = NULL;
  l->nheap = l->heapcap = l->nfds = 0;
  l->wakeups = NULL;
  l->prepares = NULL;
  if (l->rx_ready) mdht_sock_rx_free(&l->rx);
  l->rx_ready = false;
}

void mdht_loop_stop(mdht_loop *l) {
  l->stop = true;
}

mdht_sock_rx *mdht_loop_rx(mdht_loop *l) {
  if (!l->rx_ready && mdht_sock_rx_init(&l->rx) == 0) l->rx_ready = true;
  return l->rx_ready ? &l->rx : NULL;
}

int mdht_loop_run(mdht_loop *l, mdht_time until) {
  struct epoll_event evs[LOOP_EVENTS];
  l->stop = false;
  for (;;) {
    run_prepares(l);
    mdht_time now = mdht_loop_now();
    if (l->stop) return 0;
    if (until && now >= until) return 1;
    int n = epoll_wait(l->epfd, evs, LOOP_EVENTS, wait_ms(l, now, until));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    for (int i = 0; i < n; i++)
      dispatch(l, &evs[i]);
    run_timers(l, mdht_loop_now());
  }
}
