/* Control requests (ctl_request.c): parsing any line, and formatting
 * back to the same request. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_request.h"
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

/* The inspection commands (issue 11): table and infohashes take no
 * argument, peers one info-hash (hex or magnet); each reads back. */
static void test_parse_inspection(void **state) {
  mdht_ctl_req r, back;
  mdht_id id1 = id_of(HEX1);
  char line[MDHT_CTL_MAX_LINE + 1];
  (void)state;

  assert_int_equal(parse(&r, "table\n"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_TABLE);
  assert_int_equal(parse(&r, "infohashes --json"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_INFOHASHES);
  assert_true(r.json);
  assert_int_equal(parse(&r, "peers " HEX1 " --json"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_PEERS);
  assert_memory_equal(&r.target, &id1, sizeof id1);
  assert_int_equal(parse(&r, "peers magnet:?xt=urn:btih:" HEX1), 0);
  assert_memory_equal(&r.target, &id1, sizeof id1);
  assert_string_equal(mdht_ctl_cmd_name(MDHT_CTL_INFOHASHES), "infohashes");
  assert_int_equal(mdht_ctl_cmd_parse("peers"), MDHT_CTL_PEERS);

  /* No argument where none is taken; one where one is needed; announce's
   * options are not theirs. */
  assert_int_equal(parse(&r, "table " HEX1), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "infohashes extra"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "peers"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "peers --json"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "peers 0123"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "peers " HEX1 " --seed"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "table --port 1"), MDHT_ERR_INVAL);

  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_PEERS;
  r.target = id_of(HEX2);
  r.json = true;
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 0);
  assert_string_equal(line, "peers " HEX2 " --json\n");
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);
  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_TABLE;
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 0);
  assert_string_equal(line, "table\n");
}

/* BEP 44: get by target or by key and salt, put with its value, key and
 * options in hex; what the line means, and back to the same line. */
#define PK "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548"
#define SEED "0101010101010101010101010101010101010101010101010101010101010101"
static void test_items(void **state) {
  mdht_ctl_req r, back;
  char line[MDHT_CTL_MAX_LINE + 1];
  (void)state;

  assert_int_equal(parse(&r, "get e5f96f6f38320f0f33959cb4d3d656452117aadb"),
                   0);
  assert_int_equal(r.cmd, MDHT_CTL_GET_ITEM);
  assert_false(r.item_mutable);
  /* the BEP's key and salt "foobar": the target is the BEP's */
  assert_int_equal(parse(&r, "get " PK " --salt 666f6f626172 --json"), 0);
  assert_true(r.item_mutable);
  assert_int_equal(r.salt_len, 6);
  char hex[41];
  mdht_id_format(&r.target, hex);
  assert_string_equal(hex, "411eba73b6f087ca51a3795d9c8c938d365e32c1");
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 0);
  assert_string_equal(line, "get " PK " --salt 666f6f626172 --json\n");
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);

  /* immutable put of "12:Hello World!" */
  assert_int_equal(
      parse(&r, "put 31323a48656c6c6f20576f726c6421 --timeout 9000"), 0);
  assert_int_equal(r.cmd, MDHT_CTL_PUT_ITEM);
  assert_int_equal(r.value_len, 15);
  mdht_id_format(&r.target, hex);
  assert_string_equal(hex, "e5f96f6f38320f0f33959cb4d3d656452117aadb");
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 0);
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);

  /* mutable put with key, salt and cas */
  assert_int_equal(parse(&r, "put 693165 --key " SEED " --salt 73 --cas 4"), 0);
  assert_true(r.item_mutable && r.has_cas && !r.has_seq);
  assert_int_equal(r.cas, 4);
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 0);
  assert_string_equal(line, "put 693165 --key " SEED " --salt 73 --cas 4\n");
  assert_int_equal(parse(&back, line), 0);
  assert_memory_equal(&r, &back, sizeof r);
  /* a 1,000-byte value fits in a line */
  memset(&r, 0, sizeof r);
  r.cmd = MDHT_CTL_PUT_ITEM;
  memcpy(r.value, "996:", 4);
  memset(r.value + 4, 'a', 996);
  r.value_len = 1000;
  assert_true(mdht_ctl_format(&r, line, sizeof line) > 2000);
  assert_int_equal(parse(&back, line), 0);
  assert_int_equal(back.value_len, 1000);

  /* errors */
  assert_int_equal(parse(&r, "get 1234"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get " PK "zz"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "put 3132"), MDHT_ERR_INVAL); /* "12": no */
  assert_int_equal(parse(&r, "put 693165693165"), MDHT_ERR_INVAL); /* two */
  assert_int_equal(parse(&r, "put 6931"), MDHT_ERR_INVAL);         /* "i1" */
  assert_int_equal(parse(&r, "put 693165 --seq 1"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "put 693165 --key 00"), MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "put 693165 --key " SEED " --seq 1 --cas 1"),
                   MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "put 693165 --key " SEED " --seq -1"),
                   MDHT_ERR_INVAL);
  assert_int_equal(parse(&r, "get " HEX1 " --salt 73"), MDHT_ERR_INVAL);
  char salt[300] = "get " PK " --salt ";
  size_t n = strlen(salt);
  memset(salt + n, 'a', 130); /* 65 bytes */
  salt[n + 130] = 0;
  assert_int_equal(parse(&r, salt), MDHT_ERR_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_items),
      cmocka_unit_test(test_parse_commands),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_format_roundtrip),
      cmocka_unit_test(test_parse_inspection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
