/* Control responses: building them, and the lines of results, stats and
 * saves in text and JSON. See ctl_format.h. */
#include "ctl_format.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"

/* ------------------------------------------------------------- buffers */

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
void mdht_ctl_buf_progress(mdht_ctl_buf *b, const char *text) {
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

/* ------------------------------------------------------------- results */

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

static void node_lines(const mdht_ctl_req *req, const mdht_result *r,
                       mdht_ctl_buf *out) {
  size_t n = r->nnodes < MDHT_RESULT_NODES ? r->nnodes : MDHT_RESULT_NODES;
  size_t order[MDHT_RESULT_NODES];

  /* Closest first, whatever order the nodes answered or accepted in. */
  for (size_t i = 0; i < n; i++) {
    size_t j = i;
    for (; j > 0 && mdht_id_cmp_dist(&r->target, &r->nodes[i].id,
                                     &r->nodes[order[j - 1]].id) < 0;
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

static void peers_result(const mdht_ctl_req *req, const mdht_result *r,
                         mdht_ctl_buf *out, int *code, char *msg,
                         size_t msgcap) {
  size_t npeers = 0;

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
}

static void nodes_result(const mdht_ctl_req *req, const mdht_result *r,
                         mdht_ctl_buf *out, int *code, char *msg,
                         size_t msgcap) {
  node_lines(req, r, out);
  if (req->json) summary_json(req, r, r->npeers, out);
  if (r->nnodes > 0) {
    *code = MDHT_CTL_EXIT_OK;
  } else if (req->cmd == MDHT_CTL_ANNOUNCE && r->responses > 0) {
    /* The lookup was answered, so the network is there: every node
     * refused the announce (or gave no token). That is "none", not an
     * error. */
    *code = MDHT_CTL_EXIT_NONE;
    snprintf(msg, msgcap, "no node accepted the announce");
  } else if (!r->ok) {
    *code = MDHT_CTL_EXIT_ERROR;
    snprintf(msg, msgcap, "no node answered the lookup");
  } else {
    /* A find_node that was answered with no node at all. */
    *code = MDHT_CTL_EXIT_NONE;
    snprintf(msg, msgcap, "no node found");
  }
}

void mdht_ctl_format_sample_found(const mdht_ctl_req *req, const mdht_id *ih,
                                  const mdht_addr *from, mdht_ctl_buf *out) {
  char hex[41], addr[64];
  mdht_id_format(ih, hex);
  if (!req->json) {
    mdht_ctl_buf_line(out, "%s", hex);
    return;
  }
  fmt_addr(from, addr);
  mdht_ctl_buf_line(out, "{\"info_hash\":\"%s\",\"from\":\"%s\"}", hex, addr);
}

/* The crawl's summary goes to stderr (the status message), so that
 * stdout holds info-hashes only, one per line, as they were found. */
static void sample_result(const mdht_result *r, int *code, char *msg,
                          size_t msgcap) {
  snprintf(msg, msgcap,
           "sample: %u nodes queried (%u answered, %u without BEP 51, %u "
           "failed), %llu samples, %u distinct info-hashes in %.1f s",
           r->queries, r->responses, r->unsupported, r->failures,
           (unsigned long long)r->samples, r->infohashes,
           (double)r->elapsed_ms / 1000.0);
  *code = r->infohashes > 0 ? MDHT_CTL_EXIT_OK : MDHT_CTL_EXIT_NONE;
}

/* BEP 33: the estimates of the union of the filters the closest nodes
 * sent. A lookup that was answered but found no node holding the swarm
 * is "none" (exit 1), as get-peers without peers. */
static void scrape_result(const mdht_ctl_req *req, const mdht_result *r,
                          mdht_ctl_buf *out, int *code, char *msg,
                          size_t msgcap) {
  char hex[41];
  if (!r->ok) {
    *code = MDHT_CTL_EXIT_ERROR;
    snprintf(msg, msgcap, "no node answered the lookup");
    return;
  }
  if (r->scrape_nodes == 0) {
    *code = MDHT_CTL_EXIT_NONE;
    snprintf(msg, msgcap, "no node holds this swarm (%u nodes asked)",
             r->responses);
    return;
  }
  mdht_id_format(&r->target, hex);
  if (req->json)
    mdht_ctl_buf_line(
        out,
        "{\"type\":\"scrape\",\"info_hash\":\"%s\",\"seeds\":%.0f,"
        "\"peers\":%.0f,\"nodes\":%u,\"peers_found\":%zu}",
        hex, r->scrape_seeds, r->scrape_peers, r->scrape_nodes, r->npeers);
  else
    mdht_ctl_buf_line(out, "%.0f seed%s, %.0f peer%s (from %u node%s)",
                      r->scrape_seeds, r->scrape_seeds == 1 ? "" : "s",
                      r->scrape_peers, r->scrape_peers == 1 ? "" : "s",
                      r->scrape_nodes, r->scrape_nodes == 1 ? "" : "s");
  *code = MDHT_CTL_EXIT_OK;
}

static void ping_result(const mdht_ctl_req *req, const mdht_result *r,
                        mdht_ctl_buf *out, int *code, char *msg,
                        size_t msgcap) {
  char addr[64], hex[41];

  fmt_addr(&req->addr, addr);
  if (!r->ok || r->nnodes == 0) {
    *code = MDHT_CTL_EXIT_NONE;
    snprintf(msg, msgcap, "no answer from %s", addr);
    return;
  }
  mdht_id_format(&r->nodes[0].id, hex);
  if (req->json)
    mdht_ctl_buf_line(out,
                      "{\"type\":\"pong\",\"id\":\"%s\",\"addr\":\"%s\","
                      "\"rtt_ms\":%llu}",
                      hex, addr, (unsigned long long)r->elapsed_ms);
  else
    mdht_ctl_buf_line(out, "%s %llu", hex, (unsigned long long)r->elapsed_ms);
  *code = MDHT_CTL_EXIT_OK;
}

/* BEP 44: a value for people: a string's bytes, anything else its
 * bencoding; escaped either way. */
static void value_text(const uint8_t *v, size_t n, bool json, char *out,
                       size_t cap) {
  const uint8_t *p = v;
  size_t len = n;
  size_t i = 0, k = 0;
  while (i < n && v[i] >= '0' && v[i] <= '9')
    k = k * 10 + (size_t)(v[i++] - '0');
  if (i > 0 && i < n && v[i] == ':' && i + 1 + k == n) {
    p = v + i + 1;
    len = k;
  }
  mdht_ctl_escape_as(out, cap, (const char *)p, len,
                     json ? MDHT_CTL_ESC_JSON_STR : MDHT_CTL_ESC_TEXT);
}

static void hex_bytes(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
  out[2 * n] = '\0';
}

/* get prints the value (JSON: with seq, key and signature); put the
 * target, and for a mutable item the seq it was stored with. */
static void item_result(const mdht_ctl_req *req, const mdht_result *r,
                        mdht_ctl_buf *out, int *code, char *msg,
                        size_t msgcap) {
  bool get = req->cmd == MDHT_CTL_GET_ITEM;
  char target[41], text[6 * 1000 + 1], bencoded[6 * 1000 + 1];
  char k[65], sig[129];
  mdht_id_format(&r->target, target);
  bool have = r->item_vlen > 0 && (get || (r->ok && r->nnodes > 0));
  if (have && req->json) {
    value_text(r->item_v, r->item_vlen, true, text, sizeof text);
    mdht_ctl_escape_as(bencoded, sizeof bencoded, (const char *)r->item_v,
                       r->item_vlen, MDHT_CTL_ESC_JSON_STR);
    hex_bytes(r->item_k, 32, k);
    hex_bytes(r->item_sig, 64, sig);
    if (r->item_mutable)
      mdht_ctl_buf_line(out,
                        "{\"type\":\"item\",\"target\":\"%s\",\"mutable\":true,"
                        "\"seq\":%lld,\"k\":\"%s\",\"sig\":\"%s\","
                        "\"value\":\"%s\",\"bencoded\":\"%s\"}",
                        target, (long long)r->item_seq, k, sig, text, bencoded);
    else
      mdht_ctl_buf_line(out,
                        "{\"type\":\"item\",\"target\":\"%s\",\"mutable\":"
                        "false,\"value\":\"%s\",\"bencoded\":\"%s\"}",
                        target, text, bencoded);
  } else if (have && get) {
    value_text(r->item_v, r->item_vlen, false, text, sizeof text);
    mdht_ctl_buf_line(out, "%s", text);
  } else if (have) {
    if (r->item_mutable)
      mdht_ctl_buf_line(out, "%s seq %lld", target, (long long)r->item_seq);
    else
      mdht_ctl_buf_line(out, "%s", target);
  }
  if (req->json) summary_json(req, r, 0, out);
  if (!r->ok) {
    *code = MDHT_CTL_EXIT_ERROR;
    snprintf(msg, msgcap, "no node answered the lookup");
  } else if (!have) {
    *code = MDHT_CTL_EXIT_NONE;
    snprintf(msg, msgcap,
             get ? "no item found (%u nodes asked)"
                 : "no node stored the item (%u nodes asked)",
             r->responses);
  } else {
    *code = MDHT_CTL_EXIT_OK;
  }
}

void mdht_ctl_format_result(const mdht_ctl_req *req, const mdht_result *r,
                            mdht_ctl_buf *out, int *code, char *msg,
                            size_t msgcap) {
  msg[0] = '\0';
  switch (req->cmd) {
  case MDHT_CTL_GET_PEERS:
    peers_result(req, r, out, code, msg, msgcap);
    return;
  case MDHT_CTL_FIND_NODE:
  case MDHT_CTL_ANNOUNCE:
    nodes_result(req, r, out, code, msg, msgcap);
    return;
  case MDHT_CTL_PING:
    ping_result(req, r, out, code, msg, msgcap);
    return;
  case MDHT_CTL_SAMPLE:
    sample_result(r, code, msg, msgcap);
    return;
  case MDHT_CTL_SCRAPE:
    scrape_result(req, r, out, code, msg, msgcap);
    return;
  case MDHT_CTL_GET_ITEM:
  case MDHT_CTL_PUT_ITEM:
    item_result(req, r, out, code, msg, msgcap);
    return;
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

/* What both forms of `stats` print, gathered once. */
typedef struct stats_view {
  mdht_stats s;
  bucket_counts *bc; /* NULL: out of memory, buckets left out */
  uint32_t nb;       /* buckets to print */
  unsigned long long up;
  char qin[256], qout[256], drops[256], hex[41];
} stats_view;

static const char *plural(uint64_t n) {
  return n == 1 ? "" : "s";
}

/* Neither good nor questionable: failed too often, to be replaced. */
static uint32_t nodes_bad(const mdht_stats *s) {
  uint32_t known = s->nodes_good + s->nodes_questionable;
  return s->nodes_total > known ? s->nodes_total - known : 0;
}

static void stats_json(const stats_view *v, mdht_ctl_buf *out) {
  const mdht_stats *s = &v->s;
  /* One object, one line; the buckets as an array. */
  char bk[NBUCKETS * 40];
  size_t n = 0;

  bk[0] = '\0';
  for (uint32_t b = 0; v->bc && b < v->nb && n < sizeof bk; b++)
    n += (size_t)snprintf(bk + n, sizeof bk - n,
                          "%s{\"bucket\":%u,\"nodes\":%u,\"good\":%u}",
                          b ? "," : "", b, v->bc->nodes[b], v->bc->good[b]);
  mdht_ctl_buf_line(
      out,
      "{\"type\":\"stats\",\"id\":\"%s\",\"uptime_s\":%llu,"
      "\"nodes\":{\"total\":%u,\"good\":%u,\"questionable\":%u,"
      "\"bad\":%u,\"buckets\":%u,\"replacements\":%u},\"buckets\":[%s],"
      "\"storage\":{\"infohashes\":%u,\"peers\":%u,\"items\":%u,"
      "\"items_stored\":%llu,\"items_served\":%llu,\"puts_refused\":%llu},"
      "\"packets\":{\"in\":%llu,\"out\":%llu},"
      "\"queries_in\":{%s},\"queries_out\":{%s},"
      "\"responses\":{\"in\":%llu,\"out\":%llu},"
      "\"errors\":{\"in\":%llu,\"out\":%llu},\"timeouts\":%llu,"
      "\"dropped\":{%s},\"rate_limited\":%llu,\"tokens_rejected\":%llu,"
      "\"txns_outstanding\":%u}",
      v->hex, v->up, s->nodes_total, s->nodes_good, s->nodes_questionable,
      nodes_bad(s), s->buckets, s->replacements, bk, s->infohashes, s->peers,
      s->items, (unsigned long long)s->items_stored,
      (unsigned long long)s->items_served, (unsigned long long)s->puts_rejected,
      (unsigned long long)s->recv_packets, (unsigned long long)s->sent_packets,
      v->qin, v->qout, (unsigned long long)s->responses_in,
      (unsigned long long)s->responses_out, (unsigned long long)s->errors_in,
      (unsigned long long)s->errors_out, (unsigned long long)s->timeouts,
      v->drops, (unsigned long long)s->rate_limited,
      (unsigned long long)s->tokens_rejected, s->txns_outstanding);
}

static void stats_text(const stats_view *v, mdht_ctl_buf *out) {
  const mdht_stats *s = &v->s;

  mdht_ctl_buf_line(out, "id               %s", v->hex);
  mdht_ctl_buf_line(out, "uptime           %llu s", v->up);
  mdht_ctl_buf_line(out,
                    "nodes            %u (%u good, %u questionable, %u bad) "
                    "in %u bucket%s, %u replacement%s",
                    s->nodes_total, s->nodes_good, s->nodes_questionable,
                    nodes_bad(s), s->buckets, plural(s->buckets),
                    s->replacements, plural(s->replacements));
  for (uint32_t b = 0; v->bc && b < v->nb; b++)
    mdht_ctl_buf_line(out, "  bucket %-3u      %u (%u good)", b,
                      v->bc->nodes[b], v->bc->good[b]);
  mdht_ctl_buf_line(out, "storage          %u info-hash%s, %u peer%s",
                    s->infohashes, s->infohashes == 1 ? "" : "es", s->peers,
                    plural(s->peers));
  mdht_ctl_buf_line(out,
                    "items            %u (BEP 44; %llu puts stored, %llu gets "
                    "served, %llu puts refused)",
                    s->items, (unsigned long long)s->items_stored,
                    (unsigned long long)s->items_served,
                    (unsigned long long)s->puts_rejected);
  mdht_ctl_buf_line(out, "packets          %llu in, %llu out",
                    (unsigned long long)s->recv_packets,
                    (unsigned long long)s->sent_packets);
  mdht_ctl_buf_line(out, "queries in       %s", v->qin);
  mdht_ctl_buf_line(out, "queries out      %s", v->qout);
  mdht_ctl_buf_line(out, "responses        %llu in, %llu out",
                    (unsigned long long)s->responses_in,
                    (unsigned long long)s->responses_out);
  mdht_ctl_buf_line(out, "errors           %llu in, %llu out",
                    (unsigned long long)s->errors_in,
                    (unsigned long long)s->errors_out);
  mdht_ctl_buf_line(out, "timeouts         %llu",
                    (unsigned long long)s->timeouts);
  mdht_ctl_buf_line(out, "dropped          %s", v->drops);
  mdht_ctl_buf_line(out, "rate limited     %llu",
                    (unsigned long long)s->rate_limited);
  mdht_ctl_buf_line(out, "tokens rejected  %llu",
                    (unsigned long long)s->tokens_rejected);
  mdht_ctl_buf_line(out, "transactions     %u outstanding",
                    s->txns_outstanding);
}

/* BEP 32: a dual-stack node's other family, after the first's stats
 * (the store is one, counted above): its table and its socket's
 * traffic. */
static void stats_sibling(const mdht_ctl_req *req, const mdht_node *sib,
                          mdht_time now, mdht_ctl_buf *out) {
  mdht_stats s;
  mdht_node_stats(sib, now, &s);
  int fam = mdht_node_family(sib);
  if (req->json) {
    mdht_ctl_buf_line(
        out,
        "{\"type\":\"stats_family\",\"family\":%d,"
        "\"nodes\":{\"total\":%u,\"good\":%u,\"questionable\":%u,"
        "\"bad\":%u,\"buckets\":%u,\"replacements\":%u},"
        "\"packets\":{\"in\":%llu,\"out\":%llu},"
        "\"responses\":{\"in\":%llu,\"out\":%llu},\"timeouts\":%llu}",
        fam, s.nodes_total, s.nodes_good, s.nodes_questionable, nodes_bad(&s),
        s.buckets, s.replacements, (unsigned long long)s.recv_packets,
        (unsigned long long)s.sent_packets, (unsigned long long)s.responses_in,
        (unsigned long long)s.responses_out, (unsigned long long)s.timeouts);
    return;
  }
  mdht_ctl_buf_line(out,
                    "IPv%d nodes       %u (%u good, %u questionable, %u bad) "
                    "in %u bucket%s, %u replacement%s",
                    fam, s.nodes_total, s.nodes_good, s.nodes_questionable,
                    nodes_bad(&s), s.buckets, plural(s.buckets), s.replacements,
                    plural(s.replacements));
  mdht_ctl_buf_line(out, "IPv%d packets     %llu in, %llu out", fam,
                    (unsigned long long)s.recv_packets,
                    (unsigned long long)s.sent_packets);
  mdht_ctl_buf_line(out, "IPv%d responses   %llu in, %llu out", fam,
                    (unsigned long long)s.responses_in,
                    (unsigned long long)s.responses_out);
}

void mdht_ctl_format_stats(const mdht_ctl_req *req, const mdht_node *node,
                           mdht_time now, mdht_ctl_buf *out) {
  stats_view v;
  mdht_stats *s = &v.s;

  memset(&v, 0, sizeof v);
  v.bc = calloc(1, sizeof *v.bc);
  mdht_node_stats(node, now, s);
  if (v.bc) mdht_node_visit(node, now, count_node, v.bc);
  v.up = now >= s->started ? (now - s->started) / 1000 : 0;
  v.nb = s->buckets < NBUCKETS ? s->buckets : NBUCKETS;
  mdht_id_format(mdht_node_id(node), v.hex);
  method_counts(s->queries_in, req->json, v.qin, sizeof v.qin);
  method_counts(s->queries_out, req->json, v.qout, sizeof v.qout);
  drop_counts(s->dropped, req->json, v.drops, sizeof v.drops);
  if (req->json)
    stats_json(&v, out);
  else
    stats_text(&v, out);
  free(v.bc);
  const mdht_node *sib = mdht_node_sibling(node);
  if (sib) stats_sibling(req, sib, now, out);
}

/* ----------------------------------------------------------------- save */

void mdht_ctl_format_saved(const mdht_ctl_req *req, const mdht_ctl_saved *s,
                           mdht_ctl_buf *out) {
  char path[sizeof s->path * 6]; /* worst case: every byte \u00NN */

  /* In JSON a string body; in text, escaped like everything the client
   * prints, so that a strange path cannot end the line or pass for a
   * progress or status line. */
  mdht_ctl_escape_as(path, sizeof path, s->path, strlen(s->path),
                     req->json ? MDHT_CTL_ESC_JSON_STR : MDHT_CTL_ESC_TEXT);
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

/* ----------------------------------------------------------- inspection */

void mdht_ctl_list_init(mdht_ctl_list *l, const mdht_ctl_req *req,
                        mdht_ctl_buf *out, size_t limit, mdht_time now) {
  memset(l, 0, sizeof *l);
  l->req = req;
  l->out = out;
  l->limit = limit < MDHT_CTL_MAX_OUT ? limit : MDHT_CTL_MAX_OUT;
  l->now = now;
}

/* Whether one more line fits; if not, it is counted for the last line. */
static bool list_room(mdht_ctl_list *l) {
  if (l->more == 0 && l->out->len + MDHT_CTL_LIST_RESERVE <= l->limit) {
    l->shown++;
    return true;
  }
  l->more++;
  return false;
}

static const char *const node_states[] = {
    [MDHT_NODE_GOOD] = "good",
    [MDHT_NODE_QUESTIONABLE] = "questionable",
    [MDHT_NODE_BAD] = "bad",
};

/* Time since `t` on the node's clock, "-" / null for never. */
static void since(const mdht_ctl_list *l, mdht_time t, bool json,
                  char buf[32]) {
  mdht_time d = l->now > t ? l->now - t : 0;
  if (t == 0)
    snprintf(buf, 32, json ? "null" : "-");
  else if (json)
    snprintf(buf, 32, "%llu", (unsigned long long)d);
  else
    snprintf(buf, 32, "%llus", (unsigned long long)(d / 1000));
}

void mdht_ctl_list_node(mdht_ctl_list *l, const mdht_node_entry *e) {
  bool json = l->req->json;
  char hex[41], addr[64], age[32], seen[32], rtt[32];
  mdht_time last =
      e->last_reply > e->last_query ? e->last_reply : e->last_query;
  const char *st =
      (unsigned)e->state <= MDHT_NODE_BAD ? node_states[e->state] : "?";

  if (!list_room(l)) return;
  mdht_id_format(&e->id, hex);
  fmt_addr(&e->addr, addr);
  since(l, e->added, json, age);
  since(l, last, json, seen);
  if (e->rtt_ms == 0)
    snprintf(rtt, sizeof rtt, json ? "null" : "-");
  else
    snprintf(rtt, sizeof rtt, json ? "%u" : "%ums", e->rtt_ms);
  if (json)
    mdht_ctl_buf_line(l->out,
                      "{\"type\":\"node\",\"bucket\":%u,\"id\":\"%s\","
                      "\"addr\":\"%s\",\"state\":\"%s\",\"age_ms\":%s,"
                      "\"seen_ms\":%s,\"rtt_ms\":%s,\"fails\":%u}",
                      e->bucket, hex, addr, st, age, seen, rtt, e->fails);
  else
    mdht_ctl_buf_line(l->out, "%-3u %s %s %s age %s seen %s rtt %s", e->bucket,
                      hex, addr, st, age, seen, rtt);
}

void mdht_ctl_list_infohash(mdht_ctl_list *l, const mdht_store_entry *e) {
  char hex[41];

  if (!list_room(l)) return;
  mdht_id_format(&e->infohash, hex);
  if (l->req->json)
    mdht_ctl_buf_line(l->out,
                      "{\"type\":\"infohash\",\"infohash\":\"%s\",\"peers\":%u,"
                      "\"seeds\":%u,\"newest_ms\":%llu,\"oldest_ms\":%llu}",
                      hex, e->peers, e->seeds, (unsigned long long)e->newest_ms,
                      (unsigned long long)e->oldest_ms);
  else
    mdht_ctl_buf_line(l->out, "%s peers %u seeds %u newest %llus oldest %llus",
                      hex, e->peers, e->seeds,
                      (unsigned long long)(e->newest_ms / 1000),
                      (unsigned long long)(e->oldest_ms / 1000));
}

void mdht_ctl_list_peer(mdht_ctl_list *l, const mdht_stored_peer *p) {
  char addr[64];

  if (!list_room(l)) return;
  fmt_addr(&p->addr, addr);
  if (l->req->json)
    mdht_ctl_buf_line(l->out,
                      "{\"type\":\"peer\",\"addr\":\"%s\",\"seed\":%s,"
                      "\"age_ms\":%llu,\"ttl_ms\":%llu}",
                      addr, p->seed ? "true" : "false",
                      (unsigned long long)p->age_ms,
                      (unsigned long long)p->ttl_ms);
  else
    mdht_ctl_buf_line(l->out, "%s age %llus%s", addr,
                      (unsigned long long)(p->age_ms / 1000),
                      p->seed ? " seed" : "");
}

void mdht_ctl_list_end(mdht_ctl_list *l) {
  if (l->more == 0) return;
  /* Written past `limit`, within the reserve kept for it. */
  if (l->req->json)
    mdht_ctl_buf_line(l->out, "{\"type\":\"more\",\"count\":%llu}",
                      (unsigned long long)l->more);
  else
    mdht_ctl_buf_line(l->out, "... %llu more (output capped at %zu KiB)",
                      (unsigned long long)l->more, l->limit / 1024);
}

/* ------------------------------------------------------------- escaping */

static size_t escape1(unsigned char c, mdht_ctl_esc mode, char out[8]) {
  if (mode == MDHT_CTL_ESC_JSON_STR && (c == '"' || c == '\\')) {
    out[0] = '\\';
    out[1] = (char)c;
    return 2;
  }
  if (c >= 0x20 && c < 0x7f) {
    out[0] = (char)c;
    return 1;
  }
  return (size_t)snprintf(out, 8,
                          mode == MDHT_CTL_ESC_TEXT ? "\\x%02x" : "\\u%04x", c);
}

size_t mdht_ctl_escape_as(char *dst, size_t cap, const char *src, size_t n,
                          mdht_ctl_esc mode) {
  size_t k = 0;
  if (cap == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char tmp[8];
    size_t m = escape1((unsigned char)src[i], mode, tmp);
    if (k + m >= cap) break; /* whole escapes only */
    memcpy(dst + k, tmp, m);
    k += m;
  }
  dst[k] = '\0';
  return k;
}

size_t mdht_ctl_escape(char *dst, size_t cap, const char *src, size_t n,
                       bool json) {
  return mdht_ctl_escape_as(dst, cap, src, n,
                            json ? MDHT_CTL_ESC_JSON : MDHT_CTL_ESC_TEXT);
}
