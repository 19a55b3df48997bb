/* Metrics: see metrics.h. */
#include "metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "hostport.h"

/* Lookups take from tens of ms (a small network) to the 30 s a stuck one
 * may last; replies from under 5 ms (loopback, a LAN) to the 5 s of the
 * hard query timeout. */
const mdht_time mdht_metrics_lookup_bounds[MDHT_METRICS_NBUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000};
const mdht_time mdht_metrics_rtt_bounds[MDHT_METRICS_NBUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000};

/* ------------------------------------------------------------ the text */

void mdht_metrics_hist_add(mdht_metrics_hist *h, const mdht_time *bounds,
                           mdht_time ms) {
  size_t i = 0;
  while (i < MDHT_METRICS_NBUCKETS && ms > bounds[i])
    i++;
  h->bucket[i]++;
  h->count++;
  h->sum_ms += ms;
}

void mdht_metrics_observe(mdht_metrics_acc *acc, const mdht_event *ev) {
  switch (ev->type) {
  case MDHT_EV_LOOKUP_DONE:
    if ((unsigned)ev->method < MDHT_M_COUNT_)
      acc->lookups[ev->method][ev->u.lookup.ok ? 1 : 0]++;
    mdht_metrics_hist_add(&acc->lookup_ms, mdht_metrics_lookup_bounds,
                          ev->u.lookup.elapsed_ms);
    break;
  case MDHT_EV_RESPONSE_RECEIVED:
    mdht_metrics_hist_add(&acc->rtt_ms, mdht_metrics_rtt_bounds,
                          ev->u.response.rtt_ms);
    break;
  default:
    break;
  }
}

int mdht_metrics_escape(const char *in, char *out, size_t cap) {
  size_t n = 0;
  for (; *in; in++) {
    const char *rep = *in == '\\' ? "\\\\" : *in == '"' ? "\\\"" : NULL;
    char one[2] = {*in, '\0'};
    if (*in == '\n') rep = "\\n";
    if (!rep) rep = one;
    size_t l = strlen(rep);
    if (n + l >= cap) return -1;
    memcpy(out + n, rep, l);
    n += l;
  }
  if (n >= cap) return -1;
  out[n] = '\0';
  return (int)n;
}

/* An appending writer that remembers running out of room. */
typedef struct wbuf {
  char *p;
  size_t cap, n;
  bool over;
} wbuf;

__attribute__((format(printf, 2, 3))) static void w(wbuf *b, const char *fmt,
                                                    ...) {
  va_list ap;
  if (b->over) return;
  va_start(ap, fmt);
  int r = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
  va_end(ap);
  if (r < 0 || (size_t)r >= b->cap - b->n)
    b->over = true;
  else
    b->n += (size_t)r;
}

static void head(wbuf *b, const char *name, const char *type,
                 const char *help) {
  w(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(wbuf *b, const char *name, const char *type,
                   const char *help, uint64_t v) {
  head(b, name, type, help);
  w(b, "%s %llu\n", name, (unsigned long long)v);
}

/* ms as seconds, exactly: "0.05", "1.0", "12.345". */
static void seconds(mdht_time ms, char *out, size_t cap) {
  int n = snprintf(out, cap, "%llu.%03llu", (unsigned long long)(ms / 1000),
                   (unsigned long long)(ms % 1000));
  while (n > 0 && out[n - 1] == '0' && out[n - 2] != '.')
    out[--n] = '\0';
}

static void histogram(wbuf *b, const char *name, const char *help,
                      const mdht_metrics_hist *h, const mdht_time *bounds) {
  char le[32];
  uint64_t cum = 0;
  head(b, name, "histogram", help);
  for (size_t i = 0; i < MDHT_METRICS_NBUCKETS; i++) {
    cum += h->bucket[i];
    seconds(bounds[i], le, sizeof le);
    w(b, "%s_bucket{le=\"%s\"} %llu\n", name, le, (unsigned long long)cum);
  }
  w(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
  w(b, "%s_sum %llu.%03llu\n", name, (unsigned long long)(h->sum_ms / 1000),
    (unsigned long long)(h->sum_ms % 1000));
  w(b, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* One sample per KRPC method, labelled method="...". */
static void by_method(wbuf *b, const char *name, const char *help,
                      const uint64_t *v) {
  head(b, name, "counter", help);
  for (int m = 0; m < MDHT_M_COUNT_; m++)
    w(b, "%s{method=\"%s\"} %llu\n", name, mdht_method_name((mdht_method)m),
      (unsigned long long)v[m]);
}

/* The drop reasons' label values: the enum names in lower case, as the
 * `stats` JSON spells them. */
static const char *const drop_keys[] = {
#define DROP_KEY(name, text) #name,
    MDHT_DROPS(DROP_KEY)
#undef DROP_KEY
};

static void drops(wbuf *b, const mdht_stats *s) {
  head(b, "mdht_datagrams_dropped_total", "counter",
       "Datagrams dropped, by reason.");
  for (int r = 0; r < MDHT_DROP_COUNT_; r++) {
    char key[32];
    size_t i;
    for (i = 0; drop_keys[r][i] && i + 1 < sizeof key; i++) {
      char ch = drop_keys[r][i];
      key[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
    }
    key[i] = '\0';
    w(b, "mdht_datagrams_dropped_total{reason=\"%s\"} %llu\n", key,
      (unsigned long long)s->dropped[r]);
  }
}

static void counters(wbuf *b, const mdht_stats *s) {
  scalar(b, "mdht_datagrams_received_total", "counter",
         "Datagrams received, dropped ones included.", s->recv_packets);
  scalar(b, "mdht_datagrams_sent_total", "counter", "Datagrams sent.",
         s->sent_packets);
  by_method(b, "mdht_queries_received_total",
            "KRPC queries received, by method.", s->queries_in);
  by_method(b, "mdht_queries_sent_total", "KRPC queries sent, by method.",
            s->queries_out);
  scalar(b, "mdht_responses_received_total", "counter",
         "KRPC responses received.", s->responses_in);
  scalar(b, "mdht_responses_sent_total", "counter", "KRPC responses sent.",
         s->responses_out);
  scalar(b, "mdht_errors_received_total", "counter",
         "KRPC error messages received.", s->errors_in);
  scalar(b, "mdht_errors_sent_total", "counter", "KRPC error messages sent.",
         s->errors_out);
  scalar(b, "mdht_query_timeouts_total", "counter",
         "Queries sent that got no answer in time.", s->timeouts);
  drops(b, s);
  scalar(b, "mdht_rate_limited_total", "counter",
         "Datagrams refused by the per-IP rate limit.", s->rate_limited);
  scalar(b, "mdht_tokens_rejected_total", "counter",
         "announce_peer queries refused for a bad token.", s->tokens_rejected);
}

static void lookups(wbuf *b, const mdht_metrics_acc *acc) {
  /* The methods a lookup can be made of; ping and unknown never are. */
  static const mdht_method kinds[] = {MDHT_M_FIND_NODE, MDHT_M_GET_PEERS,
                                      MDHT_M_ANNOUNCE_PEER,
                                      MDHT_M_SAMPLE_INFOHASHES};
  head(b, "mdht_lookups_total", "counter",
       "Iterative lookups ended, by method and result (failed: no node "
       "answered, or cancelled).");
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    for (int ok = 1; ok >= 0; ok--)
      w(b, "mdht_lookups_total{method=\"%s\",result=\"%s\"} %llu\n",
        mdht_method_name(kinds[i]), ok ? "ok" : "failed",
        (unsigned long long)acc->lookups[kinds[i]][ok]);
}

static void gauges(wbuf *b, const mdht_stats *s) {
  /* Bad: neither good nor questionable; never negative, even should the
   * counts disagree. */
  uint64_t known = (uint64_t)s->nodes_good + s->nodes_questionable;
  uint64_t bad = s->nodes_total > known ? s->nodes_total - known : 0;
  head(b, "mdht_routing_nodes", "gauge", "Routing table entries, by state.");
  w(b, "mdht_routing_nodes{state=\"good\"} %u\n", s->nodes_good);
  w(b, "mdht_routing_nodes{state=\"questionable\"} %u\n",
    s->nodes_questionable);
  w(b, "mdht_routing_nodes{state=\"bad\"} %llu\n", (unsigned long long)bad);
  scalar(b, "mdht_routing_buckets", "gauge", "Routing table buckets.",
         s->buckets);
  scalar(b, "mdht_routing_replacements", "gauge",
         "Nodes waiting in the buckets' replacement caches.", s->replacements);
  scalar(b, "mdht_stored_infohashes", "gauge",
         "Info-hashes with announced peers stored.", s->infohashes);
  scalar(b, "mdht_stored_peers", "gauge", "Announced peers stored.", s->peers);
  scalar(b, "mdht_transactions_outstanding", "gauge",
         "Queries sent and not yet answered or timed out.",
         s->txns_outstanding);
  scalar(b, "mdht_lookups_running", "gauge", "Lookups under way.",
         s->lookups_running);
}

int mdht_metrics_format(const mdht_metrics_snapshot *s, char *buf, size_t cap) {
  wbuf b = {buf, cap, 0, cap == 0};
  char ver[128], id[128];
  if (mdht_metrics_escape(s->version ? s->version : "", ver, sizeof ver) < 0 ||
      mdht_metrics_escape(s->node_id, id, sizeof id) < 0)
    return -1;
  head(&b, "mdht_info", "gauge", "The node's version and id (always 1).");
  w(&b, "mdht_info{version=\"%s\",node_id=\"%s\"} 1\n", ver, id);
  head(&b, "mdht_start_time_seconds", "gauge",
       "When the node started, in seconds since the Unix epoch.");
  w(&b, "mdht_start_time_seconds %llu.%03llu\n",
    (unsigned long long)(s->start_wall_ms / 1000),
    (unsigned long long)(s->start_wall_ms % 1000));
  counters(&b, &s->stats);
  lookups(&b, &s->acc);
  gauges(&b, &s->stats);
  histogram(&b, "mdht_lookup_duration_seconds",
            "How long iterative lookups took, start to end.", &s->acc.lookup_ms,
            mdht_metrics_lookup_bounds);
  histogram(&b, "mdht_reply_rtt_seconds",
            "Round-trip time of the replies to our queries.", &s->acc.rtt_ms,
            mdht_metrics_rtt_bounds);
  return b.over ? -1 : (int)b.n;
}

/* ---------------------------------------------------------- the server */

int mdht_metrics_check_addr(const char *hostport) {
  char host[256];
  const char *port;
  return mdht_hostport_split(hostport, host, sizeof host, &port);
}

/* Resolves and binds; returns the listening fd or a negative errno, with
 * the reason in `why`. */
static int listen_on(const char *hostport, const char **why) {
  char host[256];
  const char *port;
  struct addrinfo hints, *res = NULL;
  int fd, one = 1, rc;

  if (mdht_hostport_split(hostport, host, sizeof host, &port) < 0) {
    *why = "not ADDR:PORT or [ADDR]:PORT";
    return -EINVAL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
    *why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
    return -EINVAL;
  }
  fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    /* A restarted node gets its port back despite TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (res->ai_family == AF_INET6)
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
        listen(fd, MDHT_METRICS_MAX_CONNS) < 0) {
      rc = -errno;
      close(fd);
      fd = rc;
    }
  } else {
    fd = -errno;
  }
  freeaddrinfo(res);
  if (fd < 0) *why = strerror(-fd);
  return fd;
}

int mdht_metrics_open(mdht_metrics_server *m, const char *hostport, char *err,
                      size_t errcap) {
  const char *why = "";
  memset(m, 0, sizeof *m);
  m->sub = -1;
  m->mhd_epfd = -1;
  snprintf(m->where, sizeof m->where, "%s", hostport);
  m->lfd = listen_on(hostport, &why);
  if (m->lfd < 0) {
    int rc = m->lfd;
    snprintf(err, errcap, "cannot serve metrics on %s: %s", hostport, why);
    m->lfd = -1;
    return rc;
  }
  return 0;
}

/* MHD's next deadline as our timer: MHD_run must be called by then even
 * when no fd is ready (idle connections to close, data it already holds). */
static void rearm(mdht_metrics_server *m) {
  MHD_UNSIGNED_LONG_LONG t;
  if (MHD_get_timeout(m->mhd, &t) == MHD_YES)
    mdht_loop_timer_set(m->loop, &m->timer, mdht_loop_now() + t);
  else
    mdht_loop_timer_stop(m->loop, &m->timer);
}

static unsigned connections(mdht_metrics_server *m) {
  const union MHD_DaemonInfo *i =
      MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
  return i ? i->num_connections : 0;
}

static void run_mhd(mdht_metrics_server *m) {
  unsigned before = connections(m);
  MHD_run(m->mhd);
  /* At the connection limit MHD stops watching its listening socket, and
   * watches it again only at the start of a run: once a run has freed a
   * slot, a second one takes what waits in the backlog (else it waits
   * for the next request or timeout, maybe forever). */
  if (connections(m) < before) MHD_run(m->mhd);
  rearm(m);
}

static void on_ready(mdht_loop *loop, int fd, uint32_t events, void *user) {
  (void)loop, (void)fd, (void)events;
  run_mhd(user);
}

static void on_timer(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  (void)loop, (void)t;
  run_mhd(user);
}

static void on_event(const mdht_event *ev, void *user) {
  mdht_metrics_server *m = user;
  mdht_metrics_observe(&m->acc, ev);
}

/* MHD's complaints (a client that misbehaves, ...) are debug lines. */
static void on_mhd_log(void *user, const char *fmt, va_list ap) {
  mdht_metrics_server *m = user;
  char line[256];
  vsnprintf(line, sizeof line, fmt, ap);
  line[strcspn(line, "\r\n")] = '\0';
  mdht_logforge_logf(m->log, MDHT_LOG_DEBUG, "metrics: %s", line);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status,
                             const char *text) {
  struct MHD_Response *r = MHD_create_response_from_buffer(
      strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result rc = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return rc;
}

/* The page, built now from the node (we are on its thread). */
static enum MHD_Result serve_page(mdht_metrics_server *m,
                                  struct MHD_Connection *c) {
  mdht_metrics_snapshot s;
  char *buf = malloc(MDHT_METRICS_MAX_TEXT);
  int n;

  memset(&s, 0, sizeof s);
  mdht_node_stats(m->node, mdht_loop_now(), &s.stats);
  s.acc = m->acc;
  s.version = MDHT_VERSION;
  mdht_id_format(mdht_node_id(m->node), s.node_id);
  s.start_wall_ms = m->start_wall_ms;
  if (!buf || (n = mdht_metrics_format(&s, buf, MDHT_METRICS_MAX_TEXT)) < 0) {
    free(buf);
    return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot build the page\n");
  }
  struct MHD_Response *r =
      MHD_create_response_from_buffer((size_t)n, buf, MHD_RESPMEM_MUST_FREE);
  if (!r) {
    free(buf);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          MDHT_METRICS_CONTENT_TYPE);
  enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
  MHD_destroy_response(r);
  m->requests++;
  return rc;
}

static enum MHD_Result on_request(void *user, struct MHD_Connection *c,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **req) {
  (void)version, (void)upload, (void)upload_size, (void)req;
  /* Answered at the first call, before any body: no request body is
   * read into memory, whatever its size. */
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
      strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
  if (strcmp(url, "/metrics") != 0)
    return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n");
  return serve_page(user, c);
}

int mdht_metrics_attach(mdht_metrics_server *m, mdht_loop *loop,
                        mdht_node *node, mdht_logforge *log,
                        uint64_t start_wall_ms) {
  const union MHD_DaemonInfo *info;
  int rc;

  m->loop = loop;
  m->node = node;
  m->log = log;
  m->start_wall_ms = start_wall_ms;
  mdht_loop_timer_init(&m->timer, on_timer, m);
  /* No thread: MHD_USE_EPOLL without an internal polling thread is
   * "external" polling of MHD's own epoll fd. */
  m->mhd = MHD_start_daemon(
      MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, m,
      MHD_OPTION_LISTEN_SOCKET, m->lfd, MHD_OPTION_CONNECTION_LIMIT,
      (unsigned)MDHT_METRICS_MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned)MDHT_METRICS_CONN_TIMEOUT_S, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, m, MHD_OPTION_END);
  if (!m->mhd) return -EIO;
  m->lfd = -1; /* MHD's now: MHD_stop_daemon closes it */
  info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info) return -EIO;
  m->mhd_epfd = info->epoll_fd;
  if ((rc = mdht_loop_watch(loop, m->mhd_epfd, EPOLLIN, on_ready, m)) < 0) {
    m->mhd_epfd = -1;
    return rc;
  }
  if ((rc = mdht_node_subscribe(node, on_event, m)) < 0) return rc;
  m->sub = rc;
  rearm(m);
  return 0;
}

void mdht_metrics_close(mdht_metrics_server *m) {
  if (m->sub >= 0) mdht_node_unsubscribe(m->node, m->sub);
  m->sub = -1;
  if (m->mhd_epfd >= 0) mdht_loop_unwatch(m->loop, m->mhd_epfd);
  m->mhd_epfd = -1;
  if (m->loop) mdht_loop_timer_stop(m->loop, &m->timer);
  if (m->mhd) MHD_stop_daemon(m->mhd);
  m->mhd = NULL;
  if (m->lfd >= 0) close(m->lfd);
  m->lfd = -1;
}
