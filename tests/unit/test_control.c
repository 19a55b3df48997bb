/* The control protocol's pure parts: request parsing and formatting,
 * info-hashes and magnet links, result and stats formatting, the response
 * reader, and a job on a node that knows nobody. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "control.h"
#include "testutil.h"

#define HEX1 "0123456789abcdef0123456789abcdef01234567"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

static mdht_id id_of(const char *hex) {
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  return id;
}

static int parse(mdht_ctl_req *req, const char *line) {
  char err[160];
  err[0] = '\0';
  int rc = mdht_ctl_parse(req, line, strlen(line), err, sizeof err);
  if (rc < 0) {
    /* Every error says why, in one line. */
    assert_true(err[0] != '\0');
    assert_null(strchr(err, '\n'));
  }
  return rc;
}

/* --------------------------------------------------------------- parse */

static void test_parse_commands(void **state) {
  mdht_ctl_req r;
  mdht_id id1 = id_of(HEX1);
  (void)state;

  assert_int_equal(parse(&r, "get-peers " HEX1 "\n"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_GET_PEERS);
  assert_memory_equal(&r.target, &id1, sizeof id1);
  assert_false(r.json);
  assert_int_equal(r.timeout_ms, 0);

  assert_int_equal(parse(&r, "find-node " HEX1 " --json --timeout 5000"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_FIND_NODE);
  assert_true(r.json);
  assert_int_equal(r.timeout_ms, 5000);

  assert_int_equal(
      parse(&r, "announce " HEX1 " --port 6881 --implied-port --seed\r\n"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_ANNOUNCE);
  assert_int_equal(r.port, 6881);
  assert_true(r.implied_port);
  assert_true(r.seed);
  assert_int_equal(parse(&r, "announce " HEX1 " --implied-port"), 0);

  assert_int_equal(parse(&r, "ping 127.0.0.1:6881 --progress"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_PING);
  assert_true(r.progress);
  mdht_addr a = test_addr4(127, 0, 0, 1, 6881);
  assert_true(mdht_addr_eq(&r.addr, &a));
  assert_int_equal(parse(&r, "ping [::1]:1"), 0);
  assert_int_equal(r.addr.family, MDHT_AF_INET6);

  assert_int_equal(parse(&r, "  stats \t --json  "), 0);
  assert_int_equal(r.cmd, MDHT_CTL_STATS);
  assert_true(r.json);

  /* save: no argument, like stats; `mdht save` sends its --timeout. */
  assert_int_equal(parse(&r, "save\n"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_SAVE);
  assert_false(r.json);
  assert_int_equal(parse(&r, "save --json --timeout 30000"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_SAVE);
  assert_true(r.json);
  assert_int_equal(r.timeout_ms, 30000);
  assert_int_equal(mdht_ctl_cmd_parse("save"), MDHT_CTL_SAVE);
  assert_string_equal(mdht_ctl_cmd_name(MDHT_CTL_SAVE), "save");
}

static void test_parse_errors(void **state) {
  mdht_ctl_req r;
  char big[MDHT_CTL_MAX_LINE + 10];
  char err[160];
  (void)state;

  assert_int_equal(parse(&r, ""), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "\n"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "   "), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "frobnicate"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "GET-PEERS " HEX1), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers --json"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers xyz"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 "0"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "find-node magnet:?xt=urn:btih:" HEX1),
                   MDHT_ERR_INVAL); /* an id is not an info-hash */
  assert_int_equal(parse(&r, "get-peers " HEX1 " --frob"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " extra"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " --port 5"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " --timeout"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " --timeout 0"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " --timeout -5"),
                   MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get-peers " HEX1 " --timeout 5x"),
                   MDHT_ERR_INVAL);
  assert_int_equal(
      parse(&r, "get-peers " HEX1 " --timeout 99999999999999999999999"),
      MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "announce " HEX1), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "announce " HEX1 " --port 0"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "announce " HEX1 " --port 65536"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "ping"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "ping localhost:6881"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "ping 127.0.0.1"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "ping 127.0.0.1:0"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "stats extra"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "save " HEX1), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "save --port 1"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "saves"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "stats a b c d e f g h i j k l m n o p q r"),
                   MDHT_ERR_INVAL);

  /* A NUL inside the line. */
  assert_int_equal(mdht_ctl_parse(&r, "stats\0x", 7, err, sizeof err),
                   MDHT_ERR_INVAL);
  /* Too long. */
  memset(big, 'a', sizeof big);
  assert_int_equal(mdht_ctl_parse(&r, big, sizeof big, err, sizeof err),
                   MDHT_ERR_INVAL);
  /* A hostile command name is quoted, bounded. */
  memset(big, 'b', 500);
  big[500] = '\0';
  assert_int_equal(parse(&r, big), MDHT_ERR_INVAL);
}

static void test_format_roundtrip(void **state) {
  mdht_ctl_req r, back;
  char line[MDHT_CTL_MAX_LINE + 1];
  int n;
  (void)state;

  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_ANNOUNCE;
  r.target = id_of(HEX2);
  r.port = 51413;
  r.implied_port = r.seed = r.json = r.progress = true;
  r.timeout_ms = 12000;
  n = mdht_ctl_format(&r, line, sizeof line);
  assert_true(n > 0);
  assert_string_equal(line, "announce " HEX2 " --port 51413 --implied-port "
                            "--seed --json --progress --timeout 12000\n");
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);

  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_PING;
  r.addr = test_addr4(10, 1, 2, 3, 4);
  n = mdht_ctl_format(&r, line, sizeof line);
  assert_string_equal(line, "ping 10.1.2.3:4\n");
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);

  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_STATS;
  assert_int_equal(mdht_ctl_format(&r, line, sizeof line), 6);
  assert_string_equal(line, "stats\n");
  assert_int_equal(mdht_ctl_format(&r, line, 3), MDHT_ERR_NOBUF);

  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_SAVE;
  r.json = true;
  r.timeout_ms = 30000;
  n = mdht_ctl_format(&r, line, sizeof line);
  assert_string_equal(line, "save --json --timeout 30000\n");
  assert_int_equal(n, (int)strlen(line));
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);
}

static void test_infohash(void **state) {
  mdht_id id, want = id_of(HEX1);
  (void)state;

  assert_int_equal(mdht_ctl_parse_infohash(&id, HEX1), 0);
  assert_memory_equal(&id, &want, sizeof id);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "0123456789ABCDEF0123456789ABCDEF01234567"),
      0);
  assert_memory_equal(&id, &want, sizeof id);
  memset(&id, 0, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:" HEX1),
                   0);
  assert_memory_equal(&id, &want, sizeof id);
  /* base32, with other parameters around it, case-insensitive urn. */
  memset(&id, 0, sizeof id);
  assert_int_equal(
      mdht_ctl_parse_infohash(&id, "magnet:?dn=a%20b&xt=URN:BTIH:"
                                   "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH&tr=x"),
      0);
  assert_memory_equal(&id, &want, sizeof id);
  assert_int_equal(mdht_ctl_parse_infohash(&id,
                                           "magnet:?xt=urn:btih:"
                                           "aerukz4jvpg66ajdivtytk6n54asgrlh"),
                   0);
  assert_memory_equal(&id, &want, sizeof id);

  assert_int_equal(mdht_ctl_parse_infohash(&id, ""), MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?"), MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?dn=x"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btih:abc"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "magnet:?xt=urn:btmh:1220" HEX1
                                                "0000000000"),
                   MDHT_ERR_INVAL);
  /* base32 with a digit outside 2-7 */
  assert_int_equal(mdht_ctl_parse_infohash(&id,
                                           "magnet:?xt=urn:btih:"
                                           "AERUKZ4JVPG66AJDIVTYTK6N54ASGRL1"),
                   MDHT_ERR_INVAL);
  assert_int_equal(mdht_ctl_parse_infohash(&id, "0x" HEX1), MDHT_ERR_INVAL);
}

/* ------------------------------------------------------------- results */

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
  r.ok = false;
  mdht_ctl_format_result(&req, &r, &b, &code, msg, sizeof msg);
  assert_int_equal(code, 2);
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

/* -------------------------------------------------------------- reader */

typedef struct capture {
  char *out, *prog;
  size_t outlen, proglen;
  FILE *fout, *fprog;
} capture;

static void cap_open(capture *c) {
  memset(c, 0, sizeof *c);
  c->fout = open_memstream(&c->out, &c->outlen);
  c->fprog = open_memstream(&c->prog, &c->proglen);
  assert_non_null(c->fout);
  assert_non_null(c->fprog);
}

static void cap_close(capture *c) {
  fclose(c->fout);
  fclose(c->fprog);
  free(c->out);
  free(c->prog);
}

static void test_reader(void **state) {
  static const char resp[] = "10.0.0.1:1\n"
                             "\x01round 1\n"
                             "10.0.0.2:2\n"
                             "\0exit 1 no peers found\n"
                             "ignored after the status";
  mdht_ctl_reader rd;
  capture c;
  (void)state;

  /* Byte by byte: framing must not depend on how the stream is cut. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  int rc = 0;
  size_t i;
  for (i = 0; i < sizeof resp - 1 && rc == 0; i++)
    rc = mdht_ctl_reader_feed(&rd, resp + i, 1, c.fout, c.fprog);
  assert_int_equal(rc, 1);
  assert_int_equal(i, strlen("10.0.0.1:1\n\x01round 1\n10.0.0.2:2\n") + 1 +
                          strlen("exit 1 no peers found\n"));
  fflush(c.fout);
  fflush(c.fprog);
  assert_string_equal(c.out, "10.0.0.1:1\n10.0.0.2:2\n");
  assert_string_equal(c.prog, "round 1\n");
  assert_int_equal(rd.code, 1);
  assert_string_equal(rd.msg, "no peers found");
  cap_close(&c);

  /* All at once, progress dropped. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  assert_int_equal(
      mdht_ctl_reader_feed(&rd, resp, sizeof resp - 1, c.fout, NULL), 1);
  fflush(c.fout);
  assert_string_equal(c.out, "10.0.0.1:1\n10.0.0.2:2\n");
  cap_close(&c);

  /* A long output line passes whole; status without message. */
  cap_open(&c);
  mdht_ctl_reader_init(&rd);
  char *big = malloc(20002);
  memset(big, 'x', 20000);
  big[20000] = '\n';
  assert_int_equal(mdht_ctl_reader_feed(&rd, big, 20001, c.fout, NULL), 0);
  assert_int_equal(mdht_ctl_reader_feed(&rd, "\0exit 0\n", 8, c.fout, NULL), 1);
  fflush(c.fout);
  assert_int_equal(c.outlen, 20001);
  assert_int_equal(rd.code, 0);
  assert_string_equal(rd.msg, "");
  free(big);
  cap_close(&c);

  /* Garbled status lines. */
  static const char *const bad[] = {"\0exit\n",    "\0exit x\n",   "\0ok 0\n",
                                    "\0exit 1x\n", "\0exit 300\n", "\0\n"};
  static const size_t badlen[] = {6, 8, 6, 9, 10, 2};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    mdht_ctl_reader_init(&rd);
    assert_int_equal(mdht_ctl_reader_feed(&rd, bad[k], badlen[k], NULL, NULL),
                     MDHT_ERR_PROTO);
  }
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

  static const char resp[] = "1.2.3.4:5 \x1b]0;t\x07\n"
                             "\x01r\x1b[1m\n"
                             "\x1b[2J\xc2\x9b\n"
                             "\0exit 1 no\x1b[31m \r\n";
  for (int json = 0; json < 2; json++) {
    mdht_ctl_reader rd;
    capture c;
    cap_open(&c);
    mdht_ctl_reader_init(&rd);
    rd.json = json;
    for (size_t i = 0; i < sizeof resp - 1; i++)
      if (mdht_ctl_reader_feed(&rd, resp + i, 1, c.fout, c.fprog) == 1) break;
    fflush(c.fout);
    fflush(c.fprog);
    assert_string_equal(c.out, json ? "1.2.3.4:5 \\u001b]0;t\\u0007\n"
                                      "\\u001b[2J\\u00c2\\u009b\n"
                                    : "1.2.3.4:5 \\x1b]0;t\\x07\n"
                                      "\\x1b[2J\\xc2\\x9b\n");
    assert_string_equal(c.prog, "r\\x1b[1m\n");
    assert_string_equal(rd.msg, "no\\x1b[31m \\x0d");
    assert_int_equal(rd.code, 1);
    cap_close(&c);
  }
}

/* A listener of another uid is refused before anything is sent. */
static void test_call_foreign_listener(void **state) {
  (void)state;
  if (geteuid() != 0) {
    /* Giving a socket to another uid needs root; CI runs as root. */
    fail_msg("test_call_foreign_listener needs root");
  }
  char dir[] = "/tmp/mdht-ctl-XXXXXX", path[64], msg[256];
  assert_non_null(mkdtemp(dir));
  assert_int_equal(chmod(dir, 01777), 0);
  snprintf(path, sizeof path, "%s/s", dir);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(sa.sun_path, path);
    if (setgid(65534) < 0 || setuid(65534) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4) < 0)
      _exit(1);
    if (write(pipefd[1], "x", 1) != 1) _exit(1);
    int c = accept(fd, NULL, NULL);
    char b[64];
    ssize_t n = c >= 0 ? read(c, b, sizeof b) : -1;
    _exit(n > 0 ? 3 : 0); /* 3: the client sent its request */
  }
  char x;
  assert_int_equal(read(pipefd[0], &x, 1), 1);
  FILE *out = tmpfile();
  int code = mdht_ctl_call(path, "stats\n", 5000, out, NULL, msg, sizeof msg);
  assert_int_equal(code, MDHT_CTL_EXIT_ERROR);
  assert_non_null(strstr(msg, "runs as uid 65534"));
  assert_int_equal(ftell(out), 0);
  fclose(out);
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(pipefd[0]);
  close(pipefd[1]);
  unlink(path);
  rmdir(dir);
}

/* ------------------------------------------------------ a node, alone */

static mdht_node *lone_node(uint64_t *seed) {
  mdht_callbacks cb = {test_random, seed};
  mdht_addr bound = test_addr4(127, 0, 0, 1, 6881);
  mdht_id id = id_of(HEX2);
  mdht_node *node = NULL;
  assert_int_equal(mdht_node_new(&node, NULL, &cb, &id, &bound, 1000), 0);
  return node;
}

static void notified(mdht_ctl_job *job, void *user) {
  (void)job;
  (*(int *)user)++;
}

static void test_job_stats(void **state) {
  uint64_t seed = 7;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_STATS};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  mdht_ctl_job_init(&job, node, &req, &b, 61000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 61000), 0);
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, 0);
  assert_non_null(strstr(text(&b), "id               " HEX2 "\n"));
  assert_non_null(strstr(text(&b), "uptime           60 s\n"));
  assert_non_null(strstr(text(&b), "nodes            0 (0 good, 0 "
                                   "questionable)"));
  assert_non_null(strstr(text(&b), "dropped          parse 0, proto 0"));
  assert_int_equal(b.p[b.len - strlen("?exit 0\n")], '\0');

  mdht_ctl_buf_reset(&b);
  req.json = true;
  mdht_ctl_job_init(&job, node, &req, &b, 61000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 61000), 0);
  assert_non_null(strstr(text(&b),
                         "{\"type\":\"stats\",\"id\":\"" HEX2
                         "\",\"uptime_s\":60,\"nodes\":{\"total\":0"));
  assert_non_null(strstr(text(&b), "\"dropped\":{\"parse\":0,"));
  /* One line, then the status. */
  assert_int_equal(strchr(text(&b), '\n') - text(&b) + 1 + 8, (long)b.len);
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
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
  assert_string_equal(text(&b), "saved the state to /tmp/a\"b\\c?d?/state\n");
  mdht_ctl_buf_free(&b);
}

/* A job cannot save: only the server, through the program, can. */
static void test_job_save(void **state) {
  uint64_t seed = 11;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_SAVE};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), 0);
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, MDHT_CTL_EXIT_ERROR);
  assert_int_equal(b.p[0], '\0');
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

static void test_job_lookup_waits(void **state) {
  uint64_t seed = 9;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_GET_PEERS, .timeout_ms = 5000};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  req.target = id_of(HEX1);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(job.deadline, 6000);
  /* Nobody to ask: the caller waits for a node, or gives up. */
  assert_int_equal(mdht_ctl_job_start(&job, 1000), MDHT_ERR_AGAIN);
  assert_false(job.done);
  assert_int_equal(calls, 0);
  mdht_ctl_job_fail(&job, 2, "timed out after 5 s");
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, 2);
  assert_memory_equal(b.p, "\0exit 2 timed out after 5 s\n", b.len);
  /* Failing twice does nothing. */
  mdht_ctl_job_fail(&job, 2, "again");
  assert_int_equal(calls, 1);

  /* A ping needs no table; cancelling it means no callback. */
  mdht_ctl_buf_reset(&b);
  req.cmd = MDHT_CTL_PING;
  req.addr = test_addr4(127, 0, 0, 2, 6881);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), 0);
  assert_false(job.done);
  assert_true(job.op > 0);
  mdht_ctl_job_fail(&job, 2, "interrupted");
  assert_int_equal(calls, 2);
  /* The query's timeout later finds no operation. */
  mdht_node_tick(node, 100000);
  assert_int_equal(calls, 2);
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_commands),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_format_roundtrip),
      cmocka_unit_test(test_infohash),
      cmocka_unit_test(test_result_get_peers),
      cmocka_unit_test(test_result_nodes),
      cmocka_unit_test(test_result_ping),
      cmocka_unit_test(test_status_and_overflow),
      cmocka_unit_test(test_reader),
      cmocka_unit_test(test_escape),
      cmocka_unit_test(test_call_foreign_listener),
      cmocka_unit_test(test_job_stats),
      cmocka_unit_test(test_format_saved),
      cmocka_unit_test(test_job_save),
      cmocka_unit_test(test_job_lookup_waits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
