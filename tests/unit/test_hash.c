/* The keyed hash of the tables: deterministic per key, different across
 * keys, and spreading adversary-shaped keys evenly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "hash.h"

static void test_is_siphash_under_derived_key(void **state) {
  (void)state;
  /* the standard SipHash-2-4 test vector (key 00..0f, empty message) */
  uint8_t key[16], out[8];
  for (int i = 0; i < 16; i++)
    key[i] = (uint8_t)i;
  crypto_shorthash(out, (const uint8_t *)"", 0, key);
  static const uint8_t want[8] = {0x31, 0x0e, 0x0e, 0xdd,
                                  0x47, 0xdb, 0x6f, 0x72};
  assert_memory_equal(out, want, 8);
}

static void test_keyed(void **state) {
  (void)state;
  const char *m = "127.0.0.1:6881";
  uint64_t a = mdht_hash(1, m, strlen(m));
  assert_true(a == mdht_hash(1, m, strlen(m)));
  assert_true(a != mdht_hash(2, m, strlen(m)));
  assert_true(a != mdht_hash(1, m, strlen(m) - 1));
}

/* Keys that differ in one byte (what an attacker varies) land evenly in
 * 64 buckets. */
static void test_spread(void **state) {
  (void)state;
  unsigned count[64] = {0};
  uint8_t key[20] = {0};
  for (unsigned i = 0; i < 64 * 256; i++) {
    key[18] = (uint8_t)(i >> 8);
    key[19] = (uint8_t)i;
    count[mdht_hash(0x5eed, key, sizeof key) & 63]++;
  }
  for (int b = 0; b < 64; b++) {
    assert_true(count[b] > 256 / 2);
    assert_true(count[b] < 256 * 2);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_is_siphash_under_derived_key),
      cmocka_unit_test(test_keyed),
      cmocka_unit_test(test_spread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
