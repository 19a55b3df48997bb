/* The event loop: timers in deadline order, fd readiness, wake-ups (also
 * from another thread), signals, prepare hooks and stopping. Every run is
 * bounded by its `until` argument, so a broken loop fails, never hangs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"

/* ---------------------------------------------------------------- timers */

typedef struct order {
  int seen[8];
  int n;
  int stop_after; /* stops the loop once this many fired */
} order;

typedef struct tagged {
  mdht_loop_timer t;
  int tag;
  order *o;
} tagged;

static void record(mdht_loop *l, mdht_loop_timer *t, void *user) {
  tagged *x = user;
  (void)t;
  x->o->seen[x->o->n++] = x->tag;
  if (x->o->n == x->o->stop_after) mdht_loop_stop(l);
}

static void timers_fire_in_deadline_order(void **state) {
  mdht_loop l;
  order o = {.stop_after = 4};
  tagged x[5];
  /* Set out of order; 2 and 3 share a deadline and fire as set; 4 is
   * moved later than the others, 5 is stopped. */
  const mdht_time in[5] = {40, 10, 25, 25, 5};
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_time now = mdht_loop_now();
  for (int i = 0; i < 5; i++) {
    x[i].tag = i + 1;
    x[i].o = &o;
    mdht_loop_timer_init(&x[i].t, record, &x[i]);
    assert_int_equal(mdht_loop_timer_set(&l, &x[i].t, now + in[i]), 0);
  }
  assert_int_equal(mdht_loop_timer_set(&l, &x[3].t, now + 60), 0);
  mdht_loop_timer_stop(&l, &x[4].t);
  assert_false(mdht_loop_timer_armed(&x[4].t));
  assert_int_equal(mdht_loop_run(&l, now + 5000), 0);
  assert_int_equal(o.n, 4);
  assert_int_equal(o.seen[0], 2);
  assert_int_equal(o.seen[1], 3);
  assert_int_equal(o.seen[2], 1);
  assert_int_equal(o.seen[3], 4);
  /* Not before its deadline. */
  assert_true(mdht_loop_now() >= now + 60);
  mdht_loop_free(&l);
}

/* Many timers through the heap: they come out sorted. */
typedef struct heap_check {
  mdht_time last;
  int fired;
  bool sorted;
} heap_check;

typedef struct heap_timer {
  mdht_loop_timer t;
  heap_check *h;
} heap_timer;

static void heap_fire(mdht_loop *l, mdht_loop_timer *t, void *user) {
  heap_timer *x = user;
  (void)l;
  if (t->at < x->h->last) x->h->sorted = false;
  x->h->last = t->at;
  x->h->fired++;
}

static void heap_keeps_order_through_moves(void **state) {
  mdht_loop l;
  heap_check h = {0, 0, true};
  static heap_timer x[200];
  uint64_t seed = 7;
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_time base = mdht_loop_now() - 1000; /* all due at once */
  for (int i = 0; i < 200; i++) {
    x[i].h = &h;
    mdht_loop_timer_init(&x[i].t, heap_fire, &x[i]);
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    assert_int_equal(mdht_loop_timer_set(&l, &x[i].t, base + (seed >> 54)), 0);
  }
  for (int i = 0; i < 200; i += 3) /* move a third, stop a seventh */
    assert_int_equal(mdht_loop_timer_set(&l, &x[i].t, base + (mdht_time)i), 0);
  for (int i = 0; i < 200; i += 7)
    mdht_loop_timer_stop(&l, &x[i].t);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 50), 1);
  assert_int_equal(h.fired, 200 - 29);
  assert_true(h.sorted);
  mdht_loop_free(&l);
}

/* A timer that keeps setting itself to the past must not hold the loop:
 * a ready fd still gets its turn. */
typedef struct busy {
  mdht_loop_timer t;
  int fired;
  int fd_calls;
  int wfd;
} busy;

/* Sets itself to the past each time; the fifth time it also makes the
 * pipe readable. Without the loop's guard the fd would never be seen (and
 * the test would hang until ctest's timeout). */
static void busy_timer(mdht_loop *l, mdht_loop_timer *t, void *user) {
  busy *b = user;
  if (++b->fired == 5) assert_int_equal(write(b->wfd, "x", 1), 1);
  mdht_loop_timer_set(l, t, 0);
}

static void busy_fd(mdht_loop *l, int fd, uint32_t events, void *user) {
  busy *b = user;
  (void)fd, (void)events;
  b->fd_calls++;
  mdht_loop_stop(l);
}

static void past_timer_does_not_starve_fds(void **state) {
  mdht_loop l;
  busy b = {0};
  int p[2];
  (void)state;
  assert_int_equal(pipe(p), 0);
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_loop_timer_init(&b.t, busy_timer, &b);
  assert_int_equal(mdht_loop_timer_set(&l, &b.t, 0), 0);
  assert_int_equal(mdht_loop_watch(&l, p[0], EPOLLIN, busy_fd, &b), 0);
  b.wfd = p[1];
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 5000), 0);
  assert_int_equal(b.fd_calls, 1);
  assert_int_equal(b.fired, 5); /* once per iteration; the fd next */
  mdht_loop_timer_stop(&l, &b.t);
  mdht_loop_free(&l);
  close(p[0]);
  close(p[1]);
}

/* ------------------------------------------------------------------- fds */

typedef struct pair {
  int a[2], b[2];
  int calls_a, calls_b;
  uint32_t events_a;
} pair;

/* Whichever of the two runs first unwatches and closes the other, and
 * opens a new fd that likely reuses its number: the other's event of this
 * same round must not be delivered, to it or to the new fd's watcher. */
static void on_a(mdht_loop *l, int fd, uint32_t events, void *user);
static void on_b(mdht_loop *l, int fd, uint32_t events, void *user);

static void drop_other(mdht_loop *l, pair *p, int *other, mdht_loop_fd_cb cb) {
  int old = other[0], fresh[2];
  mdht_loop_unwatch(l, old);
  close(old);
  assert_int_equal(pipe(fresh), 0);
  other[0] = fresh[0];
  close(fresh[1]);
  /* Watched under the number the stale event names, most likely. */
  assert_int_equal(mdht_loop_watch(l, fresh[0], EPOLLIN, cb, p), 0);
}

static void on_a(mdht_loop *l, int fd, uint32_t events, void *user) {
  pair *p = user;
  char c;
  p->calls_a++;
  p->events_a = events;
  assert_int_equal(read(fd, &c, 1), 1);
  if (p->calls_b == 0) drop_other(l, p, p->b, on_b);
  mdht_loop_stop(l);
}

static void on_b(mdht_loop *l, int fd, uint32_t events, void *user) {
  pair *p = user;
  char c;
  (void)events;
  p->calls_b++;
  assert_int_equal(read(fd, &c, 1), 1);
  if (p->calls_a == 0) drop_other(l, p, p->a, on_a);
  mdht_loop_stop(l);
}

static void fd_ready_and_removed_mid_round(void **state) {
  mdht_loop l;
  pair p = {0};
  (void)state;
  assert_int_equal(pipe(p.a), 0);
  assert_int_equal(pipe(p.b), 0);
  assert_int_equal(mdht_loop_init(&l), 0);
  assert_int_equal(mdht_loop_watch(&l, p.a[0], EPOLLIN, on_a, &p), 0);
  assert_int_equal(mdht_loop_watch(&l, p.a[0], EPOLLIN, on_a, &p), -EEXIST);
  assert_int_equal(mdht_loop_watch(&l, p.b[0], EPOLLIN, on_b, &p), 0);
  /* Nothing readable: the run ends at its bound, no callback. */
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 20), 1);
  assert_int_equal(p.calls_a + p.calls_b, 0);
  assert_int_equal(write(p.a[1], "x", 1), 1);
  assert_int_equal(write(p.b[1], "y", 1), 1);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 5000), 0);
  /* Exactly one of them ran; the other was dropped before its turn. */
  assert_int_equal(p.calls_a + p.calls_b, 1);
  if (p.calls_a) assert_true(p.events_a & EPOLLIN);
  mdht_loop_unwatch(&l, p.a[0]);
  mdht_loop_free(&l);
  close(p.a[0]);
  close(p.a[1]);
  close(p.b[0]);
  close(p.b[1]);
}

/* --------------------------------------------------------------- wake-ups */

typedef struct woken {
  mdht_loop *l;
  mdht_loop_wakeup w;
  int calls;
} woken;

static void on_wake(mdht_loop *l, mdht_loop_wakeup *w, void *user) {
  woken *x = user;
  (void)w;
  x->calls++;
  mdht_loop_stop(l);
}

static void wakeups_coalesce(void **state) {
  mdht_loop l;
  woken x = {.l = &l};
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_loop_wakeup_add(&l, &x.w, on_wake, &x);
  mdht_loop_wake(&l, &x.w);
  mdht_loop_wake(&l, &x.w);
  mdht_loop_wake(&l, &x.w);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 5000), 0);
  assert_int_equal(x.calls, 1);
  /* Nothing pending any more: the next run only ends at its bound. */
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 20), 1);
  assert_int_equal(x.calls, 1);
  mdht_loop_wakeup_del(&l, &x.w);
  mdht_loop_free(&l);
}

static void *wake_later(void *arg) {
  woken *x = arg;
  struct timespec ts = {0, 50 * 1000000};
  nanosleep(&ts, NULL);
  mdht_loop_wake(x->l, &x->w);
  return NULL;
}

static void wakeup_from_another_thread(void **state) {
  mdht_loop l;
  woken x = {.l = &l};
  pthread_t th;
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_loop_wakeup_add(&l, &x.w, on_wake, &x);
  mdht_time start = mdht_loop_now();
  assert_int_equal(pthread_create(&th, NULL, wake_later, &x), 0);
  /* Blocked in epoll_wait with no timer: only the eventfd can end it
   * before the 10 s bound. */
  assert_int_equal(mdht_loop_run(&l, start + 10000), 0);
  pthread_join(th, NULL);
  assert_int_equal(x.calls, 1);
  assert_true(mdht_loop_now() - start < 5000);
  mdht_loop_wakeup_del(&l, &x.w);
  mdht_loop_free(&l);
}

/* ---------------------------------------------------------------- signals */

static void on_usr1(mdht_loop *l, int signo, void *user) {
  *(int *)user = signo;
  mdht_loop_stop(l);
}

static void signal_arrives_as_callback(void **state) {
  mdht_loop l;
  int got = 0;
  sigset_t cur;
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  assert_int_equal(mdht_loop_signal(&l, SIGUSR1, on_usr1, &got), 0);
  /* Blocked now: raise leaves it pending, for the signalfd. */
  assert_int_equal(raise(SIGUSR1), 0);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 5000), 0);
  assert_int_equal(got, SIGUSR1);
  mdht_loop_free(&l);
  /* The mask is as it was. */
  sigprocmask(SIG_BLOCK, NULL, &cur);
  assert_false(sigismember(&cur, SIGUSR1));
}

/* A process started with SIGINT ignored (a background job of a script)
 * still gets it: the loop installs a disposition of its own, says which
 * signal stopped it, and gives the old disposition back. */
static void ignored_signal_still_stops(void **state) {
  mdht_loop l;
  struct sigaction ign, cur;
  (void)state;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  assert_int_equal(sigaction(SIGINT, &ign, NULL), 0);
  assert_int_equal(mdht_loop_init(&l), 0);
  assert_int_equal(mdht_loop_stop_on_signals(&l), 0);
  assert_int_equal(l.stop_signal, 0);
  assert_int_equal(raise(SIGINT), 0);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 2000), 0);
  assert_int_equal(l.stop_signal, SIGINT);
  mdht_loop_free(&l);
  assert_int_equal(sigaction(SIGINT, NULL, &cur), 0);
  assert_true(cur.sa_handler == SIG_IGN);
  ign.sa_handler = SIG_DFL;
  sigaction(SIGINT, &ign, NULL);
}

/* ----------------------------------------------------------- prepare, stop */

typedef struct prep {
  mdht_loop_prepare p, q;
  int p_calls, q_calls;
} prep;

static void on_prep_p(mdht_loop *l, void *user) {
  prep *x = user;
  x->p_calls++;
  /* Removing another hook mid-walk: it is not called. */
  mdht_loop_prepare_del(l, &x->q);
  if (x->p_calls == 3) mdht_loop_stop(l);
}

static void on_prep_q(mdht_loop *l, void *user) {
  prep *x = user;
  (void)l;
  x->q_calls++;
}

static void tick(mdht_loop *l, mdht_loop_timer *t, void *user) {
  (void)user;
  mdht_loop_timer_set(l, t, mdht_loop_now() + 1);
}

static void prepare_runs_before_each_wait(void **state) {
  mdht_loop l;
  prep x = {0};
  mdht_loop_timer t;
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_loop_prepare_add(&l, &x.q, on_prep_q, &x);
  mdht_loop_prepare_add(&l, &x.p, on_prep_p, &x); /* runs first */
  mdht_loop_timer_init(&t, tick, NULL);
  assert_int_equal(mdht_loop_timer_set(&l, &t, 0), 0);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 5000), 0);
  assert_int_equal(x.p_calls, 3);
  assert_int_equal(x.q_calls, 0);
  mdht_loop_timer_stop(&l, &t);
  mdht_loop_prepare_del(&l, &x.p);
  mdht_loop_free(&l);
}

static void run_until_bound(void **state) {
  mdht_loop l;
  (void)state;
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_time start = mdht_loop_now();
  assert_int_equal(mdht_loop_run(&l, start + 30), 1);
  mdht_time took = mdht_loop_now() - start;
  assert_true(took >= 30 && took < 2000);
  mdht_loop_free(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(timers_fire_in_deadline_order),
      cmocka_unit_test(heap_keeps_order_through_moves),
      cmocka_unit_test(past_timer_does_not_starve_fds),
      cmocka_unit_test(fd_ready_and_removed_mid_round),
      cmocka_unit_test(wakeups_coalesce),
      cmocka_unit_test(wakeup_from_another_thread),
      cmocka_unit_test(signal_arrives_as_callback),
      cmocka_unit_test(ignored_signal_still_stops),
      cmocka_unit_test(prepare_runs_before_each_wait),
      cmocka_unit_test(run_until_bound),
  };
  return cmocka_run_group_tests(tests, 0, NULL);
}
