/*
 * BEP 44 items: the pure part. Targets (where an item is stored), the
 * buffer a mutable item's signature covers, and Ed25519 signing and
 * verification through libsodium (never our own crypto).
 *
 * An item's value `v` is handled as the verbatim bencoded bytes it had in
 * the message: re-encoding is not an identity, and both the immutable
 * target and the signature cover those exact bytes.
 */
#ifndef MDHT_ITEM_H
#define MDHT_ITEM_H

#include "mdht.h"

#define MDHT_ITEM_MAX_V 1000  /* BEP 44: larger values may be refused */
#define MDHT_ITEM_MAX_SALT 64 /* BEP 44: MUST NOT be longer */
#define MDHT_ITEM_PK_LEN 32   /* Ed25519 public key */
#define MDHT_ITEM_SIG_LEN 64  /* Ed25519 signature */
#define MDHT_ITEM_SEED_LEN 32 /* Ed25519 seed (our key files hold it) */
#define MDHT_ITEM_SK_LEN 64   /* libsodium secret key: seed || pk */
/* Longest signed buffer: "4:salt64:" + salt + "3:seqi" + 20 digits + "e1:v"
 * + v. */
#define MDHT_ITEM_SIGNED_MAX                                                   \
  (9 + MDHT_ITEM_MAX_SALT + 6 + 20 + 4 + MDHT_ITEM_MAX_V)

/* KRPC error codes of BEP 44. */
#define MDHT_KRPC_E_V_TOO_BIG 205
#define MDHT_KRPC_E_BAD_SIG 206
#define MDHT_KRPC_E_SALT_TOO_BIG 207
#define MDHT_KRPC_E_CAS 301
#define MDHT_KRPC_E_SEQ 302

/* Immutable: SHA-1 of the bencoded value. */
void mdht_item_immutable_target(const uint8_t *v, size_t vlen, mdht_id *out);

/* Mutable: SHA-1 of k followed by the salt (none when salt_len is 0). */
void mdht_item_mutable_target(const uint8_t k[MDHT_ITEM_PK_LEN],
                              const uint8_t *salt, size_t salt_len,
                              mdht_id *out);

/* Writes the buffer a mutable item's signature covers:
 * ["4:salt" <len> ":" salt] "3:seqi" seq "e1:v" v (the salt part only for
 * a non-empty salt). Returns its length or MDHT_ERR_NOBUF. */
int mdht_item_signed_buf(const uint8_t *salt, size_t salt_len, int64_t seq,
                         const uint8_t *v, size_t vlen, uint8_t *buf,
                         size_t cap);

/* Whether `sig` is k's signature of the item (salt, seq, v). False too
 * for a salt or value over the BEP's bounds. */
bool mdht_item_verify(const uint8_t k[MDHT_ITEM_PK_LEN],
                      const uint8_t sig[MDHT_ITEM_SIG_LEN], const uint8_t *salt,
                      size_t salt_len, int64_t seq, const uint8_t *v,
                      size_t vlen);

/* The key pair of a 32-byte seed: pk (32) and libsodium's secret key
 * (64). */
void mdht_item_keypair(const uint8_t seed[MDHT_ITEM_SEED_LEN],
                       uint8_t pk[MDHT_ITEM_PK_LEN],
                       uint8_t sk[MDHT_ITEM_SK_LEN]);

/* Signs the item (salt, seq, v) with `sk` into `sig`. Returns 0 or
 * MDHT_ERR_INVAL (salt or value over the bounds). */
int mdht_item_sign(const uint8_t sk[MDHT_ITEM_SK_LEN], const uint8_t *salt,
                   size_t salt_len, int64_t seq, const uint8_t *v, size_t vlen,
                   uint8_t sig[MDHT_ITEM_SIG_LEN]);

#endif
