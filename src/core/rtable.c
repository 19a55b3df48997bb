#include "rtable.h"

#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "bep42.h"
#include "id.h"

#define ID_BITS (MDHT_ID_LEN * 8)
#define INDEX_MIN_CAP 64u

/* One slot of the address index: 4 bytes, not the 40 of an address and an
 * id. The low 8 bits, `cpl1`, are 1 + the common prefix length of the
 * entry's id with ours (0 = free slot): they name the entry's bucket,
 * min(cpl, nbuckets - 1), which a split does not change, so the index
 * never needs fixing up when entries move. The high 24 bits are the top of
 * the key's hash: they give the home slot when rehashing or shifting
 * without reading the entry (the table never needs 2^24 slots: 160
 * buckets of 2k entries, at most half full). A hit is confirmed by finding
 * the address in that bucket (at most 2k entries); the index is thus a
 * multiset of (hash, cpl1) of the entries the table holds, and removing
 * any slot equal to an entry's is exact even when two entries share
 * both. */
typedef uint32_t rt_slot;

static rt_slot slot_of(uint32_t hash, uint8_t cpl1) {
  return (hash & 0xffffff00u) | cpl1;
}

static uint8_t slot_cpl1(rt_slot v) {
  return (uint8_t)(v & 0xff);
}

/* The home of `v` among `cap` slots: the top 24 bits of the hash scaled
 * to cap (a multiply, not a mask), so that cap need not be a power of two
 * and the index can grow by a quarter at a time (ix_reserve). */
static uint32_t slot_home(rt_slot v, uint32_t cap) {
  return (uint32_t)(((uint64_t)(v >> 8) * cap) >> 24);
}

static uint32_t slot_next(uint32_t i, uint32_t cap) {
  return i + 1 == cap ? 0 : i + 1;
}

/* A tick of 0 means "never" in the entries; a caller whose clock starts at
 * 0 must not have its first answer forgotten. */
static uint32_t stamp(mdht_rtable *rt, mdht_time now) {
  return mdht_rtable_tick(rt, now);
}

#define TICK_KEEP (UINT64_C(1) << 31) /* history kept by an epoch move */

static uint32_t retick(uint32_t t, mdht_time old_epoch, mdht_time epoch) {
  if (t == 0) return 0;
  mdht_time abs = old_epoch + t;
  return abs > epoch ? (uint32_t)(abs - epoch) : 1;
}

static void retick_all(mdht_rt_entry *v, uint32_t n, mdht_time old_epoch,
                       mdht_time epoch) {
  for (uint32_t i = 0; i < n; i++) {
    v[i].added = retick(v[i].added, old_epoch, epoch);
    v[i].last_reply = retick(v[i].last_reply, old_epoch, epoch);
    v[i].last_query = retick(v[i].last_query, old_epoch, epoch);
    v[i].last_ping = retick(v[i].last_ping, old_epoch, epoch);
  }
}

uint32_t mdht_rtable_tick(mdht_rtable *rt, mdht_time now) {
  if (now <= rt->epoch) return 1;
  if (now - rt->epoch > UINT32_MAX) {
    /* Once in 2^31 ms at most (24.8 days): O(entries). */
    mdht_time old = rt->epoch;
    rt->epoch = now - TICK_KEEP;
    for (uint32_t b = 0; b < rt->nbuckets; b++) {
      mdht_rt_bucket *bk = &rt->buckets[b];
      retick_all(bk->nodes, bk->n, old, rt->epoch);
      retick_all(bk->repl, bk->nrepl, old, rt->epoch);
      bk->last_changed = retick(bk->last_changed, old, rt->epoch);
    }
  }
  return (uint32_t)(now - rt->epoch);
}

static uint32_t max_fails(const mdht_rtable *rt) {
  return rt->cfg->max_fails ? rt->cfg->max_fails : 1;
}

/* --------------------------------------------------------- IPv6 pool */

#define V6_NONE UINT32_MAX
#define V6_MIN_CAP 4u

/* Makes sure one more IPv6 address can be stored, so that the change
 * that follows cannot fail half-way. */
static int v6_reserve(mdht_rtable *rt) {
  if (rt->v6_.free != V6_NONE || rt->v6_.top < rt->v6_.cap) return 0;
  uint32_t cap = rt->v6_.cap ? rt->v6_.cap * 2 : V6_MIN_CAP;
  uint8_t(*v)[16] = realloc(rt->v6_.ip, (size_t)cap * sizeof *v);
  if (!v) return MDHT_ERR_NOMEM;
  rt->v6_.ip = v;
  rt->v6_.cap = cap;
  return 0;
}

/* A slot holding `ip` (room reserved with v6_reserve). */
static uint32_t v6_alloc(mdht_rtable *rt, const uint8_t ip[16]) {
  uint32_t i = rt->v6_.free;
  if (i != V6_NONE)
    memcpy(&rt->v6_.free, rt->v6_.ip[i], sizeof rt->v6_.free);
  else
    i = rt->v6_.top++;
  memcpy(rt->v6_.ip[i], ip, 16);
  rt->v6_.live++;
  return i;
}

static void v6_release(mdht_rtable *rt, uint32_t i) {
  memcpy(rt->v6_.ip[i], &rt->v6_.free, sizeof rt->v6_.free);
  rt->v6_.free = i;
  rt->v6_.live--;
}

/* The entry's IP bytes: 4 or 16 by its family. */
static const uint8_t *entry_ip(const mdht_rtable *rt, const mdht_rt_entry *e) {
  return mdht_rt_entry_family(e) == MDHT_AF_INET6 ? rt->v6_.ip[e->ip]
                                                  : (const uint8_t *)&e->ip;
}

/* -------------------------------------------------------------- index */

/* Keyed by ip:port, or by IP alone with one entry per IP (then an IP
 * names at most one entry, whose port tells whether the ip:port is
 * known). */

static uint32_t key_hash(const mdht_rtable *rt, const mdht_rt_index *x,
                         const mdht_addr *a) {
  if (!x->by_ip) return mdht_addr_hash(a, rt->hash_seed);
  mdht_addr k = *a; /* mdht_addr_hash reads only the family's IP bytes */
  k.port = 0;
  return mdht_addr_hash(&k, rt->hash_seed);
}

/* Whether entry `e` has the IP of `a`, without building its address:
 * memcmp of a constant length, which the compiler turns into one or two
 * loads (an IPv4 entry holds its 4 bytes itself). ix_find runs it on every
 * datagram. */
static bool ip_eq(const mdht_rtable *rt, const mdht_rt_entry *e,
                  const mdht_addr *a) {
  if (mdht_rt_entry_family(e) != a->family) return false;
  return a->family == MDHT_AF_INET ? memcmp(&e->ip, a->ip, 4) == 0
                                   : memcmp(rt->v6_.ip[e->ip], a->ip, 16) == 0;
}

static bool key_eq(const mdht_rtable *rt, const mdht_rt_index *x,
                   const mdht_rt_entry *e, const mdht_addr *a) {
  return ip_eq(rt, e, a) && (x->by_ip || e->port == a->port);
}

static uint8_t cpl1_of(const mdht_rtable *rt, const mdht_id *id) {
  return (uint8_t)(mdht_id_common_prefix(id, &rt->self) + 1);
}

static mdht_rt_bucket *bucket_of_cpl1(const mdht_rtable *rt, uint8_t cpl1) {
  uint32_t cp = cpl1 - 1u;
  return &rt->buckets[cp < rt->nbuckets - 1 ? cp : rt->nbuckets - 1];
}

static mdht_rt_entry *key_in(const mdht_rtable *rt, const mdht_rt_index *x,
                             mdht_rt_entry *v, uint32_t n, const mdht_addr *a) {
  for (uint32_t i = 0; i < n; i++)
    if (key_eq(rt, x, &v[i], a)) return &v[i];
  return NULL;
}

/* The entry (in a bucket or a replacement list) whose key is that of `a`,
 * or NULL. */
static mdht_rt_entry *ix_find(const mdht_rtable *rt, const mdht_rt_index *x,
                              const mdht_addr *a) {
  const rt_slot *s = x->slots;
  uint32_t cap = x->cap, h = key_hash(rt, x, a) & 0xffffff00u;
  /* The load factor stays at most 1/2, so a free slot always ends this. */
  for (uint32_t i = slot_home(h, cap); s[i] != 0; i = slot_next(i, cap)) {
    if ((s[i] & 0xffffff00u) != h) continue;
    mdht_rt_bucket *b = bucket_of_cpl1(rt, slot_cpl1(s[i]));
    mdht_rt_entry *e = key_in(rt, x, b->nodes, b->n, a);
    if (!e) e = key_in(rt, x, b->repl, b->nrepl, a);
    if (e) return e;
  }
  return NULL;
}

static void ix_place(rt_slot *s, uint32_t cap, rt_slot v) {
  uint32_t i = slot_home(v, cap);
  while (s[i] != 0)
    i = slot_next(i, cap);
  s[i] = v;
}

/* Keeps the index at most 3/4 full: linear probing then looks at about
 * 2.5 slots for a hit, 8.5 for a miss (4-byte slots, two cache lines at
 * most). It grows by a quarter (to a multiple of 16 slots), not by
 * doubling, so that it is 3/5 to 3/4 full: 5.3 to 6.7 bytes per entry.
 * Doubling left a million-node simulation's tables, which hold some 180
 * entries, at 512 slots where 240 do (issue 13); a rehash per quarter is
 * O(entries) and happens a dozen times in a table's life. */
static int ix_reserve(mdht_rt_index *x, uint32_t extra) {
  uint32_t cap = x->cap;
  while ((x->n + extra) * 4 > cap * 3)
    cap = (cap + cap / 4 + 15) / 16 * 16;
  if (cap == x->cap) return 0;
  rt_slot *ns = calloc(cap, sizeof *ns);
  if (!ns) return MDHT_ERR_NOMEM;
  rt_slot *os = x->slots;
  for (uint32_t i = 0; i < x->cap; i++)
    if (os[i] != 0) ix_place(ns, cap, os[i]);
  free(os);
  x->slots = ns;
  x->cap = cap;
  return 0;
}

static void ix_insert(mdht_rtable *rt, mdht_rt_index *x, const mdht_addr *a,
                      const mdht_id *id) {
  ix_place(x->slots, x->cap, slot_of(key_hash(rt, x, a), cpl1_of(rt, id)));
  x->n++;
}

/* Removes one slot equal to that of (a, id); the entry itself may already
 * have left its bucket. */
static void ix_remove(mdht_rtable *rt, mdht_rt_index *x, const mdht_addr *a,
                      const mdht_id *id) {
  rt_slot *s = x->slots;
  rt_slot v = slot_of(key_hash(rt, x, a), cpl1_of(rt, id));
  uint32_t cap = x->cap, i = slot_home(v, cap);
  while (s[i] != 0 && s[i] != v)
    i = slot_next(i, cap);
  if (s[i] == 0) return;
  /* Backward-shift deletion: pull later members of the probe run into
   * the hole unless that would put them before their home slot. No
   * tombstones, so lookups never slow down with churn. */
  for (uint32_t j = slot_next(i, cap); s[j] != 0; j = slot_next(j, cap)) {
    uint32_t home = slot_home(s[j], cap);
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    s[i] = s[j];
    i = j;
  }
  s[i] = 0;
  x->n--;
}

static const mdht_rt_entry *idx_find(const mdht_rtable *rt,
                                     const mdht_addr *a) {
  const mdht_rt_entry *e = ix_find(rt, &rt->index_, a);
  /* Keyed by IP (one entry per IP): the entry must have the port too. */
  return e && (!rt->one_per_ip_ || e->port == a->port) ? e : NULL;
}

/* The entry at the IP of `a` (any port), or NULL; only with one entry per
 * IP. */
static const mdht_rt_entry *ip_find(const mdht_rtable *rt, const mdht_addr *a) {
  return rt->one_per_ip_ ? ix_find(rt, &rt->index_, a) : NULL;
}

/* Makes room for one more entry at `a` (its index slot, and its pool
 * slot if IPv6), so that the insertion that follows cannot fail half-way
 * through a change of the table. */
static int idx_reserve(mdht_rtable *rt, const mdht_addr *a) {
  if (ix_reserve(&rt->index_, 1)) return MDHT_ERR_NOMEM;
  return a->family == MDHT_AF_INET6 ? v6_reserve(rt) : 0;
}

/* Every entry enters the table here: `e` (with its id) gets the address
 * `a`, taking a pool slot if IPv6 (reserved with idx_reserve), and its
 * index slot. From then on `e` and its copies share that pool slot. */
static void idx_insert(mdht_rtable *rt, mdht_rt_entry *e, const mdht_addr *a) {
  e->v6_rtt = (uint8_t)((e->v6_rtt & ~MDHT_RT_V6_BIT) |
                        (a->family == MDHT_AF_INET6 ? MDHT_RT_V6_BIT : 0));
  e->port = a->port;
  if (a->family == MDHT_AF_INET6)
    e->ip = v6_alloc(rt, a->ip);
  else
    memcpy(&e->ip, a->ip, 4);
  ix_insert(rt, &rt->index_, a, &e->id);
}

/* Every entry leaves the table here, for good: its index slot and its
 * pool slot go (the entry itself may already have left its block). Read
 * its address before: an IPv6 one is gone once this returns. */
static void idx_remove(mdht_rtable *rt, const mdht_rt_entry *e) {
  mdht_addr a = mdht_rtable_addr(rt, e);
  ix_remove(rt, &rt->index_, &a, &e->id);
  if (mdht_rt_entry_family(e) == MDHT_AF_INET6) v6_release(rt, e->ip);
}

/* ------------------------------------------------------------ helpers */

uint32_t mdht_rtable_bucket_of(const mdht_rtable *rt, const mdht_id *id) {
  uint32_t cp = (uint32_t)mdht_id_common_prefix(id, &rt->self);
  return cp < rt->nbuckets - 1 ? cp : rt->nbuckets - 1;
}

static mdht_rt_bucket *bucket_for(const mdht_rtable *rt, const mdht_id *id) {
  return &rt->buckets[mdht_rtable_bucket_of(rt, id)];
}

static int find_addr(const mdht_rtable *rt, const mdht_rt_entry *v, uint32_t n,
                     const mdht_addr *a) {
  for (uint32_t i = 0; i < n; i++)
    if (v[i].port == a->port && ip_eq(rt, &v[i], a)) return (int)i;
  return -1;
}

static bool has_id(const mdht_rt_entry *v, uint32_t n, const mdht_id *id) {
  for (uint32_t i = 0; i < n; i++)
    if (mdht_id_eq(&v[i].id, id)) return true;
  return false;
}

static void drop_at(mdht_rt_entry *v, uint8_t *n, uint32_t i) {
  memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof v[0]);
  (*n)--;
}

/* Room for `want` entries (want <= cfg->k) in the block `*v` of `*cap`
 * slots: it grows two slots at a time, at most k. A bucket holds the
 * nodes and candidates it has, not k slots of each: the deepest buckets
 * of a table (past the one that holds about k of the network's nodes)
 * are half empty or less, and most have few candidates (issue 13). Two at
 * a time, not doubling: a bucket of 5 or 6 takes 6 slots, not 8; a full
 * one is reallocated 3 times in its life instead of 2. False if out of
 * memory (the block is left as it was). */
static bool block_reserve(const mdht_rtable *rt, mdht_rt_entry **v,
                          uint8_t *cap, uint32_t want) {
  if (want <= *cap) return true;
  uint32_t c = *cap ? *cap : 2;
  while (c < want)
    c += 2;
  if (c > rt->cfg->k) c = rt->cfg->k;
  mdht_rt_entry *nv = realloc(*v, c * sizeof *nv);
  if (!nv) return false;
  *v = nv;
  *cap = (uint8_t)c;
  return true;
}

static bool nodes_reserve(const mdht_rtable *rt, mdht_rt_bucket *b,
                          uint32_t want) {
  return block_reserve(rt, &b->nodes, &b->cap, want);
}

static bool repl_reserve(const mdht_rtable *rt, mdht_rt_bucket *b,
                         uint32_t want) {
  return block_reserve(rt, &b->repl, &b->repl_cap, want);
}

/* Frees the replacement block once it is empty. */
static void repl_release(mdht_rt_bucket *b) {
  if (b->nrepl > 0 || !b->repl) return;
  free(b->repl);
  b->repl = NULL;
  b->repl_cap = 0;
}

/* Removes replacement candidate i of `b`. */
static void repl_drop(mdht_rt_bucket *b, uint32_t i) {
  drop_at(b->repl, &b->nrepl, i);
  repl_release(b);
}

/* A tick: only compared with ticks of the same table. */
static uint32_t last_seen(const mdht_rt_entry *e) {
  uint32_t t = e->last_reply > e->last_query ? e->last_reply : e->last_query;
  return t ? t : e->added;
}

static void touch(mdht_rtable *rt, mdht_rt_entry *e, mdht_rt_how how,
                  mdht_time now) {
  if (how == MDHT_RT_HEARD_REPLY) {
    e->last_reply = stamp(rt, now);
    e->fails = 0;
  } else {
    e->last_query = stamp(rt, now);
  }
}

/* Tells about entry `e` at `addr`, which replaced `old` at `old_addr`
 * (NULL unless NODE_REPLACED). The addresses are given, not read from the
 * entries: an entry that has just left the table no longer has one. */
static void publish(const mdht_rtable *rt, mdht_event_type type,
                    const mdht_rt_entry *e, const mdht_addr *addr,
                    const mdht_rt_entry *old, const mdht_addr *old_addr,
                    mdht_time now) {
  if (!rt->bus) return;
  mdht_event ev;
  mdht_bus_event_init(&ev, type, now);
  ev.id = e->id;
  ev.addr = *addr;
  if (old) {
    ev.u.replaced.old_id = old->id;
    ev.u.replaced.old_addr = *old_addr;
  }
  mdht_bus_publish(rt->bus, &ev);
}

/* An entry that is in the table, told about with its address. */
static void publish_in(const mdht_rtable *rt, mdht_event_type type,
                       const mdht_rt_entry *e, mdht_time now) {
  if (!rt->bus) return;
  mdht_addr a = mdht_rtable_addr(rt, e);
  publish(rt, type, e, &a, NULL, NULL, now);
}

/* What a bucket weighs when it must choose between entries (rtable.h,
 * "Choosing"): having answered us counts first, a BEP 42-valid id (or an
 * exempt, private address) second. */
static int worth(const mdht_rtable *rt, const mdht_rt_entry *e) {
  mdht_addr a = mdht_rtable_addr(rt, e);
  return (e->last_reply != 0 ? 2 : 0) + (mdht_bep42_valid(&e->id, &a));
}

/* The replacement to promote: the worthiest; among equals the newest, as
 * the likeliest to be alive. */
static int best_candidate(const mdht_rtable *rt, const mdht_rt_bucket *b) {
  int best = b->nrepl - 1;
  for (int i = b->nrepl - 2; i >= 0; i--)
    if (worth(rt, &b->repl[i]) > worth(rt, &b->repl[best])) best = i;
  return best;
}

/* Fills free slots of `b` from its replacement list. */
static void promote(mdht_rtable *rt, mdht_rt_bucket *b, mdht_time now) {
  while (b->n < rt->cfg->k && b->nrepl > 0) {
    if (!nodes_reserve(rt, b, b->n + 1u)) return; /* kept as candidates */
    int c = best_candidate(rt, b);
    b->nodes[b->n] = b->repl[c];
    repl_drop(b, (uint32_t)c);
    b->last_changed = stamp(rt, now);
    publish_in(rt, MDHT_EV_NODE_ADDED, &b->nodes[b->n++], now);
  }
}

/* Appends `e` (already in the index) as the newest candidate. When the
 * list is full, the least worthy candidate goes (the oldest among equals),
 * and only for a newcomer at least as worthy: a stream of query-only nodes
 * cannot flush out nodes that answered. Returns false, with `e` dropped
 * from the index, if it was not kept. */
static bool repl_add(mdht_rtable *rt, mdht_rt_bucket *b,
                     const mdht_rt_entry *e) {
  if (b->nrepl >= rt->cfg->k) {
    uint32_t victim = 0;
    for (uint32_t i = 1; i < b->nrepl; i++)
      if (worth(rt, &b->repl[i]) < worth(rt, &b->repl[victim])) victim = i;
    if (worth(rt, e) < worth(rt, &b->repl[victim])) {
      idx_remove(rt, e);
      return false;
    }
    idx_remove(rt, &b->repl[victim]);
    repl_drop(b, victim);
  }
  if (!repl_reserve(rt, b, b->nrepl + 1u)) {
    idx_remove(rt, e);
    return false;
  }
  b->repl[b->nrepl++] = *e;
  return true;
}

/* The node block of a new bucket: room for `want` nodes (see
 * nodes_reserve), at least 2, so that `nodes` is never NULL. Not zeroed:
 * only the first n are ever read. */
static mdht_rt_entry *entries_new(const mdht_rtable *rt, uint32_t want,
                                  uint8_t *cap) {
  uint32_t c = 2;
  while (c < want)
    c += 2;
  if (c > rt->cfg->k) c = rt->cfg->k;
  *cap = (uint8_t)c;
  return malloc((size_t)c * sizeof(mdht_rt_entry));
}

/* Splits the last bucket in two: the ids that share exactly `depth` bits
 * with ours stay, the closer ones move to a new last bucket. */
static int split(mdht_rtable *rt, mdht_time now) {
  uint32_t depth = rt->nbuckets - 1;
  const mdht_rt_bucket *old = &rt->buckets[depth];
  uint32_t upn = 0;
  for (uint32_t i = 0; i < old->n; i++)
    upn +=
        (uint32_t)mdht_id_common_prefix(&old->nodes[i].id, &rt->self) > depth;
  uint8_t hcap;
  mdht_rt_entry *store = entries_new(rt, upn, &hcap);
  if (!store) return MDHT_ERR_NOMEM;
  mdht_rt_bucket hi0 = {.nodes = store, .cap = hcap};
  uint32_t up = 0;
  for (uint32_t i = 0; i < old->nrepl; i++)
    up += (uint32_t)mdht_id_common_prefix(&old->repl[i].id, &rt->self) > depth;
  mdht_rt_bucket *nb = NULL;
  if (repl_reserve(rt, &hi0, up))
    nb = realloc(rt->buckets, (rt->nbuckets + 1) * sizeof *rt->buckets);
  if (!nb) {
    free(store);
    free(hi0.repl);
    return MDHT_ERR_NOMEM;
  }
  rt->buckets = nb;
  mdht_rt_bucket *lo = &nb[depth], *hi = &nb[depth + 1];
  *hi = hi0;
  hi->last_changed = lo->last_changed;

  uint8_t keep = 0;
  for (uint32_t i = 0; i < lo->n; i++) {
    if ((uint32_t)mdht_id_common_prefix(&lo->nodes[i].id, &rt->self) > depth)
      hi->nodes[hi->n++] = lo->nodes[i];
    else
      lo->nodes[keep++] = lo->nodes[i];
  }
  lo->n = keep;
  keep = 0;
  for (uint32_t i = 0; i < lo->nrepl; i++) {
    if ((uint32_t)mdht_id_common_prefix(&lo->repl[i].id, &rt->self) > depth)
      hi->repl[hi->nrepl++] = lo->repl[i];
    else
      lo->repl[keep++] = lo->repl[i];
  }
  lo->nrepl = keep;
  repl_release(lo);
  rt->nbuckets++;

  if (rt->bus) {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_BUCKET_SPLIT, now);
    ev.id = rt->self;
    ev.u.split.depth = depth;
    ev.u.split.buckets = rt->nbuckets;
    mdht_bus_publish(rt->bus, &ev);
  }
  promote(rt, lo, now);
  promote(rt, hi, now);
  return 0;
}

/* The questionable node to check before `b` can take a newcomer: the one
 * heard from least recently, skipping any whose check is still in flight
 * so that a burst of newcomers does not ping the same node again and
 * again. -1 if none. */
static int ping_candidate(const mdht_rtable *rt, const mdht_rt_bucket *b,
                          mdht_time now) {
  int best = -1;
  for (uint32_t i = 0; i < b->n; i++) {
    const mdht_rt_entry *e = &b->nodes[i];
    if (mdht_rtable_state(rt, e, now) != MDHT_RT_QUESTIONABLE) continue;
    mdht_time pinged = mdht_rtable_time(rt, e->last_ping);
    if (pinged != 0 && now >= pinged &&
        now - pinged < rt->cfg->query_timeout_ms)
      continue;
    if (best < 0 || last_seen(e) < last_seen(&b->nodes[best])) best = (int)i;
  }
  return best;
}

static int bad_node(const mdht_rtable *rt, const mdht_rt_bucket *b) {
  int best = -1;
  for (uint32_t i = 0; i < b->n; i++) {
    if (b->nodes[i].fails < max_fails(rt)) continue;
    if (best < 0 || last_seen(&b->nodes[i]) < last_seen(&b->nodes[best]))
      best = (int)i;
  }
  return best;
}

static bool id_valid(const mdht_rtable *rt, const mdht_rt_entry *e) {
  mdht_addr a = mdht_rtable_addr(rt, e);
  return mdht_bep42_valid(&e->id, &a);
}

/* "Valid id wins" (rtable.h): `e`, which just answered with a BEP 42-valid
 * id from a public address, takes the slot of the questionable node with
 * an invalid id heard from least recently; that node becomes a replacement
 * candidate. Returns false if `b` has no such node. */
static bool take_invalid(mdht_rtable *rt, mdht_rt_bucket *b,
                         const mdht_rt_entry *e, mdht_time now) {
  mdht_addr ea = mdht_rtable_addr(rt, e);
  if (mdht_addr_is_private(&ea) || !id_valid(rt, e)) return false;
  int v = -1;
  for (uint32_t i = 0; i < b->n; i++) {
    const mdht_rt_entry *x = &b->nodes[i];
    if (id_valid(rt, x) ||
        mdht_rtable_state(rt, x, now) != MDHT_RT_QUESTIONABLE)
      continue;
    if (v < 0 || last_seen(x) < last_seen(&b->nodes[v])) v = (int)i;
  }
  if (v < 0) return false;
  mdht_rt_entry old = b->nodes[v];
  /* Read now: a candidate not kept by repl_add leaves the table. */
  mdht_addr old_addr = mdht_rtable_addr(rt, &old);
  b->nodes[v] = *e;
  b->last_changed = stamp(rt, now);
  old.last_ping = 0;
  repl_add(rt, b, &old);
  /* Told once done: the table a subscriber may look at is whole. */
  publish(rt, MDHT_EV_NODE_REPLACED, &b->nodes[v], &ea, &old, &old_addr, now);
  return true;
}

/* Puts `e`, which is in the index but in no bucket or list, where it
 * belongs. */
static int place(mdht_rtable *rt, const mdht_rt_entry *e, mdht_rt_how how,
                 mdht_time now, mdht_rt_entry *ping) {
  mdht_rt_bucket *b;
  for (;;) {
    uint32_t bi = mdht_rtable_bucket_of(rt, &e->id);
    b = &rt->buckets[bi];
    if (b->n < rt->cfg->k) {
      if (!nodes_reserve(rt, b, b->n + 1u)) {
        idx_remove(rt, e);
        return MDHT_ERR_NOMEM;
      }
      b->nodes[b->n] = *e;
      b->last_changed = stamp(rt, now);
      publish_in(rt, MDHT_EV_NODE_ADDED, &b->nodes[b->n++], now);
      return MDHT_RT_ADDED;
    }
    if (bi != rt->nbuckets - 1 || rt->nbuckets >= ID_BITS) break;
    int err = split(rt, now);
    if (err) {
      idx_remove(rt, e);
      return err;
    }
  }

  /* Full and not splittable. Only a node that answered us has shown it
   * would be worth a slot; a querier waits among the candidates. */
  if (how == MDHT_RT_HEARD_REPLY) {
    int bad = bad_node(rt, b);
    if (bad >= 0) {
      mdht_rt_entry old = b->nodes[bad];
      mdht_addr old_addr = mdht_rtable_addr(rt, &old);
      b->nodes[bad] = *e;
      b->last_changed = stamp(rt, now);
      idx_remove(rt, &old);
      mdht_addr a = mdht_rtable_addr(rt, &b->nodes[bad]);
      publish(rt, MDHT_EV_NODE_REPLACED, &b->nodes[bad], &a, &old, &old_addr,
              now);
      return MDHT_RT_ADDED;
    }
  }
  if (how == MDHT_RT_HEARD_REPLY && take_invalid(rt, b, e, now))
    return MDHT_RT_ADDED;
  int q = -1;
  if (how == MDHT_RT_HEARD_REPLY && ping) q = ping_candidate(rt, b, now);
  if (!repl_add(rt, b, e)) return MDHT_RT_IGNORED;
  if (q < 0) return MDHT_RT_REPLACEMENT;
  b->nodes[q].last_ping = stamp(rt, now);
  *ping = b->nodes[q];
  return MDHT_RT_PING;
}

/* ---------------------------------------------------------------- API */

int mdht_rtable_init(mdht_rtable *rt, const mdht_id *self,
                     const mdht_config *cfg, mdht_bus *bus,
                     uint64_t hash_seed) {
  if (!rt || !self || !cfg || cfg->k == 0 || cfg->k > MDHT_RT_KMAX)
    return MDHT_ERR_INVAL;
  memset(rt, 0, sizeof *rt);
  rt->self = *self;
  rt->cfg = cfg;
  rt->bus = bus;
  rt->hash_seed = hash_seed;
  rt->buckets = calloc(1, sizeof *rt->buckets);
  rt->one_per_ip_ = !cfg->allow_same_ip;
  rt->index_.slots = calloc(INDEX_MIN_CAP, sizeof(rt_slot));
  uint8_t cap0 = 0;
  mdht_rt_entry *store = rt->buckets ? entries_new(rt, 2, &cap0) : NULL;
  if (!store || !rt->index_.slots) {
    free(store);
    free(rt->buckets);
    free(rt->index_.slots);
    memset(rt, 0, sizeof *rt);
    return MDHT_ERR_NOMEM;
  }
  rt->buckets[0].nodes = store;
  rt->buckets[0].cap = cap0;
  rt->nbuckets = 1;
  rt->index_.cap = INDEX_MIN_CAP;
  rt->index_.by_ip = rt->one_per_ip_;
  rt->v6_.free = V6_NONE;
  return 0;
}

void mdht_rtable_free(mdht_rtable *rt) {
  if (!rt) return;
  for (uint32_t i = 0; rt->buckets && i < rt->nbuckets; i++) {
    free(rt->buckets[i].nodes);
    free(rt->buckets[i].repl);
  }
  free(rt->buckets);
  free(rt->index_.slots);
  free(rt->v6_.ip);
  memset(rt, 0, sizeof *rt);
}

extern inline mdht_rt_state
mdht_rtable_state(const mdht_rtable *rt, const mdht_rt_entry *e, mdht_time now);

static bool acceptable(const mdht_rtable *rt, const mdht_id *id,
                       const mdht_addr *addr) {
  if (mdht_id_eq(id, &rt->self) || mdht_addr_is_martian(addr)) return false;
  return rt->cfg->allow_private || !mdht_addr_is_private(addr);
}

static bool entry_is_bad(const mdht_rtable *rt, const mdht_rt_entry *s) {
  const mdht_rt_bucket *b = bucket_for(rt, &s->id);
  mdht_addr a = mdht_rtable_addr(rt, s);
  int pos = find_addr(rt, b->nodes, b->n, &a);
  return pos >= 0 && b->nodes[pos].fails >= max_fails(rt);
}

/* Entry `e` is in the /24 (IPv4) or /64 (IPv6) of `a`. */
static bool same_prefix(const mdht_rtable *rt, const mdht_rt_entry *e,
                        const mdht_addr *a) {
  if (mdht_rt_entry_family(e) != a->family) return false;
  return memcmp(entry_ip(rt, e), a->ip, a->family == MDHT_AF_INET ? 3 : 8) == 0;
}

/* The entry of bucket `b` (nodes, then candidates) in the prefix of
 * `addr`, or NULL. A bucket holds at most 2 * MDHT_RT_KMAX entries. */
static const mdht_rt_entry *prefix_taken(const mdht_rtable *rt,
                                         const mdht_rt_bucket *b,
                                         const mdht_addr *addr) {
  for (uint32_t i = 0; i < b->n; i++)
    if (same_prefix(rt, &b->nodes[i], addr)) return &b->nodes[i];
  for (uint32_t i = 0; i < b->nrepl; i++)
    if (same_prefix(rt, &b->repl[i], addr)) return &b->repl[i];
  return NULL;
}

/* One entry per IP in the table and per prefix in a bucket (rtable.h):
 * true if the new node (id, addr), at an ip:port the table does not hold,
 * may enter. The holder of its IP or prefix gives way only if it is bad
 * and the newcomer has just answered us (a node that came back on another
 * port or address). */
static bool may_enter(mdht_rtable *rt, const mdht_id *id, const mdht_addr *addr,
                      mdht_rt_how how, mdht_time now) {
  const mdht_rt_entry *o = ip_find(rt, addr);
  mdht_addr old;
  if (o) {
    if (how != MDHT_RT_HEARD_REPLY || !entry_is_bad(rt, o)) return false;
    old = mdht_rtable_addr(rt, o);
    mdht_rtable_remove(rt, NULL, &old, now);
  }
  if (rt->cfg->allow_same_prefix || mdht_addr_is_private(addr)) return true;
  const mdht_rt_entry *p = prefix_taken(rt, bucket_for(rt, id), addr);
  if (!p) return true;
  if (how != MDHT_RT_HEARD_REPLY || p->fails < max_fails(rt)) return false;
  old = mdht_rtable_addr(rt, p);
  mdht_rtable_remove(rt, NULL, &old, now);
  return true;
}

int mdht_rtable_heard(mdht_rtable *rt, const mdht_id *id, const mdht_addr *addr,
                      mdht_rt_how how, mdht_time now, mdht_rt_entry *ping) {
  if (!rt || !id || !addr ||
      (how != MDHT_RT_HEARD_QUERY && how != MDHT_RT_HEARD_REPLY))
    return MDHT_ERR_INVAL;
  if (!acceptable(rt, id, addr)) return MDHT_RT_IGNORED;
  /* Before any change: a new node and the split that may follow must not
   * fail half-way. */
  if (idx_reserve(rt, addr)) return MDHT_ERR_NOMEM;
  /* Any epoch move happens here, before an entry is copied out of the
   * table: the stamps below then never move it under a copy. */
  (void)mdht_rtable_tick(rt, now);

  mdht_rt_entry e;
  const mdht_rt_entry *s = idx_find(rt, addr);
  if (s && !mdht_id_eq(&s->id, id) && how == MDHT_RT_HEARD_REPLY &&
      entry_is_bad(rt, s)) {
    /* The node we knew there has stopped answering and something answers
     * there now: a restarted node. The dead entry gives way. */
    mdht_id old = s->id;
    mdht_rtable_remove(rt, &old, addr, now);
    s = NULL;
  }
  if (s) {
    /* Whoever answers from a known endpoint with another id is either a
     * restarted node or someone lying; neither earns trust while the
     * entry we have still answers. */
    if (!mdht_id_eq(&s->id, id)) return MDHT_RT_IGNORED;
    mdht_rt_bucket *b = bucket_for(rt, id);
    int pos = find_addr(rt, b->nodes, b->n, addr);
    if (pos >= 0) {
      touch(rt, &b->nodes[pos], how, now);
      if (how == MDHT_RT_HEARD_REPLY) b->last_changed = stamp(rt, now);
      return MDHT_RT_UPDATED;
    }
    pos = find_addr(rt, b->repl, b->nrepl, addr);
    if (pos < 0)
      return MDHT_RT_IGNORED; /* cannot happen: index and buckets agree */
    /* A candidate heard again may now take a slot; otherwise it becomes
     * the newest candidate. It keeps its index entry throughout. */
    e = b->repl[pos];
    /* Not repl_drop: the block stays while `e` is placed, so that a
     * lone candidate heard again is not freed and allocated again per
     * datagram. */
    drop_at(b->repl, &b->nrepl, (uint32_t)pos);
    touch(rt, &e, how, now);
    int r = place(rt, &e, how, now, ping);
    repl_release(bucket_for(rt, id));
    return r;
  } else {
    mdht_rt_bucket *b = bucket_for(rt, id);
    if (has_id(b->nodes, b->n, id) || has_id(b->repl, b->nrepl, id))
      return MDHT_RT_IGNORED;
    if (!may_enter(rt, id, addr, how, now)) return MDHT_RT_IGNORED;
    memset(&e, 0, sizeof e);
    e.id = *id;
    e.added = stamp(rt, now);
    idx_insert(rt, &e, addr);
  }
  touch(rt, &e, how, now);
  return place(rt, &e, how, now, ping);
}

void mdht_rtable_failed(mdht_rtable *rt, const mdht_id *id,
                        const mdht_addr *addr, mdht_time now) {
  if (!rt || !addr) return;
  const mdht_rt_entry *s = idx_find(rt, addr);
  if (!s || (id && !mdht_id_eq(&s->id, id))) return;
  const mdht_id sid = s->id; /* s points into the bucket, which changes */
  mdht_rt_bucket *b = bucket_for(rt, &sid);
  int pos = find_addr(rt, b->nodes, b->n, addr);
  if (pos < 0) {
    /* A candidate that does not answer is not worth keeping. */
    pos = find_addr(rt, b->repl, b->nrepl, addr);
    if (pos >= 0) {
      mdht_rt_entry gone = b->repl[pos];
      repl_drop(b, (uint32_t)pos);
      idx_remove(rt, &gone);
    }
    return;
  }
  mdht_rt_entry *e = &b->nodes[pos];
  if (e->fails < UINT8_MAX) e->fails++;
  if (e->fails < max_fails(rt) || b->nrepl == 0) return;
  int c = best_candidate(rt, b);
  mdht_rt_entry old = *e;
  mdht_addr old_addr = mdht_rtable_addr(rt, &old);
  *e = b->repl[c];
  repl_drop(b, (uint32_t)c);
  b->last_changed = stamp(rt, now);
  idx_remove(rt, &old);
  mdht_addr a = mdht_rtable_addr(rt, e);
  publish(rt, MDHT_EV_NODE_REPLACED, e, &a, &old, &old_addr, now);
}

int mdht_rtable_remove(mdht_rtable *rt, const mdht_id *id,
                       const mdht_addr *addr, mdht_time now) {
  if (!rt || !addr) return MDHT_ERR_INVAL;
  const mdht_rt_entry *s = idx_find(rt, addr);
  if (!s || (id && !mdht_id_eq(&s->id, id))) return MDHT_ERR_NOTFOUND;
  const mdht_id sid = s->id; /* s points into the bucket, which changes */
  mdht_rt_bucket *b = bucket_for(rt, &sid);
  int pos = find_addr(rt, b->nodes, b->n, addr);
  if (pos >= 0) {
    mdht_rt_entry old = b->nodes[pos];
    mdht_addr old_addr = mdht_rtable_addr(rt, &old);
    drop_at(b->nodes, &b->n, (uint32_t)pos);
    idx_remove(rt, &old);
    publish(rt, MDHT_EV_NODE_REMOVED, &old, &old_addr, NULL, NULL, now);
    promote(rt, b, now);
    return 0;
  }
  pos = find_addr(rt, b->repl, b->nrepl, addr);
  if (pos < 0) return MDHT_ERR_NOTFOUND;
  mdht_rt_entry gone = b->repl[pos];
  repl_drop(b, (uint32_t)pos);
  idx_remove(rt, &gone);
  return 0;
}

int mdht_rtable_restore(mdht_rtable *rt, const mdht_rt_entry *e,
                        const mdht_addr *addr, mdht_time now) {
  if (!rt || !e || !addr) return MDHT_ERR_INVAL;
  if (!acceptable(rt, &e->id, addr)) return MDHT_RT_IGNORED;
  /* Before any change, as in mdht_rtable_heard: a split must not fail
   * half-way. */
  if (idx_reserve(rt, addr)) return MDHT_ERR_NOMEM;
  const mdht_rt_bucket *b = bucket_for(rt, &e->id);
  if (idx_find(rt, addr) || has_id(b->nodes, b->n, &e->id) ||
      has_id(b->repl, b->nrepl, &e->id))
    return MDHT_RT_IGNORED;
  /* As a querier: a saved entry has not answered this process, so it
   * takes nobody's place, not even a bad node's. */
  if (!may_enter(rt, &e->id, addr, MDHT_RT_HEARD_QUERY, now))
    return MDHT_RT_IGNORED;
  mdht_rt_entry r = *e;
  r.last_ping = 0;
  if (r.added == 0) r.added = stamp(rt, now);
  idx_insert(rt, &r, addr);
  return place(rt, &r, MDHT_RT_HEARD_QUERY, now, NULL);
}

int mdht_rtable_presplit(mdht_rtable *rt, uint32_t nbuckets, mdht_time now) {
  if (!rt) return MDHT_ERR_INVAL;
  if (nbuckets > ID_BITS) nbuckets = ID_BITS;
  while (rt->nbuckets < nbuckets) {
    int err = split(rt, now);
    if (err) return err;
  }
  return 0;
}

mdht_rt_entry *mdht_rtable_find(mdht_rtable *rt, const mdht_addr *addr) {
  if (!rt || !addr) return NULL;
  const mdht_rt_entry *s = idx_find(rt, addr);
  if (!s) return NULL;
  mdht_rt_bucket *b = bucket_for(rt, &s->id);
  int pos = find_addr(rt, b->nodes, b->n, addr);
  return pos >= 0 ? &b->nodes[pos] : NULL;
}

/* mdht_id_cmp_dist, here so that it inlines into the scan: two XOR
 * distances nearly always differ in their first byte. */
static int closer(const mdht_id *t, const mdht_id *a, const mdht_id *b) {
  for (int i = 0; i < MDHT_ID_LEN; i++) {
    uint8_t da = (uint8_t)(a->b[i] ^ t->b[i]);
    uint8_t db = (uint8_t)(b->b[i] ^ t->b[i]);
    if (da != db) return da < db ? -1 : 1;
  }
  return 0;
}

/* Merges the eligible nodes of buckets lo..hi into out[have..n), which is
 * kept sorted by distance and holds at most the n - have closest. Bad is
 * `fails >= max_fails` (mdht_rtable_state), tested without the rest of
 * the state: this runs for every find_node and get_peers we answer. */
static size_t take_closest(const mdht_rtable *rt, uint32_t lo, uint32_t hi,
                           const mdht_id *target, int family,
                           mdht_rt_entry *out, size_t have, size_t n) {
  mdht_rt_entry *v = out + have;
  size_t room = n - have, m = 0;
  uint32_t maxf = max_fails(rt);
  for (uint32_t bi = lo; bi <= hi; bi++) {
    const mdht_rt_bucket *b = &rt->buckets[bi];
    for (uint32_t i = 0; i < b->n; i++) {
      const mdht_rt_entry *e = &b->nodes[i];
      if (e->last_reply == 0 || e->fails >= maxf ||
          (family && mdht_rt_entry_family(e) != family))
        continue;
      if (m == room && closer(target, &e->id, &v[m - 1].id) >= 0) continue;
      size_t j = m < room ? m++ : m - 1;
      while (j > 0 && closer(target, &e->id, &v[j - 1].id) < 0) {
        v[j] = v[j - 1];
        j--;
      }
      v[j] = *e;
    }
  }
  return have + m;
}

size_t mdht_rtable_closest(const mdht_rtable *rt, const mdht_id *target,
                           int family, mdht_rt_entry *out, size_t n,
                           mdht_time now) {
  (void)now; /* "bad" does not depend on time (see take_closest) */
  if (!rt || !target || !out || n == 0) return 0;
  /* XOR distance orders the buckets in bands. With c the bucket of the
   * target: bucket c's nodes agree with the target through bit c and are
   * nearest; the buckets after c differ from it first at bit c and come
   * next, mixed together; then each bucket i < c, whose nodes differ from
   * it first at bit i, farther as i falls. Sorting within a band is
   * enough. */
  uint32_t last = rt->nbuckets - 1;
  uint32_t c = mdht_rtable_bucket_of(rt, target);
  size_t have = take_closest(rt, c, c, target, family, out, 0, n);
  if (c < last && have < n)
    have = take_closest(rt, c + 1, last, target, family, out, have, n);
  for (uint32_t i = c; i-- > 0 && have < n;)
    have = take_closest(rt, i, i, target, family, out, have, n);
  return have;
}

void mdht_rtable_counts(const mdht_rtable *rt, mdht_time now, uint32_t *good,
                        uint32_t *questionable, uint32_t *total,
                        uint32_t *replacements) {
  uint32_t g = 0, q = 0, t = 0, r = 0;
  for (uint32_t bi = 0; rt && bi < rt->nbuckets; bi++) {
    const mdht_rt_bucket *b = &rt->buckets[bi];
    for (uint32_t i = 0; i < b->n; i++) {
      mdht_rt_state st = mdht_rtable_state(rt, &b->nodes[i], now);
      g += st == MDHT_RT_GOOD;
      q += st == MDHT_RT_QUESTIONABLE;
    }
    t += b->n;
    r += b->nrepl;
  }
  if (good) *good = g;
  if (questionable) *questionable = q;
  if (total) *total = t;
  if (replacements) *replacements = r;
}

void mdht_rtable_bytes(const mdht_rtable *rt, size_t *buckets, size_t *repl,
                       size_t *index) {
  size_t r = 0, c = 0;
  for (uint32_t b = 0; b < rt->nbuckets; b++) {
    r += rt->buckets[b].repl_cap;
    c += rt->buckets[b].cap;
  }
  *buckets = rt->nbuckets * sizeof(mdht_rt_bucket) + c * sizeof(mdht_rt_entry);
  *repl = r * sizeof(mdht_rt_entry);
  *index = rt->index_.cap * sizeof(rt_slot) +
           (size_t)rt->v6_.cap * sizeof *rt->v6_.ip;
}
