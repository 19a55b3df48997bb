#include "conffile.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

static bool key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Trims blanks at both ends of [*s, *e). */
static void trim(char **s, char **e) {
  while (*s < *e && blank(**s))
    (*s)++;
  while (*e > *s && blank((*e)[-1]))
    (*e)--;
}

/* The key as quoted in a message: printable, and short. */
static void quote(char *out, size_t cap, const char *s, size_t n) {
  size_t j = 0;
  for (size_t i = 0; i < n && j + 4 < cap; i++)
    out[j++] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
  if (n > 0 && j + 4 >= cap && j >= 3) memcpy(out + j - 3, "...", 3);
  out[j] = '\0';
}

__attribute__((format(printf, 3, 4))) static int
fail(mdht_conf_err *err, unsigned line, const char *fmt, ...) {
  va_list ap;
  err->line = line;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static const mdht_conf_key *find(const mdht_conf_key *keys, size_t nkeys,
                                 const char *s, size_t n, size_t *idx) {
  for (size_t i = 0; i < nkeys; i++)
    if (strlen(keys[i].name) == n && memcmp(keys[i].name, s, n) == 0) {
      *idx = i;
      return &keys[i];
    }
  return NULL;
}

/* One line, [s, e), its newline already gone. `seen[i]` is the line that
 * set keys[i] (single-value keys). Returns 0 or -1. */
static int parse_line(char *s, char *e, unsigned line,
                      const mdht_conf_key *keys, size_t nkeys, unsigned *seen,
                      mdht_conf_fn fn, void *user, mdht_conf_err *err) {
  char q[64], *eq, *ke, *v = NULL;
  const mdht_conf_key *k;
  size_t idx;

  if (memchr(s, '\0', (size_t)(e - s)))
    return fail(err, line, "NUL byte in the line");
  trim(&s, &e);
  if (s == e || *s == '#') return 0;
  eq = memchr(s, '=', (size_t)(e - s));
  ke = eq ? eq : e;
  while (ke > s && blank(ke[-1]))
    ke--;
  quote(q, sizeof q, s, (size_t)(ke - s));
  for (char *p = s; p < ke; p++)
    if (!key_char(*p)) return fail(err, line, "unknown option '%s'", q);
  if (!(k = find(keys, nkeys, s, (size_t)(ke - s), &idx)))
    return fail(err, line, "unknown option '%s'", q);
  if (eq) {
    char *ve = e;
    v = eq + 1;
    trim(&v, &ve);
    *ve = '\0';
  }
  if (k->value && (!v || !*v))
    return fail(err, line, "option '%s' needs a value ('key = value')", q);
  if (!k->value && v) {
    if (strcmp(v, "false") == 0) return 0;
    if (strcmp(v, "true") != 0)
      return fail(err, line,
                  "option '%s' is a flag: give it alone, or "
                  "'= true' or '= false'",
                  q);
    v = NULL;
  }
  if (!k->repeat) {
    if (seen[idx])
      return fail(err, line, "option '%s' given twice (first on line %u)", q,
                  seen[idx]);
    seen[idx] = line;
  }
  err->line = line;
  err->msg[0] = '\0';
  return fn(user, idx, v, line);
}

int mdht_conf_parse(char *text, size_t len, const mdht_conf_key *keys,
                    size_t nkeys, mdht_conf_fn fn, void *user,
                    mdht_conf_err *err) {
  unsigned *seen = calloc(nkeys ? nkeys : 1, sizeof *seen);
  char *p = text, *end = text + len;
  unsigned line = 0;
  int rc = 0;

  memset(err, 0, sizeof *err);
  if (!seen) return fail(err, 0, "out of memory");
  while (rc == 0 && p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl : end;
    line++;
    if (e - p > MDHT_CONF_MAX_LINE) {
      rc = fail(err, line, "line longer than %d bytes", MDHT_CONF_MAX_LINE);
      break;
    }
    /* The value is cut at its end; the newline is where that goes. */
    rc = parse_line(p, e, line, keys, nkeys, seen, fn, user, err);
    p = nl ? nl + 1 : end;
  }
  free(seen);
  return rc;
}

int mdht_conf_read(const char *path, char **text, size_t *len,
                   mdht_conf_err *err) {
  FILE *f = fopen(path, "rb");
  char *buf;
  size_t n;

  memset(err, 0, sizeof *err);
  *text = NULL;
  *len = 0;
  if (!f) return fail(err, 0, "cannot read: %s", strerror(errno));
  /* One byte more than allowed (and one for a NUL at the very end): a
   * file that fills it is too big. */
  if (!(buf = malloc(MDHT_CONF_MAX_BYTES + 2))) {
    fclose(f);
    return fail(err, 0, "out of memory");
  }
  n = fread(buf, 1, MDHT_CONF_MAX_BYTES + 1, f);
  if (ferror(f)) {
    int e = errno;
    fclose(f);
    free(buf);
    return fail(err, 0, "cannot read: %s", strerror(e));
  }
  fclose(f);
  if (n > MDHT_CONF_MAX_BYTES) {
    free(buf);
    return fail(err, 0, "larger than %d bytes", MDHT_CONF_MAX_BYTES);
  }
  buf[n] = '\0';
  *text = buf;
  *len = n;
  return 0;
}
