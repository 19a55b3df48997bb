/*
 * The routing table: k-buckets exactly as BEP 5 describes them.
 *
 * Bucket i (0 <= i < nbuckets-1) holds the nodes whose ids share exactly i
 * leading bits with ours; the last bucket holds every id sharing at least
 * nbuckets-1 bits, i.e. the range that contains our own id. Only that last
 * bucket ever splits, so the table is the BEP 5 binary tree laid out as an
 * array.
 *
 * Node states (BEP 5):
 *   good         answered one of our queries within node_fresh_ms, or
 *                queried us within node_fresh_ms after having answered once;
 *   bad          failed max_fails queries in a row;
 *   questionable anything else (including never having answered).
 *
 * One host, one entry (against a single machine filling the table with
 * many ports and chosen ids):
 *   - at most one entry per IP address in the whole table, buckets and
 *     replacement lists together, on every address class (loopback
 *     included), unless cfg->allow_same_ip;
 *   - at most one entry per /24 (IPv4) or /64 (IPv6) within one bucket
 *     (its nodes and its replacement list) for public addresses, unless
 *     cfg->allow_same_prefix.
 * A newcomer that would break either rule is ignored, unless the entry in
 * its way is bad and the newcomer has just answered us: that entry then
 * gives way (a node that came back on another port), as for a new id at
 * a known ip:port.
 *
 * Choosing (when a bucket or its replacement list must pick one entry
 * over another), an entry's worth is, in this order:
 *   1. it has answered one of our queries;
 *   2. its id is BEP 42-valid for its IP (private addresses count as
 *      valid: they are exempt).
 *   - A never-answered node never displaces one that answered: a full
 *     replacement list drops its least worthy candidate (the oldest among
 *     equals) only for a newcomer at least as worthy, else the newcomer
 *     is dropped.
 *   - Promotion from the replacement list takes the worthiest candidate,
 *     the newest among equals.
 *   - "Valid id wins": a node with a valid id on a public address that
 *     has just answered us, finding its bucket full with no bad node,
 *     takes at once the slot of the questionable node with an invalid id
 *     heard from least recently (no ping first; that node becomes a
 *     replacement candidate). Good nodes keep their slots whatever their
 *     id.
 *
 * The table itself sends nothing: when a full bucket has a questionable
 * node, mdht_rtable_heard() names it so that the caller pings it; the new
 * node waits in the bucket's replacement list. Each change is published on
 * the bus once made (node added / removed / replaced, bucket split); the
 * table only tells, and is told nothing through the bus: the node calls
 * it.
 */
#ifndef MDHT_RTABLE_H
#define MDHT_RTABLE_H

#include <string.h>

#include "mdht.h"
#include "bus.h"

#define MDHT_RT_KMAX 16 /* upper bound of config.k */

/* Times in an entry are ticks: milliseconds since the table's epoch
 * (mdht_rtable.epoch), in 32 bits, with 0 meaning "never" (a `now` that
 * falls on the epoch is stored as 1). The epoch starts at 0, so a tick is
 * the time itself for the first 49 days; a table that lives longer moves
 * its epoch forward when a new time would not fit (mdht_rtable_tick), and
 * times then older than 2^31 ms (24.8 days) read as that old: every rule
 * of the table looks at most node_fresh_ms or query_timeout_ms back.
 * Ticks compare with ticks of the same table; mdht_rtable_time() turns one
 * into a time, mdht_rtable_tick() a time into one.
 *
 * The address is stored compactly: nearly every entry is IPv4, whose 4
 * bytes sit in `ip` itself, while the 16 bytes of an IPv6 address live in
 * the table's pool (mdht_rtable.v6_) and `ip` is their slot there. With
 * 32-bit ticks (and the family in a bit) that makes 44 bytes an entry,
 * against the 60 of a full
 * mdht_addr in each and the 80 of absolute 64-bit times as well: a table
 * holds some 130 to 190 entries (nodes and candidates), and the simulator
 * a million tables (issue 13). Read the address with mdht_rtable_addr(). */
typedef struct mdht_rt_entry {
  mdht_id id;
  uint32_t ip; /* MDHT_AF_INET: the address bytes (network order);
                  MDHT_AF_INET6: its slot in the table's pool */
  uint16_t port;
  uint8_t fails; /* queries in a row that timed out */
  /* Bit 7: the address is IPv6 (`ip` is a pool slot); bits 0-6: the
   * round trip of its last answer as a 7-bit float (node.c), 0 = none
   * yet. Read both with the accessors below. */
  uint8_t v6_rtt;
  uint32_t added;
  uint32_t last_reply; /* last answer to our query, 0 = never */
  uint32_t last_query; /* last query it sent us, 0 = never */
  uint32_t last_ping;  /* when mdht_rtable_heard() last named it in *ping,
                          0 = never; it is not named again before
                          query_timeout_ms has passed */
} mdht_rt_entry;

_Static_assert(sizeof(mdht_rt_entry) == 44,
               "a routing entry is 44 bytes (issue 13)");

#define MDHT_RT_V6_BIT 0x80u

static inline int mdht_rt_entry_family(const mdht_rt_entry *e) {
  return (e->v6_rtt & MDHT_RT_V6_BIT) ? MDHT_AF_INET6 : MDHT_AF_INET;
}

/* The round trip is kept to within 1/8 (exact below 16 ms): 3 bits of
 * mantissa and 4 of exponent, 1 ms to 4 minutes in 7 bits. It is only
 * shown (`mdht table`), and a byte less per entry, with the family bit,
 * is what makes an entry 44 bytes instead of 48. */
static inline uint32_t mdht_rt_entry_rtt(const mdht_rt_entry *e) {
  uint32_t c = e->v6_rtt & 0x7fu, ex = c >> 3, m = c & 7u;
  return ex == 0 ? m : (8u + m) << (ex - 1);
}

/* Stores `ms` (0 is stored as 1: 0 means "none yet"). */
static inline void mdht_rt_entry_set_rtt(mdht_rt_entry *e, uint64_t ms) {
  uint32_t c;
  if (ms < 8) {
    c = ms == 0 ? 1u : (uint32_t)ms;
  } else {
    uint32_t ex = 1;
    while (ex < 15 && ms >= (16ull << (ex - 1)))
      ex++;
    uint64_t m = (ms >> (ex - 1)) - 8;
    c = (ex << 3) | (uint32_t)(m > 7 ? 7 : m);
  }
  e->v6_rtt = (uint8_t)((e->v6_rtt & MDHT_RT_V6_BIT) | c);
}

typedef enum mdht_rt_state {
  MDHT_RT_GOOD,
  MDHT_RT_QUESTIONABLE,
  MDHT_RT_BAD
} mdht_rt_state;

/* A bucket's nodes live in a block that grows with them (2, 4, 6, ... up
 * to cfg->k entries): memory follows what the bucket holds, never more
 * than the configured k, not MDHT_RT_KMAX. Its replacement candidates
 * have a block of their own, allocated with the first candidate, grown
 * the same way and freed when the last one goes: the buckets near our
 * id, which hold every node there is, have none, and most others fewer
 * than k. */
typedef struct mdht_rt_bucket {
  uint32_t last_changed; /* a node added, or one answered: refresh timer
                            (a tick, 0 = time 0; see mdht_rt_entry) */
  uint8_t n;             /* entries in nodes[] */
  uint8_t cap;           /* room in nodes[]: 2, 4, 6, ... up to cfg->k */
  uint8_t nrepl;         /* entries in repl[] */
  uint8_t repl_cap;      /* room in repl[] (0: repl is NULL) */
  mdht_rt_entry *nodes;  /* `cap` slots, never NULL */
  mdht_rt_entry *repl;   /* repl_cap slots, replacement candidates, newest
                            last */
} mdht_rt_bucket;

/* An open-addressing hash index (internal). */
typedef struct mdht_rt_index {
  void *slots;
  uint32_t cap, n;
  bool by_ip; /* keyed by IP alone, else by ip:port */
} mdht_rt_index;

typedef struct mdht_rtable {
  mdht_id self;
  const mdht_config *cfg;  /* borrowed; k, node_fresh_ms, max_fails,
                              allow_private, query_timeout_ms,
                              allow_same_ip, allow_same_prefix */
  mdht_bus *bus;           /* borrowed, may be NULL */
  mdht_rt_bucket *buckets; /* grows as the last bucket splits */
  uint32_t nbuckets;
  /* index ip:port -> id of every node in a bucket or a replacement list
   * (open addressing, linear probing), so that "one entry per ip:port"
   * and "is this address known" are O(1) on the query path. With one
   * entry per IP (unless cfg->allow_same_ip, read once, at init) it is
   * keyed by IP alone and serves both questions: an IP names at most one
   * entry, whose port then tells whether the ip:port is known. */
  mdht_rt_index index_;
  bool one_per_ip_;
  uint64_t hash_seed;
  mdht_time epoch; /* the time of tick 0 (see mdht_rt_entry) */
  /* The IPv6 addresses of the entries (mdht_rt_entry.ip is a slot): a
   * slot is taken when an entry enters the table and given back when it
   * leaves; copies of an entry moving between blocks share it. Allocated
   * with the first IPv6 entry and doubled when full, so an IPv4 table
   * pays nothing. Free slots are chained through their first 4 bytes. */
  struct {
    uint8_t (*ip)[16];
    uint32_t cap;  /* slots allocated */
    uint32_t top;  /* slots ever handed out: [top, cap) never used yet */
    uint32_t free; /* first free slot below top, UINT32_MAX if none */
    uint32_t live; /* slots held by entries */
  } v6_;
} mdht_rtable;

/* The address of entry `e` of `rt` (in the table, or a copy taken from it:
 * the `ping` of mdht_rtable_heard, the results of mdht_rtable_closest).
 * An IPv6 entry's address is read from the table's pool: for a copy it is
 * valid until the next change of the table, so read it before. */
static inline mdht_addr mdht_rtable_addr(const mdht_rtable *rt,
                                         const mdht_rt_entry *e) {
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = (uint8_t)mdht_rt_entry_family(e);
  a.port = e->port;
  if (a.family == MDHT_AF_INET6)
    memcpy(a.ip, rt->v6_.ip[e->ip], 16);
  else
    memcpy(a.ip, &e->ip, 4);
  return a;
}

/* The tick of `now` (>= 1), moving the table's epoch forward first if
 * `now` is 2^32 ms or more past it: every entry's ticks are then
 * re-expressed, those older than 2^31 ms before `now` clamped to that.
 * A `now` before the epoch (a clock stepped back) gives tick 1. */
uint32_t mdht_rtable_tick(mdht_rtable *rt, mdht_time now);

/* The time of tick `t` of this table; 0 (never) stays 0. A bucket's
 * last_changed reads the same way. */
static inline mdht_time mdht_rtable_time(const mdht_rtable *rt, uint32_t t) {
  return t ? rt->epoch + t : 0;
}

/* `cfg` and `bus` must outlive the table. `hash_seed` keys the address
 * index (random, so that remote nodes cannot aim at collisions).
 * Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL (k > MDHT_RT_KMAX or 0). */
int mdht_rtable_init(mdht_rtable *rt, const mdht_id *self,
                     const mdht_config *cfg, mdht_bus *bus, uint64_t hash_seed);
void mdht_rtable_free(mdht_rtable *rt);

/* How we heard of a node. */
typedef enum mdht_rt_how {
  MDHT_RT_HEARD_QUERY, /* it sent us a query */
  MDHT_RT_HEARD_REPLY  /* it answered our query */
} mdht_rt_how;

/* Results of mdht_rtable_heard(). */
typedef enum mdht_rt_result {
  MDHT_RT_ADDED = 1,   /* now in a bucket */
  MDHT_RT_UPDATED,     /* was already there; times refreshed */
  MDHT_RT_REPLACEMENT, /* bucket full: kept in the replacement list */
  MDHT_RT_PING,        /* as REPLACEMENT, and *ping names a questionable
                          node of that bucket for the caller to ping */
  MDHT_RT_IGNORED      /* our own id, martian address, id changed for a
                          known ip:port, a known id at another address,
                          its IP or prefix taken, or not worth a place
                          in a full replacement list */
} mdht_rt_result;

/* We heard from node (id, addr) at `now`. A node that answered us may
 * evict a bad node at once; a node that only queried us enters a bucket
 * only where there is room (it has not proven it answers), else waits in
 * the replacement list. A bucket that is full and may split (it holds our
 * id) splits first. A replacement candidate heard again takes a free or
 * bad slot if it can, else becomes the newest candidate. `ping` may be
 * NULL: the result is then never MDHT_RT_PING; read *ping's address
 * (mdht_rtable_addr) before changing the table again. Returns a
 * mdht_rt_result (> 0), MDHT_ERR_NOMEM or MDHT_ERR_INVAL (NULL argument). */
int mdht_rtable_heard(mdht_rtable *rt, const mdht_id *id, const mdht_addr *addr,
                      mdht_rt_how how, mdht_time now, mdht_rt_entry *ping);

/* A query to `addr` timed out (or was answered with garbage). Counts a
 * failure; a node that becomes bad is replaced at once by the newest
 * replacement candidate that has answered us, else by the newest one; with
 * no candidate it stays, bad, until a node that answers us takes its
 * slot. A replacement candidate that fails is dropped. `id` may be NULL
 * (the id is not known when a bootstrap ping fails); a different id than
 * the one known for `addr` makes this a no-op. */
void mdht_rtable_failed(mdht_rtable *rt, const mdht_id *id,
                        const mdht_addr *addr, mdht_time now);

/* Removes a node (by id and address; `id` may be NULL) from its bucket,
 * which then takes the best replacement candidate, or from a replacement
 * list. Returns 0 or MDHT_ERR_NOTFOUND. */
int mdht_rtable_remove(mdht_rtable *rt, const mdht_id *id,
                       const mdht_addr *addr, mdht_time now);

/* Inline: it is asked of every entry a scan looks at (rtable.c holds the
 * external definition). */
inline mdht_rt_state mdht_rtable_state(const mdht_rtable *rt,
                                       const mdht_rt_entry *e, mdht_time now) {
  uint32_t maxf = rt->cfg->max_fails ? rt->cfg->max_fails : 1;
  if (e->fails >= maxf) return MDHT_RT_BAD;
  if (e->last_reply != 0) {
    mdht_time fresh = rt->cfg->node_fresh_ms;
    mdht_time reply = rt->epoch + e->last_reply; /* mdht_rtable_time */
    if (now < reply || now - reply < fresh) return MDHT_RT_GOOD;
    mdht_time query = rt->epoch + e->last_query;
    if (e->last_query != 0 && (now < query || now - query < fresh))
      return MDHT_RT_GOOD;
  }
  return MDHT_RT_QUESTIONABLE;
}

/* Finds the entry of `addr` in the buckets (not the replacement lists);
 * NULL if absent. The pointer is valid until the next change. */
mdht_rt_entry *mdht_rtable_find(mdht_rtable *rt, const mdht_addr *addr);

/* Fills `out` with up to `n` entries closest to `target` by XOR distance,
 * closest first, of address family `family` (0 = any). Only nodes that
 * have answered us at least once and are not bad. Returns the count.
 * Read their addresses (mdht_rtable_addr) before changing the table. */
size_t mdht_rtable_closest(const mdht_rtable *rt, const mdht_id *target,
                           int family, mdht_rt_entry *out, size_t n,
                           mdht_time now);

/* Places a saved entry with its history: `e`'s id, `addr` (`e`'s own
 * address fields are not read), failure count and times (added, last_reply,
 * last_query: ticks of `rt`, see mdht_rtable_tick) are kept as given, not
 * stamped as by mdht_rtable_heard (last_ping is not: a ping does not
 * outlive the process that sent it; an `added` of 0 becomes `now`). The
 * entry goes where a node that only queried us would: a free slot in its
 * bucket (the last bucket splits when full, as usual; restore the depth
 * first with mdht_rtable_presplit), else the bucket's replacement list;
 * it never evicts an entry. The same entries are refused as by
 * mdht_rtable_heard: our own id, a martian or (without allow_private)
 * private address, an ip:port or id the table already holds, an IP or
 * prefix taken (rtable.h). Publishes NODE_ADDED when it takes a slot.
 * Returns MDHT_RT_ADDED, MDHT_RT_REPLACEMENT, MDHT_RT_IGNORED,
 * MDHT_ERR_NOMEM or MDHT_ERR_INVAL (NULL argument). */
int mdht_rtable_restore(mdht_rtable *rt, const mdht_rt_entry *e,
                        const mdht_addr *addr, mdht_time now);

/* Splits the last bucket until the table has `nbuckets` buckets (capped
 * at 160). For restoring saved state: entries saved from a table of that
 * depth then go back to buckets no coarser than the ones they were saved
 * from, so the per-bucket rules (one entry per /24 or /64, k slots) accept
 * all of them whatever the order they come in. A table filled entry by
 * entry splits only as its last bucket overflows, and would refuse a
 * node whose /24 twin is still in the same unsplit bucket. Returns 0 or
 * MDHT_ERR_NOMEM (the table stays as deep as it got). */
int mdht_rtable_presplit(mdht_rtable *rt, uint32_t nbuckets, mdht_time now);

/* Index of the bucket that covers `id`. */
uint32_t mdht_rtable_bucket_of(const mdht_rtable *rt, const mdht_id *id);

/* Heap bytes: buckets with their node blocks, replacement blocks, and
 * the address index with the IPv6 address pool. */
void mdht_rtable_bytes(const mdht_rtable *rt, size_t *buckets, size_t *repl,
                       size_t *index);

/* Counts for statistics. */
void mdht_rtable_counts(const mdht_rtable *rt, mdht_time now, uint32_t *good,
                        uint32_t *questionable, uint32_t *total,
                        uint32_t *replacements);

#endif
