#include "ratelimit.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

enum { TAG_V4 = 1, TAG_V6_64 = 2, TAG_V6_48 = 3 };

/* Sets allocated on first use; the table doubles from there up to
 * max_sets (see ratelimit.h). */
#define MIN_SETS 2u

/* The slots are allocated on first use (see ratelimit.h). */
static void table_init(mdht_rl_table *t, uint32_t cap, uint64_t rate,
                       uint64_t burst) {
  t->max_sets = cap / MDHT_RL_WAYS;
  t->nsets = t->max_sets < MIN_SETS ? t->max_sets : MIN_SETS;
  t->rate = rate;
  t->full_milli = (burst ? burst : 1) * 1000;
  t->slots = NULL;
}

int mdht_rl_init(mdht_ratelimit *rl, uint32_t cap, uint32_t rate,
                 uint32_t burst, uint64_t hash_seed) {
  uint32_t c = 16;
  while (c < cap && c < (1u << 24))
    c <<= 1;
  *rl = (mdht_ratelimit){.cap = c,
                         .rate = rate,
                         .burst = burst ? burst : 1,
                         .hash_seed = hash_seed};
  if (rate == 0) return 0; /* unlimited: no table needed */
  uint64_t f = MDHT_RL_SITE_FACTOR;
  table_init(&rl->host, c, rate, rl->burst);
  table_init(&rl->site, c, rate * f, rl->burst * f);
  return 0;
}

void mdht_rl_free(mdht_ratelimit *rl) {
  free(rl->host.slots);
  free(rl->site.slots);
  rl->host.slots = rl->site.slots = NULL;
}

/* Tokens in slot s at `now`, refilled but not stored. */
static uint64_t level(const mdht_rl_table *t, const mdht_rl_slot *s,
                      mdht_time now) {
  if (now <= s->last) return s->tokens_milli;
  mdht_time dt = now - s->last;
  /* Compared first: dt * rate could overflow after a long idle time. */
  if (dt >= t->full_milli / t->rate) return t->full_milli;
  uint64_t v = s->tokens_milli + dt * t->rate; /* ms * tokens/s = milli */
  return v > t->full_milli ? t->full_milli : v;
}

/* The slot of (tag, key), refilled to `now`; a new one starts full.
 * NULL only when the table cannot be allocated: the caller then lets the
 * datagram through (a limiter errs on the side of answering). */
static uint32_t set_of(uint64_t seed, uint8_t tag, uint64_t key) {
  uint8_t buf[9];
  buf[0] = tag;
  memcpy(buf + 1, &key, 8);
  return (uint32_t)mdht_hash(seed, buf, sizeof buf);
}

/* Doubles the table. Each old set splits into two new ones, so every
 * entry finds a way; those that have refilled are dropped (the same as
 * no entry). Returns false when memory is short: the caller then evicts
 * as a full-size table does. */
static bool grow(mdht_rl_table *t, uint64_t seed, mdht_time now) {
  uint32_t n = t->nsets * 2;
  mdht_rl_slot *ns = calloc((size_t)n * MDHT_RL_WAYS, sizeof *ns);
  if (!ns) return false;
  for (uint32_t i = 0; i < t->nsets * MDHT_RL_WAYS; i++) {
    const mdht_rl_slot *o = &t->slots[i];
    if (!o->tag || level(t, o, now) >= t->full_milli) continue;
    mdht_rl_slot *set =
        &ns[(set_of(seed, o->tag, o->key) & (n - 1)) * MDHT_RL_WAYS];
    int w = 0;
    while (set[w].tag)
      w++;
    set[w] = *o;
  }
  free(t->slots);
  t->slots = ns;
  t->nsets = n;
  return true;
}

/* The slot of (tag, key), refilled to `now`; a new one starts full.
 * NULL only when the table cannot be allocated: the caller then lets the
 * datagram through (a limiter errs on the side of answering). */
static mdht_rl_slot *find(mdht_rl_table *t, uint64_t seed, uint8_t tag,
                          uint64_t key, mdht_time now) {
  if (!t->slots) {
    t->slots = calloc((size_t)t->nsets * MDHT_RL_WAYS, sizeof *t->slots);
    if (!t->slots) return NULL;
  }
  uint32_t h = set_of(seed, tag, key);
  for (;;) {
    mdht_rl_slot *set = &t->slots[(h & (t->nsets - 1)) * MDHT_RL_WAYS];
    mdht_rl_slot *victim = NULL;
    uint64_t victim_level = 0;
    for (int i = 0; i < MDHT_RL_WAYS; i++) {
      mdht_rl_slot *s = &set[i];
      uint64_t lv = s->tag ? level(t, s, now) : UINT64_MAX;
      if (s->tag == tag && s->key == key) {
        s->tokens_milli = lv;
        if (now > s->last) s->last = now;
        return s;
      }
      /* Replace an empty slot, else the fullest: it loses the least. */
      if (!victim || lv > victim_level) {
        victim = s;
        victim_level = lv;
      }
    }
    /* Below full size, a table grows rather than forget a source that
     * has spent tokens: memory follows the sources actually seen. */
    if (victim_level < t->full_milli && t->nsets < t->max_sets &&
        grow(t, seed, now))
      continue;
    *victim = (mdht_rl_slot){
        .key = key, .tokens_milli = t->full_milli, .last = now, .tag = tag};
    return victim;
  }
}

static uint64_t prefix_key(const uint8_t *ip, size_t n) {
  uint64_t k = 0;
  memcpy(&k, ip, n);
  return k;
}

bool mdht_rl_take(mdht_ratelimit *rl, const mdht_addr *a, uint32_t cost,
                  mdht_time now) {
  if (rl->rate == 0) return true;
  uint64_t c = (uint64_t)cost * 1000;
  if (a->family != MDHT_AF_INET6) {
    mdht_rl_slot *s =
        find(&rl->host, rl->hash_seed, TAG_V4, prefix_key(a->ip, 4), now);
    if (!s) return true;
    if (s->tokens_milli < c) return false;
    s->tokens_milli -= c;
    return true;
  }
  mdht_rl_slot *h =
      find(&rl->host, rl->hash_seed, TAG_V6_64, prefix_key(a->ip, 8), now);
  if (!h) return true;
  if (h->tokens_milli < c)
    return false; /* a refused /64 costs its /48 nothing */
  mdht_rl_slot *s =
      find(&rl->site, rl->hash_seed, TAG_V6_48, prefix_key(a->ip, 6), now);
  if (!s) return true;
  if (s->tokens_milli < c) return false;
  h->tokens_milli -= c;
  s->tokens_milli -= c;
  return true;
}

bool mdht_rl_allow(mdht_ratelimit *rl, const mdht_addr *a, mdht_time now) {
  return mdht_rl_take(rl, a, 1, now);
}
