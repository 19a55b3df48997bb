#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ low level */

static int sibling(char *buf, size_t cap, const char *name, const char *ext) {
  int n = snprintf(buf, cap, "%s%s", name, ext);
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int mdht_persist_mkdirs(const char *path, mode_t mode) {
  char buf[4096];
  size_t n = strlen(path);
  if (n == 0) return -ENOENT;
  if (n >= sizeof buf) return -ENAMETOOLONG;
  memcpy(buf, path, n + 1);
  /* Each prefix ending at a '/', then the whole path. EEXIST is fine as
   * long as it is a directory: another process may be creating the same
   * parents at the same time. */
  for (size_t i = 1; i <= n; i++) {
    if (i < n && buf[i] != '/') continue;
    if (i < n && buf[i - 1] == '/') continue; /* "a//b" */
    char saved = buf[i];
    buf[i] = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST) {
      int err = errno;
      buf[i] = saved;
      return -err;
    }
    if (!is_dir(buf)) return -ENOTDIR;
    buf[i] = saved;
  }
  return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int mdht_persist_write_atomic(int dirfd, const char *name, const uint8_t *buf,
                              size_t len) {
  char tmp[NAME_MAX + 1];
  int rc = sibling(tmp, sizeof tmp, name, ".tmp");
  if (rc < 0) return rc;
  /* A file of our own making, never one found under the name: whatever
   * is there (left by a crash, or planted) goes first, and O_EXCL with
   * O_NOFOLLOW makes the open fail rather than write through a link. */
  if (unlinkat(dirfd, tmp, 0) < 0 && errno != ENOENT) return -errno;
  int fd = openat(dirfd, tmp,
                  O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return -errno;
  rc = write_all(fd, buf, len);
  /* The data must be on disk before the rename makes it the state file,
   * or a crash could leave a renamed but empty file. */
  if (rc == 0 && fsync(fd) < 0) rc = -errno;
  if (close(fd) < 0 && rc == 0) rc = -errno;
  if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0) rc = -errno;
  if (rc < 0) {
    unlinkat(dirfd, tmp, 0);
    return rc;
  }
  /* The rename lives in the directory: sync it, or after a power cut the
   * old name may come back. The new file is whole either way. */
  if (fsync(dirfd) < 0) return -errno;
  return 0;
}

bool mdht_persist_safe(const struct stat *st) {
  return st->st_uid == geteuid() && (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

/* mdht_persist_read_file, with the opened file's stat in *st. */
static int read_file_st(int dirfd, const char *name, size_t max, uint8_t **buf,
                        size_t *len, struct stat *st_out) {
  struct stat st;
  *buf = NULL;
  *len = 0;
  /* O_NONBLOCK: opening a FIFO someone left under our name would
   * otherwise wait for a writer forever; anything not regular is refused
   * below, and reads of a regular file ignore the flag. */
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return -errno;
  if (fstat(fd, &st) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  *st_out = st;
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return -EINVAL;
  }
  /* Checked on the opened file, so that what is checked is what is read:
   * bytes another user could have written are not ours to load. */
  if (!mdht_persist_safe(&st)) {
    close(fd);
    return -EPERM;
  }
  if ((uint64_t)st.st_size > max) {
    close(fd);
    return -EFBIG;
  }
  size_t size = (size_t)st.st_size;
  uint8_t *p = malloc(size ? size : 1);
  if (!p) {
    close(fd);
    return -ENOMEM;
  }
  /* Read what stat promised; a file that shrank meanwhile reads short and
   * fails its checksum later, which is the right outcome. */
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, p + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = -errno;
      free(p);
      close(fd);
      return err;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  *buf = p;
  *len = got;
  return 0;
}

int mdht_persist_read_file(int dirfd, const char *name, size_t max,
                           uint8_t **buf, size_t *len) {
  struct stat st;
  return read_file_st(dirfd, name, max, buf, len, &st);
}

int mdht_persist_set_aside(int dirfd, const char *name) {
  char bad[NAME_MAX + 1];
  int rc = sibling(bad, sizeof bad, name, ".corrupt");
  if (rc < 0) return rc;
  if (renameat(dirfd, name, dirfd, bad) < 0) return -errno;
  if (fsync(dirfd) < 0) return -errno;
  return 0;
}

static long read_pid(int fd) {
  char b[32];
  ssize_t n = pread(fd, b, sizeof b - 1, 0);
  if (n <= 0) return 0;
  b[n] = '\0';
  char *end;
  long pid = strtol(b, &end, 10);
  return pid > 0 && (*end == '\n' || *end == '\0') ? pid : 0;
}

/* mdht_persist_lock, with the lock file's stat in *st. */
static int lock_st(int dirfd, int *fd, long *holder, struct stat *st) {
  *fd = -1;
  if (holder) *holder = 0;
  /* O_NONBLOCK: a FIFO under the name must not hang us in open. */
  int lf = openat(dirfd, MDHT_PERSIST_LOCK,
                  O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0600);
  if (lf < 0) return -errno;
  if (fstat(lf, st) < 0) {
    int err = -errno;
    close(lf);
    return err;
  }
  if (!S_ISREG(st->st_mode) || !mdht_persist_safe(st)) {
    close(lf);
    return -EPERM;
  }
  /* flock, not a pid file alone: the kernel drops it when the process
   * dies however it dies (kill -9 included), so a stale lock cannot keep
   * a restarted node out. */
  while (flock(lf, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EINTR) continue;
    int err = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
    if (holder && err == -EWOULDBLOCK) *holder = read_pid(lf);
    close(lf);
    return err;
  }
  /* The pid is for the message the next process prints; the lock itself
   * is the flock. */
  char b[32];
  int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
  if (ftruncate(lf, 0) == 0) {
    ssize_t w = pwrite(lf, b, (size_t)n, 0);
    (void)w;
  }
  *fd = lf;
  return 0;
}

int mdht_persist_lock(int dirfd, int *fd, long *holder) {
  struct stat st;
  return lock_st(dirfd, fd, holder, &st);
}

int mdht_persist_default_dir(char *buf, size_t cap) {
  const char *x = getenv("XDG_STATE_HOME");
  int n;
  /* XDG: a relative path in the variable is invalid and to be ignored. */
  if (x && x[0] == '/') {
    n = snprintf(buf, cap, "%s/mdht", x);
  } else {
    const char *home = getenv("HOME");
    if (!home || home[0] != '/') return -ENOENT;
    n = snprintf(buf, cap, "%s/.local/state/mdht", home);
  }
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int mdht_persist_parse_seconds(const char *s, mdht_time *ms) {
  uint64_t whole = 0, frac = 0;
  int digits = 0, decimals = 0;
  const char *p = s;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    whole = whole * 10 + (uint64_t)(*p - '0');
    if (whole > 4000000000ull) return MDHT_ERR_INVAL;
  }
  if (*p == '.') {
    for (p++; *p >= '0' && *p <= '9'; p++, decimals++) {
      if (decimals == 3) return MDHT_ERR_INVAL;
      frac = frac * 10 + (uint64_t)(*p - '0');
    }
    if (decimals == 0) return MDHT_ERR_INVAL;
  }
  if (*p != '\0' || digits == 0) return MDHT_ERR_INVAL;
  for (int i = decimals; i < 3; i++)
    frac *= 10;
  uint64_t v = whole * 1000 + frac;
  /* "0.0001" would round to 0, which means "never": refuse instead. */
  if (v == 0 && (whole != 0 || frac != 0)) return MDHT_ERR_INVAL;
  *ms = v;
  return 0;
}

/* ----------------------------------------------------------- high level */

void mdht_persist_run_opts_default(mdht_persist_run_opts *o) {
  memset(o, 0, sizeof *o);
  o->save_interval_ms = MDHT_PERSIST_SAVE_INTERVAL_MS;
  o->ping_rate = MDHT_PERSIST_PING_RATE;
  o->fallback_ms = MDHT_PERSIST_FALLBACK_MS;
}

/* Why `st` (of `what` at `path`) is not ours to trust, into p->why;
 * returns -EPERM. */
static int refuse(mdht_persist *p, const char *what, const char *path,
                  const struct stat *st) {
  unsigned me = (unsigned)geteuid();
  /* Paths cut at 1,000 bytes: the message says what was refused and why
   * without reaching past p->why (which -O3 otherwise warns about). */
  if (st->st_uid != (uid_t)me)
    snprintf(p->why, sizeof p->why,
             "%s %.1000s is owned by uid %u, not by this user (uid %u): "
             "refused",
             what, path, (unsigned)st->st_uid, me);
  else
    snprintf(p->why, sizeof p->why,
             "%s %.1000s is writable by group or others (mode %04o): "
             "refused; chmod go-w %.1000s",
             what, path, (unsigned)(st->st_mode & 07777), path);
  return -EPERM;
}

/* Creates the missing parents of `dir` (0700), then `dir` itself (0700).
 * An existing `dir` is left as it is: it is checked once opened. */
static int make_dir(const char *dir) {
  char parent[4096];
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')
    n--;
  while (n > 0 && dir[n - 1] != '/')
    n--;
  while (n > 1 && dir[n - 1] == '/')
    n--;
  if (n > 0 && n < sizeof parent) {
    memcpy(parent, dir, n);
    parent[n] = '\0';
    int rc = mdht_persist_mkdirs(parent, 0700);
    if (rc < 0) return rc;
  }
  return mkdir(dir, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

/* Opens the directory itself, never a link to one, and checks the opened
 * directory: no window between the check and the use. */
static int open_dir(mdht_persist *p, const char *dir) {
  struct stat st;
  p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (p->dirfd < 0) {
    int rc = -errno;
    /* lstat only to word the message: nothing is opened by it. */
    if ((rc == -ENOTDIR || rc == -ELOOP) && lstat(dir, &st) == 0 &&
        S_ISLNK(st.st_mode)) {
      snprintf(p->why, sizeof p->why,
               "state directory %s is a symbolic link: refused (give the "
               "directory itself)",
               dir);
      return -EPERM;
    }
    mdht_logforge_logf(p->log, MDHT_LOG_ERROR,
                       "cannot open state directory %s: %s", dir,
                       strerror(-rc));
    return rc;
  }
  if (fstat(p->dirfd, &st) < 0) return -errno;
  if (!mdht_persist_safe(&st)) return refuse(p, "state directory", dir, &st);
  return 0;
}

static int take_lock(mdht_persist *p, const char *dir) {
  long holder = 0;
  struct stat st;
  int rc = lock_st(p->dirfd, &p->lockfd, &holder, &st);
  if (rc == -EWOULDBLOCK) {
    if (holder > 0)
      mdht_logforge_logf(p->log, MDHT_LOG_ERROR,
                         "state directory %s is in use by another mdht "
                         "(pid %ld); two nodes cannot share one state "
                         "directory: give each its own --state DIR",
                         dir, holder);
    else
      mdht_logforge_logf(p->log, MDHT_LOG_ERROR,
                         "state directory %s is in use by another mdht; "
                         "two nodes cannot share one state directory: give "
                         "each its own --state DIR",
                         dir);
    return rc;
  }
  char path[4096 + 8];
  snprintf(path, sizeof path, "%s/%s", dir, MDHT_PERSIST_LOCK);
  if (rc == -ELOOP) {
    snprintf(p->why, sizeof p->why, "lock file %s is a symbolic link: refused",
             path);
    return -EPERM;
  }
  if (rc == -EPERM && !S_ISREG(st.st_mode)) {
    snprintf(p->why, sizeof p->why,
             "lock file %s is not a regular file: "
             "refused",
             path);
    return rc;
  }
  if (rc == -EPERM) return refuse(p, "lock file", path, &st);
  if (rc < 0)
    mdht_logforge_logf(p->log, MDHT_LOG_ERROR, "cannot lock %s: %s", path,
                       strerror(-rc));
  return rc;
}

int mdht_persist_open(mdht_persist *p, const char *dir, mdht_logforge *log) {
  memset(p, 0, sizeof *p);
  p->dirfd = p->lockfd = p->sub = -1;
  p->log = log;
  if (strlen(dir) >= sizeof p->dir) {
    mdht_logforge_logf(log, MDHT_LOG_ERROR, "state directory name too long");
    return -ENAMETOOLONG;
  }
  strcpy(p->dir, dir);
  /* 0700: the state names the peers that announced to us, which is
   * nobody else's business on a shared machine. */
  int rc = make_dir(dir);
  if (rc < 0) {
    mdht_logforge_logf(log, MDHT_LOG_ERROR,
                       "cannot create state directory %s: %s", dir,
                       strerror(-rc));
    return rc;
  }
  if ((rc = open_dir(p, dir)) < 0 || (rc = take_lock(p, dir)) < 0) return rc;
  unlinkat(p->dirfd, MDHT_PERSIST_FILE ".tmp", 0);
  return 0;
}

/* The one warning for a state file we cannot use; then it is set aside so
 * that the next save does not destroy what someone may want to look at,
 * and the next start does not trip over it again. */
static void reject(mdht_persist *p, const char *reason) {
  p->announced = true; /* "starting fresh" is said here */
  int rc = mdht_persist_set_aside(p->dirfd, MDHT_PERSIST_FILE);
  if (rc == 0)
    mdht_logforge_logf(p->log, MDHT_LOG_WARN,
                       "state file %s/%s is unusable (%s): kept as %s/%s, "
                       "starting fresh",
                       p->dir, MDHT_PERSIST_FILE, reason, p->dir,
                       MDHT_PERSIST_FILE ".corrupt");
  else
    mdht_logforge_logf(p->log, MDHT_LOG_WARN,
                       "state file %s/%s is unusable (%s) and cannot be "
                       "moved aside (%s): starting fresh, it will be "
                       "overwritten",
                       p->dir, MDHT_PERSIST_FILE, reason, strerror(-rc));
}

int mdht_persist_read(mdht_persist *p, uint8_t **buf, size_t *len,
                      mdht_state_info *info) {
  mdht_state_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  struct stat st;
  int rc = read_file_st(p->dirfd, MDHT_PERSIST_FILE, MDHT_STATE_MAX_SIZE, buf,
                        len, &st);
  char path[4096 + 8];
  snprintf(path, sizeof path, "%s/%s", p->dir, MDHT_PERSIST_FILE);
  /* A file someone else could have written is not loaded, nor set aside
   * (it may be a link to someone's file): the user must look at it. */
  if (rc == -ELOOP) {
    snprintf(p->why, sizeof p->why, "state file %s is a symbolic link: refused",
             path);
    return -EPERM;
  }
  if (rc == -EPERM) return refuse(p, "state file", path, &st);
  /* Said later, by mdht_persist_attach: if the node then fails to bind,
   * its one line of error is all that should be on stderr. */
  if (rc == -ENOENT) return 0;
  if (rc == -EFBIG) {
    reject(p, "larger than any state file");
    return 0;
  }
  if (rc == -EINVAL) {
    reject(p, "not a regular file");
    return 0;
  }
  if (rc < 0) {
    mdht_logforge_logf(p->log, MDHT_LOG_ERROR, "cannot read %s/%s: %s", p->dir,
                       MDHT_PERSIST_FILE, strerror(-rc));
    return rc;
  }
  rc = mdht_state_check(*buf, *len, info);
  if (rc == 0) return 1;
  char reason[96];
  if (rc == MDHT_ERR_VERSION && info->version != MDHT_STATE_VERSION)
    snprintf(reason, sizeof reason,
             "format version %u, this mdht reads version %u",
             (unsigned)info->version, (unsigned)MDHT_STATE_VERSION);
  else
    snprintf(reason, sizeof reason, "%s",
             info->why ? info->why : mdht_strerror(rc));
  reject(p, reason);
  free(*buf);
  *buf = NULL;
  *len = 0;
  return 0;
}

int mdht_persist_restore(mdht_persist *p, mdht_node *node, const uint8_t *buf,
                         size_t len, mdht_state_info *info) {
  mdht_state_info local;
  if (!info) info = &local;
  int rc = mdht_state_load(node, buf, len, mdht_driver_now(),
                           mdht_driver_wallclock(NULL), info);
  if (rc < 0) {
    if (rc == MDHT_ERR_NOMEM)
      mdht_logforge_logf(p->log, MDHT_LOG_ERROR, "cannot load state: %s",
                         mdht_strerror(rc));
    else
      reject(p, info->why ? info->why : mdht_strerror(rc));
    return rc;
  }
  p->announced = true;
#define S_(n) ((n) == 1 ? "" : "s")
  mdht_logforge_logf(
      p->log, MDHT_LOG_INFO,
      "state loaded from %s/%s, saved %llus ago: %u node%s, %u candidate%s "
      "(%u skipped), %u peer%s (%u expired, %u skipped)",
      p->dir, MDHT_PERSIST_FILE, (unsigned long long)(info->downtime_ms / 1000),
      info->nodes, S_(info->nodes), info->replacements, S_(info->replacements),
      info->nodes_skipped, info->peers, S_(info->peers), info->peers_expired,
      info->peers_skipped);
#undef S_
  return 0;
}

int mdht_persist_save(mdht_persist *p, mdht_node *node) {
  mdht_state_info info;
  uint8_t *buf = NULL;
  size_t len = 0;
  mdht_time now = mdht_driver_now();
  /* One error domain (mdht.h): serializing fails with an MDHT_ERR_*,
   * writing with a -errno, and one int tells them apart. */
  int rc = mdht_state_save(node, now, mdht_driver_wallclock(NULL), &buf, &len,
                           &info);
  if (rc == 0) {
    rc = mdht_persist_write_atomic(p->dirfd, MDHT_PERSIST_FILE, buf, len);
    free(buf);
  }
  if (rc < 0) {
    p->save_failures++;
    /* A full disk fails every few minutes: say it once, and again only
     * when the reason changes or it recovers. */
    if (rc != p->last_error)
      mdht_logforge_logf(p->log, MDHT_LOG_WARN,
                         "cannot save state to %s/%s: %s (the previous state "
                         "is kept)",
                         p->dir, MDHT_PERSIST_FILE, mdht_strerror(rc));
    p->last_error = rc;
    return rc;
  }
  if (p->last_error)
    mdht_logforge_logf(p->log, MDHT_LOG_INFO, "state saved again to %s/%s",
                       p->dir, MDHT_PERSIST_FILE);
  p->last_error = 0;
  p->saves++;
  if (info.truncated)
    mdht_logforge_logf(p->log, MDHT_LOG_DEBUG,
                       "state file at its size bound: some peers not saved");
  mdht_state_publish_saved(node, &info, now);
  return 0;
}

/* ---------------------------------------------------------- loop timers */

/* The periodic save; also fired at once by a new node id. */
static void on_save_timer(mdht_loop *l, mdht_loop_timer *t, void *user) {
  mdht_persist *p = user;
  if (p->run.save_interval_ms > 0)
    mdht_loop_timer_set(l, t, mdht_loop_now() + p->run.save_interval_ms);
  mdht_persist_save(p, p->d->node);
}

/* Period of the pacing tick and pings per tick: one ping per tick up to
 * 100 per second, then several per 10 ms tick. */
static mdht_time tick_period(uint32_t rate) {
  if (rate == 0) rate = MDHT_PERSIST_PING_RATE;
  return rate >= 100 ? 10 : 1000 / rate;
}

static uint32_t per_tick(uint32_t rate) {
  if (rate == 0) rate = MDHT_PERSIST_PING_RATE;
  return rate >= 100 ? rate / 100 : 1;
}

static uint32_t good_nodes(mdht_driver *d, mdht_time now) {
  mdht_stats st;
  mdht_node_stats(d->node, now, &st);
  return st.nodes_good;
}

/* Registers the routers with the node (mdht_driver_bootstrap: resolved,
 * pinged, and remembered, so that the node can re-join from them if it
 * ever loses the network). */
static void add_routers(mdht_persist *p, mdht_driver *d) {
  p->fallback_pending = false;
  for (size_t i = 0; i < p->run.nbootstrap; i++)
    mdht_driver_bootstrap(d, p->run.bootstrap[i]);
}

static void on_tick(mdht_loop *l, mdht_loop_timer *t, void *user) {
  mdht_persist *p = user;
  mdht_driver *d = p->d;
  mdht_time now = mdht_loop_now();
  if (p->pinging) {
    int rc = mdht_state_ping_pending(d->node, now, per_tick(p->run.ping_rate));
    if (rc == 0) p->pinging = false;
  }
  /* The routers wait while saved nodes get their chance: one answering is
   * enough, the node's own bootstrap then looks itself up through it. At
   * the deadline they are added either way, as the fallback now or as
   * insurance for later. */
  if (p->fallback_pending && now - p->started >= p->run.fallback_ms) {
    uint32_t good = good_nodes(d, now);
    if (good == 0)
      mdht_logforge_logf(p->log, MDHT_LOG_INFO,
                         "no saved node answered within %llu ms: "
                         "bootstrapping from %zu router(s)",
                         (unsigned long long)p->run.fallback_ms,
                         p->run.nbootstrap);
    else
      mdht_logforge_logf(p->log, MDHT_LOG_DEBUG,
                         "%u saved nodes answered; adding the %zu router(s) "
                         "for later",
                         good, p->run.nbootstrap);
    add_routers(p, d);
  }
  if (p->pinging || p->fallback_pending)
    mdht_loop_timer_set(l, t, now + tick_period(p->run.ping_rate));
}

/* A new id (BEP 42) must reach the disk before anything else happens: a
 * restart with the old one would be refused by enforcing peers. The event
 * comes from inside the node, which must not be called back: the save
 * timer is set to fire at once instead, and saves from the loop. */
static void on_node_event(const mdht_event *ev, void *user) {
  mdht_persist *p = user;
  if (ev->type != MDHT_EV_NODE_ID_CHANGED || !p->d) return;
  mdht_loop_timer_set(p->d->loop, &p->save_timer, 0);
}

int mdht_persist_attach(mdht_persist *p, mdht_driver *d,
                        const mdht_persist_run_opts *o) {
  mdht_time now = mdht_loop_now();
  int rc = 0;
  p->d = d;
  p->run = *o;
  if (!p->announced)
    mdht_logforge_logf(p->log, MDHT_LOG_INFO,
                       "no saved state in %s, starting fresh", p->dir);
  p->announced = true;
  p->started = now;
  p->pinging = mdht_state_pending(d->node) > 0;
  p->fallback_pending = o->nbootstrap > 0;
  /* Nothing saved to start from: the routers at once, as without state. */
  if (!p->pinging && p->fallback_pending) add_routers(p, d);
  /* The first pings now rather than one tick later: the sooner a saved
   * node answers, the sooner lookups work. */
  if (p->pinging &&
      mdht_state_ping_pending(d->node, now, per_tick(o->ping_rate)))
    mdht_binding_flush(&d->bind);

  mdht_loop_timer_init(&p->save_timer, on_save_timer, p);
  mdht_loop_timer_init(&p->tick_timer, on_tick, p);
  if (o->save_interval_ms > 0)
    rc =
        mdht_loop_timer_set(d->loop, &p->save_timer, now + o->save_interval_ms);
  if (rc == 0 && (p->pinging || p->fallback_pending))
    rc = mdht_loop_timer_set(d->loop, &p->tick_timer,
                             now + tick_period(o->ping_rate));
  if (rc == 0 && (p->sub = mdht_node_subscribe(d->node, on_node_event, p)) < 0)
    rc = -ENOSPC;
  return rc;
}

void mdht_persist_close(mdht_persist *p) {
  if (p->d) {
    if (p->sub >= 0) mdht_node_unsubscribe(p->d->node, p->sub);
    mdht_loop_timer_stop(p->d->loop, &p->save_timer);
    mdht_loop_timer_stop(p->d->loop, &p->tick_timer);
    p->d = NULL;
  }
  p->sub = -1;
  if (p->lockfd >= 0) close(p->lockfd); /* releases the flock */
  if (p->dirfd >= 0) close(p->dirfd);
  p->lockfd = p->dirfd = -1;
}
