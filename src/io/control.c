/*
 * The control socket's server: the listener, its clients and their
 * deadlines. The protocol is described in control.h; requests, output,
 * jobs and the client are modules of their own (ctl_*.c).
 */
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver.h"
#include "persist.h"

/* --------------------------------------------------------------- server */

#define MDHT_CTL_WAIT_POLL_MS 200

struct mdht_ctl_client {
  int fd; /* -1: a free slot */
  char in[MDHT_CTL_MAX_LINE];
  size_t inlen;
  mdht_ctl_buf out;
  size_t outpos; /* bytes of `out` already sent */
  mdht_ctl_job job;
  bool busy;       /* a request is being served */
  bool waiting;    /* ... and waits for the routing table to fill */
  bool eof;        /* the client shut down its side */
  bool closing;    /* close once `out` is sent */
  uint32_t events; /* epoll interest */
  mdht_time idle_deadline;
};

static void wake(mdht_ctl_server *srv) {
  mdht_loop_wake(srv->driver->loop, &srv->wake);
}

static void client_close(mdht_ctl_server *srv, mdht_ctl_client *c) {
  if (c->fd < 0) return;
  /* The node must not call back into a slot that is gone. */
  if (c->busy && !c->job.done && c->job.op > 0)
    mdht_node_cancel(c->job.node, c->job.op);
  mdht_loop_unwatch(srv->driver->loop, c->fd);
  close(c->fd);
  c->fd = -1;
  mdht_ctl_buf_free(&c->out);
}

static bool has_line(const mdht_ctl_client *c) {
  return memchr(c->in, '\n', c->inlen) != NULL;
}

static bool out_pending(const mdht_ctl_client *c) {
  return c->outpos < c->out.len;
}

static void client_set_events(mdht_ctl_server *srv, mdht_ctl_client *c) {
  /* Read only what can be acted on: one request at a time, so that a
   * client that pipelines cannot make the node buffer without bound. */
  bool rd = !c->eof && !c->closing && !c->busy && !has_line(c) &&
            c->inlen < sizeof c->in;
  uint32_t want = (rd ? EPOLLIN : 0) | (out_pending(c) ? EPOLLOUT : 0);
  if (want == c->events) return;
  if (mdht_loop_modify(srv->driver->loop, c->fd, want) == 0) c->events = want;
}

static void client_read(mdht_ctl_client *c, mdht_time now) {
  while (c->inlen < sizeof c->in && !has_line(c)) {
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n > 0) {
      /* The clock starts at a request's first byte and is not pushed back
       * by the rest: a client trickling one byte at a time would otherwise
       * hold one of the few slots for hours. */
      if (c->inlen == 0) c->idle_deadline = now + MDHT_CTL_IDLE_MS;
      c->inlen += (size_t)n;
    } else if (n == 0) {
      c->eof = true;
      /* `printf stats | socat ...`: a last request without its LF. */
      if (c->inlen > 0 && c->inlen < sizeof c->in) c->in[c->inlen++] = '\n';
      return;
    } else if (errno == EINTR) {
      continue;
    } else {
      if (errno != EAGAIN && errno != EWOULDBLOCK) c->closing = c->eof = true;
      return;
    }
  }
}

/* Returns false when the client is gone. */
static bool client_write(mdht_ctl_client *c, mdht_time now) {
  while (out_pending(c)) {
    ssize_t n = send(c->fd, c->out.p + c->outpos, c->out.len - c->outpos,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c->outpos += (size_t)n;
      c->idle_deadline = now + MDHT_CTL_IDLE_MS;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    } else {
      return false; /* EPIPE, ECONNRESET: nobody to answer */
    }
  }
  /* All sent: the buffer is reused, its memory kept for the next one. */
  mdht_ctl_buf_reset(&c->out);
  c->outpos = 0;
  return true;
}

static void job_notify(mdht_ctl_job *job, void *user) {
  (void)job;
  wake(user);
}

/* `save`: answered at once, like stats, but by the program's persistence
 * layer (srv->save), which jobs know nothing of. We are in the loop,
 * outside the node, so the callback may call into it. */
static void serve_save(mdht_ctl_server *srv, const mdht_ctl_req *req,
                       mdht_ctl_buf *out) {
  mdht_ctl_saved s;
  char err[256];

  if (!srv->save) {
    mdht_ctl_buf_status(out, MDHT_CTL_EXIT_ERROR,
                        "this node keeps no state (--no-state)");
    return;
  }
  memset(&s, 0, sizeof s);
  err[0] = '\0';
  if (srv->save(srv->save_user, &s, err, sizeof err) < 0) {
    mdht_ctl_buf_status(out, MDHT_CTL_EXIT_ERROR,
                        err[0] ? err : "cannot save the state");
    return;
  }
  mdht_ctl_format_saved(req, &s, out);
  mdht_ctl_buf_status(out, MDHT_CTL_EXIT_OK, NULL);
}

static void client_start(mdht_ctl_server *srv, mdht_ctl_client *c,
                         mdht_time now) {
  char *lf = memchr(c->in, '\n', c->inlen);
  size_t len = (size_t)(lf - c->in) + 1;
  mdht_ctl_req req;
  char err[160];

  srv->served++;
  if (mdht_ctl_parse(&req, c->in, len, err, sizeof err) < 0) {
    mdht_ctl_buf_status(&c->out, MDHT_CTL_EXIT_ERROR, err);
  } else if (req.cmd == MDHT_CTL_SAVE) {
    serve_save(srv, &req, &c->out);
  } else {
    mdht_ctl_job_init(&c->job, srv->driver->node, &req, &c->out, now,
                      job_notify, srv);
    c->busy = true;
    c->waiting = mdht_ctl_job_start(&c->job, now) == MDHT_ERR_AGAIN;
  }
  memmove(c->in, c->in + len, c->inlen - len);
  c->inlen -= len;
}

/* Whether a node that has no usable node yet may still get one soon:
 * queries are in flight (router pings, pings of loaded nodes). When none
 * is, nothing will change before the next bootstrap attempt (seconds to
 * minutes away): a waiting request fails at once rather than at its
 * deadline. */
static bool node_pending(mdht_ctl_server *srv, mdht_time now) {
  mdht_stats s;
  mdht_node_stats(srv->driver->node, now, &s);
  if (s.txns_outstanding > 0) return true;
  /* BEP 32: or on the other family's socket */
  if (!srv->driver->node2) return false;
  mdht_node_stats(srv->driver->node2, now, &s);
  return s.txns_outstanding > 0;
}

/* Everything a client may need after any event: finish, time out, send,
 * start the next request, close. Returns its next deadline. */
static mdht_time client_service(mdht_ctl_server *srv, mdht_ctl_client *c,
                                mdht_time now) {
  for (;;) {
    if (c->busy && c->waiting && !c->job.done)
      c->waiting = mdht_ctl_job_start(&c->job, now) == MDHT_ERR_AGAIN;
    if (c->busy && !c->job.done &&
        (now >= c->job.deadline || (c->waiting && !node_pending(srv, now))))
      mdht_ctl_job_expire(&c->job, c->waiting);
    if (c->busy && c->job.done) {
      c->busy = c->waiting = false;
      c->idle_deadline = now + MDHT_CTL_IDLE_MS;
    }
    if (!client_write(c, now)) {
      client_close(srv, c);
      return UINT64_MAX;
    }
    if (!c->busy && !c->closing && !out_pending(c) && has_line(c)) {
      client_start(srv, c, now);
      continue;
    }
    break;
  }
  if (!c->busy && !has_line(c) && c->inlen == sizeof c->in && !c->closing) {
    mdht_ctl_buf_status(&c->out, MDHT_CTL_EXIT_ERROR, "request line too long");
    c->closing = true;
    if (!client_write(c, now)) {
      client_close(srv, c);
      return UINT64_MAX;
    }
  }
  /* Gone or done, or silent or not reading for too long. */
  if ((!c->busy && !out_pending(c) && (c->eof || c->closing)) ||
      (!c->busy && now >= c->idle_deadline)) {
    client_close(srv, c);
    return UINT64_MAX;
  }
  client_set_events(srv, c);
  /* A waiting request looks again soon: the queries in flight may all time
   * out, which is no event it hears of. */
  if (c->busy && c->waiting && now + MDHT_CTL_WAIT_POLL_MS < c->job.deadline)
    return now + MDHT_CTL_WAIT_POLL_MS;
  return c->busy ? c->job.deadline : c->idle_deadline;
}

static void service_all(mdht_ctl_server *srv, mdht_time now);

static void on_client(mdht_loop *l, int fd, uint32_t events, void *user) {
  mdht_ctl_server *srv = user;
  mdht_time now = mdht_loop_now();
  (void)l;
  for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++) {
    mdht_ctl_client *c = &srv->clients[i];
    if (c->fd != fd) continue;
    if (events & (EPOLLERR | EPOLLHUP)) {
      /* Both directions are shut: nobody will read an answer. */
      client_close(srv, c);
    } else if (events & EPOLLIN) {
      client_read(c, now);
    }
    break;
  }
  service_all(srv, now);
}

static void accept_clients(mdht_ctl_server *srv, mdht_time now) {
  /* Bounded, so that a connect flood cannot keep the node from its own
   * work; the rest wait in the backlog. */
  for (int round = 0; round < MDHT_CTL_MAX_CLIENTS; round++) {
    int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    mdht_ctl_client *c = NULL;

    if (fd < 0) return; /* EAGAIN, or a client that left already */
    for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS && !c; i++)
      if (srv->clients[i].fd < 0) c = &srv->clients[i];
    if (!c) {
      static const char busy[] = "\0exit 2 too many control clients, "
                                 "try again later\n";
      if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* Nothing more to do for it either way. */
      }
      close(fd);
      continue;
    }
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->idle_deadline = now + MDHT_CTL_IDLE_MS;
    c->events = EPOLLIN;
    if (mdht_loop_watch(srv->driver->loop, fd, EPOLLIN, on_client, srv) < 0) {
      close(fd);
      c->fd = -1;
    }
  }
}

/* After any event: every client gets its turn, and the timer moves to the
 * earliest deadline left. */
static void service_all(mdht_ctl_server *srv, mdht_time now) {
  mdht_time next = UINT64_MAX;
  for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++) {
    mdht_ctl_client *c = &srv->clients[i];
    if (c->fd < 0) continue;
    mdht_time t = client_service(srv, c, now);
    if (t < next) next = t;
  }
  if (next == UINT64_MAX)
    mdht_loop_timer_stop(srv->driver->loop, &srv->timer);
  else
    mdht_loop_timer_set(srv->driver->loop, &srv->timer, next);
}

static void on_listen(mdht_loop *l, int fd, uint32_t events, void *user) {
  mdht_time now = mdht_loop_now();
  (void)l, (void)fd, (void)events;
  accept_clients(user, now);
  service_all(user, now);
}

static void on_timer(mdht_loop *l, mdht_loop_timer *t, void *user) {
  (void)l, (void)t;
  service_all(user, mdht_loop_now());
}

static void on_wake(mdht_loop *l, mdht_loop_wakeup *w, void *user) {
  (void)l, (void)w;
  service_all(user, mdht_loop_now());
}

static void on_event(const mdht_event *ev, void *user) {
  mdht_ctl_server *srv = user;
  bool poke = false;

  for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++) {
    mdht_ctl_client *c = &srv->clients[i];
    if (c->fd < 0 || !c->busy) continue;
    /* A loaded node that answers becomes usable without being added. */
    if (c->waiting && (ev->type == MDHT_EV_NODE_ADDED ||
                       ev->type == MDHT_EV_RESPONSE_RECEIVED))
      poke = true;
    if (ev->type == MDHT_EV_LOOKUP_PROGRESS && c->job.req.progress) poke = true;
    mdht_ctl_job_event(&c->job, ev);
  }
  /* Acted on from the loop, outside the node. */
  if (poke) wake(srv);
}

static int probe(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd;
  int rc;
  if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  memcpy(sa.sun_path, path, strlen(path));
  rc = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
  close(fd);
  return rc;
}

/* A directory where others may remove and create entries, unless the
 * sticky bit keeps them to their own (as in /tmp): there another user
 * could swap our socket for theirs once we listen. Clients would refuse
 * theirs (SO_PEERCRED), but the node would be cut off: refused up front. */
static int check_dir(const char *path, char *err, size_t errcap) {
  char dir[sizeof((struct sockaddr_un *)0)->sun_path];
  const char *slash = strrchr(path, '/');
  struct stat st;
  if (!slash)
    strcpy(dir, ".");
  else if (slash == path)
    strcpy(dir, "/");
  else
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  if (stat(dir, &st) < 0) return 0; /* bind says why */
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
    snprintf(err, errcap,
             "directory %s of the control socket is writable by group or "
             "others without the sticky bit (mode %04o): refused; chmod "
             "go-w or +t it, or choose another path",
             dir, (unsigned)(st.st_mode & 07777));
    return -1;
  }
  return 0;
}

/* Makes `path` free for our socket: nothing there, or a stale socket of a
 * node that was killed. Returns 0 or an MDHT_ERR_* with why in `err`. */
static int take_path(const char *path, char *err, size_t errcap) {
  struct stat st;
  int rc;

  if (lstat(path, &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      snprintf(err, errcap, "%s exists and is not a socket", path);
      return MDHT_ERR_EXISTS;
    }
    rc = probe(path);
    if (rc == 0 || rc == -EAGAIN) {
      snprintf(err, errcap, "another node serves %s", path);
      return MDHT_ERR_EXISTS;
    }
    if (rc != -ECONNREFUSED) {
      snprintf(err, errcap, "cannot use control socket %s: %s", path,
               strerror(-rc));
      return MDHT_ERR_IO;
    }
    /* Nobody listens: left behind by a node that was killed. */
    if (unlink(path) < 0 && errno != ENOENT) {
      snprintf(err, errcap, "cannot remove stale %s: %s", path,
               strerror(errno));
      return MDHT_ERR_IO;
    }
  } else if (errno != ENOENT) {
    snprintf(err, errcap, "cannot use control socket %s: %s", path,
             strerror(errno));
    return MDHT_ERR_IO;
  }
  return 0;
}

int mdht_ctl_server_open(mdht_ctl_server *srv, const char *path, char *err,
                         size_t errcap) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct stat st;
  mode_t old;
  int rc;

  memset(srv, 0, sizeof *srv);
  srv->lfd = -1;
  srv->sub = -1;
  if (!*path || strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errcap, "control path '%.200s' is %s", path,
             *path ? "too long" : "empty");
    return MDHT_ERR_IO;
  }
  snprintf(srv->path, sizeof srv->path, "%s", path);
  memcpy(sa.sun_path, path, strlen(path));
  if (check_dir(path, err, errcap) < 0) return MDHT_ERR_EXISTS;

  if ((rc = take_path(path, err, errcap)) < 0) return rc;

  srv->clients = calloc(MDHT_CTL_MAX_CLIENTS, sizeof *srv->clients);
  srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!srv->clients || srv->lfd < 0) goto fail_errno;
  for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++)
    srv->clients[i].fd = -1;
  /* Created 0600 from the start: the socket answers for the node, and
   * there must be no moment where others may connect. */
  old = umask(0177);
  rc = bind(srv->lfd, (struct sockaddr *)&sa, sizeof sa);
  umask(old);
  if (rc < 0) {
    if (errno == EADDRINUSE) {
      snprintf(err, errcap, "another node serves %s", path);
      close(srv->lfd);
      srv->lfd = -1;
      free(srv->clients);
      srv->clients = NULL;
      return MDHT_ERR_EXISTS;
    }
    goto fail_errno;
  }
  if (lstat(path, &st) < 0) goto fail_unlink;
  srv->dev = st.st_dev;
  srv->ino = st.st_ino;
  /* No chmod: the umask above made it 0600 already, and chmod by name
   * would follow whatever another user may have put at the path since. */
  if (listen(srv->lfd, 64) < 0) goto fail_unlink;
  return 0;

fail_unlink:
  rc = errno;
  unlink(path);
  errno = rc;
fail_errno:
  snprintf(err, errcap, "cannot create control socket %s: %s", path,
           strerror(errno));
  if (srv->lfd >= 0) close(srv->lfd);
  srv->lfd = -1;
  free(srv->clients);
  srv->clients = NULL;
  return MDHT_ERR_IO;
}

int mdht_ctl_server_attach(mdht_ctl_server *srv, mdht_driver *driver) {
  int rc = mdht_loop_watch(driver->loop, srv->lfd, EPOLLIN, on_listen, srv);
  if (rc < 0) return rc;
  srv->driver = driver;
  mdht_loop_timer_init(&srv->timer, on_timer, srv);
  mdht_loop_wakeup_add(driver->loop, &srv->wake, on_wake, srv);
  srv->sub = mdht_node_subscribe(driver->node, on_event, srv);
  return srv->sub < 0 ? srv->sub : 0; /* MDHT_ERR_FULL */
}

void mdht_ctl_server_close(mdht_ctl_server *srv) {
  struct stat st;

  if (srv->clients)
    for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++) {
      mdht_ctl_client *c = &srv->clients[i];
      if (c->fd < 0) continue;
      /* Tell a waiting client why, if its socket takes it right away. */
      if (c->busy && !c->job.done) {
        c->job.notify = NULL;
        mdht_ctl_job_fail(&c->job, MDHT_CTL_EXIT_ERROR,
                          "the node is shutting down");
        client_write(c, mdht_driver_now());
      }
      client_close(srv, c);
    }
  free(srv->clients);
  srv->clients = NULL;
  if (srv->driver) {
    if (srv->sub >= 0) mdht_node_unsubscribe(srv->driver->node, srv->sub);
    mdht_loop_unwatch(srv->driver->loop, srv->lfd);
    mdht_loop_timer_stop(srv->driver->loop, &srv->timer);
    mdht_loop_wakeup_del(srv->driver->loop, &srv->wake);
  }
  srv->sub = -1;
  srv->driver = NULL;
  if (srv->lfd >= 0) {
    close(srv->lfd);
    /* Only our own socket: another node may have taken the path since. */
    if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
        st.st_ino == srv->ino)
      unlink(srv->path);
  }
  srv->lfd = -1;
}

/* -------------------------------------------------------- default path */

bool mdht_ctl_serves(const char *path) {
  int rc = probe(path);
  /* A full backlog is a node that is there, and busy. */
  return rc == 0 || rc == -EAGAIN;
}

int mdht_ctl_default_path(char *buf, size_t cap, const char *state_dir,
                          bool *in_state) {
  const char *rt = getenv("XDG_RUNTIME_DIR");
  char dir[4096];
  int n;

  if (in_state) *in_state = false;
  /* XDG: a relative path in the variable is invalid and to be ignored. */
  if (rt && rt[0] == '/') {
    n = snprintf(buf, cap, "%s/mdht.sock", rt);
  } else {
    if (!state_dir) {
      if (mdht_persist_default_dir(dir, sizeof dir) < 0) return -ENOENT;
      state_dir = dir;
    }
    if (in_state) *in_state = true;
    n = snprintf(buf, cap, "%s/control", state_dir);
  }
  return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}
