#include "extaddr.h"
#include "addr.h"

#include <string.h>

void mdht_extaddr_init(mdht_extaddr *x) {
  memset(x, 0, sizeof *x);
}

const mdht_addr *mdht_extaddr_get(const mdht_extaddr *x) {
  return x->has ? &x->current : NULL;
}

/* Who the source is, for "one vote per source": its /24 or /64 on the
 * Internet, where one operator easily holds a whole subnet; its whole
 * address on a LAN or loopback, where every peer shares one /24. */
static void source_key(const mdht_addr *s, uint8_t key[17]) {
  memset(key, 0, 17);
  key[0] = s->family;
  size_t n = s->family == MDHT_AF_INET6 ? 16 : 4;
  if (!mdht_addr_is_private(s)) n = s->family == MDHT_AF_INET6 ? 8 : 3;
  memcpy(key + 1, s->ip, n);
}

static bool live(const mdht_extaddr *x, const mdht_extaddr_src *s,
                 mdht_time now) {
  if (s->at == 0) return false;
  mdht_time at = x->epoch + s->at;
  return now < at || now - at < MDHT_EXTADDR_TTL_MS;
}

/* live(), with `t` the tick of now (as tick() returned it): what the vote
 * path asks of all 64 slots, without going back to 64-bit times. */
static bool live_t(const mdht_extaddr_src *s, uint32_t t) {
  return s->at != 0 && (t < s->at || t - s->at < MDHT_EXTADDR_TTL_MS);
}

/* The tick of `now` (>= 1), moving the epoch first if it would not fit. */
static uint32_t tick(mdht_extaddr *x, mdht_time now) {
  if (now <= x->epoch) return 1;
  if (now - x->epoch > UINT32_MAX) {
    mdht_time epoch = now - ((mdht_time)1 << 31);
    for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
      mdht_extaddr_src *s = &x->src[i];
      if (s->at == 0) continue;
      mdht_time at = x->epoch + s->at;
      s->at = at > epoch ? (uint32_t)(at - epoch) : 1;
    }
    x->epoch = epoch;
  }
  return (uint32_t)(now - x->epoch);
}

/* Constant-length memcmp: inlined; this runs 64 times per vote. */
static bool votes_for(const mdht_extaddr_src *s, const mdht_addr *a) {
  if (s->key[0] != a->family) return false;
  return a->family == MDHT_AF_INET ? memcmp(s->vote, a->ip, 4) == 0
                                   : memcmp(s->vote, a->ip, 16) == 0;
}

/* The slot of `key`, else a free or expired one, else the oldest; `t` is
 * the tick of now. */
static mdht_extaddr_src *slot_for(mdht_extaddr *x, const uint8_t key[17],
                                  uint32_t t) {
  mdht_extaddr_src *spare = NULL;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    mdht_extaddr_src *s = &x->src[i];
    /* 16 + 1 bytes: a constant 16-byte memcmp is two inlined loads; 17
     * is a call, 64 of them per vote. */
    if (s->at != 0 && memcmp(s->key, key, 16) == 0 && s->key[16] == key[16])
      return s;
    if (!live_t(s, t)) {
      if (!spare || live_t(spare, t)) spare = s;
    } else if (!spare || (live_t(spare, t) && s->at < spare->at)) {
      spare = s;
    }
  }
  return spare;
}

uint32_t mdht_extaddr_votes(const mdht_extaddr *x, const mdht_addr *a,
                            mdht_time now) {
  uint32_t n = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++)
    if (live(x, &x->src[i], now) && votes_for(&x->src[i], a)) n++;
  return n;
}

static bool acceptable(const mdht_addr *source, const mdht_addr *claimed) {
  if (claimed->family != source->family) return false;
  if (claimed->family != MDHT_AF_INET && claimed->family != MDHT_AF_INET6)
    return false;
  if (mdht_addr_is_martian(claimed)) return false;
  /* A peer on our LAN sees our LAN address: one that claims a public
   * address for us is making it up. */
  return !mdht_addr_is_private(source) || mdht_addr_is_private(claimed);
}

bool mdht_extaddr_vote(mdht_extaddr *x, const mdht_addr *source,
                       const mdht_addr *claimed, mdht_time now) {
  if (!acceptable(source, claimed)) return false;
  uint8_t key[17];
  source_key(source, key);
  uint32_t t = tick(x, now); /* before slot_for: a move re-expresses `at` */
  mdht_extaddr_src *s = slot_for(x, key, t);
  memcpy(s->key, key, sizeof key);
  s->at = t;
  memset(s->vote, 0, sizeof s->vote);
  memcpy(s->vote, claimed->ip, claimed->family == MDHT_AF_INET6 ? 16 : 4);

  if (x->has && mdht_addr_ip_eq(&x->current, claimed)) return false;
  /* One pass: votes for the claimed address, for the current one, and
   * all live votes. */
  uint32_t mine = 0, cur = 0, total = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    const mdht_extaddr_src *v = &x->src[i];
    if (!live_t(v, t)) continue;
    total++;
    if (votes_for(v, claimed)) mine++;
    if (x->has && votes_for(v, &x->current)) cur++;
  }
  if (mine < MDHT_EXTADDR_MIN_VOTES || 2 * mine <= total) return false;
  if (x->has && mine < 2 * cur) return false;
  x->current = *claimed;
  x->has = true;
  return true;
}
