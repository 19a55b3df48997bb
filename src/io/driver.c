#include "driver.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "hostport.h"

const char *const mdht_default_bootstrap[] = {
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
};
const size_t mdht_default_bootstrap_count =
    sizeof mdht_default_bootstrap / sizeof mdht_default_bootstrap[0];

/* Batches read per readiness before timers get a turn: a flood of queries
 * must not starve timeouts and maintenance. */
#define RECV_ROUNDS 8

mdht_time mdht_driver_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (mdht_time)ts.tv_sec * 1000 + (mdht_time)ts.tv_nsec / 1000000;
}

uint64_t mdht_driver_wallclock(void *user) {
  struct timespec ts;
  (void)user;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void fill_random(uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = getrandom(buf, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* The callback cannot fail, and ids and tokens from a broken source
       * would make the node easy to poison. */
      abort();
    }
    buf += n;
    len -= (size_t)n;
  }
}

void mdht_driver_random(uint8_t *buf, size_t len, void *user) {
  mdht_driver *d = user;
  if (!d || len > sizeof d->rnd.buf) {
    fill_random(buf, len);
    return;
  }
  if (d->rnd.pos + len > sizeof d->rnd.buf) {
    fill_random(d->rnd.buf, sizeof d->rnd.buf);
    d->rnd.pos = 0;
  }
  memcpy(buf, d->rnd.buf + d->rnd.pos, len);
  /* Each byte is handed out once. */
  memset(d->rnd.buf + d->rnd.pos, 0, len);
  d->rnd.pos += len;
}

void mdht_driver_opts_default(mdht_driver_opts *o) {
  memset(o, 0, sizeof *o);
  o->bind.family = MDHT_AF_INET;
  o->bind.port = 6881;
  mdht_config_default(&o->cfg);
}

/* --------------------------------------------------------------- sending */

static void set_want_out(mdht_driver *d, bool want) {
  struct epoll_event ev = {0};

  if (want == d->want_out) return;
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
  ev.data.fd = d->sock.fd;
  if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, d->sock.fd, &ev) == 0)
    d->want_out = want;
}

void mdht_driver_flush(mdht_driver *d) {
  uint64_t errors = d->sock.stats.send_errors;
  bool more = true;

  while (more) {
    uint8_t *slot;
    size_t cap;

    while ((slot = mdht_sock_tx_slot(&d->sock, &cap)) != NULL) {
      mdht_addr to;
      int n = mdht_node_next_packet(d->node, &to, slot, cap);
      if (n <= 0) {
        if (n < 0)
          mdht_logforge_logf(d->log, MDHT_LOG_ERROR, "next_packet: %s",
                             mdht_strerror(n));
        more = false;
        break;
      }
      mdht_sock_tx_commit(&d->sock, &to, (size_t)n);
    }
    mdht_sock_flush(&d->sock);
    /* The kernel is full: what is left waits in our queue (EPOLLOUT) and
     * in the node's, which drops and counts if it overflows. */
    if (mdht_sock_tx_pending(&d->sock) > 0) break;
  }
  set_want_out(d, mdht_sock_tx_pending(&d->sock) > 0);
  if (d->sock.stats.send_errors != errors)
    mdht_logforge_logf(d->log, MDHT_LOG_DEBUG, "%llu datagrams not sent: %s",
                       (unsigned long long)(d->sock.stats.send_errors - errors),
                       strerror(d->sock.last_send_error));
}

/* ------------------------------------------------------------- bootstrap */

/* Remembers a name to resolve again later; true if it is new. */
static bool remember_unresolved(mdht_driver *d, const char *hostport) {
  for (size_t i = 0; i < d->nunresolved; i++)
    if (strcmp(d->unresolved[i], hostport) == 0) return false;
  if (d->nunresolved >= MDHT_DRIVER_MAX_UNRESOLVED ||
      strlen(hostport) >= sizeof d->unresolved[0])
    return true; /* warned about, not kept */
  strcpy(d->unresolved[d->nunresolved++], hostport);
  if (d->nunresolved == 1) {
    d->resolve_backoff = MDHT_DRIVER_RESOLVE_MIN_MS;
    d->resolve_at = mdht_driver_now() + d->resolve_backoff;
  }
  return true;
}

static void forget_unresolved(mdht_driver *d, const char *hostport) {
  for (size_t i = 0; i < d->nunresolved; i++) {
    if (strcmp(d->unresolved[i], hostport) == 0) {
      memmove(d->unresolved[i], d->unresolved[i + 1],
              (d->nunresolved - i - 1) * sizeof d->unresolved[0]);
      d->nunresolved--;
      return;
    }
  }
}

/* Tries the names that did not resolve again, doubling the wait each
 * round (30 s to 10 min). Copies first: a retry edits the list. */
static void retry_unresolved(mdht_driver *d, mdht_time now) {
  if (d->nunresolved == 0 || now < d->resolve_at) return;
  char names[MDHT_DRIVER_MAX_UNRESOLVED][264];
  size_t n = d->nunresolved;
  memcpy(names, d->unresolved, sizeof names);
  for (size_t i = 0; i < n; i++)
    mdht_driver_bootstrap(d, names[i]);
  d->resolve_backoff *= 2;
  if (d->resolve_backoff > MDHT_DRIVER_RESOLVE_MAX_MS)
    d->resolve_backoff = MDHT_DRIVER_RESOLVE_MAX_MS;
  d->resolve_at = now + d->resolve_backoff;
}

int mdht_driver_bootstrap(mdht_driver *d, const char *hostport) {
  struct addrinfo hints = {0}, *res = NULL, *ai;
  char host[256];
  const char *port;
  int rc, pinged = 0;
  mdht_time now = mdht_driver_now();

  if (mdht_hostport_split(hostport, host, sizeof host, &port) < 0) {
    mdht_logforge_logf(d->log, MDHT_LOG_WARN,
                       "bootstrap %s: not HOST:PORT, skipped", hostport);
    return 0;
  }
  hints.ai_family = d->sock.local.family == MDHT_AF_INET6 ? AF_INET6 : AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    /* One warning per name; the retries stay quiet. */
    if (remember_unresolved(d, hostport))
      mdht_logforge_logf(
          d->log, MDHT_LOG_WARN, "bootstrap %s: cannot resolve: %s, will retry",
          hostport, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return 0;
  }
  forget_unresolved(d, hostport);
  for (ai = res; ai; ai = ai->ai_next) {
    mdht_addr a;
    char buf[64];
    if (mdht_sock_from_sockaddr(&a, ai->ai_addr, ai->ai_addrlen) < 0) continue;
    /* A router, not just a node: the node keeps it and asks again if its
     * table ever empties. */
    rc = mdht_node_add_bootstrap(d->node, &a, now);
    if (rc < 0) {
      mdht_addr_format(&a, buf, sizeof buf);
      mdht_logforge_logf(d->log, MDHT_LOG_WARN, "bootstrap %s (%s): %s",
                         hostport, buf, mdht_strerror(rc));
      continue;
    }
    pinged++;
  }
  freeaddrinfo(res);
  if (pinged > 0) mdht_driver_flush(d);
  return pinged;
}

/* ------------------------------------------------------------ life cycle */

static int epoll_add(int epfd, int fd, uint32_t events) {
  struct epoll_event ev = {0};
  ev.events = events;
  ev.data.fd = fd;
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int mdht_driver_init(mdht_driver *d, const mdht_driver_opts *opts) {
  mdht_callbacks cb = {mdht_driver_random, d};
  mdht_config cfg = opts->cfg;
  sigset_t set;
  char buf[64];
  int rc;

  memset(d, 0, sizeof *d);
  d->rnd.pos = sizeof d->rnd.buf; /* empty: filled on first use */
  d->epfd = d->sigfd = -1;
  d->sock.fd = -1;
  d->log_sub = -1;
  d->log = opts->log;

  /* Signals become readable events: the loop stays single-threaded and no
   * handler runs at an arbitrary point inside the node. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, &d->old_mask) < 0) {
    rc = -errno;
    goto fail;
  }
  d->masked = true;
  d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  d->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (d->sigfd < 0 || d->epfd < 0) {
    rc = -errno;
    goto fail;
  }
  rc = mdht_sock_rx_init(&d->rx);
  if (rc < 0) goto fail;

  rc = mdht_sock_open(&d->sock, &opts->bind);
  if (rc < 0) {
    if (mdht_addr_format(&opts->bind, buf, sizeof buf) < 0) strcpy(buf, "?");
    snprintf(d->error, sizeof d->error, "cannot bind %s: %s", buf,
             strerror(-rc));
    mdht_logforge_logf(d->log, MDHT_LOG_ERROR, "%s", d->error);
    goto fail;
  }
  /* A node on a LAN or loopback talks to neighbours that a public node
   * would refuse as martians. */
  if (mdht_addr_is_private(&d->sock.local)) cfg.allow_private = true;

  rc = mdht_node_new(&d->node, &cfg, &cb, opts->id, &d->sock.local,
                     mdht_driver_now());
  if (rc < 0) {
    snprintf(d->error, sizeof d->error, "cannot start node: %s",
             mdht_strerror(rc));
    mdht_logforge_logf(d->log, MDHT_LOG_ERROR, "%s", d->error);
    goto fail;
  }
  if (d->log) {
    d->log_sub = mdht_node_subscribe(d->node, mdht_logforge_on_event, d->log);
    if (d->log_sub < 0)
      mdht_logforge_logf(d->log, MDHT_LOG_WARN, "cannot log events: %s",
                         mdht_strerror(d->log_sub));
  }

  if ((rc = epoll_add(d->epfd, d->sock.fd, EPOLLIN)) < 0 ||
      (rc = epoll_add(d->epfd, d->sigfd, EPOLLIN)) < 0)
    goto fail;

  mdht_logforge_listening(d->log, &d->sock.local, mdht_node_id(d->node));
  for (size_t i = 0; i < opts->nbootstrap; i++)
    mdht_driver_bootstrap(d, opts->bootstrap[i]);
  return 0;

fail:
  if (!d->error[0])
    snprintf(d->error, sizeof d->error, "cannot start: %s", strerror(-rc));
  mdht_driver_free(d);
  return rc;
}

void mdht_driver_free(mdht_driver *d) {
  if (d->node) mdht_node_del(d->node);
  d->node = NULL;
  if (d->sock.fd >= 0 || d->sock.tx) mdht_sock_close(&d->sock);
  mdht_sock_rx_free(&d->rx);
  if (d->epfd >= 0) close(d->epfd);
  if (d->sigfd >= 0) close(d->sigfd);
  d->epfd = d->sigfd = -1;
  if (d->masked) sigprocmask(SIG_SETMASK, &d->old_mask, NULL);
  d->masked = false;
  d->nhooks = 0;
}

void mdht_driver_stop(mdht_driver *d) {
  d->stop = true;
}

/* ----------------------------------------------------------------- hooks */

int mdht_driver_add_fd(mdht_driver *d, int fd, uint32_t events,
                       mdht_driver_fd_cb cb, void *user) {
  int rc;

  if (d->nhooks >= MDHT_DRIVER_MAX_HOOKS) return -ENOSPC;
  rc = epoll_add(d->epfd, fd, events);
  if (rc < 0) return rc;
  d->hooks[d->nhooks].fd = fd;
  d->hooks[d->nhooks].cb = cb;
  d->hooks[d->nhooks].user = user;
  d->nhooks++;
  return 0;
}

int mdht_driver_del_fd(mdht_driver *d, int fd) {
  for (size_t i = 0; i < d->nhooks; i++) {
    if (d->hooks[i].fd != fd) continue;
    d->hooks[i] = d->hooks[--d->nhooks];
    /* The fd may already be closed, in which case epoll forgot it. */
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL);
    return 0;
  }
  return -ENOENT;
}

/* ------------------------------------------------------------------ loop */

static void on_signal(mdht_driver *d) {
  struct signalfd_siginfo si;

  while (read(d->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
    switch (si.ssi_signo) {
    case SIGINT:
    case SIGTERM:
      mdht_logforge_logf(d->log, MDHT_LOG_INFO, "%s received, shutting down",
                         si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
      d->stop = true;
      break;
    case SIGHUP:
      if (!d->on_hup) {
        mdht_logforge_logf(d->log, MDHT_LOG_INFO, "SIGHUP received, ignored");
        break;
      }
      mdht_logforge_logf(d->log, MDHT_LOG_INFO, "SIGHUP received, saving");
      d->on_hup(d, d->hup_user);
      break;
    default:
      break;
    }
  }
}

static void on_readable(mdht_driver *d) {
  for (int round = 0; round < RECV_ROUNDS; round++) {
    int n = mdht_sock_recv_batch(&d->sock, &d->rx);
    mdht_time now;

    if (n < 0) {
      /* ICMP errors surface here on some kernels; they are not fatal. */
      mdht_logforge_logf(d->log, MDHT_LOG_DEBUG, "recv: %s", strerror(-n));
      break;
    }
    if (d->rx.n == 0) break;
    now = mdht_driver_now();
    for (uint32_t i = 0; i < d->rx.n; i++)
      mdht_node_recv(d->node, &d->rx.from[i], d->rx.data[i], d->rx.len[i], now);
    /* Answer each batch before reading the next, so that the node's
     * bounded out-queue never has to hold more than one batch of replies. */
    mdht_driver_flush(d);
    if (n < MDHT_SOCK_BATCH) break;
  }
}

static int epoll_timeout(mdht_time now, mdht_time deadline) {
  if (deadline <= now) return 0;
  if (deadline - now > (mdht_time)INT_MAX) return INT_MAX;
  return (int)(deadline - now);
}

int mdht_driver_run(mdht_driver *d) {
  struct epoll_event evs[16];

  d->stop = false;
  mdht_driver_flush(d);
  while (!d->stop) {
    mdht_time now = mdht_driver_now();
    mdht_time wake = mdht_node_next_deadline(d->node);
    if (d->nunresolved && d->resolve_at < wake) wake = d->resolve_at;
    int n = epoll_wait(d->epfd, evs, 16, epoll_timeout(now, wake));
    if (n < 0) {
      if (errno == EINTR) continue;
      n = -errno;
      mdht_logforge_logf(d->log, MDHT_LOG_ERROR, "epoll_wait: %s",
                         strerror(-n));
      return n;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      uint32_t e = evs[i].events;
      if (fd == d->sock.fd) {
        if (e & EPOLLOUT) mdht_driver_flush(d);
        if (e & (EPOLLIN | EPOLLERR)) on_readable(d);
      } else if (fd == d->sigfd) {
        on_signal(d);
      } else {
        /* Looked up each time: an earlier callback may have removed it. */
        for (size_t h = 0; h < d->nhooks; h++) {
          if (d->hooks[h].fd == fd) {
            d->hooks[h].cb(d, fd, e, d->hooks[h].user);
            break;
          }
        }
      }
    }
    now = mdht_driver_now();
    if (mdht_node_next_deadline(d->node) <= now) mdht_node_tick(d->node, now);
    retry_unresolved(d, now);
    mdht_driver_flush(d);
  }
  return 0;
}
