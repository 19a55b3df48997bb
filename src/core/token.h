/*
 * Announce tokens (BEP 5): a token is a truncated keyed hash (HMAC-SHA1
 * from nettle) of the requester's IP under a secret that rotates every
 * token_rotate_ms; a token made under the previous secret is still
 * accepted, so a token lives between one and two rotation periods.
 * The secrets come from the caller (the node's random callback): the
 * core draws no randomness itself.
 */
#ifndef MDHT_TOKEN_H
#define MDHT_TOKEN_H

#include "mdht.h"

#include <nettle/hmac.h>

#define MDHT_TOKEN_LEN 8
#define MDHT_TOKEN_SECRET_LEN 16

typedef struct mdht_token_mgr {
  uint8_t cur[MDHT_TOKEN_SECRET_LEN];
  uint8_t prev[MDHT_TOKEN_SECRET_LEN];
  /* HMAC keyed once per rotation: keying costs two SHA-1 compressions,
   * which would otherwise be paid on every get_peers (measured: a quarter
   * of the query path's instructions). The two keyed contexts ([0] cur,
   * [1] prev, 576 bytes) are allocated by the first token made or
   * checked: most nodes of a simulated network never hand one out. */
  struct hmac_sha1_ctx *keyed;
  mdht_time next_rotate;
  mdht_time period;
} mdht_token_mgr;

/* `secret` seeds both current and previous secrets (so that nothing is
 * accepted by accident, prev is derived from it but differs). */
void mdht_token_init(mdht_token_mgr *tm, const uint8_t *secret,
                     mdht_time period, mdht_time now);
/* Frees the keyed contexts. */
void mdht_token_free(mdht_token_mgr *tm);
/* The time at which mdht_token_rotate() is due. */
mdht_time mdht_token_next_rotate(const mdht_token_mgr *tm);
/* prev = cur, cur = secret; schedules the next rotation. */
void mdht_token_rotate(mdht_token_mgr *tm, const uint8_t *secret,
                       mdht_time now);
/* Writes MDHT_TOKEN_LEN bytes for the IP of `a` (the port is not part of
 * it: a peer may announce from another port). */
void mdht_token_make(mdht_token_mgr *tm, const mdht_addr *a,
                     uint8_t out[MDHT_TOKEN_LEN]);
/* true if `tok` was made for a's IP under the current or previous
 * secret. Constant-time comparison. */
bool mdht_token_check(mdht_token_mgr *tm, const mdht_addr *a,
                      const uint8_t *tok, size_t len);

#endif
