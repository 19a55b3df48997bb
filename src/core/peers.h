/*
 * Peer storage: info-hash -> peers that announced it (BEP 5).
 *
 * Peers are deduplicated by ip:port and refreshed on re-announce; each
 * expires peer_ttl_ms after its last announce. Memory is bounded twice:
 * max_infohashes info-hashes (a new one beyond that evicts the stalest of
 * a few sampled info-hashes: see peers.c) and max_peers_per_ih peers per
 * info-hash (a new peer beyond that replaces the one closest to expiry).
 * get_peers takes a random sample when more peers are stored than fit in a
 * response.
 *
 * Events: PEER_STORED for every add or refresh, PEER_EXPIRED for every
 * peer that leaves the store (expiry, replacement, eviction); id is the
 * info-hash, u.peer.peer the peer, u.peer.count the peers left for that
 * info-hash.
 */
#ifndef MDHT_PEERS_H
#define MDHT_PEERS_H

#include "mdht.h"
#include "bus.h"

typedef struct mdht_peer {
  mdht_addr addr;
  mdht_time expires;
  bool seed; /* BEP 33 */
} mdht_peer;

typedef struct mdht_peer_store {
  const mdht_config *cfg; /* borrowed: peer_ttl_ms, max_infohashes,
                             max_peers_per_ih */
  mdht_bus *bus;          /* borrowed, may be NULL */
  void *table_;           /* implementation: see peers.c */
  uint32_t cap_;          /* hash table slots */
  uint32_t nih, npeers;   /* info-hashes and peers stored */
  uint64_t hash_seed;
  uint64_t rng;          /* xorshift state for sampling, seeded by caller */
  mdht_time next_expiry; /* when mdht_peers_expire() has work: never
                            later than the earliest expiry (it may be
                            earlier after a refresh); UINT64_MAX when
                            empty. Exact after mdht_peers_expire(). */
} mdht_peer_store;

/* Errors: MDHT_ERR_INVAL, MDHT_ERR_NOMEM. */
int mdht_peers_init(mdht_peer_store *ps, const mdht_config *cfg, mdht_bus *bus,
                    uint64_t hash_seed, uint64_t rng_seed);
void mdht_peers_free(mdht_peer_store *ps);

/* Stores or refreshes `peer` for `ih`. Returns 0, or MDHT_ERR_ADDR for a
 * martian peer (port 0...), MDHT_ERR_NOMEM, MDHT_ERR_FULL when a bound is
 * configured as 0, MDHT_ERR_INVAL. Publishes PEER_STORED. */
int mdht_peers_add(mdht_peer_store *ps, const mdht_id *ih,
                   const mdht_addr *peer, bool seed, mdht_time now);

/* Up to `max` peers of `ih` of address family `family` (0 = any), chosen
 * at random when there are more; unexpired only. Returns the count. */
size_t mdht_peers_get(mdht_peer_store *ps, const mdht_id *ih, int family,
                      mdht_addr *out, size_t max, mdht_time now);

/* Drops expired peers (publishing PEER_EXPIRED) and empty info-hashes;
 * returns how many peers were dropped. Updates next_expiry. */
size_t mdht_peers_expire(mdht_peer_store *ps, mdht_time now);

/* Up to `max` stored info-hashes, random sample without repetition
 * (BEP 51). */
size_t mdht_peers_sample(mdht_peer_store *ps, mdht_id *out, size_t max);

/* The stored record of `peer` (ip:port) under `ih`, expired or not, into
 * *out. Returns 0 or MDHT_ERR_NOTFOUND. */
int mdht_peers_find(const mdht_peer_store *ps, const mdht_id *ih,
                    const mdht_addr *peer, mdht_peer *out);

/* Persistence (state.c). Calls `fn` once per stored info-hash with its
 * peers, expired ones included until mdht_peers_expire() runs; stops early
 * and returns what `fn` returned if that is non-zero, else returns 0. The
 * store must not change during the walk. */
typedef int (*mdht_peers_group_cb)(const mdht_id *ih, const mdht_peer *peers,
                                   size_t n, void *user);
int mdht_peers_foreach(const mdht_peer_store *ps, mdht_peers_group_cb fn,
                       void *user);

/* As mdht_peers_add, but the peer expires at `expires` (capped at now +
 * peer_ttl_ms) instead of now + peer_ttl_ms: a peer restored from saved
 * state keeps the lifetime it had left. An existing record of the peer is
 * never shortened. When the info-hash is at max_peers_per_ih, the peer
 * replaces the one closest to expiry only if it outlives it. Returns 0,
 * MDHT_ERR_RANGE (expires <= now: already expired), MDHT_ERR_FULL (no room
 * worth taking), or as mdht_peers_add. */
int mdht_peers_add_until(mdht_peer_store *ps, const mdht_id *ih,
                         const mdht_addr *peer, bool seed, mdht_time expires,
                         mdht_time now);

#endif
