/* Metrics (metrics.c): the exposition text from a snapshot, the events
 * folded into it, label escaping, and the listening socket's errors. The
 * HTTP side is tested on the binary (tests/integration/test_metrics.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metrics.h"

#define ID_HEX "0123456789abcdef0123456789abcdef01234567"

static char page[MDHT_METRICS_MAX_TEXT];

static void sample_snapshot(mdht_metrics_snapshot *s) {
  memset(s, 0, sizeof *s);
  s->version = "0.1.0";
  memcpy(s->node_id, ID_HEX, 41);
  s->start_wall_ms = 1700000000123ull;
  s->stats.recv_packets = 12;
  s->stats.sent_packets = 13;
  s->stats.queries_in[MDHT_M_GET_PEERS] = 7;
  s->stats.queries_out[MDHT_M_FIND_NODE] = 9;
  s->stats.responses_in = 21;
  s->stats.responses_out = 22;
  s->stats.errors_in = 3;
  s->stats.errors_out = 4;
  s->stats.timeouts = 5;
  s->stats.dropped[MDHT_DROP_REPLY_TOO_BIG] = 4;
  s->stats.dropped[MDHT_DROP_PARSE] = 1;
  s->stats.rate_limited = 6;
  s->stats.tokens_rejected = 2;
  s->stats.nodes_good = 10;
  s->stats.nodes_questionable = 3;
  s->stats.nodes_total = 15;
  s->stats.buckets = 4;
  s->stats.replacements = 8;
  s->stats.infohashes = 2;
  s->stats.peers = 5;
  s->stats.txns_outstanding = 11;
  s->stats.lookups_running = 1;
  s->acc.lookups[MDHT_M_GET_PEERS][1] = 17;
  s->acc.lookups[MDHT_M_FIND_NODE][0] = 2;
}

static int format(const mdht_metrics_snapshot *s) {
  int n = mdht_metrics_format(s, page, sizeof page);
  assert_true(n > 0);
  assert_int_equal(strlen(page), (size_t)n);
  return n;
}

static void has_line(const char *line) {
  char want[512];
  snprintf(want, sizeof want, "\n%s\n", line);
  if (!strstr(page, want))
    fail_msg("missing line: %s\n--- page:\n%s", line, page);
}

static void test_exact_lines(void **state) {
  mdht_metrics_snapshot s;
  (void)state;
  sample_snapshot(&s);
  format(&s);
  /* The page opens with the info gauge. */
  const char *start = "# HELP mdht_info The node's version and id (always 1).\n"
                      "# TYPE mdht_info gauge\n"
                      "mdht_info{version=\"0.1.0\",node_id=\"" ID_HEX "\"} 1\n";
  assert_memory_equal(page, start, strlen(start));
  has_line("# TYPE mdht_start_time_seconds gauge");
  has_line("mdht_start_time_seconds 1700000000.123");
  has_line("# HELP mdht_datagrams_received_total Datagrams received, dropped "
           "ones included.");
  has_line("# TYPE mdht_datagrams_received_total counter");
  has_line("mdht_datagrams_received_total 12");
  has_line("mdht_datagrams_sent_total 13");
  has_line("# TYPE mdht_queries_received_total counter");
  has_line("mdht_queries_received_total{method=\"get_peers\"} 7");
  has_line("mdht_queries_received_total{method=\"ping\"} 0");
  has_line("mdht_queries_sent_total{method=\"find_node\"} 9");
  has_line("mdht_queries_sent_total{method=\"sample_infohashes\"} 0");
  has_line("mdht_responses_received_total 21");
  has_line("mdht_responses_sent_total 22");
  has_line("mdht_errors_received_total 3");
  has_line("mdht_errors_sent_total 4");
  has_line("mdht_query_timeouts_total 5");
  has_line("mdht_datagrams_dropped_total{reason=\"reply_too_big\"} 4");
  has_line("mdht_datagrams_dropped_total{reason=\"parse\"} 1");
  has_line("mdht_datagrams_dropped_total{reason=\"queue_full\"} 0");
  has_line("mdht_rate_limited_total 6");
  has_line("mdht_tokens_rejected_total 2");
  has_line("mdht_lookups_total{method=\"get_peers\",result=\"ok\"} 17");
  has_line("mdht_lookups_total{method=\"find_node\",result=\"failed\"} 2");
  has_line("mdht_lookups_total{method=\"announce_peer\",result=\"ok\"} 0");
  has_line("# TYPE mdht_routing_nodes gauge");
  has_line("mdht_routing_nodes{state=\"good\"} 10");
  has_line("mdht_routing_nodes{state=\"questionable\"} 3");
  has_line("mdht_routing_nodes{state=\"bad\"} 2"); /* 15 - 10 - 3 */
  has_line("mdht_routing_buckets 4");
  has_line("mdht_routing_replacements 8");
  has_line("mdht_stored_infohashes 2");
  has_line("mdht_stored_peers 5");
  has_line("mdht_transactions_outstanding 11");
  has_line("mdht_lookups_running 1");
  has_line("# TYPE mdht_lookup_duration_seconds histogram");
  has_line("# TYPE mdht_reply_rtt_seconds histogram");
  assert_int_equal(page[strlen(page) - 1], '\n');
}

/* Every line is a comment (HELP then TYPE, once per metric) or a sample
 * of the metric last declared: what a parser relies on. */
static void test_structure(void **state) {
  mdht_metrics_snapshot s;
  char name[128] = "", prev_help[128] = "";
  int types = 0;
  (void)state;
  sample_snapshot(&s);
  format(&s);
  for (char *line = strtok(page, "\n"); line; line = strtok(NULL, "\n")) {
    char n1[128], kind[32];
    if (sscanf(line, "# HELP %127s", n1) == 1) {
      snprintf(prev_help, sizeof prev_help, "%s", n1);
      continue;
    }
    if (sscanf(line, "# TYPE %127s %31s", n1, kind) == 2) {
      assert_string_equal(n1, prev_help); /* HELP right before TYPE */
      assert_true(strcmp(kind, "counter") == 0 || strcmp(kind, "gauge") == 0 ||
                  strcmp(kind, "histogram") == 0);
      if (strcmp(kind, "counter") == 0)
        assert_string_equal(n1 + strlen(n1) - 6, "_total");
      assert_true(strcmp(n1, name) != 0);
      snprintf(name, sizeof name, "%s", n1);
      types++;
      continue;
    }
    assert_true(line[0] != '#');
    assert_true(strncmp(line, name, strlen(name)) == 0);
    char *sp = strrchr(line, ' ');
    assert_non_null(sp);
    char *end;
    strtod(sp + 1, &end);
    assert_int_equal(*end, '\0');
  }
  assert_int_equal(types, 24);
}

static void test_histogram(void **state) {
  mdht_metrics_snapshot s;
  (void)state;
  memset(&s, 0, sizeof s);
  s.version = "v";
  mdht_metrics_hist_add(&s.acc.lookup_ms, mdht_metrics_lookup_bounds, 50);
  mdht_metrics_hist_add(&s.acc.lookup_ms, mdht_metrics_lookup_bounds, 51);
  mdht_metrics_hist_add(&s.acc.lookup_ms, mdht_metrics_lookup_bounds, 30001);
  mdht_metrics_hist_add(&s.acc.rtt_ms, mdht_metrics_rtt_bounds, 0);
  format(&s);
  /* le is inclusive: 50 ms is in the 0.05 bucket; cumulative counts. */
  has_line("mdht_lookup_duration_seconds_bucket{le=\"0.05\"} 1");
  has_line("mdht_lookup_duration_seconds_bucket{le=\"0.1\"} 2");
  has_line("mdht_lookup_duration_seconds_bucket{le=\"1.0\"} 2");
  has_line("mdht_lookup_duration_seconds_bucket{le=\"2.5\"} 2");
  has_line("mdht_lookup_duration_seconds_bucket{le=\"30.0\"} 2");
  has_line("mdht_lookup_duration_seconds_bucket{le=\"+Inf\"} 3");
  has_line("mdht_lookup_duration_seconds_sum 30.102");
  has_line("mdht_lookup_duration_seconds_count 3");
  has_line("mdht_reply_rtt_seconds_bucket{le=\"0.005\"} 1");
  has_line("mdht_reply_rtt_seconds_bucket{le=\"5.0\"} 1");
  has_line("mdht_reply_rtt_seconds_bucket{le=\"+Inf\"} 1");
  has_line("mdht_reply_rtt_seconds_sum 0.000");
  has_line("mdht_reply_rtt_seconds_count 1");
}

static void test_observe(void **state) {
  mdht_metrics_acc acc;
  mdht_event ev;
  (void)state;
  memset(&acc, 0, sizeof acc);

  memset(&ev, 0, sizeof ev);
  ev.type = MDHT_EV_LOOKUP_DONE;
  ev.method = MDHT_M_GET_PEERS;
  ev.u.lookup.ok = true;
  ev.u.lookup.elapsed_ms = 1200;
  mdht_metrics_observe(&acc, &ev);
  ev.method = MDHT_M_FIND_NODE;
  ev.u.lookup.ok = false;
  ev.u.lookup.elapsed_ms = 40;
  mdht_metrics_observe(&acc, &ev);
  ev.method = (mdht_method)99; /* not a method: no count, no crash */
  mdht_metrics_observe(&acc, &ev);

  memset(&ev, 0, sizeof ev);
  ev.type = MDHT_EV_RESPONSE_RECEIVED;
  ev.u.response.rtt_ms = 7;
  mdht_metrics_observe(&acc, &ev);
  ev.type = MDHT_EV_QUERY_SENT; /* not counted here */
  mdht_metrics_observe(&acc, &ev);

  assert_int_equal(acc.lookups[MDHT_M_GET_PEERS][1], 1);
  assert_int_equal(acc.lookups[MDHT_M_GET_PEERS][0], 0);
  assert_int_equal(acc.lookups[MDHT_M_FIND_NODE][0], 1);
  assert_int_equal(acc.lookup_ms.count, 3);
  assert_int_equal(acc.lookup_ms.sum_ms, 1200 + 40 + 40);
  assert_int_equal(acc.lookup_ms.bucket[0], 2); /* <= 50 ms */
  assert_int_equal(acc.lookup_ms.bucket[5], 1); /* <= 2.5 s */
  assert_int_equal(acc.rtt_ms.count, 1);
  assert_int_equal(acc.rtt_ms.bucket[1], 1); /* <= 10 ms */
  assert_int_equal(acc.rtt_ms.sum_ms, 7);
}

static void test_escape(void **state) {
  char out[64];
  mdht_metrics_snapshot s;
  (void)state;
  assert_int_equal(mdht_metrics_escape("a\\b\"c\nd", out, sizeof out), 10);
  assert_string_equal(out, "a\\\\b\\\"c\\nd");
  assert_int_equal(mdht_metrics_escape("plain", out, sizeof out), 5);
  assert_string_equal(out, "plain");
  assert_int_equal(mdht_metrics_escape("abc", out, 3),
                   -1); /* no room for NUL */
  assert_int_equal(mdht_metrics_escape("a\"", out, 3), -1);
  assert_int_equal(mdht_metrics_escape("", out, 1), 0);

  sample_snapshot(&s);
  s.version = "1.\"x\"\\\n";
  format(&s);
  has_line("mdht_info{version=\"1.\\\"x\\\"\\\\\\n\",node_id=\"" ID_HEX
           "\"} 1");
}

/* The largest numbers fit the page's bound; a buffer too small is an
 * error, never a cut page. */
static void test_bounds(void **state) {
  mdht_metrics_snapshot s;
  (void)state;
  memset(&s, 0xff, sizeof s);
  s.version = MDHT_VERSION;
  memcpy(s.node_id, ID_HEX, 41);
  int n = format(&s);
  assert_true(n < MDHT_METRICS_MAX_TEXT);
  has_line("mdht_datagrams_received_total 18446744073709551615");
  has_line("mdht_routing_nodes{state=\"bad\"} 0"); /* never negative */
  static char small[MDHT_METRICS_MAX_TEXT];
  assert_int_equal(mdht_metrics_format(&s, small, (size_t)n + 1), n);
  assert_int_equal(mdht_metrics_format(&s, small, (size_t)n), -1);
  assert_int_equal(mdht_metrics_format(&s, small, 100), -1);
  assert_int_equal(mdht_metrics_format(&s, small, 0), -1);
}

static void test_check_addr(void **state) {
  (void)state;
  assert_int_equal(mdht_metrics_check_addr("127.0.0.1:9100"), 0);
  assert_int_equal(mdht_metrics_check_addr("[::1]:9100"), 0);
  assert_int_equal(mdht_metrics_check_addr("localhost:9100"), 0);
  assert_int_equal(mdht_metrics_check_addr("127.0.0.1"), -1);
  assert_int_equal(mdht_metrics_check_addr("127.0.0.1:0"), -1);
  assert_int_equal(mdht_metrics_check_addr("::1:9100"), -1);
  assert_int_equal(mdht_metrics_check_addr(":9100"), -1);
}

/* A port someone listens on already: refused with errno's reason, in the
 * documented words. */
static void test_open_errors(void **state) {
  mdht_metrics_server m;
  char err[256], where[64];
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  (void)state;

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(0x7f000001);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(fd, 1), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  snprintf(where, sizeof where, "127.0.0.1:%u", ntohs(sa.sin_port));

  assert_int_equal(mdht_metrics_open(&m, where, err, sizeof err), -EADDRINUSE);
  char want[128];
  snprintf(want, sizeof want, "cannot serve metrics on %s: %s", where,
           strerror(EADDRINUSE));
  assert_string_equal(err, want);
  mdht_metrics_close(&m); /* harmless after a failed open */
  close(fd);

  assert_int_equal(mdht_metrics_open(&m, "127.0.0.1", err, sizeof err),
                   -EINVAL);
  assert_string_equal(err, "cannot serve metrics on 127.0.0.1: not ADDR:PORT "
                           "or [ADDR]:PORT");
  mdht_metrics_close(&m);

  /* Now free: open succeeds and close releases the port. */
  assert_int_equal(mdht_metrics_open(&m, where, err, sizeof err), 0);
  assert_true(m.lfd >= 0);
  mdht_metrics_close(&m);
  assert_int_equal(m.lfd, -1);
  assert_int_equal(mdht_metrics_open(&m, where, err, sizeof err), 0);
  mdht_metrics_close(&m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_lines), cmocka_unit_test(test_structure),
      cmocka_unit_test(test_histogram),   cmocka_unit_test(test_observe),
      cmocka_unit_test(test_escape),      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_check_addr),  cmocka_unit_test(test_open_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
