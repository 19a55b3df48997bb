/* Unit tests of the bencode tokenizer and encoder (src/core/bencode.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bencode.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1
#define NTOKS 256

typedef struct valid_case {
  const char *name;
  const uint8_t *in;
  size_t len;
  int ntok;        /* expected return */
  size_t consumed; /* expected value length (input may have a tail) */
} valid_case;

static const valid_case valid[] = {
    {"zero", S("i0e"), 1, 3},
    {"negative", S("i-1e"), 1, 4},
    {"int64 max", S("i9223372036854775807e"), 1, 21},
    {"int64 min", S("i-9223372036854775808e"), 1, 22},
    {"empty string", S("0:"), 1, 2},
    {"string", S("4:spam"), 1, 6},
    {"binary string", S("3:\0\xff\0"), 1, 5},
    {"string of digits and e", S("3:i1e"), 1, 5},
    {"empty list", S("le"), 1, 2},
    {"empty dict", S("de"), 1, 2},
    {"list", S("l4:spami42ee"), 3, 12},
    {"dict", S("d3:bar4:spam3:fooi42ee"), 5, 22},
    {"prefix key first", S("d1:a0:2:ab0:e"), 5, 13},
    {"empty key", S("d0:i1ee"), 3, 7},
    {"binary keys sorted", S("d1:\x01i1e1:\xffi2ee"), 5, 14},
    {"nested", S("d1:ald1:bleee1:ci0ee"), 8, 20},
    {"nested lists", S("llleee"), 3, 6},
    {"trailing bytes", S("i1ejunk"), 1, 3},
    {"trailing after dict", S("de\0\0"), 1, 2},
    {"two values: first only", S("i1ei2e"), 1, 3},
    {"long length", S("10:0123456789"), 1, 13},
    {"ping query",
     S("d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"), 11, 56},
};

typedef struct invalid_case {
  const char *name;
  const uint8_t *in;
  size_t len;
  int err;
} invalid_case;

static const invalid_case invalid[] = {
    {"empty input", S(""), MDHT_ERR_PARSE},
    {"lone i", S("i"), MDHT_ERR_PARSE},
    {"ie", S("ie"), MDHT_ERR_PARSE},
    {"i-e", S("i-e"), MDHT_ERR_PARSE},
    {"i01e", S("i01e"), MDHT_ERR_PARSE},
    {"i00e", S("i00e"), MDHT_ERR_PARSE},
    {"i-0e", S("i-0e"), MDHT_ERR_PARSE},
    {"i-01e", S("i-01e"), MDHT_ERR_PARSE},
    {"i+1e", S("i+1e"), MDHT_ERR_PARSE},
    {"i 1e", S("i 1e"), MDHT_ERR_PARSE},
    {"i--1e", S("i--1e"), MDHT_ERR_PARSE},
    {"int unterminated", S("i12"), MDHT_ERR_PARSE},
    {"int bad end", S("i12x"), MDHT_ERR_PARSE},
    {"int64 max + 1", S("i9223372036854775808e"), MDHT_ERR_PARSE},
    {"int64 min - 1", S("i-9223372036854775809e"), MDHT_ERR_PARSE},
    {"2^64", S("i18446744073709551616e"), MDHT_ERR_PARSE},
    {"huge int", S("i99999999999999999999e"), MDHT_ERR_PARSE},
    {"01:a", S("01:a"), MDHT_ERR_PARSE},
    {"00:", S("00:"), MDHT_ERR_PARSE},
    {"string truncated", S("2:a"), MDHT_ERR_PARSE},
    {"string no body", S("1:"), MDHT_ERR_PARSE},
    {"length only", S("5"), MDHT_ERR_PARSE},
    {"length bad sep", S("5x"), MDHT_ERR_PARSE},
    {"lone colon", S(":"), MDHT_ERR_PARSE},
    {"negative length", S("-1:a"), MDHT_ERR_PARSE},
    {"huge length", S("99999999999999999999:"), MDHT_ERR_PARSE},
    {"huge length with body", S("99999999999999999999:abc"), MDHT_ERR_PARSE},
    {"size_t max length", S("18446744073709551615:a"), MDHT_ERR_PARSE},
    {"2^64+1 length (wraps to 1)", S("18446744073709551617:a"), MDHT_ERR_PARSE},
    {"2^32 length (wraps to 0)", S("4294967296:a"), MDHT_ERR_PARSE},
    {"2^32+1 length (wraps to 1)", S("4294967297:a"), MDHT_ERR_PARSE},
    {"lone e", S("e"), MDHT_ERR_PARSE},
    {"unknown type", S("x"), MDHT_ERR_PARSE},
    {"list unterminated", S("l"), MDHT_ERR_PARSE},
    {"list unterminated after item", S("l1:a"), MDHT_ERR_PARSE},
    {"list bad item", S("lxe"), MDHT_ERR_PARSE},
    {"dict unterminated", S("d"), MDHT_ERR_PARSE},
    {"dict key without value", S("d1:ae"), MDHT_ERR_PARSE},
    {"dict truncated after key", S("d1:a"), MDHT_ERR_PARSE},
    {"dict int key", S("di1ei2ee"), MDHT_ERR_PARSE},
    {"dict list key", S("dlei1ee"), MDHT_ERR_PARSE},
    {"dict dict key", S("ddei1ee"), MDHT_ERR_PARSE},
    {"dict unsorted", S("d1:b0:1:a0:e"), MDHT_ERR_PARSE},
    {"dict duplicate", S("d1:a0:1:a0:e"), MDHT_ERR_PARSE},
    {"dict duplicate empty key", S("d0:0:0:0:e"), MDHT_ERR_PARSE},
    {"dict prefix after longer", S("d2:ab0:1:a0:e"), MDHT_ERR_PARSE},
    {"dict unsigned byte order", S("d1:\xffi1e1:\x01i2ee"), MDHT_ERR_PARSE},
    {"nested dict unsorted", S("ld1:b0:1:a0:ee"), MDHT_ERR_PARSE},
    {"nested bad int", S("d1:ai-0ee"), MDHT_ERR_PARSE},
    {"dict bad value", S("d1:axe"), MDHT_ERR_PARSE},
};

/* Writes the subtree at token i with the encoder; returns the next token. */
static uint32_t reencode(mdht_be_w *w, const uint8_t *buf,
                         const mdht_be_tok *toks, uint32_t i) {
  switch (toks[i].type) {
  case MDHT_BE_INT:
    mdht_be_w_int(w, toks[i].ival);
    return i + 1;
  case MDHT_BE_STR:
    mdht_be_w_str(w, buf + toks[i].start, toks[i].len);
    return i + 1;
  default:
    if (toks[i].type == MDHT_BE_LIST)
      mdht_be_w_list(w);
    else
      mdht_be_w_dict(w);
    for (uint32_t j = i + 1; j < toks[i].next;)
      j = reencode(w, buf, toks, j);
    mdht_be_w_end(w);
    return toks[i].next;
  }
}

/* Copies `len` bytes so that they end exactly where a PROT_NONE page
 * begins: any read past the input faults. */
typedef struct guard {
  uint8_t *base;
  size_t page;
} guard;

static guard guard_new(void) {
  guard g;
  g.page = (size_t)sysconf(_SC_PAGESIZE);
  void *p = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(p != MAP_FAILED);
  g.base = p;
  assert_int_equal(mprotect(g.base + g.page, g.page, PROT_NONE), 0);
  return g;
}

static const uint8_t *guard_place(guard *g, const uint8_t *in, size_t len) {
  assert_true(len <= g->page);
  uint8_t *dst = g->base + g->page - len;
  if (len) memcpy(dst, in, len);
  return dst;
}

static void guard_free(guard *g) {
  munmap(g->base, 2 * g->page);
}

static void test_valid_cases(void **state) {
  (void)state;
  mdht_be_tok toks[NTOKS];
  uint8_t out[256];
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    const valid_case *c = &valid[i];
    size_t consumed = 0;
    int n = mdht_be_decode(c->in, c->len, toks, NTOKS, &consumed);
    if (n != c->ntok || consumed != c->consumed)
      fail_msg("%s: got %d tokens, %zu bytes", c->name, n, consumed);
    assert_int_equal(toks[0].next, (uint32_t)n);

    /* Canonical input re-encodes to the very same bytes. */
    mdht_be_w w;
    mdht_be_w_init(&w, out, sizeof out);
    assert_int_equal(reencode(&w, c->in, toks, 0), (uint32_t)n);
    int len = mdht_be_w_finish(&w);
    if (len != (int)c->consumed || memcmp(out, c->in, c->consumed))
      fail_msg("%s: re-encoding differs", c->name);
  }
}

static void test_invalid_cases(void **state) {
  (void)state;
  mdht_be_tok toks[NTOKS];
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    const invalid_case *c = &invalid[i];
    size_t consumed = 12345;
    int rc = mdht_be_decode(c->in, c->len, toks, NTOKS, &consumed);
    if (rc != c->err) fail_msg("%s: got %d, want %d", c->name, rc, c->err);
    if (consumed != 12345) fail_msg("%s: consumed written on failure", c->name);
  }
}

static void test_guard_page(void **state) {
  (void)state;
  mdht_be_tok toks[NTOKS];
  guard g = guard_new();
  for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
    const valid_case *c = &valid[i];
    const uint8_t *p = guard_place(&g, c->in, c->len);
    size_t consumed = 0;
    if (mdht_be_decode(p, c->len, toks, NTOKS, &consumed) != c->ntok ||
        consumed != c->consumed)
      fail_msg("%s: differs at the guard page", c->name);
    /* Every proper prefix of the value is truncated input. */
    for (size_t k = 0; k < c->consumed; k++) {
      p = guard_place(&g, c->in, k);
      int rc = mdht_be_decode(p, k, toks, NTOKS, NULL);
      if (rc != MDHT_ERR_PARSE)
        fail_msg("%s: prefix of %zu bytes gave %d", c->name, k, rc);
    }
  }
  for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
    const invalid_case *c = &invalid[i];
    const uint8_t *p = guard_place(&g, c->in, c->len);
    if (mdht_be_decode(p, c->len, toks, NTOKS, NULL) != c->err)
      fail_msg("%s: differs at the guard page", c->name);
  }
  guard_free(&g);
}

static void test_token_fields(void **state) {
  (void)state;
  static const char in[] = "d3:bar4:spam3:fooli7ei-2eee";
  mdht_be_tok t[16];
  assert_int_equal(mdht_be_decode(S(in), t, 16, NULL), 7);
  assert_int_equal(t[0].type, MDHT_BE_DICT);
  assert_int_equal(t[0].start, 0);
  assert_int_equal(t[0].len, 2);
  assert_int_equal(t[0].next, 7);
  assert_int_equal(t[1].type, MDHT_BE_STR);
  assert_int_equal(t[1].start, 3);
  assert_int_equal(t[1].len, 3);
  assert_int_equal(t[1].next, 2);
  assert_int_equal(t[2].type, MDHT_BE_STR);
  assert_memory_equal(in + t[2].start, "spam", 4);
  assert_int_equal(t[3].type, MDHT_BE_STR);
  assert_memory_equal(in + t[3].start, "foo", 3);
  assert_int_equal(t[4].type, MDHT_BE_LIST);
  assert_int_equal(t[4].start, 17);
  assert_int_equal(t[4].len, 2);
  assert_int_equal(t[4].next, 7);
  assert_int_equal(t[5].type, MDHT_BE_INT);
  assert_int_equal(t[5].ival, 7);
  assert_int_equal(t[5].next, 6);
  assert_int_equal(t[6].type, MDHT_BE_INT);
  assert_int_equal(t[6].ival, -2);

  mdht_be_tok m[4];
  assert_int_equal(mdht_be_decode(S("i-9223372036854775808e"), m, 4, NULL), 1);
  assert_true(m[0].ival == INT64_MIN);
  assert_int_equal(mdht_be_decode(S("i9223372036854775807e"), m, 4, NULL), 1);
  assert_true(m[0].ival == INT64_MAX);
}

static void test_dict_get(void **state) {
  (void)state;
  static const char in[] = "d1:ali1ee1:bd1:xi5ee2:bbi2e1:c3:abce";
  const uint8_t *b = (const uint8_t *)in;
  mdht_be_tok t[32];
  assert_true(mdht_be_decode(S(in), t, 32, NULL) > 0);
  int a = mdht_be_dict_get(b, t, 0, "a", 1);
  assert_true(a > 0);
  assert_int_equal(t[a].type, MDHT_BE_LIST);
  int bb = mdht_be_dict_get(b, t, 0, "bb", 2);
  assert_true(bb > 0);
  assert_int_equal(t[bb].ival, 2);
  int c = mdht_be_dict_get(b, t, 0, "c", 1);
  assert_true(c > 0);
  assert_memory_equal(b + t[c].start, "abc", 3);
  /* "x" lives in a nested dict, not at the top. */
  assert_int_equal(mdht_be_dict_get(b, t, 0, "x", 1), -1);
  int d = mdht_be_dict_get(b, t, 0, "b", 1);
  int x = mdht_be_dict_get(b, t, d, "x", 1);
  assert_true(x > 0);
  assert_int_equal(t[x].ival, 5);
  assert_int_equal(mdht_be_dict_get(b, t, 0, "", 0), -1);
  assert_int_equal(mdht_be_dict_get(b, t, 0, "d", 1), -1);
  assert_int_equal(mdht_be_dict_get(b, t, 0, "ab", 2), -1);
  /* Not a dict. */
  assert_int_equal(mdht_be_dict_get(b, t, a, "a", 1), -1);
  assert_int_equal(mdht_be_dict_get(b, t, -1, "a", 1), -1);

  assert_int_equal(mdht_be_dict_get_t(b, t, 0, "bb", MDHT_BE_INT), bb);
  assert_int_equal(mdht_be_dict_get_t(b, t, 0, "bb", MDHT_BE_STR), -1);
  assert_int_equal(mdht_be_dict_get_t(b, t, 0, "c", MDHT_BE_STR), c);
  assert_int_equal(mdht_be_dict_get_t(b, t, 0, "a", MDHT_BE_LIST), a);
  assert_int_equal(mdht_be_dict_get_t(b, t, 0, "zz", MDHT_BE_LIST), -1);
}

static void nest(uint8_t *buf, size_t depth, char open) {
  memset(buf, open, depth);
  memset(buf + depth, 'e', depth);
}

static void test_depth(void **state) {
  (void)state;
  mdht_be_tok toks[128];
  uint8_t buf[2 * 64];
  nest(buf, MDHT_BE_MAX_DEPTH, 'l');
  assert_int_equal(mdht_be_decode(buf, 2 * MDHT_BE_MAX_DEPTH, toks, 128, NULL),
                   MDHT_BE_MAX_DEPTH);
  nest(buf, MDHT_BE_MAX_DEPTH + 1, 'l');
  assert_int_equal(
      mdht_be_decode(buf, 2 * (MDHT_BE_MAX_DEPTH + 1), toks, 128, NULL),
      MDHT_ERR_LIMIT);

  /* Dicts nest through values: d1:ad1:a...i0e...ee */
  uint8_t dbuf[64 * 5];
  size_t n = 0;
  for (int i = 0; i < MDHT_BE_MAX_DEPTH + 1; i++) {
    memcpy(dbuf + n, "d1:a", 4);
    n += 4;
  }
  memcpy(dbuf + n, "i0e", 3);
  n += 3;
  memset(dbuf + n, 'e', MDHT_BE_MAX_DEPTH + 1);
  n += MDHT_BE_MAX_DEPTH + 1;
  assert_int_equal(mdht_be_decode(dbuf, n, toks, 128, NULL), MDHT_ERR_LIMIT);
  /* One level less is fine. */
  assert_int_equal(mdht_be_decode(dbuf + 4, n - 5, toks, 128, NULL),
                   2 * MDHT_BE_MAX_DEPTH + 1);

  /* 10,000 levels: a bounded failure, not a stack overflow. */
  size_t deep = 10000;
  uint8_t *big = malloc(2 * deep);
  assert_non_null(big);
  nest(big, deep, 'l');
  assert_int_equal(mdht_be_decode(big, 2 * deep, toks, 128, NULL),
                   MDHT_ERR_LIMIT);
  free(big);
  /* d1:ald1:al...: lists and dicts mixed. */
  big = malloc(5 * deep);
  assert_non_null(big);
  for (size_t i = 0; i < deep; i++)
    memcpy(big + 5 * i, "d1:al", 5);
  assert_int_equal(mdht_be_decode(big, 5 * deep, toks, 128, NULL),
                   MDHT_ERR_LIMIT);
  free(big);
}

static void test_token_limit(void **state) {
  (void)state;
  static const char in[] = "l1:a1:bi3ee"; /* 4 tokens */
  mdht_be_tok toks[4];
  assert_int_equal(mdht_be_decode(S(in), toks, 4, NULL), 4);
  assert_int_equal(mdht_be_decode(S(in), toks, 3, NULL), MDHT_ERR_LIMIT);
  assert_int_equal(mdht_be_decode(S(in), toks, 1, NULL), MDHT_ERR_LIMIT);
  assert_int_equal(mdht_be_decode(S("i1e"), toks, 0, NULL), MDHT_ERR_LIMIT);
  /* A sentinel past ntoks is never touched. */
  mdht_be_tok t5[5];
  memset(t5, 0xab, sizeof t5);
  assert_int_equal(mdht_be_decode(S("l1:a1:b1:c1:de"), t5, 4, NULL),
                   MDHT_ERR_LIMIT);
  assert_int_equal(t5[4].type, 0xab);
  assert_int_equal(mdht_be_decode(NULL, 0, toks, 4, NULL), MDHT_ERR_PARSE);
}

/* ---------------------------------------------------------------- encoder */

static void test_encode_values(void **state) {
  (void)state;
  uint8_t buf[256];
  mdht_be_w w;
  mdht_be_w_init(&w, buf, sizeof buf);
  mdht_be_w_dict(&w);
  mdht_be_w_cstr(&w, "a");
  mdht_be_w_list(&w);
  mdht_be_w_int(&w, 0);
  mdht_be_w_int(&w, -1);
  mdht_be_w_int(&w, INT64_MAX);
  mdht_be_w_int(&w, INT64_MIN);
  mdht_be_w_str(&w, "", 0);
  mdht_be_w_str(&w, NULL, 0);
  mdht_be_w_str(&w, "\0x", 2);
  mdht_be_w_end(&w);
  mdht_be_w_cstr(&w, "b");
  mdht_be_w_raw(&w, "3:raw", 5);
  mdht_be_w_end(&w);
  static const char want[] = "d1:ali0ei-1ei9223372036854775807e"
                             "i-9223372036854775808e0:0:2:\0xe1:b3:rawe";
  assert_int_equal(mdht_be_w_finish(&w), sizeof want - 1);
  assert_memory_equal(buf, want, sizeof want - 1);

  /* And it decodes back. */
  mdht_be_tok t[16];
  assert_int_equal(mdht_be_decode(buf, sizeof want - 1, t, 16, NULL), 12);
  assert_true(t[5].ival == INT64_MAX);
  assert_true(t[6].ival == INT64_MIN);
}

/* Writes a fixed sequence into a buffer of capacity `cap`. */
static int write_seq(uint8_t *buf, size_t cap) {
  mdht_be_w w;
  mdht_be_w_init(&w, buf, cap);
  mdht_be_w_dict(&w);
  mdht_be_w_cstr(&w, "key");
  mdht_be_w_int(&w, -12345);
  mdht_be_w_cstr(&w, "list");
  mdht_be_w_list(&w);
  mdht_be_w_str(&w, "0123456789", 10);
  mdht_be_w_end(&w);
  mdht_be_w_end(&w);
  return mdht_be_w_finish(&w);
}

static void test_encode_nobuf(void **state) {
  (void)state;
  static const char want[] = "d3:keyi-12345e4:listl10:0123456789ee";
  const size_t n = sizeof want - 1;
  uint8_t buf[64];
  assert_int_equal(write_seq(buf, n), (int)n);
  assert_memory_equal(buf, want, n);
  for (size_t cap = 0; cap < n; cap++) {
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(write_seq(buf, cap), MDHT_ERR_NOBUF);
    for (size_t i = cap; i < sizeof buf; i++)
      if (buf[i] != 0xee) fail_msg("cap %zu: byte %zu written", cap, i);
  }
  /* NULL buffer: nothing fits. */
  assert_int_equal(write_seq(NULL, 100), MDHT_ERR_NOBUF);
}

static void test_encode_sticky(void **state) {
  (void)state;
  uint8_t buf[8];
  mdht_be_w w;
  mdht_be_w_init(&w, buf, sizeof buf);
  mdht_be_w_str(&w, "123456789", 9); /* does not fit */
  assert_int_equal(w.err, MDHT_ERR_NOBUF);
  size_t len = w.len;
  mdht_be_w_int(&w, 1); /* would fit, but the error sticks */
  mdht_be_w_list(&w);
  assert_int_equal(w.len, len);
  assert_int_equal(mdht_be_w_finish(&w), MDHT_ERR_NOBUF);

  /* An 'e' with nothing open. */
  mdht_be_w_init(&w, buf, sizeof buf);
  mdht_be_w_int(&w, 1);
  mdht_be_w_end(&w);
  assert_int_equal(mdht_be_w_finish(&w), MDHT_ERR_INVAL);

  /* A container left open. */
  mdht_be_w_init(&w, buf, sizeof buf);
  mdht_be_w_list(&w);
  assert_int_equal(mdht_be_w_finish(&w), MDHT_ERR_INVAL);

  /* Deeper than the decoder accepts. */
  uint8_t big[2 * (MDHT_BE_MAX_DEPTH + 1)];
  mdht_be_w_init(&w, big, sizeof big);
  for (int i = 0; i < MDHT_BE_MAX_DEPTH; i++)
    mdht_be_w_list(&w);
  assert_int_equal(w.err, 0);
  mdht_be_w_list(&w);
  assert_int_equal(mdht_be_w_finish(&w), MDHT_ERR_LIMIT);
}

/* The verbatim span of each value of a dict, whatever its type: BEP 44
 * hashes these bytes. */
static void test_span(void **state) {
  (void)state;
  const char *in = "d1:ai-12e1:bl1:xi3ee1:cde1:d12:Hello World!1:eld1:kleee"
                   "1:fi0ee";
  const char *want[] = {"i-12e",           "l1:xi3ee",  "de",
                        "12:Hello World!", "ld1:kleee", "i0e"};
  mdht_be_tok toks[64];
  size_t len = strlen(in);
  assert_true(mdht_be_decode((const uint8_t *)in, len, toks, 64, NULL) > 0);
  int i = 1;
  for (size_t k = 0; k < 6; k++) {
    int v = (int)toks[i].next; /* the value after key i */
    size_t off, n = mdht_be_span((const uint8_t *)in, toks, v, &off);
    assert_int_equal(n, strlen(want[k]));
    assert_memory_equal(in + off, want[k], n);
    i = (int)toks[v].next;
  }
  /* The whole dict is the whole input. */
  size_t off, n = mdht_be_span((const uint8_t *)in, toks, 0, &off);
  assert_int_equal(off, 0);
  assert_int_equal(n, len);
  /* A 10-byte string has a 3-byte header. */
  const char *s10 = "10:0123456789";
  assert_true(mdht_be_decode((const uint8_t *)s10, 13, toks, 4, NULL) > 0);
  assert_int_equal(mdht_be_span((const uint8_t *)s10, toks, 0, &off), 13);
  assert_int_equal(off, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_span),          cmocka_unit_test(test_valid_cases),
      cmocka_unit_test(test_invalid_cases), cmocka_unit_test(test_guard_page),
      cmocka_unit_test(test_token_fields),  cmocka_unit_test(test_dict_get),
      cmocka_unit_test(test_depth),         cmocka_unit_test(test_token_limit),
      cmocka_unit_test(test_encode_values), cmocka_unit_test(test_encode_nobuf),
      cmocka_unit_test(test_encode_sticky),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
