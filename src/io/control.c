/*
 * The control socket and the client commands' shared machinery: request
 * parsing, output formatting, jobs on a node, the server and the client.
 * The protocol is described in control.h.
 */
#include "control.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "driver.h"

/* ------------------------------------------------------------ requests */

static const char *const cmd_names[] = {
    [MDHT_CTL_NONE] = "",
    [MDHT_CTL_GET_PEERS] = "get-peers",
    [MDHT_CTL_ANNOUNCE] = "announce",
    [MDHT_CTL_FIND_NODE] = "find-node",
    [MDHT_CTL_PING] = "ping",
    [MDHT_CTL_STATS] = "stats",
    [MDHT_CTL_SAVE] = "save",
};

mdht_ctl_cmd mdht_ctl_cmd_parse(const char *name) {
  for (int c = MDHT_CTL_GET_PEERS; c <= MDHT_CTL_SAVE; c++)
    if (strcmp(name, cmd_names[c]) == 0) return (mdht_ctl_cmd)c;
  return MDHT_CTL_NONE;
}

const char *mdht_ctl_cmd_name(mdht_ctl_cmd cmd) {
  if (cmd < MDHT_CTL_NONE || cmd > MDHT_CTL_SAVE) return "";
  return cmd_names[cmd];
}

/* stats and save are about the node itself: no id or address. */
static bool takes_arg(mdht_ctl_cmd cmd) {
  return cmd != MDHT_CTL_STATS && cmd != MDHT_CTL_SAVE;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int parse_hex40(mdht_id *out, const char *s, size_t len) {
  if (len != 2 * MDHT_ID_LEN) return MDHT_ERR_INVAL;
  for (size_t i = 0; i < MDHT_ID_LEN; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return MDHT_ERR_INVAL;
    out->b[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

/* RFC 4648 base32, as old magnet links carry the info-hash. */
static int parse_base32(mdht_id *out, const char *s, size_t len) {
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t n = 0;

  if (len != 32) return MDHT_ERR_INVAL;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a';
    else if (c >= '2' && c <= '7')
      v = c - '2' + 26;
    else
      return MDHT_ERR_INVAL;
    acc = acc << 5 | (uint32_t)v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out->b[n++] = (uint8_t)(acc >> bits);
    }
  }
  return n == MDHT_ID_LEN ? 0 : MDHT_ERR_INVAL;
}

int mdht_ctl_parse_infohash(mdht_id *out, const char *s) {
  static const char magnet[] = "magnet:?";
  static const char btih[] = "urn:btih:";
  const char *p;

  if (strncmp(s, magnet, sizeof magnet - 1) != 0)
    return parse_hex40(out, s, strlen(s));
  /* Parameters are '&'-separated; the info-hash is the xt that names a
   * BitTorrent v1 hash (a v2-only link has no info-hash the DHT knows). */
  p = s + sizeof magnet - 1;
  while (*p) {
    size_t plen = strcspn(p, "&");
    if (strncmp(p, "xt=", 3) == 0 && plen > 3 &&
        strncasecmp(p + 3, btih, sizeof btih - 1) == 0) {
      const char *h = p + 3 + sizeof btih - 1;
      size_t hlen = plen - 3 - (sizeof btih - 1);
      if (parse_hex40(out, h, hlen) == 0 || parse_base32(out, h, hlen) == 0)
        return 0;
      return MDHT_ERR_INVAL;
    }
    p += plen;
    if (*p == '&') p++;
  }
  return MDHT_ERR_INVAL;
}

#define MAX_WORDS 16

int mdht_ctl_parse(mdht_ctl_req *req, const char *line, size_t len, char *err,
                   size_t errcap) {
  char buf[MDHT_CTL_MAX_LINE + 1];
  char *w[MAX_WORDS];
  size_t nw = 0;
  char *p;

  memset(req, 0, sizeof *req);
  if (len > 0 && line[len - 1] == '\n') len--;
  if (len > 0 && line[len - 1] == '\r') len--;
  if (len > MDHT_CTL_MAX_LINE) {
    snprintf(err, errcap, "request line too long");
    return MDHT_ERR_INVAL;
  }
  memcpy(buf, line, len);
  buf[len] = '\0';
  if (strlen(buf) != len) {
    snprintf(err, errcap, "NUL byte in request");
    return MDHT_ERR_INVAL;
  }
  for (p = strtok(buf, " \t"); p; p = strtok(NULL, " \t")) {
    if (nw == MAX_WORDS) {
      snprintf(err, errcap, "too many words in request");
      return MDHT_ERR_INVAL;
    }
    w[nw++] = p;
  }
  if (nw == 0) {
    snprintf(err, errcap, "empty request");
    return MDHT_ERR_INVAL;
  }
  req->cmd = mdht_ctl_cmd_parse(w[0]);
  if (req->cmd == MDHT_CTL_NONE) {
    /* Bounded: a request may be any bytes. */
    snprintf(err, errcap, "unknown command '%.40s'", w[0]);
    return MDHT_ERR_INVAL;
  }

  size_t i = 1;
  if (takes_arg(req->cmd)) {
    if (nw < 2 || w[1][0] == '-') {
      snprintf(err, errcap, "%s needs %s", w[0],
               req->cmd == MDHT_CTL_PING ? "HOST:PORT" : "an id");
      return MDHT_ERR_INVAL;
    }
    if (req->cmd == MDHT_CTL_PING) {
      if (mdht_addr_parse(&req->addr, w[1]) < 0 || req->addr.port == 0) {
        snprintf(err, errcap, "bad address '%.64s' (want IP:PORT)", w[1]);
        return MDHT_ERR_INVAL;
      }
    } else if (req->cmd == MDHT_CTL_FIND_NODE
                   ? parse_hex40(&req->target, w[1], strlen(w[1])) < 0
                   : mdht_ctl_parse_infohash(&req->target, w[1]) < 0) {
      snprintf(err, errcap, "bad %s '%.64s' (want 40 hex digits%s)",
               req->cmd == MDHT_CTL_FIND_NODE ? "id" : "info-hash", w[1],
               req->cmd == MDHT_CTL_FIND_NODE ? "" : " or a magnet link");
      return MDHT_ERR_INVAL;
    }
    i = 2;
  }
  for (; i < nw; i++) {
    const char *o = w[i];
    bool announce = req->cmd == MDHT_CTL_ANNOUNCE;
    char *end;

    if (strcmp(o, "--json") == 0) {
      req->json = true;
    } else if (strcmp(o, "--progress") == 0) {
      req->progress = true;
    } else if (announce && strcmp(o, "--implied-port") == 0) {
      req->implied_port = true;
    } else if (announce && strcmp(o, "--seed") == 0) {
      req->seed = true;
    } else if (strcmp(o, "--timeout") == 0 ||
               (announce && strcmp(o, "--port") == 0)) {
      unsigned long long v;
      bool port = o[2] == 'p';
      if (i + 1 == nw || w[i + 1][0] < '0' || w[i + 1][0] > '9') {
        snprintf(err, errcap, "%s needs a number", o);
        return MDHT_ERR_INVAL;
      }
      errno = 0;
      v = strtoull(w[++i], &end, 10);
      if (*end || errno ||
          (port ? v < 1 || v > 65535 : v < 1 || v > MDHT_CTL_MAX_TIMEOUT_MS)) {
        snprintf(err, errcap, "bad value '%.20s' for %s", w[i], o);
        return MDHT_ERR_INVAL;
      }
      if (port)
        req->port = (uint16_t)v;
      else
        req->timeout_ms = v;
    } else {
      snprintf(err, errcap, "unexpected '%.40s' in %s request", o, w[0]);
      return MDHT_ERR_INVAL;
    }
  }
  if (req->cmd == MDHT_CTL_ANNOUNCE && req->port == 0 && !req->implied_port) {
    snprintf(err, errcap, "announce needs --port N or --implied-port");
    return MDHT_ERR_INVAL;
  }
  return 0;
}

int mdht_ctl_format(const mdht_ctl_req *req, char *buf, size_t cap) {
  char arg[64] = "";
  int n;

  if (req->cmd == MDHT_CTL_PING) {
    if (mdht_addr_format(&req->addr, arg, sizeof arg) < 0)
      return MDHT_ERR_INVAL;
  } else if (takes_arg(req->cmd)) {
    mdht_id_format(&req->target, arg);
  }
  n = snprintf(buf, cap, "%s%s%s", mdht_ctl_cmd_name(req->cmd),
               arg[0] ? " " : "", arg);
#define ADD(...)                                                               \
  do {                                                                         \
    if (n >= 0 && (size_t)n < cap)                                             \
      n += snprintf(buf + n, cap - (size_t)n, __VA_ARGS__);                    \
  } while (0)
  if (req->cmd == MDHT_CTL_ANNOUNCE) {
    if (req->port) ADD(" --port %u", (unsigned)req->port);
    if (req->implied_port) ADD(" --implied-port");
    if (req->seed) ADD(" --seed");
  }
  if (req->json) ADD(" --json");
  if (req->progress) ADD(" --progress");
  if (req->timeout_ms)
    ADD(" --timeout %llu", (unsigned long long)req->timeout_ms);
  ADD("\n");
#undef ADD
  if (n < 0 || (size_t)n >= cap) return MDHT_ERR_NOBUF;
  return n;
}

/* ----------------------------------------------------------- responses */

void mdht_ctl_buf_free(mdht_ctl_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

void mdht_ctl_buf_reset(mdht_ctl_buf *b) {
  b->len = 0;
  b->overflow = false;
}

/* Makes room for `n` more bytes (and a NUL) within `limit`. */
static bool buf_reserve(mdht_ctl_buf *b, size_t n, size_t limit) {
  size_t want = b->len + n + 1;
  if (want > limit) return false;
  if (want > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *p;
    while (cap < want)
      cap *= 2;
    p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  return true;
}

static void buf_vline(mdht_ctl_buf *b, size_t limit, const char *prefix,
                      size_t plen, const char *fmt, va_list ap) {
  va_list ap2;
  int n;

  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0 || !buf_reserve(b, plen + (size_t)n + 1, limit)) {
    b->overflow = true;
    return;
  }
  memcpy(b->p + b->len, prefix, plen);
  vsnprintf(b->p + b->len + plen, (size_t)n + 1, fmt, ap);
  b->len += plen + (size_t)n;
  b->p[b->len++] = '\n';
}

void mdht_ctl_buf_line(mdht_ctl_buf *b, const char *fmt, ...) {
  va_list ap;
  if (b->overflow) return; /* keep what is there whole, lines in order */
  va_start(ap, fmt);
  buf_vline(b, MDHT_CTL_MAX_OUT, "", 0, fmt, ap);
  va_end(ap);
}

static void buf_kind_line(mdht_ctl_buf *b, size_t limit, char kind,
                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vline(b, limit, &kind, 1, fmt, ap);
  va_end(ap);
}

/* Progress is a nicety: it never takes more than half the budget, and its
 * loss is not an error. */
static void buf_progress(mdht_ctl_buf *b, const char *text) {
  if (b->overflow) return;
  buf_kind_line(b, MDHT_CTL_MAX_OUT / 2, MDHT_CTL_PROGRESS, "%s", text);
  b->overflow = false;
}

void mdht_ctl_buf_status(mdht_ctl_buf *b, int code, const char *msg) {
  char clean[512];
  size_t i;

  if (b->overflow) {
    code = MDHT_CTL_EXIT_ERROR;
    msg = "response too large, truncated";
  }
  /* A message is one line. */
  for (i = 0; msg && msg[i] && i + 1 < sizeof clean; i++)
    clean[i] = msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i];
  clean[i] = '\0';
  b->overflow = false;
  /* Past the budget: a response always ends. */
  buf_kind_line(b, SIZE_MAX, MDHT_CTL_STATUS, "exit %d%s%s", code,
                clean[0] ? " " : "", clean);
}

static void fmt_addr(const mdht_addr *a, char buf[64]) {
  if (mdht_addr_format(a, buf, 64) < 0) strcpy(buf, "?");
}

static void summary_json(const mdht_ctl_req *req, const mdht_result *r,
                         size_t npeers, mdht_ctl_buf *out) {
  char hex[41];
  mdht_id_format(&r->target, hex);
  mdht_ctl_buf_line(out,
                    "{\"type\":\"done\",\"command\":\"%s\",\"target\":\"%s\","
                    "\"ok\":%s,\"nodes\":%zu,\"peers\":%zu,\"rounds\":%u,"
                    "\"queries\":%u,\"responses\":%u,\"failures\":%u,"
                    "\"elapsed_ms\":%llu}",
                    mdht_ctl_cmd_name(req->cmd), hex, r->ok ? "true" : "false",
                    r->nnodes, npeers, r->rounds, r->queries, r->responses,
                    r->failures, (unsigned long long)r->elapsed_ms);
}

/* Whether a is closer to t than b (XOR metric). */
static bool closer(const mdht_id *a, const mdht_id *b, const mdht_id *t) {
  for (size_t i = 0; i < MDHT_ID_LEN; i++) {
    uint8_t da = a->b[i] ^ t->b[i], db = b->b[i] ^ t->b[i];
    if (da != db) return da < db;
  }
  return false;
}

static void node_lines(const mdht_ctl_req *req, const mdht_result *r,
                       mdht_ctl_buf *out) {
  size_t n = r->nnodes < MDHT_RESULT_NODES ? r->nnodes : MDHT_RESULT_NODES;
  size_t order[MDHT_RESULT_NODES];

  /* Closest first, whatever order the nodes answered or accepted in. */
  for (size_t i = 0; i < n; i++) {
    size_t j = i;
    for (; j > 0 &&
           closer(&r->nodes[i].id, &r->nodes[order[j - 1]].id, &r->target);
         j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  for (size_t k = 0; k < n; k++) {
    char hex[41], addr[64];
    size_t i = order[k];
    mdht_id_format(&r->nodes[i].id, hex);
    fmt_addr(&r->nodes[i].addr, addr);
    if (req->json)
      mdht_ctl_buf_line(
          out, "{\"type\":\"node\",\"id\":\"%s\",\"addr\":\"%s\"}", hex, addr);
    else
      mdht_ctl_buf_line(out, "%s %s", hex, addr);
  }
}

void mdht_ctl_format_result(const mdht_ctl_req *req, const mdht_result *r,
                            mdht_ctl_buf *out, int *code, char *msg,
                            size_t msgcap) {
  size_t npeers = 0;

  msg[0] = '\0';
  switch (req->cmd) {
  case MDHT_CTL_GET_PEERS:
    /* Several nodes return the same peers: print each once. */
    for (size_t i = 0; i < r->npeers && r->peers; i++) {
      char addr[64];
      bool dup = false;
      for (size_t j = 0; j < i && !dup; j++)
        dup = mdht_addr_eq(&r->peers[i], &r->peers[j]);
      if (dup) continue;
      npeers++;
      fmt_addr(&r->peers[i], addr);
      if (req->json)
        mdht_ctl_buf_line(out, "{\"type\":\"peer\",\"addr\":\"%s\"}", addr);
      else
        mdht_ctl_buf_line(out, "%s", addr);
    }
    if (req->json) summary_json(req, r, npeers, out);
    if (!r->ok) {
      *code = MDHT_CTL_EXIT_ERROR;
      snprintf(msg, msgcap, "no node answered the lookup");
    } else if (npeers == 0) {
      *code = MDHT_CTL_EXIT_NONE;
      snprintf(msg, msgcap, "no peers found (%u nodes asked)", r->responses);
    } else {
      *code = MDHT_CTL_EXIT_OK;
    }
    return;
  case MDHT_CTL_FIND_NODE:
  case MDHT_CTL_ANNOUNCE:
    node_lines(req, r, out);
    if (req->json) summary_json(req, r, r->npeers, out);
    if (r->nnodes > 0) {
      *code = MDHT_CTL_EXIT_OK;
    } else if (!r->ok) {
      *code = MDHT_CTL_EXIT_ERROR;
      snprintf(msg, msgcap, "no node answered the lookup");
    } else {
      /* Only an announce can get here: answers, but no acceptance. */
      *code = MDHT_CTL_EXIT_NONE;
      snprintf(msg, msgcap, "no node accepted the announce");
    }
    return;
  case MDHT_CTL_PING: {
    char addr[64];
    fmt_addr(&req->addr, addr);
    if (r->ok && r->nnodes > 0) {
      char hex[41];
      mdht_id_format(&r->nodes[0].id, hex);
      if (req->json)
        mdht_ctl_buf_line(out,
                          "{\"type\":\"pong\",\"id\":\"%s\",\"addr\":\"%s\","
                          "\"rtt_ms\":%llu}",
                          hex, addr, (unsigned long long)r->elapsed_ms);
      else
        mdht_ctl_buf_line(out, "%s %llu", hex,
                          (unsigned long long)r->elapsed_ms);
      *code = MDHT_CTL_EXIT_OK;
    } else {
      *code = MDHT_CTL_EXIT_NONE;
      snprintf(msg, msgcap, "no answer from %s", addr);
    }
    return;
  }
  default:
    *code = MDHT_CTL_EXIT_ERROR;
    snprintf(msg, msgcap, "not a lookup");
    return;
  }
}

void mdht_ctl_format_progress(const mdht_event *ev, char *buf, size_t cap) {
  snprintf(buf, cap,
           "%s round %u: %u queried, %u answered, %u failed, %u peers, "
           "closest shares %u bits",
           mdht_method_name(ev->method), ev->u.lookup.round,
           ev->u.lookup.queried, ev->u.lookup.answered, ev->u.lookup.failed,
           ev->u.lookup.peers, ev->u.lookup.closest_bits);
}

/* ---------------------------------------------------------------- stats */

#define NBUCKETS (MDHT_ID_LEN * 8 + 1)

typedef struct bucket_counts {
  uint32_t nodes[NBUCKETS], good[NBUCKETS];
} bucket_counts;

static void count_node(uint32_t bucket, const mdht_id *id,
                       const mdht_addr *addr, bool good, mdht_time last_reply,
                       void *user) {
  bucket_counts *c = user;
  (void)id, (void)addr, (void)last_reply;
  if (bucket >= NBUCKETS) bucket = NBUCKETS - 1;
  c->nodes[bucket]++;
  if (good) c->good[bucket]++;
}

/* Short, stable keys (JSON and text) for the drop reasons. */
static const char *const drop_keys[] = {
#define DROP_KEY(name, text) #name,
    MDHT_DROPS(DROP_KEY)
#undef DROP_KEY
};

static void lower(const char *s, char *out, size_t cap) {
  size_t i;
  for (i = 0; s[i] && i + 1 < cap; i++)
    out[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
  out[i] = '\0';
}

/* "ping 1, find_node 2, ..." or "\"ping\":1,\"find_node\":2,...". */
static void method_counts(const uint64_t *v, bool json, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (int m = 0; m < MDHT_M_COUNT_ && n < cap; m++)
    n += (size_t)snprintf(
        buf + n, cap - n, json ? "%s\"%s\":%llu" : "%s%s %llu",
        m ? (json ? "," : ", ") : "", mdht_method_name((mdht_method)m),
        (unsigned long long)v[m]);
}

static void drop_counts(const uint64_t *v, bool json, char *buf, size_t cap) {
  size_t n = 0;
  buf[0] = '\0';
  for (int r = 0; r < MDHT_DROP_COUNT_ && n < cap; r++) {
    char key[32];
    lower(drop_keys[r], key, sizeof key);
    n += (size_t)snprintf(
        buf + n, cap - n, json ? "%s\"%s\":%llu" : "%s%s %llu",
        r ? (json ? "," : ", ") : "", key, (unsigned long long)v[r]);
  }
}

void mdht_ctl_format_stats(const mdht_ctl_req *req, const mdht_node *node,
                           mdht_time now, mdht_ctl_buf *out) {
  mdht_stats s;
  bucket_counts *bc = calloc(1, sizeof *bc);
  char qin[256], qout[256], drops[256], hex[41];
  unsigned long long up;
  uint32_t nb;

  mdht_node_stats(node, now, &s);
  if (bc) mdht_node_visit(node, now, count_node, bc);
  up = now >= s.started ? (unsigned long long)((now - s.started) / 1000) : 0;
  nb = s.buckets < NBUCKETS ? s.buckets : NBUCKETS;
  mdht_id_format(mdht_node_id(node), hex);
  method_counts(s.queries_in, req->json, qin, sizeof qin);
  method_counts(s.queries_out, req->json, qout, sizeof qout);
  drop_counts(s.dropped, req->json, drops, sizeof drops);

  if (req->json) {
    /* One object, one line; the buckets as an array. */
    char bk[NBUCKETS * 40];
    size_t n = 0;
    bk[0] = '\0';
    for (uint32_t b = 0; bc && b < nb && n < sizeof bk; b++)
      n += (size_t)snprintf(bk + n, sizeof bk - n,
                            "%s{\"bucket\":%u,\"nodes\":%u,\"good\":%u}",
                            b ? "," : "", b, bc->nodes[b], bc->good[b]);
    mdht_ctl_buf_line(
        out,
        "{\"type\":\"stats\",\"id\":\"%s\",\"uptime_s\":%llu,"
        "\"nodes\":{\"total\":%u,\"good\":%u,\"questionable\":%u,"
        "\"buckets\":%u,\"replacements\":%u},\"buckets\":[%s],"
        "\"storage\":{\"infohashes\":%u,\"peers\":%u},"
        "\"packets\":{\"in\":%llu,\"out\":%llu},"
        "\"queries_in\":{%s},\"queries_out\":{%s},"
        "\"responses\":{\"in\":%llu,\"out\":%llu},"
        "\"errors\":{\"in\":%llu,\"out\":%llu},\"timeouts\":%llu,"
        "\"dropped\":{%s},\"rate_limited\":%llu,\"tokens_rejected\":%llu,"
        "\"txns_outstanding\":%u}",
        hex, up, s.nodes_total, s.nodes_good, s.nodes_questionable, s.buckets,
        s.replacements, bk, s.infohashes, s.peers,
        (unsigned long long)s.recv_packets, (unsigned long long)s.sent_packets,
        qin, qout, (unsigned long long)s.responses_in,
        (unsigned long long)s.responses_out, (unsigned long long)s.errors_in,
        (unsigned long long)s.errors_out, (unsigned long long)s.timeouts, drops,
        (unsigned long long)s.rate_limited,
        (unsigned long long)s.tokens_rejected, s.txns_outstanding);
    free(bc);
    return;
  }
  mdht_ctl_buf_line(out, "id               %s", hex);
  mdht_ctl_buf_line(out, "uptime           %llu s", up);
  mdht_ctl_buf_line(out,
                    "nodes            %u (%u good, %u questionable) in %u "
                    "buckets, %u replacements",
                    s.nodes_total, s.nodes_good, s.nodes_questionable,
                    s.buckets, s.replacements);
  for (uint32_t b = 0; bc && b < nb; b++)
    mdht_ctl_buf_line(out, "  bucket %-3u      %u (%u good)", b, bc->nodes[b],
                      bc->good[b]);
  mdht_ctl_buf_line(out, "storage          %u info-hashes, %u peers",
                    s.infohashes, s.peers);
  mdht_ctl_buf_line(out, "packets          %llu in, %llu out",
                    (unsigned long long)s.recv_packets,
                    (unsigned long long)s.sent_packets);
  mdht_ctl_buf_line(out, "queries in       %s", qin);
  mdht_ctl_buf_line(out, "queries out      %s", qout);
  mdht_ctl_buf_line(out, "responses        %llu in, %llu out",
                    (unsigned long long)s.responses_in,
                    (unsigned long long)s.responses_out);
  mdht_ctl_buf_line(out, "errors           %llu in, %llu out",
                    (unsigned long long)s.errors_in,
                    (unsigned long long)s.errors_out);
  mdht_ctl_buf_line(out, "timeouts         %llu",
                    (unsigned long long)s.timeouts);
  mdht_ctl_buf_line(out, "dropped          %s", drops);
  mdht_ctl_buf_line(out, "rate limited     %llu",
                    (unsigned long long)s.rate_limited);
  mdht_ctl_buf_line(out, "tokens rejected  %llu",
                    (unsigned long long)s.tokens_rejected);
  mdht_ctl_buf_line(out, "transactions     %u outstanding", s.txns_outstanding);
  free(bc);
}

/* ----------------------------------------------------------------- save */

/* The path as one safe piece of a line: in JSON a string body (RFC 8259
 * escapes); in text, control characters as '?', so that a strange path
 * cannot end the line or pass for a progress or status line. */
static void put_path(const char *path, bool json, char *buf, size_t cap) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
    char tmp[8];
    size_t k;
    if (json && (*p == '"' || *p == '\\'))
      k = (size_t)snprintf(tmp, sizeof tmp, "\\%c", *p);
    else if (json && *p < 0x20)
      k = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)*p);
    else
      k = (size_t)snprintf(tmp, sizeof tmp, "%c",
                           *p < 0x20 || *p == 0x7f ? '?' : *p);
    if (n + k >= cap) break;
    memcpy(buf + n, tmp, k);
    n += k;
  }
  buf[n] = '\0';
}

void mdht_ctl_format_saved(const mdht_ctl_req *req, const mdht_ctl_saved *s,
                           mdht_ctl_buf *out) {
  char path[sizeof s->path * 6]; /* worst case: every byte \u00XX */
  put_path(s->path, req->json, path, sizeof path);
  if (req->json && s->counted)
    mdht_ctl_buf_line(out,
                      "{\"type\":\"saved\",\"nodes\":%u,\"peers\":%u,"
                      "\"path\":\"%s\"}",
                      s->nodes, s->peers, path);
  else if (req->json)
    mdht_ctl_buf_line(out, "{\"type\":\"saved\",\"path\":\"%s\"}", path);
  else if (s->counted)
    mdht_ctl_buf_line(out, "saved %u node%s, %u peer%s to %s", s->nodes,
                      s->nodes == 1 ? "" : "s", s->peers,
                      s->peers == 1 ? "" : "s", path);
  else
    mdht_ctl_buf_line(out, "saved the state to %s", path);
}

/* --------------------------------------------------------------- reader */

void mdht_ctl_reader_init(mdht_ctl_reader *rd) {
  memset(rd, 0, sizeof *rd);
}

/* Printable ASCII passes; every other byte (C0 controls, ESC, CR, TAB,
 * DEL, and all of 0x80-0xff, where C1 controls and their UTF-8 forms
 * live) is written as \xNN, or \u00NN in JSON, where it is then valid
 * inside a string. The backslash is left alone: JSON needs its escapes. */
static bool printable(unsigned char c) {
  return c >= 0x20 && c < 0x7f;
}

static size_t escape1(unsigned char c, bool json, char out[8]) {
  if (printable(c)) {
    out[0] = (char)c;
    return 1;
  }
  return (size_t)snprintf(out, 8, json ? "\\u%04x" : "\\x%02x", c);
}

size_t mdht_ctl_escape(char *dst, size_t cap, const char *src, size_t n,
                       bool json) {
  size_t k = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char tmp[8];
    size_t m = escape1((unsigned char)src[i], json, tmp);
    if (k + m >= cap) break; /* whole escapes only */
    memcpy(dst + k, tmp, m);
    k += m;
  }
  dst[k] = '\0';
  return k;
}

static void put_escaped(FILE *f, const char *p, size_t n, bool json) {
  size_t i = 0;
  while (i < n) {
    size_t run = 0;
    while (i + run < n && printable((unsigned char)p[i + run]))
      run++;
    if (run) fwrite(p + i, 1, run, f);
    i += run;
    if (i < n) {
      char tmp[8];
      fwrite(tmp, 1, escape1((unsigned char)p[i], json, tmp), f);
      i++;
    }
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

static void job_done(mdht_ctl_job *job, int code, const char *msg) {
  job->op = 0;
  job->code = code;
  mdht_ctl_buf_status(job->out, code, msg);
  job->done = true;
  if (job->notify) job->notify(job, job->user);
}

static void on_result(const mdht_result *r, void *user) {
  mdht_ctl_job *job = user;
  char msg[256];
  int code;
  mdht_ctl_format_result(&job->req, r, job->out, &code, msg, sizeof msg);
  job_done(job, code, msg[0] ? msg : NULL);
}

void mdht_ctl_job_init(mdht_ctl_job *job, mdht_node *node,
                       const mdht_ctl_req *req, mdht_ctl_buf *out,
                       mdht_time now, mdht_ctl_notify notify, void *user) {
  memset(job, 0, sizeof *job);
  job->req = *req;
  job->node = node;
  job->out = out;
  job->notify = notify;
  job->user = user;
  job->deadline =
      now + (req->timeout_ms ? req->timeout_ms : MDHT_CTL_DEFAULT_TIMEOUT_MS);
}

int mdht_ctl_job_start(mdht_ctl_job *job, mdht_time now) {
  const mdht_ctl_req *req = &job->req;
  mdht_node *node = job->node;
  mdht_ctl_buf *out = job->out;
  int64_t rc;
  char msg[128];

  job->starting = true;
  switch (req->cmd) {
  case MDHT_CTL_STATS:
    job->starting = false;
    mdht_ctl_format_stats(req, node, now, out);
    job_done(job, MDHT_CTL_EXIT_OK, NULL);
    return 0;
  case MDHT_CTL_GET_PEERS:
    rc = mdht_node_get_peers(node, &req->target, on_result, job, now);
    break;
  case MDHT_CTL_FIND_NODE:
    rc = mdht_node_find_node(node, &req->target, on_result, job, now);
    break;
  case MDHT_CTL_ANNOUNCE:
    rc = mdht_node_announce(node, &req->target, req->port, req->implied_port,
                            req->seed, on_result, job, now);
    break;
  case MDHT_CTL_PING:
    rc = mdht_node_ping_addr(node, &req->addr, on_result, job, now);
    break;
  case MDHT_CTL_SAVE:
    /* The server answers it (mdht_ctl_server.save); a job has no state
     * to save. */
    job->starting = false;
    job_done(job, MDHT_CTL_EXIT_ERROR,
             "save needs a running node's control "
             "socket");
    return 0;
  default:
    rc = MDHT_ERR_INVAL;
    break;
  }
  job->starting = false;
  if (rc == MDHT_ERR_AGAIN) return MDHT_ERR_AGAIN;
  if (rc < 0) {
    if (rc == MDHT_ERR_FULL)
      snprintf(msg, sizeof msg,
               "the node is busy (too many lookups), "
               "try again later");
    else if (rc == MDHT_ERR_ADDR)
      snprintf(msg, sizeof msg, "address not usable from this node");
    else
      snprintf(msg, sizeof msg, "cannot start %s: %s",
               mdht_ctl_cmd_name(req->cmd), mdht_strerror((int)rc));
    job_done(job, MDHT_CTL_EXIT_ERROR, msg);
    return 0;
  }
  /* The callback may have run already, inside the call. */
  if (!job->done) job->op = rc;
  return 0;
}

void mdht_ctl_job_fail(mdht_ctl_job *job, int code, const char *msg) {
  if (job->done) return;
  if (job->op > 0) mdht_node_cancel(job->node, job->op);
  job_done(job, code, msg);
}

void mdht_ctl_job_event(mdht_ctl_job *job, const mdht_event *ev) {
  char text[256];

  /* The lookup's own id shows only in its events: the one that starts
   * inside mdht_ctl_job_start's call is ours. */
  if (ev->type == MDHT_EV_LOOKUP_STARTED && job->starting &&
      memcmp(&ev->id, &job->req.target, sizeof ev->id) == 0) {
    job->lookup_id = ev->u.lookup.lookup_id;
    return;
  }
  if (ev->type != MDHT_EV_LOOKUP_PROGRESS || job->done || !job->req.progress ||
      !job->lookup_id || ev->u.lookup.lookup_id != job->lookup_id)
    return;
  /* One line per round: a response each is too many to read. */
  if (ev->u.lookup.round == job->last_round && job->last_round) return;
  job->last_round = ev->u.lookup.round;
  mdht_ctl_format_progress(ev, text, sizeof text);
  buf_progress(job->out, text);
}

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

int mdht_ctl_server_attach(mdht_ctl_server *srv, mdht_driver *driver) {
  int rc = mdht_loop_watch(driver->loop, srv->lfd, EPOLLIN, on_listen, srv);
  if (rc < 0) return rc;
  srv->driver = driver;
  mdht_loop_timer_init(&srv->timer, on_timer, srv);
  mdht_loop_wakeup_add(driver->loop, &srv->wake, on_wake, srv);
  srv->sub = mdht_node_subscribe(driver->node, on_event, srv);
  return srv->sub < 0 ? -ENOSPC : 0;
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

/* --------------------------------------------------------------- client */

/* Only a node of our own answers for us: whoever listens on the path may
 * be another user who bound it first (a shared /tmp), and would then feed
 * us made-up peers. The kernel gives the listener's credentials as they
 * were at listen(); they cannot be forged. Strict equality, root
 * included: root talks only to nodes run as root. */
static int check_peer(int fd, const char *path, char *msg, size_t msgcap) {
  struct ucred cr;
  socklen_t crlen = sizeof cr;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
    snprintf(msg, msgcap, "cannot check who listens on %s: %s", path,
             strerror(errno));
    return -1;
  }
  if (cr.uid != geteuid()) {
    snprintf(msg, msgcap,
             "the process on %s runs as uid %u, not as this user (uid %u): "
             "refused",
             path, (unsigned)cr.uid, (unsigned)geteuid());
    return -1;
  }
  return 0;
}

int mdht_ctl_call(const char *path, const char *line, mdht_time timeout_ms,
                  FILE *out, FILE *progress, char *msg, size_t msgcap) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  mdht_ctl_reader *rd = NULL;
  mdht_time deadline;
  size_t len = strlen(line), sent = 0;
  int fd = -1, rc = MDHT_CTL_EXIT_ERROR;

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
  deadline = mdht_driver_now() + timeout_ms;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  for (;;) {
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) break;
    if (fd >= 0 && (errno == EAGAIN || errno == EINTR) &&
        mdht_driver_now() < deadline) {
      /* A Unix socket's full backlog gives no event to wait for. */
      poll(NULL, 0, 10);
      continue;
    }
    if (fd >= 0 && errno == EAGAIN)
      snprintf(msg, msgcap,
               "the node on %s accepts no connection within %llu s", path,
               (unsigned long long)(timeout_ms + 999) / 1000);
    else if (errno == ECONNREFUSED || errno == ENOENT)
      snprintf(msg, msgcap, "no node is running on %s (%s)", path,
               strerror(errno));
    else
      snprintf(msg, msgcap, "cannot connect to %s: %s", path, strerror(errno));
    goto out;
  }
  if (check_peer(fd, path, msg, msgcap) < 0) goto out;
  while (sent < len) {
    ssize_t n = send(fd, line + sent, len - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      mdht_time now = mdht_driver_now();
      if (now >= deadline) {
        snprintf(msg, msgcap, "the node on %s takes no request within %llu s",
                 path, (unsigned long long)(timeout_ms + 999) / 1000);
        goto out;
      }
      poll(&pfd, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
      continue;
    }
    if (n <= 0) {
      /* The node may have answered and closed already (too many
       * clients): its answer is worth more than our send error. */
      if (errno == EPIPE || errno == ECONNRESET) break;
      snprintf(msg, msgcap, "cannot send to %s: %s", path, strerror(errno));
      goto out;
    }
    sent += (size_t)n;
  }
  rd = malloc(sizeof *rd);
  if (!rd) {
    snprintf(msg, msgcap, "out of memory");
    goto out;
  }
  mdht_ctl_reader_init(rd);
  {
    mdht_ctl_req req;
    char perr[128];
    rd->json =
        mdht_ctl_parse(&req, line, len, perr, sizeof perr) == 0 && req.json;
  }
  for (;;) {
    char buf[4096];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    mdht_time now = mdht_driver_now();
    ssize_t n;
    int r;

    if (now >= deadline) {
      snprintf(msg, msgcap, "no answer from the node on %s within %llu s", path,
               (unsigned long long)(timeout_ms + 999) / 1000);
      goto out;
    }
    r = poll(&pfd, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
    if (r < 0 && errno != EINTR) {
      snprintf(msg, msgcap, "poll: %s", strerror(errno));
      goto out;
    }
    if (r <= 0) continue;
    n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      snprintf(msg, msgcap,
               "the node on %s closed the connection without "
               "an answer",
               path);
      goto out;
    }
    r = mdht_ctl_reader_feed(rd, buf, (size_t)n, out, progress);
    if (r < 0) {
      snprintf(msg, msgcap, "garbled answer from the node on %s", path);
      goto out;
    }
    if (r == 1) {
      rc = rd->code;
      snprintf(msg, msgcap, "%s", rd->msg);
      goto out;
    }
  }
out:
  free(rd);
  if (fd >= 0) close(fd);
  return rc;
}
