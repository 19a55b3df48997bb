/*
 * Bencode: a zero-copy tokenizer and a bounded encoder.
 *
 * The decoder never allocates. It fills a caller-provided array of tokens
 * that point into the input (offsets), in pre-order: a list or dict token is
 * followed by its children, and each token records where its subtree ends
 * so that a reader can skip over it. It is the attack surface of the node,
 * so every step is bounds-checked and limited (depth, token count, string
 * length) and the encodings that have one canonical form are checked
 * (integers: no leading zeros, no "-0"; dict keys: strictly ascending).
 */
#ifndef MDHT_BENCODE_H
#define MDHT_BENCODE_H

#include "mdht.h"

typedef enum mdht_be_type {
  MDHT_BE_INT = 1,
  MDHT_BE_STR,
  MDHT_BE_LIST,
  MDHT_BE_DICT
} mdht_be_type;

typedef struct mdht_be_tok {
  uint8_t type;   /* mdht_be_type */
  uint32_t start; /* STR: offset of the first byte of the string;
                     others: offset of the 'i', 'l' or 'd' */
  uint32_t len;   /* STR: string length; LIST: elements; DICT: pairs;
                     INT: 0 */
  uint32_t next;  /* index of the first token after this subtree */
  int64_t ival;   /* INT: the value */
} mdht_be_tok;

#define MDHT_BE_MAX_DEPTH 32

/* Decodes the one value at the start of `buf` into `toks`. Bytes after the
 * value are allowed and not read (KRPC peers are tolerant there, so are
 * we); `*consumed`, when not NULL, receives the length of the value.
 * Never reads past `len`; `buf` need not be NUL-terminated. Only the
 * first 4 GiB are looked at (offsets are 32-bit).
 * Returns the number of tokens used (>= 1), or
 *   MDHT_ERR_PARSE  not bencode, truncated, non-canonical (integer with a
 *                   leading zero, "-0" or outside int64; string length
 *                   with a leading zero; dict key not a string or not
 *                   strictly above the previous one);
 *   MDHT_ERR_INVAL  `toks` NULL, or `buf` NULL with len > 0;
 *   MDHT_ERR_LIMIT  deeper than MDHT_BE_MAX_DEPTH or more than `ntoks`
 *                   tokens. */
int mdht_be_decode(const uint8_t *buf, size_t len, mdht_be_tok *toks,
                   size_t ntoks, size_t *consumed);

/* In the dict token `dict`, finds the value of `key`. Returns the value's
 * token index, or -1. Keys are sorted, so it stops early. */
int mdht_be_dict_get(const uint8_t *buf, const mdht_be_tok *toks, int dict,
                     const char *key, size_t keylen);

/* The same with a NUL-terminated key, and type checked: -1 unless the value
 * has type `type`. */
int mdht_be_dict_get_t(const uint8_t *buf, const mdht_be_tok *toks, int dict,
                       const char *key, mdht_be_type type);

/* The verbatim encoded bytes of token `i`'s value, header and all (a
 * string's "<len>:", an integer's "i...e", a list's or dict's "l...e"),
 * as they were in `buf`, which `toks` was decoded from: BEP 44 hashes and
 * signs values as sent, not as we would re-encode them. Sets *off to
 * where they start; returns their length. */
size_t mdht_be_span(const uint8_t *buf, const mdht_be_tok *toks, int i,
                    size_t *off);

/* ---------------------------------------------------------------- encoder */

/* Writes into a caller buffer; the first failure sticks (err) and later
 * calls do nothing, so a sequence of writes is checked once at the end.
 * Dict keys must be written in ascending order by the caller. */
typedef struct mdht_be_w {
  uint8_t *buf;
  size_t cap;
  size_t len;
  int err; /* 0 or MDHT_ERR_NOBUF / MDHT_ERR_LIMIT */
  int depth;
} mdht_be_w;

void mdht_be_w_init(mdht_be_w *w, uint8_t *buf, size_t cap);
void mdht_be_w_int(mdht_be_w *w, int64_t v);
void mdht_be_w_str(mdht_be_w *w, const void *s, size_t len);
void mdht_be_w_cstr(mdht_be_w *w, const char *s); /* NUL-terminated */
void mdht_be_w_list(mdht_be_w *w);                /* 'l' */
void mdht_be_w_dict(mdht_be_w *w);                /* 'd' */
void mdht_be_w_end(mdht_be_w *w);                 /* 'e' */
/* Raw bytes, already bencoded (a string's header written separately). */
void mdht_be_w_raw(mdht_be_w *w, const void *p, size_t len);
/* Returns the length written, or the sticky error (also if containers are
 * left open: MDHT_ERR_INVAL). */
int mdht_be_w_finish(const mdht_be_w *w);

#endif
