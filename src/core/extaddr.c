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

static bool live(const mdht_extaddr_src *s, mdht_time now) {
  return s->used && (now < s->at || now - s->at < MDHT_EXTADDR_TTL_MS);
}

/* The slot of `key`, else a free or expired one, else the oldest. */
static mdht_extaddr_src *slot_for(mdht_extaddr *x, const uint8_t key[17],
                                  mdht_time now) {
  mdht_extaddr_src *spare = NULL;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    mdht_extaddr_src *s = &x->src[i];
    if (s->used && memcmp(s->key, key, 17) == 0) return s;
    if (!live(s, now)) {
      if (!spare || live(spare, now)) spare = s;
    } else if (!spare || (live(spare, now) && s->at < spare->at)) {
      spare = s;
    }
  }
  return spare;
}

uint32_t mdht_extaddr_votes(const mdht_extaddr *x, const mdht_addr *a,
                            mdht_time now) {
  uint32_t n = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++)
    if (live(&x->src[i], now) && mdht_addr_ip_eq(&x->src[i].vote, a)) n++;
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
  mdht_extaddr_src *s = slot_for(x, key, now);
  memcpy(s->key, key, sizeof key);
  s->used = true;
  s->at = now;
  s->vote = *claimed;

  if (x->has && mdht_addr_ip_eq(&x->current, claimed)) return false;
  /* One pass: votes for the claimed address, for the current one, and
   * all live votes. */
  uint32_t mine = 0, cur = 0, total = 0;
  for (size_t i = 0; i < MDHT_EXTADDR_SOURCES; i++) {
    const mdht_extaddr_src *v = &x->src[i];
    if (!live(v, now)) continue;
    total++;
    if (mdht_addr_ip_eq(&v->vote, claimed)) mine++;
    if (x->has && mdht_addr_ip_eq(&v->vote, &x->current)) cur++;
  }
  if (mine < MDHT_EXTADDR_MIN_VOTES || 2 * mine <= total) return false;
  if (x->has && mine < 2 * cur) return false;
  x->current = *claimed;
  x->has = true;
  return true;
}
