#include "hash.h"

#include <sodium.h>
#include <string.h>

uint64_t mdht_hash(uint64_t seed, const void *p, size_t len) {
  /* The seed fills one half of the 128-bit key; the other half is the
   * seed mixed (splitmix64), so that no half is a plain constant. */
  uint64_t k1 = seed + 0x9e3779b97f4a7c15ULL;
  k1 = (k1 ^ (k1 >> 30)) * 0xbf58476d1ce4e5b9ULL;
  k1 = (k1 ^ (k1 >> 27)) * 0x94d049bb133111ebULL;
  k1 ^= k1 >> 31;
  uint8_t key[crypto_shorthash_KEYBYTES];
  memcpy(key, &seed, 8);
  memcpy(key + 8, &k1, 8);
  uint8_t out[crypto_shorthash_BYTES];
  crypto_shorthash(out, p, len, key);
  uint64_t h;
  memcpy(&h, out, sizeof h);
  return h;
}
