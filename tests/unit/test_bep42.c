/* BEP 42 against the specification's own test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "bep42.h"
#include "testutil.h"

static const struct {
  uint8_t ip[4];
  uint8_t rand;
  const char *prefix; /* first 3 bytes as in BEP 42, last byte = rand */
} vectors[] = {
    {{124, 31, 75, 21}, 1, "5fbfbf"},  {{21, 75, 31, 124}, 86, "5a3ce9"},
    {{65, 23, 51, 170}, 22, "a5d432"}, {{84, 124, 73, 14}, 65, "1b0321"},
    {{43, 213, 53, 83}, 90, "e56f6c"},
};

static uint8_t hex(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 2; i++)
    v = v * 16 + (unsigned)(p[i] <= '9' ? p[i] - '0' : p[i] - 'a' + 10);
  return (uint8_t)v;
}

static void test_crc32c_known(void **state) {
  (void)state;
  /* the standard check value of CRC-32C */
  assert_int_equal(mdht_crc32c((const uint8_t *)"123456789", 9), 0xe3069283u);
}

static void test_spec_vectors(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    mdht_addr a = test_addr4(vectors[i].ip[0], vectors[i].ip[1],
                             vectors[i].ip[2], vectors[i].ip[3], 6881);
    uint8_t rnd[MDHT_ID_LEN];
    memset(rnd, 0x55, sizeof rnd);
    rnd[19] = vectors[i].rand;
    rnd[2] = 0; /* the vectors' third byte has its low bits as listed */
    mdht_id id;
    mdht_bep42_make(&id, &a, rnd);
    assert_int_equal(id.b[0], hex(vectors[i].prefix));
    assert_int_equal(id.b[1], hex(vectors[i].prefix + 2));
    assert_int_equal(id.b[2] & 0xf8, hex(vectors[i].prefix + 4) & 0xf8);
    assert_int_equal(id.b[19], vectors[i].rand);
    assert_true(mdht_bep42_valid(&id, &a));
    /* the same id from another IP is not valid */
    mdht_addr other = a;
    other.ip[1] ^= 0x01;
    assert_false(mdht_bep42_valid(&id, &other));
    /* a flipped prefix bit is not valid */
    mdht_id bad = id;
    bad.b[1] ^= 0x10;
    assert_false(mdht_bep42_valid(&bad, &a));
  }
}

static void test_private_exempt(void **state) {
  (void)state;
  mdht_id id = test_id(0x42);
  mdht_addr lo = test_addr4(127, 0, 0, 1, 1);
  mdht_addr lan = test_addr4(192, 168, 1, 1, 1);
  assert_true(mdht_bep42_valid(&id, &lo));
  assert_true(mdht_bep42_valid(&id, &lan));
}

static void test_ipv6(void **state) {
  (void)state;
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[15] = 9;
  uint8_t rnd[MDHT_ID_LEN] = {1, 2, 3};
  mdht_id id;
  mdht_bep42_make(&id, &a, rnd);
  assert_true(mdht_bep42_valid(&id, &a));
  a.ip[3] ^= 0x01; /* inside the mask */
  assert_false(mdht_bep42_valid(&id, &a));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_crc32c_known),
      cmocka_unit_test(test_spec_vectors),
      cmocka_unit_test(test_private_exempt),
      cmocka_unit_test(test_ipv6),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
