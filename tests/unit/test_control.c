/* The control server (control.c): how it takes its socket's path. The
 * serving itself (clients, deadlines, budgets) is tested on the real
 * binary: tests/integration/test_control.py and
 * tests/adversarial/test_local_control.py. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "testutil.h"

typedef struct tmp {
  char dir[32], path[64];
} tmp;

static void tmp_open(tmp *t) {
  strcpy(t->dir, "/tmp/mdht-srv-XXXXXX");
  assert_non_null(mkdtemp(t->dir));
  snprintf(t->path, sizeof t->path, "%s/s", t->dir);
}

static void tmp_close(tmp *t) {
  unlink(t->path);
  assert_int_equal(rmdir(t->dir), 0);
}

/* The socket is 0600 from the start, a second node on the same path is
 * refused, and closing removes the file. */
static void test_open_private_and_single(void **state) {
  mdht_ctl_server a, b;
  char err[256] = "";
  struct stat st;
  tmp t;
  (void)state;

  tmp_open(&t);
  assert_int_equal(mdht_ctl_server_open(&a, t.path, err, sizeof err), 0);
  assert_int_equal(lstat(t.path, &st), 0);
  assert_true(S_ISSOCK(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(mdht_ctl_server_open(&b, t.path, err, sizeof err),
                   MDHT_ERR_EXISTS);
  assert_non_null(strstr(err, "another node serves"));
  mdht_ctl_server_close(&a);
  assert_int_equal(lstat(t.path, &st), -1);
  tmp_close(&t);
}

/* A socket nobody listens on (a killed node's) is replaced; a file that
 * is not a socket is not touched. */
static void test_open_stale_and_foreign(void **state) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  mdht_ctl_server srv;
  char err[256] = "";
  tmp t;
  int fd;
  (void)state;

  tmp_open(&t);
  strcpy(sa.sun_path, t.path);
  fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  close(fd); /* the file stays, nobody listens */
  assert_int_equal(mdht_ctl_server_open(&srv, t.path, err, sizeof err), 0);
  mdht_ctl_server_close(&srv);

  FILE *f = fopen(t.path, "w");
  assert_non_null(f);
  fclose(f);
  assert_int_equal(mdht_ctl_server_open(&srv, t.path, err, sizeof err),
                   MDHT_ERR_EXISTS);
  assert_non_null(strstr(err, "is not a socket"));
  tmp_close(&t);
}

/* In a directory others may write to, without the sticky bit, another
 * user could swap the socket: refused. With the sticky bit (as /tmp), or
 * a path that does not fit a socket address, as the header says. */
static void test_open_checks_dir_and_path(void **state) {
  mdht_ctl_server srv;
  char err[256] = "", longpath[200];
  tmp t;
  (void)state;

  tmp_open(&t);
  assert_int_equal(chmod(t.dir, 0777), 0);
  assert_int_equal(mdht_ctl_server_open(&srv, t.path, err, sizeof err),
                   MDHT_ERR_EXISTS);
  assert_non_null(strstr(err, "without the sticky bit"));
  assert_int_equal(chmod(t.dir, 01777), 0);
  assert_int_equal(mdht_ctl_server_open(&srv, t.path, err, sizeof err), 0);
  mdht_ctl_server_close(&srv);

  memset(longpath, 'a', sizeof longpath - 1);
  longpath[0] = '/';
  longpath[sizeof longpath - 1] = '\0';
  assert_int_equal(mdht_ctl_server_open(&srv, longpath, err, sizeof err),
                   MDHT_ERR_IO);
  assert_non_null(strstr(err, "too long"));
  tmp_close(&t);
}

/* The default socket path: XDG_RUNTIME_DIR if absolute, else the state
 * directory given, else the default one; none without either. */
static void test_default_path(void **state) {
  char buf[256];
  bool in_state = true;
  (void)state;

  setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
  assert_int_equal(mdht_ctl_default_path(buf, sizeof buf, "/s", &in_state), 0);
  assert_string_equal(buf, "/run/user/7/mdht.sock");
  assert_false(in_state);
  setenv("XDG_RUNTIME_DIR", "relative", 1); /* ignored, as XDG says */
  assert_int_equal(mdht_ctl_default_path(buf, sizeof buf, "/s", &in_state), 0);
  assert_string_equal(buf, "/s/control");
  assert_true(in_state);
  unsetenv("XDG_RUNTIME_DIR");
  setenv("XDG_STATE_HOME", "/st", 1);
  assert_int_equal(mdht_ctl_default_path(buf, sizeof buf, NULL, NULL), 0);
  assert_string_equal(buf, "/st/mdht/control");
  unsetenv("XDG_STATE_HOME");
  unsetenv("HOME");
  assert_int_equal(mdht_ctl_default_path(buf, sizeof buf, NULL, NULL), -ENOENT);
  assert_int_equal(mdht_ctl_default_path(buf, 8, "/a/long/dir", NULL),
                   -ENAMETOOLONG);
  /* Nobody there: not served. */
  assert_false(mdht_ctl_serves("/nonexistent/mdht-test.sock"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_private_and_single),
      cmocka_unit_test(test_open_stale_and_foreign),
      cmocka_unit_test(test_open_checks_dir_and_path),
      cmocka_unit_test(test_default_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
