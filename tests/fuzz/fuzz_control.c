/*
 * libFuzzer target: the control protocol (src/io/ctl_request.c,
 * ctl_format.c, ctl_client.c, magnet.c), both ways.
 *
 * Requests: mdht_ctl_parse takes any bytes; what it accepts, formatted
 * with mdht_ctl_format, parses back to the same request and formats to
 * the same bytes (control.h promises the round trip); what it refuses is
 * said in one line. Info-hashes and magnet links: an accepted one reads
 * back from its hex form.
 *
 * Responses: the reader gives the same result however the stream is cut,
 * and prints nothing but printable ASCII and LF, whatever the server
 * sends. A response built with the mdht_ctl_buf_* calls from the input's
 * lines reads back to the same lines, code and message (escaped).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_client.h"
#include "ctl_format.h"
#include "ctl_request.h"
#include "id.h"
#include "magnet.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x)) abort();                                                         \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_req(const mdht_ctl_req *a, const mdht_ctl_req *b) {
  return a->cmd == b->cmd && mdht_id_eq(&a->target, &b->target) &&
         (a->cmd != MDHT_CTL_PING || mdht_addr_eq(&a->addr, &b->addr)) &&
         a->port == b->port && a->implied_port == b->implied_port &&
         a->seed == b->seed && a->json == b->json &&
         a->progress == b->progress && a->timeout_ms == b->timeout_ms &&
         a->item_mutable == b->item_mutable &&
         !memcmp(a->pk, b->pk, sizeof a->pk) &&
         !memcmp(a->key, b->key, sizeof a->key) && a->salt_len == b->salt_len &&
         !memcmp(a->salt, b->salt, a->salt_len) &&
         a->value_len == b->value_len &&
         !memcmp(a->value, b->value, a->value_len) &&
         a->has_seq == b->has_seq && a->seq == b->seq &&
         a->has_cas == b->has_cas && a->cas == b->cas;
}

static void requests(const char *s, size_t n) {
  mdht_ctl_req req, again;
  char err[160], line[MDHT_CTL_MAX_LINE + 2], line2[MDHT_CTL_MAX_LINE + 2];
  err[0] = '\0';
  if (mdht_ctl_parse(&req, s, n, err, sizeof err) < 0) {
    CHECK(err[0] && strlen(err) < sizeof err);
    return;
  }
  int len = mdht_ctl_format(&req, line, sizeof line);
  CHECK(len > 0 && line[len - 1] == '\n');
  CHECK(mdht_ctl_parse(&again, line, (size_t)len, err, sizeof err) == 0);
  CHECK(same_req(&req, &again));
  CHECK(mdht_ctl_format(&again, line2, sizeof line2) == len);
  CHECK(memcmp(line, line2, (size_t)len) == 0);
}

static void infohash(const char *s) {
  mdht_id id, back;
  char hex[41];
  if (mdht_ctl_parse_infohash(&id, s) < 0) return;
  mdht_id_format(&id, hex);
  CHECK(mdht_ctl_parse_infohash(&back, hex) == 0 && mdht_id_eq(&id, &back));
}

typedef struct result {
  char *out, *prog;
  size_t outlen, proglen;
  int rc, code;
  char msg[512];
} result;

/* Feeds `n` bytes in chunks of `chunk`, until the status line. */
static void read_all(result *r, const char *s, size_t n, size_t chunk,
                     bool json) {
  mdht_ctl_reader rd;
  FILE *out = open_memstream(&r->out, &r->outlen);
  FILE *prog = open_memstream(&r->prog, &r->proglen);
  CHECK(out && prog);
  mdht_ctl_reader_init(&rd);
  rd.json = json;
  r->rc = 0;
  for (size_t off = 0; off < n && r->rc == 0; off += chunk) {
    size_t k = n - off < chunk ? n - off : chunk;
    r->rc = mdht_ctl_reader_feed(&rd, s + off, k, out, prog);
  }
  fclose(out);
  fclose(prog);
  r->code = r->rc == 1 ? rd.code : -1;
  memcpy(r->msg, r->rc == 1 ? rd.msg : "", r->rc == 1 ? sizeof r->msg : 1);
}

static bool printable_text(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != '\n' && (p[i] < 0x20 || p[i] > 0x7e)) return false;
  return true;
}

static void responses(const char *s, size_t n, size_t chunk, bool json) {
  result a, b;
  read_all(&a, s, n, n ? n : 1, json);
  read_all(&b, s, n, chunk, json);
  CHECK(a.rc == b.rc && a.code == b.code && strcmp(a.msg, b.msg) == 0);
  CHECK(a.outlen == b.outlen && memcmp(a.out, b.out, a.outlen) == 0);
  CHECK(a.proglen == b.proglen && memcmp(a.prog, b.prog, a.proglen) == 0);
  CHECK(printable_text(a.out, a.outlen) && printable_text(a.prog, a.proglen));
  CHECK(printable_text(a.msg, strlen(a.msg)));
  free(a.out), free(a.prog), free(b.out), free(b.prog);
}

/* The input's lines (up to a NUL) as output lines and, for those that
 * start with '#', progress lines; the status from the last one. */
static void built(const char *s, size_t n, bool json) {
  mdht_ctl_buf b = {0};
  char want[8192], esc[2048], line[256];
  size_t wlen = 0;
  bool fits = true; /* `want` holds all the expected output */
  const char *end = memchr(s, '\0', n);
  if (end) n = (size_t)(end - s);
  int code = n ? (unsigned char)s[0] % 3 : 0;
  const char *msg = "";
  for (size_t off = 0; off < n;) {
    const char *lf = memchr(s + off, '\n', n - off);
    size_t k = lf ? (size_t)(lf - (s + off)) : n - off;
    if (k >= sizeof line) k = sizeof line - 1;
    memcpy(line, s + off, k);
    line[k] = '\0';
    off += k + (lf ? 1 : 0);
    if (!lf) {
      msg = line; /* the last line: the status message */
      break;
    }
    if (line[0] == '\x01') continue; /* would be read as progress */
    mdht_ctl_buf_line(&b, "%s", line);
    size_t e = mdht_ctl_escape(esc, sizeof esc, line, k, json);
    if (wlen + e + 1 < sizeof want) {
      memcpy(want + wlen, esc, e);
      want[wlen + e] = '\n';
      wlen += e + 1;
    } else {
      fits = false;
    }
  }
  mdht_ctl_buf_status(&b, code, msg);
  result r;
  read_all(&r, b.p, b.len, 7, json);
  CHECK(r.rc == 1 && r.code == code && !b.overflow);
  if (fits) CHECK(r.outlen == wlen && memcmp(r.out, want, wlen) == 0);
  char clean[512];
  size_t i;
  for (i = 0; msg[i] && i + 1 < sizeof clean; i++)
    clean[i] = msg[i] == '\n' || msg[i] == '\r' ? ' ' : msg[i];
  clean[i] = '\0';
  mdht_ctl_escape(esc, sizeof r.msg, clean, i, false);
  CHECK(strcmp(r.msg, esc) == 0);
  free(r.out), free(r.prog);
  mdht_ctl_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  if (size > 8192) return 0;
  requests(s, size);
  char *z = malloc(size + 1);
  CHECK(z);
  memcpy(z, s, size);
  z[size] = '\0';
  infohash(z);
  free(z);
  size_t chunk = size ? 1 + data[size - 1] % 16 : 1;
  responses(s, size, chunk, size && (data[0] & 1));
  built(s, size, size && (data[0] & 2));
  return 0;
}
