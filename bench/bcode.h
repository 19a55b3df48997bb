/*
 * A small strict bencode reader for the benchmark programs.
 *
 * Written here rather than borrowed from src/core/bencode.c on purpose:
 * the load generator validates mdht's replies, and a validator that shares
 * the decoder of the program under test would accept whatever that decoder
 * gets wrong. Header-only (static functions) so that each bench program is
 * one translation unit and nothing links against the node for this.
 *
 * Everything is bounds-checked against `end`; nothing is allocated.
 */
#ifndef MDHT_BENCH_BCODE_H
#define MDHT_BENCH_BCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Nesting deeper than this is refused: no KRPC message comes close, and the
 * recursion must stay bounded on hostile input. */
#define BC_MAX_DEPTH 16

/* A value inside the datagram: [p, end). For strings, s/len is the
 * content. */
typedef struct bc_span {
  const uint8_t *p, *end;
  const uint8_t *s;
  size_t len;
  char type; /* 's', 'i', 'l', 'd', or 0 when absent */
} bc_span;

/* Reads a string header "<len>:" at p; returns the content start or NULL.
 * Leading zeros are refused as bencode requires ("0:" is fine). */
static inline const uint8_t *bc_strhead(const uint8_t *p, const uint8_t *end,
                                        size_t *len) {
  size_t n = 0;
  const uint8_t *q = p;
  if (q >= end || *q < '0' || *q > '9') return NULL;
  if (*q == '0' && q + 1 < end && q[1] != ':') return NULL;
  while (q < end && *q >= '0' && *q <= '9') {
    n = n * 10 + (size_t)(*q - '0');
    if (n > 1u << 20) return NULL;
    q++;
  }
  if (q >= end || *q != ':') return NULL;
  q++;
  if ((size_t)(end - q) < n) return NULL;
  *len = n;
  return q;
}

/* Returns the end of the value starting at p and describes it in *out
 * (may be NULL), or NULL when it is malformed or truncated. */
static const uint8_t *bc_value(const uint8_t *p, const uint8_t *end, int depth,
                               bc_span *out) {
  bc_span tmp;
  if (!out) out = &tmp;
  memset(out, 0, sizeof *out);
  if (p >= end || depth > BC_MAX_DEPTH) return NULL;
  out->p = p;
  if (*p == 'i') {
    const uint8_t *q = p + 1;
    if (q < end && *q == '-') q++;
    const uint8_t *digits = q;
    while (q < end && *q >= '0' && *q <= '9')
      q++;
    if (q == digits || q >= end || *q != 'e') return NULL;
    if (*digits == '0' && q - digits > 1) return NULL;
    out->type = 'i';
    out->end = q + 1;
    return out->end;
  }
  if (*p == 'l' || *p == 'd') {
    bool dict = *p == 'd';
    const uint8_t *q = p + 1;
    while (q < end && *q != 'e') {
      if (dict) {
        size_t kl;
        const uint8_t *k = bc_strhead(q, end, &kl);
        if (!k) return NULL; /* dict keys are strings */
        q = k + kl;
      }
      q = bc_value(q, end, depth + 1, NULL);
      if (!q) return NULL;
    }
    if (q >= end) return NULL;
    out->type = dict ? 'd' : 'l';
    out->end = q + 1;
    return out->end;
  }
  const uint8_t *s = bc_strhead(p, end, &out->len);
  if (!s) return NULL;
  out->type = 's';
  out->s = s;
  out->end = s + out->len;
  return out->end;
}

/* Walks the dict `d` and fills spans[j] for each keys[j] found (type 0
 * when absent). Returns false if `d` is not a well-formed dict. */
static inline bool bc_dict(const bc_span *d, const char *const *keys,
                           size_t nkeys, bc_span *spans) {
  for (size_t j = 0; j < nkeys; j++)
    memset(&spans[j], 0, sizeof spans[j]);
  if (d->type != 'd') return false;
  const uint8_t *q = d->p + 1;
  while (q < d->end && *q != 'e') {
    size_t kl;
    const uint8_t *k = bc_strhead(q, d->end, &kl);
    if (!k) return false;
    bc_span v;
    q = bc_value(k + kl, d->end, 1, &v);
    if (!q) return false;
    for (size_t j = 0; j < nkeys; j++) {
      if (strlen(keys[j]) == kl && memcmp(keys[j], k, kl) == 0) {
        spans[j] = v;
        break;
      }
    }
  }
  return q < d->end;
}

#endif
