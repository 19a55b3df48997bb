/*
 * The state directory: crash-safe files for the node's saved state (the
 * bytes come from src/core/state.c), and a lock so that two nodes never
 * share one directory.
 *
 *   DIR/state          the state file (format: src/core/state.h)
 *   DIR/state.tmp      the next state while it is written; renamed over
 *                      DIR/state once it is on disk, so a crash at any
 *                      moment leaves the old file or the new one, whole
 *   DIR/state.corrupt  the last file that failed to load, kept for a look
 *   DIR/lock           flock'ed by the running node; holds its pid
 *
 * A write is: temp file, write, fsync, rename, fsync of the directory
 * (the rename itself is only durable once the directory is synced: the
 * redis rdb.c pattern, plus the directory sync redis leaves out).
 *
 * Use from a program (app/main.c):
 *
 *   mdht_persist_open(&p, dir, log)       lock; exit 2 if -EWOULDBLOCK
 *   mdht_persist_read(&p, &buf, &len, &i) 1: a valid state, 0: start fresh
 *   mdht_state_peek_id(buf, len, &id)     create the node with that id
 *   mdht_persist_restore(&p, node, ...)   after mdht_driver_init
 *   mdht_persist_attach(&p, &d, &opts)    periodic saves, paced pings of
 *                                         loaded nodes, bootstrap fallback
 *   mdht_persist_save(&p, node)           on SIGHUP, `save`, and shutdown
 *   mdht_persist_close(&p)
 *
 * Functions return 0 (or a count) on success and a negative errno or
 * MDHT_ERR_* code on failure. The high-level ones log what went wrong
 * through LogForge (one line), so that callers need not.
 */
#ifndef MDHT_PERSIST_H
#define MDHT_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "driver.h"
#include "logforge.h"
#include "mdht.h"
#include "state.h"

#define MDHT_PERSIST_FILE "state"
#define MDHT_PERSIST_LOCK "lock"
/* Defaults of mdht_persist_run_opts. */
#define MDHT_PERSIST_SAVE_INTERVAL_MS (5 * 60 * 1000)
#define MDHT_PERSIST_PING_RATE 20
#define MDHT_PERSIST_FALLBACK_MS 5000

/* ------------------------------------------------------------ low level */

/* mkdir -p: creates the missing components of `path` with `mode`.
 * Returns 0, -ENOTDIR when a component is not a directory, or -errno. */
int mdht_persist_mkdirs(const char *path, mode_t mode);

/* Writes `len` bytes as `name` in the directory `dirfd`, crash-safe:
 * name.tmp is written, fsync'ed and renamed over `name`, then the
 * directory is fsync'ed. On failure `name` is untouched and name.tmp is
 * removed. Returns 0 or -errno. */
int mdht_persist_write_atomic(int dirfd, const char *name, const uint8_t *buf,
                              size_t len);

/* Whether a file or directory with this stat may be trusted: owned by the
 * running user (effective uid; root included, so root refuses another
 * user's directory too) and not writable by group or others. */
bool mdht_persist_safe(const struct stat *st);

/* Reads the whole file `name` into a malloc'ed buffer (*buf, *len; the
 * caller frees it; an empty file gives a non-NULL buffer of length 0).
 * A symbolic link is not followed (-ELOOP). Returns 0, -ENOENT, -EFBIG
 * when it is larger than `max`, -EINVAL when it is not a regular file,
 * -EPERM when it is not mdht_persist_safe, or -errno. */
int mdht_persist_read_file(int dirfd, const char *name, size_t max,
                           uint8_t **buf, size_t *len);

/* Renames `name` to name.corrupt (replacing an older one) and syncs the
 * directory. Returns 0 or -errno. */
int mdht_persist_set_aside(int dirfd, const char *name);

/* Takes the lock DIR/lock (flock, exclusive, non-blocking) and writes our
 * pid into it. *fd holds the lock until closed; it is close-on-exec.
 * Returns 0, -EWOULDBLOCK when another process holds it (*holder then has
 * its pid, or 0 if unknown; `holder` may be NULL), -ELOOP when it is a
 * symbolic link, -EPERM when it is not a regular file or not
 * mdht_persist_safe, or -errno. */
int mdht_persist_lock(int dirfd, int *fd, long *holder);

/* The default state directory: $XDG_STATE_HOME/mdht, else
 * $HOME/.local/state/mdht. Returns 0, -ENOENT when neither variable is
 * set (or set to a relative path, which XDG says to ignore), or
 * -ENAMETOOLONG. */
int mdht_persist_default_dir(char *buf, size_t cap);

/* Parses a duration in seconds with up to 3 decimals ("300", "0.05") into
 * ms. Returns 0 or MDHT_ERR_INVAL (no sign, no exponent, at least 1 ms
 * unless "0", at most 4e9 s). */
int mdht_persist_parse_seconds(const char *s, mdht_time *ms);

/* ----------------------------------------------------------- high level */

typedef struct mdht_persist_run_opts {
  mdht_time save_interval_ms; /* periodic saves; 0 = only on demand */
  uint32_t ping_rate;         /* loaded nodes pinged per second (>= 1) */
  /* Bootstrap routers ("HOST:PORT", as mdht_driver_bootstrap takes; the
   * strings must outlive the attachment). With no loaded node to ping
   * they are added at once. Otherwise they wait fallback_ms for the saved
   * nodes: if none has answered by then they are the fallback, else they
   * are added for later (the node re-joins from them if its table ever
   * empties). Adding resolves the names, blocking the loop briefly. */
  const char *const *bootstrap;
  size_t nbootstrap;
  mdht_time fallback_ms;
} mdht_persist_run_opts;

typedef struct mdht_persist {
  char dir[4096];
  /* Why mdht_persist_open or _read returned -EPERM (one line, not
   * logged: the program prints it). */
  char why[4096 + 256];
  int dirfd;
  int lockfd;
  mdht_logforge *log;
  /* attached to a driver, and to its loop */
  mdht_driver *d;
  mdht_loop_timer save_timer, tick_timer;
  int sub; /* our subscription to the node (saves on NODE_ID_CHANGED) */
  mdht_persist_run_opts run;
  mdht_time started;
  bool fallback_pending; /* routers not contacted yet */
  bool pinging;          /* loaded nodes left to ping */
  bool announced;        /* the log said how the node starts */
  /* statistics */
  uint64_t saves, save_failures;
  int last_error; /* of the last failed save, logged once per change */
} mdht_persist;

void mdht_persist_run_opts_default(mdht_persist_run_opts *o);

/* Creates `dir` (mode 0700, and its missing parents) if missing, opens it,
 * takes the lock and removes a stale state.tmp left by a crash. `log` may
 * be NULL. Returns 0, -EWOULDBLOCK when another node holds the directory
 * (logged as an error naming its pid), -EPERM when the directory or the
 * lock file is a symbolic link, not owned by the running user, or
 * writable by group or others (the reason in p->why, not logged), or
 * -errno (logged).
 *
 * Only the last component of `dir` is refused as a link: links higher up
 * (a home directory on another disk) are the user's own business. */
int mdht_persist_open(mdht_persist *p, const char *dir, mdht_logforge *log);

/* Reads and validates DIR/state. Returns 1 with the bytes in *buf and *len
 * (malloc'ed; the caller frees them) and the file's header and counts in
 * `info` (may be NULL); 0 with *buf NULL when there is no state to load:
 * no file, or a file that is truncated, corrupt, too large or of another
 * version, which is then moved to DIR/state.corrupt with one warning;
 * -EPERM when it is a symbolic link, not owned by the running user or
 * writable by group or others (the reason in p->why, not logged; the file
 * is left where it is); or -errno when the file exists but cannot be read
 * (logged). A missing file
 * is not logged here but by mdht_persist_attach, so that a node that then
 * fails to bind says only why. */
int mdht_persist_read(mdht_persist *p, uint8_t **buf, size_t *len,
                      mdht_state_info *info);

/* Loads validated bytes into `node` (mdht_state_load with the driver's
 * clocks) and logs a summary. On failure the file is set aside as by
 * mdht_persist_read and the node starts fresh. Returns 0 or an MDHT_ERR_*
 * code; `info` may be NULL. */
int mdht_persist_restore(mdht_persist *p, mdht_node *node, const uint8_t *buf,
                         size_t len, mdht_state_info *info);

/* Saves `node` now, crash-safe, and publishes STATE_SAVED on success. A
 * failure is logged as a warning (once per distinct error) and the
 * previous file stays. Returns 0, an MDHT_ERR_* code, or -errno. */
int mdht_persist_save(mdht_persist *p, mdht_node *node);

/* Hooks into the driver's loop with two timers: a save every
 * save_interval_ms, and a tick that pings loaded nodes at ping_rate per
 * second (mdht_state_ping_pending) and adds the routers as described
 * above; and saves at once when the node publishes NODE_ID_CHANGED. Call
 * after mdht_persist_restore. Returns 0 or -errno. */
int mdht_persist_attach(mdht_persist *p, mdht_driver *d,
                        const mdht_persist_run_opts *o);

/* Detaches (if attached), releases the lock and closes the directory.
 * Safe after mdht_persist_open, whether it succeeded or not, and twice. */
void mdht_persist_close(mdht_persist *p);

#endif
