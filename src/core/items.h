/*
 * BEP 44 item storage: target -> one immutable or mutable item.
 *
 * Bounded like the peer store, so that no single host steers what it
 * holds (docs/SECURITY.md):
 *
 * - max_items items and max_item_bytes bytes of values in all; each item
 *   lives item_ttl_ms (2 h, BEP 44) after its last put; a put of the same
 *   item (immutable, or mutable with the same seq and value) refreshes it.
 * - A quota of max_items_per_ip items per source (the putter's IP, IPv6
 *   by /64). A source at its quota that puts a new item is not refused:
 *   its own oldest item gives way (the store is a cache of recent puts).
 * - When a global bound is reached, the item that goes is the oldest of
 *   the source holding the most items: a host that floods a full store is
 *   itself the heaviest source and only ever evicts its own items.
 * - An item keeps the source that created it: updates and refreshes by
 *   others (anyone may republish) do not move it into their quota.
 *
 * Mutable rules (BEP 44, as the storing node): a `cas` that is not the
 * stored seq is refused (301); a lower seq (302); the same seq with the
 * same value refreshes, with another value is refused too (302: the BEP
 * says a seq not above the stored one MUST be rejected). Signatures are
 * the caller's to verify (item.h) before it puts.
 *
 * Memory: the items live in one array grown by doubling up to max_items,
 * with a sorted index (target, slot) beside it: a get is a binary search,
 * a put at most O(n log n) when it has to evict. Never an allocation per
 * datagram beyond the amortized growth.
 */
#ifndef MDHT_ITEMS_H
#define MDHT_ITEMS_H

#include "mdht.h"
#include "bus.h"
#include "item.h"

typedef struct mdht_item {
  mdht_id target;
  bool is_mutable;
  uint8_t salt_len;
  uint16_t vlen;
  int64_t seq;
  uint8_t k[MDHT_ITEM_PK_LEN];
  uint8_t sig[MDHT_ITEM_SIG_LEN];
  uint8_t salt[MDHT_ITEM_MAX_SALT];
  uint8_t v[MDHT_ITEM_MAX_V]; /* the verbatim bencoded value */
  mdht_addr src;              /* source, port 0, IPv6 cut to /64 */
  mdht_time put_at, expires;
} mdht_item;

/* What a put carries. For an immutable put only v/vlen. */
typedef struct mdht_item_put {
  const uint8_t *v;
  size_t vlen;
  bool is_mutable;
  const uint8_t *k, *sig, *salt; /* k: 32 bytes, sig: 64 */
  size_t salt_len;
  int64_t seq;
  bool has_cas;
  int64_t cas;
} mdht_item_put;

typedef struct mdht_item_index {
  mdht_id target;
  uint32_t slot;
} mdht_item_index;

typedef struct mdht_item_store {
  const mdht_config *cfg; /* borrowed: item_ttl_ms, max_items,
                             max_item_bytes, max_items_per_ip */
  mdht_bus *bus;          /* borrowed, may be NULL */
  mdht_item *items;       /* n in use of cap */
  mdht_item_index *index; /* n, sorted by target */
  mdht_addr *scratch;     /* cap: counting sources when evicting */
  uint32_t n, cap;
  size_t bytes;          /* sum of vlen */
  mdht_time next_expiry; /* no item expires before; UINT64_MAX if empty */
} mdht_item_store;

void mdht_items_init(mdht_item_store *s, const mdht_config *cfg, mdht_bus *bus);
void mdht_items_free(mdht_item_store *s);

/* Stores `p` under `target` (the caller computed it from v, or k and
 * salt) for source `src`. Returns 0 (stored, updated or refreshed;
 * publishes ITEM_STORED), MDHT_KRPC_E_CAS or MDHT_KRPC_E_SEQ (positive:
 * the KRPC error to answer), or MDHT_ERR_INVAL (value or salt over the
 * BEP's bounds, empty value), MDHT_ERR_FULL (a bound is 0, or the value
 * is larger than max_item_bytes), MDHT_ERR_NOMEM. */
int mdht_items_put(mdht_item_store *s, const mdht_id *target,
                   const mdht_item_put *p, const mdht_addr *src, mdht_time now);

/* As mdht_items_put, but the item expires at `expires` (capped at now +
 * item_ttl_ms): restoring saved state. MDHT_ERR_RANGE if already
 * expired. */
int mdht_items_put_until(mdht_item_store *s, const mdht_id *target,
                         const mdht_item_put *p, const mdht_addr *src,
                         mdht_time expires, mdht_time now);

/* The unexpired item stored under `target`, or NULL. Valid until the
 * store next changes. */
const mdht_item *mdht_items_get(const mdht_item_store *s, const mdht_id *target,
                                mdht_time now);

/* Drops expired items; returns how many. Updates next_expiry. */
size_t mdht_items_expire(mdht_item_store *s, mdht_time now);

/* Items held by the source of `ip` (port ignored). */
uint32_t mdht_items_of_ip(const mdht_item_store *s, const mdht_addr *ip);

/* Persistence: calls `fn` for every item (expired ones included until
 * mdht_items_expire runs); stops at the first non-zero return, which it
 * returns. */
/* An item_stored or item_served event about `it` from `from`: both are
 * filled alike, for the log and the metrics. */
void mdht_items_event(mdht_event *ev, mdht_event_type type, const mdht_item *it,
                      const mdht_addr *from, mdht_time now);

typedef int (*mdht_items_cb)(const mdht_item *it, void *user);
int mdht_items_foreach(const mdht_item_store *s, mdht_items_cb fn, void *user);

#endif
