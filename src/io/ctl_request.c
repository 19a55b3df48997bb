/* Control requests: parsing and formatting. The grammar is in
 * ctl_request.h. */
#include "ctl_request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bencode.h"
#include "item.h"
#include "krpc.h"
#include "magnet.h"

static const char *const cmd_names[] = {
    [MDHT_CTL_NONE] = "",
    [MDHT_CTL_GET_PEERS] = "get-peers",
    [MDHT_CTL_ANNOUNCE] = "announce",
    [MDHT_CTL_FIND_NODE] = "find-node",
    [MDHT_CTL_PING] = "ping",
    [MDHT_CTL_STATS] = "stats",
    [MDHT_CTL_SAVE] = "save",
    [MDHT_CTL_SAMPLE] = "sample",
    [MDHT_CTL_TABLE] = "table",
    [MDHT_CTL_INFOHASHES] = "infohashes",
    [MDHT_CTL_PEERS] = "peers",
    [MDHT_CTL_SCRAPE] = "scrape",
    [MDHT_CTL_GET_ITEM] = "get",
    [MDHT_CTL_PUT_ITEM] = "put",
};

mdht_ctl_cmd mdht_ctl_cmd_parse(const char *name) {
  for (int c = MDHT_CTL_GET_PEERS; c <= MDHT_CTL_LAST_; c++)
    if (strcmp(name, cmd_names[c]) == 0) return (mdht_ctl_cmd)c;
  return MDHT_CTL_NONE;
}

const char *mdht_ctl_cmd_name(mdht_ctl_cmd cmd) {
  if (cmd < MDHT_CTL_NONE || cmd > MDHT_CTL_LAST_) return "";
  return cmd_names[cmd];
}

/* stats, save, table and infohashes are about the node itself: no id or
 * address. */
static bool takes_arg(mdht_ctl_cmd cmd) {
  return cmd != MDHT_CTL_STATS && cmd != MDHT_CTL_SAVE &&
         cmd != MDHT_CTL_SAMPLE && cmd != MDHT_CTL_TABLE &&
         cmd != MDHT_CTL_INFOHASHES;
}

#define MAX_WORDS 16

/* Splits `buf` in place into at most MAX_WORDS words. */
static int split_words(char *buf, char **w, size_t *nw, char *err,
                       size_t errcap) {
  *nw = 0;
  for (char *p = strtok(buf, " \t"); p; p = strtok(NULL, " \t")) {
    if (*nw == MAX_WORDS) {
      snprintf(err, errcap, "too many words in request");
      return MDHT_ERR_INVAL;
    }
    w[(*nw)++] = p;
  }
  if (*nw == 0) {
    snprintf(err, errcap, "empty request");
    return MDHT_ERR_INVAL;
  }
  return 0;
}

/* ---------------------------------------------------------------- BEP 44 */

/* Hex to bytes: exactly `want` bytes, or any number up to `max` when
 * `want` is 0. Returns the byte count or -1. */
static int unhex(const char *s, uint8_t *out, size_t want, size_t max) {
  size_t n = strlen(s);
  if (n % 2 || (want && n != 2 * want) || n / 2 > max) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    int v = 0;
    for (int k = 0; k < 2; k++) {
      char c = s[2 * i + (size_t)k];
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

static void hex_of(const uint8_t *p, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Whether v is exactly one bencoded value. */
static bool one_value(const uint8_t *v, size_t n) {
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  size_t used = 0;
  return n > 0 && mdht_be_decode(v, n, toks, MDHT_KRPC_TOKENS, &used) > 0 &&
         used == n;
}

static int parse_item_arg(mdht_ctl_req *req, const char *arg, char *err,
                          size_t errcap) {
  int n;
  if (req->cmd == MDHT_CTL_GET_ITEM) {
    if (strlen(arg) == 64) {
      req->item_mutable = true;
      if (unhex(arg, req->pk, 32, 32) == 32) return 0;
    } else if (mdht_id_parse(&req->target, arg) == 0) {
      return 0;
    }
    snprintf(err, errcap,
             "bad get '%.70s' (want a 40-hex-digit target or a "
             "64-hex-digit public key)",
             arg);
    return MDHT_ERR_INVAL;
  }
  n = unhex(arg, req->value, 0, sizeof req->value);
  if (n <= 0 || !one_value(req->value, (size_t)n)) {
    snprintf(err, errcap,
             "bad value (want the hex of one bencoded value, at most "
             "1000 bytes)");
    return MDHT_ERR_INVAL;
  }
  req->value_len = (size_t)n;
  return 0;
}

/* A signed integer option of a put: --seq or --cas, 0 .. INT64_MAX - 1. */
static int parse_i64(const char *o, const char *val, int64_t *out, char *err,
                     size_t errcap) {
  char *end;
  unsigned long long v;
  if (!val || val[0] < '0' || val[0] > '9') {
    snprintf(err, errcap, "%s needs a number", o);
    return MDHT_ERR_INVAL;
  }
  errno = 0;
  v = strtoull(val, &end, 10);
  if (*end || errno || v >= (unsigned long long)INT64_MAX) {
    snprintf(err, errcap, "bad value '%.24s' for %s", val, o);
    return MDHT_ERR_INVAL;
  }
  *out = (int64_t)v;
  return 0;
}

/* An item option at w[i] (its value at w[i + 1]): 1 if it was one (and
 * took its value), 0 if not, < 0 on error. */
static int parse_item_option(mdht_ctl_req *req, const char *o, const char *val,
                             char *err, size_t errcap) {
  bool put = req->cmd == MDHT_CTL_PUT_ITEM;
  int rc;
  if (strcmp(o, "--salt") == 0) {
    rc = val ? unhex(val, req->salt, 0, sizeof req->salt) : -1;
    if (rc < 0) {
      snprintf(err, errcap, "--salt needs hex, at most 64 bytes");
      return MDHT_ERR_INVAL;
    }
    req->salt_len = (size_t)rc;
    return 1;
  }
  if (put && strcmp(o, "--key") == 0) {
    if (!val || unhex(val, req->key, 32, 32) != 32) {
      snprintf(err, errcap, "--key needs 64 hex digits (an Ed25519 seed)");
      return MDHT_ERR_INVAL;
    }
    req->item_mutable = true;
    return 1;
  }
  if (put && strcmp(o, "--seq") == 0) {
    req->has_seq = true;
    return parse_i64(o, val, &req->seq, err, errcap) < 0 ? MDHT_ERR_INVAL : 1;
  }
  if (put && strcmp(o, "--cas") == 0) {
    req->has_cas = true;
    return parse_i64(o, val, &req->cas, err, errcap) < 0 ? MDHT_ERR_INVAL : 1;
  }
  return 0;
}

/* The rules across options, and the target they make. */
static int finish_item(mdht_ctl_req *req, char *err, size_t errcap) {
  if (req->salt_len && !req->item_mutable) {
    snprintf(err, errcap, "--salt needs a mutable item (a key)");
    return MDHT_ERR_INVAL;
  }
  if ((req->has_seq || req->has_cas) && !req->item_mutable) {
    snprintf(err, errcap, "--seq and --cas need --key");
    return MDHT_ERR_INVAL;
  }
  if (req->has_seq && req->has_cas) {
    snprintf(err, errcap, "--seq and --cas exclude each other");
    return MDHT_ERR_INVAL;
  }
  if (req->cmd == MDHT_CTL_PUT_ITEM && req->item_mutable) {
    uint8_t sk[MDHT_ITEM_SK_LEN];
    mdht_item_keypair(req->key, req->pk, sk);
  }
  if (req->item_mutable)
    mdht_item_mutable_target(req->pk, req->salt, req->salt_len, &req->target);
  else if (req->cmd == MDHT_CTL_PUT_ITEM)
    mdht_item_immutable_target(req->value, req->value_len, &req->target);
  return 0;
}

/* The command's argument, `arg` (NULL when there is none). */
static int parse_arg(mdht_ctl_req *req, const char *cmd, const char *arg,
                     char *err, size_t errcap) {
  bool find = req->cmd == MDHT_CTL_FIND_NODE;

  if (!arg || arg[0] == '-') {
    snprintf(err, errcap, "%s needs %s", cmd,
             req->cmd == MDHT_CTL_PING       ? "HOST:PORT"
             : req->cmd == MDHT_CTL_PUT_ITEM ? "a value"
                                             : "an id");
    return MDHT_ERR_INVAL;
  }
  if (req->cmd == MDHT_CTL_GET_ITEM || req->cmd == MDHT_CTL_PUT_ITEM)
    return parse_item_arg(req, arg, err, errcap);
  if (req->cmd == MDHT_CTL_PING) {
    if (mdht_addr_parse(&req->addr, arg) < 0 || req->addr.port == 0) {
      snprintf(err, errcap, "bad address '%.64s' (want IP:PORT)", arg);
      return MDHT_ERR_INVAL;
    }
  } else if (find ? mdht_id_parse(&req->target, arg) < 0
                  : mdht_ctl_parse_infohash(&req->target, arg) < 0) {
    snprintf(err, errcap, "bad %s '%.64s' (want 40 hex digits%s)",
             find ? "id" : "info-hash", arg, find ? "" : " or a magnet link");
    return MDHT_ERR_INVAL;
  }
  return 0;
}

/* "--timeout MS" or "--port N": `val` is the word after the option, NULL
 * at the end of the line. */
static int parse_number(mdht_ctl_req *req, const char *o, const char *val,
                        char *err, size_t errcap) {
  bool port = o[2] == 'p', max = o[2] == 'm';
  unsigned long long v;
  char *end;

  if (!val || val[0] < '0' || val[0] > '9') {
    snprintf(err, errcap, "%s needs a number", o);
    return MDHT_ERR_INVAL;
  }
  errno = 0;
  v = strtoull(val, &end, 10);
  if (*end || errno ||
      (port  ? v < 1 || v > 65535
       : max ? v < 1 || v > MDHT_CTL_MAX_SAMPLE
             : v < 1 || v > MDHT_CTL_MAX_TIMEOUT_MS)) {
    snprintf(err, errcap, "bad value '%.20s' for %s", val, o);
    return MDHT_ERR_INVAL;
  }
  if (port)
    req->port = (uint16_t)v;
  else if (max)
    req->max = (uint32_t)v;
  else
    req->timeout_ms = v;
  return 0;
}

/* The options from w[i] on. */
static int parse_options(mdht_ctl_req *req, char **w, size_t nw, size_t i,
                         char *err, size_t errcap) {
  bool announce = req->cmd == MDHT_CTL_ANNOUNCE;
  bool item = req->cmd == MDHT_CTL_GET_ITEM || req->cmd == MDHT_CTL_PUT_ITEM;

  for (; i < nw; i++) {
    const char *o = w[i];
    int taken = item ? parse_item_option(req, o, i + 1 < nw ? w[i + 1] : NULL,
                                         err, errcap)
                     : 0;
    if (taken < 0) return MDHT_ERR_INVAL;
    if (taken > 0) {
      i++;
    } else if (strcmp(o, "--json") == 0) {
      req->json = true;
    } else if (strcmp(o, "--progress") == 0) {
      req->progress = true;
    } else if (announce && strcmp(o, "--implied-port") == 0) {
      req->implied_port = true;
    } else if (announce && strcmp(o, "--seed") == 0) {
      req->seed = true;
    } else if (strcmp(o, "--timeout") == 0 ||
               (announce && strcmp(o, "--port") == 0) ||
               (req->cmd == MDHT_CTL_SAMPLE && strcmp(o, "--max") == 0)) {
      if (parse_number(req, o, i + 1 < nw ? w[i + 1] : NULL, err, errcap) < 0)
        return MDHT_ERR_INVAL;
      i++;
    } else {
      snprintf(err, errcap, "unexpected '%.40s' in %s request", o, w[0]);
      return MDHT_ERR_INVAL;
    }
  }
  return 0;
}

int mdht_ctl_parse(mdht_ctl_req *req, const char *line, size_t len, char *err,
                   size_t errcap) {
  char buf[MDHT_CTL_MAX_LINE + 1];
  char *w[MAX_WORDS];
  size_t nw;

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
  if (split_words(buf, w, &nw, err, errcap) < 0) return MDHT_ERR_INVAL;
  req->cmd = mdht_ctl_cmd_parse(w[0]);
  if (req->cmd == MDHT_CTL_NONE) {
    /* Bounded: a request may be any bytes. */
    snprintf(err, errcap, "unknown command '%.40s'", w[0]);
    return MDHT_ERR_INVAL;
  }
  if (takes_arg(req->cmd) &&
      parse_arg(req, w[0], nw > 1 ? w[1] : NULL, err, errcap) < 0)
    return MDHT_ERR_INVAL;
  if (parse_options(req, w, nw, takes_arg(req->cmd) ? 2 : 1, err, errcap) < 0)
    return MDHT_ERR_INVAL;
  if (req->cmd == MDHT_CTL_ANNOUNCE && req->port == 0 && !req->implied_port) {
    snprintf(err, errcap, "announce needs --port N or --implied-port");
    return MDHT_ERR_INVAL;
  }
  if ((req->cmd == MDHT_CTL_GET_ITEM || req->cmd == MDHT_CTL_PUT_ITEM) &&
      finish_item(req, err, errcap) < 0)
    return MDHT_ERR_INVAL;
  return 0;
}

/* The argument and options of a get or put, in hex. */
static int format_item(const mdht_ctl_req *req, char *buf, size_t cap) {
  char hex[2 * 1000 + 1];
  int n;
  bool put = req->cmd == MDHT_CTL_PUT_ITEM;
  if (put)
    hex_of(req->value, req->value_len, hex);
  else if (req->item_mutable)
    hex_of(req->pk, 32, hex);
  else
    mdht_id_format(&req->target, hex);
  n = snprintf(buf, cap, "%s %s", mdht_ctl_cmd_name(req->cmd), hex);
  if (n < 0 || (size_t)n >= cap) return MDHT_ERR_NOBUF;
  if (put && req->item_mutable) {
    hex_of(req->key, 32, hex);
    n += snprintf(buf + n, cap - (size_t)n, " --key %s", hex);
  }
  if (req->salt_len && (size_t)n < cap) {
    hex_of(req->salt, req->salt_len, hex);
    n += snprintf(buf + n, cap - (size_t)n, " --salt %s", hex);
  }
  if (req->has_seq && (size_t)n < cap)
    n += snprintf(buf + n, cap - (size_t)n, " --seq %lld", (long long)req->seq);
  if (req->has_cas && (size_t)n < cap)
    n += snprintf(buf + n, cap - (size_t)n, " --cas %lld", (long long)req->cas);
  if ((size_t)n >= cap) return MDHT_ERR_NOBUF;
  return n;
}

int mdht_ctl_format(const mdht_ctl_req *req, char *buf, size_t cap) {
  char arg[64] = "";
  int n;

  if (req->cmd == MDHT_CTL_GET_ITEM || req->cmd == MDHT_CTL_PUT_ITEM) {
    n = format_item(req, buf, cap);
    if (n < 0) return n;
  } else {
    if (req->cmd == MDHT_CTL_PING) {
      if (mdht_addr_format(&req->addr, arg, sizeof arg) < 0)
        return MDHT_ERR_INVAL;
    } else if (takes_arg(req->cmd)) {
      mdht_id_format(&req->target, arg);
    }
    n = snprintf(buf, cap, "%s%s%s", mdht_ctl_cmd_name(req->cmd),
                 arg[0] ? " " : "", arg);
  }
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
  if (req->cmd == MDHT_CTL_SAMPLE && req->max)
    ADD(" --max %u", (unsigned)req->max);
  if (req->json) ADD(" --json");
  if (req->progress) ADD(" --progress");
  if (req->timeout_ms)
    ADD(" --timeout %llu", (unsigned long long)req->timeout_ms);
  ADD("\n");
#undef ADD
  if (n < 0 || (size_t)n >= cap) return MDHT_ERR_NOBUF;
  return n;
}
