/*
 * BEP 33 scrape filters: a 256-byte bloom filter of IP addresses (k = 2,
 * m = 2048 bits), one for the seeds and one for the downloaders of an
 * info-hash. A node answers `scrape: 1` in get_peers with both; the asker
 * ORs the filters of the closest nodes and estimates how many distinct
 * addresses went in, so that a swarm's size can be known without joining
 * it.
 *
 * The filter is fixed by the BEP bit for bit (the estimates of different
 * implementations are only comparable if their filters are): its test
 * vector is in tests/unit/test_bloom.c.
 */
#ifndef MDHT_BLOOM_H
#define MDHT_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mdht.h"

#define MDHT_BLOOM_BYTES 256

typedef struct mdht_bloom {
  uint8_t bits[MDHT_BLOOM_BYTES];
} mdht_bloom;

void mdht_bloom_clear(mdht_bloom *b);
/* Inserts the 4 or 16 address bytes of `a` (never the port: the BEP
 * counts hosts). */
void mdht_bloom_insert(mdht_bloom *b, const mdht_addr *a);
/* The two bit indexes of `a`, for a caller that inserts the same address
 * often (the peer store keeps them per record, so that a scrape answer
 * hashes nothing). */
void mdht_bloom_indexes(const mdht_addr *a, uint16_t idx[2]);
/* Sets the bits of indexes from mdht_bloom_indexes. */
void mdht_bloom_set(mdht_bloom *b, const uint16_t idx[2]);
/* Whether `a` may be in the filter (false: certainly not). */
bool mdht_bloom_test(const mdht_bloom *b, const mdht_addr *a);
/* dst |= src: the filter of the union of both sets. */
void mdht_bloom_union(mdht_bloom *dst, const mdht_bloom *src);
/* The estimated number of distinct addresses inserted (0 for an empty
 * filter, which the BEP's formula would call 0.5). Meaningful up to
 * about 6,000 (the BEP's bound); a full filter gives the estimate of a
 * filter with one zero bit, about 15,600. */
double mdht_bloom_estimate(const mdht_bloom *b);
/* Copies 256 bytes of a received BFsd/BFpe into `b`. Returns 0, or
 * MDHT_ERR_INVAL if `len` is not 256. */
int mdht_bloom_from_bytes(mdht_bloom *b, const uint8_t *p, size_t len);

#endif
