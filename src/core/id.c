#include "id.h"

#include <string.h>

void mdht_id_xor(mdht_id *d, const mdht_id *a, const mdht_id *b) {
  for (int i = 0; i < MDHT_ID_LEN; i++)
    d->b[i] = (uint8_t)(a->b[i] ^ b->b[i]);
}

int mdht_id_cmp_dist(const mdht_id *target, const mdht_id *a,
                     const mdht_id *b) {
  /* The first byte where the distances differ decides, since XOR distance
   * compares as a big-endian integer. */
  for (int i = 0; i < MDHT_ID_LEN; i++) {
    uint8_t da = (uint8_t)(a->b[i] ^ target->b[i]);
    uint8_t db = (uint8_t)(b->b[i] ^ target->b[i]);
    if (da != db) return da < db ? -1 : 1;
  }
  return 0;
}

int mdht_id_cmp(const mdht_id *a, const mdht_id *b) {
  return memcmp(a->b, b->b, MDHT_ID_LEN);
}

extern inline bool mdht_id_eq(const mdht_id *a, const mdht_id *b);

int mdht_id_common_prefix(const mdht_id *a, const mdht_id *b) {
  for (int i = 0; i < MDHT_ID_LEN; i++) {
    uint8_t x = (uint8_t)(a->b[i] ^ b->b[i]);
    if (x == 0) continue;
    int n = 0;
    while (!(x & 0x80)) {
      x = (uint8_t)(x << 1);
      n++;
    }
    return i * 8 + n;
  }
  return MDHT_ID_LEN * 8;
}

int mdht_id_bit(const mdht_id *a, int i) {
  if (i < 0 || i >= MDHT_ID_LEN * 8) return 0;
  return (a->b[i / 8] >> (7 - i % 8)) & 1;
}

void mdht_id_random_in(mdht_id *out, const mdht_id *base, int prefix_bits,
                       const uint8_t rnd[MDHT_ID_LEN]) {
  if (prefix_bits < 0) prefix_bits = 0;
  if (prefix_bits > MDHT_ID_LEN * 8) prefix_bits = MDHT_ID_LEN * 8;
  /* Via a copy, so that `out` may alias `base` or `rnd`. */
  mdht_id r;
  memcpy(r.b, rnd, MDHT_ID_LEN);
  int whole = prefix_bits / 8;
  memcpy(r.b, base->b, (size_t)whole);
  int rest = prefix_bits % 8;
  if (rest) {
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    r.b[whole] = (uint8_t)((base->b[whole] & mask) | (r.b[whole] & ~mask));
  }
  *out = r;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int mdht_id_parse(mdht_id *out, const char *hex) {
  if (!out || !hex) return MDHT_ERR_INVAL;
  mdht_id r;
  for (int i = 0; i < MDHT_ID_LEN; i++) {
    /* A NUL in either position stops here, so a short string is never
     * read past its end. */
    int hi = hex_value(hex[2 * i]);
    if (hi < 0) return MDHT_ERR_INVAL;
    int lo = hex_value(hex[2 * i + 1]);
    if (lo < 0) return MDHT_ERR_INVAL;
    r.b[i] = (uint8_t)(hi << 4 | lo);
  }
  if (hex[2 * MDHT_ID_LEN] != '\0') return MDHT_ERR_INVAL;
  *out = r;
  return 0;
}

void mdht_id_format(const mdht_id *id, char hex[41]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < MDHT_ID_LEN; i++) {
    hex[2 * i] = digits[id->b[i] >> 4];
    hex[2 * i + 1] = digits[id->b[i] & 15];
  }
  hex[2 * MDHT_ID_LEN] = '\0';
}
