/* BEP 33 bloom filters, pinned to the BEP's test vector: an error here
 * would make every scrape answer disagree with other implementations. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bloom.h"
#include "testutil.h"

/* The BEP's filter after 192.0.2.0-255 and 2001:DB8::0-3E7. */
static const char *bep_vector =
    "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE"
    "FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B"
    "7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F"
    "D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3"
    "FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5"
    "BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57"
    "62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6"
    "FD8F72EF";

static void from_hex(uint8_t *out, const char *hex, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
    out[i] = (uint8_t)v;
  }
}

static mdht_addr v6_doc(unsigned low) {
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET6;
  a.ip[0] = 0x20;
  a.ip[1] = 0x01;
  a.ip[2] = 0x0d;
  a.ip[3] = 0xb8;
  a.ip[14] = (uint8_t)(low >> 8);
  a.ip[15] = (uint8_t)low;
  return a;
}

static void fill_bep_example(mdht_bloom *b) {
  mdht_bloom_clear(b);
  for (unsigned i = 0; i < 256; i++) {
    mdht_addr a = test_addr4(192, 0, 2, (uint8_t)i, 6881);
    mdht_bloom_insert(b, &a);
  }
  for (unsigned i = 0; i <= 0x3e7; i++) {
    mdht_addr a = v6_doc(i);
    mdht_bloom_insert(b, &a);
  }
}

static void test_bep_vector(void **state) {
  (void)state;
  mdht_bloom b;
  uint8_t want[MDHT_BLOOM_BYTES];
  assert_int_equal(strlen(bep_vector), 2 * MDHT_BLOOM_BYTES);
  from_hex(want, bep_vector, sizeof want);
  fill_bep_example(&b);
  assert_memory_equal(b.bits, want, sizeof want);
  /* "For the 1256 inserted values the calculated estimate should be
   * 1224.9308" */
  assert_true(fabs(mdht_bloom_estimate(&b) - 1224.9308) < 0.0001);
}

/* The port is not part of the key: one host announcing on two ports is
 * one host. */
static void test_port_ignored(void **state) {
  (void)state;
  mdht_bloom a, b;
  mdht_bloom_clear(&a);
  mdht_bloom_clear(&b);
  mdht_addr x = test_addr4(10, 1, 2, 3, 1), y = test_addr4(10, 1, 2, 3, 2);
  mdht_bloom_insert(&a, &x);
  mdht_bloom_insert(&b, &y);
  assert_memory_equal(a.bits, b.bits, sizeof a.bits);
  assert_true(mdht_bloom_test(&a, &y));
}

static void test_empty_and_membership(void **state) {
  (void)state;
  mdht_bloom b;
  mdht_bloom_clear(&b);
  assert_true(mdht_bloom_estimate(&b) == 0.0);
  mdht_addr x = test_addr4(10, 0, 0, 1, 1);
  assert_false(mdht_bloom_test(&b, &x));
  mdht_bloom_insert(&b, &x);
  assert_true(mdht_bloom_test(&b, &x));
  /* One address sets at most two bits: the estimate is about one. */
  assert_true(fabs(mdht_bloom_estimate(&b) - 1.0) < 0.01);
}

/* The union of disjoint halves estimates the whole. */
static void test_union(void **state) {
  (void)state;
  mdht_bloom lo, hi, all;
  mdht_bloom_clear(&lo);
  mdht_bloom_clear(&hi);
  fill_bep_example(&all);
  for (unsigned i = 0; i < 256; i++) {
    mdht_addr a = test_addr4(192, 0, 2, (uint8_t)i, 1);
    mdht_bloom_insert(&lo, &a);
  }
  for (unsigned i = 0; i <= 0x3e7; i++) {
    mdht_addr a = v6_doc(i);
    mdht_bloom_insert(&hi, &a);
  }
  assert_true(mdht_bloom_estimate(&lo) < mdht_bloom_estimate(&all));
  mdht_bloom_union(&lo, &hi);
  assert_memory_equal(lo.bits, all.bits, sizeof all.bits);
}

/* A saturated filter still gives a finite number (no log(0)). */
static void test_full_filter(void **state) {
  (void)state;
  mdht_bloom b;
  memset(b.bits, 0xff, sizeof b.bits);
  double e = mdht_bloom_estimate(&b);
  assert_true(isfinite(e));
  assert_true(e > 7000.0);
}

static void test_from_bytes(void **state) {
  (void)state;
  mdht_bloom b;
  uint8_t raw[MDHT_BLOOM_BYTES + 1];
  memset(raw, 0x5a, sizeof raw);
  assert_int_equal(mdht_bloom_from_bytes(&b, raw, 255), MDHT_ERR_INVAL);
  assert_int_equal(mdht_bloom_from_bytes(&b, raw, 257), MDHT_ERR_INVAL);
  assert_int_equal(mdht_bloom_from_bytes(&b, raw, 256), 0);
  assert_memory_equal(b.bits, raw, MDHT_BLOOM_BYTES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bep_vector),
      cmocka_unit_test(test_port_ignored),
      cmocka_unit_test(test_empty_and_membership),
      cmocka_unit_test(test_union),
      cmocka_unit_test(test_full_filter),
      cmocka_unit_test(test_from_bytes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
