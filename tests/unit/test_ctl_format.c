/* Control responses (ctl_format.c): the lines of results and saves,
 * the status line and the budget, and the one escaper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_format.h"
#include "testutil.h"

#define HEX1 "0123456789abcdef0123456789abcdef01234567"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

static mdht_id id_of(const char *hex) {
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  return id;
}

static const char *text(mdht_ctl_buf *b) {
  static char s[8192];
  size_t n = b->len < sizeof s - 1 ? b->len : sizeof s - 1;
  memcpy(s, b->p ? b->p : "", n);
  s[n] = '\0';
  return s;
}

static void result_init(mdht_result *r, mdht_method kind) {
  memset(r, 0, sizeof *r);
  r->kind = kind;
  r->target = id_of(HEX1);
  r->ok = true;
  r->rounds = 3;
  r->queries = 12;
  r->responses = 10;
  r->failures = 2;
  r->elapsed_ms = 42;
}

static void test_result_get_peers(void **state) {
  mdht_ctl_req req = {.cmd = MDHT_CTL_GET_PEERS};
  mdht_ctl_buf b = {0};
  mdht_result r;
  mdht_addr peers[3] = {test_addr4(10, 0, 0, 1, 6881),
                        test_addr4(10, 0, 0, 2, 6882),
                        test_addr4(10, 0, 0, 1, 6881)};
  char msg[128];
  int code;
  (void)state;

  result_init(&r, MDHT_M_GET_PEERS);
  r.peers = peers;
  r.npeers = 3;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  /* The duplicate is printed once. */
  assert_string_equal(text(&b), "10.0.0.1:6881\n10.0.0.2:6882\n");
  assert_int_equal(code, 0);
  assert_string_equal(msg, "");

  mdht_ctl_buf_reset(&b);
  req.json = true;
  r.nnodes = 8;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(
      text(&b),
      "{\"type\":\"peer\",\"addr\":\"10.0.0.1:6881\"}\n"
      "{\"type\":\"peer\",\"addr\":\"10.0.0.2:6882\"}\n"
      "{\"type\":\"done\",\"command\":\"get-peers\",\"target\":\"" HEX1 "\","
      "\"ok\":true,\"nodes\":8,\"peers\":2,\"rounds\":3,\"queries\":12,"
      "\"responses\":10,\"failures\":2,\"elapsed_ms\":42}\n");

  /* None found: status 1. */
  mdht_ctl_buf_reset(&b);
  req.json = false;
  r.npeers = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), "");
  assert_int_equal(code, 1);
  assert_string_equal(msg, "no peers found (10 nodes asked)");

  /* Nobody answered: an error. */
  r.ok = false;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, 2);
  assert_string_equal(msg, "no node answered the lookup");
  mdht_ctl_buf_free(&b);
}

static void test_result_nodes(void **state) {
  mdht_ctl_req req = {.cmd = MDHT_CTL_FIND_NODE};
  mdht_ctl_buf b = {0};
  mdht_result r;
  char msg[128];
  int code;
  (void)state;

  result_init(&r, MDHT_M_FIND_NODE);
  r.nnodes = 2;
  r.nodes[0].id = id_of(HEX1);
  r.nodes[0].addr = test_addr4(10, 0, 0, 1, 1);
  r.nodes[1].id = id_of(HEX2);
  r.nodes[1].addr = test_addr4(10, 0, 0, 2, 2);
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), HEX1 " 10.0.0.1:1\n" HEX2 " 10.0.0.2:2\n");
  assert_int_equal(code, 0);
  /* Closest first, whatever the order in the result. */
  mdht_ctl_buf_reset(&b);
  r.target = id_of(HEX2);
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), HEX2 " 10.0.0.2:2\n" HEX1 " 10.0.0.1:1\n");
  r.target = id_of(HEX1);

  mdht_ctl_buf_reset(&b);
  req.cmd = MDHT_CTL_ANNOUNCE;
  req.json = true;
  r.nnodes = 1;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_non_null(strstr(text(&b), "{\"type\":\"node\",\"id\":\"" HEX1
                                   "\",\"addr\":\"10.0.0.1:1\"}\n"));
  assert_non_null(strstr(text(&b), "\"command\":\"announce\""));
  assert_int_equal(code, 0);

  /* Answers, but nobody accepted the announce. */
  r.nnodes = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, 1);
  assert_string_equal(msg, "no node accepted the announce");
  /* The node reports a failed announce (ok false) when every node
   * refused it: the lookup was answered, so still "none", exit 1. */
  r.ok = false;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, 1);
  assert_string_equal(msg, "no node accepted the announce");
  /* Nobody answered at all: an error. */
  r.responses = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, 2);
  assert_string_equal(msg, "no node answered the lookup");
  mdht_ctl_buf_free(&b);
}

static void test_result_ping(void **state) {
  mdht_ctl_req req = {.cmd = MDHT_CTL_PING};
  mdht_ctl_buf b = {0};
  mdht_result r;
  char msg[128];
  int code;
  (void)state;

  req.addr = test_addr4(127, 0, 0, 1, 6881);
  result_init(&r, MDHT_M_PING);
  r.nnodes = 1;
  r.nodes[0].id = id_of(HEX2);
  r.nodes[0].addr = req.addr;
  r.elapsed_ms = 7;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), HEX2 " 7\n");
  assert_int_equal(code, 0);

  mdht_ctl_buf_reset(&b);
  req.json = true;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), "{\"type\":\"pong\",\"id\":\"" HEX2
                                "\",\"addr\":\"127.0.0.1:6881\",\"rtt_ms\":7}"
                                "\n");

  mdht_ctl_buf_reset(&b);
  r.ok = false;
  r.nnodes = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), "");
  assert_int_equal(code, 1);
  assert_string_equal(msg, "no answer from 127.0.0.1:6881");
  mdht_ctl_buf_free(&b);
}

static void test_status_and_overflow(void **state) {
  mdht_ctl_buf b = {0};
  (void)state;

  mdht_ctl_buf_status(&b, 1, "two\nlines");
  assert_int_equal(b.len, strlen("?exit 1 two lines\n"));
  assert_memory_equal(b.p, "\0exit 1 two lines\n", b.len);

  /* Past the budget, lines are dropped and the status says so. */
  mdht_ctl_buf_reset(&b);
  for (int i = 0; i < 100000 && !b.overflow; i++)
    mdht_ctl_buf_line(&b, "%0100d", i);
  assert_true(b.overflow);
  assert_true(b.len <= MDHT_CTL_MAX_OUT);
  size_t before = b.len;
  mdht_ctl_buf_status(&b, 0, NULL);
  assert_memory_equal(b.p + before, "\0exit 2 response too large, truncated\n",
                      b.len - before);
  mdht_ctl_buf_free(&b);
}

/* Bytes from the socket reach the terminal only as printable ASCII. */
static void test_escape(void **state) {
  char buf[64];
  (void)state;
  static const char in[] = "a\x1b[2J\r\t\x7f\x9b\xc2\x9b\\\"z";
  mdht_ctl_escape(buf, sizeof buf, in, sizeof in - 1, false);
  assert_string_equal(buf, "a\\x1b[2J\\x0d\\x09\\x7f\\x9b\\xc2\\x9b\\\"z");
  mdht_ctl_escape(buf, sizeof buf, "\x1b\x00x", 3, true);
  assert_string_equal(buf, "\\u001b\\u0000x");
  /* bounded, whole escapes only */
  assert_int_equal(mdht_ctl_escape(buf, 6, "ab\x1b", 3, false), 2);
  assert_string_equal(buf, "ab");
  /* A JSON string's body: quote and backslash too, and every other byte
   * outside printable ASCII as \u00NN. */
  mdht_ctl_escape_as(buf, sizeof buf, "a\"\\\x80\n", 5, MDHT_CTL_ESC_JSON_STR);
  assert_string_equal(buf, "a\\\"\\\\\\u0080\\u000a");
}

static void test_format_saved(void **state) {
  mdht_ctl_req req = {.cmd = MDHT_CTL_SAVE};
  mdht_ctl_saved s = {.counted = true, .nodes = 35, .peers = 1};
  mdht_ctl_buf b = {0};
  (void)state;

  strcpy(s.path, "/var/lib/mdht/state");
  mdht_ctl_format_saved(&req, &s, &b);
  assert_string_equal(text(&b), "saved 35 nodes, 1 peer to "
                                "/var/lib/mdht/state\n");

  mdht_ctl_buf_reset(&b);
  req.json = true;
  mdht_ctl_format_saved(&req, &s, &b);
  assert_string_equal(text(&b), "{\"type\":\"saved\",\"nodes\":35,"
                                "\"peers\":1,\"path\":\"/var/lib/mdht/"
                                "state\"}\n");

  /* A strange path stays one line, and valid JSON. */
  strcpy(s.path, "/tmp/a\"b\\c\nd\001/state");
  mdht_ctl_buf_reset(&b);
  mdht_ctl_format_saved(&req, &s, &b);
  assert_string_equal(text(&b), "{\"type\":\"saved\",\"nodes\":35,"
                                "\"peers\":1,\"path\":\"/tmp/a\\\"b\\\\c"
                                "\\u000ad\\u0001/state\"}\n");
  mdht_ctl_buf_reset(&b);
  req.json = false;
  s.counted = false; /* no counts: the save is still reported */
  mdht_ctl_format_saved(&req, &s, &b);
  /* Text goes through the same escaper as everything the client prints:
   * the LF and the SOH cannot end the line or start a progress line. */
  assert_string_equal(text(&b),
                      "saved the state to /tmp/a\"b\\c\\x0ad\\x01/state\n");

  /* A file name that is not UTF-8 (and a DEL) still makes valid JSON:
   * every byte outside printable ASCII is \u00NN. */
  strcpy(s.path, "/tmp/\xff\xc3(\x7f");
  mdht_ctl_buf_reset(&b);
  req.json = true;
  mdht_ctl_format_saved(&req, &s, &b);
  assert_string_equal(text(&b), "{\"type\":\"saved\",\"path\":"
                                "\"/tmp/\\u00ff\\u00c3(\\u007f\"}\n");
  mdht_ctl_buf_free(&b);
}

/* ----------------------------------------------------------- inspection */

static mdht_node_entry entry(uint32_t bucket, uint8_t ip4, mdht_node_state st,
                             mdht_time added, mdht_time reply, uint32_t rtt) {
  mdht_node_entry e;
  memset(&e, 0, sizeof e);
  e.bucket = bucket;
  e.id = id_of(HEX2);
  e.addr = test_addr4(10, 0, 0, ip4, 6881);
  e.state = st;
  e.added = added;
  e.last_reply = reply;
  e.rtt_ms = rtt;
  return e;
}

static void test_list_lines(void **state) {
  mdht_ctl_req req;
  mdht_ctl_buf b = {0};
  mdht_ctl_list l;
  mdht_node_entry e1 = entry(3, 1, MDHT_NODE_GOOD, 1000, 9000, 12);
  mdht_node_entry e2 = entry(0, 2, MDHT_NODE_BAD, 5000, 0, 0);
  mdht_store_entry se = {.infohash = id_of(HEX1),
                         .peers = 3,
                         .seeds = 1,
                         .newest_ms = 2500,
                         .oldest_ms = 61000};
  mdht_stored_peer sp = {.addr = test_addr4(10, 9, 9, 9, 51413),
                         .seed = true,
                         .age_ms = 4200,
                         .ttl_ms = 1000};
  (void)state;

  memset(&req, 0, sizeof req);
  mdht_ctl_list_init(&l, &req, &b, MDHT_CTL_MAX_OUT, 11000);
  mdht_ctl_list_node(&l, &e1);
  mdht_ctl_list_node(&l, &e2);
  mdht_ctl_list_infohash(&l, &se);
  mdht_ctl_list_peer(&l, &sp);
  sp.seed = false;
  mdht_ctl_list_peer(&l, &sp);
  mdht_ctl_list_end(&l);
  assert_string_equal(
      text(&b), "3   " HEX2 " 10.0.0.1:6881 good age 10s seen 2s rtt 12ms\n"
                "0   " HEX2 " 10.0.0.2:6881 bad age 6s seen - rtt -\n" HEX1
                " peers 3 seeds 1 newest 2s oldest 61s\n"
                "10.9.9.9:51413 age 4s seed\n"
                "10.9.9.9:51413 age 4s\n");
  assert_int_equal(l.shown, 5);

  mdht_ctl_buf_reset(&b);
  req.json = true;
  sp.seed = true;
  mdht_ctl_list_init(&l, &req, &b, MDHT_CTL_MAX_OUT, 11000);
  mdht_ctl_list_node(&l, &e1);
  mdht_ctl_list_node(&l, &e2);
  mdht_ctl_list_infohash(&l, &se);
  mdht_ctl_list_peer(&l, &sp);
  assert_string_equal(
      text(&b),
      "{\"type\":\"node\",\"bucket\":3,\"id\":\"" HEX2 "\","
      "\"addr\":\"10.0.0.1:6881\",\"state\":\"good\",\"age_ms\":10000,"
      "\"seen_ms\":2000,\"rtt_ms\":12,\"fails\":0}\n"
      "{\"type\":\"node\",\"bucket\":0,\"id\":\"" HEX2 "\","
      "\"addr\":\"10.0.0.2:6881\",\"state\":\"bad\",\"age_ms\":6000,"
      "\"seen_ms\":null,\"rtt_ms\":null,\"fails\":0}\n"
      "{\"type\":\"infohash\",\"infohash\":\"" HEX1 "\",\"peers\":3,"
      "\"seeds\":1,\"newest_ms\":2500,\"oldest_ms\":61000}\n"
      "{\"type\":\"peer\",\"addr\":\"10.9.9.9:51413\",\"seed\":true,"
      "\"age_ms\":4200,\"ttl_ms\":1000}\n");
  mdht_ctl_buf_free(&b);
}

/* Nothing from outside is printed as text: an entry with a broken address
 * or state still gives one line of printable ASCII, for the escaper has
 * nothing to do here. */
static void test_list_odd_entries(void **state) {
  mdht_ctl_req req;
  mdht_ctl_buf b = {0};
  mdht_ctl_list l;
  mdht_node_entry e = entry(1, 1, (mdht_node_state)77, 0, 0, 0);
  (void)state;

  memset(&req, 0, sizeof req);
  e.addr.family = 99; /* not formattable */
  mdht_ctl_list_init(&l, &req, &b, MDHT_CTL_MAX_OUT, 0);
  mdht_ctl_list_node(&l, &e);
  assert_string_equal(text(&b), "1   " HEX2 " ? ? age - seen - rtt -\n");
  for (size_t i = 0; i + 1 < b.len; i++)
    assert_true(b.p[i] >= 0x20 && b.p[i] < 0x7f);
  mdht_ctl_buf_free(&b);
}

/* Thousands of entries: the lines stop short of the budget, the rest are
 * counted in one last line, and the response is not an overflow (its
 * status stays what the command says). */
static void test_list_capped(void **state) {
  mdht_ctl_req req;
  mdht_ctl_buf b = {0};
  mdht_ctl_list l;
  mdht_node_entry e = entry(1, 1, MDHT_NODE_GOOD, 1, 1, 1);
  const size_t limit = 8192;
  (void)state;

  for (int json = 0; json < 2; json++) {
    memset(&req, 0, sizeof req);
    req.json = json;
    mdht_ctl_buf_reset(&b);
    mdht_ctl_list_init(&l, &req, &b, limit, 1000);
    for (int i = 0; i < 5000; i++)
      mdht_ctl_list_node(&l, &e);
    mdht_ctl_list_end(&l);
    assert_true(l.shown > 10);
    assert_int_equal(l.shown + l.more, 5000);
    assert_true(b.len <= limit);
    assert_false(b.overflow);
    char want[96];
    snprintf(want, sizeof want,
             json ? "{\"type\":\"more\",\"count\":%llu}\n"
                  : "... %llu more (output capped at 8 KiB)\n",
             (unsigned long long)l.more);
    assert_int_equal(memcmp(b.p + b.len - strlen(want), want, strlen(want)), 0);
    mdht_ctl_buf_status(&b, MDHT_CTL_EXIT_OK, NULL);
    assert_int_equal(memcmp(b.p + b.len - 8, "\0exit 0\n", 8), 0);
  }
  /* The whole response's budget: a full routing table fits uncapped. */
  mdht_ctl_buf_reset(&b);
  mdht_ctl_list_init(&l, &req, &b, MDHT_CTL_MAX_OUT, 1000);
  for (int i = 0; i < 160 * 8; i++)
    mdht_ctl_list_node(&l, &e);
  assert_int_equal(l.more, 0);
  mdht_ctl_buf_free(&b);
}

/* BEP 44: get prints a string's bytes (escaped), anything else its
 * bencoding; put prints the target (and seq); JSON carries everything;
 * nothing found is exit 1. */
static void test_result_items(void **state) {
  mdht_ctl_req req = {.cmd = MDHT_CTL_GET_ITEM};
  mdht_ctl_buf b = {0};
  mdht_result r;
  char msg[128];
  int code;
  (void)state;

  result_init(&r, MDHT_M_GET);
  r.item_v = (const uint8_t *)"5:a\nb\x01z";
  r.item_vlen = 7;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_OK);
  assert_string_equal(text(&b), "a\\x0ab\\x01z\n");
  mdht_ctl_buf_reset(&b);
  r.item_v = (const uint8_t *)"li1ee";
  r.item_vlen = 5;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), "li1ee\n");

  mdht_ctl_buf_reset(&b);
  req.json = true;
  r.item_mutable = true;
  r.item_seq = 7;
  r.item_v = (const uint8_t *)"3:\"x\"";
  r.item_vlen = 5;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_non_null(strstr(text(&b), "{\"type\":\"item\",\"target\":\"" HEX1
                                   "\",\"mutable\":true,\"seq\":7,\"k\":\"00"));
  assert_non_null(strstr(
      text(&b), "\"value\":\"\\\"x\\\"\",\"bencoded\":\"3:\\\"x\\\"\"}"));
  assert_non_null(strstr(text(&b), "{\"type\":\"done\",\"command\":\"get\""));

  /* nothing found: exit 1 and why */
  mdht_ctl_buf_reset(&b);
  req.json = false;
  r.item_vlen = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_NONE);
  assert_string_equal(msg, "no item found (10 nodes asked)");
  assert_string_equal(text(&b), "");

  /* put: the target; mutable with its seq; nobody stored it: exit 1 */
  mdht_ctl_buf_reset(&b);
  req.cmd = MDHT_CTL_PUT_ITEM;
  result_init(&r, MDHT_M_PUT);
  r.item_v = (const uint8_t *)"1:x";
  r.item_vlen = 3;
  r.nnodes = 2;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_OK);
  assert_string_equal(text(&b), HEX1 "\n");
  mdht_ctl_buf_reset(&b);
  r.item_mutable = true;
  r.item_seq = 3;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_string_equal(text(&b), HEX1 " seq 3\n");
  mdht_ctl_buf_reset(&b);
  r.nnodes = 0;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_NONE);
  assert_string_equal(msg, "no node stored the item (10 nodes asked)");
  r.ok = false;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_ERROR);
  mdht_ctl_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_result_items),
      cmocka_unit_test(test_result_get_peers),
      cmocka_unit_test(test_result_nodes),
      cmocka_unit_test(test_result_ping),
      cmocka_unit_test(test_status_and_overflow),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_format_saved),
      cmocka_unit_test(test_list_lines),
      cmocka_unit_test(test_list_odd_entries),
      cmocka_unit_test(test_list_capped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
