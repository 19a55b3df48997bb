/* Control requests: parsing and formatting. The grammar is in
 * ctl_request.h. */
#include "ctl_request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The command's argument, `arg` (NULL when there is none). */
static int parse_arg(mdht_ctl_req *req, const char *cmd, const char *arg,
                     char *err, size_t errcap) {
  bool find = req->cmd == MDHT_CTL_FIND_NODE;

  if (!arg || arg[0] == '-') {
    snprintf(err, errcap, "%s needs %s", cmd,
             req->cmd == MDHT_CTL_PING ? "HOST:PORT" : "an id");
    return MDHT_ERR_INVAL;
  }
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

  for (; i < nw; i++) {
    const char *o = w[i];
    if (strcmp(o, "--json") == 0) {
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
