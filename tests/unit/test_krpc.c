/* Unit tests of the KRPC codec (src/core/krpc.c). */
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

#include "krpc.h"

#define S(lit) (const uint8_t *)(lit), sizeof(lit) - 1

#define IDA "abcdefghij0123456789"
#define IDB "mnopqrstuvwxyz123456"
#define ID19 "abcdefghij012345678"
#define ID21 "abcdefghij0123456789x"
/* 127.0.0.1:6881 */
#define NODE4 "0123456789abcdefghij\x7f\x00\x00\x01\x1a\xe1"
/* [2001:db8::1]:6881 */
#define NODE6                                                                  \
  "0123456789ABCDEFGHIJ\x20\x01\x0d\xb8"                                       \
  "\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1"
#define IP4 "\x01\x02\x03\x04\x1a\xe1"        /* 1.2.3.4:6881 */
#define PK "0123456789abcdef0123456789ABCDEF" /* 32 */
#define SIG PK PK                             /* 64 */

typedef struct msg_case {
  const char *name;
  const uint8_t *in;
  size_t len;
} msg_case;

/* Canonical messages, exactly as mdht_krpc_encode writes them. */
static const msg_case canonical[] = {
    {"ping query", S("d1:ad2:id20:" IDA "e1:q4:ping1:t2:aa1:y1:qe")},
    {"ping query ro v",
     S("d1:ad2:id20:" IDA "e1:q4:ping2:roi1e1:t2:aa1:v4:MD011:y1:qe")},
    {"find_node query",
     S("d1:ad2:id20:" IDA "6:target20:" IDB "e1:q9:find_node1:t2:aa1:y1:qe")},
    {"find_node query want",
     S("d1:ad2:id20:" IDA "6:target20:" IDB
       "4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe")},
    {"get_peers query", S("d1:ad2:id20:" IDA "9:info_hash20:" IDB
                          "e1:q9:get_peers1:t2:aa1:y1:qe")},
    {"get_peers query noseed scrape want",
     S("d1:ad2:id20:" IDA "9:info_hash20:" IDB
       "6:noseedi1e6:scrapei1e4:wantl2:n6ee1:q9:get_peers1:t2:aa1:y1:qe")},
    {"announce_peer query",
     S("d1:ad2:id20:" IDA "9:info_hash20:" IDB
       "4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe")},
    {"announce_peer query implied seed",
     S("d1:ad2:id20:" IDA "12:implied_porti1e9:info_hash20:" IDB
       "4:porti0e4:seedi1e5:token8:aoeusnthe1:q13:announce_peer"
       "1:t2:aa1:y1:qe")},
    {"sample_infohashes query", S("d1:ad2:id20:" IDA "6:target20:" IDB
                                  "e1:q17:sample_infohashes1:t2:aa1:y1:qe")},
    {"unknown query", S("d1:ad2:id20:" IDA "e1:q4:vote1:t2:aa1:y1:qe")},
    {"ping response", S("d1:rd2:id20:" IDB "e1:t2:aa1:y1:re")},
    {"ping response ip v",
     S("d2:ip6:" IP4 "1:rd2:id20:" IDB "e1:t2:aa1:v4:MD011:y1:re")},
    {"find_node response", S("d1:rd2:id20:" IDB "5:nodes52:" NODE4 NODE4
                             "6:nodes638:" NODE6 "e1:t2:aa1:y1:re")},
    {"get_peers response values",
     S("d1:rd2:id20:" IDA
       "5:token8:aoeusnth6:valuesl6:axje.u6:idhtnm18:0123456789abcdefghee"
       "1:t2:aa1:y1:re")},
    {"get_peers response nodes",
     S("d1:rd2:id20:" IDA "5:nodes26:" NODE4 "5:token2:tke1:t2:aa1:y1:re")},
    {"sample_infohashes response",
     S("d1:rd2:id20:" IDA "8:intervali21600e5:nodes26:" NODE4
       "3:numi3e7:samples40:" IDA IDB "e1:t2:aa1:y1:re")},
    {"error", S("d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee")},
    {"error ip v",
     S("d1:eli203e14:Protocol Errore2:ip6:" IP4 "1:t2:aa1:v4:MD011:y1:ee")},
    {"long tid", S("d1:rd2:id20:" IDB "e1:t16:0123456789abcdef1:y1:re")},
    /* BEP 44 */
    {"get query",
     S("d1:ad2:id20:" IDA "6:target20:" IDB "e1:q3:get1:t2:aa1:y1:qe")},
    {"get query seq want", S("d1:ad2:id20:" IDA "3:seqi4e6:target20:" IDB
                             "4:wantl2:n4ee1:q3:get1:t2:aa1:y1:qe")},
    {"put query immutable",
     S("d1:ad2:id20:" IDA "5:token2:tk1:v12:Hello World!e1:q3:put1:t2:aa"
       "1:y1:qe")},
    {"put query immutable dict v",
     S("d1:ad2:id20:" IDA "5:token2:tk1:vd1:ali1ei-2ee1:bdeee1:q3:put1:t2:aa"
       "1:y1:qe")},
    {"put query mutable", S("d1:ad3:casi3e2:id20:" IDA "1:k32:" PK
                            "4:salt6:foobar3:seqi4e3:sig64:" SIG
                            "5:token2:tk1:vi42ee1:q3:put1:t2:aa1:y1:qe")},
    {"get response mutable",
     S("d1:rd2:id20:" IDB "1:k32:" PK "5:nodes26:" NODE4 "3:seqi4e3:sig64:" SIG
       "5:token2:tk1:vl1:xee1:t2:aa1:y1:re")},
    {"get response immutable",
     S("d1:rd2:id20:" IDB "5:token2:tk1:v12:Hello World!e1:t2:aa1:y1:re")},
};

static int decode(mdht_krpc_msg *m, const uint8_t *p, size_t len) {
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  return mdht_krpc_decode(m, p, len, toks, MDHT_KRPC_TOKENS);
}

static void assert_bytes(mdht_bytes b, const char *s, size_t len) {
  assert_int_equal(b.len, len);
  if (len) assert_memory_equal(b.p, s, len);
}
#define assert_bytes_lit(b, lit) assert_bytes((b), (lit), sizeof(lit) - 1)

static void assert_encodes(const mdht_krpc_msg *m, const uint8_t *want,
                           size_t len) {
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(m, buf, sizeof buf);
  if (n != (int)len || memcmp(buf, want, len)) {
    fprintf(stderr, "got %d: %.*s\n", n, n > 0 ? n : 0, buf);
    fail_msg("encoding differs");
  }
}

/* ---------------------------------------------------------------- decode */

static void test_roundtrip_canonical(void **state) {
  (void)state;
  uint8_t buf[MDHT_MAX_PACKET];
  for (size_t i = 0; i < sizeof canonical / sizeof canonical[0]; i++) {
    const msg_case *c = &canonical[i];
    mdht_krpc_msg m;
    int rc = decode(&m, c->in, c->len);
    if (rc != 0) fail_msg("%s: decode %d", c->name, rc);
    int n = mdht_krpc_encode(&m, buf, sizeof buf);
    if (n != (int)c->len || memcmp(buf, c->in, c->len))
      fail_msg("%s: re-encoding differs (%d): %.*s", c->name, n, n > 0 ? n : 0,
               buf);
  }
}

static void test_guard_page(void **state) {
  (void)state;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  uint8_t *base = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(base != MAP_FAILED);
  assert_int_equal(mprotect(base + page, page, PROT_NONE), 0);
  for (size_t i = 0; i < sizeof canonical / sizeof canonical[0]; i++) {
    const msg_case *c = &canonical[i];
    mdht_krpc_msg m;
    for (size_t k = 0; k <= c->len; k++) {
      uint8_t *p = base + page - k;
      memcpy(p, c->in, k);
      int rc = decode(&m, p, k);
      if (rc != (k == c->len ? 0 : MDHT_ERR_PARSE))
        fail_msg("%s: %zu of %zu bytes: %d", c->name, k, c->len, rc);
    }
  }
  munmap(base, 2 * page);
}

static void test_decode_queries(void **state) {
  (void)state;
  mdht_krpc_msg m;
  assert_int_equal(decode(&m, canonical[1].in, canonical[1].len), 0);
  assert_int_equal(m.y, 'q');
  assert_int_equal(m.method, MDHT_M_PING);
  assert_bytes_lit(m.q, "ping");
  assert_bytes_lit(m.t, "aa");
  assert_bytes_lit(m.v, "MD01");
  assert_true(m.ro);
  assert_false(m.has_ip);
  assert_memory_equal(m.id.b, IDA, 20);

  assert_int_equal(decode(&m, canonical[3].in, canonical[3].len), 0);
  assert_int_equal(m.method, MDHT_M_FIND_NODE);
  assert_memory_equal(m.target.b, IDB, 20);
  assert_int_equal(m.want, MDHT_WANT_N4 | MDHT_WANT_N6);
  assert_false(m.ro);
  assert_int_equal(m.v.len, 0);

  assert_int_equal(decode(&m, canonical[5].in, canonical[5].len), 0);
  assert_int_equal(m.method, MDHT_M_GET_PEERS);
  assert_memory_equal(m.target.b, IDB, 20);
  assert_true(m.noseed);
  assert_true(m.scrape);
  assert_int_equal(m.want, MDHT_WANT_N6);

  assert_int_equal(decode(&m, canonical[6].in, canonical[6].len), 0);
  assert_int_equal(m.method, MDHT_M_ANNOUNCE_PEER);
  assert_memory_equal(m.id.b, IDA, 20);
  assert_memory_equal(m.target.b, IDB, 20);
  assert_int_equal(m.port, 6881);
  assert_false(m.implied_port);
  assert_false(m.seed);
  assert_bytes_lit(m.token, "aoeusnth");

  assert_int_equal(decode(&m, canonical[7].in, canonical[7].len), 0);
  assert_true(m.implied_port);
  assert_true(m.seed);
  assert_int_equal(m.port, 0);

  assert_int_equal(decode(&m, canonical[8].in, canonical[8].len), 0);
  assert_int_equal(m.method, MDHT_M_SAMPLE_INFOHASHES);
  assert_memory_equal(m.target.b, IDB, 20);

  assert_int_equal(decode(&m, canonical[9].in, canonical[9].len), 0);
  assert_int_equal(m.method, MDHT_M_UNKNOWN);
  assert_bytes_lit(m.q, "vote");
  assert_memory_equal(m.id.b, IDA, 20);
}

static void test_decode_responses(void **state) {
  (void)state;
  mdht_krpc_msg m;
  assert_int_equal(decode(&m, canonical[11].in, canonical[11].len), 0);
  assert_int_equal(m.y, 'r');
  assert_memory_equal(m.id.b, IDB, 20);
  assert_true(m.has_ip);
  assert_int_equal(m.ip.family, MDHT_AF_INET);
  assert_memory_equal(m.ip.ip, "\x01\x02\x03\x04", 4);
  assert_int_equal(m.ip.port, 6881);
  assert_bytes_lit(m.v, "MD01");
  assert_int_equal(m.interval, -1);
  assert_int_equal(m.num, -1);
  assert_int_equal(m.nvalues, 0);
  assert_int_equal(m.nodes.len, 0);

  assert_int_equal(decode(&m, canonical[12].in, canonical[12].len), 0);
  assert_bytes_lit(m.nodes, NODE4 NODE4);
  assert_bytes_lit(m.nodes6, NODE6);
  assert_int_equal(m.token.len, 0);

  assert_int_equal(decode(&m, canonical[13].in, canonical[13].len), 0);
  assert_bytes_lit(m.token, "aoeusnth");
  assert_int_equal(m.nvalues, 3);
  mdht_bytes vs[MDHT_KRPC_MAX_VALUES];
  assert_int_equal(mdht_krpc_values(&m, vs, MDHT_KRPC_MAX_VALUES), 3);
  assert_bytes_lit(vs[0], "axje.u");
  assert_bytes_lit(vs[1], "idhtnm");
  assert_bytes_lit(vs[2], "0123456789abcdefgh");
  /* a smaller array gets the first ones */
  assert_int_equal(mdht_krpc_values(&m, vs, 2), 2);
  assert_bytes_lit(vs[1], "idhtnm");
  /* A message without values (no list at all): none, and no arithmetic on
   * its NULL list (fuzz_krpc's UBSan finding). */
  assert_int_equal(decode(&m, canonical[12].in, canonical[12].len), 0);
  assert_null(m.values_raw.p);
  assert_int_equal(mdht_krpc_values(&m, vs, MDHT_KRPC_MAX_VALUES), 0);
  mdht_krpc_msg_init(&m, 'r');
  assert_int_equal(mdht_krpc_values(&m, vs, MDHT_KRPC_MAX_VALUES), 0);

  assert_int_equal(decode(&m, canonical[15].in, canonical[15].len), 0);
  assert_int_equal(m.interval, 21600);
  assert_int_equal(m.num, 3);
  assert_bytes_lit(m.samples, IDA IDB);
  assert_bytes_lit(m.nodes, NODE4);

  assert_int_equal(decode(&m, canonical[16].in, canonical[16].len), 0);
  assert_int_equal(m.y, 'e');
  assert_int_equal(m.ecode, 201);
  assert_bytes_lit(m.emsg, "A Generic Error Ocurred");
  assert_bytes_lit(m.t, "aa");
}

/* Decodes to success but not byte-identical: what a tolerant reader must
 * accept from other implementations. */
static void test_decode_lenient(void **state) {
  (void)state;
  mdht_krpc_msg m;
  /* Unknown keys at every level, and a tail after the message. */
  assert_int_equal(decode(&m, S("d1:ad2:id20:" IDA "5:zzzzzi1ee1:b0:1:q4:ping"
                                "1:t2:aa1:y1:q1:zle"
                                "extra")),
                   0);
  assert_int_equal(m.method, MDHT_M_PING);
  /* announce_peer: implied_port without port. */
  assert_int_equal(decode(&m, S("d1:ad2:id20:" IDA "12:implied_porti1e"
                                "9:info_hash20:" IDB "5:token1:xe"
                                "1:q13:announce_peer1:t2:aa1:y1:qe")),
                   0);
  assert_true(m.implied_port);
  /* values: wrong lengths and non-strings are skipped. */
  assert_int_equal(decode(&m, S("d1:rd2:id20:" IDA "6:valuesl5:abcdei1e"
                                "6:axje.u7:abcdefgl6:idhtnmeee"
                                "1:t2:aa1:y1:re")),
                   0);
  assert_int_equal(m.nvalues, 1);
  mdht_bytes v1[4];
  assert_int_equal(mdht_krpc_values(&m, v1, 4), 1);
  assert_bytes_lit(v1[0], "axje.u");
  /* The values are read from the list as received: 6-byte strings nested
   * in a dict or a list, or after the list's end, are not values. */
  assert_int_equal(decode(&m, S("d1:rd2:id20:" IDA "6:valuesld6:abcdef"
                                "6:ghijklei-12e6:axje.ul6:idhtnmee"
                                "6:zzzzzz6:mnopqre1:t2:aa1:y1:re")),
                   0);
  assert_int_equal(m.nvalues, 1);
  assert_int_equal(mdht_krpc_values(&m, v1, 4), 1);
  assert_bytes_lit(v1[0], "axje.u");
  /* Malformed v and ip are ignored, unknown want families too. */
  assert_int_equal(decode(&m, S("d1:ad2:id20:" IDA "6:target20:" IDB
                                "4:wantl2:n82:n4ee2:ip5:abcde1:q9:find_node"
                                "1:t2:aa1:vi1e1:y1:qe")),
                   0);
  assert_false(m.has_ip);
  assert_int_equal(m.v.len, 0);
  assert_int_equal(m.want, MDHT_WANT_N4);
  /* IPv6 ip key. */
  assert_int_equal(decode(&m, S("d2:ip18:\x20\x01\x0d\xb8"
                                "\0\0\0\0\0\0\0\0\0\0\0\x01\x1a\xe1"
                                "1:rd2:id20:" IDB "e1:t2:aa1:y1:re")),
                   0);
  assert_true(m.has_ip);
  assert_int_equal(m.ip.family, MDHT_AF_INET6);
  assert_int_equal(m.ip.port, 6881);
  assert_int_equal(m.ip.ip[15], 1);
  /* ro only counts as i1e, and only in queries. */
  assert_int_equal(
      decode(&m, S("d1:ad2:id20:" IDA "e1:q4:ping2:roi2e1:t2:aa1:y1:qe")), 0);
  assert_false(m.ro);
  assert_int_equal(decode(&m, S("d1:rd2:id20:" IDA "e2:roi1e1:t2:aa1:y1:re")),
                   0);
  assert_false(m.ro);
  /* Oversized token in a response: ignored, the rest is kept. */
  assert_int_equal(
      decode(&m, S("d1:rd2:id20:" IDA "5:nodes26:" NODE4 "5:token65:"
                   "0123456789012345678901234567890123456789"
                   "0123456789012345678901234"
                   "e1:t2:aa1:y1:re")),
      0);
  assert_int_equal(m.token.len, 0);
  assert_int_equal(m.nodes.len, 26);
  /* Unknown method: success whatever its arguments. */
  assert_int_equal(decode(&m, S("d1:q3:foo1:t2:aa1:y1:qe")), 0);
  assert_int_equal(m.method, MDHT_M_UNKNOWN);
  assert_bytes_lit(m.q, "foo");
  /* Error lists may carry more than two items. */
  assert_int_equal(decode(&m, S("d1:eli202e6:Serveri1ee1:t1:x1:y1:ee")), 0);
  assert_int_equal(m.ecode, 202);
}

static void test_decode_many_values(void **state) {
  (void)state;
  /* 300 values: the first MDHT_KRPC_MAX_VALUES are kept. */
  static uint8_t buf[4096];
  mdht_be_w w;
  mdht_be_w_init(&w, buf, sizeof buf);
  mdht_be_w_dict(&w);
  mdht_be_w_cstr(&w, "r");
  mdht_be_w_dict(&w);
  mdht_be_w_cstr(&w, "id");
  mdht_be_w_cstr(&w, IDA);
  mdht_be_w_cstr(&w, "values");
  mdht_be_w_list(&w);
  for (int i = 0; i < 300; i++) {
    uint8_t peer[6] = {10, 0, (uint8_t)(i >> 8), (uint8_t)i, 0x1a, 0xe1};
    mdht_be_w_str(&w, peer, 6);
  }
  mdht_be_w_end(&w);
  mdht_be_w_end(&w);
  mdht_be_w_cstr(&w, "t");
  mdht_be_w_cstr(&w, "aa");
  mdht_be_w_cstr(&w, "y");
  mdht_be_w_cstr(&w, "r");
  mdht_be_w_end(&w);
  int n = mdht_be_w_finish(&w);
  assert_true(n > 0);
  mdht_krpc_msg m;
  assert_int_equal(decode(&m, buf, (size_t)n), 0);
  assert_int_equal(m.nvalues, MDHT_KRPC_MAX_VALUES);
  mdht_bytes *all = malloc(300 * sizeof *all);
  assert_non_null(all);
  assert_int_equal(mdht_krpc_values(&m, all, 300), MDHT_KRPC_MAX_VALUES);
  assert_int_equal(all[255].p[3], 255);
  free(all);
  /* Encoded again, a decoded message writes the same 256 values. */
  uint8_t again[4096];
  int n2 = mdht_krpc_encode(&m, again, sizeof again);
  assert_true(n2 > 0);
  assert_int_equal(decode(&m, again, (size_t)n2), 0);
  assert_int_equal(m.nvalues, MDHT_KRPC_MAX_VALUES);

  /* Too few tokens for the message: dropped as unparsable. */
  mdht_be_tok toks[64];
  assert_int_equal(mdht_krpc_decode(&m, buf, (size_t)n, toks, 64),
                   MDHT_ERR_PARSE);
}

typedef struct reject_case {
  const char *name;
  const uint8_t *in;
  size_t len;
  int rc;
  char y;        /* expected m.y */
  const char *t; /* expected m.t, NULL for none */
} reject_case;

#define Q_(args) "d1:ad2:id20:" IDA args "e1:q"
static const reject_case rejects[] = {
    {"not bencode", S("x"), MDHT_ERR_PARSE, 0, NULL},
    {"truncated", S("d1:ad2:id20:" IDA "e1:q4:ping1:t2:aa1:y1:q"),
     MDHT_ERR_PARSE, 0, NULL},
    {"non-canonical int", S("d1:ad2:id20:" IDA "e1:q4:ping1:t2:aa1:yi01ee"),
     MDHT_ERR_PARSE, 0, NULL},
    {"top level list", S("l1:t2:aae"), MDHT_ERR_PROTO, 0, NULL},
    {"top level string", S("2:aa"), MDHT_ERR_PROTO, 0, NULL},
    {"missing y", S("d1:ad2:id20:" IDA "e1:q4:ping1:t2:aae"), MDHT_ERR_PROTO, 0,
     "aa"},
    {"y two bytes", S("d1:ad2:id20:" IDA "e1:q4:ping1:t2:aa1:y2:qqe"),
     MDHT_ERR_PROTO, 0, "aa"},
    {"y empty", S("d1:t2:aa1:y0:e"), MDHT_ERR_PROTO, 0, "aa"},
    {"y int", S("d1:t2:aa1:yi113ee"), MDHT_ERR_PROTO, 0, "aa"},
    {"y unknown", S("d1:t2:aa1:y1:xe"), MDHT_ERR_PROTO, 'x', "aa"},
    {"missing t", S("d1:ad2:id20:" IDA "e1:q4:ping1:y1:qe"), MDHT_ERR_PROTO,
     'q', NULL},
    {"empty t", S("d1:ad2:id20:" IDA "e1:q4:ping1:t0:1:y1:qe"), MDHT_ERR_PROTO,
     'q', NULL},
    {"t int", S("d1:ad2:id20:" IDA "e1:q4:ping1:ti1e1:y1:qe"), MDHT_ERR_PROTO,
     'q', NULL},
    {"t list", S("d1:ad2:id20:" IDA "e1:q4:ping1:tl2:aae1:y1:qe"),
     MDHT_ERR_PROTO, 'q', NULL},
    {"missing q", S("d1:ad2:id20:" IDA "e1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q',
     "aa"},
    {"q int", S("d1:ad2:id20:" IDA "e1:qi1e1:t2:aa1:y1:qe"), MDHT_ERR_PROTO,
     'q', "aa"},
    {"missing a", S("d1:q4:ping1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q', "aa"},
    {"a list", S("d1:al2:id20:" IDA "e1:q4:ping1:t2:aa1:y1:qe"), MDHT_ERR_PROTO,
     'q', "aa"},
    {"a string", S("d1:a2:id1:q4:ping1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q',
     "aa"},
    {"missing id", S("d1:ad6:target20:" IDB "e1:q9:find_node1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"19-byte id", S("d1:ad2:id19:" ID19 "e1:q4:ping1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"21-byte id", S("d1:ad2:id21:" ID21 "e1:q4:ping1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"int id", S("d1:ad2:idi1ee1:q4:ping1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q',
     "aa"},
    {"find_node no target", S(Q_("") "9:find_node1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"find_node 19-byte target",
     S(Q_("6:target19:" ID19) "9:find_node1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q',
     "aa"},
    {"find_node want not list",
     S(Q_("6:target20:" IDB "4:want2:n4") "9:find_node1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"find_node want int item",
     S(Q_("6:target20:" IDB "4:wantli4ee") "9:find_node1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"get_peers no info_hash",
     S(Q_("6:target20:" IDB) "9:get_peers1:t2:aa1:y1:qe"), MDHT_ERR_PROTO, 'q',
     "aa"},
    {"get_peers noseed string",
     S(Q_("9:info_hash20:" IDB "6:noseed1:1") "9:get_peers1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce no token",
     S(Q_("9:info_hash20:" IDB "4:porti1e") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce token int",
     S(Q_("9:info_hash20:" IDB
          "4:porti1e5:tokeni1e") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce token too long",
     S(Q_("9:info_hash20:" IDB "4:porti1e5:token65:"
          "0123456789012345678901234567890123456789"
          "0123456789012345678901234") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce no port",
     S(Q_("9:info_hash20:" IDB "5:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce no port, implied_port 0",
     S(Q_("12:implied_porti0e9:info_hash20:" IDB
          "5:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce port string",
     S(Q_("9:info_hash20:" IDB
          "4:port4:68815:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce port 65536",
     S(Q_("9:info_hash20:" IDB
          "4:porti65536e5:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce port negative",
     S(Q_("9:info_hash20:" IDB
          "4:porti-1e5:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"announce no info_hash",
     S(Q_("4:porti1e5:token1:x") "13:announce_peer1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"sample no target",
     S(Q_("9:info_hash20:" IDB) "17:sample_infohashes1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"response missing r", S("d1:t2:aa1:y1:re"), MDHT_ERR_PROTO, 'r', "aa"},
    {"response r list", S("d1:rl2:id20:" IDA "e1:t2:aa1:y1:re"), MDHT_ERR_PROTO,
     'r', "aa"},
    {"response missing id", S("d1:rd5:nodes0:e1:t2:aa1:y1:re"), MDHT_ERR_PROTO,
     'r', "aa"},
    {"response 19-byte id", S("d1:rd2:id19:" ID19 "e1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"nodes length 25",
     S("d1:rd2:id20:" IDA "5:nodes25:0123456789012345678901234e1:t2:aa1:y1:"
       "re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"nodes length 27",
     S("d1:rd2:id20:" IDA "5:nodes27:" NODE4 "xe1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"nodes int", S("d1:rd2:id20:" IDA "5:nodesi0ee1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"nodes6 length 26",
     S("d1:rd2:id20:" IDA "6:nodes626:" NODE4 "e1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"values string", S("d1:rd2:id20:" IDA "6:values6:axje.ue1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"token int", S("d1:rd2:id20:" IDA "5:tokeni1ee1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"samples length 19",
     S("d1:rd2:id20:" IDA "7:samples19:" ID19 "e1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"interval negative", S("d1:rd2:id20:" IDA "8:intervali-1ee1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"num string", S("d1:rd2:id20:" IDA "3:num1:3e1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
    {"error missing e", S("d1:t2:aa1:y1:ee"), MDHT_ERR_PROTO, 'e', "aa"},
    {"error e string", S("d1:e5:oops!1:t2:aa1:y1:ee"), MDHT_ERR_PROTO, 'e',
     "aa"},
    {"error e dict", S("d1:ed1:ci201ee1:t2:aa1:y1:ee"), MDHT_ERR_PROTO, 'e',
     "aa"},
    {"error e empty", S("d1:ele1:t2:aa1:y1:ee"), MDHT_ERR_PROTO, 'e', "aa"},
    {"error e one item", S("d1:eli201ee1:t2:aa1:y1:ee"), MDHT_ERR_PROTO, 'e',
     "aa"},
    {"error e swapped", S("d1:el4:oopsi201ee1:t2:aa1:y1:ee"), MDHT_ERR_PROTO,
     'e', "aa"},
    {"error e list code", S("d1:elli201ee4:oopse1:t2:aa1:y1:ee"),
     MDHT_ERR_PROTO, 'e', "aa"},
    {"get no target", S("d1:ad2:id20:" IDA "e1:q3:get1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"get seq string",
     S("d1:ad2:id20:" IDA "3:seq1:46:target20:" IDB "e1:q3:get1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put no token", S("d1:ad2:id20:" IDA "1:vi1ee1:q3:put1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put no v", S("d1:ad2:id20:" IDA "5:token2:tke1:q3:put1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put k 31",
     S("d1:ad2:id20:" IDA "1:k31:0123456789abcdef0123456789ABCDE"
       "3:seqi1e3:sig64:" SIG "5:token2:tk1:vi1ee1:q3:put1:t2:aa"
       "1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put sig 63",
     S("d1:ad2:id20:" IDA "1:k32:" PK "3:seqi1e3:sig63:" PK
       "0123456789abcdef0123456789ABCDE5:token2:tk1:vi1ee"
       "1:q3:put1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put mutable no sig",
     S("d1:ad2:id20:" IDA "1:k32:" PK "3:seqi1e5:token2:"
       "tk1:vi1ee1:q3:put1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put mutable no seq",
     S("d1:ad2:id20:" IDA "1:k32:" PK "3:sig64:" SIG
       "5:token2:tk1:vi1ee1:q3:put1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put salt int",
     S("d1:ad2:id20:" IDA "4:salti1e5:token2:tk1:vi1ee1:q3:put"
       "1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put cas string",
     S("d1:ad3:cas1:12:id20:" IDA "5:token2:tk1:vi1ee1:q3:put"
       "1:t2:aa1:y1:qe"),
     MDHT_ERR_PROTO, 'q', "aa"},
    {"put v malformed",
     S("d1:ad2:id20:" IDA "5:token2:tk1:vi01ee1:q3:put"
       "1:t2:aa1:y1:qe"),
     MDHT_ERR_PARSE, 0, NULL},
    {"get response k 31",
     S("d1:rd2:id20:" IDB "1:k31:0123456789abcdef012345"
       "6789ABCDEe1:t2:aa1:y1:re"),
     MDHT_ERR_PROTO, 'r', "aa"},
};

static void test_rejects(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
    const reject_case *c = &rejects[i];
    mdht_krpc_msg m;
    int rc = decode(&m, c->in, c->len);
    if (rc != c->rc) fail_msg("%s: got %d, want %d", c->name, rc, c->rc);
    if (m.y != c->y) fail_msg("%s: y is %d", c->name, m.y);
    size_t tlen = c->t ? strlen(c->t) : 0;
    if (m.t.len != tlen || (tlen && memcmp(m.t.p, c->t, tlen)))
      fail_msg("%s: t differs", c->name);
  }
}

/* ---------------------------------------------------------------- encode */

static void base(mdht_krpc_msg *m, char y) {
  mdht_krpc_msg_init(m, y);
  m->t.p = (const uint8_t *)"aa";
  m->t.len = 2;
}

static void set_bytes(mdht_bytes *b, const char *s, size_t len) {
  b->p = (const uint8_t *)s;
  b->len = len;
}
#define SET(b, lit) set_bytes(&(b), (lit), sizeof(lit) - 1)

static void test_encode_queries(void **state) {
  (void)state;
  mdht_krpc_msg m;
  base(&m, 'q');
  m.method = MDHT_M_PING;
  memcpy(m.id.b, IDA, 20);
  assert_encodes(&m, canonical[0].in, canonical[0].len);
  m.ro = true;
  SET(m.v, "MD01");
  assert_encodes(&m, canonical[1].in, canonical[1].len);

  base(&m, 'q');
  m.method = MDHT_M_FIND_NODE;
  memcpy(m.id.b, IDA, 20);
  memcpy(m.target.b, IDB, 20);
  m.port = 99; /* not a find_node argument: not written */
  SET(m.token, "zz");
  assert_encodes(&m, canonical[2].in, canonical[2].len);
  m.want = MDHT_WANT_N4 | MDHT_WANT_N6;
  assert_encodes(&m, canonical[3].in, canonical[3].len);

  base(&m, 'q');
  m.method = MDHT_M_GET_PEERS;
  memcpy(m.id.b, IDA, 20);
  memcpy(m.target.b, IDB, 20);
  assert_encodes(&m, canonical[4].in, canonical[4].len);
  m.noseed = m.scrape = true;
  m.want = MDHT_WANT_N6;
  assert_encodes(&m, canonical[5].in, canonical[5].len);

  base(&m, 'q');
  m.method = MDHT_M_ANNOUNCE_PEER;
  memcpy(m.id.b, IDA, 20);
  memcpy(m.target.b, IDB, 20);
  m.port = 6881;
  SET(m.token, "aoeusnth");
  assert_encodes(&m, canonical[6].in, canonical[6].len);
  m.port = 0;
  m.implied_port = m.seed = true;
  assert_encodes(&m, canonical[7].in, canonical[7].len);

  base(&m, 'q');
  m.method = MDHT_M_SAMPLE_INFOHASHES;
  memcpy(m.id.b, IDA, 20);
  memcpy(m.target.b, IDB, 20);
  assert_encodes(&m, canonical[8].in, canonical[8].len);

  base(&m, 'q');
  m.method = MDHT_M_UNKNOWN;
  SET(m.q, "vote");
  memcpy(m.id.b, IDA, 20);
  assert_encodes(&m, canonical[9].in, canonical[9].len);
}

static void test_encode_responses(void **state) {
  (void)state;
  mdht_krpc_msg m;
  base(&m, 'r');
  m.method = MDHT_M_PING;
  memcpy(m.id.b, IDB, 20);
  m.ro = true; /* queries only: not written */
  assert_encodes(&m, canonical[10].in, canonical[10].len);
  m.has_ip = true;
  m.ip.family = MDHT_AF_INET;
  memcpy(m.ip.ip, "\x01\x02\x03\x04", 4);
  m.ip.port = 6881;
  SET(m.v, "MD01");
  assert_encodes(&m, canonical[11].in, canonical[11].len);

  base(&m, 'r');
  m.method = MDHT_M_FIND_NODE;
  memcpy(m.id.b, IDB, 20);
  SET(m.nodes, NODE4 NODE4);
  SET(m.nodes6, NODE6);
  assert_encodes(&m, canonical[12].in, canonical[12].len);

  base(&m, 'r');
  m.method = MDHT_M_GET_PEERS;
  memcpy(m.id.b, IDA, 20);
  SET(m.token, "aoeusnth");
  mdht_bytes vals[3];
  SET(vals[0], "axje.u");
  SET(vals[1], "idhtnm");
  SET(vals[2], "0123456789abcdefgh");
  m.values = vals;
  m.nvalues = 3;
  assert_encodes(&m, canonical[13].in, canonical[13].len);
  m.nvalues = 0;
  SET(m.nodes, NODE4);
  SET(m.token, "tk");
  assert_encodes(&m, canonical[14].in, canonical[14].len);
  /* get_peers always carries a token, even an empty one. */
  m.token.len = 0;
  m.nodes.len = 0;
  /* nodes present but empty (a node with an empty table) is written as
   * "5:nodes0:", as libtorrent does; a NULL nodes is left out. */
  assert_encodes(&m, S("d1:rd2:id20:" IDA "5:nodes0:5:token0:e1:t2:aa1:y1:re"));
  m.nodes.p = NULL;
  assert_encodes(&m, S("d1:rd2:id20:" IDA "5:token0:e1:t2:aa1:y1:re"));

  base(&m, 'r');
  m.method = MDHT_M_SAMPLE_INFOHASHES;
  memcpy(m.id.b, IDA, 20);
  m.interval = 21600;
  m.num = 3;
  SET(m.nodes, NODE4);
  SET(m.samples, IDA IDB);
  assert_encodes(&m, canonical[15].in, canonical[15].len);
  /* samples is written even when there are none. */
  m.samples.len = 0;
  m.nodes.len = 0;
  m.nodes.p = NULL;
  m.num = 0;
  assert_encodes(&m, S("d1:rd2:id20:" IDA "8:intervali21600e3:numi0e"
                       "7:samples0:e1:t2:aa1:y1:re"));
}

/* BEP 33: the filters come first (bencode sorts "BF" before "id"), are
 * decoded back, and a filter of the wrong size is ignored while the rest
 * of the answer still counts. */
static void test_scrape_filters(void **state) {
  (void)state;
  uint8_t sd[256], pe[256];
  memset(sd, 's', sizeof sd);
  memset(pe, 'p', sizeof pe);
  mdht_krpc_msg m;
  base(&m, 'r');
  m.method = MDHT_M_GET_PEERS;
  memcpy(m.id.b, IDA, 20);
  SET(m.token, "tk");
  m.bfsd = (mdht_bytes){sd, sizeof sd};
  m.bfpe = (mdht_bytes){pe, sizeof pe};
  uint8_t buf[MDHT_MAX_PACKET];
  int n = mdht_krpc_encode(&m, buf, sizeof buf);
  assert_true(n > 0);
  const char head[] = "d1:rd4:BFpe256:ppp";
  assert_memory_equal(buf, head, sizeof head - 1);
  const uint8_t *mid = memmem(buf, (size_t)n, "4:BFsd256:sss", 13);
  assert_non_null(mid);
  assert_true(memmem(buf, (size_t)n, "2:id20:", 7) > (const void *)mid);

  mdht_krpc_msg d;
  assert_int_equal(decode(&d, buf, (size_t)n), 0);
  assert_int_equal(d.bfsd.len, 256);
  assert_int_equal(d.bfpe.len, 256);
  assert_memory_equal(d.bfsd.p, sd, 256);
  assert_memory_equal(d.bfpe.p, pe, 256);
  assert_bytes_lit(d.token, "tk");

  /* 255 bytes: not a filter; the token is still read. */
  static const char short_f[] =
      "d1:rd4:BFsd3:abc2:id20:" IDA "5:token2:tke1:t2:aa1:y1:re";
  assert_int_equal(decode(&d, (const uint8_t *)short_f, sizeof short_f - 1), 0);
  assert_int_equal(d.bfsd.len, 0);
  assert_bytes_lit(d.token, "tk");
}

static void test_encode_errors(void **state) {
  (void)state;
  mdht_krpc_msg m;
  base(&m, 'e');
  m.ecode = 201;
  SET(m.emsg, "A Generic Error Ocurred");
  assert_encodes(&m, canonical[16].in, canonical[16].len);

  uint8_t buf[256];
  mdht_bytes t = {(const uint8_t *)"aa", 2};
  mdht_bytes v = {(const uint8_t *)"MD01", 4};
  mdht_bytes nov = {NULL, 0};
  mdht_addr ip = {.family = MDHT_AF_INET, .port = 6881, .ip = {1, 2, 3, 4}};
  static const char want1[] = "d1:eli203e14:Protocol Errore1:t2:aa1:y1:ee";
  int n = mdht_krpc_encode_error(buf, sizeof buf, t, MDHT_KRPC_E_PROTOCOL,
                                 "Protocol Error", NULL, nov);
  assert_int_equal(n, sizeof want1 - 1);
  assert_memory_equal(buf, want1, sizeof want1 - 1);
  n = mdht_krpc_encode_error(buf, sizeof buf, t, MDHT_KRPC_E_PROTOCOL,
                             "Protocol Error", &ip, v);
  assert_int_equal(n, canonical[17].len);
  assert_memory_equal(buf, canonical[17].in, canonical[17].len);
  static const char want3[] = "d1:eli204e0:e1:t2:aa1:y1:ee";
  n = mdht_krpc_encode_error(buf, sizeof buf, t, MDHT_KRPC_E_METHOD, "", NULL,
                             nov);
  assert_int_equal(n, sizeof want3 - 1);
  assert_memory_equal(buf, want3, sizeof want3 - 1);
}

static void test_encode_nobuf(void **state) {
  (void)state;
  /* Every capacity short of the message fails without writing past it. */
  mdht_krpc_msg m;
  assert_int_equal(decode(&m, canonical[15].in, canonical[15].len), 0);
  uint8_t buf[MDHT_MAX_PACKET];
  for (size_t cap = 0; cap < canonical[15].len; cap++) {
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(mdht_krpc_encode(&m, buf, cap), MDHT_ERR_NOBUF);
    for (size_t i = cap; i < sizeof buf; i++)
      if (buf[i] != 0xee) fail_msg("cap %zu: byte %zu written", cap, i);
  }
  assert_int_equal(mdht_krpc_encode(&m, buf, canonical[15].len),
                   (int)canonical[15].len);

  m.y = 'x';
  assert_int_equal(mdht_krpc_encode(&m, buf, sizeof buf), MDHT_ERR_INVAL);
  m.y = 'r';
  m.has_ip = true;
  m.ip.family = 0;
  assert_int_equal(mdht_krpc_encode(&m, buf, sizeof buf), MDHT_ERR_INVAL);
}

/* BEP 5 puts no bound on t: any length from 1 byte decodes and comes back
 * byte for byte; 0 bytes is refused (BEP 5 requires one). */
static void test_tid_any_length(void **state) {
  (void)state;
  static const size_t lens[] = {0, 1, 2, 16, 20, 64, 200};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    uint8_t t[200], pkt[512], out[512];
    for (size_t j = 0; j < lens[i]; j++)
      t[j] = (uint8_t)(j * 37 + lens[i]); /* every byte value matters */
    mdht_krpc_msg q;
    mdht_krpc_msg_init(&q, 'q');
    q.method = MDHT_M_PING;
    q.id = (mdht_id){{1, 2, 3}};
    q.t.p = t;
    q.t.len = lens[i];
    int n = mdht_krpc_encode(&q, pkt, sizeof pkt);
    assert_true(n > 0);
    mdht_krpc_msg m;
    int rc = decode(&m, pkt, (size_t)n);
    if (lens[i] == 0) {
      assert_int_equal(rc, MDHT_ERR_PROTO);
      assert_int_equal(m.t.len, 0);
      continue;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(m.t.len, lens[i]);
    assert_memory_equal(m.t.p, t, lens[i]);
    /* and the answer echoes it */
    mdht_krpc_msg r;
    mdht_krpc_msg_init(&r, 'r');
    r.t = m.t;
    r.id = q.id;
    int rn = mdht_krpc_encode(&r, out, sizeof out);
    assert_true(rn > 0);
    assert_int_equal(decode(&m, out, (size_t)rn), 0);
    assert_int_equal(m.t.len, lens[i]);
    assert_memory_equal(m.t.p, t, lens[i]);
  }
}

/* BEP 44: every field decodes to what was sent, v verbatim whatever its
 * type; and the fields encode back to the canonical bytes. */
static void test_items(void **state) {
  (void)state;
  mdht_krpc_msg m;
  static const uint8_t put[] = "d1:ad3:casi3e2:id20:" IDA "1:k32:" PK
                               "4:salt6:foobar3:seqi4e3:sig64:" SIG
                               "5:token2:tk1:vd1:ali1ei-2eeee1:q3:put1:t2:aa"
                               "1:y1:qe";
  assert_int_equal(decode(&m, put, sizeof put - 1), 0);
  assert_int_equal(m.method, MDHT_M_PUT);
  assert_bytes_lit(m.item_v, "d1:ali1ei-2eee");
  assert_bytes_lit(m.item_k, PK);
  assert_bytes_lit(m.item_sig, SIG);
  assert_bytes_lit(m.salt, "foobar");
  assert_bytes_lit(m.token, "tk");
  assert_true(m.has_seq && m.seq == 4);
  assert_true(m.has_cas && m.cas == 3);

  static const uint8_t get[] =
      "d1:ad2:id20:" IDA "3:seqi-1e6:target20:" IDB "e1:q3:get1:t2:aa1:y1:qe";
  assert_int_equal(decode(&m, get, sizeof get - 1), 0);
  assert_int_equal(m.method, MDHT_M_GET);
  assert_memory_equal(m.target.b, IDB, 20);
  assert_true(m.has_seq && m.seq == -1);
  assert_int_equal(m.item_v.len, 0);

  /* A response: v a string (its header is part of it), k, seq, sig. */
  static const uint8_t resp[] =
      "d1:rd2:id20:" IDB "1:k32:" PK "3:seqi9e3:sig64:" SIG
      "5:token2:tk1:v12:Hello World!e1:t2:aa1:y1:re";
  assert_int_equal(decode(&m, resp, sizeof resp - 1), 0);
  assert_bytes_lit(m.item_v, "12:Hello World!");
  assert_bytes_lit(m.item_k, PK);
  assert_true(m.has_seq && m.seq == 9);
  assert_bytes_lit(m.item_sig, SIG);

  /* Encoding from fields. */
  mdht_krpc_msg q;
  mdht_krpc_msg_init(&q, 'q');
  SET(q.t, "aa");
  memcpy(q.id.b, IDA, 20);
  q.method = MDHT_M_PUT;
  SET(q.token, "tk");
  SET(q.item_v, "i42e");
  SET(q.item_k, PK);
  SET(q.item_sig, SIG);
  SET(q.salt, "foobar");
  q.has_seq = true;
  q.seq = 4;
  q.has_cas = true;
  q.cas = 3;
  assert_encodes(&q, S("d1:ad3:casi3e2:id20:" IDA "1:k32:" PK
                       "4:salt6:foobar3:seqi4e3:sig64:" SIG
                       "5:token2:tk1:vi42ee1:q3:put1:t2:aa1:y1:qe"));
  /* A put without a value is refused, not sent broken. */
  q.item_v.len = 0;
  uint8_t out[MDHT_MAX_PACKET];
  assert_int_equal(mdht_krpc_encode(&q, out, sizeof out), MDHT_ERR_INVAL);

  mdht_krpc_msg r;
  mdht_krpc_msg_init(&r, 'r');
  SET(r.t, "aa");
  memcpy(r.id.b, IDB, 20);
  r.method = MDHT_M_GET;
  /* get responses carry a token even when empty, like get_peers */
  assert_encodes(&r, S("d1:rd2:id20:" IDB "5:token0:e1:t2:aa1:y1:re"));
  SET(r.token, "tk");
  SET(r.item_v, "12:Hello World!");
  assert_encodes(
      &r, S("d1:rd2:id20:" IDB "5:token2:tk1:v12:Hello World!e1:t2:aa1:y1:re"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_items),
      cmocka_unit_test(test_roundtrip_canonical),
      cmocka_unit_test(test_guard_page),
      cmocka_unit_test(test_decode_queries),
      cmocka_unit_test(test_decode_responses),
      cmocka_unit_test(test_decode_lenient),
      cmocka_unit_test(test_decode_many_values),
      cmocka_unit_test(test_rejects),
      cmocka_unit_test(test_encode_queries),
      cmocka_unit_test(test_encode_responses),
      cmocka_unit_test(test_scrape_filters),
      cmocka_unit_test(test_encode_errors),
      cmocka_unit_test(test_encode_nobuf),
      cmocka_unit_test(test_tid_any_length),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
