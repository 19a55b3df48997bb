#include "bloom.h"

#include <math.h>
#include <string.h>

#include <nettle/sha1.h>

#define BLOOM_BITS (MDHT_BLOOM_BYTES * 8)

void mdht_bloom_clear(mdht_bloom *b) {
  memset(b->bits, 0, sizeof b->bits);
}

/* The BEP's two indexes: the first four bytes of SHA-1(ip) as two
 * little-endian 16-bit numbers, each taken modulo m. */
void mdht_bloom_indexes(const mdht_addr *a, uint16_t idx[2]) {
  uint8_t h[SHA1_DIGEST_SIZE];
  struct sha1_ctx ctx;
  sha1_init(&ctx);
  sha1_update(&ctx, a->family == MDHT_AF_INET6 ? 16 : 4, a->ip);
  sha1_digest(&ctx, sizeof h, h);
  idx[0] = (uint16_t)((unsigned)(h[0] | h[1] << 8) % BLOOM_BITS);
  idx[1] = (uint16_t)((unsigned)(h[2] | h[3] << 8) % BLOOM_BITS);
}

void mdht_bloom_set(mdht_bloom *b, const uint16_t idx[2]) {
  for (int i = 0; i < 2; i++)
    b->bits[idx[i] / 8] |= (uint8_t)(1u << (idx[i] % 8));
}

void mdht_bloom_insert(mdht_bloom *b, const mdht_addr *a) {
  uint16_t idx[2];
  mdht_bloom_indexes(a, idx);
  mdht_bloom_set(b, idx);
}

bool mdht_bloom_test(const mdht_bloom *b, const mdht_addr *a) {
  uint16_t idx[2];
  mdht_bloom_indexes(a, idx);
  for (int i = 0; i < 2; i++)
    if (!(b->bits[idx[i] / 8] & (1u << (idx[i] % 8)))) return false;
  return true;
}

void mdht_bloom_union(mdht_bloom *dst, const mdht_bloom *src) {
  for (size_t i = 0; i < MDHT_BLOOM_BYTES; i++)
    dst->bits[i] |= src->bits[i];
}

double mdht_bloom_estimate(const mdht_bloom *b) {
  unsigned zeros = 0;
  for (size_t i = 0; i < MDHT_BLOOM_BYTES; i++)
    zeros += 8u - (unsigned)__builtin_popcount(b->bits[i]);
  /* An empty filter holds nothing (the BEP's clamp to m - 1 would say
   * 0.5). A full one would give log(0): at least one zero bit is assumed,
   * the largest estimate the filter can give. */
  if (zeros == BLOOM_BITS) return 0.0;
  if (zeros == 0) zeros = 1;
  return log((double)zeros / BLOOM_BITS) / (2.0 * log(1.0 - 1.0 / BLOOM_BITS));
}

int mdht_bloom_from_bytes(mdht_bloom *b, const uint8_t *p, size_t len) {
  if (len != MDHT_BLOOM_BYTES) return MDHT_ERR_INVAL;
  memcpy(b->bits, p, MDHT_BLOOM_BYTES);
  return 0;
}
