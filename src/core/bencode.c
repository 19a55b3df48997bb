/*
 * Bencode tokenizer and encoder. See bencode.h.
 *
 * The decoder is iterative: containers are tracked on a fixed stack of
 * MDHT_BE_MAX_DEPTH frames, so hostile nesting costs a bounded amount of
 * C stack and fails with MDHT_ERR_LIMIT instead of overflowing it.
 */
#include "bencode.h"

#include <limits.h>
#include <string.h>

typedef struct frame {
  uint32_t tok;     /* the container's token */
  uint32_t count;   /* children seen so far (keys and values for a dict) */
  uint32_t prevkey; /* dict: token of the previous key, UINT32_MAX if none */
} frame;

static bool is_digit(uint8_t c) {
  return c >= '0' && c <= '9';
}

/* memcmp order, a proper prefix first: the order BEP 3 sorts keys in. */
static int keycmp(const uint8_t *a, size_t alen, const uint8_t *b,
                  size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return (alen > blen) - (alen < blen);
}

/* Parses "i...e" at buf[*pos] (the 'i'). Only the canonical form is
 * accepted, so that every accepted message re-encodes to the same bytes. */
static int parse_int(const uint8_t *buf, size_t len, size_t *pos,
                     int64_t *out) {
  size_t p = *pos + 1;
  bool neg = false;
  if (p < len && buf[p] == '-') {
    neg = true;
    p++;
  }
  if (p >= len || !is_digit(buf[p])) return MDHT_ERR_PARSE;
  uint64_t mag = 0;
  if (buf[p] == '0') {
    if (neg) /* "-0" and "-01" */
      return MDHT_ERR_PARSE;
    p++;
  } else {
    /* The magnitude of INT64_MIN is one more than INT64_MAX. */
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (p < len && is_digit(buf[p])) {
      uint64_t d = (uint64_t)(buf[p] - '0');
      if (mag > (limit - d) / 10) return MDHT_ERR_PARSE;
      mag = mag * 10 + d;
      p++;
    }
  }
  if (p >= len || buf[p] != 'e') return MDHT_ERR_PARSE;
  if (!neg)
    *out = (int64_t)mag;
  else if (mag == (uint64_t)INT64_MAX + 1)
    *out = INT64_MIN;
  else
    *out = -(int64_t)mag;
  *pos = p + 1;
  return 0;
}

/* Parses "<len>:<bytes>" at buf[*pos]; on success *pos is past the bytes
 * and *start / *slen locate them. */
static int parse_str(const uint8_t *buf, size_t len, size_t *pos, size_t *start,
                     size_t *slen) {
  size_t p = *pos;
  size_t n = 0;
  if (buf[p] == '0') {
    p++; /* "0:" only: "01:a" is not canonical */
  } else {
    while (p < len && is_digit(buf[p])) {
      size_t d = (size_t)(buf[p] - '0');
      /* n * 10 + d <= len, checked without overflowing: a length longer
       * than the whole input can never be satisfied anyway. */
      if (n > (len - d) / 10) return MDHT_ERR_PARSE;
      n = n * 10 + d;
      p++;
    }
  }
  if (p >= len || buf[p] != ':') return MDHT_ERR_PARSE;
  p++;
  if (n > len - p) return MDHT_ERR_PARSE;
  *start = p;
  *slen = n;
  *pos = p + n;
  return 0;
}

/* The helpers below are one step each of mdht_be_decode's loop. They are
 * inline because the loop is on the datagram path: splitting it must not
 * cost a call per token. */

/* Tokenizes the integer at buf[*pos] (its 'i') into t. */
static inline int take_int(const uint8_t *buf, size_t len, size_t *pos,
                           mdht_be_tok *t, uint32_t n) {
  t->type = MDHT_BE_INT;
  t->start = (uint32_t)*pos;
  t->len = 0;
  t->ival = 0;
  int rc = parse_int(buf, len, pos, &t->ival);
  if (rc) return rc;
  t->next = n + 1;
  return 0;
}

/* Tokenizes the string at buf[*pos] into toks[n]. When it is a key of the
 * dict `keyof`, it must sort strictly after that dict's previous key: an
 * unsorted or repeated key would let two readers see different values. */
static inline int take_str(const uint8_t *buf, size_t len, size_t *pos,
                           mdht_be_tok *toks, uint32_t n, frame *keyof) {
  size_t start, slen;
  int rc = parse_str(buf, len, pos, &start, &slen);
  if (rc) return rc;
  if (keyof) {
    if (keyof->prevkey != UINT32_MAX) {
      const mdht_be_tok *pk = &toks[keyof->prevkey];
      if (keycmp(buf + pk->start, pk->len, buf + start, slen) >= 0)
        return MDHT_ERR_PARSE;
    }
    keyof->prevkey = n;
  }
  mdht_be_tok *t = &toks[n];
  t->type = MDHT_BE_STR;
  t->start = (uint32_t)start;
  t->len = (uint32_t)slen;
  t->next = n + 1;
  t->ival = 0;
  return 0;
}

/* Opens the list or dict (c is its 'l' or 'd') at pos as token n on frame
 * f; its len and next are known only when its 'e' closes it. */
static inline void open_frame(mdht_be_tok *t, uint8_t c, size_t pos, frame *f,
                              uint32_t n) {
  t->type = c == 'l' ? MDHT_BE_LIST : MDHT_BE_DICT;
  t->start = (uint32_t)pos;
  t->len = 0;
  t->next = 0;
  t->ival = 0;
  f->tok = n;
  f->count = 0;
  f->prevkey = UINT32_MAX;
}

/* Closes the container of frame f at its 'e', n tokens in: its len is its
 * child count (pairs, for a dict) and next the token after its last
 * descendant. */
static inline int close_frame(const frame *f, mdht_be_tok *toks, uint32_t n) {
  mdht_be_tok *t = &toks[f->tok];
  if (t->type == MDHT_BE_DICT) {
    if (f->count & 1) /* a key without its value */
      return MDHT_ERR_PARSE;
    t->len = f->count / 2;
  } else {
    t->len = f->count;
  }
  t->next = n;
  return 0;
}

int mdht_be_decode(const uint8_t *buf, size_t len, mdht_be_tok *toks,
                   size_t ntoks, size_t *consumed) {
  if ((!buf && len) || !toks) return MDHT_ERR_INVAL;
  /* Token offsets are 32-bit; a value reaching beyond 4 GiB is reported as
   * truncated rather than silently wrapped. The return value is an int. */
  if (len > UINT32_MAX) len = UINT32_MAX;
  if (ntoks > INT_MAX) ntoks = INT_MAX;

  frame st[MDHT_BE_MAX_DEPTH];
  int depth = 0;
  size_t pos = 0;
  uint32_t n = 0;

  for (;;) {
    if (pos >= len) return MDHT_ERR_PARSE;
    uint8_t c = buf[pos];

    if (c == 'e' && depth > 0) {
      int rc = close_frame(&st[depth - 1], toks, n);
      if (rc) return rc;
      pos++;
      if (--depth == 0) break;
      continue;
    }

    frame *parent = depth > 0 ? &st[depth - 1] : NULL;
    bool iskey = parent && toks[parent->tok].type == MDHT_BE_DICT &&
                 !(parent->count & 1);
    if (iskey && !is_digit(c)) return MDHT_ERR_PARSE;
    if (n >= ntoks) return MDHT_ERR_LIMIT;

    int rc;
    if (c == 'i') {
      rc = take_int(buf, len, &pos, &toks[n], n);
    } else if (is_digit(c)) {
      rc = take_str(buf, len, &pos, toks, n, iskey ? parent : NULL);
    } else if (c == 'l' || c == 'd') {
      if (depth >= MDHT_BE_MAX_DEPTH) return MDHT_ERR_LIMIT;
      open_frame(&toks[n], c, pos, &st[depth], n);
      if (parent) parent->count++;
      depth++;
      pos++;
      n++;
      continue;
    } else {
      return MDHT_ERR_PARSE;
    }
    if (rc) return rc;

    if (parent) parent->count++;
    n++;
    if (depth == 0) break;
  }

  if (consumed) *consumed = pos;
  return (int)n;
}

int mdht_be_dict_get(const uint8_t *buf, const mdht_be_tok *toks, int dict,
                     const char *key, size_t keylen) {
  if (dict < 0 || toks[dict].type != MDHT_BE_DICT) return -1;
  uint32_t end = toks[dict].next;
  for (uint32_t i = (uint32_t)dict + 1; i < end; i = toks[i + 1].next) {
    const mdht_be_tok *k = &toks[i];
    int c = keycmp(buf + k->start, k->len, (const uint8_t *)key, keylen);
    if (c == 0) return (int)i + 1;
    if (c > 0) break;
  }
  return -1;
}

int mdht_be_dict_get_t(const uint8_t *buf, const mdht_be_tok *toks, int dict,
                       const char *key, mdht_be_type type) {
  int v = mdht_be_dict_get(buf, toks, dict, key, strlen(key));
  if (v < 0 || toks[v].type != type) return -1;
  return v;
}

static size_t ndigits(uint32_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

size_t mdht_be_span(const uint8_t *buf, const mdht_be_tok *toks, int i,
                    size_t *off) {
  const mdht_be_tok *t = &toks[i];
  if (t->type == MDHT_BE_STR) {
    /* Lengths are canonical (no leading zeros): the header is exactly
     * the digits and the colon. */
    size_t hdr = ndigits(t->len) + 1;
    *off = t->start - hdr;
    return hdr + t->len;
  }
  *off = t->start;
  if (t->type == MDHT_BE_INT) {
    /* Decoded, so the 'e' is there, within 21 bytes of the 'i'. */
    size_t e = t->start + 1;
    while (buf[e] != 'e')
      e++;
    return e + 1 - t->start;
  }
  if (t->next == (uint32_t)i + 1) return 2; /* "le" or "de" */
  uint32_t last = (uint32_t)i + 1;          /* the last child ends it */
  while (toks[last].next < t->next)
    last = toks[last].next;
  size_t coff, clen = mdht_be_span(buf, toks, (int)last, &coff);
  return coff + clen + 1 - t->start;
}

/* ---------------------------------------------------------------- encoder */

void mdht_be_w_init(mdht_be_w *w, uint8_t *buf, size_t cap) {
  w->buf = buf;
  w->cap = buf ? cap : 0;
  w->len = 0;
  w->err = 0;
  w->depth = 0;
}

/* Reserves `n` bytes, or sets the sticky error. */
static uint8_t *reserve(mdht_be_w *w, size_t n) {
  if (w->err) return NULL;
  if (n > w->cap - w->len) {
    w->err = MDHT_ERR_NOBUF;
    return NULL;
  }
  uint8_t *p = w->buf + w->len;
  w->len += n;
  return p;
}

/* Decimal digits of `v` right-aligned in tmp[20]; returns the first. */
static size_t u64_digits(uint64_t v, char tmp[20]) {
  size_t i = 20;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return i;
}

void mdht_be_w_int(mdht_be_w *w, int64_t v) {
  char tmp[20];
  uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  size_t i = u64_digits(mag, tmp);
  size_t nd = 20 - i;
  uint8_t *p = reserve(w, nd + 2 + (v < 0));
  if (!p) return;
  *p++ = 'i';
  if (v < 0) *p++ = '-';
  memcpy(p, tmp + i, nd);
  p[nd] = 'e';
}

void mdht_be_w_str(mdht_be_w *w, const void *s, size_t len) {
  char tmp[20];
  size_t i = u64_digits(len, tmp);
  size_t nd = 20 - i;
  if (len > SIZE_MAX - nd - 1) {
    if (!w->err) w->err = MDHT_ERR_NOBUF;
    return;
  }
  uint8_t *p = reserve(w, nd + 1 + len);
  if (!p) return;
  memcpy(p, tmp + i, nd);
  p[nd] = ':';
  if (len) memcpy(p + nd + 1, s, len);
}

void mdht_be_w_cstr(mdht_be_w *w, const char *s) {
  mdht_be_w_str(w, s, strlen(s));
}

static void open_container(mdht_be_w *w, uint8_t c) {
  if (w->err) return;
  /* Refuse what our own decoder would refuse. */
  if (w->depth >= MDHT_BE_MAX_DEPTH) {
    w->err = MDHT_ERR_LIMIT;
    return;
  }
  uint8_t *p = reserve(w, 1);
  if (!p) return;
  *p = c;
  w->depth++;
}

void mdht_be_w_list(mdht_be_w *w) {
  open_container(w, 'l');
}

void mdht_be_w_dict(mdht_be_w *w) {
  open_container(w, 'd');
}

void mdht_be_w_end(mdht_be_w *w) {
  if (w->err) return;
  if (w->depth == 0) {
    w->err = MDHT_ERR_INVAL;
    return;
  }
  uint8_t *p = reserve(w, 1);
  if (!p) return;
  *p = 'e';
  w->depth--;
}

void mdht_be_w_raw(mdht_be_w *w, const void *s, size_t len) {
  uint8_t *p = reserve(w, len);
  if (p && len) memcpy(p, s, len);
}

int mdht_be_w_finish(const mdht_be_w *w) {
  if (w->err) return w->err;
  if (w->depth != 0) return MDHT_ERR_INVAL;
  if (w->len > INT_MAX) return MDHT_ERR_LIMIT;
  return (int)w->len;
}
