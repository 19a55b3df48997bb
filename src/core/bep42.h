/*
 * BEP 42, DHT security extension: a node id is tied to the node's external
 * IP. The first 21 bits of the id are the top of crc32c(masked IP | r),
 * where r is 3 random bits also stored in the id's last byte, so that an
 * attacker cannot choose ids next to a target without owning many IPs.
 *
 * Local and private addresses are exempt (BEP 42): there is no external
 * address to bind them to.
 */
#ifndef MDHT_BEP42_H
#define MDHT_BEP42_H

#include "mdht.h"

/* The CRC-32C (Castagnoli) of `len` bytes: not a cryptographic function,
 * just the checksum BEP 42 prescribes. */
uint32_t mdht_crc32c(const uint8_t *p, size_t len);

/* Makes an id for the IP of `a` from 20 random bytes (`rnd`). */
void mdht_bep42_make(mdht_id *id, const mdht_addr *a,
                     const uint8_t rnd[MDHT_ID_LEN]);

/* true if `id` is valid for the IP of `a`, or `a` is exempt. */
bool mdht_bep42_valid(const mdht_id *id, const mdht_addr *a);

#endif
