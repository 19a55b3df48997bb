/* Helpers shared by the unit tests: a seeded random source (tests must be
 * repeatable) and address builders. */
#ifndef MDHT_TESTUTIL_H
#define MDHT_TESTUTIL_H

#include "mdht.h"
#include <string.h>

/* splitmix64: deterministic bytes for the node's random callback. */
static inline void test_random(uint8_t *buf, size_t len, void *user) {
  uint64_t *state = user;
  for (size_t i = 0; i < len; i++) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    buf[i] = (uint8_t)(z ^ (z >> 31));
  }
}

static inline mdht_addr test_addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                                   uint16_t port) {
  mdht_addr x;
  memset(&x, 0, sizeof x);
  x.family = MDHT_AF_INET;
  x.ip[0] = a;
  x.ip[1] = b;
  x.ip[2] = c;
  x.ip[3] = d;
  x.port = port;
  return x;
}

/* The i-th of many public hosts, each in a /24 of its own, so that the
 * routing table's "one entry per IP / per prefix" rules keep them all
 * (i < 2^22). */
static inline mdht_addr test_host4(uint32_t i, uint16_t port) {
  return test_addr4((uint8_t)(11 + (i >> 16)), (uint8_t)(i >> 8), (uint8_t)i, 1,
                    port);
}

static inline mdht_id test_id(uint8_t fill) {
  mdht_id id;
  memset(id.b, fill, sizeof id.b);
  return id;
}

#endif
