/* Service notification: the watchdog interval, the status text, and the
 * messages themselves, received on a socket that stands in for systemd's
 * (NOTIFY_SOCKET) while a real loop runs for a bounded time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "testutil.h"

static void watchdog_interval_is_half(void **state) {
  (void)state;
  assert_int_equal(mdht_notify_watchdog_interval(0), 0);
  assert_int_equal(mdht_notify_watchdog_interval(2000000), 1000);
  assert_int_equal(mdht_notify_watchdog_interval(30000000), 15000);
  /* Rounded down, never to 0: a tiny timeout still gets pings. */
  assert_int_equal(mdht_notify_watchdog_interval(3999), 1);
  assert_int_equal(mdht_notify_watchdog_interval(1), 1);
}

static void status_text_says_address_and_counts(void **state) {
  mdht_stats st;
  mdht_addr a = test_addr4(127, 0, 0, 1, 6881);
  char buf[128];
  (void)state;
  memset(&st, 0, sizeof st);
  st.nodes_total = 12;
  st.nodes_good = 9;
  st.infohashes = 3;
  st.peers = 7;
  mdht_notify_status_text(buf, sizeof buf, &a, &st);
  assert_string_equal(
      buf, "127.0.0.1:6881, 12 nodes (9 good), 3 info-hashes, 7 peers");
  st.nodes_total = 1;
  st.nodes_good = 0;
  st.infohashes = 1;
  st.peers = 1;
  mdht_notify_status_text(buf, sizeof buf, &a, &st);
  assert_string_equal(buf,
                      "127.0.0.1:6881, 1 node (0 good), 1 info-hash, 1 peer");
  /* Truncated, still terminated. */
  mdht_notify_status_text(buf, 8, &a, &st);
  assert_string_equal(buf, "127.0.0");
}

/* A datagram socket in a fresh directory, named in NOTIFY_SOCKET. */
typedef struct fake_systemd {
  char dir[64], path[128];
  int fd;
} fake_systemd;

static void fake_open(fake_systemd *f) {
  struct sockaddr_un sa;
  strcpy(f->dir, "/tmp/mdht-notify-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  snprintf(f->path, sizeof f->path, "%s/notify", f->dir);
  f->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  assert_true(f->fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  strcpy(sa.sun_path, f->path);
  assert_int_equal(bind(f->fd, (struct sockaddr *)&sa, sizeof sa), 0);
  setenv("NOTIFY_SOCKET", f->path, 1);
}

static void fake_close(fake_systemd *f) {
  close(f->fd);
  unlink(f->path);
  rmdir(f->dir);
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}

/* Every message received so far, each ending in '|'. */
static void fake_drain(fake_systemd *f, char *out, size_t cap) {
  char buf[512];
  ssize_t n;
  size_t used = strlen(out);
  while ((n = recv(f->fd, buf, sizeof buf - 1, 0)) > 0) {
    buf[n] = '\0';
    used += (size_t)snprintf(out + used, cap - used, "%s|", buf);
    assert_true(used < cap);
  }
}

/* Drains the socket from the loop, as systemd does: a datagram socket
 * holds only a few messages, and sd_notify blocks when it is full. */
typedef struct drain_ctx {
  fake_systemd *f;
  char *out;
  size_t cap;
} drain_ctx;

static void on_readable(mdht_loop *l, int fd, uint32_t events, void *user) {
  drain_ctx *d = user;
  (void)l, (void)fd, (void)events;
  fake_drain(d->f, d->out, d->cap);
}

static int count(const char *hay, const char *needle) {
  int c = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    c++;
  return c;
}

static void status_of(char *buf, size_t cap, void *user) {
  snprintf(buf, cap, "%s", (const char *)user);
}

static void ready_pings_and_stopping(void **state) {
  fake_systemd f;
  mdht_loop l;
  mdht_notify n;
  char got[8192] = "";
  (void)state;
  fake_open(&f);
  setenv("WATCHDOG_USEC", "20000", 1); /* pings every 10 ms */
  unsetenv("WATCHDOG_PID");
  assert_int_equal(mdht_loop_init(&l), 0);
  drain_ctx d = {&f, got, sizeof got};
  assert_int_equal(mdht_loop_watch(&l, f.fd, EPOLLIN, on_readable, &d), 0);
  mdht_notify_init(&n, &l, status_of, "here, 0 nodes");
  assert_true(n.active);
  assert_int_equal(n.watchdog_ms, 10);
  assert_int_equal(mdht_notify_ready(&n), 0);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 105), 1);
  mdht_notify_stopping(&n);
  fake_drain(&f, got, sizeof got);
  mdht_loop_unwatch(&l, f.fd);
  /* READY with its status in one message, first; then the pings. */
  assert_int_equal(strncmp(got, "READY=1\nSTATUS=here, 0 nodes|", 29), 0);
  int pings = count(got, "WATCHDOG=1|");
  assert_true(pings >= 8 && pings <= 13);
  assert_int_equal(count(got, "STOPPING=1|"), 1);
  assert_int_equal(strcmp(got + strlen(got) - 11, "STOPPING=1|"), 0);
  /* Stopped: no timer is left on the loop. */
  assert_false(mdht_loop_timer_armed(&n.watchdog));
  assert_false(mdht_loop_timer_armed(&n.status));
  mdht_loop_free(&l);
  fake_close(&f);
}

/* WATCHDOG_PID naming another process: the watchdog is not ours. */
static void watchdog_of_another_pid_is_ignored(void **state) {
  fake_systemd f;
  mdht_loop l;
  mdht_notify n;
  char pid[32], got[1024] = "";
  (void)state;
  fake_open(&f);
  setenv("WATCHDOG_USEC", "20000", 1);
  snprintf(pid, sizeof pid, "%d", (int)getpid() + 1);
  setenv("WATCHDOG_PID", pid, 1);
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_notify_init(&n, &l, NULL, NULL);
  assert_int_equal(n.watchdog_ms, 0);
  assert_int_equal(mdht_notify_ready(&n), 0);
  assert_int_equal(mdht_loop_run(&l, mdht_loop_now() + 40), 1);
  fake_drain(&f, got, sizeof got);
  assert_string_equal(got, "READY=1\n|");
  /* Our own pid: it is. */
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  setenv("WATCHDOG_PID", pid, 1);
  mdht_notify_init(&n, &l, NULL, NULL);
  assert_int_equal(n.watchdog_ms, 10);
  mdht_notify_free(&n);
  mdht_loop_free(&l);
  fake_close(&f);
}

/* Without NOTIFY_SOCKET nothing is sent and no timer is set. */
static void inactive_without_notify_socket(void **state) {
  mdht_loop l;
  mdht_notify n;
  (void)state;
  unsetenv("NOTIFY_SOCKET");
  setenv("WATCHDOG_USEC", "20000", 1);
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_notify_init(&n, &l, status_of, "x");
  assert_false(n.active);
  assert_int_equal(mdht_notify_ready(&n), 0);
  assert_false(mdht_loop_timer_armed(&n.watchdog));
  assert_false(mdht_loop_timer_armed(&n.status));
  mdht_notify_stopping(&n);
  mdht_loop_free(&l);
  unsetenv("WATCHDOG_USEC");
}

/* A socket nobody listens on: ready says so, nothing crashes. */
static void ready_reports_a_dead_socket(void **state) {
  mdht_loop l;
  mdht_notify n;
  (void)state;
  setenv("NOTIFY_SOCKET", "/nonexistent/mdht-notify", 1);
  assert_int_equal(mdht_loop_init(&l), 0);
  mdht_notify_init(&n, &l, NULL, NULL);
  assert_true(mdht_notify_ready(&n) < 0);
  mdht_notify_free(&n);
  mdht_loop_free(&l);
  unsetenv("NOTIFY_SOCKET");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(watchdog_interval_is_half),
      cmocka_unit_test(status_text_says_address_and_counts),
      cmocka_unit_test(ready_pings_and_stopping),
      cmocka_unit_test(watchdog_of_another_pid_is_ignored),
      cmocka_unit_test(inactive_without_notify_socket),
      cmocka_unit_test(ready_reports_a_dead_socket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
