/* LogForge: the exact lines it writes, in text and JSON, and what it leaves
 * out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "logforge.h"

/* 2026-11-24T11:34:17.123Z */
#define T0 1795520057123ull
#define TS "2026-11-24T11:34:17.123Z"
#define HEX1 "0102030405060708090a0b0c0d0e0f1011121314"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

typedef struct fixture {
  char *buf;
  size_t len;
  FILE *f;
  mdht_logforge lf;
} fixture;

static uint64_t fixed_clock(void *user) {
  return *(uint64_t *)user;
}

static uint64_t t0 = T0;

static fixture *fx_new(mdht_log_level level, mdht_log_format fmt) {
  fixture *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  fx->f = open_memstream(&fx->buf, &fx->len);
  assert_non_null(fx->f);
  mdht_logforge_init(&fx->lf, fx->f, level, fmt);
  mdht_logforge_set_clock(&fx->lf, fixed_clock, &t0);
  return fx;
}

/* What was written so far; valid until the next fx_ call. */
static const char *fx_text(fixture *fx) {
  fflush(fx->f);
  return fx->buf ? fx->buf : "";
}

static void fx_del(fixture *fx) {
  fclose(fx->f);
  free(fx->buf);
  free(fx);
}

static mdht_id id_of(const char *hex) {
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  return id;
}

static mdht_addr v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  mdht_addr x = {0};
  x.family = MDHT_AF_INET;
  x.port = port;
  x.ip[0] = a;
  x.ip[1] = b;
  x.ip[2] = c;
  x.ip[3] = d;
  return x;
}

static mdht_event ev_of(mdht_event_type t) {
  mdht_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = t;
  ev.now = 42;
  return ev;
}

static void emit(fixture *fx, const mdht_event *ev) {
  mdht_logforge_on_event(ev, &fx->lf);
}

/* ------------------------------------------------------------- formats */

static void test_text_node_added(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_TEXT);
  mdht_event ev = ev_of(MDHT_EV_NODE_ADDED);
  (void)state;
  ev.id = id_of(HEX1);
  ev.addr = v4(1, 2, 3, 4, 6881);
  emit(fx, &ev);
  assert_string_equal(fx_text(fx),
                      TS " info  node_added id=" HEX1 " addr=1.2.3.4:6881\n");
  fx_del(fx);
}

static void test_json_node_added(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_JSON);
  mdht_event ev = ev_of(MDHT_EV_NODE_ADDED);
  (void)state;
  ev.id = id_of(HEX1);
  ev.addr = v4(1, 2, 3, 4, 6881);
  emit(fx, &ev);
  assert_string_equal(fx_text(fx),
                      "{\"ts\":\"" TS "\",\"level\":\"info\","
                      "\"event\":\"node_added\",\"id\":\"" HEX1 "\","
                      "\"addr\":\"1.2.3.4:6881\"}\n");
  fx_del(fx);
}

static void test_per_event_fields(void **state) {
  fixture *fx = fx_new(MDHT_LOG_TRACE, MDHT_LOG_TEXT);
  mdht_event ev;
  (void)state;

  ev = ev_of(MDHT_EV_RESPONSE_RECEIVED);
  ev.method = MDHT_M_GET_PEERS;
  ev.id = id_of(HEX1);
  ev.addr = v4(10, 0, 0, 1, 1);
  ev.u.response.rtt_ms = 37;
  emit(fx, &ev);

  ev = ev_of(MDHT_EV_DATAGRAM_DROPPED);
  ev.addr = v4(10, 0, 0, 2, 2);
  ev.u.drop.reason = MDHT_DROP_TOO_BIG;
  ev.u.drop.len = 65000;
  emit(fx, &ev);

  ev = ev_of(MDHT_EV_NODE_REPLACED);
  ev.id = id_of(HEX1);
  ev.addr = v4(10, 0, 0, 3, 3);
  ev.u.replaced.old_id = id_of(HEX2);
  ev.u.replaced.old_addr = v4(10, 0, 0, 4, 4);
  emit(fx, &ev);

  /* No id: a malformed query has none; the field is left out, not
   * printed as forty zeros. */
  ev = ev_of(MDHT_EV_ERROR_SENT);
  ev.method = MDHT_M_UNKNOWN;
  ev.addr = v4(10, 0, 0, 5, 5);
  ev.u.error.code = 203;
  emit(fx, &ev);

  ev = ev_of(MDHT_EV_BUCKET_SPLIT);
  ev.u.split.depth = 3;
  ev.u.split.buckets = 4;
  emit(fx, &ev);

  assert_string_equal(
      fx_text(fx),
      TS " trace response_received method=get_peers id=" HEX1
         " addr=10.0.0.1:1 rtt_ms=37\n" TS
         " debug datagram_dropped reason=\"oversized datagram\" len=65000"
         " addr=10.0.0.2:2\n" TS " info  node_replaced id=" HEX1
         " addr=10.0.0.3:3 old_id=" HEX2 " old_addr=10.0.0.4:4\n" TS
         " debug error_sent method=unknown addr=10.0.0.5:5 code=203\n" TS
         " info  bucket_split depth=3 buckets=4\n");
  fx_del(fx);
}

static void test_json_lookup_and_peer(void **state) {
  fixture *fx = fx_new(MDHT_LOG_DEBUG, MDHT_LOG_JSON);
  mdht_event ev;
  (void)state;

  ev = ev_of(MDHT_EV_LOOKUP_DONE);
  ev.id = id_of(HEX2);
  ev.method = MDHT_M_GET_PEERS;
  ev.u.lookup.lookup_id = 7;
  ev.u.lookup.round = 5;
  ev.u.lookup.queried = 30;
  ev.u.lookup.answered = 25;
  ev.u.lookup.failed = 5;
  ev.u.lookup.peers = 12;
  ev.u.lookup.closest_bits = 21;
  ev.u.lookup.ok = true;
  emit(fx, &ev);

  ev = ev_of(MDHT_EV_PEER_STORED);
  ev.id = id_of(HEX1);
  ev.addr = v4(10, 0, 0, 9, 6881);
  ev.u.peer.peer = v4(10, 0, 0, 9, 51413);
  ev.u.peer.count = 2;
  emit(fx, &ev);

  assert_string_equal(
      fx_text(fx),
      "{\"ts\":\"" TS "\",\"level\":\"info\",\"event\":\"lookup_done\","
      "\"target\":\"" HEX2 "\",\"method\":\"get_peers\",\"lookup\":7,"
      "\"round\":5,\"queried\":30,\"answered\":25,\"failed\":5,\"peers\":12,"
      "\"closest_bits\":21,\"ok\":true}\n"
      "{\"ts\":\"" TS "\",\"level\":\"debug\",\"event\":\"peer_stored\","
      "\"infohash\":\"" HEX1 "\",\"peer\":\"10.0.0.9:51413\","
      "\"addr\":\"10.0.0.9:6881\",\"count\":2}\n");
  fx_del(fx);
}

/* BEP 44 item events: debug level, the target, mutable items' seq. */
static void test_item_events(void **state) {
  fixture *fx = fx_new(MDHT_LOG_DEBUG, MDHT_LOG_TEXT);
  mdht_event ev;
  (void)state;
  ev = ev_of(MDHT_EV_ITEM_STORED);
  ev.id = id_of(HEX1);
  ev.addr = v4(10, 0, 0, 9, 6881);
  ev.u.item.is_mutable = true;
  ev.u.item.seq = 42;
  ev.u.item.vlen = 15;
  emit(fx, &ev);
  ev = ev_of(MDHT_EV_ITEM_SERVED);
  ev.id = id_of(HEX2);
  ev.addr = v4(10, 0, 0, 8, 1);
  ev.u.item.vlen = 1000;
  emit(fx, &ev);
  assert_string_equal(fx_text(fx),
                      TS " debug item_stored target=" HEX1
                         " addr=10.0.0.9:6881 mutable=true seq=42 len=15\n" TS
                         " debug item_served target=" HEX2
                         " addr=10.0.0.8:1 mutable=false len=1000\n");
  fx_del(fx);
}

static void test_ipv6_addr(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_JSON);
  mdht_event ev = ev_of(MDHT_EV_EXTERNAL_ADDR);
  (void)state;
  ev.addr.family = MDHT_AF_INET6;
  ev.addr.port = 6881;
  ev.addr.ip[0] = 0x20;
  ev.addr.ip[1] = 0x01;
  ev.addr.ip[2] = 0x0d;
  ev.addr.ip[3] = 0xb8;
  ev.addr.ip[15] = 1;
  emit(fx, &ev);
  assert_string_equal(fx_text(fx), "{\"ts\":\"" TS "\",\"level\":\"info\","
                                   "\"event\":\"external_addr\","
                                   "\"addr\":\"[2001:db8::1]:6881\"}\n");
  fx_del(fx);
}

/* BEP 42: the voted address and the id derived from it, with what they
 * replace; the id change is a warning, so quiet runs see it. */
static void test_id_changed(void **state) {
  fixture *fx = fx_new(MDHT_LOG_WARN, MDHT_LOG_TEXT);
  (void)state;
  mdht_event ev = ev_of(MDHT_EV_EXTERNAL_ADDR);
  ev.addr = v4(93, 184, 216, 34, 40000);
  emit(fx, &ev); /* info: below warn */
  ev = ev_of(MDHT_EV_NODE_ID_CHANGED);
  ev.id = id_of(HEX2);
  ev.u.replaced.old_id = id_of(HEX1);
  ev.addr = v4(93, 184, 216, 34, 40000);
  emit(fx, &ev);
  assert_string_equal(fx_text(fx),
                      TS " warn  node_id_changed id=" HEX2 " old_id=" HEX1
                         " addr=93.184.216.34:40000\n");
  fx_del(fx);
  fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_TEXT);
  ev = ev_of(MDHT_EV_EXTERNAL_ADDR);
  ev.addr = v4(93, 184, 216, 34, 40000);
  ev.u.replaced.old_addr = v4(8, 8, 8, 8, 1);
  emit(fx, &ev);
  assert_string_equal(fx_text(fx), TS " info  external_addr "
                                      "addr=93.184.216.34:40000 "
                                      "old_addr=8.8.8.8:1\n");
  fx_del(fx);
}

/* ------------------------------------------------------------- levels */

static void test_event_levels(void **state) {
  mdht_event ev = ev_of(MDHT_EV_NODE_ADDED);
  (void)state;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_INFO);
  ev.type = MDHT_EV_DATAGRAM_DROPPED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_DEBUG);
  ev.type = MDHT_EV_QUERY_RECEIVED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_TRACE);
  /* The README's table: one per datagram at trace, lookup starts and
   * rejected tokens at debug, external_addr (once per change) at info, and
   * the state load said once, by the program's own line. */
  ev.type = MDHT_EV_QUERY_SENT;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_TRACE);
  ev.type = MDHT_EV_RESPONSE_RECEIVED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_TRACE);
  ev.type = MDHT_EV_LOOKUP_STARTED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_DEBUG);
  ev.type = MDHT_EV_TOKEN_REJECTED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_DEBUG);
  ev.type = MDHT_EV_STATE_LOADED;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_DEBUG);
  ev.type = MDHT_EV_EXTERNAL_ADDR;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_INFO);
  ev.type = MDHT_EV_LOG;
  ev.u.log.level = MDHT_LOG_WARN;
  assert_int_equal(mdht_logforge_event_level(&ev), MDHT_LOG_WARN);
  /* Every event type has a level within range. */
  for (int t = 0; t < MDHT_EV_COUNT_; t++) {
    mdht_event e = ev_of((mdht_event_type)t);
    assert_in_range(mdht_logforge_event_level(&e), MDHT_LOG_ERROR,
                    MDHT_LOG_TRACE);
  }
}

static void test_level_filter(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_TEXT);
  mdht_event q = ev_of(MDHT_EV_QUERY_RECEIVED);
  mdht_event drop = ev_of(MDHT_EV_DATAGRAM_DROPPED);
  mdht_event warn = ev_of(MDHT_EV_LOG);
  mdht_event dbg = ev_of(MDHT_EV_LOG);
  (void)state;
  warn.u.log.level = MDHT_LOG_WARN;
  warn.u.log.text = "w";
  dbg.u.log.level = MDHT_LOG_DEBUG;
  dbg.u.log.text = "d";

  emit(fx, &q);
  emit(fx, &drop);
  emit(fx, &dbg);
  mdht_logforge_logf(&fx->lf, MDHT_LOG_TRACE, "hidden %d", 1);
  assert_string_equal(fx_text(fx), "");
  emit(fx, &warn);
  mdht_logforge_logf(&fx->lf, MDHT_LOG_ERROR, "shown %d", 2);
  assert_string_equal(fx_text(fx), TS " warn  w\n" TS " error shown 2\n");
  fx_del(fx);

  /* warn still shows where the node listens: scripts need it. */
  fx = fx_new(MDHT_LOG_WARN, MDHT_LOG_TEXT);
  mdht_logforge_listening(&fx->lf, &drop.addr, &drop.id);
  assert_non_null(strstr(fx_text(fx), " listening on "));
  fx_del(fx);

  /* error: only errors. */
  fx = fx_new(MDHT_LOG_ERROR, MDHT_LOG_TEXT);
  emit(fx, &warn);
  mdht_logforge_listening(&fx->lf, &drop.addr, &drop.id);
  assert_string_equal(fx_text(fx), "");
  fx_del(fx);

  /* trace: everything. */
  fx = fx_new(MDHT_LOG_TRACE, MDHT_LOG_TEXT);
  emit(fx, &q);
  emit(fx, &drop);
  emit(fx, &dbg);
  assert_string_equal(fx_text(fx),
                      TS " trace query_received method=ping\n" TS
                         " debug datagram_dropped"
                         " reason=\"not bencode\" len=0\n" TS " debug d\n");
  fx_del(fx);
}

static void test_parse_names(void **state) {
  mdht_log_level l;
  mdht_log_format f;
  (void)state;
  assert_int_equal(mdht_log_level_parse(&l, "error"), 0);
  assert_int_equal(l, MDHT_LOG_ERROR);
  assert_int_equal(mdht_log_level_parse(&l, "trace"), 0);
  assert_int_equal(l, MDHT_LOG_TRACE);
  assert_int_equal(mdht_log_level_parse(&l, "warning"), MDHT_ERR_INVAL);
  assert_int_equal(mdht_log_level_parse(&l, "INFO"), MDHT_ERR_INVAL);
  assert_int_equal(mdht_log_level_parse(&l, ""), MDHT_ERR_INVAL);
  assert_string_equal(mdht_log_level_name(MDHT_LOG_DEBUG), "debug");
  assert_int_equal(mdht_log_format_parse(&f, "json"), 0);
  assert_int_equal(f, MDHT_LOG_JSON);
  assert_int_equal(mdht_log_format_parse(&f, "text"), 0);
  assert_int_equal(f, MDHT_LOG_TEXT);
  assert_int_equal(mdht_log_format_parse(&f, "xml"), MDHT_ERR_INVAL);
}

/* ----------------------------------------------------------- escaping */

static void test_json_escaping(void **state) {
  fixture *fx = fx_new(MDHT_LOG_TRACE, MDHT_LOG_JSON);
  mdht_event ev = ev_of(MDHT_EV_LOG);
  (void)state;
  ev.u.log.level = MDHT_LOG_WARN;
  /* quote, backslash, the named escapes, other controls, DEL, valid
   * UTF-8 (é, U+1F600), and bytes that are not UTF-8 (a lone 0xff, a
   * truncated sequence, an overlong '/', a surrogate). */
  ev.u.log.text = "a\"b\\c\nd\re\tf\x01g\x1fh\x7fi\xc3\xa9j\xf0\x9f\x98\x80k"
                  "\xffl\xc3m\xc0\xafn\xed\xa0\x80o";
  emit(fx, &ev);
  assert_string_equal(fx_text(fx),
                      "{\"ts\":\"" TS "\",\"level\":\"warn\",\"event\":\"log\","
                      "\"msg\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001fh"
                      "\\u007fi\xc3\xa9j\xf0\x9f\x98\x80k\\ufffdl\\ufffdm"
                      "\\ufffd\\ufffdn\\ufffd\\ufffd\\ufffdo\"}\n");
  fx_del(fx);
}

static void test_text_escaping(void **state) {
  fixture *fx = fx_new(MDHT_LOG_TRACE, MDHT_LOG_TEXT);
  mdht_event ev = ev_of(MDHT_EV_LOG);
  (void)state;
  ev.u.log.level = MDHT_LOG_INFO;
  ev.u.log.text = "two\nlines \"quoted\" \x01\xff";
  emit(fx, &ev);
  /* One record, one line; quotes in free text stay as they are. */
  assert_string_equal(fx_text(fx),
                      TS " info  two\\nlines \"quoted\" \\x01\\xff\n");
  fx_del(fx);
}

static void test_free_text_and_listening(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_JSON);
  mdht_addr a = v4(127, 0, 0, 1, 6881);
  mdht_id id = id_of(HEX1);
  (void)state;
  mdht_logforge_logf(&fx->lf, MDHT_LOG_WARN, "bootstrap %s: \"%s\"", "x:1",
                     "no");
  mdht_logforge_listening(&fx->lf, &a, &id);
  assert_string_equal(fx_text(fx),
                      "{\"ts\":\"" TS "\",\"level\":\"warn\",\"event\":\"log\","
                      "\"msg\":\"bootstrap x:1: \\\"no\\\"\"}\n"
                      "{\"ts\":\"" TS
                      "\",\"level\":\"info\",\"event\":\"listening\","
                      "\"addr\":\"127.0.0.1:6881\",\"id\":\"" HEX1 "\"}\n");
  fx_del(fx);

  fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_TEXT);
  mdht_logforge_listening(&fx->lf, &a, &id);
  assert_string_equal(fx_text(fx),
                      TS " info  listening on 127.0.0.1:6881 id=" HEX1 "\n");
  fx_del(fx);
}

static void test_timestamp_without_clock(void **state) {
  fixture *fx = fx_new(MDHT_LOG_INFO, MDHT_LOG_TEXT);
  (void)state;
  /* No clock: the caller sets wall_ms. Epoch, and a millisecond field
   * that must keep its leading zeros. */
  mdht_logforge_set_clock(&fx->lf, NULL, NULL);
  fx->lf.wall_ms = 7;
  mdht_logforge_logf(&fx->lf, MDHT_LOG_INFO, "x");
  assert_string_equal(fx_text(fx), "1970-01-01T00:00:00.007Z info  x\n");
  fx_del(fx);
}

static void test_null_logger_is_silent(void **state) {
  (void)state;
  /* The driver logs through a possibly NULL logger. */
  mdht_logforge_logf(NULL, MDHT_LOG_ERROR, "nobody hears this");
  mdht_logforge_listening(NULL, NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_text_node_added),
      cmocka_unit_test(test_json_node_added),
      cmocka_unit_test(test_per_event_fields),
      cmocka_unit_test(test_json_lookup_and_peer),
      cmocka_unit_test(test_ipv6_addr),
      cmocka_unit_test(test_item_events),
      cmocka_unit_test(test_id_changed),
      cmocka_unit_test(test_event_levels),
      cmocka_unit_test(test_level_filter),
      cmocka_unit_test(test_parse_names),
      cmocka_unit_test(test_json_escaping),
      cmocka_unit_test(test_text_escaping),
      cmocka_unit_test(test_free_text_and_listening),
      cmocka_unit_test(test_timestamp_without_clock),
      cmocka_unit_test(test_null_logger_is_silent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
