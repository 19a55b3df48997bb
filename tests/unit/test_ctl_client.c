/* The control client (ctl_client.c): reading and escaping an answer,
 * refusing a listener of another uid, and the call's deadline, signals
 * and answers, on its loop. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl_client.h"
#include "testutil.h"

#define HEX1 "0123456789abcdef0123456789abcdef01234567"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

typedef struct capture {
  char *out, *prog;
  size_t outlen, proglen;
  FILE *fout, *fprog;
} capture;

static void cap_open(capture *c) {
  memset(c, 0, sizeof *c);
  c->fout = open_memstream(&c->out, &c->outlen);
  c->fprog = open_memstream(&c->prog, &c->proglen);
  assert_non_null(c->fout);
  assert_non_null(c->fprog);
}

static void cap_close(capture *c) {
  fclose(c->fout);
  fclose(c->fprog);
  free(c->out);
  free(c->prog);
}

static void test_reader(void **state) {
  static const char resp[] = "10.0.0.1:1\n"
                             "\x01round 1\n"
                             "10.0.0.2:2\n"
                             "\0exit 1 no peers found\n"
                             "ignored after the status";
  mdht_ctl_reader rd;
  capture c;
  (void)state;

  /* Byte by byte: framing must not depend on how the stream is cut. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  int rc = 0;
  size_t i;
  for (i = 0; i < sizeof resp - 1 && rc == 0; i++)
    rc = mdht_ctl_reader_feed(&rd, resp + i, 1, c.fout, c.fprog);
  assert_int_equal(rc, 1);
  assert_int_equal(i, strlen("10.0.0.1:1\n\x01round 1\n10.0.0.2:2\n") + 1 +
                          strlen("exit 1 no peers found\n"));
  fflush(c.fout);
  fflush(c.fprog);
  assert_string_equal(c.out, "10.0.0.1:1\n10.0.0.2:2\n");
  assert_string_equal(c.prog, "round 1\n");
  assert_int_equal(rd.code, 1);
  assert_string_equal(rd.msg, "no peers found");
  cap_close(&c);

  /* All at once, progress dropped. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  assert_int_equal(
      mdht_ctl_reader_feed(&rd, resp, sizeof resp - 1, c.fout, NULL), 1);
  fflush(c.fout);
  assert_string_equal(c.out, "10.0.0.1:1\n10.0.0.2:2\n");
  cap_close(&c);

  /* A long output line passes whole; status without message. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  char *big = malloc(20002);
  memset(big, 'x', 20000);
  big[20000] = '\n';
  assert_int_equal(mdht_ctl_reader_feed(&rd, big, 20001, c.fout, NULL), 0);
  assert_int_equal(mdht_ctl_reader_feed(&rd, "\0exit 0\n", 8, c.fout, NULL), 1);
  fflush(c.fout);
  assert_int_equal(c.outlen, 20001);
  assert_int_equal(rd.code, 0);
  assert_string_equal(rd.msg, "");
  free(big);
  cap_close(&c);

  /* Garbled status lines. */
  static const char *const bad[] = {"\0exit\n",    "\0exit x\n",   "\0ok 0\n",
                                    "\0exit 1x\n", "\0exit 300\n", "\0\n"};
  static const size_t badlen[] = {6, 8, 6, 9, 10, 2};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mdht_ctl_reader_init(&rd);
    assert_int_equal(mdht_ctl_reader_feed(&rd, bad[k], badlen[k], NULL, NULL),
                     MDHT_ERR_PROTO);
  }
}

/* Bytes from the socket reach the terminal only as printable ASCII. */
static void test_escape_reader(void **state) {
  (void)state;
  static const char resp[] = "1.2.3.4:5 \x1b]0;t\x07\n"
                             "\x01r\x1b[1m\n"
                             "\x1b[2J\xc2\x9b\n"
                             "\0exit 1 no\x1b[31m \r\n";
  for (int json = 0; json < 2; json++) {
    mdht_ctl_reader rd;
    capture c;
    cap_open(&c);
    mdht_ctl_reader_init(&rd);
    rd.json = json;
    for (size_t i = 0; i < sizeof resp - 1; i++)
      if (mdht_ctl_reader_feed(&rd, resp + i, 1, c.fout, c.fprog) == 1) break;
    fflush(c.fout);
    fflush(c.fprog);
    assert_string_equal(c.out, json ? "1.2.3.4:5 \\u001b]0;t\\u0007\n"
                                      "\\u001b[2J\\u00c2\\u009b\n"
                                    : "1.2.3.4:5 \\x1b]0;t\\x07\n"
                                      "\\x1b[2J\\xc2\\x9b\n");
    assert_string_equal(c.prog, "r\\x1b[1m\n");
    assert_string_equal(rd.msg, "no\\x1b[31m \\x0d");
    assert_int_equal(rd.code, 1);
    cap_close(&c);
  }
}

/* A listener of another uid is refused before anything is sent. */
static void test_call_foreign_listener(void **state) {
  (void)state;
  if (geteuid() != 0) {
    /* Giving a socket to another uid needs root; CI runs as root. */
    fail_msg("test_call_foreign_listener needs root");
  }
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  assert_non_null(mkdtemp(dir));
  assert_int_equal(chmod(dir, 01777), 0);
  snprintf(path, sizeof path, "%s/s", dir);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(sa.sun_path, path);
    if (setgid(65534) < 0 || setuid(65534) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
      _exit(1);
    if (write(pipefd[1], "x", 1) != 1) _exit(1);
    int c = accept(fd, NULL, NULL);
    char b[64];
    ssize_t n = c >= 0 ? read(c, b, sizeof b) : -1;
    _exit(n > 0 ? 3 : 0); /* 3: the client sent its request */
  }
  char x;
  assert_int_equal(read(pipefd[0], &x, 1), 1);
  FILE *out = tmpfile();
  int code = mdht_ctl_call(path, "stats\n", 5000, out, NULL, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_ERROR);
  assert_non_null(strstr(msg, "runs as uid 65534"));
  assert_int_equal(ftell(out), 0);
  fclose(out);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(pipefd[0]);
  close(pipefd[1]);
  unlink(path);
  rmdir(dir);
}

/* A listener on a fresh path in `dir` (mkdtemp template), with `backlog`.
 * Returns its fd; `path` gets the socket's path. */
static int listener(char *dir, char *path, size_t cap, int backlog) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  assert_non_null(mkdtemp(dir));
  snprintf(path, cap, "%s/s", dir);
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(fd, backlog), 0);
  return fd;
}

static void listener_close(int fd, const char *dir, const char *path) {
  close(fd);
  unlink(path);
  rmdir(dir);
}

static mdht_time ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (mdht_time)((t.tv_sec - t0->tv_sec) * 1000 +
                     (t.tv_nsec - t0->tv_nsec) / 1000000);
}

/* A node that takes the connection and never answers costs the timeout,
 * then a line saying so. */
static void test_call_no_answer(void **state) {
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  struct timespec t0;
  (void)state;
  int fd = listener(dir, path, sizeof path, 4);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int code = mdht_ctl_call(path, "stats\n", 300, NULL, NULL, msg, sizeof msg);
  mdht_time took = ms_since(&t0);
  assert_int_equal(code, MDHT_CTL_EXIT_ERROR);
  assert_non_null(strstr(msg, "no answer from the node on"));
  assert_non_null(strstr(msg, "within 1 s"));
  assert_true(took >= 299 && took < 3000 /* truncation, as below */);
  /* The request was sent whole before the wait. */
  int c = accept(fd, NULL, NULL);
  char b[16];
  assert_true(c >= 0);
  assert_int_equal(read(c, b, sizeof b), 6);
  assert_memory_equal(b, "stats\n", 6);
  close(c);
  listener_close(fd, dir, path);
}

/* A full backlog gives no event: connect is tried again until the
 * deadline, which then says the node accepts nothing. */
static void test_call_backlog_full(void **state) {
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct timespec t0;
  int filler[4], nfill = 0;
  (void)state;
  int fd = listener(dir, path, sizeof path, 0);
  strcpy(sa.sun_path, path);
  /* Fill the backlog until the kernel refuses with EAGAIN. */
  for (; nfill < 4; nfill++) {
    filler[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (connect(filler[nfill], (struct sockaddr *)&sa, sizeof sa) < 0) {
      assert_int_equal(errno, EAGAIN);
      break;
    }
  }
  assert_true(nfill < 4);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int code = mdht_ctl_call(path, "stats\n", 300, NULL, NULL, msg, sizeof msg);
  mdht_time took = ms_since(&t0);
  assert_int_equal(code, MDHT_CTL_EXIT_ERROR);
  assert_non_null(strstr(msg, "accepts no connection within 1 s"));
  /* The loop's clock and ms_since both truncate to whole milliseconds:
   * a deadline met to the microsecond can read as 299. */
  assert_true(took >= 299 && took < 3000);
  for (int i = 0; i <= nfill; i++)
    close(filler[i]);
  listener_close(fd, dir, path);
}

/* SIGINT ends a call that waits, as it ends the short-lived node's:
 * exit 130 (as a shell reports Ctrl-C), "interrupted", instead of dying of
 * the signal. */
static void test_call_sigint(void **state) {
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  sigset_t one, old;
  struct timespec t0;
  (void)state;
  int fd = listener(dir, path, sizeof path, 4);
  /* Blocked here already, so that a signal sent before the call takes it
   * waits for it instead of ending the test. */
  sigemptyset(&one);
  sigaddset(&one, SIGINT);
  assert_int_equal(sigprocmask(SIG_BLOCK, &one, &old), 0);
  assert_int_equal(kill(getpid(), SIGINT), 0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int code = mdht_ctl_call(path, "stats\n", 5000, NULL, NULL, msg, sizeof msg);
  assert_int_equal(code, 130);
  assert_string_equal(msg, "interrupted");
  assert_true(ms_since(&t0) < 4000);
  /* Taken by the call: none is left pending. */
  sigset_t pending;
  assert_int_equal(sigpending(&pending), 0);
  assert_false(sigismember(&pending, SIGINT));
  assert_int_equal(sigprocmask(SIG_SETMASK, &old, NULL), 0);
  listener_close(fd, dir, path);
}

/* An answer cut in pieces, with a pause, is printed whole and escaped; its
 * status is the exit status. */
static void test_call_answer(void **state) {
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  (void)state;
  int fd = listener(dir, path, sizeof path, 4);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int c = accept(fd, NULL, NULL);
    char b[64];
    if (c < 0 || read(c, b, sizeof b) != 6) _exit(1);
    if (write(c, "10.0.0.1:1\n10.0", 15) != 15) _exit(1);
    usleep(100 * 1000);
    if (write(c, ".0.2:2\x1b\n\0exit 1 none\n", 22) != 22) _exit(1);
    _exit(0);
  }
  capture c;
  cap_open(&c);
  int code =
      mdht_ctl_call(path, "stats\n", 5000, c.fout, c.fprog, msg, sizeof msg);
  fflush(c.fout);
  assert_int_equal(code, 1);
  assert_string_equal(msg, "none");
  assert_string_equal(c.out, "10.0.0.1:1\n10.0.0.2:2\\x1b\n");
  cap_close(&c);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  listener_close(fd, dir, path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reader),
      cmocka_unit_test(test_escape_reader),
      cmocka_unit_test(test_call_foreign_listener),
      cmocka_unit_test(test_call_no_answer),
      cmocka_unit_test(test_call_backlog_full),
      cmocka_unit_test(test_call_sigint),
      cmocka_unit_test(test_call_answer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
