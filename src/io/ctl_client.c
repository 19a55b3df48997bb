/* The control client: the answer's reader and the call. See ctl_client.h. */
#include "ctl_client.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl_request.h"
#include "driver.h"

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

/* ----------------------------------------------------------------- jobs */

/* ----------------------------------------------------------------- call */

/* One call's fixed parts. */
typedef struct call {
  const char *path;
  int fd;
  mdht_time timeout_ms, deadline;
  char *msg;
  size_t msgcap;
} call;

static unsigned long long call_secs(const call *c) {
  return (unsigned long long)(c->timeout_ms + 999) / 1000;
}

/* Only a node of our own answers for us: whoever listens on the path may
 * be another user who bound it first (a shared /tmp), and would then feed
 * us made-up peers. The kernel gives the listener's credentials as they
 * were at listen(); they cannot be forged. Strict equality, root
 * included: root talks only to nodes run as root. */
static int check_peer(const call *c) {
  struct ucred cr;
  socklen_t crlen = sizeof cr;
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
    snprintf(c->msg, c->msgcap, "cannot check who listens on %s: %s", c->path,
             strerror(errno));
    return -1;
  }
  if (cr.uid != geteuid()) {
    snprintf(c->msg, c->msgcap,
             "the process on %s runs as uid %u, not as this user (uid %u): "
             "refused",
             c->path, (unsigned)cr.uid, (unsigned)geteuid());
    return -1;
  }
  return 0;
}

/* Connects c->fd (already a non-blocking socket, or -1 if that failed)
 * before the deadline. Returns 0, or -1 with the reason in c->msg. */
static int call_connect(call *c, const struct sockaddr_un *sa) {
  for (;;) {
    if (c->fd >= 0 &&
        connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
      return 0;
    if (c->fd >= 0 && (errno == EAGAIN || errno == EINTR) &&
        mdht_driver_now() < c->deadline) {
      /* A Unix socket's full backlog gives no event to wait for. */
      poll(NULL, 0, 10);
      continue;
    }
    if (c->fd >= 0 && errno == EAGAIN)
      snprintf(c->msg, c->msgcap,
               "the node on %s accepts no connection within %llu s", c->path,
               call_secs(c));
    else if (errno == ECONNREFUSED || errno == ENOENT)
      snprintf(c->msg, c->msgcap, "no node is running on %s (%s)", c->path,
               strerror(errno));
    else
      snprintf(c->msg, c->msgcap, "cannot connect to %s: %s", c->path,
               strerror(errno));
    return -1;
  }
}

/* Waits for `events` on c->fd until the deadline, in slices of at most a
 * minute. Returns poll's result, or 0 with `late` set past the deadline. */
static int call_wait(const call *c, short events, bool *late) {
  struct pollfd pfd = {.fd = c->fd, .events = events};
  mdht_time now = mdht_driver_now();
  *late = now >= c->deadline;
  if (*late) return 0;
  return poll(&pfd, 1,
              (int)(c->deadline - now > 60000 ? 60000 : c->deadline - now));
}

static int call_send(const call *c, const char *line, size_t len) {
  size_t sent = 0;
  while (sent < len) {
    ssize_t n = send(c->fd, line + sent, len - sent, MSG_NOSIGNAL);
    bool late;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      call_wait(c, POLLOUT, &late);
      if (!late) continue;
      snprintf(c->msg, c->msgcap,
               "the node on %s takes no request within %llu s", c->path,
               call_secs(c));
      return -1;
    }
    if (n <= 0) {
      /* The node may have answered and closed already (too many
       * clients): its answer is worth more than our send error. */
      if (errno == EPIPE || errno == ECONNRESET) return 0;
      snprintf(c->msg, c->msgcap, "cannot send to %s: %s", c->path,
               strerror(errno));
      return -1;
    }
    sent += (size_t)n;
  }
  return 0;
}

/* Reads and prints the answer. Returns the exit status it carries, or
 * MDHT_CTL_EXIT_ERROR with why in c->msg. */
static int call_receive(const call *c, mdht_ctl_reader *rd, FILE *out,
                        FILE *progress) {
  for (;;) {
    char buf[4096];
    bool late;
    ssize_t n;
    int r = call_wait(c, POLLIN, &late);

    if (late) {
      snprintf(c->msg, c->msgcap, "no answer from the node on %s within %llu s",
               c->path, call_secs(c));
      return MDHT_CTL_EXIT_ERROR;
    }
    if (r < 0 && errno != EINTR) {
      snprintf(c->msg, c->msgcap, "poll: %s", strerror(errno));
      return MDHT_CTL_EXIT_ERROR;
    }
    if (r <= 0) continue;
    n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      snprintf(c->msg, c->msgcap,
               "the node on %s closed the connection without an answer",
               c->path);
      return MDHT_CTL_EXIT_ERROR;
    }
    r = mdht_ctl_reader_feed(rd, buf, (size_t)n, out, progress);
    if (r < 0) {
      snprintf(c->msg, c->msgcap, "garbled answer from the node on %s",
               c->path);
      return MDHT_CTL_EXIT_ERROR;
    }
    if (r == 1) {
      snprintf(c->msg, c->msgcap, "%s", rd->msg);
      return rd->code;
    }
  }
}

int mdht_ctl_call(const char *path, const char *line, mdht_time timeout_ms,
                  FILE *out, FILE *progress, char *msg, size_t msgcap) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  call c = {path, -1, timeout_ms, 0, msg, msgcap};
  mdht_ctl_reader *rd = NULL;
  size_t len = strlen(line);
  int rc = MDHT_CTL_EXIT_ERROR;

  msg[0] = '\0';
  if (!*path || strlen(path) >= sizeof sa.sun_path) {
    snprintf(msg, msgcap, "control path '%.200s' is %s", path,
             *path ? "too long" : "empty");
    return MDHT_CTL_EXIT_ERROR;
  }
  memcpy(sa.sun_path, path, strlen(path));
  /* Non-blocking from the start, and one deadline for all of it: a node
   * whose loop is stuck, or whose backlog is full, must cost --timeout,
   * not forever. */
  c.deadline = mdht_driver_now() + timeout_ms;
  c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (call_connect(&c, &sa) < 0 || check_peer(&c) < 0 ||
      call_send(&c, line, len) < 0)
    goto out;
  rd = malloc(sizeof *rd);
  if (!rd) {
    snprintf(msg, msgcap, "out of memory");
    goto out;
  }
  mdht_ctl_reader_init(rd);
  {
    mdht_ctl_req req;
    char perr[128];
    /* The request says how the answer's bytes are to be escaped. */
    rd->json =
        mdht_ctl_parse(&req, line, len, perr, sizeof perr) == 0 && req.json;
  }
  rc = call_receive(&c, rd, out, progress);
out:
  free(rd);
  if (c.fd >= 0) close(c.fd);
  return rc;
}
