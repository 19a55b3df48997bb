#include "lookup.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "id.h"

/* Lookup ids carry the slot in the low 16 bits (+1, so that no id is 0)
 * and the slot's generation in the high 16: a report for a lookup that
 * ended finds its slot reused under another id and is ignored. */
#define SLOT_BITS 16
#define MAX_SLOTS 0xffffu
#define SLOTS_INIT 4u

/* Doubles the slot table, up to max_lookups; the generations of the
 * slots there are kept, so ids stay unique. */
static int grow_slots(mdht_lookups *ls) {
  uint32_t cap = ls->cap * 2;
  if (cap > ls->cfg->max_lookups) cap = ls->cfg->max_lookups;
  mdht_lookup **s = realloc(ls->slots, cap * sizeof *s);
  if (!s) return MDHT_ERR_NOMEM;
  ls->slots = s;
  uint16_t *g = realloc(ls->gens, cap * sizeof *g);
  if (!g) return MDHT_ERR_NOMEM; /* the larger slots block is harmless */
  ls->gens = g;
  memset(s + ls->cap, 0, (cap - ls->cap) * sizeof *s);
  memset(g + ls->cap, 0, (cap - ls->cap) * sizeof *g);
  ls->cap = cap;
  return 0;
}

static mdht_lookup *find_slot(const mdht_lookups *ls, uint32_t id) {
  if (!ls || !ls->slots) return NULL;
  uint32_t idx = (id & MAX_SLOTS);
  if (idx == 0 || idx > ls->n_alloc) return NULL;
  mdht_lookup *l = ls->slots[idx - 1];
  if (!l || l->id != id || l->finishing) return NULL;
  return l;
}

static void slot_free(mdht_lookup *l) {
  if (!l) return;
  free(l->cands);
  free(l->tokens);
  free(l->peers);
  free(l);
}

/* A slot for a lookup of `kind`, with room for MDHT_LOOKUP_CANDS_INIT
 * candidates; tokens and peers only for the kinds that keep them. */
static mdht_lookup *slot_new(mdht_method kind) {
  mdht_lookup *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->cap = MDHT_LOOKUP_CANDS_INIT;
  l->cands = malloc(l->cap * sizeof *l->cands);
  bool ok = l->cands != NULL;
  if (ok && kind != MDHT_M_FIND_NODE) {
    l->tokens = malloc(l->cap * sizeof *l->tokens);
    ok = l->tokens != NULL;
  }
  if (ok && kind == MDHT_M_GET_PEERS) {
    l->peers = malloc(MDHT_LOOKUP_MAX_PEERS * sizeof *l->peers);
    ok = l->peers != NULL;
  }
  if (!ok) {
    slot_free(l);
    return NULL;
  }
  return l;
}

/* Room for one more candidate: doubles the arrays when full (up to
 * MDHT_LOOKUP_MAX_CANDS). False when at the maximum or out of memory. */
static bool grow(mdht_lookup *l) {
  if (l->n_cands < l->cap) return true;
  if (l->cap >= MDHT_LOOKUP_MAX_CANDS) return false;
  uint32_t cap = l->cap * 2;
  if (cap > MDHT_LOOKUP_MAX_CANDS) cap = MDHT_LOOKUP_MAX_CANDS;
  mdht_lookup_cand *c = realloc(l->cands, cap * sizeof *c);
  if (!c) return false;
  l->cands = c;
  if (l->tokens) {
    mdht_lookup_token *t = realloc(l->tokens, cap * sizeof *t);
    if (!t) return false; /* cands has the room; cap stays (harmless) */
    l->tokens = t;
  }
  l->cap = cap;
  return true;
}

/* When the query to `c` went out (absolute). */
static mdht_time sent_at(const mdht_lookup *l, const mdht_lookup_cand *c) {
  return l->started + c->sent;
}

int mdht_lookups_init(mdht_lookups *ls, const mdht_config *cfg, mdht_bus *bus,
                      const mdht_lookup_cbs *cbs, const mdht_id *self) {
  if (!ls) return MDHT_ERR_INVAL;
  memset(ls, 0, sizeof *ls);
  if (!cfg || !cbs || !cbs->send || cfg->k == 0 || cfg->k > MDHT_LOOKUP_MAX_K ||
      cfg->alpha == 0 || cfg->alpha > MDHT_LOOKUP_MAX_QUERIES ||
      cfg->max_lookups == 0 || cfg->max_lookups > MAX_SLOTS ||
      cfg->query_timeout_ms == 0 ||
      cfg->query_soft_timeout_ms > cfg->query_timeout_ms)
    return MDHT_ERR_INVAL;
  /* Only the pointers, and only room for a few: a slot exists while its
   * lookup runs, and the pointer table doubles (up to max_lookups) only
   * when more run at once, so that an idle node, or each of the million
   * nodes of a simulation, holds memory for the lookups it runs, not for
   * the most it may run (640 bytes per node at the default 64). */
  ls->cap = cfg->max_lookups < SLOTS_INIT ? cfg->max_lookups : SLOTS_INIT;
  ls->slots = calloc(ls->cap, sizeof *ls->slots);
  ls->gens = calloc(ls->cap, sizeof *ls->gens);
  if (!ls->slots || !ls->gens) {
    free(ls->slots);
    free(ls->gens);
    ls->slots = NULL;
    ls->gens = NULL;
    return MDHT_ERR_NOMEM;
  }
  ls->cfg = cfg;
  ls->soft_ms = cfg->query_soft_timeout_ms;
  ls->bus = bus;
  ls->cb = *cbs;
  if (self) {
    ls->self = *self;
    ls->has_self = true;
  }
  return 0;
}

void mdht_lookups_set_soft_timeout(mdht_lookups *ls, mdht_time ms) {
  if (!ls) return;
  ls->soft_ms =
      ms < ls->cfg->query_soft_timeout_ms ? ms : ls->cfg->query_soft_timeout_ms;
}

void mdht_lookups_free(mdht_lookups *ls) {
  if (!ls) return;
  for (uint32_t i = 0; ls->slots && i < ls->n_alloc; i++)
    slot_free(ls->slots[i]);
  ls->n_alloc = 0;
  free(ls->slots);
  free(ls->gens);
  ls->slots = NULL;
  ls->gens = NULL;
  ls->n_active = 0;
  ls->cap = 0;
}

/* ------------------------------------------------------------ candidates */

static bool usable_addr(const mdht_lookups *ls, const mdht_addr *a) {
  if (a->family != MDHT_AF_INET && a->family != MDHT_AF_INET6) return false;
  if (mdht_addr_is_martian(a)) return false;
  /* On the public internet a private address in a response is at best
   * useless and at worst a way to make us probe someone's LAN. */
  return ls->cfg->allow_private || !mdht_addr_is_private(a);
}

/* Index of the candidate at `a`, or -1. */
static int find_addr(const mdht_lookup *l, const mdht_addr *a) {
  for (uint32_t i = 0; i < l->n_cands; i++)
    if (mdht_addr_eq(&l->cands[i].addr, a)) return (int)i;
  return -1;
}

/* Same /24 (IPv4) or /64 (IPv6). */
static bool same_prefix(const mdht_addr *a, const mdht_addr *b) {
  if (a->family != b->family) return false;
  return memcmp(a->ip, b->ip, a->family == MDHT_AF_INET ? 3 : 8) == 0;
}

/* Would `a` be a second candidate for one host (lookup.h, "One host, one
 * candidate")? One pass over the candidates: the same address, the same IP
 * unless allow_same_ip, the same /24 or /64 of a public address unless
 * allow_same_prefix. */
static bool host_taken(const mdht_lookups *ls, const mdht_lookup *l,
                       const mdht_addr *a) {
  bool by_ip = !ls->cfg->allow_same_ip;
  bool by_prefix = !ls->cfg->allow_same_prefix && !mdht_addr_is_private(a);
  for (uint32_t i = 0; i < l->n_cands; i++) {
    const mdht_addr *c = &l->cands[i].addr;
    if (by_prefix ? same_prefix(c, a)
        : by_ip   ? mdht_addr_ip_eq(c, a)
                  : mdht_addr_eq(c, a))
      return true;
  }
  return false;
}

/* Is `id` already the id of a candidate other than `skip`? */
static bool id_taken(const mdht_lookup *l, const mdht_id *id, int skip) {
  for (uint32_t i = 0; i < l->n_cands; i++)
    if ((int)i != skip && mdht_id_eq(&l->cands[i].id, id)) return true;
  return false;
}

/* First index whose candidate is farther from the target than `id`. */
static uint32_t sorted_pos(const mdht_lookup *l, const mdht_id *id) {
  uint32_t lo = 0, hi = l->n_cands;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (mdht_id_cmp_dist(&l->target, &l->cands[mid].id, id) <= 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static void remove_at(mdht_lookup *l, uint32_t i) {
  memmove(&l->cands[i], &l->cands[i + 1],
          (l->n_cands - i - 1) * sizeof l->cands[0]);
  if (l->tokens)
    memmove(&l->tokens[i], &l->tokens[i + 1],
            (l->n_cands - i - 1) * sizeof l->tokens[0]);
  l->n_cands--;
}

/* Places `c` at its sorted position (room must exist); returns the index. */
static uint32_t insert_sorted(mdht_lookup *l, const mdht_lookup_cand *c) {
  uint32_t pos = sorted_pos(l, &c->id);
  memmove(&l->cands[pos + 1], &l->cands[pos],
          (l->n_cands - pos) * sizeof l->cands[0]);
  l->cands[pos] = *c;
  if (l->tokens) {
    /* A candidate is (re)placed before it answers: no token yet. */
    memmove(&l->tokens[pos + 1], &l->tokens[pos],
            (l->n_cands - pos) * sizeof l->tokens[0]);
    l->tokens[pos].len = 0;
  }
  l->n_cands++;
  return pos;
}

/* Adds a node learned at `depth` unless it is unusable or already known
 * (by id or by address: either would mean querying one node twice). */
static void add_candidate(const mdht_lookups *ls, mdht_lookup *l,
                          const mdht_id *id, const mdht_addr *addr,
                          uint32_t depth) {
  if (!usable_addr(ls, addr)) return;
  if (ls->has_self && mdht_id_eq(id, &ls->self)) return;
  if (host_taken(ls, l, addr) || id_taken(l, id, -1)) return;
  if (!grow(l)) {
    /* Only never-queried candidates may go: the queried ones are the
     * memory of whom not to ask again, and the answered ones the result. */
    int far = -1;
    for (int i = (int)l->n_cands - 1; i >= 0; i--)
      if (l->cands[i].state == MDHT_LC_NEW) {
        far = i;
        break;
      }
    if (far < 0 || mdht_id_cmp_dist(&l->target, &l->cands[far].id, id) <= 0)
      return;
    remove_at(l, (uint32_t)far);
  }
  mdht_lookup_cand c = {.id = *id,
                        .addr = *addr,
                        .depth =
                            (uint16_t)(depth > UINT16_MAX ? UINT16_MAX : depth),
                        .state = MDHT_LC_NEW};
  insert_sorted(l, &c);
}

/* ------------------------------------------------------------- the rule */

/* The closest unqueried candidate inside the window (see lookup.h), or
 * -1. */
static int next_to_query(const mdht_lookups *ls, const mdht_lookup *l) {
  uint32_t answered = 0;
  for (uint32_t i = 0; i < l->n_cands; i++) {
    switch (l->cands[i].state) {
    case MDHT_LC_NEW:
      return (int)i;
    case MDHT_LC_ANSWERED:
      if (++answered == ls->cfg->k) return -1;
      break;
    default:
      break;
    }
  }
  return -1;
}

/* How long a slow node closer than the K-th responder holds the end
 * (lookup.h, "Termination"): 1.25 soft timeouts after its query went out.
 * Why not the soft timeout: the end game asks the last of the K closest
 * at once, so they turn slow together, and a live node merely slower than
 * srtt + 2 rttvar was cut off where the slower "alpha in all" pace used to
 * give it time (test_sim's 200 nodes, 20 to 100 ms round trips: ending at
 * the soft timeout, 5 of the first 16 lookups missed one or two of the
 * true 8 closest and one returned a node outside the 10 closest; with
 * 1.25 or 1.5 soft timeouts all 20 found exactly the 8 closest, as
 * before). Cost in `mdht sim` at 20,000 nodes (lookup.h): completion in
 * 4.26 RTTs (1.25) or 4.53 (1.5) instead of 4.06, against 5.08 before the
 * end game. */
static mdht_time end_wait(const mdht_lookups *ls) {
  return ls->soft_ms + ls->soft_ms / 4;
}

/* True when the lookup should end (the rule: lookup.h, "Termination"). */
static bool is_over(const mdht_lookups *ls, const mdht_lookup *l,
                    mdht_time now) {
  bool can_send = l->queries < MDHT_LOOKUP_MAX_QUERIES;
  uint32_t answered = 0;
  bool slow = false;
  for (uint32_t i = 0; i < l->n_cands; i++) {
    switch (l->cands[i].state) {
    case MDHT_LC_NEW:
      if (can_send) return false;
      break;
    case MDHT_LC_INFLIGHT:
      return false;
    case MDHT_LC_SLOW:
      /* Holds the window only until end_wait() once K others have
       * answered: most nodes that late are gone, and waiting out the hard
       * timeout for each would make every lookup as slow as its worst
       * node. */
      if (now < sent_at(l, &l->cands[i]) + end_wait(ls)) return false;
      slow = true;
      break;
    case MDHT_LC_ANSWERED:
      if (++answered == ls->cfg->k) return true;
      break;
    default:
      break;
    }
  }
  /* Fewer than K answered: the slow nodes are all that can still add to
   * the result, so they are awaited up to the hard timeout. Ending here
   * would fail at the soft timeout every lookup whose nodes are all slow
   * (a far bootstrap router; every lookup if the soft timeout is 0). */
  return !slow;
}

static void set_failed(mdht_lookup *l, mdht_lookup_cand *c) {
  if (c->state == MDHT_LC_INFLIGHT) l->n_inflight--;
  if (c->state == MDHT_LC_SLOW) l->n_slow--;
  c->state = MDHT_LC_FAILED;
  l->failures++;
}

/* How many queries may be in flight, younger than the soft timeout, to
 * candidates closer than cands[i], the next to ask (lookup.h, "The
 * window"): alpha, or K in the end game, when a candidate closer than
 * cands[i] has already answered (nothing unqueried is closer than the
 * closest responder: the lookup has stopped getting closer, and what is
 * left is asking the rest of the K closest). Returns false when
 * cands[i] must wait. A lookup whose owner set its alpha keeps the plain
 * bound: at most alpha fresh queries in all. */
static bool may_send(const mdht_lookups *ls, const mdht_lookup *l, int i) {
  if (l->capped) return l->n_inflight < l->alpha;
  uint32_t fresh = 0;
  bool end_game = false;
  for (int j = 0; j < i; j++) {
    if (l->cands[j].state == MDHT_LC_INFLIGHT) fresh++;
    if (l->cands[j].state == MDHT_LC_ANSWERED) end_game = true;
  }
  uint32_t bound = l->alpha;
  if (end_game && ls->cfg->k > bound) bound = ls->cfg->k;
  return fresh < bound;
}

/* Sends queries while the window has unqueried candidates that may_send()
 * lets go. */
static void pump(mdht_lookups *ls, mdht_lookup *l, mdht_time now) {
  while (l->queries < MDHT_LOOKUP_MAX_QUERIES) {
    int i = next_to_query(ls, l);
    if (i < 0 || !may_send(ls, l, i)) break;
    mdht_lookup_cand *c = &l->cands[i];
    c->state = MDHT_LC_INFLIGHT;
    mdht_time dt = now > l->started ? now - l->started : 0;
    c->sent = dt < UINT32_MAX ? (uint32_t)dt : UINT32_MAX;
    l->n_inflight++;
    l->queries++;
    /* Copies: the callback gets no pointer into our arrays. */
    mdht_id target = l->target, id = c->id;
    mdht_addr addr = c->addr;
    if (ls->cb.send(ls->cb.user, l->id, l->kind, &target, &id, &addr, now) < 0)
      set_failed(l, &l->cands[i]);
  }
}

static void update_deadline(const mdht_lookups *ls, mdht_lookup *l,
                            mdht_time now) {
  mdht_time d = l->end_due ? l->started : UINT64_MAX;
  for (uint32_t i = 0; i < l->n_cands; i++) {
    const mdht_lookup_cand *c = &l->cands[i];
    mdht_time t;
    if (c->state == MDHT_LC_INFLIGHT)
      t = sent_at(l, c) + ls->soft_ms;
    else if (c->state == MDHT_LC_SLOW && sent_at(l, c) + end_wait(ls) > now)
      t = sent_at(l, c) + end_wait(ls);
    else if (c->state == MDHT_LC_SLOW)
      t = sent_at(l, c) + ls->cfg->query_timeout_ms;
    else
      continue;
    if (t < d) d = t;
  }
  l->deadline = d;
}

/* ---------------------------------------------------------------- events */

static uint32_t closest_bits(const mdht_lookup *l) {
  for (uint32_t i = 0; i < l->n_cands; i++)
    if (l->cands[i].state == MDHT_LC_ANSWERED)
      return (uint32_t)mdht_id_common_prefix(&l->cands[i].id, &l->target);
  return 0;
}

static void publish(const mdht_lookups *ls, const mdht_lookup *l,
                    mdht_event_type type, const mdht_addr *addr, bool ok,
                    mdht_time now) {
  if (!ls->bus) return;
  mdht_event ev;
  mdht_bus_event_init(&ev, type, now);
  ev.id = l->target;
  ev.method = l->kind;
  if (addr) ev.addr = *addr;
  ev.u.lookup.lookup_id = l->id;
  ev.u.lookup.round = l->rounds;
  ev.u.lookup.queried = l->queries;
  ev.u.lookup.answered = l->responses;
  ev.u.lookup.failed = l->failures;
  ev.u.lookup.peers = l->n_peers;
  ev.u.lookup.closest_bits = closest_bits(l);
  ev.u.lookup.ok = ok;
  ev.u.lookup.elapsed_ms = now >= l->started ? now - l->started : 0;
  mdht_bus_publish(ls->bus, &ev);
}

/* Frees the slot of `l`: `l` is gone after this. */
static void release(mdht_lookups *ls, mdht_lookup *l) {
  uint32_t idx = (l->id & MAX_SLOTS) - 1;
  ls->slots[idx] = NULL;
  slot_free(l);
  ls->n_active--;
}

static void finish(mdht_lookups *ls, mdht_lookup *l, mdht_time now) {
  mdht_lookup_result nodes[MDHT_LOOKUP_MAX_K];
  uint32_t n = 0;
  for (uint32_t i = 0; i < l->n_cands && n < ls->cfg->k; i++) {
    const mdht_lookup_cand *c = &l->cands[i];
    if (c->state != MDHT_LC_ANSWERED) continue;
    nodes[n].id = c->id;
    nodes[n].addr = c->addr;
    nodes[n].token_len = l->tokens ? l->tokens[i].len : 0;
    if (nodes[n].token_len)
      memcpy(nodes[n].token, l->tokens[i].b, nodes[n].token_len);
    n++;
  }
  bool ok = l->responses > 0;
  mdht_addr no_peers[1];
  publish(ls, l, MDHT_EV_LOOKUP_DONE, NULL, ok, now);
  mdht_lookup_results res = {
      .lookup_id = l->id,
      .kind = l->kind,
      .target = l->target,
      .ok = ok,
      .nodes = nodes,
      .n_nodes = n,
      /* Never NULL (owners copy n_peers = 0 entries from it). */
      .peers = l->peers ? l->peers : no_peers,
      .n_peers = l->n_peers,
      .rounds = l->rounds,
      .queries = l->queries,
      .responses = l->responses,
      .failures = l->failures,
      .elapsed = now >= l->started ? now - l->started : 0,
  };
  /* The slot stays taken during the callback, so that `peers` stays
   * valid and a lookup started from inside it goes to another slot. */
  l->finishing = true;
  if (ls->cb.done) ls->cb.done(ls->cb.user, &res);
  release(ls, l);
}

/* After any change: more queries, the next timer, and the end. Returns
 * true if the lookup ended. */
static bool advance(mdht_lookups *ls, mdht_lookup *l, mdht_time now) {
  /* Stopped by its owner: no more queries, it ends at the next tick. */
  if (l->end_due) {
    update_deadline(ls, l, now);
    return false;
  }
  pump(ls, l, now);
  if (is_over(ls, l, now)) {
    finish(ls, l, now);
    return true;
  }
  update_deadline(ls, l, now);
  return false;
}

/* ------------------------------------------------------------------ API */

int64_t mdht_lookup_start(mdht_lookups *ls, mdht_method kind,
                          const mdht_id *target, const mdht_lookup_node *seeds,
                          size_t n_seeds, mdht_time now) {
  if (!ls || !ls->slots || !target || (!seeds && n_seeds))
    return MDHT_ERR_INVAL;
  if (kind != MDHT_M_FIND_NODE && kind != MDHT_M_GET_PEERS &&
      kind != MDHT_M_GET)
    return MDHT_ERR_INVAL;
  if (ls->n_active >= ls->cfg->max_lookups) return MDHT_ERR_FULL;
  /* The lowest free index: n_alloc, the span tick() walks, stays as
   * small as the most lookups run at once. */
  uint32_t idx = 0;
  while (idx < ls->cap && ls->slots[idx])
    idx++;
  if (idx >= ls->cap) {
    if (ls->cap >= ls->cfg->max_lookups) return MDHT_ERR_FULL;
    if (grow_slots(ls) < 0) return MDHT_ERR_NOMEM;
  }
  mdht_lookup *l = slot_new(kind);
  if (!l) return MDHT_ERR_NOMEM;
  l->end_due = false;
  l->kind = kind;
  l->target = *target;
  l->started = now;
  l->deadline = UINT64_MAX;
  l->alpha = ls->cfg->alpha;
  l->n_inflight = l->n_slow = 0;
  l->queries = l->responses = l->failures = l->rounds = 0;
  l->n_cands = l->n_peers = 0;
  for (size_t i = 0; i < n_seeds; i++)
    add_candidate(ls, l, &seeds[i].id, &seeds[i].addr, 1);
  if (l->n_cands == 0) {
    slot_free(l);
    return MDHT_ERR_AGAIN;
  }

  ls->slots[idx] = l;
  if (idx >= ls->n_alloc) ls->n_alloc = idx + 1;
  uint16_t gen = ++ls->gens[idx];
  l->id = ((uint32_t)gen << SLOT_BITS) | (idx + 1);
  ls->n_active++;
  publish(ls, l, MDHT_EV_LOOKUP_STARTED, NULL, false, now);
  pump(ls, l, now);
  /* The owner learns the id only when we return, so a lookup whose every
   * first send failed must not end (and call `done`) in here. */
  if (is_over(ls, l, now)) l->end_due = true;
  update_deadline(ls, l, now);
  return l->id;
}

/* The candidate at `addr` with a query in flight, or -1. */
static int awaited(const mdht_lookup *l, const mdht_addr *addr) {
  int i = find_addr(l, addr);
  if (i < 0) return -1;
  uint8_t st = l->cands[i].state;
  return st == MDHT_LC_INFLIGHT || st == MDHT_LC_SLOW ? i : -1;
}

static void add_peers(mdht_lookup *l, const mdht_addr *values,
                      size_t n_values) {
  for (size_t v = 0; v < n_values; v++) {
    if (l->n_peers == MDHT_LOOKUP_MAX_PEERS) return;
    const mdht_addr *p = &values[v];
    if ((p->family != MDHT_AF_INET && p->family != MDHT_AF_INET6) ||
        mdht_addr_is_martian(p))
      continue;
    bool dup = false;
    for (uint32_t j = 0; j < l->n_peers && !dup; j++)
      dup = mdht_addr_eq(&l->peers[j], p);
    if (!dup) l->peers[l->n_peers++] = *p;
  }
}

int mdht_lookup_on_response(mdht_lookups *ls, uint32_t lookup_id,
                            const mdht_id *node_id, const mdht_addr *addr,
                            const mdht_lookup_node *nodes, size_t n_nodes,
                            const mdht_addr *values, size_t n_values,
                            const uint8_t *token, size_t token_len,
                            mdht_time now) {
  if (!node_id || !addr || (!nodes && n_nodes) || (!values && n_values) ||
      (!token && token_len))
    return MDHT_ERR_INVAL;
  mdht_lookup *l = find_slot(ls, lookup_id);
  if (!l) return MDHT_ERR_NOTFOUND;
  int i = awaited(l, addr);
  if (i < 0) return MDHT_ERR_NOTFOUND;

  mdht_lookup_cand *c = &l->cands[i];
  if (!mdht_id_eq(&c->id, node_id)) {
    /* Whoever answers at that address is the node we asked, whatever id
     * the referrer gave it; but an id that is ours or another
     * candidate's would make one node count twice. */
    if ((ls->has_self && mdht_id_eq(node_id, &ls->self)) ||
        id_taken(l, node_id, i)) {
      set_failed(l, c);
      advance(ls, l, now);
      return 0;
    }
    mdht_lookup_cand moved = *c;
    moved.id = *node_id;
    remove_at(l, (uint32_t)i);
    i = (int)insert_sorted(l, &moved);
    c = &l->cands[i];
  }
  if (c->state == MDHT_LC_INFLIGHT)
    l->n_inflight--;
  else
    l->n_slow--;
  c->state = MDHT_LC_ANSWERED;
  if (l->tokens) {
    mdht_lookup_token *t = &l->tokens[i];
    t->len = 0;
    if (token_len > 0 && token_len <= MDHT_LOOKUP_TOKEN_MAX) {
      memcpy(t->b, token, token_len);
      t->len = (uint8_t)token_len;
    }
  }
  uint32_t depth = c->depth;
  l->responses++;
  if (depth > l->rounds) l->rounds = depth;

  /* `c` is stale from here: insertions move candidates. A reply carries
   * K nodes per family (BEP 5); more are a forgery, and only the first K
   * of each family are looked at. */
  uint32_t seen4 = 0, seen6 = 0;
  for (size_t n = 0; n < n_nodes; n++) {
    uint32_t *seen = nodes[n].addr.family == MDHT_AF_INET6 ? &seen6 : &seen4;
    if ((*seen)++ >= ls->cfg->k) continue;
    add_candidate(ls, l, &nodes[n].id, &nodes[n].addr, depth + 1);
  }
  if (l->kind == MDHT_M_GET_PEERS) add_peers(l, values, n_values);

  publish(ls, l, MDHT_EV_LOOKUP_PROGRESS, addr, false, now);
  advance(ls, l, now);
  return 0;
}

int mdht_lookup_on_failure(mdht_lookups *ls, uint32_t lookup_id,
                           const mdht_addr *addr, mdht_time now) {
  if (!addr) return MDHT_ERR_INVAL;
  mdht_lookup *l = find_slot(ls, lookup_id);
  if (!l) return MDHT_ERR_NOTFOUND;
  int i = awaited(l, addr);
  if (i < 0) return MDHT_ERR_NOTFOUND;
  set_failed(l, &l->cands[i]);
  advance(ls, l, now);
  return 0;
}

int mdht_lookup_cancel(mdht_lookups *ls, uint32_t lookup_id, mdht_time now) {
  mdht_lookup *l = find_slot(ls, lookup_id);
  if (!l) return MDHT_ERR_NOTFOUND;
  publish(ls, l, MDHT_EV_LOOKUP_DONE, NULL, false, now);
  release(ls, l);
  return 0;
}

int mdht_lookup_stop(mdht_lookups *ls, uint32_t lookup_id) {
  mdht_lookup *l = find_slot(ls, lookup_id);
  if (!l) return MDHT_ERR_NOTFOUND;
  l->end_due = true;
  update_deadline(ls, l, l->started); /* due at once whatever the time */
  return 0;
}

int mdht_lookup_set_alpha(mdht_lookups *ls, uint32_t lookup_id,
                          uint32_t alpha) {
  mdht_lookup *l = find_slot(ls, lookup_id);
  if (!l) return MDHT_ERR_NOTFOUND;
  l->alpha = alpha < 1 ? 1 : alpha > ls->cfg->alpha ? ls->cfg->alpha : alpha;
  l->capped = true;
  return 0;
}

int mdht_lookups_tick(mdht_lookups *ls, mdht_time now) {
  if (!ls || !ls->slots) return 0;
  int ended = 0;
  for (uint32_t s = 0; s < ls->n_alloc; s++) {
    mdht_lookup *l = ls->slots[s];
    if (!l || l->finishing || l->deadline > now) continue;
    if (l->end_due) {
      finish(ls, l, now);
      ended++;
      continue;
    }
    for (uint32_t i = 0; i < l->n_cands; i++) {
      mdht_lookup_cand *c = &l->cands[i];
      if (c->state != MDHT_LC_INFLIGHT && c->state != MDHT_LC_SLOW) continue;
      mdht_time sent = sent_at(l, c);
      if (now < sent) continue; /* the caller's clock went back */
      if (now - sent >= ls->cfg->query_timeout_ms) {
        set_failed(l, c);
      } else if (c->state == MDHT_LC_INFLIGHT && now - sent >= ls->soft_ms) {
        c->state = MDHT_LC_SLOW;
        l->n_inflight--;
        l->n_slow++;
      }
    }
    if (advance(ls, l, now)) ended++;
  }
  return ended;
}

mdht_time mdht_lookups_next_deadline(const mdht_lookups *ls) {
  mdht_time d = UINT64_MAX;
  if (!ls || !ls->slots) return d;
  for (uint32_t s = 0; s < ls->n_alloc; s++) {
    const mdht_lookup *l = ls->slots[s];
    if (l && !l->finishing && l->deadline < d) d = l->deadline;
  }
  return d;
}

const mdht_lookup *mdht_lookup_find(const mdht_lookups *ls,
                                    uint32_t lookup_id) {
  return find_slot(ls, lookup_id);
}

size_t mdht_lookups_bytes(const mdht_lookups *ls) {
  size_t b = ls->cap * (sizeof *ls->slots + sizeof *ls->gens);
  for (uint32_t i = 0; i < ls->n_alloc; i++) {
    const mdht_lookup *l = ls->slots[i];
    if (!l) continue;
    b += sizeof *l + l->cap * sizeof *l->cands;
    if (l->tokens) b += l->cap * sizeof *l->tokens;
    if (l->peers) b += MDHT_LOOKUP_MAX_PEERS * sizeof *l->peers;
  }
  return b;
}
