/*
 * loadgen: keeps a bounded window of valid KRPC queries in flight to one
 * DHT node over loopback for a fixed time, validates every reply, and
 * reports answered queries per second and latency percentiles.
 *
 *   loadgen --target 127.0.0.1:6881 [--duration 5] [--warmup 0.5]
 *           [--window 192] [--sources 8] [--source-base 127.0.0.2]
 *           [--mix 1:4:4] [--timeout-ms 1000] [--expect-nodes 8]
 *           [--seed N] [--json]
 *
 * --mix is the weight of ping : find_node : get_peers; targets and
 * info-hashes are random. Queries leave from --sources UDP sockets bound to
 * consecutive loopback addresses (127.0.0.2, .3, ...), each with its own
 * node id, the way distinct remote nodes would reach a public node: the
 * node's per-IP state (rate limiter, routing table, tokens) sees several
 * sources, not one. Each socket owns window/sources transaction slots; a
 * slot is refilled as soon as its reply is validated or it times out, so
 * the node always has about `window` queries to work on.
 *
 * A reply counts as answered only if: it is bencode and nothing else; t is
 * the 4-byte id of a query outstanding on the socket it arrived on, from
 * the target's address; y is "r"; r is a dict with a 20-byte id; a
 * find_node reply has "nodes" whose length is a multiple of 26; a get_peers
 * reply has a token and nodes (multiple of 26) or values (6-byte strings).
 * Anything else is an error, counted by reason. A reply to a query that
 * already timed out is "late", neither answered nor error. Queries the
 * node sends us (confirmation pings) are answered like a minimal node.
 *
 * Only the measurement phase counts (after --warmup); the program stops by
 * itself after warmup + duration seconds. Exit status: 0, or 1 when nothing
 * was answered or any reply was invalid, 2 on a usage or system error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bcode.h"

#define BATCH 64       /* datagrams per sendmmsg / recvmmsg */
#define RX_BUF 4096    /* any KRPC reply fits; bigger ones are errors */
#define MAX_SOURCES 64 /* 127.0.0.2 .. 127.0.0.65 */
#define MAX_WINDOW 65535
#define LAT_MAX_US 1000000 /* latency histogram range: 1 us steps to 1 s */
#define RECV_ROUNDS 4      /* recvmmsg calls per readable socket per loop */

enum { M_PING, M_FIND_NODE, M_GET_PEERS, M_N };
static const char *const method_names[M_N] = {"ping", "find_node", "get_peers"};

/* Why a reply was rejected. */
#define REASONS(X)                                                             \
  X(BENCODE, "bencode")                                                        \
  X(TRUNCATED, "truncated")                                                    \
  X(SOURCE, "wrong_source")                                                    \
  X(TID, "unknown_tid")                                                        \
  X(Y, "bad_y")                                                                \
  X(KRPC_ERROR, "krpc_error")                                                  \
  X(NO_R, "no_r")                                                              \
  X(ID, "bad_id")                                                              \
  X(NODES, "bad_nodes")                                                        \
  X(TOKEN, "no_token")                                                         \
  X(VALUES, "bad_values")
enum {
#define R_ENUM(name, text) R_##name,
  REASONS(R_ENUM)
#undef R_ENUM
      R_N
};
static const char *const reason_names[R_N] = {
#define R_NAME(name, text) text,
    REASONS(R_NAME)
#undef R_NAME
};

typedef struct slot {
  uint64_t sent_ns;
  uint16_t gen; /* bumped at each reuse, so a late reply cannot match */
  uint8_t method;
  bool live;
} slot;

typedef struct source {
  int fd;
  uint8_t id[20];
  uint32_t lo, n; /* its slots: [lo, lo + n) */
  uint32_t *freelist;
  uint32_t nfree;
} source;

typedef struct stats {
  uint64_t sent, answered, by_method[M_N];
  uint64_t timeouts, late, invalid, reasons[R_N];
  uint64_t queries_in; /* queries the node sent us, answered */
  uint64_t nodes_sum, fn_replies, fn_short;
  uint64_t send_errors;
} stats;

static struct {
  struct sockaddr_in target;
  double duration, warmup;
  uint32_t window, nsrc, timeout_ms, expect_nodes;
  uint32_t mix[M_N];
  uint64_t seed;
  bool json;
  struct in_addr base;
} opt;

static slot *slots;
static source srcs[MAX_SOURCES];
static stats st;
static uint32_t *lat_hist; /* LAT_MAX_US + 1 buckets, the last overflow */
static uint64_t rng;
static bool measuring;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(void) {
  /* xorshift64*: targets only need to be spread, not secret. */
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545f4914f6cdd1dULL;
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void usage(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  fprintf(stderr, "usage: loadgen --target IP:PORT [--duration S] [--warmup S] "
                  "[--window N] [--sources N] [--source-base IP] [--mix P:F:G] "
                  "[--timeout-ms N] [--expect-nodes N] [--seed N] [--json]\n");
  exit(2);
}

/* ------------------------------------------------------------ encoding */

typedef struct wbuf {
  uint8_t *p;
  size_t n;
} wbuf;

static void put(wbuf *w, const void *s, size_t n) {
  memcpy(w->p + w->n, s, n);
  w->n += n;
}
#define PUTS(w, lit) put((w), lit, sizeof lit - 1)

static void put_random_id(wbuf *w) {
  for (int i = 0; i < 20; i += 4) {
    uint32_t r = (uint32_t)(rnd() >> 32);
    memcpy(w->p + w->n + i, &r, 4);
  }
  w->n += 20;
}

static uint8_t pick_method(void) {
  uint32_t total = opt.mix[0] + opt.mix[1] + opt.mix[2];
  uint32_t r = (uint32_t)((rnd() >> 32) % total);
  if (r < opt.mix[0]) return M_PING;
  if (r < opt.mix[0] + opt.mix[1]) return M_FIND_NODE;
  return M_GET_PEERS;
}

/* Keys in bencode order, as a real client sends them. */
static size_t build_query(uint8_t *buf, const source *s, uint8_t method,
                          uint32_t tid) {
  wbuf w = {buf, 0};
  PUTS(&w, "d1:ad2:id20:");
  put(&w, s->id, 20);
  if (method == M_FIND_NODE) {
    PUTS(&w, "6:target20:");
    put_random_id(&w);
    PUTS(&w, "e1:q9:find_node");
  } else if (method == M_GET_PEERS) {
    PUTS(&w, "9:info_hash20:");
    put_random_id(&w);
    PUTS(&w, "e1:q9:get_peers");
  } else {
    PUTS(&w, "e1:q4:ping");
  }
  uint8_t t[4] = {(uint8_t)(tid >> 24), (uint8_t)(tid >> 16),
                  (uint8_t)(tid >> 8), (uint8_t)tid};
  PUTS(&w, "1:t4:");
  put(&w, t, 4);
  PUTS(&w, "1:y1:qe");
  return w.n;
}

/* ------------------------------------------------------------- sending */

static void send_batch(source *s) {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  uint8_t bufs[BATCH][128];
  uint32_t idx[BATCH];
  uint32_t n = 0;

  while (n < BATCH && s->nfree > 0) {
    uint32_t i = s->freelist[--s->nfree];
    slot *sl = &slots[i];
    sl->gen++;
    sl->method = pick_method();
    idx[n] = i;
    iov[n].iov_base = bufs[n];
    iov[n].iov_len = build_query(bufs[n], s, sl->method, i << 16 | sl->gen);
    memset(&msgs[n], 0, sizeof msgs[n]);
    msgs[n].msg_hdr.msg_name = &opt.target;
    msgs[n].msg_hdr.msg_namelen = sizeof opt.target;
    msgs[n].msg_hdr.msg_iov = &iov[n];
    msgs[n].msg_hdr.msg_iovlen = 1;
    n++;
  }
  if (n == 0) return;
  int sent = sendmmsg(s->fd, msgs, n, MSG_DONTWAIT);
  if (sent < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      st.send_errors++;
    sent = 0;
  }
  uint64_t t = now_ns();
  for (uint32_t k = 0; k < n; k++) {
    if ((int)k < sent) {
      slots[idx[k]].live = true;
      slots[idx[k]].sent_ns = t;
    } else {
      s->freelist[s->nfree++] = idx[k]; /* not sent: free again */
    }
  }
  if (measuring) st.sent += (uint64_t)sent;
}

static void release(source *s, uint32_t i) {
  slots[i].live = false;
  s->freelist[s->nfree++] = i;
}

/* ----------------------------------------------------------- receiving */

/* The node asked us something (a confirmation ping): answer as a node. */
static void answer_query(source *s, const bc_span *t,
                         const struct sockaddr_in *from) {
  uint8_t buf[128];
  wbuf w = {buf, 0};
  if (t->len > 32) return;
  char hdr[16];
  PUTS(&w, "d1:rd2:id20:");
  put(&w, s->id, 20);
  PUTS(&w, "e1:t");
  int hl = snprintf(hdr, sizeof hdr, "%zu:", t->len);
  put(&w, hdr, (size_t)hl);
  put(&w, t->s, t->len);
  PUTS(&w, "1:y1:re");
  sendto(s->fd, buf, w.n, MSG_DONTWAIT, (const struct sockaddr *)from,
         sizeof *from);
  if (measuring) st.queries_in++;
}

static void reject(int reason) {
  if (!measuring) return;
  st.invalid++;
  st.reasons[reason]++;
}

/* Nodes blob: a multiple of 26 bytes; returns the count or -1. */
static int count_nodes(const bc_span *v) {
  if (v->type != 's' || v->len % 26) return -1;
  return (int)(v->len / 26);
}

/* Checks a reply to a query of `method`: R_N when valid, else the reason.
 * *nodes gets the number of compact nodes (-1 when absent). */
static int check_reply(const bc_span *k_y, const bc_span *k_r, uint8_t method,
                       int *nodes) {
  static const char *const r_keys[] = {"id", "nodes", "token", "values"};
  enum { RK_ID, RK_NODES, RK_TOKEN, RK_VALUES };
  bc_span r[4];

  if (k_y->type != 's' || k_y->len != 1) return R_Y;
  if (k_y->s[0] == 'e') return R_KRPC_ERROR;
  if (k_y->s[0] != 'r') return R_Y;
  if (!bc_dict(k_r, r_keys, 4, r)) return R_NO_R;
  if (r[RK_ID].type != 's' || r[RK_ID].len != 20) return R_ID;
  int nn = -1;
  if (r[RK_NODES].type) {
    nn = count_nodes(&r[RK_NODES]);
    if (nn < 0) return R_NODES;
  }
  *nodes = nn;
  if (method == M_FIND_NODE && nn < 0) return R_NODES;
  if (method == M_GET_PEERS) {
    if (r[RK_TOKEN].type != 's' || r[RK_TOKEN].len == 0) return R_TOKEN;
    if (r[RK_VALUES].type) {
      const bc_span *vl = &r[RK_VALUES];
      if (vl->type != 'l') return R_VALUES;
      for (const uint8_t *q = vl->p + 1; q < vl->end - 1;) {
        bc_span v;
        q = bc_value(q, vl->end - 1, 1, &v);
        if (!q || v.type != 's' || v.len != 6) return R_VALUES;
      }
    } else if (nn < 0) {
      return R_NODES;
    }
  }
  return R_N;
}

static void on_datagram(source *s, const uint8_t *p, size_t len,
                        const struct sockaddr_in *from, bool trunc,
                        uint64_t t_ns) {
  static const char *const top_keys[] = {"t", "y", "r"};
  enum { K_T, K_Y, K_R };
  bc_span top, k[3];

  if (trunc) {
    reject(R_TRUNCATED);
    return;
  }
  if (bc_value(p, p + len, 0, &top) != p + len || top.type != 'd' ||
      !bc_dict(&top, top_keys, 3, k)) {
    reject(R_BENCODE);
    return;
  }
  if (k[K_Y].type == 's' && k[K_Y].len == 1 && k[K_Y].s[0] == 'q') {
    if (k[K_T].type == 's') answer_query(s, &k[K_T], from);
    return;
  }
  if (from->sin_addr.s_addr != opt.target.sin_addr.s_addr ||
      from->sin_port != opt.target.sin_port) {
    reject(R_SOURCE);
    return;
  }
  uint32_t i = UINT32_MAX, tid = 0;
  if (k[K_T].type == 's' && k[K_T].len == 4) {
    const uint8_t *tb = k[K_T].s;
    tid = (uint32_t)tb[0] << 24 | (uint32_t)tb[1] << 16 | (uint32_t)tb[2] << 8 |
          tb[3];
    i = tid >> 16;
  }
  if (i < s->lo || i >= s->lo + s->n) {
    reject(R_TID);
    return;
  }
  slot *sl = &slots[i];
  if (!sl->live || sl->gen != (uint16_t)tid) {
    if (measuring) st.late++;
    return;
  }
  /* The slot is settled whatever the verdict: a wrong reply to a live
   * query is an answer, just an invalid one. */
  uint8_t method = sl->method;
  uint64_t sent = sl->sent_ns;
  release(s, i);
  int nn = -1;
  int why = check_reply(&k[K_Y], &k[K_R], method, &nn);
  if (why != R_N) {
    reject(why);
    return;
  }
  if (!measuring) return;
  if (method == M_FIND_NODE) {
    st.fn_replies++;
    st.nodes_sum += (uint64_t)nn;
    if ((uint32_t)nn < opt.expect_nodes) st.fn_short++;
  }
  st.answered++;
  st.by_method[method]++;
  uint64_t us = (t_ns - sent) / 1000;
  lat_hist[us < LAT_MAX_US ? us : LAT_MAX_US]++;
}

static void recv_all(source *s) {
  static uint8_t bufs[BATCH][RX_BUF];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_in names[BATCH];

  for (int round = 0; round < RECV_ROUNDS; round++) {
    for (int i = 0; i < BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = RX_BUF;
      memset(&msgs[i], 0, sizeof msgs[i]);
      msgs[i].msg_hdr.msg_name = &names[i];
      msgs[i].msg_hdr.msg_namelen = sizeof names[i];
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(s->fd, msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) return; /* EAGAIN, or an ICMP error surfaced: try later */
    uint64_t t = now_ns();
    for (int i = 0; i < n; i++)
      on_datagram(s, bufs[i], msgs[i].msg_len, &names[i],
                  (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0, t);
    if (n < BATCH) return;
  }
}

static void expire(uint64_t t) {
  uint64_t limit = (uint64_t)opt.timeout_ms * 1000000u;
  for (uint32_t si = 0; si < opt.nsrc; si++) {
    source *s = &srcs[si];
    for (uint32_t i = s->lo; i < s->lo + s->n; i++) {
      if (slots[i].live && t - slots[i].sent_ns > limit) {
        release(s, i);
        if (measuring) st.timeouts++;
      }
    }
  }
}

/* -------------------------------------------------------------- report */

static uint64_t percentile(uint64_t total, double q) {
  uint64_t want = (uint64_t)((double)total * q);
  if (want >= total) want = total - 1;
  uint64_t acc = 0;
  for (uint32_t us = 0; us <= LAT_MAX_US; us++) {
    acc += lat_hist[us];
    if (acc > want) return us;
  }
  return LAT_MAX_US;
}

static void report(double secs) {
  uint64_t a = st.answered;
  double rate = secs > 0 ? (double)a / secs : 0;
  uint64_t p50 = a ? percentile(a, 0.50) : 0;
  uint64_t p99 = a ? percentile(a, 0.99) : 0;
  uint64_t p999 = a ? percentile(a, 0.999) : 0;
  double avg_nodes =
      st.fn_replies ? (double)st.nodes_sum / (double)st.fn_replies : 0;
  if (opt.json) {
    printf("{\"answered\":%llu,\"seconds\":%.3f,\"rate\":%.1f,"
           "\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,"
           "\"sent\":%llu,\"invalid\":%llu,\"timeouts\":%llu,\"late\":%llu,"
           "\"queries_in\":%llu,\"send_errors\":%llu,"
           "\"find_node_avg_nodes\":%.2f,\"find_node_short\":%llu,"
           "\"window\":%u,\"sources\":%u",
           (unsigned long long)a, secs, rate, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)p999,
           (unsigned long long)st.sent, (unsigned long long)st.invalid,
           (unsigned long long)st.timeouts, (unsigned long long)st.late,
           (unsigned long long)st.queries_in,
           (unsigned long long)st.send_errors, avg_nodes,
           (unsigned long long)st.fn_short, opt.window, opt.nsrc);
    printf(",\"by_method\":{");
    for (int m = 0; m < M_N; m++)
      printf("%s\"%s\":%llu", m ? "," : "", method_names[m],
             (unsigned long long)st.by_method[m]);
    printf("},\"reasons\":{");
    bool first = true;
    for (int r = 0; r < R_N; r++) {
      if (!st.reasons[r]) continue;
      printf("%s\"%s\":%llu", first ? "" : ",", reason_names[r],
             (unsigned long long)st.reasons[r]);
      first = false;
    }
    printf("}}\n");
  } else {
    printf("answered %llu in %.2f s: %.0f/s  p50 %llu us  p99 %llu us  "
           "p99.9 %llu us\n",
           (unsigned long long)a, secs, rate, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)p999);
    printf("sent %llu  invalid %llu  timeouts %llu  late %llu  "
           "queries from node %llu  find_node avg nodes %.2f (%llu short)\n",
           (unsigned long long)st.sent, (unsigned long long)st.invalid,
           (unsigned long long)st.timeouts, (unsigned long long)st.late,
           (unsigned long long)st.queries_in, avg_nodes,
           (unsigned long long)st.fn_short);
    for (int r = 0; r < R_N; r++)
      if (st.reasons[r])
        printf("  invalid: %s %llu\n", reason_names[r],
               (unsigned long long)st.reasons[r]);
  }
  fflush(stdout);
}

/* ---------------------------------------------------------------- main */

static double num_arg(const char *s, double lo, double hi, const char *what) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < lo || v > hi) usage(what);
  return v;
}

static void parse_args(int argc, char **argv) {
  opt.duration = 5;
  opt.warmup = 0.5;
  /* The kernel's default receive buffer (208 KiB) holds about 200 small
   * datagrams: a deeper window overflows a server that keeps the default
   * and measures the buffer, not the server. */
  opt.window = 192;
  opt.nsrc = 8;
  opt.timeout_ms = 1000;
  opt.expect_nodes = 8;
  opt.mix[M_PING] = 1;
  opt.mix[M_FIND_NODE] = 4;
  opt.mix[M_GET_PEERS] = 4;
  inet_pton(AF_INET, "127.0.0.2", &opt.base);
  bool have_target = false, have_seed = false;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--json")) {
      opt.json = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing value");
    const char *v = argv[++i];
    if (!strcmp(a, "--target")) {
      char ip[64];
      const char *colon = strrchr(v, ':');
      if (!colon || (size_t)(colon - v) >= sizeof ip) usage("bad --target");
      memcpy(ip, v, (size_t)(colon - v));
      ip[colon - v] = '\0';
      opt.target.sin_family = AF_INET;
      opt.target.sin_port =
          htons((uint16_t)num_arg(colon + 1, 1, 65535, "bad port"));
      if (inet_pton(AF_INET, ip, &opt.target.sin_addr) != 1)
        usage("bad --target address (IPv4 only)");
      have_target = true;
    } else if (!strcmp(a, "--duration")) {
      opt.duration = num_arg(v, 0.1, 600, "bad --duration");
    } else if (!strcmp(a, "--warmup")) {
      opt.warmup = num_arg(v, 0, 60, "bad --warmup");
    } else if (!strcmp(a, "--window")) {
      opt.window = (uint32_t)num_arg(v, 1, MAX_WINDOW, "bad --window");
    } else if (!strcmp(a, "--sources")) {
      opt.nsrc = (uint32_t)num_arg(v, 1, MAX_SOURCES, "bad --sources");
    } else if (!strcmp(a, "--source-base")) {
      if (inet_pton(AF_INET, v, &opt.base) != 1) usage("bad --source-base");
    } else if (!strcmp(a, "--timeout-ms")) {
      opt.timeout_ms = (uint32_t)num_arg(v, 1, 60000, "bad --timeout-ms");
    } else if (!strcmp(a, "--expect-nodes")) {
      opt.expect_nodes = (uint32_t)num_arg(v, 0, 16, "bad --expect-nodes");
    } else if (!strcmp(a, "--seed")) {
      opt.seed = (uint64_t)num_arg(v, 0, 1e18, "bad --seed");
      have_seed = true;
    } else if (!strcmp(a, "--mix")) {
      unsigned p, f, g;
      if (sscanf(v, "%u:%u:%u", &p, &f, &g) != 3 || p + f + g == 0 ||
          p > 1000 || f > 1000 || g > 1000)
        usage("bad --mix (P:F:G weights)");
      opt.mix[0] = p;
      opt.mix[1] = f;
      opt.mix[2] = g;
    } else {
      usage("unknown option");
    }
  }
  if (!have_target) usage("--target is required");
  if (opt.window < opt.nsrc) opt.nsrc = opt.window;
  if (!have_seed && getrandom(&opt.seed, sizeof opt.seed, 0) < 0)
    die("getrandom");
  rng = opt.seed | 1; /* xorshift must not start at 0 */
}

static void open_sources(void) {
  uint32_t per = opt.window / opt.nsrc, extra = opt.window % opt.nsrc;
  uint32_t lo = 0;
  for (uint32_t i = 0; i < opt.nsrc; i++) {
    source *s = &srcs[i];
    s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) die("socket");
    /* Room for a whole window of replies: a full receive buffer would
     * show up as timeouts that are ours, not the node's. FORCE works as
     * root, beyond rmem_max; otherwise the plain call is capped. */
    int sz = 4 << 20;
    if (setsockopt(s->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) < 0)
      setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(ntohl(opt.base.s_addr) + i);
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
    for (int b = 0; b < 20; b += 4) {
      uint32_t r = (uint32_t)(rnd() >> 32);
      memcpy(s->id + b, &r, 4);
    }
    s->lo = lo;
    s->n = per + (i < extra ? 1 : 0);
    lo += s->n;
    s->freelist = malloc(s->n * sizeof *s->freelist);
    if (!s->freelist) die("malloc");
    for (uint32_t k = 0; k < s->n; k++)
      s->freelist[s->nfree++] = s->lo + s->n - 1 - k;
  }
}

int main(int argc, char **argv) {
  parse_args(argc, argv);
  slots = calloc(opt.window, sizeof *slots);
  lat_hist = calloc(LAT_MAX_US + 1, sizeof *lat_hist);
  if (!slots || !lat_hist) die("calloc");
  open_sources();

  struct pollfd pfd[MAX_SOURCES];
  for (uint32_t i = 0; i < opt.nsrc; i++)
    pfd[i] = (struct pollfd){.fd = srcs[i].fd, .events = POLLIN};

  uint64_t start = now_ns();
  uint64_t measure_at = start + (uint64_t)(opt.warmup * 1e9);
  uint64_t end = measure_at + (uint64_t)(opt.duration * 1e9);
  uint64_t last_expire = start, t = start;
  measuring = opt.warmup == 0;
  /* Bounded by time: every pass takes at most the 1 ms poll timeout plus
   * the work of one window. */
  while (t < end) {
    for (uint32_t i = 0; i < opt.nsrc; i++)
      send_batch(&srcs[i]);
    int n = poll(pfd, opt.nsrc, 1);
    if (n < 0 && errno != EINTR) die("poll");
    for (uint32_t i = 0; n > 0 && i < opt.nsrc; i++)
      if (pfd[i].revents & (POLLIN | POLLERR)) recv_all(&srcs[i]);
    t = now_ns();
    if (t - last_expire > 20000000u) {
      expire(t);
      last_expire = t;
    }
    if (!measuring && t >= measure_at) {
      /* Warm-up done: what was counted so far is forgotten, queries in
       * flight stay and count when answered. */
      memset(&st, 0, sizeof st);
      memset(lat_hist, 0, (LAT_MAX_US + 1) * sizeof *lat_hist);
      measuring = true;
      measure_at = t;
    }
  }
  double secs = (double)(t - measure_at) / 1e9;
  report(secs);
  for (uint32_t i = 0; i < opt.nsrc; i++) {
    close(srcs[i].fd);
    free(srcs[i].freelist);
  }
  bool bad = st.answered == 0 || st.invalid > 0;
  free(slots);
  free(lat_hist);
  return bad ? 1 : 0;
}
