/* The state directory: crash-safe writes, bounded reads, bad files set
 * aside with one warning, the lock, and kill -9 in the middle of writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "id.h"
#include "node.h"
#include "persist.h"
#include "state.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

typedef struct tdir {
  char path[256];
  int fd;
} tdir;

static void rm_rf(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      char sub[512];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        rm_rf(sub);
      else
        unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

static int setup(void **state) {
  tdir *t = calloc(1, sizeof *t);
  const char *base = getenv("TMPDIR");
  snprintf(t->path, sizeof t->path, "%s/mdht-persist-XXXXXX",
           base && *base ? base : "/tmp");
  assert_non_null(mkdtemp(t->path));
  t->fd = open(t->path, O_RDONLY | O_DIRECTORY);
  assert_true(t->fd >= 0);
  *state = t;
  return 0;
}

static int teardown(void **state) {
  tdir *t = *state;
  close(t->fd);
  rm_rf(t->path);
  free(t);
  return 0;
}

static bool exists(int dirfd, const char *name) {
  struct stat st;
  return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void write_raw(int dirfd, const char *name, const void *p, size_t n) {
  int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, p, n), (ssize_t)n);
  close(fd);
}

/* A log written to memory, to count the warnings. */
typedef struct logcap {
  char *buf;
  size_t len;
  FILE *f;
  mdht_logforge lf;
} logcap;

static void log_open(logcap *l) {
  memset(l, 0, sizeof *l);
  l->f = open_memstream(&l->buf, &l->len);
  assert_non_null(l->f);
  mdht_logforge_init(&l->lf, l->f, MDHT_LOG_DEBUG, MDHT_LOG_TEXT);
}

static int log_count(logcap *l, const char *needle) {
  fflush(l->f);
  int n = 0;
  for (const char *p = l->buf; p && (p = strstr(p, needle)); p++)
    n++;
  return n;
}

static void log_close(logcap *l) {
  fclose(l->f);
  free(l->buf);
}

static uint64_t seed = 5;

/* The high-level calls read the driver's clocks, so the nodes here live
 * on real monotonic time. */
static mdht_node *new_node(const mdht_id *id) {
  mdht_node *n;
  mdht_callbacks cb = {.random = test_random, .user = &seed};
  mdht_addr bound = test_addr4(1, 2, 3, 4, 6881);
  assert_int_equal(mdht_node_new(&n, NULL, &cb, id, &bound, mdht_driver_now()),
                   0);
  return n;
}

/* A node with `n` good nodes and a peer, for real state files. */
static mdht_node *populated(uint32_t n) {
  mdht_id self = test_id(0x5a);
  mdht_node *node = new_node(&self);
  mdht_time now = mdht_driver_now();
  uint64_t s = 77;
  for (uint32_t i = 0; i < n; i++) {
    mdht_id id;
    test_random(id.b, sizeof id.b, &s);
    mdht_addr a = test_addr4(8, 8, (uint8_t)(i >> 8), (uint8_t)i, 4000);
    mdht_rtable_heard(&node->rt, &id, &a, MDHT_RT_HEARD_REPLY, now, NULL);
  }
  mdht_id ih = test_id(0xee);
  mdht_addr p = test_addr4(9, 9, 9, 9, 9999);
  assert_int_equal(mdht_peers_add(&node->peers, &ih, &p, false, now), 0);
  return node;
}

/* ---------------------------------------------------------- low level */

static void test_mkdirs(void **state) {
  tdir *t = *state;
  char p[512];
  snprintf(p, sizeof p, "%s/a/b//c/", t->path);
  assert_int_equal(mdht_persist_mkdirs(p, 0700), 0);
  snprintf(p, sizeof p, "%s/a/b/c", t->path);
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(mdht_persist_mkdirs(p, 0700), 0); /* exists: fine */

  write_raw(t->fd, "file", "x", 1);
  snprintf(p, sizeof p, "%s/file/sub", t->path);
  assert_int_equal(mdht_persist_mkdirs(p, 0700), -ENOTDIR);
  snprintf(p, sizeof p, "%s/file", t->path);
  assert_int_equal(mdht_persist_mkdirs(p, 0700), -ENOTDIR);
  assert_int_equal(mdht_persist_mkdirs("", 0700), -ENOENT);
}

static void test_write_read(void **state) {
  tdir *t = *state;
  uint8_t *buf;
  size_t len;
  const uint8_t a[] = "first version";
  const uint8_t b[] = "second, longer version of the file";

  assert_int_equal(mdht_persist_write_atomic(t->fd, "f", a, sizeof a), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "f", 1000, &buf, &len), 0);
  assert_int_equal(len, sizeof a);
  assert_memory_equal(buf, a, sizeof a);
  free(buf);
  assert_false(exists(t->fd, "f.tmp"));

  assert_int_equal(mdht_persist_write_atomic(t->fd, "f", b, sizeof b), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "f", 1000, &buf, &len), 0);
  assert_int_equal(len, sizeof b);
  assert_memory_equal(buf, b, sizeof b);
  free(buf);
  struct stat st;
  assert_int_equal(fstatat(t->fd, "f", &st, 0), 0);
  assert_int_equal(st.st_mode & 0777, 0600);

  /* A stale temp file from a crash is simply overwritten. */
  write_raw(t->fd, "f.tmp", "junk junk junk junk junk junk junk junk", 40);
  assert_int_equal(mdht_persist_write_atomic(t->fd, "f", a, sizeof a), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "f", 1000, &buf, &len), 0);
  assert_int_equal(len, sizeof a);
  free(buf);
  assert_false(exists(t->fd, "f.tmp"));

  /* A failed write leaves the old file and no temp: here the rename
   * fails because the target is a non-empty directory. */
  assert_int_equal(mkdirat(t->fd, "d", 0700), 0);
  write_raw(t->fd, "d/x", "x", 1);
  assert_true(mdht_persist_write_atomic(t->fd, "d", b, sizeof b) < 0);
  assert_false(exists(t->fd, "d.tmp"));
  unlinkat(t->fd, "d/x", 0);
  unlinkat(t->fd, "d", AT_REMOVEDIR);

  /* empty content */
  assert_int_equal(mdht_persist_write_atomic(t->fd, "e", a, 0), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "e", 1000, &buf, &len), 0);
  assert_non_null(buf);
  assert_int_equal(len, 0);
  free(buf);
}

static void test_read_errors(void **state) {
  tdir *t = *state;
  uint8_t *buf = (uint8_t *)"x";
  size_t len = 7;
  assert_int_equal(mdht_persist_read_file(t->fd, "none", 1000, &buf, &len),
                   -ENOENT);
  assert_null(buf);
  assert_int_equal(len, 0);
  write_raw(t->fd, "big", "0123456789", 10);
  assert_int_equal(mdht_persist_read_file(t->fd, "big", 9, &buf, &len), -EFBIG);
  assert_int_equal(mdht_persist_read_file(t->fd, "big", 10, &buf, &len), 0);
  free(buf);
  assert_int_equal(mkdirat(t->fd, "dir", 0700), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "dir", 10, &buf, &len),
                   -EINVAL);
  /* a symlink is not followed: the state file is ours, not a pointer */
  assert_int_equal(symlinkat("big", t->fd, "link"), 0);
  assert_int_equal(mdht_persist_read_file(t->fd, "link", 10, &buf, &len),
                   -ELOOP);
}

static void test_set_aside(void **state) {
  tdir *t = *state;
  uint8_t *buf;
  size_t len;
  write_raw(t->fd, "state", "old bad", 7);
  assert_int_equal(mdht_persist_set_aside(t->fd, "state"), 0);
  assert_false(exists(t->fd, "state"));
  write_raw(t->fd, "state", "new bad", 7);
  assert_int_equal(mdht_persist_set_aside(t->fd, "state"), 0);
  assert_int_equal(
      mdht_persist_read_file(t->fd, "state.corrupt", 100, &buf, &len), 0);
  assert_memory_equal(buf, "new bad", 7); /* the latest is kept */
  free(buf);
  assert_int_equal(mdht_persist_set_aside(t->fd, "state"), -ENOENT);
}

static void test_lock(void **state) {
  tdir *t = *state;
  int a, b;
  long holder;
  assert_int_equal(mdht_persist_lock(t->fd, &a, &holder), 0);
  assert_true(a >= 0);
  assert_true(fcntl(a, F_GETFD) & FD_CLOEXEC);
  /* flock conflicts between open file descriptions, even in one
   * process: this is what a second node would see */
  assert_int_equal(mdht_persist_lock(t->fd, &b, &holder), -EWOULDBLOCK);
  assert_int_equal(b, -1);
  assert_int_equal(holder, (long)getpid());

  /* in another process too */
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int c;
    long h;
    _exit(mdht_persist_lock(t->fd, &c, &h) == -EWOULDBLOCK &&
                  h == (long)getppid()
              ? 0
              : 1);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  close(a); /* released */
  assert_int_equal(mdht_persist_lock(t->fd, &b, &holder), 0);
  close(b);
}

static void test_parse_seconds(void **state) {
  (void)state;
  static const struct {
    const char *s;
    int rc;
    mdht_time ms;
  } cases[] = {
      {"300", 0, 300000},
      {"0", 0, 0},
      {"0.05", 0, 50},
      {"1.5", 0, 1500},
      {"2.125", 0, 2125},
      {"0.001", 0, 1},
      {"00.10", 0, 100},
      {"4000000000", 0, 4000000000000ull},
      {"", MDHT_ERR_INVAL, 0},
      {".5", MDHT_ERR_INVAL, 0},
      {"1.", MDHT_ERR_INVAL, 0},
      {"0.0001", MDHT_ERR_INVAL, 0},
      {"-1", MDHT_ERR_INVAL, 0},
      {"+1", MDHT_ERR_INVAL, 0},
      {"1e3", MDHT_ERR_INVAL, 0},
      {" 1", MDHT_ERR_INVAL, 0},
      {"1 ", MDHT_ERR_INVAL, 0},
      {"4000000001", MDHT_ERR_INVAL, 0},
      {"99999999999999999999999", MDHT_ERR_INVAL, 0},
      {"0.000", 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mdht_time ms = 12345;
    int rc = mdht_persist_parse_seconds(cases[i].s, &ms);
    assert_int_equal(rc, cases[i].rc);
    if (rc == 0) assert_int_equal(ms, cases[i].ms);
  }
}

static void test_default_dir(void **state) {
  (void)state;
  char buf[256];
  char *old_xdg =
      getenv("XDG_STATE_HOME") ? strdup(getenv("XDG_STATE_HOME")) : NULL;
  char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("XDG_STATE_HOME", "/x/state", 1);
  setenv("HOME", "/home/u", 1);
  assert_int_equal(mdht_persist_default_dir(buf, sizeof buf), 0);
  assert_string_equal(buf, "/x/state/mdht");
  setenv("XDG_STATE_HOME", "relative", 1); /* XDG: ignore */
  assert_int_equal(mdht_persist_default_dir(buf, sizeof buf), 0);
  assert_string_equal(buf, "/home/u/.local/state/mdht");
  unsetenv("XDG_STATE_HOME");
  assert_int_equal(mdht_persist_default_dir(buf, sizeof buf), 0);
  assert_string_equal(buf, "/home/u/.local/state/mdht");
  assert_int_equal(mdht_persist_default_dir(buf, 10), -ENAMETOOLONG);
  unsetenv("HOME");
  assert_int_equal(mdht_persist_default_dir(buf, sizeof buf), -ENOENT);
  if (old_xdg) setenv("XDG_STATE_HOME", old_xdg, 1);
  if (old_home) setenv("HOME", old_home, 1);
  free(old_xdg);
  free(old_home);
}

/* --------------------------------------------------------- high level */

static void test_open_save_read_restore(void **state) {
  tdir *t = *state;
  logcap log;
  log_open(&log);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/new/state", t->path);

  mdht_persist p;
  assert_int_equal(mdht_persist_open(&p, dir, &log.lf), 0);
  struct stat st;
  assert_int_equal(stat(dir, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  uint8_t *buf;
  size_t len;
  assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), 0);
  assert_null(buf);
  /* quiet: said at attach, once the node is up */
  assert_int_equal(log_count(&log, "no saved state"), 0);

  mdht_node *a = populated(40);
  assert_int_equal(mdht_persist_save(&p, a), 0);
  assert_int_equal(p.saves, 1);
  assert_true(exists(p.dirfd, "state"));
  assert_false(exists(p.dirfd, "state.tmp"));
  mdht_persist_close(&p);
  mdht_persist_close(&p); /* twice is fine */

  /* a crash left a temp file: open removes it */
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  write_raw(dfd, "state.tmp", "half", 4);
  assert_int_equal(mdht_persist_open(&p, dir, &log.lf), 0);
  assert_false(exists(dfd, "state.tmp"));
  close(dfd);

  mdht_state_info info;
  assert_int_equal(mdht_persist_read(&p, &buf, &len, &info), 1);
  assert_non_null(buf);
  mdht_id id;
  assert_int_equal(mdht_state_peek_id(buf, len, &id), 0);
  assert_true(mdht_id_eq(&id, mdht_node_id(a)));
  uint32_t total, repl;
  mdht_rtable_counts(&a->rt, mdht_driver_now(), NULL, NULL, &total, &repl);
  assert_int_equal(info.nodes, total);
  assert_int_equal(info.replacements, repl);
  assert_int_equal(info.peers, 1);

  mdht_node *b = new_node(&id);
  assert_int_equal(mdht_persist_restore(&p, b, buf, len, &info), 0);
  assert_int_equal(info.nodes + info.replacements, total + repl);
  assert_int_equal(mdht_state_pending(b), total + repl);
  assert_int_equal(log_count(&log, "state loaded from"), 1);
  assert_int_equal(log_count(&log, " warn "), 0);
  free(buf);
  mdht_persist_close(&p);
  mdht_node_del(a);
  mdht_node_del(b);
  log_close(&log);
}

/* Each bad file: one warning, set aside as state.corrupt byte for byte,
 * fresh start; the next start finds no file and says so quietly. */
static void test_bad_files_set_aside(void **state) {
  tdir *t = *state;
  mdht_node *a = populated(10);
  uint8_t *good;
  size_t glen;
  assert_int_equal(mdht_state_save(a, mdht_driver_now(), 1, &good, &glen, NULL),
                   0);
  mdht_node_del(a);

  uint8_t bad[4096];
  for (int k = 0; k < 6; k++) {
    size_t n = glen;
    const char *expect;
    memcpy(bad, good, glen);
    switch (k) {
    case 0:
      n = glen / 2;
      expect = "truncated";
      break;
    case 1:
      bad[glen / 2] ^= 0x10;
      expect = "checksum mismatch";
      break;
    case 2:
      n = 0;
      expect = "empty file";
      break;
    case 3:
      memcpy(bad, "GIF89a", 6);
      expect = "not a mdht state file";
      break;
    case 4:
      bad[10] = 9;
      expect = "format version 9, this mdht reads version 1";
      break;
    default:
      n = glen - 1;
      expect = "truncated";
      break;
    }
    logcap log;
    log_open(&log);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/s%d", t->path, k);
    mdht_persist p;
    assert_int_equal(mdht_persist_open(&p, dir, &log.lf), 0);
    write_raw(p.dirfd, "state", bad, n);
    uint8_t *buf = (uint8_t *)"x";
    size_t len;
    assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), 0);
    assert_null(buf);
    assert_int_equal(log_count(&log, " warn "), 1);
    assert_int_equal(log_count(&log, expect), 1);
    assert_int_equal(log_count(&log, "state.corrupt"), 1);
    assert_false(exists(p.dirfd, "state"));
    uint8_t *kept;
    size_t klen;
    assert_int_equal(
        mdht_persist_read_file(p.dirfd, "state.corrupt", 8192, &kept, &klen),
        0);
    assert_int_equal(klen, n);
    if (n) assert_memory_equal(kept, bad, n);
    free(kept);
    /* the next read: no file, no warning */
    assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), 0);
    assert_int_equal(log_count(&log, " warn "), 1);
    mdht_persist_close(&p);
    log_close(&log);
  }
  free(good);
}

static void test_second_open_locked(void **state) {
  tdir *t = *state;
  logcap log;
  log_open(&log);
  mdht_persist p1, p2;
  assert_int_equal(mdht_persist_open(&p1, t->path, &log.lf), 0);
  assert_int_equal(mdht_persist_open(&p2, t->path, &log.lf), -EWOULDBLOCK);
  char pid[64];
  snprintf(pid, sizeof pid, "in use by another mdht (pid %ld)", (long)getpid());
  assert_int_equal(log_count(&log, pid), 1);
  mdht_persist_close(&p2);
  mdht_persist_close(&p1);
  assert_int_equal(mdht_persist_open(&p2, t->path, &log.lf), 0);
  mdht_persist_close(&p2);
  log_close(&log);
}

/* A failing save keeps the old file and warns once per distinct error. */
static void test_save_failure(void **state) {
  tdir *t = *state;
  logcap log;
  log_open(&log);
  mdht_persist p;
  assert_int_equal(mdht_persist_open(&p, t->path, &log.lf), 0);
  mdht_node *a = populated(5);
  assert_int_equal(mdht_persist_save(&p, a), 0);
  /* a directory where the temp file goes makes every write fail */
  assert_int_equal(mkdirat(p.dirfd, "state.tmp", 0700), 0);
  assert_int_equal(mdht_persist_save(&p, a), -EISDIR);
  assert_int_equal(mdht_persist_save(&p, a), -EISDIR);
  assert_int_equal(p.save_failures, 2);
  assert_int_equal(log_count(&log, "cannot save state"), 1);
  /* One error domain: the errno is named as such, and a serializing
   * error (an MDHT_ERR_*) is told apart from it as another error. */
  assert_int_equal(log_count(&log, strerror(EISDIR)), 1);
  assert_int_equal(mdht_persist_save(&p, NULL), MDHT_ERR_INVAL);
  assert_int_equal(log_count(&log, "cannot save state"), 2);
  assert_int_equal(log_count(&log, "invalid argument"), 1);
  assert_int_equal(mdht_persist_save(&p, a), -EISDIR);
  assert_int_equal(log_count(&log, "cannot save state"), 3);
  uint8_t *buf;
  size_t len;
  assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), 1);
  free(buf);
  unlinkat(p.dirfd, "state.tmp", AT_REMOVEDIR);
  assert_int_equal(mdht_persist_save(&p, a), 0);
  assert_int_equal(log_count(&log, "state saved again"), 1);
  mdht_persist_close(&p);
  mdht_node_del(a);
  log_close(&log);
}

/* What another local user could prepare is refused with -EPERM and one
 * reason, and nothing in it is read or written through. */
static void test_refuse_unsafe(void **state) {
  tdir *t = *state;
  logcap log;
  log_open(&log);
  mdht_persist p;
  char d[512], f[600], other[600];
  uint8_t *buf;
  size_t len;

  /* a 0777 directory */
  snprintf(d, sizeof d, "%s/world", t->path);
  assert_int_equal(mkdir(d, 0700), 0);
  assert_int_equal(chmod(d, 0777), 0);
  assert_int_equal(mdht_persist_open(&p, d, &log.lf), -EPERM);
  assert_non_null(strstr(p.why, "writable by group or others (mode 0777)"));
  mdht_persist_close(&p);
  assert_int_equal(chmod(d, 0755), 0); /* only writable matters */
  assert_int_equal(mdht_persist_open(&p, d, &log.lf), 0);
  mdht_persist_close(&p);

  /* a symlink to a good directory */
  snprintf(f, sizeof f, "%s/link", t->path);
  assert_int_equal(symlink(d, f), 0);
  assert_int_equal(mdht_persist_open(&p, f, &log.lf), -EPERM);
  assert_non_null(strstr(p.why, "is a symbolic link"));
  mdht_persist_close(&p);

  /* another user's directory (root can give it away) */
  if (geteuid() == 0) {
    snprintf(f, sizeof f, "%s/foreign", t->path);
    assert_int_equal(mkdir(f, 0700), 0);
    assert_int_equal(chown(f, 65534, 65534), 0);
    assert_int_equal(mdht_persist_open(&p, f, &log.lf), -EPERM);
    assert_non_null(strstr(p.why, "owned by uid 65534"));
    mdht_persist_close(&p);
  }

  /* in a good directory: a symlinked state file, then a group-writable
   * one; neither is read nor set aside */
  snprintf(d, sizeof d, "%s/good", t->path);
  assert_int_equal(mdht_persist_open(&p, d, &log.lf), 0);
  snprintf(other, sizeof other, "%s/elsewhere", t->path);
  int ofd = open(other, O_WRONLY | O_CREAT, 0600);
  assert_true(ofd >= 0);
  close(ofd);
  assert_int_equal(symlinkat(other, p.dirfd, "state"), 0);
  assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), -EPERM);
  assert_non_null(strstr(p.why, "state file"));
  assert_non_null(strstr(p.why, "is a symbolic link"));
  assert_true(exists(p.dirfd, "state"));
  assert_false(exists(p.dirfd, "state.corrupt"));
  assert_int_equal(unlinkat(p.dirfd, "state", 0), 0);
  write_raw(p.dirfd, "state", "x", 1);
  assert_int_equal(fchmodat(p.dirfd, "state", 0620, 0), 0);
  assert_int_equal(mdht_persist_read(&p, &buf, &len, NULL), -EPERM);
  assert_non_null(strstr(p.why, "(mode 0620)"));
  assert_int_equal(unlinkat(p.dirfd, "state", 0), 0);

  /* a link planted as the temp file is replaced, not written through */
  assert_int_equal(symlinkat(other, p.dirfd, "state.tmp"), 0);
  mdht_node *a = populated(3);
  assert_int_equal(mdht_persist_save(&p, a), 0);
  struct stat st;
  assert_int_equal(stat(other, &st), 0);
  assert_int_equal(st.st_size, 0);
  assert_int_equal(fstatat(p.dirfd, "state", &st, AT_SYMLINK_NOFOLLOW), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_int_equal(st.st_mode & 0777, 0600);
  mdht_node_del(a);
  mdht_persist_close(&p);

  /* a symlinked lock file */
  snprintf(d, sizeof d, "%s/lk", t->path);
  assert_int_equal(mkdir(d, 0700), 0);
  snprintf(f, sizeof f, "%s/lock", d);
  assert_int_equal(symlink(other, f), 0);
  assert_int_equal(mdht_persist_open(&p, d, &log.lf), -EPERM);
  assert_non_null(strstr(p.why, "lock file"));
  mdht_persist_close(&p);
  /* none of it was logged: the program prints p.why */
  assert_int_equal(log_count(&log, "refused"), 0);
  log_close(&log);
}

/* kill -9 at random moments while a child rewrites the state file as
 * fast as it can: the file always loads, whole, old or new. */
static void test_kill9_during_writes(void **state) {
  tdir *t = *state;
  enum { VERSIONS = 4, ROUNDS = 200 };
  uint8_t *v[VERSIONS];
  size_t vlen[VERSIONS];
  for (int i = 0; i < VERSIONS; i++) {
    mdht_node *n = populated(20 + 60 * (uint32_t)i); /* different sizes */
    assert_int_equal(mdht_state_save(n, mdht_driver_now(), (uint64_t)i, &v[i],
                                     &vlen[i], NULL),
                     0);
    mdht_node_del(n);
  }
  assert_int_equal(mdht_persist_write_atomic(t->fd, "state", v[0], vlen[0]), 0);
  srand(12345);
  int writes_seen[VERSIONS] = {0};
  for (int r = 0; r < ROUNDS; r++) {
    /* The writer says when its first write is complete, and the kill
     * lands at a random moment after that: on a loaded machine a kill
     * timed from the fork alone could always land before any write
     * finished, and every round would see the same file. */
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(ready[0]);
      for (unsigned i = 1 + (unsigned)r % (VERSIONS - 1);; i++) {
        mdht_persist_write_atomic(t->fd, "state", v[i % VERSIONS],
                                  vlen[i % VERSIONS]);
        if (ready[1] >= 0) {
          (void)!write(ready[1], "w", 1);
          close(ready[1]);
          ready[1] = -1;
        }
      }
    }
    close(ready[1]);
    char c;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct timespec ts = {0, (long)(rand() % 3000) * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    uint8_t *buf;
    size_t len;
    assert_int_equal(
        mdht_persist_read_file(t->fd, "state", MDHT_STATE_MAX_SIZE, &buf, &len),
        0);
    mdht_state_info info;
    assert_int_equal(mdht_state_check(buf, len, &info), 0);
    int which = -1;
    for (int i = 0; i < VERSIONS; i++)
      if (len == vlen[i] && memcmp(buf, v[i], len) == 0) which = i;
    assert_true(which >= 0);
    writes_seen[which]++;
    free(buf);
  }
  /* the kills did land at different moments */
  int distinct = 0;
  for (int i = 0; i < VERSIONS; i++)
    distinct += writes_seen[i] > 0;
  assert_true(distinct >= 2);
  for (int i = 0; i < VERSIONS; i++)
    free(v[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_mkdirs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_set_aside, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
      cmocka_unit_test(test_parse_seconds),
      cmocka_unit_test(test_default_dir),
      cmocka_unit_test_setup_teardown(test_open_save_read_restore, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bad_files_set_aside, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_second_open_locked, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refuse_unsafe, setup, teardown),
      cmocka_unit_test_setup_teardown(test_kill9_during_writes, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
