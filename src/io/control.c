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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver.h"

/* --------------------------------------------------------------- server */

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

/* epoll tags of the server's own fds; clients are TAG_CLIENT + slot. */
enum { TAG_LISTEN, TAG_TIMER, TAG_WAKE, TAG_CLIENT };

static void wake(mdht_ctl_server *srv) {
  uint64_t one = 1;
  /* The counter cannot overflow in practice; EAGAIN would mean it is
   * already readable, which is all we want. */
  if (write(srv->efd, &one, sizeof one) < 0) return;
}

static void client_close(mdht_ctl_server *srv, mdht_ctl_client *c) {
  if (c->fd < 0) return;
  /* The node must not call back into a slot that is gone. */
  if (c->busy && !c->job.done && c->job.op > 0)
    mdht_node_cancel(c->job.node, c->job.op);
  epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
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
  struct epoll_event ev = {0};
  /* Read only what can be acted on: one request at a time, so that a
   * client that pipelines cannot make the node buffer without bound. */
  bool rd = !c->eof && !c->closing && !c->busy && !has_line(c) &&
            c->inlen < sizeof c->in;
  uint32_t want = (rd ? EPOLLIN : 0) | (out_pending(c) ? EPOLLOUT : 0);
  if (want == c->events) return;
  ev.events = want;
  ev.data.u64 = TAG_CLIENT + (uint64_t)(c - srv->clients);
  if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0) c->events = want;
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

/* Everything a client may need after any event: finish, time out, send,
 * start the next request, close. Returns its next deadline. */
static mdht_time client_service(mdht_ctl_server *srv, mdht_ctl_client *c,
                                mdht_time now) {
  for (;;) {
    if (c->busy && c->waiting && !c->job.done)
      c->waiting = mdht_ctl_job_start(&c->job, now) == MDHT_ERR_AGAIN;
    if (c->busy && !c->job.done && now >= c->job.deadline) {
      char msg[96];
      if (c->waiting)
        snprintf(msg, sizeof msg, "the node knows no other node yet");
      else
        snprintf(msg, sizeof msg, "timed out after %llu ms",
                 (unsigned long long)c->job.req.timeout_ms);
      mdht_ctl_job_fail(&c->job, MDHT_CTL_EXIT_ERROR, msg);
    }
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
  return c->busy ? c->job.deadline : c->idle_deadline;
}

static void arm_timer(mdht_ctl_server *srv, mdht_time at) {
  struct itimerspec its = {0};
  if (at != UINT64_MAX) {
    /* mdht_driver_now is CLOCK_MONOTONIC in ms; an it_value of zero would
     * disarm, so the past becomes 1 ms. */
    if (at == 0) at = 1;
    its.it_value.tv_sec = (time_t)(at / 1000);
    its.it_value.tv_nsec = (long)(at % 1000) * 1000000;
  }
  timerfd_settime(srv->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void accept_clients(mdht_ctl_server *srv, mdht_time now) {
  /* Bounded, so that a connect flood cannot keep the node from its own
   * work; the rest wait in the backlog. */
  for (int round = 0; round < MDHT_CTL_MAX_CLIENTS; round++) {
    int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    mdht_ctl_client *c = NULL;
    struct epoll_event ev = {0};

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
    ev.events = c->events = EPOLLIN;
    ev.data.u64 = TAG_CLIENT + (uint64_t)(c - srv->clients);
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
      close(fd);
      c->fd = -1;
    }
  }
}

static void drain(int fd) {
  uint64_t v;
  if (read(fd, &v, sizeof v) < 0) return; /* EAGAIN: nothing was pending */
}

static void on_ready(mdht_driver *d, int fd, uint32_t events, void *user) {
  mdht_ctl_server *srv = user;
  struct epoll_event evs[MDHT_CTL_MAX_CLIENTS + 3];
  mdht_time now = mdht_driver_now(), next = UINT64_MAX;
  int n;

  (void)d, (void)fd, (void)events;
  n = epoll_wait(srv->epfd, evs, (int)(sizeof evs / sizeof evs[0]), 0);
  for (int i = 0; i < n; i++) {
    uint64_t tag = evs[i].data.u64;
    mdht_ctl_client *c;
    if (tag == TAG_LISTEN) {
      accept_clients(srv, now);
    } else if (tag == TAG_TIMER || tag == TAG_WAKE) {
      drain(tag == TAG_TIMER ? srv->tfd : srv->efd);
    } else if (tag - TAG_CLIENT < MDHT_CTL_MAX_CLIENTS) {
      c = &srv->clients[tag - TAG_CLIENT];
      if (c->fd < 0) continue;
      if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
        /* Both directions are shut: nobody will read an answer. */
        client_close(srv, c);
        continue;
      }
      if (evs[i].events & EPOLLIN) client_read(c, now);
    }
  }
  for (size_t i = 0; i < MDHT_CTL_MAX_CLIENTS; i++) {
    mdht_ctl_client *c = &srv->clients[i];
    mdht_time t;
    if (c->fd < 0) continue;
    t = client_service(srv, c, now);
    if (t < next) next = t;
  }
  arm_timer(srv, next);
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
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int rc;
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
      snprintf(err, errcap, "another node is running on %s", path);
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
  srv->lfd = srv->epfd = srv->tfd = srv->efd = -1;
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
      snprintf(err, errcap, "another node is running on %s", path);
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

static int ep_add(int epfd, int fd, uint64_t tag) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int mdht_ctl_server_attach(mdht_ctl_server *srv, mdht_driver *driver) {
  int rc;

  srv->driver = driver;
  srv->epfd = epoll_create1(EPOLL_CLOEXEC);
  srv->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  srv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (srv->epfd < 0 || srv->tfd < 0 || srv->efd < 0) return -errno;
  if ((rc = ep_add(srv->epfd, srv->lfd, TAG_LISTEN)) < 0 ||
      (rc = ep_add(srv->epfd, srv->tfd, TAG_TIMER)) < 0 ||
      (rc = ep_add(srv->epfd, srv->efd, TAG_WAKE)) < 0)
    return rc;
  srv->sub = mdht_node_subscribe(driver->node, on_event, srv);
  if (srv->sub < 0) return srv->sub; /* MDHT_ERR_FULL */
  /* One hook for everything: the driver's table is small, and the
   * server's own set holds any number of clients. */
  return mdht_driver_add_fd(driver, srv->epfd, EPOLLIN, on_ready, srv);
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
    if (srv->epfd >= 0) mdht_driver_del_fd(srv->driver, srv->epfd);
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
  if (srv->epfd >= 0) close(srv->epfd);
  if (srv->tfd >= 0) close(srv->tfd);
  if (srv->efd >= 0) close(srv->efd);
  srv->lfd = srv->epfd = srv->tfd = srv->efd = -1;
}
