/*
 * libFuzzer target: bencode decoder and encoder.
 *
 * Whatever the decoder accepts is canonical, so re-encoding the token tree
 * must give back exactly the bytes it consumed, and those bytes must decode
 * to the same tokens again.
 */
#include <stdlib.h>
#include <string.h>

#include "bencode.h"

#define NTOKS 1024

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x)) abort();                                                         \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t reencode(mdht_be_w *w, const uint8_t *buf,
                         const mdht_be_tok *toks, uint32_t i) {
  switch (toks[i].type) {
  case MDHT_BE_INT:
    mdht_be_w_int(w, toks[i].ival);
    return i + 1;
  case MDHT_BE_STR:
    mdht_be_w_str(w, buf + toks[i].start, toks[i].len);
    return i + 1;
  case MDHT_BE_LIST:
  case MDHT_BE_DICT: {
    if (toks[i].type == MDHT_BE_LIST)
      mdht_be_w_list(w);
    else
      mdht_be_w_dict(w);
    uint32_t count = 0;
    for (uint32_t j = i + 1; j < toks[i].next; count++) {
      uint32_t next = reencode(w, buf, toks, j);
      CHECK(next > j && next <= toks[i].next);
      /* Every key of a dict can be found by lookup, at its value. */
      if (toks[i].type == MDHT_BE_DICT && count % 2 == 0) {
        CHECK(toks[j].type == MDHT_BE_STR);
        char key[64];
        if (toks[j].len < sizeof key) {
          memcpy(key, buf + toks[j].start, toks[j].len);
          CHECK(mdht_be_dict_get(buf, toks, (int)i, key, toks[j].len) ==
                (int)next);
        }
      }
      j = next;
    }
    CHECK(count ==
          (toks[i].type == MDHT_BE_DICT ? 2 * toks[i].len : toks[i].len));
    mdht_be_w_end(w);
    return toks[i].next;
  }
  default:
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mdht_be_tok toks[NTOKS];
  size_t consumed = 0;
  int n = mdht_be_decode(data, size, toks, NTOKS, &consumed);
  if (n < 0) {
    CHECK(n == MDHT_ERR_PARSE || n == MDHT_ERR_LIMIT);
    return 0;
  }
  CHECK(n >= 1 && n <= NTOKS && consumed >= 1 && consumed <= size);
  CHECK(toks[0].next == (uint32_t)n);
  for (int i = 0; i < n; i++) {
    CHECK(toks[i].next > (uint32_t)i && toks[i].next <= (uint32_t)n);
    CHECK((size_t)toks[i].start + toks[i].len <= consumed);
  }

  uint8_t *out = malloc(consumed);
  CHECK(out);
  mdht_be_w w;
  mdht_be_w_init(&w, out, consumed);
  CHECK(reencode(&w, data, toks, 0) == (uint32_t)n);
  CHECK(mdht_be_w_finish(&w) == (int)consumed);
  CHECK(memcmp(out, data, consumed) == 0);

  /* One byte short of room must fail cleanly. */
  mdht_be_w_init(&w, out, consumed - 1);
  reencode(&w, data, toks, 0);
  CHECK(mdht_be_w_finish(&w) == MDHT_ERR_NOBUF);

  mdht_be_tok toks2[NTOKS];
  size_t consumed2 = 0;
  memcpy(out, data, consumed);
  CHECK(mdht_be_decode(out, consumed, toks2, NTOKS, &consumed2) == n);
  CHECK(consumed2 == consumed);
  for (int i = 0; i < n; i++) {
    CHECK(toks2[i].type == toks[i].type && toks2[i].start == toks[i].start &&
          toks2[i].len == toks[i].len && toks2[i].next == toks[i].next &&
          toks2[i].ival == toks[i].ival);
  }
  /* Any token budget smaller than needed is a limit, never a crash. */
  CHECK(mdht_be_decode(out, consumed, toks2, (size_t)n - 1, NULL) ==
        MDHT_ERR_LIMIT);
  free(out);
  return 0;
}
