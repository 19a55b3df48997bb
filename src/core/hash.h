/*
 * Keyed hashing for the hash tables whose keys remote nodes choose
 * (addresses, info-hashes): without a secret key, a sender could pick keys
 * that all collide and turn every lookup into a scan. SipHash-2-4 from
 * libsodium (crypto_shorthash); never a hash of our own making.
 */
#ifndef MDHT_HASH_H
#define MDHT_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of `len` bytes under a key derived from the 64-bit `seed`
 * (the tables keep one random seed each). */
uint64_t mdht_hash(uint64_t seed, const void *p, size_t len);

#endif
