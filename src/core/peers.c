#include "peers.h"

#include "bloom.h"
#include "hash.h"
#include "addr.h"

#include <stdlib.h>
#include <string.h>

/*
 * Layout: the info-hashes live in a dense array (`ents`), so that random
 * sampling (BEP 51, eviction) is O(1) per pick; an open-addressing index
 * (linear probing, load <= 1/2, backward-shift deletion so no tombstones
 * accumulate) maps an info-hash to its position. Removing an info-hash
 * moves the last one into its place.
 *
 * Each info-hash owns a growable array of peers, at most max_peers_per_ih,
 * scanned linearly: it is small and every announce already has to look
 * for the announcer's record.
 *
 * Source IPs live the same way (`srcs`, dense, with their own index). A
 * source lists its records as (info-hash position, peer position) pairs,
 * and each record knows its source and its place in that list, so that
 * either side can be removed in O(1) and moves fix the other side. Two
 * binary max-heaps over the sources, keyed by records held and by records
 * alone in their info-hash, find the source to evict from in O(1), at
 * O(log sources) per change.
 */

#define MIN_SLOTS 16u
#define MIN_PEERS 4u
/* Info-hashes inspected to pick one to evict when no source is alone in
 * any (see evict_ih). With 8, the victim comes from the more recently
 * announced half of the store only if all 8 picks do: 1 in 256. */
#define EVICT_SAMPLE 8u

enum { BY_RECORDS = 0, BY_SINGLES = 1 };

typedef struct ih_ent {
  mdht_id ih;
  uint32_t hash;
  uint32_t n, cap;
  mdht_peer *peers;
  mdht_time min_exp; /* never later than the earliest expiry among peers */
  mdht_time max_exp; /* latest expiry: the last announce plus the TTL */
} ih_ent;

typedef struct rec_ref {
  uint32_t d, i; /* ents[d].peers[i] */
} rec_ref;

typedef struct src_ent {
  mdht_addr ip; /* canonical, port 0 */
  uint32_t hash;
  uint32_t n, cap; /* records held (one per info-hash), recs capacity */
  uint32_t single; /* of which the only peer of their info-hash */
  uint32_t hpos[2];
  rec_ref *recs;
} src_ent;

typedef struct ixtab {
  uint32_t *slots; /* 0 = empty, else dense index + 1 */
  uint32_t mask;
} ixtab;

typedef struct table {
  ixtab ihx, srcx;
  ih_ent *ents;
  uint32_t ents_cap;
  src_ent *srcs;
  uint32_t srcs_cap;
  uint32_t *heap[2]; /* source indices, srcs_cap each */
} table;

/* ------------------------------------------------------------ hashing */

/* Info-hashes and addresses are chosen by whoever announces, so the
 * indexes need a keyed hash that an attacker cannot aim collisions at. */
static uint32_t fold(uint64_t h) {
  return (uint32_t)(h ^ (h >> 32));
}

static uint32_t ih_hash(uint64_t seed, const mdht_id *ih) {
  return fold(mdht_hash(seed, ih->b, MDHT_ID_LEN));
}

static uint32_t ip_hash(uint64_t seed, const mdht_addr *ip) {
  uint8_t k[17];
  k[0] = ip->family;
  memcpy(k + 1, ip->ip, 16);
  return fold(mdht_hash(~seed, k, sizeof k));
}

/* xorshift64*: sampling only needs to be unpredictable to remote nodes
 * that cannot see the caller-provided seed, not cryptographic. */
static uint64_t rng_next(mdht_peer_store *ps) {
  uint64_t x = ps->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  ps->rng = x;
  return x * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, n) up to a bias of n / 2^32, irrelevant for n <= 2^20. */
static uint32_t rng_below(mdht_peer_store *ps, uint32_t n) {
  return (uint32_t)(((rng_next(ps) >> 32) * n) >> 32);
}

/* -------------------------------------------------------------- index */

static table *tbl(const mdht_peer_store *ps) {
  return ps->table_;
}

static uint32_t hash_at(const table *t, const ixtab *x, uint32_t d) {
  return x == &t->ihx ? t->ents[d].hash : t->srcs[d].hash;
}

/* Slot position holding the value `d + 1`; it must exist. */
static uint32_t slot_of_index(const table *t, const ixtab *x, uint32_t d) {
  uint32_t p = hash_at(t, x, d) & x->mask;
  while (x->slots[p] != d + 1)
    p = (p + 1) & x->mask;
  return p;
}

static void slot_put(ixtab *x, uint32_t h, uint32_t value) {
  uint32_t p = h & x->mask;
  while (x->slots[p])
    p = (p + 1) & x->mask;
  x->slots[p] = value;
}

/* Backward-shift deletion: later entries of the probe run move up unless
 * their home position lies cyclically in (hole, their position]. */
static void slot_delete(const table *t, ixtab *x, uint32_t hole) {
  uint32_t j = hole;
  for (;;) {
    j = (j + 1) & x->mask;
    uint32_t s = x->slots[j];
    if (!s) break;
    uint32_t home = hash_at(t, x, s - 1) & x->mask;
    bool stays =
        hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    x->slots[hole] = s;
    hole = j;
  }
  x->slots[hole] = 0;
}

/* Makes room for entry number `count` + 1 (load <= 1/2). */
static int index_reserve(table *t, ixtab *x, uint32_t count) {
  uint64_t size = (uint64_t)x->mask + 1;
  if (((uint64_t)count + 1) * 2 <= size) return 0;
  if (size * 2 > UINT32_MAX / 2) return MDHT_ERR_NOMEM;
  uint32_t *slots = calloc((size_t)size * 2, sizeof *slots);
  if (!slots) return MDHT_ERR_NOMEM;
  free(x->slots);
  x->slots = slots;
  x->mask = (uint32_t)(size * 2 - 1);
  for (uint32_t d = 0; d < count; d++)
    slot_put(x, hash_at(t, x, d), d + 1);
  return 0;
}

/* Dense index of `ih`, or UINT32_MAX. */
static uint32_t ih_find(const mdht_peer_store *ps, const mdht_id *ih) {
  const table *t = tbl(ps);
  uint32_t h = ih_hash(ps->hash_seed, ih);
  for (uint32_t p = h & t->ihx.mask;; p = (p + 1) & t->ihx.mask) {
    uint32_t s = t->ihx.slots[p];
    if (!s) return UINT32_MAX;
    const ih_ent *e = &t->ents[s - 1];
    if (e->hash == h && memcmp(e->ih.b, ih->b, MDHT_ID_LEN) == 0) return s - 1;
  }
}

/* Dense index of the source `ip` (canonical), or UINT32_MAX. */
static uint32_t src_find(const mdht_peer_store *ps, const mdht_addr *ip) {
  const table *t = tbl(ps);
  uint32_t h = ip_hash(ps->hash_seed, ip);
  for (uint32_t p = h & t->srcx.mask;; p = (p + 1) & t->srcx.mask) {
    uint32_t s = t->srcx.slots[p];
    if (!s) return UINT32_MAX;
    const src_ent *e = &t->srcs[s - 1];
    if (e->hash == h && mdht_addr_ip_eq(&e->ip, ip)) return s - 1;
  }
}

/* --------------------------------------------------------------- heaps */

static uint32_t key_of(const table *t, int k, uint32_t s) {
  return k == BY_SINGLES ? t->srcs[s].single : t->srcs[s].n;
}

static void heap_set(table *t, int k, uint32_t pos, uint32_t s) {
  t->heap[k][pos] = s;
  t->srcs[s].hpos[k] = pos;
}

static void sift_up(table *t, int k, uint32_t pos) {
  uint32_t s = t->heap[k][pos], key = key_of(t, k, s);
  while (pos > 0) {
    uint32_t up = (pos - 1) / 2;
    if (key_of(t, k, t->heap[k][up]) >= key) break;
    heap_set(t, k, pos, t->heap[k][up]);
    pos = up;
  }
  heap_set(t, k, pos, s);
}

static void sift_down(table *t, int k, uint32_t pos, uint32_t size) {
  uint32_t s = t->heap[k][pos], key = key_of(t, k, s);
  for (;;) {
    uint64_t c = (uint64_t)pos * 2 + 1;
    if (c >= size) break;
    if (c + 1 < size &&
        key_of(t, k, t->heap[k][c + 1]) > key_of(t, k, t->heap[k][c]))
      c++;
    if (key_of(t, k, t->heap[k][c]) <= key) break;
    heap_set(t, k, pos, t->heap[k][c]);
    pos = (uint32_t)c;
  }
  heap_set(t, k, pos, s);
}

/* A source's key changed by one, either way. */
static void heap_fix(mdht_peer_store *ps, int k, uint32_t s) {
  table *t = tbl(ps);
  sift_up(t, k, t->srcs[s].hpos[k]);
  sift_down(t, k, t->srcs[s].hpos[k], ps->nsrc);
}

/* ------------------------------------------------------------- sources */

/* Room for one more source: dense array, heaps and index. */
static int reserve_src(mdht_peer_store *ps) {
  table *t = tbl(ps);
  if (ps->nsrc == t->srcs_cap) {
    uint64_t cap = t->srcs_cap ? (uint64_t)t->srcs_cap * 2 : MIN_SLOTS;
    if (cap > UINT32_MAX / 4) return MDHT_ERR_NOMEM;
    src_ent *srcs = realloc(t->srcs, (size_t)cap * sizeof *srcs);
    if (!srcs) return MDHT_ERR_NOMEM;
    t->srcs = srcs;
    for (int k = 0; k < 2; k++) {
      uint32_t *h = realloc(t->heap[k], (size_t)cap * sizeof *h);
      if (!h) return MDHT_ERR_NOMEM; /* srcs_cap stays: retried next time */
      t->heap[k] = h;
    }
    t->srcs_cap = (uint32_t)cap;
  }
  return index_reserve(t, &t->srcx, ps->nsrc);
}

/* The source of `ip` (canonical), created with no records if new; or
 * UINT32_MAX when out of memory. */
static uint32_t src_get(mdht_peer_store *ps, const mdht_addr *ip) {
  uint32_t s = src_find(ps, ip);
  if (s != UINT32_MAX) return s;
  if (reserve_src(ps)) return UINT32_MAX;
  table *t = tbl(ps);
  s = ps->nsrc++;
  src_ent *e = &t->srcs[s];
  *e = (src_ent){.ip = *ip, .hash = ip_hash(ps->hash_seed, ip)};
  e->ip.port = 0;
  slot_put(&t->srcx, e->hash, s + 1);
  for (int k = 0; k < 2; k++)
    heap_set(t, k, s, s); /* key 0 at the bottom: in place */
  return s;
}

/* Removes source s, which holds no record; the last one takes its place. */
static void src_drop(mdht_peer_store *ps, uint32_t s) {
  table *t = tbl(ps);
  uint32_t last = ps->nsrc - 1;
  for (int k = 0; k < 2; k++) {
    uint32_t pos = t->srcs[s].hpos[k], tail = t->heap[k][last];
    if (pos == last) continue;
    heap_set(t, k, pos, tail);
    sift_up(t, k, pos);
    sift_down(t, k, t->srcs[tail].hpos[k], last);
  }
  slot_delete(t, &t->srcx, slot_of_index(t, &t->srcx, s));
  free(t->srcs[s].recs);
  ps->nsrc = last;
  if (s == last) return;
  t->srcs[s] = t->srcs[last];
  t->srcx.slots[slot_of_index(t, &t->srcx, last)] = s + 1;
  const src_ent *m = &t->srcs[s];
  for (int k = 0; k < 2; k++)
    t->heap[k][m->hpos[k]] = s;
  for (uint32_t r = 0; r < m->n; r++)
    t->ents[m->recs[r].d].peers[m->recs[r].i].src_ = s;
}

static void single_add(mdht_peer_store *ps, uint32_t s, int delta) {
  table *t = tbl(ps);
  t->srcs[s].single = (uint32_t)((int64_t)t->srcs[s].single + delta);
  heap_fix(ps, BY_SINGLES, s);
}

/* ------------------------------------------------------------- events */

static void publish(mdht_peer_store *ps, mdht_event_type type,
                    const mdht_id *ih, const mdht_addr *peer, uint32_t count,
                    mdht_time now) {
  if (!ps->bus) return;
  mdht_event ev;
  mdht_bus_event_init(&ev, type, now);
  ev.id = *ih;
  ev.u.peer.peer = *peer;
  ev.u.peer.count = count;
  mdht_bus_publish(ps->bus, &ev);
}

/* ------------------------------------------------------------- records */

/* Room for one more peer in ents[d] and one more record of source s. */
static int reserve_rec(mdht_peer_store *ps, uint32_t d, uint32_t s) {
  table *t = tbl(ps);
  ih_ent *e = &t->ents[d];
  if (e->n == e->cap) {
    uint64_t ncap = (uint64_t)e->cap * 2;
    if (ncap > ps->cfg->max_peers_per_ih) ncap = ps->cfg->max_peers_per_ih;
    if (ncap <= e->n) return MDHT_ERR_FULL;
    mdht_peer *peers = realloc(e->peers, (size_t)ncap * sizeof *peers);
    if (!peers) return MDHT_ERR_NOMEM;
    e->peers = peers;
    e->cap = (uint32_t)ncap;
  }
  src_ent *se = &t->srcs[s];
  if (se->n == se->cap) {
    uint64_t ncap = se->cap ? (uint64_t)se->cap * 2 : MIN_PEERS;
    if (ncap > UINT32_MAX / 4) return MDHT_ERR_NOMEM;
    rec_ref *recs = realloc(se->recs, (size_t)ncap * sizeof *recs);
    if (!recs) return MDHT_ERR_NOMEM;
    se->recs = recs;
    se->cap = (uint32_t)ncap;
  }
  return 0;
}

/* Appends `np` to ents[d] as a record of source s (room reserved). */
static void rec_link(mdht_peer_store *ps, uint32_t d, uint32_t s,
                     mdht_peer np) {
  table *t = tbl(ps);
  ih_ent *e = &t->ents[d];
  src_ent *se = &t->srcs[s];
  np.src_ = s;
  np.slot_ = se->n;
  se->recs[se->n++] = (rec_ref){.d = d, .i = e->n};
  e->peers[e->n++] = np;
  ps->npeers++;
  heap_fix(ps, BY_RECORDS, s);
  if (e->n == 1) single_add(ps, s, +1);
  if (e->n == 2) single_add(ps, e->peers[0].src_, -1);
  if (np.expires < e->min_exp) e->min_exp = np.expires;
  if (np.expires > e->max_exp) e->max_exp = np.expires;
  if (e->min_exp < ps->next_expiry) ps->next_expiry = e->min_exp;
}

/* Removes ents[d].peers[i], reports it, and fixes both sides' indices.
 * The info-hash may be left empty: the caller drops it, or recomputes its
 * min_exp. */
static void rec_unlink(mdht_peer_store *ps, uint32_t d, uint32_t i,
                       mdht_time now) {
  table *t = tbl(ps);
  ih_ent *e = &t->ents[d];
  mdht_peer gone = e->peers[i];
  uint32_t s = gone.src_;
  if (e->n == 1) single_add(ps, s, -1);
  if (e->n == 2) single_add(ps, e->peers[1 - i].src_, +1);
  /* The source's list first, while every reference is still valid. */
  src_ent *se = &t->srcs[s];
  rec_ref tail = se->recs[--se->n];
  if (gone.slot_ != se->n) {
    se->recs[gone.slot_] = tail;
    t->ents[tail.d].peers[tail.i].slot_ = gone.slot_;
  }
  heap_fix(ps, BY_RECORDS, s);
  if (se->n == 0) src_drop(ps, s);
  /* Then the swarm's array: its last peer fills the hole. */
  uint32_t last = --e->n;
  if (i != last) {
    e->peers[i] = e->peers[last];
    t->srcs[e->peers[i].src_].recs[e->peers[i].slot_].i = i;
  }
  ps->npeers--;
  publish(ps, MDHT_EV_PEER_EXPIRED, &e->ih, &gone.addr, e->n, now);
}

static void recompute_min(ih_ent *e) {
  e->min_exp = UINT64_MAX;
  for (uint32_t i = 0; i < e->n; i++)
    if (e->peers[i].expires < e->min_exp) e->min_exp = e->peers[i].expires;
}

/* Removes info-hash d, which holds no peer; the last one takes its
 * place. */
static void drop_ent(mdht_peer_store *ps, uint32_t d) {
  table *t = tbl(ps);
  slot_delete(t, &t->ihx, slot_of_index(t, &t->ihx, d));
  free(t->ents[d].peers);
  uint32_t last = --ps->nih;
  if (d != last) {
    t->ents[d] = t->ents[last];
    t->ihx.slots[slot_of_index(t, &t->ihx, last)] = d + 1;
    const ih_ent *m = &t->ents[d];
    for (uint32_t i = 0; i < m->n; i++)
      t->srcs[m->peers[i].src_].recs[m->peers[i].slot_].d = d;
  }
  if (ps->nih == 0) ps->next_expiry = UINT64_MAX;
}

/* Removes one record and its info-hash if that empties it. */
static void rec_remove(mdht_peer_store *ps, uint32_t d, uint32_t i,
                       mdht_time now) {
  rec_unlink(ps, d, i, now);
  ih_ent *e = &tbl(ps)->ents[d];
  if (e->n == 0)
    drop_ent(ps, d);
  else
    recompute_min(e);
}

/* ------------------------------------------------------------ eviction */

/* Removes the stalest record of source s (among those alone in their
 * info-hash if `singles`); ties go to the earliest in its list. */
static void evict_stalest_of(mdht_peer_store *ps, uint32_t s, bool singles,
                             mdht_time now) {
  const table *t = tbl(ps);
  const src_ent *se = &t->srcs[s];
  rec_ref best = {UINT32_MAX, 0};
  mdht_time best_exp = UINT64_MAX;
  for (uint32_t r = 0; r < se->n; r++) {
    rec_ref ref = se->recs[r];
    const ih_ent *e = &t->ents[ref.d];
    if (singles && e->n != 1) continue;
    if (best.d == UINT32_MAX || e->peers[ref.i].expires < best_exp) {
      best = ref;
      best_exp = e->peers[ref.i].expires;
    }
  }
  if (best.d != UINT32_MAX) rec_remove(ps, best.d, best.i, now);
}

/* The stalest (oldest last announce) of a few random info-hashes goes
 * whole: approximate LRU in O(1), for when no source is alone anywhere. */
static void evict_sampled(mdht_peer_store *ps, mdht_time now) {
  const table *t = tbl(ps);
  uint32_t victim = 0;
  if (ps->nih <= EVICT_SAMPLE) {
    for (uint32_t d = 1; d < ps->nih; d++)
      if (t->ents[d].max_exp < t->ents[victim].max_exp) victim = d;
  } else {
    victim = rng_below(ps, ps->nih);
    for (uint32_t i = 1; i < EVICT_SAMPLE; i++) {
      uint32_t d = rng_below(ps, ps->nih);
      if (t->ents[d].max_exp < t->ents[victim].max_exp) victim = d;
    }
  }
  while (t->ents[victim].n > 0)
    rec_unlink(ps, victim, t->ents[victim].n - 1, now);
  drop_ent(ps, victim);
}

/*
 * Makes room for one info-hash. Each info-hash with a single peer exists
 * because that one IP announced it, so the source alone in the most
 * info-hashes gives up its stalest one: an IP that floods the store with
 * fresh info-hashes is that source, and pays for its own flood. Only when
 * every info-hash has several peers (which several IPs must have
 * announced) does a sampled stale one go.
 */
static void evict_ih(mdht_peer_store *ps, mdht_time now) {
  const table *t = tbl(ps);
  if (ps->nsrc > 0 && t->srcs[t->heap[BY_SINGLES][0]].single > 0)
    evict_stalest_of(ps, t->heap[BY_SINGLES][0], true, now);
  else
    evict_sampled(ps, now);
}

/* Makes room for one record: the heaviest source's stalest one goes. */
static void evict_record(mdht_peer_store *ps, mdht_time now) {
  evict_stalest_of(ps, tbl(ps)->heap[BY_RECORDS][0], false, now);
}

/* In a full swarm, the record whose source holds the most records, ties
 * to the one closest to expiry: one IP cannot take a swarm's slots from
 * others, and in a swarm of ordinary peers the oldest announce goes. */
static uint32_t swarm_victim(const mdht_peer_store *ps, uint32_t d) {
  const table *t = tbl(ps);
  const ih_ent *e = &t->ents[d];
  uint32_t v = 0;
  for (uint32_t i = 1; i < e->n; i++) {
    uint32_t ni = t->srcs[e->peers[i].src_].n;
    uint32_t nv = t->srcs[e->peers[v].src_].n;
    if (ni > nv || (ni == nv && e->peers[i].expires < e->peers[v].expires))
      v = i;
  }
  return v;
}

/* --------------------------------------------------------------- store */

/* The tables, made with the first record: most nodes of a network store
 * no peer at all (in the simulator, some 400 of a million), and an empty
 * store then costs its struct alone, not 208 bytes more (issue 13). */
static int table_new(mdht_peer_store *ps) {
  table *t = calloc(1, sizeof *t);
  uint32_t *a = calloc(MIN_SLOTS, sizeof *a);
  uint32_t *b = calloc(MIN_SLOTS, sizeof *b);
  if (!t || !a || !b) {
    free(t);
    free(a);
    free(b);
    return MDHT_ERR_NOMEM;
  }
  t->ihx = (ixtab){.slots = a, .mask = MIN_SLOTS - 1};
  t->srcx = (ixtab){.slots = b, .mask = MIN_SLOTS - 1};
  ps->table_ = t;
  ps->cap_ = MIN_SLOTS;
  return 0;
}

int mdht_peers_init(mdht_peer_store *ps, const mdht_config *cfg, mdht_bus *bus,
                    uint64_t hash_seed, uint64_t rng_seed) {
  if (!ps) return MDHT_ERR_INVAL;
  memset(ps, 0, sizeof *ps);
  ps->next_expiry = UINT64_MAX;
  if (!cfg) return MDHT_ERR_INVAL;
  ps->cfg = cfg;
  ps->bus = bus;
  ps->hash_seed = hash_seed;
  /* xorshift never leaves the all-zero state. */
  ps->rng = rng_seed ? rng_seed : 0x9e3779b97f4a7c15ULL;
  return 0;
}

void mdht_peers_free(mdht_peer_store *ps) {
  if (!ps) return;
  table *t = tbl(ps);
  if (t) {
    for (uint32_t d = 0; d < ps->nih; d++)
      free(t->ents[d].peers);
    for (uint32_t s = 0; s < ps->nsrc; s++)
      free(t->srcs[s].recs);
    free(t->ents);
    free(t->srcs);
    free(t->heap[0]);
    free(t->heap[1]);
    free(t->ihx.slots);
    free(t->srcx.slots);
    free(t);
  }
  ps->table_ = NULL;
  ps->cap_ = ps->nih = ps->npeers = ps->nsrc = 0;
  ps->next_expiry = UINT64_MAX;
}

/* A v4 address only means its first 4 bytes; zero the rest (and the pad)
 * so that stored copies compare and hash the same whatever the caller
 * left there. */
static mdht_addr canonical(const mdht_addr *a) {
  mdht_addr c = *a;
  c.pad_ = 0;
  if (c.family == MDHT_AF_INET) memset(c.ip + 4, 0, sizeof c.ip - 4);
  return c;
}

/* New, empty info-hash; its dense index, or UINT32_MAX when out of
 * memory. The caller has made room under max_infohashes. */
static uint32_t insert_ih(mdht_peer_store *ps, const mdht_id *ih) {
  uint32_t maxp = ps->cfg->max_peers_per_ih;
  uint32_t pcap = maxp < MIN_PEERS ? maxp : MIN_PEERS;
  mdht_peer *peers = malloc(pcap * sizeof *peers);
  if (!peers) return UINT32_MAX;
  table *t = tbl(ps);
  if (ps->nih == t->ents_cap) {
    uint64_t cap = t->ents_cap ? (uint64_t)t->ents_cap * 2 : MIN_SLOTS;
    if (cap > ps->cfg->max_infohashes) cap = ps->cfg->max_infohashes;
    if (cap <= ps->nih) cap = (uint64_t)ps->nih + 1;
    ih_ent *ents = cap > UINT32_MAX / 4
                       ? NULL
                       : realloc(t->ents, (size_t)cap * sizeof *ents);
    if (!ents) {
      free(peers);
      return UINT32_MAX;
    }
    t->ents = ents;
    t->ents_cap = (uint32_t)cap;
  }
  if (index_reserve(t, &t->ihx, ps->nih)) {
    free(peers);
    return UINT32_MAX;
  }
  ps->cap_ = t->ihx.mask + 1;
  uint32_t d = ps->nih++;
  uint32_t h = ih_hash(ps->hash_seed, ih);
  t->ents[d] = (ih_ent){
      .ih = *ih, .hash = h, .cap = pcap, .peers = peers, .min_exp = UINT64_MAX};
  slot_put(&t->ihx, h, d + 1);
  return d;
}

int mdht_peers_add(mdht_peer_store *ps, const mdht_id *ih,
                   const mdht_addr *peer, bool seed, mdht_time now) {
  if (!ps) return MDHT_ERR_INVAL;
  /* An announce is a record that lives the full TTL from now. */
  mdht_time exp = now + ps->cfg->peer_ttl_ms;
  if (exp < now || exp == UINT64_MAX) exp = UINT64_MAX - 1;
  return mdht_peers_add_until(ps, ih, peer, seed, exp, now);
}

/* Reservoir sampling over the eligible peers of `e`, into out[0..max):
 * one pass, no scratch memory, and every subset equally likely. `seed`
 * < 0: seeds and downloaders alike; else only records whose flag equals
 * it. Returns how many were eligible (may exceed max). */
static size_t sample_peers(mdht_peer_store *ps, const ih_ent *e, int family,
                           int seed, mdht_addr *out, size_t max,
                           mdht_time now) {
  size_t seen = 0;
  for (uint32_t i = 0; i < e->n; i++) {
    const mdht_peer *pr = &e->peers[i];
    if (pr->expires <= now || (family && pr->addr.family != family)) continue;
    if (seed >= 0 && pr->seed != (seed == 1)) continue;
    if (seen < max) {
      out[seen] = pr->addr;
    } else {
      uint32_t j = rng_below(ps, (uint32_t)seen + 1);
      if (j < max) out[j] = pr->addr;
    }
    seen++;
  }
  return seen;
}

size_t mdht_peers_get(mdht_peer_store *ps, const mdht_id *ih, int family,
                      mdht_addr *out, size_t max, mdht_time now) {
  return mdht_peers_get_noseed(ps, ih, family, false, out, max, now);
}

size_t mdht_peers_get_noseed(mdht_peer_store *ps, const mdht_id *ih, int family,
                             bool noseed, mdht_addr *out, size_t max,
                             mdht_time now) {
  if (!ps || !tbl(ps) || !ih || !out || max == 0) return 0;
  uint32_t d = ih_find(ps, ih);
  if (d == UINT32_MAX) return 0;
  const ih_ent *e = &tbl(ps)->ents[d];
  if (!noseed) {
    size_t seen = sample_peers(ps, e, family, -1, out, max, now);
    return seen < max ? seen : max;
  }
  /* BEP 33 noseed: downloaders first, seeds only to fill what is left. */
  size_t n = sample_peers(ps, e, family, 0, out, max, now);
  if (n >= max) return max;
  size_t m = sample_peers(ps, e, family, 1, out + n, max - n, now);
  return n + (m < max - n ? m : max - n);
}

size_t mdht_peers_scrape(const mdht_peer_store *ps, const mdht_id *ih,
                         mdht_time now, mdht_bloom *seeds,
                         mdht_bloom *downloaders) {
  mdht_bloom_clear(seeds);
  mdht_bloom_clear(downloaders);
  if (!ps || !tbl(ps) || !ih) return 0;
  uint32_t d = ih_find(ps, ih);
  if (d == UINT32_MAX) return 0;
  const ih_ent *e = &tbl(ps)->ents[d];
  size_t live = 0;
  for (uint32_t i = 0; i < e->n; i++) {
    const mdht_peer *pr = &e->peers[i];
    if (pr->expires <= now) continue;
    mdht_bloom_set(pr->seed ? seeds : downloaders, pr->bloom_);
    live++;
  }
  return live;
}

/* Expired peers of info-hash d go; returns how many. */
static size_t expire_ent(mdht_peer_store *ps, uint32_t d, mdht_time now) {
  table *t = tbl(ps);
  size_t dropped = 0;
  /* Downwards: removing peer i moves the last (already checked) one into
   * i. */
  for (uint32_t i = t->ents[d].n; i-- > 0;) {
    if (t->ents[d].peers[i].expires > now) continue;
    rec_unlink(ps, d, i, now);
    dropped++;
  }
  ih_ent *e = &t->ents[d];
  recompute_min(e);
  /* Give back memory after a swarm shrinks, with hysteresis so that an
   * array does not bounce between sizes. */
  if (e->n > 0 && e->cap > MIN_PEERS && e->n <= e->cap / 4) {
    uint32_t cap = e->cap / 2;
    mdht_peer *peers = realloc(e->peers, cap * sizeof *peers);
    if (peers) {
      e->peers = peers;
      e->cap = cap;
    }
  }
  return dropped;
}

size_t mdht_peers_expire(mdht_peer_store *ps, mdht_time now) {
  if (!ps || !tbl(ps)) return 0;
  table *t = tbl(ps);
  size_t dropped = 0;
  mdht_time next = UINT64_MAX;
  /* Downwards, because dropping index d moves the last (already visited)
   * info-hash into d. */
  for (uint32_t d = ps->nih; d-- > 0;) {
    if (t->ents[d].min_exp > now) {
      if (t->ents[d].min_exp < next) next = t->ents[d].min_exp;
      continue;
    }
    dropped += expire_ent(ps, d, now);
    if (t->ents[d].n == 0) {
      drop_ent(ps, d);
      continue;
    }
    if (t->ents[d].min_exp < next) next = t->ents[d].min_exp;
  }
  ps->next_expiry = next;
  return dropped;
}

size_t mdht_peers_sample(mdht_peer_store *ps, mdht_id *out, size_t max) {
  if (!ps || !tbl(ps) || !out) return 0;
  const table *t = tbl(ps);
  uint32_t k = max < ps->nih ? (uint32_t)max : ps->nih;
  /* Floyd's sampling: k distinct positions without moving entries (a
   * move would have to fix every reference to the entry's peers). */
  for (uint32_t j = ps->nih - k, got = 0; j < ps->nih; j++, got++) {
    uint32_t r = rng_below(ps, j + 1);
    for (uint32_t i = 0; i < got; i++)
      if (memcmp(out[i].b, t->ents[r].ih.b, MDHT_ID_LEN) == 0) {
        r = j;
        break;
      }
    out[got] = t->ents[r].ih;
  }
  return k;
}

int mdht_peers_find(const mdht_peer_store *ps, const mdht_id *ih,
                    const mdht_addr *peer, mdht_peer *out) {
  if (!ps || !tbl(ps) || !ih || !peer) return MDHT_ERR_NOTFOUND;
  uint32_t d = ih_find(ps, ih);
  if (d == UINT32_MAX) return MDHT_ERR_NOTFOUND;
  const ih_ent *e = &tbl(ps)->ents[d];
  mdht_addr a = canonical(peer);
  for (uint32_t i = 0; i < e->n; i++) {
    if (mdht_addr_eq(&e->peers[i].addr, &a)) {
      if (out) *out = e->peers[i];
      return 0;
    }
  }
  return MDHT_ERR_NOTFOUND;
}

uint32_t mdht_peers_of_ip(const mdht_peer_store *ps, const mdht_addr *ip) {
  if (!ps || !tbl(ps) || !ip) return 0;
  mdht_addr a = canonical(ip);
  uint32_t s = src_find(ps, &a);
  return s == UINT32_MAX ? 0 : tbl(ps)->srcs[s].n;
}

/* ------------------------------------------------ persistence (state.c) */

int mdht_peers_foreach(const mdht_peer_store *ps, mdht_peers_group_cb fn,
                       void *user) {
  if (!ps || !tbl(ps) || !fn) return 0;
  const table *t = tbl(ps);
  for (uint32_t d = 0; d < ps->nih; d++) {
    int rc = fn(&t->ents[d].ih, t->ents[d].peers, t->ents[d].n, user);
    if (rc) return rc;
  }
  return 0;
}

/* The record of a's IP under info-hash d, if any, takes the new port,
 * seed flag and expiry (unless it already outlives `np`: a restored
 * record never overrides a live announce that arrived first). Returns
 * whether there was one. */
static bool refresh(mdht_peer_store *ps, uint32_t d, const mdht_peer *np,
                    mdht_time now) {
  ih_ent *e = &tbl(ps)->ents[d];
  for (uint32_t i = 0; i < e->n; i++) {
    mdht_peer *p = &e->peers[i];
    if (!mdht_addr_ip_eq(&p->addr, &np->addr)) continue;
    if (p->expires <= np->expires) {
      p->addr = np->addr;
      p->seed = np->seed;
      p->expires = np->expires;
    }
    /* Already a linear pass: keep min_exp exact, as expire promises. */
    recompute_min(e);
    if (p->expires > e->max_exp) e->max_exp = p->expires;
    publish(ps, MDHT_EV_PEER_STORED, &e->ih, &p->addr, e->n, now);
    return true;
  }
  return false;
}

/* Frees what a new record of `a` under `ih` needs, by the rules of
 * peers.h; returns the info-hash's dense index (created if new) or
 * UINT32_MAX when out of memory. */
static uint32_t make_room(mdht_peer_store *ps, const mdht_id *ih,
                          const mdht_addr *a, mdht_time now) {
  const mdht_config *cfg = ps->cfg;
  const table *t = tbl(ps);
  /* At its quota, the source's own stalest record gives way. */
  uint32_t s = src_find(ps, a);
  if (s != UINT32_MAX && cfg->max_ih_per_ip &&
      t->srcs[s].n >= cfg->max_ih_per_ip)
    evict_stalest_of(ps, s, false, now);
  uint32_t d = ih_find(ps, ih);
  if (d != UINT32_MAX && t->ents[d].n >= cfg->max_peers_per_ih) {
    /* A full swarm: one of its records makes way, same total. */
    rec_unlink(ps, d, swarm_victim(ps, d), now);
    recompute_min(&tbl(ps)->ents[d]);
    return d;
  }
  while (d != UINT32_MAX && cfg->max_peers && ps->npeers >= cfg->max_peers) {
    evict_record(ps, now);
    d = ih_find(ps, ih); /* moved, or gone with its last record */
  }
  if (d != UINT32_MAX) return d;
  /* A new swarm makes room the way a new info-hash does, at either
   * bound: an evicted single-peer info-hash frees a record too. */
  while (ps->nih > 0 && (ps->nih >= cfg->max_infohashes ||
                         (cfg->max_peers && ps->npeers >= cfg->max_peers)))
    evict_ih(ps, now);
  return insert_ih(ps, ih);
}

/*
 * The same store-or-refresh as mdht_peers_add, with the expiry chosen by
 * the caller: a peer restored from saved state keeps the lifetime it had
 * left, rather than getting a fresh TTL it was never announced for. The
 * expiry is capped at now + peer_ttl_ms so that a file written under a
 * longer TTL (or a wall clock that jumped back) cannot make a peer outlive
 * what this node promises.
 */
int mdht_peers_add_until(mdht_peer_store *ps, const mdht_id *ih,
                         const mdht_addr *peer, bool seed, mdht_time expires,
                         mdht_time now) {
  if (!ps || !ps->cfg || !ih || !peer) return MDHT_ERR_INVAL;
  if (expires <= now) return MDHT_ERR_RANGE;
  if (mdht_addr_is_martian(peer)) return MDHT_ERR_ADDR;
  const mdht_config *cfg = ps->cfg;
  if (cfg->max_infohashes == 0 || cfg->max_peers_per_ih == 0)
    return MDHT_ERR_FULL;
  if (!tbl(ps) && table_new(ps) != 0) return MDHT_ERR_NOMEM;
  mdht_time cap = now + cfg->peer_ttl_ms;
  if (cap < now || cap == UINT64_MAX) cap = UINT64_MAX - 1;
  mdht_peer np = {.addr = canonical(peer),
                  .expires = expires < cap ? expires : cap,
                  .seed = seed};

  uint32_t d = ih_find(ps, ih);
  if (d != UINT32_MAX && refresh(ps, d, &np, now)) return 0;
  /* A new record: its IP is hashed for the scrape filters now, once, not
   * on every scrape=1 get_peers (the IP never changes for the record). */
  mdht_bloom_indexes(&np.addr, np.bloom_);
  /* A full swarm takes a restored peer only if it outlives the record it
   * would replace (an announce always does); checked before anything is
   * evicted for it. */
  if (d != UINT32_MAX && tbl(ps)->ents[d].n >= cfg->max_peers_per_ih) {
    const ih_ent *e = &tbl(ps)->ents[d];
    if (e->peers[swarm_victim(ps, d)].expires >= np.expires)
      return MDHT_ERR_FULL;
  }
  d = make_room(ps, ih, &np.addr, now);
  uint32_t s = d == UINT32_MAX ? UINT32_MAX : src_get(ps, &np.addr);
  int err = s == UINT32_MAX ? MDHT_ERR_NOMEM : reserve_rec(ps, d, s);
  if (err) {
    /* Leave no empty entry behind. */
    if (s != UINT32_MAX && tbl(ps)->srcs[s].n == 0) src_drop(ps, s);
    if (d != UINT32_MAX && tbl(ps)->ents[d].n == 0) drop_ent(ps, d);
    return err;
  }
  rec_link(ps, d, s, np);
  const ih_ent *e = &tbl(ps)->ents[d];
  publish(ps, MDHT_EV_PEER_STORED, &e->ih, &np.addr, e->n, now);
  return 0;
}

size_t mdht_peers_bytes(const mdht_peer_store *ps) {
  const table *t = ps->table_;
  if (!t) return 0;
  size_t b =
      sizeof *t + (t->ihx.mask + 1 + t->srcx.mask + 1) * sizeof(uint32_t);
  b += t->ents_cap * sizeof *t->ents;
  b += t->srcs_cap * (sizeof *t->srcs + 2 * sizeof(uint32_t));
  for (uint32_t i = 0; i < ps->nih; i++)
    b += t->ents[i].cap * sizeof(mdht_peer);
  for (uint32_t i = 0; i < ps->nsrc; i++)
    b += t->srcs[i].cap * sizeof(rec_ref);
  return b;
}
