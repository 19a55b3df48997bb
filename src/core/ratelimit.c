#include "ratelimit.h"
#include "addr.h"

#include <stdlib.h>
#include <string.h>

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
  rl->slots = calloc(c, sizeof *rl->slots);
  return rl->slots ? 0 : MDHT_ERR_NOMEM;
}

void mdht_rl_free(mdht_ratelimit *rl) {
  free(rl->slots);
  rl->slots = NULL;
}

bool mdht_rl_allow(mdht_ratelimit *rl, const mdht_addr *a, mdht_time now) {
  if (rl->rate == 0) return true;
  mdht_addr ip = *a;
  ip.port = 0; /* one bucket per IP: changing ports must not help */
  size_t iplen = a->family == MDHT_AF_INET6 ? 16 : 4;
  mdht_rl_slot *s =
      &rl->slots[mdht_addr_hash(&ip, rl->hash_seed) & (rl->cap - 1)];
  uint64_t full = (uint64_t)rl->burst * 1000;
  if (s->family != a->family || memcmp(s->ip, a->ip, iplen) != 0) {
    /* A new source (or a collision): it starts with a full bucket. */
    memset(s, 0, sizeof *s);
    s->family = a->family;
    memcpy(s->ip, a->ip, iplen);
    s->tokens_milli = (uint32_t)full;
    s->last = now;
  } else if (now > s->last) {
    uint64_t add = (now - s->last) * rl->rate; /* ms * tokens/s = milli */
    uint64_t t = s->tokens_milli + add;
    s->tokens_milli = (uint32_t)(t > full ? full : t);
    s->last = now;
  }
  if (s->tokens_milli < 1000) return false;
  s->tokens_milli -= 1000;
  return true;
}
