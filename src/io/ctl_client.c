/* The control client: the answer's reader and the call. See ctl_client.h. */
#include "ctl_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_request.h"
#include "loop.h"

/* --------------------------------------------------------------- reader */

void mdht_ctl_reader_init(mdht_ctl_reader *rd) {
  memset(rd, 0, sizeof *rd);
}

/* Streams `n` bytes to `f` through the one escaper (ctl_format.h), a
 * bounded piece at a time. */
static void put_escaped(FILE *f, const char *p, size_t n, bool json) {
  enum { PIECE = 128 };
  char esc[PIECE * 6 + 1]; /* worst case: every byte \u00NN */

  for (size_t i = 0; i < n; i += PIECE) {
    size_t k = n - i < PIECE ? n - i : PIECE;
    fwrite(esc, 1, mdht_ctl_escape(esc, sizeof esc, p + i, k, json), f);
  }
}

/* A finished progress or status line, in rd->line. */
static int reader_line(mdht_ctl_reader *rd, FILE *progress) {
  long code;
  char *end;

  rd->line[rd->len] = '\0';
  if (rd->kind == MDHT_CTL_PROGRESS) {
    if (progress) {
      put_escaped(progress, rd->line, rd->len, false);
      fputc('\n', progress);
    }
    return 0;
  }
  /* "exit N[ message]" */
  if (strncmp(rd->line, "exit ", 5) != 0 || rd->line[5] < '0' ||
      rd->line[5] > '9')
    return MDHT_ERR_PROTO;
  code = strtol(rd->line + 5, &end, 10);
  if (code > 255 || (*end && *end != ' ')) return MDHT_ERR_PROTO;
  rd->code = (int)code;
  if (*end) end++;
  /* The message is printed after "mdht: ": escaped like the output. */
  mdht_ctl_escape(rd->msg, sizeof rd->msg, end,
                  rd->len - (size_t)(end - rd->line), false);
  return 1;
}

int mdht_ctl_reader_feed(mdht_ctl_reader *rd, const char *data, size_t len,
                         FILE *out, FILE *progress) {
  while (len > 0) {
    const char *lf;
    size_t seg, used;

    if (rd->state == MDHT_CTL_RD_START) {
      /* The first byte of a line says what it is. Output lines are passed
       * through as they come, whatever their length; the others are
       * buffered (and truncated if too long). */
      if (data[0] == MDHT_CTL_STATUS || data[0] == MDHT_CTL_PROGRESS) {
        rd->kind = data[0];
        rd->state = MDHT_CTL_RD_BUFFERED;
        rd->len = 0;
        data++, len--;
        continue;
      }
      rd->state = MDHT_CTL_RD_OUTPUT;
    }
    lf = memchr(data, '\n', len);
    seg = lf ? (size_t)(lf - data) : len;
    used = seg + (lf ? 1 : 0);
    if (rd->state == MDHT_CTL_RD_OUTPUT) {
      /* Whoever answers on the socket must not reach the terminal: output
       * is escaped as it passes (the LF ending a line is ours). */
      if (out) put_escaped(out, data, seg, rd->json);
      if (out && lf) fputc('\n', out);
      if (lf) rd->state = MDHT_CTL_RD_START;
    } else {
      size_t room = sizeof rd->line - 1 - rd->len;
      size_t take = seg < room ? seg : room;
      memcpy(rd->line + rd->len, data, take);
      rd->len += take;
      if (lf) {
        int rc = reader_line(rd, progress);
        rd->state = MDHT_CTL_RD_START;
        if (rc != 0) return rc;
      }
    }
    data += used;
    len -= used;
  }
  return 0;
}

/* ----------------------------------------------------------------- call */

/* Where a call is: what the deadline, when it comes, says went wrong. */
typedef enum { CALL_CONNECT, CALL_SEND, CALL_RECEIVE } call_phase;

/* One call, run on a loop of its own: the connect retries and the deadline
 * are loop timers, the send and the reads an fd watcher, and SIGINT and
 * SIGTERM come through the loop's signalfd, as for the short-lived node
 * (app/commands.c), so that Ctrl-C ends both the same way. */
typedef struct call {
  mdht_loop loop;
  mdht_loop_timer deadline, retry;
  struct sockaddr_un sa;
  const char *path, *line;
  size_t len, sent;
  int fd;
  bool watched;
  call_phase phase;
  mdht_time timeout_ms;
  mdht_ctl_reader rd;
  FILE *out, *progress;
  char *msg;
  size_t msgcap;
  int rc;
  bool done;
} call;

/* A Unix socket whose listener's backlog is full refuses with EAGAIN and
 * gives no event to wait for: connect is tried again this much later. */
#define CALL_RETRY_MS 10

/* The whole seconds asked for: the command adds a grace of less than a
 * second (for the node's own answer) that is not the user's number. */
static unsigned long long call_secs(const call *c) {
  unsigned long long s = (unsigned long long)c->timeout_ms / 1000;
  return s ? s : 1;
}

/* Ends the call with exit status `rc`; the message is set by the caller. */
static void call_end(call *c, int rc) {
  c->rc = rc;
  c->done = true;
  mdht_loop_stop(&c->loop);
}

static void call_fail(call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void call_fail(call *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->msg, c->msgcap, fmt, ap);
  va_end(ap);
  call_end(c, MDHT_CTL_EXIT_ERROR);
}

/* Only a node of our own answers for us: whoever listens on the path may
 * be another user who bound it first (a shared /tmp), and would then feed
 * us made-up peers. The kernel gives the listener's credentials as they
 * were at listen(); they cannot be forged. Strict equality, root
 * included: root talks only to nodes run as root. */
static int check_peer(call *c) {
  struct ucred cr;
  socklen_t crlen = sizeof cr;
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
    call_fail(c, "cannot check who listens on %s: %s", c->path,
              strerror(errno));
    return -1;
  }
  if (cr.uid != geteuid()) {
    call_fail(c,
              "the process on %s runs as uid %u, not as this user (uid %u): "
              "refused",
              c->path, (unsigned)cr.uid, (unsigned)geteuid());
    return -1;
  }
  return 0;
}

static void on_fd(mdht_loop *loop, int fd, uint32_t events, void *user);

/* Tries to connect; once connected and the listener checked, waits to
 * send. A full backlog is tried again by the retry timer (the deadline
 * timer ends the wait). */
static void call_connect(call *c) {
  int rc;
  if (connect(c->fd, (const struct sockaddr *)&c->sa, sizeof c->sa) < 0) {
    if (errno == EAGAIN || errno == EINTR) {
      if (mdht_loop_timer_set(&c->loop, &c->retry,
                              mdht_loop_now() + CALL_RETRY_MS) < 0)
        call_fail(c, "out of memory");
    } else if (errno == ECONNREFUSED || errno == ENOENT) {
      call_fail(c, "no node is running on %s (%s)", c->path, strerror(errno));
    } else {
      call_fail(c, "cannot connect to %s: %s", c->path, strerror(errno));
    }
    return;
  }
  if (check_peer(c) < 0) return;
  c->phase = CALL_SEND;
  rc = mdht_loop_watch(&c->loop, c->fd, EPOLLOUT, on_fd, c);
  if (rc < 0) {
    call_fail(c, "cannot wait on %s: %s", c->path, strerror(-rc));
    return;
  }
  c->watched = true;
}

static void on_retry(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  (void)loop, (void)t;
  call_connect(user);
}

/* Sends what the socket takes of the request; all of it sent, waits for
 * the answer. */
static void call_send(call *c) {
  while (c->sent < c->len) {
    ssize_t n = send(c->fd, c->line + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return; /* EPOLLOUT again */
    if (n <= 0) {
      /* The node may have answered and closed already (too many
       * clients): its answer is worth more than our send error. */
      if (errno == EPIPE || errno == ECONNRESET) break;
      call_fail(c, "cannot send to %s: %s", c->path, strerror(errno));
      return;
    }
    c->sent += (size_t)n;
  }
  c->phase = CALL_RECEIVE;
  int rc = mdht_loop_modify(&c->loop, c->fd, EPOLLIN);
  if (rc < 0) call_fail(c, "cannot wait on %s: %s", c->path, strerror(-rc));
}

/* Reads what has come of the answer, and prints it. */
static void call_receive(call *c) {
  char buf[4096];
  ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  int r;

  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    call_fail(c, "the node on %s closed the connection without an answer",
              c->path);
    return;
  }
  r = mdht_ctl_reader_feed(&c->rd, buf, (size_t)n, c->out, c->progress);
  if (r < 0) {
    call_fail(c, "garbled answer from the node on %s", c->path);
  } else if (r == 1) {
    snprintf(c->msg, c->msgcap, "%s", c->rd.msg);
    call_end(c, c->rd.code);
  }
}

static void on_fd(mdht_loop *loop, int fd, uint32_t events, void *user) {
  call *c = user;
  (void)loop, (void)fd, (void)events;
  /* EPOLLHUP and EPOLLERR too: send or recv says what they mean. */
  if (c->phase == CALL_SEND)
    call_send(c);
  else
    call_receive(c);
}

/* One deadline for all of it: a node whose loop is stuck, or whose
 * backlog is full, must cost --timeout, not forever. */
static void on_deadline(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  call *c = user;
  (void)loop, (void)t;
  if (c->done) return;
  if (c->phase == CALL_CONNECT)
    call_fail(c, "the node on %s accepts no connection within %llu s", c->path,
              call_secs(c));
  else if (c->phase == CALL_SEND)
    call_fail(c, "the node on %s takes no request within %llu s", c->path,
              call_secs(c));
  else
    call_fail(c, "no answer from the node on %s within %llu s", c->path,
              call_secs(c));
}

/* The loop, its deadline and signals, the socket. Returns 0, or -1 with
 * the reason in c->msg (call_free releases what was made). */
static int call_init(call *c) {
  int rc = mdht_loop_init(&c->loop);
  if (rc == 0) rc = mdht_loop_stop_on_signals(&c->loop);
  if (rc < 0) {
    snprintf(c->msg, c->msgcap, "cannot set up the event loop: %s",
             strerror(-rc));
    return -1;
  }
  mdht_loop_timer_init(&c->deadline, on_deadline, c);
  mdht_loop_timer_init(&c->retry, on_retry, c);
  if (mdht_loop_timer_set(&c->loop, &c->deadline,
                          mdht_loop_now() + c->timeout_ms) < 0) {
    snprintf(c->msg, c->msgcap, "out of memory");
    return -1;
  }
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->fd < 0) {
    snprintf(c->msg, c->msgcap, "cannot connect to %s: %s", c->path,
             strerror(errno));
    return -1;
  }
  return 0;
}

static void call_free(call *c) {
  if (c->loop.epfd >= 0) {
    if (c->watched) mdht_loop_unwatch(&c->loop, c->fd);
    mdht_loop_timer_stop(&c->loop, &c->deadline);
    mdht_loop_timer_stop(&c->loop, &c->retry);
  }
  if (c->fd >= 0) close(c->fd);
  mdht_loop_free(&c->loop);
}

/* Runs the call to its end. Returns its exit status. */
static int call_run(call *c) {
  call_connect(c);
  if (!c->done) {
    int rc = mdht_loop_run(&c->loop, 0);
    if (rc < 0) {
      snprintf(c->msg, c->msgcap, "event loop failed: %s", strerror(-rc));
      return MDHT_CTL_EXIT_ERROR;
    }
  }
  /* Stopped before the end: SIGINT or SIGTERM, the user gave up. The
   * status a shell gives a command that a signal ended: 130 for Ctrl-C. */
  if (!c->done) {
    snprintf(c->msg, c->msgcap, "interrupted");
    return c->loop.stop_signal ? 128 + c->loop.stop_signal
                               : MDHT_CTL_EXIT_ERROR;
  }
  return c->rc;
}

int mdht_ctl_call(const char *path, const char *line, mdht_time timeout_ms,
                  FILE *out, FILE *progress, char *msg, size_t msgcap) {
  call *c;
  mdht_ctl_req req;
  char perr[128];
  int rc = MDHT_CTL_EXIT_ERROR;

  msg[0] = '\0';
  if (!*path || strlen(path) >= sizeof c->sa.sun_path) {
    snprintf(msg, msgcap, "control path '%.200s' is %s", path,
             *path ? "too long" : "empty");
    return MDHT_CTL_EXIT_ERROR;
  }
  c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(msg, msgcap, "out of memory");
    return MDHT_CTL_EXIT_ERROR;
  }
  c->sa.sun_family = AF_UNIX;
  memcpy(c->sa.sun_path, path, strlen(path));
  c->path = path;
  c->line = line;
  c->len = strlen(line);
  c->fd = -1;
  c->loop.epfd = -1;
  c->timeout_ms = timeout_ms;
  c->out = out;
  c->progress = progress;
  c->msg = msg;
  c->msgcap = msgcap;
  mdht_ctl_reader_init(&c->rd);
  /* The request says how the answer's bytes are to be escaped. */
  c->rd.json =
      mdht_ctl_parse(&req, line, c->len, perr, sizeof perr) == 0 && req.json;
  if (call_init(c) == 0) rc = call_run(c);
  call_free(c);
  free(c);
  return rc;
}
