#include "logforge.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

const char *mdht_log_level_name(mdht_log_level level) {
  if ((unsigned)level < sizeof level_names / sizeof level_names[0])
    return level_names[level];
  return "?";
}

int mdht_log_level_parse(mdht_log_level *out, const char *s) {
  for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
    if (strcmp(s, level_names[i]) == 0) {
      *out = (mdht_log_level)i;
      return 0;
    }
  }
  return MDHT_ERR_INVAL;
}

int mdht_log_format_parse(mdht_log_format *out, const char *s) {
  if (strcmp(s, "text") == 0)
    *out = MDHT_LOG_TEXT;
  else if (strcmp(s, "json") == 0)
    *out = MDHT_LOG_JSON;
  else
    return MDHT_ERR_INVAL;
  return 0;
}

void mdht_logforge_init(mdht_logforge *lf, FILE *out, mdht_log_level level,
                        mdht_log_format format) {
  memset(lf, 0, sizeof *lf);
  lf->out = out;
  lf->level = level;
  lf->format = format;
}

void mdht_logforge_set_clock(mdht_logforge *lf, mdht_wallclock_cb clock,
                             void *user) {
  lf->clock = clock;
  lf->clock_user = user;
}

mdht_log_level mdht_logforge_event_level(const mdht_event *ev) {
  switch (ev->type) {
  case MDHT_EV_LOG:
    return ev->u.log.level;
  /* What an operator watches: the table growing, lookups ending, state
   * saved, the public address changing (the core publishes that once per
   * change). The README's level table is this switch. */
  case MDHT_EV_NODE_ADDED:
  case MDHT_EV_NODE_REMOVED:
  case MDHT_EV_NODE_REPLACED:
  case MDHT_EV_BUCKET_SPLIT:
  case MDHT_EV_LOOKUP_DONE:
  case MDHT_EV_BOOTSTRAP_DONE:
  case MDHT_EV_STATE_SAVED:
  case MDHT_EV_EXTERNAL_ADDR:
    return MDHT_LOG_INFO;
  /* Rare (once per change of the public address) and it changes what the
   * "listening" line said: visible in quiet runs too. */
  case MDHT_EV_NODE_ID_CHANGED:
    return MDHT_LOG_WARN;
  /* Remote peers misbehaving or the network losing packets is normal on
   * the public DHT: worth seeing when debugging, never a warning (a token
   * rejected from a stranger is nothing an operator can act on). A lookup's
   * start says nothing its end does not; the state load has its own, fuller
   * info line from the program (persist.c). */
  case MDHT_EV_LOOKUP_STARTED:
  case MDHT_EV_STATE_LOADED:
  case MDHT_EV_DATAGRAM_DROPPED:
  case MDHT_EV_RATE_LIMITED:
  case MDHT_EV_TOKEN_REJECTED:
  case MDHT_EV_QUERY_TIMEOUT:
  case MDHT_EV_ERROR_RECEIVED:
  case MDHT_EV_ERROR_SENT:
  case MDHT_EV_LOOKUP_PROGRESS:
  case MDHT_EV_PEER_STORED:
  case MDHT_EV_PEER_EXPIRED:
  case MDHT_EV_ITEM_STORED: /* BEP 44: one per put or get, like peers */
  case MDHT_EV_ITEM_SERVED:
    return MDHT_LOG_DEBUG;
  /* One per datagram: at trace, or a debug log of a busy node is nothing
   * but these. */
  case MDHT_EV_QUERY_RECEIVED:
  case MDHT_EV_RESPONSE_SENT:
  case MDHT_EV_QUERY_SENT:
  case MDHT_EV_RESPONSE_RECEIVED:
  default:
    return MDHT_LOG_TRACE;
  }
}

/* ------------------------------------------------------------ escaping */

/* Length of the well-formed UTF-8 sequence at p, or 0 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n) {
  unsigned char c = p[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;

  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else
    return 0;
  if (n < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return len;
}

enum esc {
  ESC_JSON,   /* inside a JSON string */
  ESC_QUOTED, /* inside a "quoted" text value */
  ESC_RAW     /* free text at the end of a text line */
};

/* JSON: RFC 8259 escapes, control characters as \u00XX, bytes that are not
 * UTF-8 as U+FFFD so the line stays valid JSON. Text: C-style escapes, so
 * that one record is always one line and stray bytes are visible. */
static void put_escaped(FILE *f, const char *s, enum esc mode) {
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s);
  bool json = mode == ESC_JSON;

  for (size_t i = 0; i < n;) {
    unsigned char c = p[i];
    size_t len;
    switch (c) {
    case '"':
    case '\\':
      if (mode == ESC_RAW) break;
      fputc('\\', f);
      fputc(c, f);
      i++;
      continue;
    case '\n':
      fputs("\\n", f);
      i++;
      continue;
    case '\r':
      fputs("\\r", f);
      i++;
      continue;
    case '\t':
      fputs("\\t", f);
      i++;
      continue;
    default:
      break;
    }
    if (c < 0x20 || c == 0x7F) {
      fprintf(f, json ? "\\u%04x" : "\\x%02x", c);
      i++;
      continue;
    }
    len = utf8_len(p + i, n - i);
    if (len == 0) {
      if (json)
        fputs("\\ufffd", f);
      else
        fprintf(f, "\\x%02x", c);
      i++;
      continue;
    }
    fwrite(p + i, 1, len, f);
    i += len;
  }
}

/* Text values are quoted only when a reader splitting on spaces and '='
 * would otherwise misread them. */
static bool text_needs_quotes(const char *s) {
  if (*s == '\0') return true;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7F)
      return true;
  return false;
}

/* ---------------------------------------------------------------- lines */

typedef struct line {
  FILE *f;
  bool json;
} line;

static void put_timestamp(FILE *f, uint64_t ms) {
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  char buf[32];

  if (!gmtime_r(&secs, &tm) ||
      strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
    strcpy(buf, "1970-01-01T00:00:00");
  fprintf(f, "%s.%03uZ", buf, (unsigned)(ms % 1000));
}

static uint64_t wall_now(const mdht_logforge *lf) {
  return lf->clock ? lf->clock(lf->clock_user) : lf->wall_ms;
}

/* `event` NULL: a free-text line, whose text follows as field "msg". */
static void line_begin(line *l, const mdht_logforge *lf, mdht_log_level level,
                       const char *event) {
  l->f = lf->out;
  l->json = lf->format == MDHT_LOG_JSON;
  flockfile(l->f);
  if (l->json) {
    fputs("{\"ts\":\"", l->f);
    put_timestamp(l->f, wall_now(lf));
    fprintf(l->f, "\",\"level\":\"%s\",\"event\":\"",
            mdht_log_level_name(level));
    put_escaped(l->f, event ? event : "log", ESC_JSON);
    fputc('"', l->f);
  } else {
    put_timestamp(l->f, wall_now(lf));
    fprintf(l->f, " %-5s", mdht_log_level_name(level));
    if (event) {
      fputc(' ', l->f);
      put_escaped(l->f, event, ESC_RAW);
    }
  }
}

static void line_end(line *l) {
  if (l->json) fputc('}', l->f);
  fputc('\n', l->f);
  fflush(l->f);
  funlockfile(l->f);
}

/* Free text: in text mode it is the rest of the line, unquoted. */
static void put_msg(line *l, const char *msg) {
  if (l->json) {
    fputs(",\"msg\":\"", l->f);
    put_escaped(l->f, msg, ESC_JSON);
    fputc('"', l->f);
  } else {
    fputc(' ', l->f);
    put_escaped(l->f, msg, ESC_RAW);
  }
}

static void put_str(line *l, const char *key, const char *v) {
  if (!v) v = "?";
  if (l->json) {
    fprintf(l->f, ",\"%s\":\"", key);
    put_escaped(l->f, v, ESC_JSON);
    fputc('"', l->f);
  } else if (text_needs_quotes(v)) {
    fprintf(l->f, " %s=\"", key);
    put_escaped(l->f, v, ESC_QUOTED);
    fputc('"', l->f);
  } else {
    fprintf(l->f, " %s=", key);
    put_escaped(l->f, v, ESC_RAW);
  }
}

static void put_u64(line *l, const char *key, uint64_t v) {
  fprintf(l->f, l->json ? ",\"%s\":%llu" : " %s=%llu", key,
          (unsigned long long)v);
}

static void put_i64(line *l, const char *key, int64_t v) {
  fprintf(l->f, l->json ? ",\"%s\":%lld" : " %s=%lld", key, (long long)v);
}

static void put_int(line *l, const char *key, int v) {
  fprintf(l->f, l->json ? ",\"%s\":%d" : " %s=%d", key, v);
}

static void put_bool(line *l, const char *key, bool v) {
  fprintf(l->f, l->json ? ",\"%s\":%s" : " %s=%s", key, v ? "true" : "false");
}

static bool id_is_zero(const mdht_id *id) {
  for (size_t i = 0; i < MDHT_ID_LEN; i++)
    if (id->b[i]) return false;
  return true;
}

/* Fields that do not apply to an event are zero (include/mdht.h): skip
 * them rather than print a fake all-zero id or address. */
static void put_id(line *l, const char *key, const mdht_id *id) {
  char hex[41];
  if (id_is_zero(id)) return;
  mdht_id_format(id, hex);
  put_str(l, key, hex);
}

static void put_addr(line *l, const char *key, const mdht_addr *a) {
  char buf[64];
  if (a->family != MDHT_AF_INET && a->family != MDHT_AF_INET6) return;
  if (mdht_addr_format(a, buf, sizeof buf) < 0) return;
  put_str(l, key, buf);
}

static void put_method(line *l, mdht_method m) {
  put_str(l, "method", mdht_method_name(m));
}

static void put_lookup(line *l, const mdht_event *ev, bool counts) {
  put_id(l, "target", &ev->id);
  put_method(l, ev->method);
  put_u64(l, "lookup", ev->u.lookup.lookup_id);
  if (!counts) return;
  put_u64(l, "round", ev->u.lookup.round);
  put_u64(l, "queried", ev->u.lookup.queried);
  put_u64(l, "answered", ev->u.lookup.answered);
  put_u64(l, "failed", ev->u.lookup.failed);
  put_u64(l, "peers", ev->u.lookup.peers);
  put_u64(l, "closest_bits", ev->u.lookup.closest_bits);
}

/* Events about who and where a node is (a remote node, or our own id and
 * external address): the id and address, and what they replaced. */
static void put_identity_fields(line *l, const mdht_event *ev) {
  switch (ev->type) {
  case MDHT_EV_EXTERNAL_ADDR:
    put_addr(l, "addr", &ev->addr);
    put_addr(l, "old_addr", &ev->u.replaced.old_addr);
    break;
  case MDHT_EV_NODE_ID_CHANGED:
    put_id(l, "id", &ev->id);
    put_id(l, "old_id", &ev->u.replaced.old_id);
    put_addr(l, "addr", &ev->addr);
    break;
  case MDHT_EV_NODE_REPLACED:
    put_id(l, "id", &ev->id);
    put_addr(l, "addr", &ev->addr);
    put_id(l, "old_id", &ev->u.replaced.old_id);
    put_addr(l, "old_addr", &ev->u.replaced.old_addr);
    break;
  default: /* node added or removed, token rejected, rate limited */
    put_id(l, "id", &ev->id);
    put_addr(l, "addr", &ev->addr);
    break;
  }
}

/* KRPC traffic: the method and the remote end, then what the event type
 * adds to them. */
static void put_message_fields(line *l, const mdht_event *ev) {
  put_method(l, ev->method);
  put_id(l, "id", &ev->id);
  put_addr(l, "addr", &ev->addr);
  switch (ev->type) {
  case MDHT_EV_QUERY_RECEIVED:
    if (ev->u.query.ro) put_bool(l, "ro", true);
    break;
  case MDHT_EV_RESPONSE_RECEIVED:
    put_u64(l, "rtt_ms", ev->u.response.rtt_ms);
    break;
  case MDHT_EV_ERROR_SENT:
  case MDHT_EV_ERROR_RECEIVED:
    put_int(l, "code", ev->u.error.code);
    break;
  default:
    break;
  }
}

static void put_event_fields(line *l, const mdht_event *ev) {
  switch (ev->type) {
  case MDHT_EV_NODE_ADDED:
  case MDHT_EV_NODE_REMOVED:
  case MDHT_EV_TOKEN_REJECTED:
  case MDHT_EV_RATE_LIMITED:
  case MDHT_EV_EXTERNAL_ADDR:
  case MDHT_EV_NODE_ID_CHANGED:
  case MDHT_EV_NODE_REPLACED:
    put_identity_fields(l, ev);
    break;
  case MDHT_EV_QUERY_RECEIVED:
  case MDHT_EV_RESPONSE_SENT:
  case MDHT_EV_QUERY_SENT:
  case MDHT_EV_QUERY_TIMEOUT:
  case MDHT_EV_RESPONSE_RECEIVED:
  case MDHT_EV_ERROR_SENT:
  case MDHT_EV_ERROR_RECEIVED:
    put_message_fields(l, ev);
    break;
  case MDHT_EV_BUCKET_SPLIT:
    put_u64(l, "depth", ev->u.split.depth);
    put_u64(l, "buckets", ev->u.split.buckets);
    break;
  case MDHT_EV_PEER_STORED:
  case MDHT_EV_PEER_EXPIRED:
    put_id(l, "infohash", &ev->id);
    put_addr(l, "peer", &ev->u.peer.peer);
    put_addr(l, "addr", &ev->addr);
    put_u64(l, "count", ev->u.peer.count);
    break;
  case MDHT_EV_ITEM_STORED:
  case MDHT_EV_ITEM_SERVED:
    put_id(l, "target", &ev->id);
    put_addr(l, "addr", &ev->addr);
    put_bool(l, "mutable", ev->u.item.is_mutable);
    if (ev->u.item.is_mutable) put_i64(l, "seq", ev->u.item.seq);
    put_u64(l, "len", ev->u.item.vlen);
    break;
  case MDHT_EV_LOOKUP_STARTED:
  case MDHT_EV_LOOKUP_PROGRESS:
  case MDHT_EV_LOOKUP_DONE:
    put_lookup(l, ev, ev->type != MDHT_EV_LOOKUP_STARTED);
    if (ev->type == MDHT_EV_LOOKUP_DONE) put_bool(l, "ok", ev->u.lookup.ok);
    break;
  case MDHT_EV_BOOTSTRAP_DONE:
  case MDHT_EV_STATE_SAVED:
  case MDHT_EV_STATE_LOADED:
    put_u64(l, "nodes", ev->u.state.nodes);
    put_u64(l, "peers", ev->u.state.peers);
    break;
  case MDHT_EV_DATAGRAM_DROPPED:
    put_str(l, "reason", mdht_drop_reason_name(ev->u.drop.reason));
    put_u64(l, "len", ev->u.drop.len);
    put_addr(l, "addr", &ev->addr);
    break;
  case MDHT_EV_LOG:
  default:
    break;
  }
}

void mdht_logforge_on_event(const mdht_event *ev, void *user) {
  mdht_logforge *lf = user;
  mdht_log_level level = mdht_logforge_event_level(ev);
  line l;

  if (!mdht_logforge_enabled(lf, level)) return;
  if (ev->type == MDHT_EV_LOG) {
    line_begin(&l, lf, level, NULL);
    put_msg(&l, ev->u.log.text ? ev->u.log.text : "");
  } else {
    line_begin(&l, lf, level, mdht_event_name(ev->type));
    put_event_fields(&l, ev);
  }
  line_end(&l);
}

void mdht_logforge_logf(mdht_logforge *lf, mdht_log_level level,
                        const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  line l;

  if (!mdht_logforge_enabled(lf, level)) return;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  line_begin(&l, lf, level, NULL);
  put_msg(&l, buf);
  line_end(&l);
}

void mdht_logforge_listening(mdht_logforge *lf, const mdht_addr *addr,
                             const mdht_id *id) {
  char a[64], hex[41];
  line l;

  /* Scripts read this line to learn the port and id (--port 0), and they
   * run quiet (--log-level warn): only "error" hides it. */
  if (!mdht_logforge_enabled(lf, MDHT_LOG_WARN)) return;
  if (mdht_addr_format(addr, a, sizeof a) < 0) strcpy(a, "?");
  mdht_id_format(id, hex);
  if (lf->format == MDHT_LOG_JSON) {
    line_begin(&l, lf, MDHT_LOG_INFO, "listening");
    put_str(&l, "addr", a);
    put_str(&l, "id", hex);
  } else {
    line_begin(&l, lf, MDHT_LOG_INFO, NULL);
    fprintf(l.f, " listening on %s id=%s", a, hex);
  }
  line_end(&l);
}
