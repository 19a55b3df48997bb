/*
 * Token buckets per source (or destination) network, in bounded tables.
 *
 * Keys: an IPv4 source is one address (one host, or one NAT: finer would
 * be meaningless, coarser would punish neighbours). An IPv6 source is its
 * /64, the smallest prefix an ISP hands one subscriber and the unit that
 * SLAAC lets one host fill with 2^64 addresses at will; keying on all 128
 * bits would give such a host 2^64 buckets. A second, coarser tier keys
 * IPv6 on its /48, the usual site allocation (65536 /64s): its bucket has
 * MDHT_RL_SITE_FACTOR times the rate and the depth, and a datagram must
 * find a token in both. Why 4: a site rarely runs more than a handful of
 * busy DHT nodes in distinct /64s, and those keep their full rate; an
 * attacker holding a whole /48 gets 4 hosts' worth instead of 65536.
 *
 * Tables: 4-way set-associative with a keyed hash (senders choose their
 * addresses), fixed size. When a set is full, the entry with the most
 * tokens is replaced: a bucket that has refilled to full is the same as
 * no entry at all, so eviction forgets only what matters least, and a
 * source can only be forgotten (and start over full) when four busier
 * sources share its set. O(1) per call. A table is allocated the first
 * time it is used, so that an IPv4 node never holds the /48 tier, and
 * starts at 2 sets (256 bytes): where it would have to forget a source that has
 * spent tokens it doubles instead (each old set splits into two, so the
 * rehash always fits), up to its full size, where eviction takes over.
 * So the thousands of nodes of a simulation hold what their traffic
 * needs; a table at full size allocates nothing more.
 */
#ifndef MDHT_RATELIMIT_H
#define MDHT_RATELIMIT_H

#include "mdht.h"

#define MDHT_RL_WAYS 4
#define MDHT_RL_SITE_FACTOR 4

typedef struct mdht_rl_slot {
  uint64_t key;          /* IPv4 address, IPv6 /64 or /48 prefix */
  uint64_t tokens_milli; /* tokens * 1000, so that refill is exact */
  mdht_time last;
  uint8_t tag; /* 0 = empty, else which kind of key */
} mdht_rl_slot;

typedef struct mdht_rl_table {
  mdht_rl_slot *slots;
  uint32_t nsets;      /* power of two; slots = nsets * MDHT_RL_WAYS */
  uint32_t max_sets;   /* full size: cap / MDHT_RL_WAYS */
  uint64_t rate;       /* tokens per second */
  uint64_t full_milli; /* bucket depth * 1000 */
} mdht_rl_table;

typedef struct mdht_ratelimit {
  mdht_rl_table host; /* IPv4 address or IPv6 /64 */
  mdht_rl_table site; /* IPv6 /48 */
  uint32_t cap;       /* slots per table, a power of two */
  uint32_t rate;      /* tokens per second; 0 = unlimited */
  uint32_t burst;     /* bucket depth of one host */
  uint64_t hash_seed;
} mdht_ratelimit;

/* cap (slots per tier) is rounded up to a power of two, at least 16.
 * rate 0 = unlimited (no table). Never fails: the tables come on first
 * use. Returns 0. */
int mdht_rl_init(mdht_ratelimit *rl, uint32_t cap, uint32_t rate,
                 uint32_t burst, uint64_t hash_seed);
void mdht_rl_free(mdht_ratelimit *rl);
/* Takes `cost` tokens for the network of `a` (both tiers for IPv6);
 * takes nothing and returns false when a bucket holds fewer. */
bool mdht_rl_take(mdht_ratelimit *rl, const mdht_addr *a, uint32_t cost,
                  mdht_time now);
/* mdht_rl_take with a cost of one token. */
bool mdht_rl_allow(mdht_ratelimit *rl, const mdht_addr *a, mdht_time now);

#endif
