#include "bep42.h"
#include "addr.h"

#include <string.h>

uint32_t mdht_crc32c(const uint8_t *p, size_t len) {
  /* Bitwise: the inputs are 4 or 8 bytes, and a table would need either a
   * global or 1 KB of literal constants. */
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < len; i++) {
    crc ^= p[i];
    for (int b = 0; b < 8; b++)
      crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/* crc32c of the masked IP with r folded into its first byte. */
static uint32_t prefix_crc(const mdht_addr *a, uint8_t r) {
  static const uint8_t mask4[4] = {0x03, 0x0f, 0x3f, 0xff};
  static const uint8_t mask6[8] = {0x01, 0x03, 0x07, 0x0f,
                                   0x1f, 0x3f, 0x7f, 0xff};
  uint8_t ip[8];
  size_t n;
  if (a->family == MDHT_AF_INET6) {
    n = 8;
    for (size_t i = 0; i < n; i++)
      ip[i] = a->ip[i] & mask6[i];
  } else {
    n = 4;
    for (size_t i = 0; i < n; i++)
      ip[i] = a->ip[i] & mask4[i];
  }
  ip[0] |= (uint8_t)((r & 7) << 5);
  return mdht_crc32c(ip, n);
}

void mdht_bep42_make(mdht_id *id, const mdht_addr *a,
                     const uint8_t rnd[MDHT_ID_LEN]) {
  memcpy(id->b, rnd, MDHT_ID_LEN);
  uint8_t r = rnd[19] & 7;
  uint32_t crc = prefix_crc(a, r);
  id->b[0] = (uint8_t)(crc >> 24);
  id->b[1] = (uint8_t)(crc >> 16);
  id->b[2] = (uint8_t)(((crc >> 8) & 0xf8) | (rnd[2] & 7));
  id->b[19] = (uint8_t)((rnd[19] & 0xf8) | r);
}

bool mdht_bep42_valid(const mdht_id *id, const mdht_addr *a) {
  if (mdht_addr_is_private(a)) return true;
  uint32_t crc = prefix_crc(a, id->b[19] & 7);
  return id->b[0] == (uint8_t)(crc >> 24) && id->b[1] == (uint8_t)(crc >> 16) &&
         (id->b[2] & 0xf8) == (uint8_t)((crc >> 8) & 0xf8);
}
