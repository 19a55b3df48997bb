#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "token.h"

#define PERIOD 300000

static void secret_fill(uint8_t s[MDHT_TOKEN_SECRET_LEN], uint8_t base) {
  for (int i = 0; i < MDHT_TOKEN_SECRET_LEN; i++)
    s[i] = (uint8_t)(base + i);
}

static mdht_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  mdht_addr x = {.family = MDHT_AF_INET, .port = port};
  x.ip[0] = a;
  x.ip[1] = b;
  x.ip[2] = c;
  x.ip[3] = d;
  return x;
}

static mdht_addr v6(const char *hex32, uint16_t port) {
  mdht_addr x = {.family = MDHT_AF_INET6, .port = port};
  for (int i = 0; i < 16; i++) {
    unsigned v;
    sscanf(hex32 + 2 * i, "%2x", &v);
    x.ip[i] = (uint8_t)v;
  }
  return x;
}

static void mgr(mdht_token_mgr *tm, uint8_t base, mdht_time now) {
  uint8_t s[MDHT_TOKEN_SECRET_LEN];
  secret_fill(s, base);
  mdht_token_init(tm, s, PERIOD, now);
}

static void rotate(mdht_token_mgr *tm, uint8_t base, mdht_time now) {
  uint8_t s[MDHT_TOKEN_SECRET_LEN];
  secret_fill(s, base);
  mdht_token_rotate(tm, s, now);
}

/* Pins the exact construction (family byte, then the IP, HMAC-SHA1
 * truncated); values computed independently with Python's hmac module. */
static void test_known_answer(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 0, 0);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_addr a = v4(192, 0, 2, 1, 6881);
  mdht_token_make(&tm, &a, tok);
  const uint8_t want4[] = {0x44, 0x51, 0x48, 0x7a, 0x67, 0x86, 0xe0, 0x2d};
  assert_memory_equal(tok, want4, MDHT_TOKEN_LEN);
  mdht_addr b = v6("20010db8000000000000000000000001", 1);
  mdht_token_make(&tm, &b, tok);
  const uint8_t want6[] = {0x09, 0xbb, 0xee, 0x93, 0x49, 0x5b, 0xb8, 0x1b};
  assert_memory_equal(tok, want6, MDHT_TOKEN_LEN);
  mdht_token_free(&tm);
}

static void test_roundtrip(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 1, 0);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_addr a = v4(203, 0, 113, 7, 6881);
  mdht_token_make(&tm, &a, tok);
  assert_true(mdht_token_check(&tm, &a, tok, sizeof tok));
  mdht_addr b = v6("2001067c12e00000000000000000abcd", 51413);
  mdht_token_make(&tm, &b, tok);
  assert_true(mdht_token_check(&tm, &b, tok, sizeof tok));
  mdht_token_free(&tm);
}

static void test_port_does_not_matter(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 2, 0);
  uint8_t t1[MDHT_TOKEN_LEN], t2[MDHT_TOKEN_LEN];
  mdht_addr a = v4(198, 51, 100, 9, 1000), b = v4(198, 51, 100, 9, 2000);
  mdht_token_make(&tm, &a, t1);
  mdht_token_make(&tm, &b, t2);
  assert_memory_equal(t1, t2, MDHT_TOKEN_LEN);
  assert_true(mdht_token_check(&tm, &b, t1, sizeof t1));
  mdht_token_free(&tm);
}

static void test_other_ip_rejected(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 3, 0);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_addr a = v4(198, 51, 100, 9, 1000);
  mdht_token_make(&tm, &a, tok);
  for (int i = 0; i < 4; i++) {
    mdht_addr b = a;
    b.ip[i] ^= 1;
    assert_false(mdht_token_check(&tm, &b, tok, sizeof tok));
  }
  mdht_addr c = v6("20010db8000000000000000000000001", 1000);
  mdht_token_make(&tm, &c, tok);
  for (int i = 0; i < 16; i++) {
    mdht_addr d = c;
    d.ip[i] ^= 0x80;
    assert_false(mdht_token_check(&tm, &d, tok, sizeof tok));
  }
  mdht_token_free(&tm);
}

/* A v4 address and a v6 address starting with the same four bytes must
 * not share a token (the family is part of the hashed message). */
static void test_family_separates(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 4, 0);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_addr a = v4(1, 2, 3, 4, 1);
  mdht_addr b = v6("01020304000000000000000000000000", 1);
  mdht_token_make(&tm, &a, tok);
  assert_false(mdht_token_check(&tm, &b, tok, sizeof tok));
  mdht_token_make(&tm, &b, tok);
  assert_false(mdht_token_check(&tm, &a, tok, sizeof tok));
  mdht_token_free(&tm);
}

/* Bytes past the fourth of a v4 address are not part of it. */
static void test_v4_ignores_tail(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 5, 0);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_addr a = v4(10, 1, 2, 3, 1), b = a;
  memset(b.ip + 4, 0xee, 12);
  mdht_token_make(&tm, &a, tok);
  assert_true(mdht_token_check(&tm, &b, tok, sizeof tok));
  mdht_token_free(&tm);
}

static void test_length_and_content(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 6, 0);
  uint8_t tok[MDHT_TOKEN_LEN + 1];
  mdht_addr a = v4(192, 0, 2, 44, 6881);
  mdht_token_make(&tm, &a, tok);
  tok[MDHT_TOKEN_LEN] = 0;
  assert_false(mdht_token_check(&tm, &a, tok, MDHT_TOKEN_LEN - 1));
  assert_false(mdht_token_check(&tm, &a, tok, MDHT_TOKEN_LEN + 1));
  assert_false(mdht_token_check(&tm, &a, tok, 0));
  assert_false(mdht_token_check(&tm, &a, NULL, MDHT_TOKEN_LEN));
  for (int i = 0; i < MDHT_TOKEN_LEN * 8; i++) {
    tok[i / 8] ^= (uint8_t)(1u << (i % 8));
    assert_false(mdht_token_check(&tm, &a, tok, MDHT_TOKEN_LEN));
    tok[i / 8] ^= (uint8_t)(1u << (i % 8));
  }
  assert_true(mdht_token_check(&tm, &a, tok, MDHT_TOKEN_LEN));
  mdht_token_free(&tm);
}

static void test_rotation(void **state) {
  (void)state;
  mdht_token_mgr tm;
  mgr(&tm, 10, 1000);
  assert_int_equal(mdht_token_next_rotate(&tm), 1000 + PERIOD);
  mdht_addr a = v4(192, 0, 2, 1, 6881);
  uint8_t t0[MDHT_TOKEN_LEN], t1[MDHT_TOKEN_LEN], t2[MDHT_TOKEN_LEN];
  mdht_token_make(&tm, &a, t0);

  rotate(&tm, 20, 1000 + PERIOD + 5);
  assert_int_equal(mdht_token_next_rotate(&tm), 1000 + 2 * PERIOD + 5);
  mdht_token_make(&tm, &a, t1);
  assert_memory_not_equal(t0, t1, MDHT_TOKEN_LEN);
  assert_true(mdht_token_check(&tm, &a, t0, sizeof t0)); /* previous */
  assert_true(mdht_token_check(&tm, &a, t1, sizeof t1)); /* current */

  rotate(&tm, 30, 1000 + 2 * PERIOD + 5);
  mdht_token_make(&tm, &a, t2);
  assert_false(mdht_token_check(&tm, &a, t0, sizeof t0)); /* too old */
  assert_true(mdht_token_check(&tm, &a, t1, sizeof t1));
  assert_true(mdht_token_check(&tm, &a, t2, sizeof t2));

  rotate(&tm, 40, 1000 + 3 * PERIOD + 5);
  assert_false(mdht_token_check(&tm, &a, t1, sizeof t1));
  assert_true(mdht_token_check(&tm, &a, t2, sizeof t2));
  mdht_token_free(&tm);
}

/* Managers with different secrets reject each other's tokens, including
 * right after init (prev is derived from the secret, not zero). */
static void test_secret_matters(void **state) {
  (void)state;
  mdht_token_mgr x, y, z;
  mgr(&x, 50, 0);
  mgr(&y, 60, 0);
  memset(&z, 0, sizeof z);
  mdht_addr a = v4(192, 0, 2, 1, 6881);
  uint8_t tok[MDHT_TOKEN_LEN];
  mdht_token_make(&x, &a, tok);
  assert_false(mdht_token_check(&y, &a, tok, sizeof tok));
  mdht_token_make(&z, &a, tok); /* all-zero secret */
  assert_false(mdht_token_check(&x, &a, tok, sizeof tok));
  assert_memory_not_equal(x.cur, x.prev, MDHT_TOKEN_SECRET_LEN);
  mdht_token_free(&x);
  mdht_token_free(&y);
  mdht_token_free(&z);
}

/* The keyed contexts exist only once a token is made or checked, and a
 * manager keyed before a rotation gives the same tokens as one keyed
 * after it. */
static void test_keyed_on_first_use(void **state) {
  (void)state;
  mdht_token_mgr tm, u;
  mgr(&tm, 70, 0);
  mgr(&u, 70, 0);
  mdht_addr a = v4(198, 51, 100, 9, 6881);
  uint8_t early[MDHT_TOKEN_LEN], t[MDHT_TOKEN_LEN], tu[MDHT_TOKEN_LEN];
  assert_null(tm.keyed);
  mdht_token_make(&u, &a, early); /* u keyed under the first secret */
  assert_non_null(u.keyed);
  rotate(&tm, 71, 5);
  rotate(&u, 71, 5);
  assert_null(tm.keyed); /* a rotation alone keys nothing */
  mdht_token_make(&tm, &a, t);
  assert_non_null(tm.keyed);
  mdht_token_make(&u, &a, tu);
  assert_memory_equal(t, tu, MDHT_TOKEN_LEN);
  assert_true(mdht_token_check(&tm, &a, early, sizeof early)); /* prev */
  assert_true(mdht_token_check(&u, &a, t, sizeof t));
  mdht_token_free(&tm);
  mdht_token_free(&u);
  assert_null(tm.keyed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answer),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_port_does_not_matter),
      cmocka_unit_test(test_other_ip_rejected),
      cmocka_unit_test(test_family_separates),
      cmocka_unit_test(test_v4_ignores_tail),
      cmocka_unit_test(test_length_and_content),
      cmocka_unit_test(test_rotation),
      cmocka_unit_test(test_secret_matters),
      cmocka_unit_test(test_keyed_on_first_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
