/*
 * BEP 44 items: targets, the signed buffer, Ed25519. See item.h.
 */
#include "item.h"

#include <nettle/sha1.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

void mdht_item_immutable_target(const uint8_t *v, size_t vlen, mdht_id *out) {
  struct sha1_ctx c;
  sha1_init(&c);
  sha1_update(&c, vlen, v);
  sha1_digest(&c, MDHT_ID_LEN, out->b);
}

void mdht_item_mutable_target(const uint8_t k[MDHT_ITEM_PK_LEN],
                              const uint8_t *salt, size_t salt_len,
                              mdht_id *out) {
  struct sha1_ctx c;
  sha1_init(&c);
  sha1_update(&c, MDHT_ITEM_PK_LEN, k);
  if (salt_len) sha1_update(&c, salt_len, salt);
  sha1_digest(&c, MDHT_ID_LEN, out->b);
}

int mdht_item_signed_buf(const uint8_t *salt, size_t salt_len, int64_t seq,
                         const uint8_t *v, size_t vlen, uint8_t *buf,
                         size_t cap) {
  char head[96];
  int n = 0;
  /* An empty salt is the same as none (BEP 44): nothing of it is signed. */
  if (salt_len) n = snprintf(head, sizeof head, "4:salt%zu:", salt_len);
  size_t hl = (size_t)n;
  char mid[40];
  int m = snprintf(mid, sizeof mid, "3:seqi%llde1:v", (long long)seq);
  size_t total = hl + salt_len + (size_t)m + vlen;
  if (n < 0 || m < 0 || total > cap) return MDHT_ERR_NOBUF;
  uint8_t *p = buf;
  memcpy(p, head, hl);
  p += hl;
  if (salt_len) memcpy(p, salt, salt_len);
  p += salt_len;
  memcpy(p, mid, (size_t)m);
  p += m;
  if (vlen) memcpy(p, v, vlen);
  return (int)total;
}

bool mdht_item_verify(const uint8_t k[MDHT_ITEM_PK_LEN],
                      const uint8_t sig[MDHT_ITEM_SIG_LEN], const uint8_t *salt,
                      size_t salt_len, int64_t seq, const uint8_t *v,
                      size_t vlen) {
  if (salt_len > MDHT_ITEM_MAX_SALT || vlen > MDHT_ITEM_MAX_V) return false;
  uint8_t buf[MDHT_ITEM_SIGNED_MAX];
  int n = mdht_item_signed_buf(salt, salt_len, seq, v, vlen, buf, sizeof buf);
  if (n < 0) return false;
  return crypto_sign_verify_detached(sig, buf, (unsigned long long)n, k) == 0;
}

void mdht_item_keypair(const uint8_t seed[MDHT_ITEM_SEED_LEN],
                       uint8_t pk[MDHT_ITEM_PK_LEN],
                       uint8_t sk[MDHT_ITEM_SK_LEN]) {
  crypto_sign_seed_keypair(pk, sk, seed);
}

int mdht_item_sign(const uint8_t sk[MDHT_ITEM_SK_LEN], const uint8_t *salt,
                   size_t salt_len, int64_t seq, const uint8_t *v, size_t vlen,
                   uint8_t sig[MDHT_ITEM_SIG_LEN]) {
  if (salt_len > MDHT_ITEM_MAX_SALT || vlen > MDHT_ITEM_MAX_V)
    return MDHT_ERR_INVAL;
  uint8_t buf[MDHT_ITEM_SIGNED_MAX];
  int n = mdht_item_signed_buf(salt, salt_len, seq, v, vlen, buf, sizeof buf);
  if (n < 0) return n;
  crypto_sign_detached(sig, NULL, buf, (unsigned long long)n, sk);
  return 0;
}
