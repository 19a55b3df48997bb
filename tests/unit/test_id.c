#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "id.h"

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_fill(uint64_t *s, uint8_t *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)rng_next(s);
}

static mdht_id rand_id(uint64_t *s) {
  mdht_id id;
  rng_fill(s, id.b, sizeof id.b);
  return id;
}

static void test_xor(void **state) {
  (void)state;
  uint64_t s = 1;
  mdht_id a = rand_id(&s), b = rand_id(&s), d, back, zero = {{0}};
  mdht_id_xor(&d, &a, &b);
  for (int i = 0; i < MDHT_ID_LEN; i++)
    assert_int_equal(d.b[i], a.b[i] ^ b.b[i]);
  mdht_id_xor(&back, &d, &b);
  assert_true(mdht_id_eq(&back, &a));
  mdht_id_xor(&d, &a, &a);
  assert_true(mdht_id_eq(&d, &zero));
  /* The destination may alias an operand. */
  d = a;
  mdht_id_xor(&d, &d, &b);
  mdht_id_xor(&back, &a, &b);
  assert_true(mdht_id_eq(&d, &back));
}

static void test_cmp_dist(void **state) {
  (void)state;
  mdht_id t = {{0}}, a = {{0}}, b = {{0}};
  a.b[19] = 1;
  b.b[19] = 2;
  assert_true(mdht_id_cmp_dist(&t, &a, &b) < 0);
  assert_true(mdht_id_cmp_dist(&t, &b, &a) > 0);
  assert_int_equal(mdht_id_cmp_dist(&t, &a, &a), 0);
  /* A high bit outweighs every lower one. */
  a.b[0] = 0x01;
  memset(b.b, 0xff, sizeof b.b);
  b.b[0] = 0x00;
  assert_true(mdht_id_cmp_dist(&t, &a, &b) > 0);
  assert_int_equal(mdht_id_cmp_dist(&t, &t, &t), 0);

  /* Against the definition: compare the XORs as big-endian integers. */
  uint64_t s = 7;
  for (int n = 0; n < 2000; n++) {
    mdht_id tt = rand_id(&s), x = rand_id(&s), y = x;
    /* Share a random prefix so that close calls are exercised too. */
    uint8_t r[MDHT_ID_LEN];
    rng_fill(&s, r, sizeof r);
    mdht_id_random_in(&y, &x, (int)(rng_next(&s) % 161), r);
    mdht_id dx, dy;
    mdht_id_xor(&dx, &x, &tt);
    mdht_id_xor(&dy, &y, &tt);
    int want = memcmp(dx.b, dy.b, MDHT_ID_LEN);
    int got = mdht_id_cmp_dist(&tt, &x, &y);
    assert_int_equal(want < 0, got < 0);
    assert_int_equal(want > 0, got > 0);
  }
}

static void test_cmp_eq(void **state) {
  (void)state;
  mdht_id a = {{0}}, b = {{0}};
  assert_int_equal(mdht_id_cmp(&a, &b), 0);
  assert_true(mdht_id_eq(&a, &b));
  b.b[19] = 1;
  assert_true(mdht_id_cmp(&a, &b) < 0);
  assert_false(mdht_id_eq(&a, &b));
  a.b[0] = 1;
  assert_true(mdht_id_cmp(&a, &b) > 0);
}

static void test_common_prefix_and_bit(void **state) {
  (void)state;
  mdht_id a = {{0}};
  assert_int_equal(mdht_id_common_prefix(&a, &a), 160);
  for (int i = 0; i < 160; i++) {
    mdht_id b = a;
    b.b[i / 8] ^= (uint8_t)(0x80 >> (i % 8));
    assert_int_equal(mdht_id_common_prefix(&a, &b), i);
    assert_int_equal(mdht_id_common_prefix(&b, &a), i);
    assert_int_equal(mdht_id_bit(&b, i), 1);
    assert_int_equal(mdht_id_bit(&a, i), 0);
    /* Lower bits do not matter once one differs. */
    memset(b.b + i / 8 + 1, 0xff, (size_t)(MDHT_ID_LEN - i / 8 - 1));
    assert_int_equal(mdht_id_common_prefix(&a, &b), i);
  }
  mdht_id c;
  memset(c.b, 0, sizeof c.b);
  c.b[0] = 0xa5; /* 1010 0101 */
  int want[8] = {1, 0, 1, 0, 0, 1, 0, 1};
  for (int i = 0; i < 8; i++)
    assert_int_equal(mdht_id_bit(&c, i), want[i]);
  assert_int_equal(mdht_id_bit(&c, -1), 0);
  assert_int_equal(mdht_id_bit(&c, 160), 0);
}

static void test_random_in(void **state) {
  (void)state;
  uint64_t s = 42;
  for (int p = 0; p <= 160; p++) {
    mdht_id base = rand_id(&s), out;
    uint8_t r[MDHT_ID_LEN];
    rng_fill(&s, r, sizeof r);
    mdht_id_random_in(&out, &base, p, r);
    mdht_id rid;
    memcpy(rid.b, r, sizeof r);
    for (int i = 0; i < 160; i++)
      assert_int_equal(mdht_id_bit(&out, i),
                       i < p ? mdht_id_bit(&base, i) : mdht_id_bit(&rid, i));
    assert_true(mdht_id_common_prefix(&out, &base) >= p);
    /* In place on the base. */
    mdht_id inplace = base;
    mdht_id_random_in(&inplace, &inplace, p, r);
    assert_true(mdht_id_eq(&inplace, &out));
  }
  /* Out-of-range prefixes are clamped. */
  mdht_id base = rand_id(&s), out;
  uint8_t r[MDHT_ID_LEN];
  rng_fill(&s, r, sizeof r);
  mdht_id_random_in(&out, &base, 500, r);
  assert_true(mdht_id_eq(&out, &base));
  mdht_id_random_in(&out, &base, -3, r);
  assert_memory_equal(out.b, r, MDHT_ID_LEN);
}

static void test_parse_format(void **state) {
  (void)state;
  const char *hex = "0123456789abcdef0123456789abcdef01234567";
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  assert_int_equal(id.b[0], 0x01);
  assert_int_equal(id.b[7], 0xef);
  assert_int_equal(id.b[19], 0x67);
  char buf[41];
  mdht_id_format(&id, buf);
  assert_string_equal(buf, hex);

  mdht_id up;
  assert_int_equal(
      mdht_id_parse(&up, "0123456789ABCDEF0123456789AbCdEf01234567"), 0);
  assert_true(mdht_id_eq(&up, &id));

  uint64_t s = 3;
  for (int n = 0; n < 100; n++) {
    mdht_id a = rand_id(&s), b;
    mdht_id_format(&a, buf);
    assert_int_equal(strlen(buf), 40);
    assert_int_equal(mdht_id_parse(&b, buf), 0);
    assert_true(mdht_id_eq(&a, &b));
  }
}

static void test_parse_rejects(void **state) {
  (void)state;
  mdht_id id, keep;
  memset(keep.b, 0x5a, sizeof keep.b);
  id = keep;
  const char *bad[] = {
      "0123456789abcdef0123456789abcdef0123456",   /* 39 */
      "0123456789abcdef0123456789abcdef012345678", /* 41 */
      "",
      "0123456789abcdef0123456789abcdef0123456g",
      "0123456789abcdef0123456789abcdef0123456 ",
      " 123456789abcdef0123456789abcdef01234567",
      "0x23456789abcdef0123456789abcdef01234567",
      "0123456789abcdef0123456789abcdef01234567\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(mdht_id_parse(&id, bad[i]), MDHT_ERR_INVAL);
    assert_true(mdht_id_eq(&id, &keep)); /* untouched on failure */
  }
  assert_int_equal(mdht_id_parse(&id, NULL), MDHT_ERR_INVAL);
  assert_int_equal(
      mdht_id_parse(NULL, "0123456789abcdef0123456789abcdef01234567"),
      MDHT_ERR_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xor),
      cmocka_unit_test(test_cmp_dist),
      cmocka_unit_test(test_cmp_eq),
      cmocka_unit_test(test_common_prefix_and_bit),
      cmocka_unit_test(test_random_in),
      cmocka_unit_test(test_parse_format),
      cmocka_unit_test(test_parse_rejects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
