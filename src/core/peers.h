/*
 * Peer storage: info-hash -> peers that announced it (BEP 5).
 *
 * No single host may steer what the store holds (docs/SECURITY.md):
 *
 * - One record per IP per info-hash. An announce from an IP already
 *   stored under the info-hash replaces its record (new port, seed flag,
 *   fresh TTL), whatever port it names: 500 ports from one host are one
 *   peer, as in libtorrent. Each record expires peer_ttl_ms after its last
 *   announce.
 * - A quota of max_ih_per_ip info-hashes per source IP (the source of a
 *   record is the peer's IP: announce_peer stores the sender's address,
 *   and restored records are counted by their IP too; 0 = no quota). An
 *   IP at its quota that announces a new info-hash is not refused: its
 *   own stalest record gives way. The store is a cache of recent
 *   announces, so a seedbox or a NAT gateway with more torrents than the
 *   quota keeps its latest ones instead of being locked out by its older
 *   ones; and giving way costs nobody else anything, where an error would
 *   only tell an attacker where the line is.
 * - When a bound is reached (max_infohashes; max_peers in all;
 *   max_peers_per_ih in one swarm), the record that goes belongs to the
 *   source IP holding the most records, never to one chosen by the age
 *   order an announcer controls (with oldest-first eviction, one IP
 *   refreshing its own records evicts everyone else's). A host that
 *   hammers a full store is itself the heaviest source, so it only ever
 *   evicts its own records; legitimate sources hold few each. In detail:
 *   a new info-hash at max_infohashes (or at max_peers) drops the stalest
 *   single-peer info-hash of the IP that is alone in the most info-hashes
 *   (an IP alone creates nothing else); if no info-hash has a single peer
 *   (only possible with several IPs per swarm), the stalest of a few
 *   random info-hashes goes whole. A new peer of a known swarm at
 *   max_peers takes the stalest record of the heaviest IP; at
 *   max_peers_per_ih, the swarm's record whose IP holds the most records
 *   (ties: closest to expiry).
 *
 * Memory: the per-IP table has one entry per IP that holds a record, so
 * it is bounded by the records themselves, which the three bounds cap.
 * get_peers takes a random sample when more peers are stored than asked
 * for.
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
  bool seed;            /* BEP 33 */
  uint16_t bloom_[2];   /* its IP's BEP 33 filter bits, hashed once */
  uint32_t src_, slot_; /* implementation: owner IP and its record index */
} mdht_peer;

typedef struct mdht_peer_store {
  const mdht_config *cfg; /* borrowed: peer_ttl_ms, max_infohashes,
                             max_peers_per_ih, max_peers, max_ih_per_ip */
  mdht_bus *bus;          /* borrowed, may be NULL */
  void *table_;           /* implementation: see peers.c */
  uint32_t cap_;          /* hash table slots */
  uint32_t nih, npeers;   /* info-hashes and peers stored */
  uint32_t nsrc;          /* source IPs holding records (<= npeers) */
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
/* Heap bytes: tables, records, and the peers themselves. */
size_t mdht_peers_bytes(const mdht_peer_store *ps);

/* Stores or refreshes `peer` for `ih` (the record of its IP, if any, takes
 * the new port). Returns 0, or MDHT_ERR_ADDR for a
 * martian peer (port 0...), MDHT_ERR_NOMEM, MDHT_ERR_FULL when a bound is
 * configured as 0, MDHT_ERR_INVAL. Publishes PEER_STORED. */
int mdht_peers_add(mdht_peer_store *ps, const mdht_id *ih,
                   const mdht_addr *peer, bool seed, mdht_time now);

/* Up to `max` peers of `ih` of address family `family` (0 = any), chosen
 * at random when there are more; unexpired only. Returns the count. */
size_t mdht_peers_get(mdht_peer_store *ps, const mdht_id *ih, int family,
                      mdht_addr *out, size_t max, mdht_time now);
/* As mdht_peers_get; with `noseed` (BEP 33), downloaders are chosen first
 * and seeds only fill what room is left. */
size_t mdht_peers_get_noseed(mdht_peer_store *ps, const mdht_id *ih, int family,
                             bool noseed, mdht_addr *out, size_t max,
                             mdht_time now);

/* BEP 33: the bloom filters of the unexpired seeds and downloaders of
 * `ih` (both cleared first); every address family goes in. Returns how
 * many records went in: 0 when the info-hash is unknown, in which case
 * the BEP wants no filters in the answer. */
struct mdht_bloom;
size_t mdht_peers_scrape(const mdht_peer_store *ps, const mdht_id *ih,
                         mdht_time now, struct mdht_bloom *seeds,
                         struct mdht_bloom *downloaders);

/* Drops expired peers (publishing PEER_EXPIRED) and empty info-hashes;
 * returns how many peers were dropped. Updates next_expiry. */
size_t mdht_peers_expire(mdht_peer_store *ps, mdht_time now);

/* Up to `max` stored info-hashes, random sample without repetition
 * (BEP 51). */
size_t mdht_peers_sample(mdht_peer_store *ps, mdht_id *out, size_t max);

/* Records of the source IP `ip` (port ignored): 0 when it holds none. */
uint32_t mdht_peers_of_ip(const mdht_peer_store *ps, const mdht_addr *ip);

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
 * state keeps the lifetime it had left, under the same rules as an
 * announce (one record per IP, quota, eviction). An existing record of the
 * IP that outlives `expires` is kept as it is. When the info-hash is at
 * max_peers_per_ih, the peer replaces the chosen record only if it
 * outlives it. Returns 0,
 * MDHT_ERR_RANGE (expires <= now: already expired), MDHT_ERR_FULL (no room
 * worth taking), or as mdht_peers_add. */
int mdht_peers_add_until(mdht_peer_store *ps, const mdht_id *ih,
                         const mdht_addr *peer, bool seed, mdht_time expires,
                         mdht_time now);

#endif
