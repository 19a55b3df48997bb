/*
 * Helpers shared by the in-process benchmarks (memory.c, core.c), which
 * drive a node through the public API alone: mdht_node_recv with
 * hand-built KRPC datagrams, mdht_node_next_packet for what it sends.
 * Header-only, so each benchmark stays one translation unit.
 */
#ifndef MDHT_BENCH_FEED_H
#define MDHT_BENCH_FEED_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mdht.h"

/* xorshift64*: deterministic, so that two runs (and callgrind runs) feed
 * the node the same datagrams. */
static uint64_t feed_rng = 0x9e3779b97f4a7c15ULL;

static inline uint64_t feed_rnd64(void) {
  feed_rng ^= feed_rng >> 12;
  feed_rng ^= feed_rng << 25;
  feed_rng ^= feed_rng >> 27;
  return feed_rng * 0x2545f4914f6cdd1dULL;
}

/* The node's randomness callback. */
static inline void feed_random(uint8_t *buf, size_t len, void *user) {
  (void)user;
  for (size_t i = 0; i < len; i++)
    buf[i] = (uint8_t)(feed_rnd64() >> 56);
}

/* A datagram being built; 512 bytes hold any query we send. */
typedef struct wbuf {
  uint8_t p[512];
  size_t n;
} wbuf;

static inline void put(wbuf *w, const void *s, size_t n) {
  memcpy(w->p + w->n, s, n);
  w->n += n;
}
#define PUTS(w, lit) put((w), lit, sizeof lit - 1)

/* A bencoded string: "<len>:<bytes>". */
static inline void put_str(wbuf *w, const uint8_t *s, size_t n) {
  char hdr[16];
  int hl = snprintf(hdr, sizeof hdr, "%zu:", n);
  put(w, hdr, (size_t)hl);
  put(w, s, n);
}

/* IPv4 address number i (< 2^24) of public network net/8 (1/8, 2/8, 3/8),
 * port 6881, so that the node treats them as real remote nodes. The low 16
 * bits of i pick the /24 (net.x.y.0), so that up to 65,536 fake nodes each
 * have a /24 of their own, as the routing table's one-per-/24 rule wants
 * of distinct hosts; the rest picks the last byte. */
static inline mdht_addr feed_addr(uint8_t net, uint32_t i) {
  mdht_addr a = {.family = MDHT_AF_INET, .port = 6881};
  a.ip[0] = net;
  a.ip[1] = (uint8_t)(i >> 8);
  a.ip[2] = (uint8_t)i;
  a.ip[3] = (uint8_t)((i >> 16) + 1);
  return a;
}

static inline uint32_t feed_index(const mdht_addr *a) {
  return (uint32_t)(a->ip[3] - 1) << 16 | (uint32_t)a->ip[1] << 8 | a->ip[2];
}

/* A random id sharing exactly `depth` (< 160) leading bits with `self`. */
static inline mdht_id feed_id_at_depth(const mdht_id *self, uint32_t depth) {
  mdht_id x;
  feed_random(x.b, sizeof x.b, NULL);
  uint32_t byte = depth / 8, bit = depth % 8;
  uint8_t keep = (uint8_t)(0xff00u >> bit); /* bits before `bit` */
  uint8_t flip = (uint8_t)(0x80u >> bit);
  for (uint32_t i = 0; i < byte; i++)
    x.b[i] = self->b[i];
  x.b[byte] = (uint8_t)((self->b[byte] & keep) | (~self->b[byte] & flip) |
                        (x.b[byte] & ~keep & ~flip));
  return x;
}

/* A query datagram: a = {id, <args_rest>}, optional ro=1, t = "aa". */
static inline void feed_query(wbuf *w, const mdht_id *id, const char *q,
                              const wbuf *args_rest, bool ro) {
  w->n = 0;
  PUTS(w, "d1:ad2:id20:");
  put(w, id->b, 20);
  if (args_rest) put(w, args_rest->p, args_rest->n);
  PUTS(w, "e1:q");
  put_str(w, (const uint8_t *)q, strlen(q));
  if (ro) PUTS(w, "2:roi1e");
  PUTS(w, "1:t2:aa1:y1:qe");
}

/* The response a node with id `id` gives to a query with transaction id
 * t: {"r": {"id": id}}. */
static inline void feed_pong(wbuf *w, const mdht_id *id, const uint8_t *t,
                             size_t tlen) {
  w->n = 0;
  PUTS(w, "d1:rd2:id20:");
  put(w, id->b, 20);
  PUTS(w, "e1:t");
  put_str(w, t, tlen);
  PUTS(w, "1:y1:re");
}

#endif
