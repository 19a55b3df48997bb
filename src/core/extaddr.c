#include "extaddr.h"
#include "addr.h"

#include <stdlib.h>
#include <string.h>

void mdht_extaddr_init(mdht_extaddr *x, uint8_t family) {
  memset(x, 0, sizeof *x);
  x->family = family == MDHT_AF_INET6 ? MDHT_AF_INET6 : MDHT_AF_INET;
  x->iplen = x->family == MDHT_AF_INET6 ? 16 : 4;
  x->rec_len = (uint8_t)(4 + 2 * x->iplen);
}

void mdht_extaddr_free(mdht_extaddr *x) {
  free(x->rec);
  mdht_extaddr_init(x, x->family);
}

const mdht_addr *mdht_extaddr_get(const mdht_extaddr *x) {
  return x->has ? &x->current : NULL;
}

/* Record i: the tick, then the key, then the vote. */
static uint8_t *rec(const mdht_extaddr *x, size_t i) {
  return x->rec + i * x->rec_len;
}
static uint32_t at_of(const uint8_t *r) {
  uint32_t t;
  memcpy(&t, r, 4);
  return t;
}
static void set_at(uint8_t *r, uint32_t t) {
  memcpy(r, &t, 4);
}

/* Who the source is, for "one vote per source": its /24 or /64 on the
 * Internet, where one operator easily holds a whole subnet; its whole
 * address on a LAN or loopback, where every peer shares one /24. */
static void source_key(const mdht_extaddr *x, const mdht_addr *s,
                       uint8_t key[16]) {
  memset(key, 0, 16);
  size_t n = x->iplen;
  if (!mdht_addr_is_private(s)) n = x->iplen == 16 ? 8 : 3;
  memcpy(key, s->ip, n);
}

/* Live at tick `t`: voted, and less than the TTL ago. */
static bool live_t(uint32_t at, uint32_t t) {
  return at != 0 && (t < at || t - at < MDHT_EXTADDR_TTL_MS);
}

/* The tick of `now` (>= 1), moving the epoch first if it would not fit. */
static uint32_t tick(mdht_extaddr *x, mdht_time now) {
  if (now <= x->epoch) return 1;
  if (now - x->epoch > UINT32_MAX) {
    mdht_time epoch = now - ((mdht_time)1 << 31);
    for (size_t i = 0; x->rec && i < MDHT_EXTADDR_SOURCES; i++) {
      uint8_t *r = rec(x, i);
      if (at_of(r) == 0) continue;
      mdht_time at = x->epoch + at_of(r);
      set_at(r, at > epoch ? (uint32_t)(at - epoch) : 1);
    }
    x->epoch = epoch;
  }
  return (uint32_t)(now - x->epoch);
}

/* Does record `r` vote for the IP of `a` (of the table's family)?
 * Constant-length memcmp: inlined; this runs 64 times per vote. */
static bool votes_for(const mdht_extaddr *x, const uint8_t *r,
                      const mdht_addr *a) {
  return x->iplen == 4 ? memcmp(r + 8, a->ip, 4) == 0
                       : memcmp(r + 20, a->ip, 16) == 0;
}

static bool key_is(const mdht_extaddr *x, const uint8_t *r,
                   const uint8_t key[16]) {
  return x->iplen == 4 ? memcmp(r + 4, key, 4) == 0
                       : memcmp(r + 4, key, 16) == 0;
}

/* The record of `key`, else a free or expired one, else the oldest; `t`
 * is the tick of now. */
static uint8_t *slot_for(mdht_extaddr *x, const uint8_t key[16], uint32_t t) {
  uint8_t *spare = NULL;
  uint32_t spare_at = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    uint8_t *r = rec(x, i);
    uint32_t at = at_of(r);
    if (at != 0 && key_is(x, r, key)) return r;
    if (!live_t(at, t)) {
      if (!spare || live_t(spare_at, t)) spare = r, spare_at = at;
    } else if (!spare || (live_t(spare_at, t) && at < spare_at)) {
      spare = r, spare_at = at;
    }
  }
  return spare;
}

uint32_t mdht_extaddr_votes(const mdht_extaddr *x, const mdht_addr *a,
                            mdht_time now) {
  uint32_t n = 0;
  if (!x->rec || a->family != x->family) return 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    const uint8_t *r = rec(x, i);
    uint32_t at32 = at_of(r);
    if (at32 == 0) continue;
    mdht_time at = x->epoch + at32;
    if ((now < at || now - at < MDHT_EXTADDR_TTL_MS) && votes_for(x, r, a)) n++;
  }
  return n;
}

static bool acceptable(const mdht_extaddr *x, const mdht_addr *source,
                       const mdht_addr *claimed) {
  if (claimed->family != x->family || source->family != x->family) return false;
  if (mdht_addr_is_martian(claimed)) return false;
  /* A peer on our LAN sees our LAN address: one that claims a public
   * address for us is making it up. */
  return !mdht_addr_is_private(source) || mdht_addr_is_private(claimed);
}

bool mdht_extaddr_vote(mdht_extaddr *x, const mdht_addr *source,
                       const mdht_addr *claimed, mdht_time now) {
  if (!acceptable(x, source, claimed)) return false;
  if (!x->rec) {
    /* Zeroed: a record with tick 0 is free. Out of memory: the vote is
     * not counted (the next one tries again). */
    x->rec = calloc(MDHT_EXTADDR_SOURCES, x->rec_len);
    if (!x->rec) return false;
  }
  uint8_t key[16];
  source_key(x, source, key);
  uint32_t t = tick(x, now); /* before slot_for: a move re-expresses ticks */
  uint8_t *r = slot_for(x, key, t);
  set_at(r, t);
  memcpy(r + 4, key, x->iplen);
  memcpy(r + 4 + x->iplen, claimed->ip, x->iplen);

  if (x->has && mdht_addr_ip_eq(&x->current, claimed)) return false;
  /* One pass: votes for the claimed address, for the current one, and
   * all live votes. */
  uint32_t mine = 0, cur = 0, total = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    const uint8_t *v = rec(x, i);
    if (!live_t(at_of(v), t)) continue;
    total++;
    if (votes_for(x, v, claimed)) mine++;
    if (x->has && votes_for(x, v, &x->current)) cur++;
  }
  if (mine < MDHT_EXTADDR_MIN_VOTES || 2 * mine <= total) return false;
  if (x->has && mine < 2 * cur) return false;
  x->current = *claimed;
  x->has = true;
  return true;
}
