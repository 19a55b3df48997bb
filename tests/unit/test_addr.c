#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "addr.h"
#include "id.h"

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static mdht_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  mdht_addr r;
  memset(&r, 0, sizeof r);
  r.family = MDHT_AF_INET;
  r.ip[0] = a;
  r.ip[1] = b;
  r.ip[2] = c;
  r.ip[3] = d;
  r.port = port;
  return r;
}

/* Tests only: the library itself never calls inet_pton. */
static mdht_addr v6(const char *text, uint16_t port) {
  mdht_addr r;
  memset(&r, 0, sizeof r);
  r.family = MDHT_AF_INET6;
  assert_int_equal(inet_pton(AF_INET6, text, r.ip), 1);
  r.port = port;
  return r;
}

static void test_compact_v4(void **state) {
  (void)state;
  mdht_addr a = v4(1, 2, 3, 4, 6881), b;
  uint8_t buf[18];
  assert_int_equal(mdht_addr_to_compact(&a, buf), 6);
  const uint8_t want[6] = {1, 2, 3, 4, 0x1a, 0xe1};
  assert_memory_equal(buf, want, 6);
  memset(&b, 0xee, sizeof b);
  assert_int_equal(mdht_addr_from_compact(&b, buf, 6), 0);
  assert_true(mdht_addr_eq(&a, &b));
  assert_memory_equal(&a, &b, sizeof a); /* fully normalized */
}

static void test_compact_v6(void **state) {
  (void)state;
  mdht_addr a = v6("2001:db8::1:2", 65535), b;
  uint8_t buf[18];
  assert_int_equal(mdht_addr_to_compact(&a, buf), 18);
  assert_memory_equal(buf, a.ip, 16);
  assert_int_equal(buf[16], 0xff);
  assert_int_equal(buf[17], 0xff);
  memset(&b, 0xee, sizeof b);
  assert_int_equal(mdht_addr_from_compact(&b, buf, 18), 0);
  assert_int_equal(b.family, MDHT_AF_INET6);
  assert_true(mdht_addr_eq(&a, &b));
  assert_memory_equal(&a, &b, sizeof a);
}

static void test_compact_bad_len(void **state) {
  (void)state;
  uint8_t buf[40] = {0};
  mdht_addr a;
  mdht_id id;
  size_t bad[] = {0, 4, 5, 7, 16, 17, 19, 26};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(mdht_addr_from_compact(&a, buf, bad[i]), MDHT_ERR_INVAL);
  size_t badn[] = {0, 6, 18, 25, 27, 37, 39};
  for (size_t i = 0; i < sizeof badn / sizeof badn[0]; i++)
    assert_int_equal(mdht_node_from_compact(&id, &a, buf, badn[i]),
                     MDHT_ERR_INVAL);
}

static void test_compact_node(void **state) {
  (void)state;
  mdht_id id, id2;
  for (int i = 0; i < MDHT_ID_LEN; i++)
    id.b[i] = (uint8_t)(i * 7);
  mdht_addr a4 = v4(9, 8, 7, 6, 1), a6 = v6("fe80::1", 2), b;
  uint8_t buf[38];
  assert_int_equal(mdht_node_to_compact(&id, &a4, buf), 26);
  assert_memory_equal(buf, id.b, 20);
  assert_int_equal(mdht_node_from_compact(&id2, &b, buf, 26), 0);
  assert_true(mdht_id_eq(&id, &id2));
  assert_true(mdht_addr_eq(&a4, &b));
  assert_int_equal(mdht_node_to_compact(&id, &a6, buf), 38);
  assert_int_equal(mdht_node_from_compact(&id2, &b, buf, 38), 0);
  assert_true(mdht_id_eq(&id, &id2));
  assert_true(mdht_addr_eq(&a6, &b));
}

static void test_eq(void **state) {
  (void)state;
  mdht_addr a = v4(1, 2, 3, 4, 5), b = a;
  /* Padding and the unused tail of ip[] are not part of the endpoint. */
  b.pad_ = 9;
  b.ip[10] = 1;
  assert_true(mdht_addr_eq(&a, &b));
  assert_true(mdht_addr_ip_eq(&a, &b));
  b.port = 6;
  assert_false(mdht_addr_eq(&a, &b));
  assert_true(mdht_addr_ip_eq(&a, &b));
  b = a;
  b.ip[3] = 5;
  assert_false(mdht_addr_eq(&a, &b));
  assert_false(mdht_addr_ip_eq(&a, &b));
  /* Same bytes, other family. */
  mdht_addr c = v6("::", 5);
  memcpy(c.ip, a.ip, 4);
  assert_false(mdht_addr_eq(&a, &c));
  assert_false(mdht_addr_ip_eq(&a, &c));
  mdht_addr d = v6("2001:db8::1", 5), e = v6("2001:db8::2", 5);
  assert_false(mdht_addr_eq(&d, &e));
  e.ip[15] = 1;
  assert_true(mdht_addr_eq(&d, &e));
}

static void test_hash(void **state) {
  (void)state;
  mdht_addr a = v4(1, 2, 3, 4, 5), b = a;
  b.pad_ = 3;
  b.ip[12] = 99;
  assert_int_equal(mdht_addr_hash(&a, 1), mdht_addr_hash(&b, 1));
  /* Port, ip and key all matter. Single collisions are possible in
   * principle, so count over many. */
  int same_port = 0, same_seed = 0;
  for (uint16_t p = 1; p < 200; p++) {
    mdht_addr x = v4(1, 2, 3, 4, p), y = v4(1, 2, 3, 4, (uint16_t)(p + 1));
    same_port += mdht_addr_hash(&x, 7) == mdht_addr_hash(&y, 7);
    same_seed += mdht_addr_hash(&x, 7) == mdht_addr_hash(&x, 8);
  }
  assert_true(same_port < 2);
  assert_true(same_seed < 2);
  /* Bucket spread: low bits of the hash of sequential ports. */
  int used[64] = {0};
  for (uint16_t p = 1; p <= 64; p++) {
    mdht_addr x = v4(10, 0, 0, 1, p);
    used[mdht_addr_hash(&x, 12345) & 63] = 1;
  }
  int distinct = 0;
  for (int i = 0; i < 64; i++)
    distinct += used[i];
  assert_true(distinct > 32);
}

static void test_martian(void **state) {
  (void)state;
  struct {
    mdht_addr a;
    bool martian;
  } t[] = {
      {v4(1, 2, 3, 4, 6881), false},
      {v4(1, 2, 3, 4, 0), true},
      {v4(0, 0, 0, 0, 1), true},
      {v4(0, 1, 2, 3, 1), true},
      {v4(223, 255, 255, 255, 1), false},
      {v4(224, 0, 0, 1, 1), true},
      {v4(239, 255, 255, 250, 1), true},
      {v4(240, 0, 0, 1, 1), true},
      {v4(255, 255, 255, 255, 1), true},
      {v4(127, 0, 0, 1, 1), false}, /* private, not martian */
      {v4(10, 0, 0, 1, 1), false},
      {v6("2001:db8::1", 1), false},
      {v6("2001:db8::1", 0), true},
      {v6("::", 1), true},
      {v6("ff02::1", 1), true},
      {v6("ff00::", 1), true},
      {v6("fe80::1", 1), false},
      {v6("::1", 1), false},
      {v6("::ffff:1.2.3.4", 1), false},
      {v6("::ffff:0.0.0.0", 1), true},
      {v6("::ffff:224.0.0.1", 1), true},
      {v6("::ffff:255.255.255.255", 1), true},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char buf[64];
    mdht_addr_format(&t[i].a, buf, sizeof buf);
    if (mdht_addr_is_martian(&t[i].a) != t[i].martian)
      fail_msg("%s: martian should be %d", buf, t[i].martian);
  }
  mdht_addr bogus = v4(1, 2, 3, 4, 1);
  bogus.family = 9;
  assert_true(mdht_addr_is_martian(&bogus));
}

static void test_private(void **state) {
  (void)state;
  struct {
    mdht_addr a;
    bool priv;
  } t[] = {
      {v4(1, 2, 3, 4, 1), false},
      {v4(127, 0, 0, 1, 1), true},
      {v4(127, 255, 255, 254, 1), true},
      {v4(10, 0, 0, 1, 1), true},
      {v4(10, 255, 255, 255, 1), true},
      {v4(11, 0, 0, 1, 1), false},
      {v4(172, 15, 255, 255, 1), false},
      {v4(172, 16, 0, 0, 1), true},
      {v4(172, 31, 255, 255, 1), true},
      {v4(172, 32, 0, 0, 1), false},
      {v4(192, 168, 1, 1, 1), true},
      {v4(192, 167, 1, 1, 1), false},
      {v4(192, 169, 1, 1, 1), false},
      {v4(169, 254, 3, 4, 1), true},
      {v4(169, 253, 3, 4, 1), false},
      {v4(100, 63, 255, 255, 1), false},
      {v4(100, 64, 0, 0, 1), true},
      {v4(100, 127, 255, 255, 1), true},
      {v4(100, 128, 0, 0, 1), false},
      {v6("::1", 1), true},
      {v6("::2", 1), false},
      {v6("fc00::1", 1), true},
      {v6("fdff:ffff::1", 1), true},
      {v6("fe00::1", 1), false},
      {v6("fe80::1", 1), true},
      {v6("febf:ffff::1", 1), true},
      {v6("fec0::1", 1), false},
      {v6("2001:db8::1", 1), false},
      {v6("::ffff:192.168.0.1", 1), true},
      {v6("::ffff:8.8.8.8", 1), false},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char buf[64];
    mdht_addr_format(&t[i].a, buf, sizeof buf);
    if (mdht_addr_is_private(&t[i].a) != t[i].priv)
      fail_msg("%s: private should be %d", buf, t[i].priv);
  }
}

static void test_format(void **state) {
  (void)state;
  struct {
    mdht_addr a;
    const char *text;
  } t[] = {
      {v4(1, 2, 3, 4, 6881), "1.2.3.4:6881"},
      {v4(255, 255, 255, 255, 65535), "255.255.255.255:65535"},
      {v4(0, 0, 0, 0, 0), "0.0.0.0:0"},
      {v6("::1", 6881), "[::1]:6881"},
      {v6("::", 1), "[::]:1"},
      {v6("2001:db8::1", 80), "[2001:db8::1]:80"},
      {v6("2001:db8:0:0:1:0:0:1", 80), "[2001:db8::1:0:0:1]:80"},
      {v6("2001:0:0:1:0:0:0:1", 80), "[2001:0:0:1::1]:80"},
      {v6("2001:db8:0:1:1:1:1:1", 80), "[2001:db8:0:1:1:1:1:1]:80"},
      {v6("1::", 2), "[1::]:2"},
      {v6("FE80::ABCD", 3), "[fe80::abcd]:3"},
      {v6("::ffff:1.2.3.4", 4), "[::ffff:1.2.3.4]:4"},
      {v6("1:2:3:4:5:6:7:8", 5), "[1:2:3:4:5:6:7:8]:5"},
      {v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
       "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char buf[64];
    int n = mdht_addr_format(&t[i].a, buf, sizeof buf);
    assert_string_equal(buf, t[i].text);
    assert_int_equal(n, (int)strlen(t[i].text));
    /* Exactly enough room, and one byte short. */
    char tight[64];
    assert_int_equal(mdht_addr_format(&t[i].a, tight, (size_t)n + 1), n);
    assert_string_equal(tight, t[i].text);
    assert_int_equal(mdht_addr_format(&t[i].a, tight, (size_t)n),
                     MDHT_ERR_NOBUF);
  }
  mdht_addr bogus = v4(1, 2, 3, 4, 1);
  bogus.family = 0;
  char buf[64];
  assert_true(mdht_addr_format(&bogus, buf, sizeof buf) < 0);
}

static void test_format_matches_inet_ntop(void **state) {
  (void)state;
  uint64_t s = 99;
  for (int n = 0; n < 5000; n++) {
    mdht_addr a;
    memset(&a, 0, sizeof a);
    a.family = MDHT_AF_INET6;
    a.port = 1;
    /* Mostly-zero groups so that "::" placement is exercised. */
    for (int g = 0; g < 8; g++) {
      uint64_t r = rng_next(&s);
      uint16_t w = (r & 3) ? 0 : (uint16_t)(r >> 16);
      a.ip[2 * g] = (uint8_t)(w >> 8);
      a.ip[2 * g + 1] = (uint8_t)w;
    }
    static const uint8_t zero12[12] = {0};
    /* glibc writes IPv4-compatible ::a.b.c.d in dotted form; we do not
     * (that form is deprecated), so skip those. */
    if (memcmp(a.ip, zero12, 12) == 0) continue;
    char want[INET6_ADDRSTRLEN], got[64], expect[80];
    inet_ntop(AF_INET6, a.ip, want, sizeof want);
    snprintf(expect, sizeof expect, "[%s]:1", want);
    mdht_addr_format(&a, got, sizeof got);
    assert_string_equal(got, expect);
    mdht_addr back;
    assert_int_equal(mdht_addr_parse(&back, got), 0);
    assert_memory_equal(&back, &a, sizeof a);
  }
}

static void test_parse(void **state) {
  (void)state;
  mdht_addr a;
  assert_int_equal(mdht_addr_parse(&a, "1.2.3.4:6881"), 0);
  mdht_addr want = v4(1, 2, 3, 4, 6881);
  assert_memory_equal(&a, &want, sizeof a);
  assert_int_equal(mdht_addr_parse(&a, "[::1]:6881"), 0);
  want = v6("::1", 6881);
  assert_memory_equal(&a, &want, sizeof a);
  assert_int_equal(mdht_addr_parse(&a, "0.0.0.0:65535"), 0);
  assert_int_equal(a.port, 65535);
  assert_int_equal(mdht_addr_parse(&a, "[::ffff:10.0.0.1]:1"), 0);
  want = v6("::ffff:10.0.0.1", 1);
  assert_memory_equal(&a, &want, sizeof a);
  assert_int_equal(mdht_addr_parse(&a, "[::]:1"), 0);
  assert_int_equal(mdht_addr_parse(&a, "[1:2:3:4:5:6:7:8]:1"), 0);
  assert_int_equal(mdht_addr_parse(&a, "[1:2:3:4:5:6:1.2.3.4]:1"), 0);
  want = v6("1:2:3:4:5:6:102:304", 1);
  assert_memory_equal(&a, &want, sizeof a);
  assert_int_equal(mdht_addr_parse(&a, "[FE80::AbCd]:7"), 0);
  want = v6("fe80::abcd", 7);
  assert_memory_equal(&a, &want, sizeof a);
  assert_int_equal(mdht_addr_parse(&a, "[1::]:7"), 0);
  assert_int_equal(mdht_addr_parse(&a, "[1::2:3]:7"), 0);
  want = v6("1::2:3", 7);
  assert_memory_equal(&a, &want, sizeof a);
}

static void test_parse_rejects(void **state) {
  (void)state;
  const char *bad[] = {
      "",
      "1.2.3.4",
      "1.2.3.4:",
      "1.2.3.4:0",
      "1.2.3.4:65536",
      "1.2.3.4:99999999",
      "1.2.3.4:-1",
      "1.2.3.4:+1",
      "1.2.3.4:80x",
      "1.2.3.4:80 ",
      " 1.2.3.4:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "1.2.3.256:80",
      "1.2.3.04:80",
      "1..3.4:80",
      "a.b.c.d:80",
      "1.2.3.4:80:81",
      "localhost:80",
      "::1:80",
      "[::1]",
      "[::1]:",
      "[::1]:0",
      "[::1]80",
      "[::1:80",
      "::1]:80",
      "[]:80",
      "[:]:80",
      "[:::]:80",
      "[1:::2]:80",
      "[1::2::3]:80",
      "[1:2:3:4:5:6:7:8:9]:80",
      "[1:2:3:4:5:6:7]:80",
      "[1:2:3:4:5:6:7:8::]:80",
      "[::1:2:3:4:5:6:7:8]:80",
      "[12345::1]:80",
      "[g::1]:80",
      "[1:]:80",
      "[:1]:80",
      "[1:2:3:4:5:6:7:1.2.3.4]:80",
      "[::1.2.3]:80",
      "[::1.2.3.4:5]:80",
      "[fe80::1%eth0]:80",
      "[1.2.3.4]:80",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mdht_addr a;
    memset(&a, 0x5a, sizeof a);
    if (mdht_addr_parse(&a, bad[i]) != MDHT_ERR_INVAL)
      fail_msg("accepted \"%s\"", bad[i]);
  }
  mdht_addr a;
  assert_int_equal(mdht_addr_parse(&a, NULL), MDHT_ERR_INVAL);
  assert_int_equal(mdht_addr_parse(NULL, "1.2.3.4:5"), MDHT_ERR_INVAL);
}

static void test_roundtrip_random(void **state) {
  (void)state;
  uint64_t s = 5;
  for (int n = 0; n < 3000; n++) {
    mdht_addr a;
    memset(&a, 0, sizeof a);
    uint64_t r = rng_next(&s);
    a.family = (r & 1) ? MDHT_AF_INET6 : MDHT_AF_INET;
    a.port = (uint16_t)(1 + (r >> 8) % 65535);
    for (int i = 0; i < (a.family == MDHT_AF_INET ? 4 : 16); i++)
      a.ip[i] = (rng_next(&s) & 1) ? 0 : (uint8_t)rng_next(&s);
    char buf[64];
    assert_true(mdht_addr_format(&a, buf, sizeof buf) > 0);
    mdht_addr b;
    assert_int_equal(mdht_addr_parse(&b, buf), 0);
    assert_memory_equal(&a, &b, sizeof a);
    uint8_t c[18];
    size_t len = mdht_addr_to_compact(&a, c);
    assert_int_equal(mdht_addr_from_compact(&b, c, len), 0);
    assert_memory_equal(&a, &b, sizeof a);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_compact_v4),
      cmocka_unit_test(test_compact_v6),
      cmocka_unit_test(test_compact_bad_len),
      cmocka_unit_test(test_compact_node),
      cmocka_unit_test(test_eq),
      cmocka_unit_test(test_hash),
      cmocka_unit_test(test_martian),
      cmocka_unit_test(test_private),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_format_matches_inet_ntop),
      cmocka_unit_test(test_parse),
      cmocka_unit_test(test_parse_rejects),
      cmocka_unit_test(test_roundtrip_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
