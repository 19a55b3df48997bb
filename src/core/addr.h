/* Endpoints: compact encodings (BEP 5, BEP 32) and address classes. */
#ifndef MDHT_ADDR_H
#define MDHT_ADDR_H

#include "mdht.h"

#define MDHT_COMPACT_PEER4 6
#define MDHT_COMPACT_PEER6 18
#define MDHT_COMPACT_NODE4 26
#define MDHT_COMPACT_NODE6 38

/* Compact peer info: ip then port, network order. Returns bytes written (6
 * or 18); `out` needs 18 bytes. */
size_t mdht_addr_to_compact(const mdht_addr *a, uint8_t *out);
/* len must be 6 or 18; returns 0 or MDHT_ERR_INVAL. */
int mdht_addr_from_compact(mdht_addr *a, const uint8_t *p, size_t len);
/* Compact node info: id then compact peer info (26 or 38 bytes). */
size_t mdht_node_to_compact(const mdht_id *id, const mdht_addr *a,
                            uint8_t *out);
int mdht_node_from_compact(mdht_id *id, mdht_addr *a, const uint8_t *p,
                           size_t len);

/* Port 0, unspecified, multicast, broadcast, reserved ranges: never a
 * valid remote node. */
bool mdht_addr_is_martian(const mdht_addr *a);
/* Loopback, RFC 1918, link-local, ULA: acceptable only when we ourselves
 * live on such an address. */
bool mdht_addr_is_private(const mdht_addr *a);
/* Same IP (ignoring port). */
bool mdht_addr_ip_eq(const mdht_addr *a, const mdht_addr *b);
/* 32-bit hash of ip and port, keyed by `seed`, for hash tables. */
uint32_t mdht_addr_hash(const mdht_addr *a, uint64_t seed);

#endif
