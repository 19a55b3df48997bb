/* Config files: good files hand out every setting in order, with flags and
 * repeated keys; each malformed line (overlong, NUL byte, no '=', unknown
 * key, a flag with a value, an empty value, a single-value key twice) stops
 * the parse with its line number and one message; a callback's own error
 * stops it too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <unistd.h>

#include "conffile.h"

static const mdht_conf_key keys[] = {
    {"port", true, false},
    {"bootstrap", true, true},
    {"read-only", false, false},
    {"state", true, false},
};
#define NKEYS (sizeof keys / sizeof keys[0])

/* What the callback saw, one "key=value@line;" per setting. */
typedef struct seen {
  char log[1024];
  int fail_on; /* line on which the callback refuses; 0: never */
} seen;

static int record(void *user, size_t key, const char *value, unsigned line) {
  seen *s = user;
  size_t n = strlen(s->log);
  snprintf(s->log + n, sizeof s->log - n, "%s=%s@%u;", keys[key].name,
           value ? value : "(flag)", line);
  return (int)line == s->fail_on ? -1 : 0;
}

/* Parses a copy of `text` (the parser writes into it). */
static int parse(const char *text, size_t len, seen *s, mdht_conf_err *err) {
  char *copy = malloc(len + 1);
  memcpy(copy, text, len);
  copy[len] = '\0';
  int rc = mdht_conf_parse(copy, len, keys, NKEYS, record, s, err);
  free(copy);
  return rc;
}

static int parse_str(const char *text, seen *s, mdht_conf_err *err) {
  return parse(text, strlen(text), s, err);
}

static void good_file(void **state) {
  seen s = {0};
  mdht_conf_err err;
  (void)state;
  assert_int_equal(parse_str("# a comment\n"
                             "\n"
                             "   \t\n"
                             "port = 6881\n"
                             "  bootstrap=a.example:1  \r\n"
                             "bootstrap =   b.example:2\n"
                             "   # indented comment\n"
                             "read-only\n"
                             "state = /var/lib/mdht # not a comment",
                             &s, &err),
                   0);
  assert_string_equal(s.log, "port=6881@4;bootstrap=a.example:1@5;"
                             "bootstrap=b.example:2@6;read-only=(flag)@8;"
                             "state=/var/lib/mdht # not a comment@9;");
}

static void flags_true_and_false(void **state) {
  seen s = {0};
  mdht_conf_err err;
  (void)state;
  assert_int_equal(parse_str("read-only = true\n", &s, &err), 0);
  assert_string_equal(s.log, "read-only=(flag)@1;");
  s.log[0] = '\0';
  assert_int_equal(parse_str("read-only = false\n", &s, &err), 0);
  assert_string_equal(s.log, "");
  assert_int_equal(parse_str("", &s, &err), 0);
  assert_string_equal(s.log, "");
}

/* Each bad file: its line number and message; nothing after it is read. */
static void expect_error(const char *text, size_t len, unsigned line,
                         const char *msg) {
  seen s = {0};
  mdht_conf_err err;
  assert_int_equal(parse(text, len, &s, &err), -1);
  assert_int_equal(err.line, line);
  assert_string_equal(err.msg, msg);
}

static void malformed_lines(void **state) {
  (void)state;
  expect_error("port = 1\nfrob = 2\nport = 3\n", 26, 2,
               "unknown option 'frob'");
  expect_error("port\n", 5, 1, "option 'port' needs a value ('key = value')");
  expect_error("port =   \n", 10, 1,
               "option 'port' needs a value ('key = value')");
  expect_error("port 6881\n", 10, 1, "unknown option 'port 6881'");
  expect_error("--port = 1\n", 11, 1, "unknown option '--port'");
  expect_error("= 1\n", 4, 1, "unknown option ''");
  expect_error("Port = 1\n", 9, 1, "unknown option 'Port'");
  expect_error("read-only = yes\n", 16, 1,
               "option 'read-only' is a flag: give it alone, or '= true' or "
               "'= false'");
  expect_error("port = 1\n\nport = 2\n", 19, 3,
               "option 'port' given twice (first on line 1)");
  expect_error("read-only\nread-only\n", 20, 2,
               "option 'read-only' given twice (first on line 1)");
  expect_error("port = 1\npo\0rt = 2\n", 19, 2, "NUL byte in the line");
  /* Control bytes in an unknown key are not echoed raw. */
  expect_error("a\033[2Jb = 1\n", 11, 1, "unknown option 'a?[2Jb'");
}

static void overlong_line(void **state) {
  size_t n = MDHT_CONF_MAX_LINE + 1;
  char *text = malloc(n + 16);
  seen s = {0};
  mdht_conf_err err;
  (void)state;
  /* Exactly at the limit: accepted (a value of bootstrap, repeatable). */
  memcpy(text, "bootstrap = ", 12);
  memset(text + 12, 'x', MDHT_CONF_MAX_LINE - 12);
  text[MDHT_CONF_MAX_LINE] = '\n';
  assert_int_equal(parse(text, MDHT_CONF_MAX_LINE + 1, &s, &err), 0);
  /* One byte more, on line 2. */
  memmove(text + 1, text, n);
  text[0] = '\n';
  text[n] = 'x';
  text[n + 1] = '\n';
  expect_error(text, n + 2, 2, "line longer than 1024 bytes");
  free(text);
}

/* The callback's own error (a bad value) stops the parse, message empty:
 * it was reported already. */
static void callback_error_stops(void **state) {
  seen s = {.fail_on = 2};
  mdht_conf_err err;
  (void)state;
  assert_int_equal(parse_str("port = 1\nport2\nstate = x\n", &s, &err), -1);
  assert_int_equal(err.line, 2);
  s.log[0] = '\0';
  assert_int_equal(parse_str("port = 1\nstate = bad\nread-only\n", &s, &err),
                   -1);
  assert_int_equal(err.line, 2);
  assert_string_equal(err.msg, "");
  assert_string_equal(s.log, "port=1@1;state=bad@2;");
}

static void read_files(void **state) {
  char dir[] = "/tmp/mdht-conf-XXXXXX", path[64], *text;
  size_t len;
  mdht_conf_err err;
  FILE *f;
  (void)state;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/mdht.conf", dir);
  assert_int_equal(mdht_conf_read(path, &text, &len, &err), -1);
  assert_string_equal(err.msg, "cannot read: No such file or directory");
  f = fopen(path, "w");
  fputs("port = 7\n", f);
  fclose(f);
  assert_int_equal(mdht_conf_read(path, &text, &len, &err), 0);
  assert_int_equal(len, 9);
  assert_string_equal(text, "port = 7\n");
  free(text);
  /* Too big: refused, not read into memory without bound. */
  f = fopen(path, "w");
  for (size_t i = 0; i <= MDHT_CONF_MAX_BYTES / 8; i++)
    fputs("# ......\n", f);
  fclose(f);
  assert_int_equal(mdht_conf_read(path, &text, &len, &err), -1);
  assert_string_equal(err.msg, "larger than 1048576 bytes");
  assert_null(text);
  /* A directory. */
  assert_int_equal(mdht_conf_read(dir, &text, &len, &err), -1);
  assert_string_equal(err.msg, "cannot read: Is a directory");
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(good_file),
      cmocka_unit_test(flags_true_and_false),
      cmocka_unit_test(malformed_lines),
      cmocka_unit_test(overlong_line),
      cmocka_unit_test(callback_error_stops),
      cmocka_unit_test(read_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
