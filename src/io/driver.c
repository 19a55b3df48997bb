#include "driver.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

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

mdht_time mdht_driver_now(void) {
  return mdht_loop_now();
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
    mdht_loop_timer_set(d->loop, &d->resolve_timer,
                        mdht_loop_now() + d->resolve_backoff);
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
static void retry_unresolved(mdht_loop *l, mdht_loop_timer *t, void *user) {
  mdht_driver *d = user;
  (void)t;
  if (d->nunresolved == 0) return;
  char names[MDHT_DRIVER_MAX_UNRESOLVED][264];
  size_t n = d->nunresolved;
  memcpy(names, d->unresolved, sizeof names);
  for (size_t i = 0; i < n; i++)
    mdht_driver_bootstrap(d, names[i]);
  if (d->nunresolved == 0) return;
  d->resolve_backoff *= 2;
  if (d->resolve_backoff > MDHT_DRIVER_RESOLVE_MAX_MS)
    d->resolve_backoff = MDHT_DRIVER_RESOLVE_MAX_MS;
  mdht_loop_timer_set(l, &d->resolve_timer,
                      mdht_loop_now() + d->resolve_backoff);
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
  hints.ai_family = d->node2                                     ? AF_UNSPEC
                    : d->bind.sock.local.family == MDHT_AF_INET6 ? AF_INET6
                                                                 : AF_INET;
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
    mdht_node *n = mdht_driver_node_of(d, a.family);
    if (!n) continue;
    rc = mdht_node_add_bootstrap(n, &a, now);
    if (rc < 0) {
      mdht_addr_format(&a, buf, sizeof buf);
      mdht_logforge_logf(d->log, MDHT_LOG_WARN, "bootstrap %s (%s): %s",
                         hostport, buf, mdht_strerror(rc));
      continue;
    }
    pinged++;
  }
  freeaddrinfo(res);
  if (pinged > 0) mdht_binding_flush(&d->bind);
  if (pinged > 0 && d->node2) mdht_binding_flush(&d->bind2);
  return pinged;
}

mdht_node *mdht_driver_node_of(mdht_driver *d, int family) {
  if (d->node && d->bind.sock.local.family == family) return d->node;
  if (d->node2 && d->bind2.sock.local.family == family) return d->node2;
  return NULL;
}

/* ------------------------------------------------------------ life cycle */

/* A node: on the bound address (a node on a LAN or loopback talks to
 * neighbours that a public node would refuse as martians), logged. */
static int make_node(mdht_driver *d, const mdht_driver_opts *opts,
                     const mdht_binding *b, const mdht_id *id, mdht_node **out,
                     int *sub) {
  mdht_callbacks cb = {mdht_driver_random, d};
  mdht_config cfg = opts->cfg;
  if (mdht_addr_is_private(&b->sock.local)) cfg.allow_private = true;
  int rc = mdht_node_new(out, &cfg, &cb, id, &b->sock.local, mdht_loop_now());
  if (rc < 0) {
    snprintf(d->error, sizeof d->error, "cannot start node: %s",
             mdht_strerror(rc));
    return rc;
  }
  if (d->log) {
    *sub = mdht_node_subscribe(*out, mdht_logforge_on_event, d->log);
    if (*sub < 0)
      mdht_logforge_logf(d->log, MDHT_LOG_WARN, "cannot log events: %s",
                         mdht_strerror(*sub));
  }
  return 0;
}

/* BEP 32: the second family's socket and node, with the first's id,
 * paired with it. A machine without that family is no error when the
 * second address is optional. Returns 0 or an error (d->error set). */
static int open_second(mdht_driver *d, const mdht_driver_opts *opts) {
  char buf[64];
  int rc = mdht_binding_open(&d->bind2, d->loop, &opts->bind2);
  d->bind2.log = d->log;
  if (rc < 0) {
    mdht_binding_close(&d->bind2);
    if (opts->bind2_optional &&
        (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL || rc == -EPROTONOSUPPORT))
      return 0;
    if (mdht_addr_format(&opts->bind2, buf, sizeof buf) < 0) strcpy(buf, "?");
    snprintf(d->error, sizeof d->error, "cannot bind %s: %s", buf,
             strerror(-rc));
    return rc;
  }
  rc = make_node(d, opts, &d->bind2, mdht_node_id(d->node), &d->node2,
                 &d->log_sub2);
  if (rc == 0 && (rc = mdht_node_pair(d->node, d->node2)) < 0)
    snprintf(d->error, sizeof d->error, "cannot pair the nodes: %s",
             mdht_strerror(rc));
  if (rc == 0 && (rc = mdht_binding_start(&d->bind2, d->node2)) < 0)
    snprintf(d->error, sizeof d->error, "cannot start: %s", strerror(-rc));
  return rc;
}

int mdht_driver_init(mdht_driver *d, mdht_loop *loop,
                     const mdht_driver_opts *opts) {
  char buf[64];
  memset(d, 0, sizeof *d);
  d->loop = loop;
  d->rnd.pos = sizeof d->rnd.buf; /* empty: filled on first use */
  d->log_sub = d->log_sub2 = -1;
  d->log = opts->log;
  mdht_loop_timer_init(&d->resolve_timer, retry_unresolved, d);

  int rc = mdht_binding_open(&d->bind, loop, &opts->bind);
  d->bind.log = d->log;
  if (rc < 0) {
    if (mdht_addr_format(&opts->bind, buf, sizeof buf) < 0) strcpy(buf, "?");
    snprintf(d->error, sizeof d->error, "cannot bind %s: %s", buf,
             strerror(-rc));
  } else if ((rc = make_node(d, opts, &d->bind, opts->id, &d->node,
                             &d->log_sub)) == 0 &&
             (rc = mdht_binding_start(&d->bind, d->node)) < 0) {
    snprintf(d->error, sizeof d->error, "cannot start: %s", strerror(-rc));
  }
  if (rc == 0 && opts->has_bind2) rc = open_second(d, opts);
  if (rc < 0) {
    /* Not logged: the caller prints d->error as the command's one error
     * line (mdht: cannot bind ...). */
    mdht_driver_free(d);
    return rc;
  }
  /* One listening line per family. */
  mdht_logforge_listening(d->log, &d->bind.sock.local, mdht_node_id(d->node));
  if (d->node2)
    mdht_logforge_listening(d->log, &d->bind2.sock.local,
                            mdht_node_id(d->node2));
  for (size_t i = 0; i < opts->nbootstrap; i++)
    mdht_driver_bootstrap(d, opts->bootstrap[i]);
  return 0;
}

void mdht_driver_free(mdht_driver *d) {
  if (d->loop) mdht_loop_timer_stop(d->loop, &d->resolve_timer);
  mdht_binding_close(&d->bind);
  mdht_binding_close(&d->bind2);
  if (d->node2) mdht_node_del(d->node2);
  d->node2 = NULL;
  if (d->node) mdht_node_del(d->node);
  d->node = NULL;
}
