/*
 * The control protocol's requests: one line of text naming a command, its
 * argument and options, as the client commands send it to `mdht run`'s
 * control socket (control.h) and as the short-lived node of a command run
 * without --control reads it back.
 *
 * Its own module because it is pure (no I/O, no node) and is the grammar
 * both ends share: the client formats, the server parses, the fuzz target
 * checks the round trip.
 *
 *   request  = command [SP argument] *(SP option) LF      (at most 1024 bytes)
 *   command  = "get-peers" | "announce" | "find-node" | "ping" | "stats"
 *            | "save" | "sample" | "table" | "infohashes" | "peers"
 *            | "scrape"
 *   argument = 40 hex digits (find-node), 40 hex digits or a magnet link
 *              (get-peers, announce, peers, scrape), a numeric "IP:PORT" or
 *              "[IPv6]:PORT" (ping); none (stats, save, table,
 *              infohashes)
 *   option   = "--json" | "--progress" | "--timeout" SP MS
 *            | "--port" SP N | "--implied-port" | "--seed"      (announce)
 *            | "--max" SP N                                     (sample)
 *
 * BEP 44 items (bytes travel as hex, so that the line stays one line):
 *   "get" SP (40 hex digits: an immutable item's target
 *            | 64 hex digits: a mutable item's public key) ["--salt" SP hex]
 *   "put" SP value-hex (one bencoded value, at most 1,000 bytes)
 *            ["--key" SP 64 hex digits (the Ed25519 seed: mutable)
 *             ["--salt" SP hex] ["--seq" SP N | "--cas" SP N]]
 */
#ifndef MDHT_CTL_REQUEST_H
#define MDHT_CTL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mdht.h"

/* A put of a 1,000-byte value, in hex, with its key and salt. */
#define MDHT_CTL_MAX_LINE 4096
#define MDHT_CTL_DEFAULT_TIMEOUT_MS ((mdht_time)30000)
#define MDHT_CTL_MAX_TIMEOUT_MS ((mdht_time)3600 * 1000)
/* sample --max: a crawl reports at most 65536 (MDHT_CRAWL_MAX_SEEN) */
#define MDHT_CTL_MAX_SAMPLE 65536

typedef enum mdht_ctl_cmd {
  MDHT_CTL_NONE,
  MDHT_CTL_GET_PEERS,
  MDHT_CTL_ANNOUNCE,
  MDHT_CTL_FIND_NODE,
  MDHT_CTL_PING,
  MDHT_CTL_STATS,
  MDHT_CTL_SAVE,   /* only on a running node's socket: see mdht_ctl_save_fn */
  MDHT_CTL_SAMPLE, /* BEP 51 crawl: no argument, streams its lines */
  /* What the node holds (issue 11): answered at once, like stats. */
  MDHT_CTL_TABLE,      /* its routing table, one line per entry */
  MDHT_CTL_INFOHASHES, /* its stored info-hashes */
  MDHT_CTL_PEERS,      /* the stored peers of one info-hash */
  MDHT_CTL_SCRAPE,     /* BEP 33: estimated seeds and downloaders */
  MDHT_CTL_GET_ITEM,   /* BEP 44 "get" */
  MDHT_CTL_PUT_ITEM,   /* BEP 44 "put" */
  MDHT_CTL_LAST_ = MDHT_CTL_PUT_ITEM
} mdht_ctl_cmd;
#define MDHT_CTL_LAST_ MDHT_CTL_PUT_ITEM

typedef struct mdht_ctl_req {
  mdht_ctl_cmd cmd;
  mdht_id target;       /* info-hash or id */
  mdht_addr addr;       /* ping */
  uint16_t port;        /* announce */
  bool implied_port;    /* announce */
  bool seed;            /* announce */
  bool json;            /* one JSON object per line */
  bool progress;        /* progress lines */
  mdht_time timeout_ms; /* 0: MDHT_CTL_DEFAULT_TIMEOUT_MS */
  uint32_t max;         /* sample: info-hashes to stop at, 0 = no limit */
  /* BEP 44 get / put. `target` is the item's (computed for a mutable get
   * and for a put). */
  bool item_mutable; /* get: pk given; put: key given */
  uint8_t pk[32];    /* mutable get, and a put's (from its key) */
  uint8_t key[32];   /* put: the Ed25519 seed */
  uint8_t salt[64];
  size_t salt_len;
  uint8_t value[1000]; /* put: the bencoded value */
  size_t value_len;
  bool has_seq, has_cas;
  int64_t seq, cas;
} mdht_ctl_req;

/* "get-peers" -> MDHT_CTL_GET_PEERS; MDHT_CTL_NONE if unknown. */
mdht_ctl_cmd mdht_ctl_cmd_parse(const char *name);
const char *mdht_ctl_cmd_name(mdht_ctl_cmd cmd);

/* Parses one request line (without or with its LF). Returns 0, or
 * MDHT_ERR_INVAL with a one-line reason in `err`. Pure. */
int mdht_ctl_parse(mdht_ctl_req *req, const char *line, size_t len, char *err,
                   size_t errcap);

/* Writes the request line for `req`, LF included. Returns its length or
 * MDHT_ERR_NOBUF. mdht_ctl_parse reads it back to the same request. */
int mdht_ctl_format(const mdht_ctl_req *req, char *buf, size_t cap);

#endif
