/* BEP 44 items, pinned to the BEP's test vectors: a target or signature
 * that differs from them would make every item we store or fetch
 * unreachable for other implementations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "item.h"
#include "testutil.h"

static void from_hex(uint8_t *out, const char *hex, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static const char *bep_pk =
    "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
static const char *bep_sig1 =
    "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01";
static const char *bep_sig2 =
    "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08";
#define HELLO "12:Hello World!"
#define HELLO_LEN (sizeof HELLO - 1)

static void assert_id_hex(const mdht_id *id, const char *hex) {
  char got[41];
  mdht_id_format(id, got);
  assert_string_equal(got, hex);
}

static void test_immutable_target(void **state) {
  (void)state;
  mdht_id t;
  mdht_item_immutable_target((const uint8_t *)HELLO, HELLO_LEN, &t);
  assert_id_hex(&t, "e5f96f6f38320f0f33959cb4d3d656452117aadb");
}

static void test_mutable_targets(void **state) {
  (void)state;
  uint8_t pk[32];
  from_hex(pk, bep_pk, 32);
  mdht_id t;
  mdht_item_mutable_target(pk, NULL, 0, &t);
  assert_id_hex(&t, "4a533d47ec9c7d95b1ad75f576cffc641853b750");
  mdht_item_mutable_target(pk, (const uint8_t *)"foobar", 6, &t);
  assert_id_hex(&t, "411eba73b6f087ca51a3795d9c8c938d365e32c1");
}

static void test_signed_buffers(void **state) {
  (void)state;
  uint8_t buf[MDHT_ITEM_SIGNED_MAX];
  int n = mdht_item_signed_buf(NULL, 0, 1, (const uint8_t *)HELLO, HELLO_LEN,
                               buf, sizeof buf);
  const char *want1 = "3:seqi1e1:v12:Hello World!";
  assert_int_equal(n, strlen(want1));
  assert_memory_equal(buf, want1, (size_t)n);
  n = mdht_item_signed_buf((const uint8_t *)"foobar", 6, 1,
                           (const uint8_t *)HELLO, HELLO_LEN, buf, sizeof buf);
  const char *want2 = "4:salt6:foobar3:seqi1e1:v12:Hello World!";
  assert_int_equal(n, strlen(want2));
  assert_memory_equal(buf, want2, (size_t)n);
  /* An empty salt is no salt; a negative seq prints as such. */
  n = mdht_item_signed_buf((const uint8_t *)"", 0, -7, (const uint8_t *)"i1e",
                           3, buf, sizeof buf);
  assert_int_equal(n, strlen("3:seqi-7e1:vi1e"));
  assert_memory_equal(buf, "3:seqi-7e1:vi1e", (size_t)n);
  /* Too small a buffer: nothing claimed. */
  assert_int_equal(mdht_item_signed_buf(NULL, 0, 1, (const uint8_t *)HELLO,
                                        HELLO_LEN, buf, 10),
                   MDHT_ERR_NOBUF);
}

/* The BEP's published signatures verify under its public key, and any
 * change to seq, value, salt or signature makes them fail. */
static void test_bep_signatures_verify(void **state) {
  (void)state;
  uint8_t pk[32], sig1[64], sig2[64];
  from_hex(pk, bep_pk, 32);
  from_hex(sig1, bep_sig1, 64);
  from_hex(sig2, bep_sig2, 64);
  const uint8_t *v = (const uint8_t *)HELLO;
  const uint8_t *salt = (const uint8_t *)"foobar";
  assert_true(mdht_item_verify(pk, sig1, NULL, 0, 1, v, HELLO_LEN));
  assert_true(mdht_item_verify(pk, sig2, salt, 6, 1, v, HELLO_LEN));

  assert_false(mdht_item_verify(pk, sig1, NULL, 0, 2, v, HELLO_LEN));
  assert_false(mdht_item_verify(pk, sig1, NULL, 0, 1,
                                (const uint8_t *)"12:Hello World?", HELLO_LEN));
  assert_false(mdht_item_verify(pk, sig1, salt, 6, 1, v, HELLO_LEN));
  assert_false(mdht_item_verify(pk, sig2, NULL, 0, 1, v, HELLO_LEN));
  assert_false(mdht_item_verify(pk, sig2, (const uint8_t *)"foobaz", 6, 1, v,
                                HELLO_LEN));
  sig1[63] ^= 1;
  assert_false(mdht_item_verify(pk, sig1, NULL, 0, 1, v, HELLO_LEN));
  pk[0] ^= 1;
  assert_false(mdht_item_verify(pk, sig2, salt, 6, 1, v, HELLO_LEN));
}

/* Our own signing (libsodium key from a seed) round-trips through
 * verification, with and without salt, and binds seq and salt. */
static void test_sign_round_trip(void **state) {
  (void)state;
  uint8_t seed[32], pk[32], sk[64], sig[64];
  for (int i = 0; i < 32; i++)
    seed[i] = (uint8_t)(i * 7 + 1);
  mdht_item_keypair(seed, pk, sk);
  const uint8_t *v = (const uint8_t *)"d1:ai1ee";
  assert_int_equal(mdht_item_sign(sk, NULL, 0, 5, v, 8, sig), 0);
  assert_true(mdht_item_verify(pk, sig, NULL, 0, 5, v, 8));
  assert_false(mdht_item_verify(pk, sig, NULL, 0, 6, v, 8));
  assert_int_equal(mdht_item_sign(sk, (const uint8_t *)"s", 1, 5, v, 8, sig),
                   0);
  assert_true(mdht_item_verify(pk, sig, (const uint8_t *)"s", 1, 5, v, 8));
  assert_false(mdht_item_verify(pk, sig, NULL, 0, 5, v, 8));
  /* The same seed gives the same key, so a key file is just the seed. */
  uint8_t pk2[32], sk2[64];
  mdht_item_keypair(seed, pk2, sk2);
  assert_memory_equal(pk, pk2, 32);
  /* Over the bounds: refused both ways. */
  uint8_t big[MDHT_ITEM_MAX_V + 1];
  memset(big, 'x', sizeof big);
  assert_int_equal(mdht_item_sign(sk, NULL, 0, 1, big, sizeof big, sig),
                   MDHT_ERR_INVAL);
  assert_false(mdht_item_verify(pk, sig, NULL, 0, 1, big, sizeof big));
  uint8_t salt[MDHT_ITEM_MAX_SALT + 1] = {0};
  assert_int_equal(mdht_item_sign(sk, salt, sizeof salt, 1, v, 8, sig),
                   MDHT_ERR_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_immutable_target),
      cmocka_unit_test(test_mutable_targets),
      cmocka_unit_test(test_signed_buffers),
      cmocka_unit_test(test_bep_signatures_verify),
      cmocka_unit_test(test_sign_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
