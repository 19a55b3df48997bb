#include "token.h"

#include <stdlib.h>
#include <string.h>

#include <nettle/hmac.h>
#include <nettle/memops.h>

/* Mixed into the initial secret to derive `prev`, so that the two differ
 * without asking the caller for a second secret. */
static const uint8_t prev_label[] = "mdht token: initial previous secret";

static void hmac_trunc(const uint8_t *key, const uint8_t *msg, size_t len,
                       uint8_t *out, size_t outlen) {
  struct hmac_sha1_ctx ctx;
  hmac_sha1_set_key(&ctx, MDHT_TOKEN_SECRET_LEN, key);
  hmac_sha1_update(&ctx, len, msg);
  hmac_sha1_digest(&ctx, outlen, out);
}

static void rekey(mdht_token_mgr *tm) {
  if (!tm->keyed) return; /* keyed when first needed */
  hmac_sha1_set_key(&tm->keyed[0], MDHT_TOKEN_SECRET_LEN, tm->cur);
  hmac_sha1_set_key(&tm->keyed[1], MDHT_TOKEN_SECRET_LEN, tm->prev);
}

/* The keyed contexts, allocated and keyed on first use. NULL if out of
 * memory: the caller then keys a context of its own for this token. */
static const struct hmac_sha1_ctx *keyed(mdht_token_mgr *tm) {
  if (!tm->keyed) {
    tm->keyed = malloc(2 * sizeof *tm->keyed);
    rekey(tm);
  }
  return tm->keyed;
}

void mdht_token_free(mdht_token_mgr *tm) {
  if (!tm) return;
  free(tm->keyed);
  tm->keyed = NULL;
}

void mdht_token_init(mdht_token_mgr *tm, const uint8_t *secret,
                     mdht_time period, mdht_time now) {
  memcpy(tm->cur, secret, MDHT_TOKEN_SECRET_LEN);
  hmac_trunc(secret, prev_label, sizeof prev_label - 1, tm->prev,
             MDHT_TOKEN_SECRET_LEN);
  tm->keyed = NULL;
  tm->period = period;
  tm->next_rotate = now + period;
}

mdht_time mdht_token_next_rotate(const mdht_token_mgr *tm) {
  return tm->next_rotate;
}

void mdht_token_rotate(mdht_token_mgr *tm, const uint8_t *secret,
                       mdht_time now) {
  memcpy(tm->prev, tm->cur, MDHT_TOKEN_SECRET_LEN);
  memcpy(tm->cur, secret, MDHT_TOKEN_SECRET_LEN);
  rekey(tm);
  /* From now, not from the missed deadline: a late tick must not make the
   * next rotation come early and shorten token lifetime. */
  tm->next_rotate = now + tm->period;
}

/* The family byte leads so that a v4 address and a v6 address whose first
 * bytes coincide never hash the same message. */
static void token_for(const struct hmac_sha1_ctx *keyed, const mdht_addr *a,
                      uint8_t out[MDHT_TOKEN_LEN]) {
  uint8_t msg[1 + 16];
  size_t iplen = a->family == MDHT_AF_INET ? 4 : 16;
  msg[0] = a->family;
  memcpy(msg + 1, a->ip, iplen);
  struct hmac_sha1_ctx ctx = *keyed;
  hmac_sha1_update(&ctx, 1 + iplen, msg);
  hmac_sha1_digest(&ctx, MDHT_TOKEN_LEN, out);
}

/* The token of `a` under secret `which` (0 cur, 1 prev). */
static void token_of(mdht_token_mgr *tm, int which, const mdht_addr *a,
                     uint8_t out[MDHT_TOKEN_LEN]) {
  const struct hmac_sha1_ctx *k = keyed(tm);
  if (k) {
    token_for(&k[which], a, out);
    return;
  }
  struct hmac_sha1_ctx own;
  hmac_sha1_set_key(&own, MDHT_TOKEN_SECRET_LEN, which ? tm->prev : tm->cur);
  token_for(&own, a, out);
}

void mdht_token_make(mdht_token_mgr *tm, const mdht_addr *a,
                     uint8_t out[MDHT_TOKEN_LEN]) {
  token_of(tm, 0, a, out);
}

bool mdht_token_check(mdht_token_mgr *tm, const mdht_addr *a,
                      const uint8_t *tok, size_t len) {
  /* The expected length is public; only the content needs constant time. */
  if (!tm || !a || !tok || len != MDHT_TOKEN_LEN) return false;
  uint8_t cur[MDHT_TOKEN_LEN], prev[MDHT_TOKEN_LEN];
  token_of(tm, 0, a, cur);
  token_of(tm, 1, a, prev);
  /* Both comparisons always run, so timing does not tell which secret a
   * token was made under. */
  int ok_cur = memeql_sec(cur, tok, MDHT_TOKEN_LEN);
  int ok_prev = memeql_sec(prev, tok, MDHT_TOKEN_LEN);
  return (ok_cur | ok_prev) != 0;
}
