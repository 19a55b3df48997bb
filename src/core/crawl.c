/* The BEP 51 crawler. See crawl.h. */
#include "crawl.h"
#include "addr.h"
#include "hash.h"
#include "id.h"

#include <stdlib.h>
#include <string.h>

enum {
  C_NEW,    /* never asked */
  C_ASKING, /* a query is in flight */
  C_WAIT,   /* answered; asked again at next_at */
  C_DONE    /* answered for good, failed or unsupported */
};

typedef struct cand {
  mdht_id id;
  mdht_addr addr;
  mdht_time next_at; /* C_WAIT */
  uint8_t state;
  uint8_t visits; /* queries sent to it */
} cand;

typedef struct inflight {
  uint32_t slot;
  mdht_time sent;
} inflight;

/* Host index: open addressing, candidate index + 1 (0 = empty); never
 * shrinks, since candidates are never removed. */
#define HOST_SLOTS (2 * MDHT_CRAWL_MAX_NODES)
#define SEEN_MIN_SLOTS 1024
/* Finest region level for targets: 2^10 regions, for 2,048 candidates. */
#define MDHT_CRAWL_LEVELS 10

struct mdht_crawl {
  mdht_crawl_params p;
  mdht_crawl_cbs cb;
  cand *cands;
  uint32_t ncands;
  uint32_t next_new; /* no C_NEW candidate before this index */
  uint32_t *hosts;
  mdht_id *seen; /* all-zero = empty slot; the zero id is kept aside */
  uint32_t seen_slots, seen_limit;
  bool seen_zero;
  inflight fly[MDHT_CRAWL_MAX_INFLIGHT];
  uint32_t nfly;
  uint32_t nwait;
  mdht_time next_revisit; /* earliest C_WAIT next_at, UINT64_MAX if none */
  uint32_t nsent;         /* picks the target: own id or a region */
  /* Candidates per id prefix of 1..MDHT_CRAWL_LEVELS bits: level L's
   * 2^L counters start at cover[2^L - 2]. */
  uint16_t cover[(2u << MDHT_CRAWL_LEVELS) - 2];
  mdht_crawl_stats st;
  mdht_crawl_end end;
};

int mdht_crawl_new(mdht_crawl **out, const mdht_crawl_params *p,
                   const mdht_crawl_cbs *cb) {
  if (!out || !p || !cb || !cb->send || !cb->random || p->alpha == 0 ||
      p->k == 0)
    return MDHT_ERR_INVAL;
  mdht_crawl *c = calloc(1, sizeof *c);
  if (!c) return MDHT_ERR_NOMEM;
  c->p = *p;
  c->cb = *cb;
  c->seen_limit =
      p->max > 0 && p->max < MDHT_CRAWL_MAX_SEEN ? p->max : MDHT_CRAWL_MAX_SEEN;
  c->seen_slots = SEEN_MIN_SLOTS;
  c->cands = calloc(MDHT_CRAWL_MAX_NODES, sizeof *c->cands);
  c->hosts = calloc(HOST_SLOTS, sizeof *c->hosts);
  c->seen = calloc(c->seen_slots, sizeof *c->seen);
  c->next_revisit = UINT64_MAX;
  if (!c->cands || !c->hosts || !c->seen) {
    mdht_crawl_del(c);
    return MDHT_ERR_NOMEM;
  }
  *out = c;
  return 0;
}

void mdht_crawl_del(mdht_crawl *c) {
  if (!c) return;
  free(c->cands);
  free(c->hosts);
  free(c->seen);
  free(c);
}

static void cover_add(mdht_crawl *c, const mdht_id *id);

/* ------------------------------------------------------------- hosts */

/* The part of an address that names its host for "one host, one
 * candidate": IP and port, IP, or the public /24 or /64. */
static size_t host_key(const mdht_crawl *c, const mdht_addr *a,
                       uint8_t key[19]) {
  size_t iplen = a->family == MDHT_AF_INET ? 4 : 16;
  size_t n = iplen;
  if (!c->p.allow_same_prefix && !mdht_addr_is_private(a))
    n = a->family == MDHT_AF_INET ? 3 : 8;
  key[0] = a->family;
  memcpy(key + 1, a->ip, n);
  if (c->p.allow_same_ip && n == iplen) {
    key[1 + n] = (uint8_t)(a->port >> 8);
    key[2 + n] = (uint8_t)a->port;
    n += 2;
  }
  return n + 1;
}

/* The host slot of `a`: where its candidate is, or the empty slot where
 * it would go. */
static uint32_t host_slot(const mdht_crawl *c, const mdht_addr *a) {
  uint8_t key[19], other[19];
  size_t n = host_key(c, a, key);
  uint32_t i = (uint32_t)mdht_hash(c->p.hash_seed, key, n) & (HOST_SLOTS - 1);
  for (;; i = (i + 1) & (HOST_SLOTS - 1)) {
    uint32_t v = c->hosts[i];
    if (v == 0) return i;
    size_t m = host_key(c, &c->cands[v - 1].addr, other);
    if (m == n && memcmp(key, other, n) == 0) return i;
  }
}

int mdht_crawl_add(mdht_crawl *c, const mdht_id *id, const mdht_addr *addr) {
  if (!c || !id || !addr) return MDHT_ERR_INVAL;
  if (addr->family != c->p.family || mdht_addr_is_martian(addr) ||
      mdht_id_eq(id, &c->p.self))
    return MDHT_ERR_ADDR;
  uint32_t h = host_slot(c, addr);
  if (c->hosts[h]) return MDHT_ERR_EXISTS;
  if (c->ncands >= MDHT_CRAWL_MAX_NODES) {
    c->st.dropped++;
    return MDHT_ERR_FULL;
  }
  cand *e = &c->cands[c->ncands];
  memset(e, 0, sizeof *e);
  e->id = *id;
  e->addr = *addr;
  e->state = C_NEW;
  c->hosts[h] = ++c->ncands;
  cover_add(c, id);
  c->st.nodes = c->ncands;
  return 0;
}

/* -------------------------------------------------------- info-hashes */

static bool is_zero(const mdht_id *id) {
  static const mdht_id zero;
  return mdht_id_eq(id, &zero);
}

static uint32_t seen_slot(const mdht_crawl *c, const mdht_id *ih) {
  uint32_t mask = c->seen_slots - 1;
  uint32_t i = (uint32_t)mdht_hash(c->p.hash_seed, ih->b, MDHT_ID_LEN) & mask;
  while (!is_zero(&c->seen[i]) && !mdht_id_eq(&c->seen[i], ih))
    i = (i + 1) & mask;
  return i;
}

/* Doubles the set (load stays at most one half). False: out of memory,
 * the set stays as it was. */
static bool seen_grow(mdht_crawl *c) {
  mdht_id *old = c->seen;
  uint32_t n = c->seen_slots;
  mdht_id *t = calloc((size_t)n * 2, sizeof *t);
  if (!t) return false;
  c->seen = t;
  c->seen_slots = n * 2;
  for (uint32_t i = 0; i < n; i++)
    if (!is_zero(&old[i])) c->seen[seen_slot(c, &old[i])] = old[i];
  free(old);
  return true;
}

/* Remembers `ih`: true if it is new. An info-hash that cannot be
 * remembered (no memory) is not reported, so that none is reported
 * twice. */
static bool seen_add(mdht_crawl *c, const mdht_id *ih) {
  if (is_zero(ih)) {
    if (c->seen_zero) return false;
    c->seen_zero = true;
    return true;
  }
  uint32_t i = seen_slot(c, ih);
  if (!is_zero(&c->seen[i])) return false;
  if ((c->st.distinct + 1) * 2 > c->seen_slots) {
    if (!seen_grow(c)) return false;
    i = seen_slot(c, ih);
  }
  c->seen[i] = *ih;
  return true;
}

/* ------------------------------------------------------------ queries */

static uint32_t fresh_in_flight(const mdht_crawl *c, mdht_time now) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < c->nfly; i++)
    if (now < c->fly[i].sent + c->p.soft_timeout) n++;
  return n;
}

/* The next candidate to ask: a revisit that is due, else the oldest
 * unasked one. UINT32_MAX if none. */
static uint32_t pick(mdht_crawl *c, mdht_time now) {
  if (c->nwait > 0 && now >= c->next_revisit) {
    for (uint32_t i = 0; i < c->ncands; i++)
      if (c->cands[i].state == C_WAIT && c->cands[i].next_at <= now) return i;
  }
  while (c->next_new < c->ncands && c->cands[c->next_new].state != C_NEW)
    c->next_new++;
  return c->next_new < c->ncands ? c->next_new : UINT32_MAX;
}

static void recompute_revisit(mdht_crawl *c) {
  c->next_revisit = UINT64_MAX;
  if (c->nwait == 0) return;
  for (uint32_t i = 0; i < c->ncands; i++)
    if (c->cands[i].state == C_WAIT && c->cands[i].next_at < c->next_revisit)
      c->next_revisit = c->cands[i].next_at;
}

/* The target of a query to `e`. A walk that only asks for each node's own
 * neighbourhood, or for random targets, can miss a whole region: in a
 * made-up network of 100 nodes, random subtree targets missed a cluster
 * of 13 nodes under one 3-bit prefix that no answer happened to name. So
 * every other query aims at the least known region: the id prefix of L
 * bits (2^L about half the candidates known, so that each region should
 * hold two) with the fewest candidates, scanned from a rotating start so
 * that ties take turns, and random bits after it. The asked node names the
 * nodes it knows closest to that region. The other queries ask for the
 * node's own id: its neighbours, whom a far node may not know. */
static void pick_target(mdht_crawl *c, const cand *e, mdht_id *target) {
  *target = e->id;
  if (c->nsent++ % 2) return;
  uint32_t level = 1;
  while (level < MDHT_CRAWL_LEVELS && (2u << level) < c->ncands)
    level++;
  const uint16_t *cnt = c->cover + (1u << level) - 2;
  uint32_t n = 1u << level, best = 0, start = (c->nsent * 2654435761u) % n;
  for (uint32_t j = 0; j < n; j++) {
    uint32_t i = (start + j) % n;
    if (j == 0 || cnt[i] < cnt[best]) best = i;
  }
  c->cb.random(c->cb.user, target->b, sizeof target->b);
  for (uint32_t bit = 0; bit < level; bit++) {
    uint8_t m = (uint8_t)(0x80 >> (bit % 8));
    bool one = (best >> (level - 1 - bit)) & 1;
    target->b[bit / 8] =
        (uint8_t)(one ? target->b[bit / 8] | m : target->b[bit / 8] & ~m);
  }
}

/* Counts a new candidate in the region of each level it falls in. */
static void cover_add(mdht_crawl *c, const mdht_id *id) {
  uint32_t prefix = ((uint32_t)id->b[0] << 8 | id->b[1]);
  for (uint32_t level = 1; level <= MDHT_CRAWL_LEVELS; level++) {
    uint16_t *cnt = c->cover + (1u << level) - 2;
    uint16_t *v = &cnt[prefix >> (16 - level)];
    if (*v < UINT16_MAX) (*v)++;
  }
}

static void ask(mdht_crawl *c, uint32_t i, mdht_time now) {
  cand *e = &c->cands[i];
  mdht_id target = e->id;
  if (e->state == C_WAIT) {
    c->nwait--;
    c->st.revisits++;
    e->state = C_NEW; /* so that recompute skips it */
    recompute_revisit(c);
  }
  pick_target(c, e, &target);
  e->visits++;
  c->st.queries++;
  if (c->cb.send(c->cb.user, i, &target, &e->id, &e->addr, now) != 0) {
    e->state = C_DONE;
    c->st.failed++;
    return;
  }
  e->state = C_ASKING;
  c->fly[c->nfly].slot = i;
  c->fly[c->nfly].sent = now;
  c->nfly++;
}

static void check_end(mdht_crawl *c, mdht_time now) {
  if (c->end != MDHT_CRAWL_RUNNING) return;
  if (c->st.distinct >= c->seen_limit) {
    c->end = MDHT_CRAWL_END_MAX;
  } else if (now >= c->p.deadline) {
    c->end = MDHT_CRAWL_END_DEADLINE;
  } else if (c->nfly == 0 && pick(c, now) == UINT32_MAX &&
             (c->nwait == 0 || c->next_revisit >= c->p.deadline)) {
    c->end = MDHT_CRAWL_END_EXHAUSTED;
  }
}

static void pump(mdht_crawl *c, mdht_time now) {
  check_end(c, now);
  while (c->end == MDHT_CRAWL_RUNNING && c->nfly < MDHT_CRAWL_MAX_INFLIGHT &&
         fresh_in_flight(c, now) < c->p.alpha) {
    uint32_t i = pick(c, now);
    if (i == UINT32_MAX) break;
    ask(c, i, now);
  }
  check_end(c, now);
}

void mdht_crawl_tick(mdht_crawl *c, mdht_time now) {
  if (c) pump(c, now);
}

mdht_time mdht_crawl_next_deadline(const mdht_crawl *c) {
  if (!c || c->end != MDHT_CRAWL_RUNNING) return UINT64_MAX;
  mdht_time t = c->p.deadline;
  if (c->next_revisit < t) t = c->next_revisit;
  /* A query turning slow frees its place for another. */
  for (uint32_t i = 0; i < c->nfly; i++) {
    mdht_time s = c->fly[i].sent + c->p.soft_timeout;
    if (s < t) t = s;
  }
  return t;
}

/* Takes query `slot` from `from` off the in-flight list: false if it is
 * not a query of ours in flight (late, forged, or the crawl ended). */
static bool landed(mdht_crawl *c, uint32_t slot, const mdht_addr *from) {
  if (c->end != MDHT_CRAWL_RUNNING || slot >= c->ncands ||
      c->cands[slot].state != C_ASKING ||
      !mdht_addr_eq(&c->cands[slot].addr, from))
    return false;
  for (uint32_t i = 0; i < c->nfly; i++) {
    if (c->fly[i].slot == slot) {
      c->fly[i] = c->fly[--c->nfly];
      return true;
    }
  }
  return false;
}

/* Schedules the next visit of a node that answered with samples, if the
 * interval it gave ends before the deadline and it has visits left. */
static void schedule(mdht_crawl *c, cand *e, int64_t interval, mdht_time now) {
  e->state = C_DONE;
  if (e->visits > MDHT_CRAWL_REVISITS) return;
  int64_t s = interval >= 0 ? interval : MDHT_CRAWL_DEFAULT_INTERVAL_S;
  if (s > MDHT_CRAWL_DEFAULT_INTERVAL_S * 4)
    s = MDHT_CRAWL_DEFAULT_INTERVAL_S * 4;
  mdht_time wait = (mdht_time)s * 1000;
  if (wait < MDHT_CRAWL_MIN_INTERVAL_MS) wait = MDHT_CRAWL_MIN_INTERVAL_MS;
  if (now + wait >= c->p.deadline) return;
  e->state = C_WAIT;
  e->next_at = now + wait;
  c->nwait++;
  if (e->next_at < c->next_revisit) c->next_revisit = e->next_at;
}

static void report(mdht_crawl *c, const mdht_crawl_reply *r,
                   const mdht_addr *from) {
  for (size_t i = 0; i < r->nsamples && c->st.distinct < c->seen_limit; i++) {
    mdht_id ih;
    memcpy(ih.b, r->samples + i * MDHT_ID_LEN, MDHT_ID_LEN);
    c->st.samples++;
    if (!seen_add(c, &ih)) continue;
    c->st.distinct++;
    if (c->cb.found) c->cb.found(c->cb.user, &ih, from);
  }
}

void mdht_crawl_on_response(mdht_crawl *c, uint32_t slot, const mdht_addr *from,
                            const mdht_crawl_reply *r, mdht_time now) {
  if (!c || !from || !r || !landed(c, slot, from)) return;
  cand *e = &c->cands[slot];
  if (r->samples) {
    c->st.answered++;
    schedule(c, e, r->interval, now);
    report(c, r, from);
  } else {
    e->state = C_DONE;
    c->st.unsupported++;
  }
  for (size_t i = 0; i < r->nnodes && i < c->p.k; i++)
    mdht_crawl_add(c, &r->nodes[i].id, &r->nodes[i].addr);
  pump(c, now);
}

void mdht_crawl_on_failure(mdht_crawl *c, uint32_t slot, const mdht_addr *from,
                           int code, mdht_time now) {
  if (!c || !from || !landed(c, slot, from)) return;
  c->cands[slot].state = C_DONE;
  if (code == 204)
    c->st.unsupported++;
  else
    c->st.failed++;
  pump(c, now);
}

mdht_crawl_end mdht_crawl_ended(const mdht_crawl *c) {
  return c ? c->end : MDHT_CRAWL_END_EXHAUSTED;
}

const mdht_crawl_stats *mdht_crawl_get_stats(const mdht_crawl *c) {
  return &c->st;
}
