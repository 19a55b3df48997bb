/* Node ids and info-hashes: XOR distance and ordering. */
#ifndef MDHT_ID_H
#define MDHT_ID_H

#include <string.h>

#include "mdht.h"

/* d = a XOR b */
void mdht_id_xor(mdht_id *d, const mdht_id *a, const mdht_id *b);
/* <0, 0, >0 as a is closer to / as close as / farther from `target` than b */
int mdht_id_cmp_dist(const mdht_id *target, const mdht_id *a, const mdht_id *b);
/* memcmp order */
int mdht_id_cmp(const mdht_id *a, const mdht_id *b);
/* Inline: the routing table, the lookups and the transaction check call it
 * on every datagram (3.7 % of the simulator's time as a call). id.c holds
 * the external definition. */
inline bool mdht_id_eq(const mdht_id *a, const mdht_id *b) {
  return memcmp(a->b, b->b, MDHT_ID_LEN) == 0;
}
/* Number of leading bits a and b share (0..160). */
int mdht_id_common_prefix(const mdht_id *a, const mdht_id *b);
/* Bit i (0 = most significant). */
int mdht_id_bit(const mdht_id *a, int i);
/* A random id sharing the first `prefix_bits` bits with `base`; the
 * remaining bits from `rnd` (20 random bytes). */
void mdht_id_random_in(mdht_id *out, const mdht_id *base, int prefix_bits,
                       const uint8_t rnd[MDHT_ID_LEN]);

#endif
