#include "peers.h"
#include "hash.h"
#include "addr.h"

#include <stdlib.h>
#include <string.h>

/*
 * Layout: the info-hashes live in a dense array (`ents`), so that random
 * sampling (BEP 51, eviction) is O(1) per pick; an open-addressing index
 * (`slots`, linear probing, load <= 1/2, backward-shift deletion so no
 * tombstones accumulate) maps an info-hash to its position. Removing an
 * info-hash moves the last one into its place.
 *
 * Each info-hash owns a growable array of peers, at most max_peers_per_ih,
 * scanned linearly: it is small and every announce already has to look
 * for a duplicate.
 */

#define MIN_SLOTS 16u
#define MIN_PEERS 4u
/* Info-hashes inspected to pick one to evict. More is closer to true LRU,
 * fewer is cheaper; with 8, the victim comes from the more recently
 * announced half of the store only if all 8 picks do: 1 in 256. */
#define EVICT_SAMPLE 8u

typedef struct ih_ent {
  mdht_id ih;
  uint32_t hash;
  uint32_t n, cap;
  mdht_peer *peers;
  mdht_time min_exp; /* earliest expiry among peers, kept exact */
  mdht_time max_exp; /* latest expiry: the last announce plus the TTL */
} ih_ent;

typedef struct table {
  uint32_t *slots; /* 0 = empty, else index into ents + 1 */
  uint32_t mask;
  ih_ent *ents;
  uint32_t ents_cap;
} table;

/* ------------------------------------------------------------ hashing */

/* Info-hashes are chosen by whoever announces, so the index needs a keyed
 * hash that an attacker cannot aim collisions at. */
static uint32_t ih_hash(uint64_t seed, const mdht_id *ih) {
  uint64_t h = mdht_hash(seed, ih->b, MDHT_ID_LEN);
  return (uint32_t)(h ^ (h >> 32));
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

/* Slot position holding `ih`, or UINT32_MAX. */
static uint32_t slot_find(const table *t, uint32_t h, const mdht_id *ih) {
  for (uint32_t p = h & t->mask;; p = (p + 1) & t->mask) {
    uint32_t s = t->slots[p];
    if (!s) return UINT32_MAX;
    const ih_ent *e = &t->ents[s - 1];
    if (e->hash == h && memcmp(e->ih.b, ih->b, MDHT_ID_LEN) == 0) return p;
  }
}

/* Slot position holding the value `d + 1`; it must exist. */
static uint32_t slot_of_index(const table *t, uint32_t d) {
  uint32_t p = t->ents[d].hash & t->mask;
  while (t->slots[p] != d + 1)
    p = (p + 1) & t->mask;
  return p;
}

static void slot_put(table *t, uint32_t h, uint32_t value) {
  uint32_t p = h & t->mask;
  while (t->slots[p])
    p = (p + 1) & t->mask;
  t->slots[p] = value;
}

/* Backward-shift deletion: later entries of the probe run move up unless
 * their home position lies cyclically in (hole, their position]. */
static void slot_delete(table *t, uint32_t hole) {
  uint32_t j = hole;
  for (;;) {
    j = (j + 1) & t->mask;
    uint32_t s = t->slots[j];
    if (!s) break;
    uint32_t home = t->ents[s - 1].hash & t->mask;
    bool stays =
        hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    t->slots[hole] = s;
    hole = j;
  }
  t->slots[hole] = 0;
}

static int table_resize(mdht_peer_store *ps, uint32_t nslots) {
  table *t = tbl(ps);
  uint32_t *slots = calloc(nslots, sizeof *slots);
  if (!slots) return MDHT_ERR_NOMEM;
  free(t->slots);
  t->slots = slots;
  t->mask = nslots - 1;
  ps->cap_ = nslots;
  for (uint32_t d = 0; d < ps->nih; d++)
    slot_put(t, t->ents[d].hash, d + 1);
  return 0;
}

/* Room for one more info-hash: dense array and index (load <= 1/2). */
static int reserve_ih(mdht_peer_store *ps) {
  table *t = tbl(ps);
  if (ps->nih == t->ents_cap) {
    uint64_t cap = t->ents_cap ? (uint64_t)t->ents_cap * 2 : MIN_SLOTS;
    if (cap > ps->cfg->max_infohashes) cap = ps->cfg->max_infohashes;
    if (cap <= ps->nih) cap = (uint64_t)ps->nih + 1;
    if (cap > UINT32_MAX / 4) return MDHT_ERR_NOMEM;
    ih_ent *ents = realloc(t->ents, (size_t)cap * sizeof *ents);
    if (!ents) return MDHT_ERR_NOMEM;
    t->ents = ents;
    t->ents_cap = (uint32_t)cap;
  }
  if (((uint64_t)ps->nih + 1) * 2 > ps->cap_) {
    uint64_t n = (uint64_t)ps->cap_ * 2;
    if (n > UINT32_MAX / 2) return MDHT_ERR_NOMEM;
    return table_resize(ps, (uint32_t)n);
  }
  return 0;
}

static void swap_ents(table *t, uint32_t a, uint32_t b) {
  if (a == b) return;
  uint32_t pa = slot_of_index(t, a), pb = slot_of_index(t, b);
  ih_ent tmp = t->ents[a];
  t->ents[a] = t->ents[b];
  t->ents[b] = tmp;
  t->slots[pa] = b + 1;
  t->slots[pb] = a + 1;
}

/* Removes info-hash d (its peers must already be accounted for). */
static void drop_ent(mdht_peer_store *ps, uint32_t d) {
  table *t = tbl(ps);
  slot_delete(t, slot_of_index(t, d));
  free(t->ents[d].peers);
  uint32_t last = --ps->nih;
  if (d != last) {
    t->ents[d] = t->ents[last];
    t->slots[slot_of_index(t, last)] = d + 1;
  }
  if (ps->nih == 0) ps->next_expiry = UINT64_MAX;
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

/* --------------------------------------------------------------- store */

int mdht_peers_init(mdht_peer_store *ps, const mdht_config *cfg, mdht_bus *bus,
                    uint64_t hash_seed, uint64_t rng_seed) {
  if (!ps) return MDHT_ERR_INVAL;
  memset(ps, 0, sizeof *ps);
  ps->next_expiry = UINT64_MAX;
  if (!cfg) return MDHT_ERR_INVAL;
  table *t = calloc(1, sizeof *t);
  uint32_t *slots = calloc(MIN_SLOTS, sizeof *slots);
  if (!t || !slots) {
    free(t);
    free(slots);
    return MDHT_ERR_NOMEM;
  }
  t->slots = slots;
  t->mask = MIN_SLOTS - 1;
  ps->table_ = t;
  ps->cap_ = MIN_SLOTS;
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
    free(t->ents);
    free(t->slots);
    free(t);
  }
  ps->table_ = NULL;
  ps->cap_ = ps->nih = ps->npeers = 0;
  ps->next_expiry = UINT64_MAX;
}

/*
 * At max_infohashes, a new info-hash evicts another rather than being
 * refused. Refusing would let whoever fills the store first keep it for
 * as long as they re-announce, and no new swarm could be tracked; the
 * store is a cache of recent announces, which swarms repeat every 15-30
 * minutes anyway. The victim is the stalest (oldest last announce) of a
 * few random info-hashes: approximate LRU in O(1), without a global order
 * to maintain, and an attacker who cannot predict the sample cannot aim at
 * one info-hash. Its peers are reported as PEER_EXPIRED.
 */
static void evict_one(mdht_peer_store *ps, mdht_time now) {
  table *t = tbl(ps);
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
  ih_ent *e = &t->ents[victim];
  while (e->n > 0) {
    e->n--;
    ps->npeers--;
    publish(ps, MDHT_EV_PEER_EXPIRED, &e->ih, &e->peers[e->n].addr, e->n, now);
  }
  drop_ent(ps, victim);
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

static void recompute_min(ih_ent *e) {
  e->min_exp = UINT64_MAX;
  for (uint32_t i = 0; i < e->n; i++)
    if (e->peers[i].expires < e->min_exp) e->min_exp = e->peers[i].expires;
}

/* New info-hash at dense index nih, with room for its first peers. */
static int insert_ih(mdht_peer_store *ps, const mdht_id *ih, uint32_t h,
                     mdht_time now, ih_ent **out) {
  uint32_t maxp = ps->cfg->max_peers_per_ih;
  uint32_t pcap = maxp < MIN_PEERS ? maxp : MIN_PEERS;
  mdht_peer *peers = malloc(pcap * sizeof *peers);
  if (!peers) return MDHT_ERR_NOMEM;
  /* Evicting first is safe: at the bound the arrays already have room,
   * so nothing after this point allocates, and a failure cannot leave
   * the store short of an info-hash for nothing. */
  while (ps->nih >= ps->cfg->max_infohashes && ps->nih > 0)
    evict_one(ps, now);
  int err = reserve_ih(ps);
  if (err) {
    free(peers);
    return err;
  }
  table *t = tbl(ps);
  uint32_t d = ps->nih++;
  t->ents[d] = (ih_ent){
      .ih = *ih, .hash = h, .cap = pcap, .peers = peers, .min_exp = UINT64_MAX};
  slot_put(t, h, d + 1);
  *out = &t->ents[d];
  return 0;
}

int mdht_peers_add(mdht_peer_store *ps, const mdht_id *ih,
                   const mdht_addr *peer, bool seed, mdht_time now) {
  if (!ps) return MDHT_ERR_INVAL;
  /* An announce is a record that lives the full TTL from now. */
  mdht_time exp = now + ps->cfg->peer_ttl_ms;
  if (exp < now || exp == UINT64_MAX) exp = UINT64_MAX - 1;
  return mdht_peers_add_until(ps, ih, peer, seed, exp, now);
}

size_t mdht_peers_get(mdht_peer_store *ps, const mdht_id *ih, int family,
                      mdht_addr *out, size_t max, mdht_time now) {
  if (!ps || !tbl(ps) || !ih || !out || max == 0) return 0;
  table *t = tbl(ps);
  uint32_t p = slot_find(t, ih_hash(ps->hash_seed, ih), ih);
  if (p == UINT32_MAX) return 0;
  const ih_ent *e = &t->ents[t->slots[p] - 1];
  /* Reservoir sampling: one pass, no scratch memory, and every subset of
   * `max` eligible peers equally likely. */
  size_t seen = 0;
  for (uint32_t i = 0; i < e->n; i++) {
    const mdht_peer *pr = &e->peers[i];
    if (pr->expires <= now || (family && pr->addr.family != family)) continue;
    if (seen < max) {
      out[seen] = pr->addr;
    } else {
      uint32_t j = rng_below(ps, (uint32_t)seen + 1);
      if (j < max) out[j] = pr->addr;
    }
    seen++;
  }
  return seen < max ? seen : max;
}

size_t mdht_peers_expire(mdht_peer_store *ps, mdht_time now) {
  if (!ps || !tbl(ps)) return 0;
  table *t = tbl(ps);
  size_t dropped = 0;
  mdht_time next = UINT64_MAX;
  /* Downwards, because dropping index d moves the last (already visited)
   * info-hash into d. */
  for (uint32_t d = ps->nih; d-- > 0;) {
    ih_ent *e = &t->ents[d];
    if (e->min_exp > now) {
      if (e->min_exp < next) next = e->min_exp;
      continue;
    }
    /* Partition: live peers first, expired ones after e->n, where they
     * stay readable for the events. */
    uint32_t n = e->n, k = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (e->peers[i].expires <= now) continue;
      mdht_peer tmp = e->peers[k];
      e->peers[k++] = e->peers[i];
      e->peers[i] = tmp;
    }
    e->n = k;
    ps->npeers -= n - k;
    dropped += n - k;
    recompute_min(e);
    for (uint32_t i = k; i < n; i++)
      publish(ps, MDHT_EV_PEER_EXPIRED, &e->ih, &e->peers[i].addr, k, now);
    if (k == 0) {
      drop_ent(ps, d);
      continue;
    }
    /* Give back memory after a swarm shrinks, with hysteresis so that an
     * array does not bounce between sizes. */
    if (e->cap > MIN_PEERS && k <= e->cap / 4) {
      uint32_t cap = e->cap / 2;
      mdht_peer *peers = realloc(e->peers, cap * sizeof *peers);
      if (peers) {
        e->peers = peers;
        e->cap = cap;
      }
    }
    if (e->min_exp < next) next = e->min_exp;
  }
  ps->next_expiry = next;
  return dropped;
}

size_t mdht_peers_sample(mdht_peer_store *ps, mdht_id *out, size_t max) {
  if (!ps || !tbl(ps) || !out) return 0;
  table *t = tbl(ps);
  uint32_t k = max < ps->nih ? (uint32_t)max : ps->nih;
  /* Partial Fisher-Yates over the dense array; its order means nothing,
   * so the permutation can stay. */
  for (uint32_t i = 0; i < k; i++) {
    swap_ents(t, i, i + rng_below(ps, ps->nih - i));
    out[i] = t->ents[i].ih;
  }
  return k;
}

int mdht_peers_find(const mdht_peer_store *ps, const mdht_id *ih,
                    const mdht_addr *peer, mdht_peer *out) {
  if (!ps || !tbl(ps) || !ih || !peer) return MDHT_ERR_NOTFOUND;
  const table *t = tbl(ps);
  uint32_t p = slot_find(t, ih_hash(ps->hash_seed, ih), ih);
  if (p == UINT32_MAX) return MDHT_ERR_NOTFOUND;
  const ih_ent *e = &t->ents[t->slots[p] - 1];
  mdht_addr a = canonical(peer);
  for (uint32_t i = 0; i < e->n; i++) {
    if (mdht_addr_eq(&e->peers[i].addr, &a)) {
      if (out) *out = e->peers[i];
      return 0;
    }
  }
  return MDHT_ERR_NOTFOUND;
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
  if (!ps || !tbl(ps) || !ih || !peer) return MDHT_ERR_INVAL;
  if (expires <= now) return MDHT_ERR_RANGE;
  if (mdht_addr_is_martian(peer)) return MDHT_ERR_ADDR;
  const mdht_config *cfg = ps->cfg;
  if (cfg->max_infohashes == 0 || cfg->max_peers_per_ih == 0)
    return MDHT_ERR_FULL;
  mdht_addr a = canonical(peer);
  mdht_time cap = now + cfg->peer_ttl_ms;
  if (cap < now || cap == UINT64_MAX) cap = UINT64_MAX - 1;
  mdht_time exp = expires < cap ? expires : cap;

  table *t = tbl(ps);
  uint32_t h = ih_hash(ps->hash_seed, ih);
  uint32_t p = slot_find(t, h, ih);
  ih_ent *e;
  if (p != UINT32_MAX) {
    e = &t->ents[t->slots[p] - 1];
  } else {
    /* At the bound on all peers, a new swarm makes room the way a new
     * info-hash does at the bound on info-hashes: the stalest of a few
     * sampled swarms goes. Done before the insert, so that the new,
     * empty entry cannot be the one picked. */
    while (cfg->max_peers && ps->npeers >= cfg->max_peers && ps->nih > 0)
      evict_one(ps, now);
    int err = insert_ih(ps, ih, h, now, &e);
    if (err) return err;
    t = tbl(ps);
  }
  /* A known swarm at the bound on all peers behaves as if it were full:
   * a new peer takes the place of its peer closest to expiry. */
  uint32_t room = cfg->max_peers_per_ih;
  if (cfg->max_peers && ps->npeers >= cfg->max_peers && e->n > 0 &&
      e->n < room)
    room = e->n;

  uint32_t dup = UINT32_MAX, soonest = 0;
  mdht_time min_other = UINT64_MAX;
  for (uint32_t i = 0; i < e->n; i++) {
    if (mdht_addr_eq(&e->peers[i].addr, &a)) {
      dup = i;
    } else if (e->peers[i].expires < min_other) {
      min_other = e->peers[i].expires;
      soonest = i;
    }
  }

  mdht_peer np = {.addr = a, .expires = exp, .seed = seed};
  if (dup != UINT32_MAX) {
    /* A restored record never shortens one already stored (a live
     * announce that arrived first knows better). */
    if (e->peers[dup].expires > exp) np.expires = e->peers[dup].expires;
    e->peers[dup] = np;
    e->min_exp = min_other < np.expires ? min_other : np.expires;
  } else if (e->n < room) {
    if (e->n == e->cap) {
      uint64_t ncap = (uint64_t)e->cap * 2;
      if (ncap > cfg->max_peers_per_ih) ncap = cfg->max_peers_per_ih;
      mdht_peer *peers = realloc(e->peers, (size_t)ncap * sizeof *peers);
      if (!peers) return MDHT_ERR_NOMEM;
      e->peers = peers;
      e->cap = (uint32_t)ncap;
    }
    e->peers[e->n++] = np;
    ps->npeers++;
    e->min_exp = min_other < exp ? min_other : exp;
  } else if (min_other < exp) {
    /* Full: the restored peer replaces the one closest to expiry, as an
     * announce would, but only if it would outlive it. */
    mdht_addr old = e->peers[soonest].addr;
    e->peers[soonest] = np;
    recompute_min(e);
    publish(ps, MDHT_EV_PEER_EXPIRED, &e->ih, &old, e->n, now);
  } else {
    return MDHT_ERR_FULL;
  }
  if (np.expires > e->max_exp) e->max_exp = np.expires;
  if (e->min_exp < ps->next_expiry) ps->next_expiry = e->min_exp;
  publish(ps, MDHT_EV_PEER_STORED, &e->ih, &a, e->n, now);
  return 0;
}
