/*
 * Per-source rate limiting: a token bucket per IP address, in a fixed-size
 * table. When the table is full, a new source takes the slot of the entry
 * its hash lands on (it is a cache, not a ledger): memory stays bounded
 * whatever the number of sources, at the price of forgetting some of them,
 * which only ever errs on the side of answering.
 */
#ifndef MDHT_RATELIMIT_H
#define MDHT_RATELIMIT_H

#include "mdht.h"

typedef struct mdht_rl_slot {
  uint8_t ip[16];
  uint8_t family;
  uint32_t tokens_milli; /* tokens * 1000, so that refill is exact */
  mdht_time last;
} mdht_rl_slot;

typedef struct mdht_ratelimit {
  mdht_rl_slot *slots;
  uint32_t cap;   /* power of two */
  uint32_t rate;  /* tokens per second; 0 = unlimited */
  uint32_t burst; /* bucket depth */
  uint64_t hash_seed;
} mdht_ratelimit;

/* cap is rounded up to a power of two. Errors: MDHT_ERR_NOMEM. */
int mdht_rl_init(mdht_ratelimit *rl, uint32_t cap, uint32_t rate,
                 uint32_t burst, uint64_t hash_seed);
void mdht_rl_free(mdht_ratelimit *rl);
/* Takes one token for the IP of `a`; false when its bucket is empty. */
bool mdht_rl_allow(mdht_ratelimit *rl, const mdht_addr *a, mdht_time now);

#endif
