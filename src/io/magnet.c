/* Info-hashes and magnet links: see magnet.h. */
#include "magnet.h"

#include <string.h>
#include <strings.h>

/* Exactly 40 hex digits of `s` (not NUL-terminated: a magnet parameter
 * ends at '&'), read by the core's one parser. */
static int parse_hex40(mdht_id *out, const char *s, size_t len) {
  char hex[2 * MDHT_ID_LEN + 1];
  if (len != 2 * MDHT_ID_LEN) return MDHT_ERR_INVAL;
  memcpy(hex, s, len);
  hex[len] = '\0';
  return mdht_id_parse(out, hex) < 0 ? MDHT_ERR_INVAL : 0;
}

/* RFC 4648 base32, as old magnet links carry the info-hash. */
static int base32_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

static int parse_base32(mdht_id *out, const char *s, size_t len) {
  uint32_t acc = 0;
  unsigned bits = 0;
  size_t n = 0;

  if (len != 32) return MDHT_ERR_INVAL;
  for (size_t i = 0; i < len; i++) {
    int v = base32_value(s[i]);
    if (v < 0) return MDHT_ERR_INVAL;
    acc = acc << 5 | (uint32_t)v;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out->b[n++] = (uint8_t)(acc >> bits);
    }
  }
  return n == MDHT_ID_LEN ? 0 : MDHT_ERR_INVAL;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..len) into out (cap bytes, NUL-terminated): links
 * copied from web pages carry "urn%3Abtih%3A...". Returns the decoded
 * length, or -1 for a bad escape or a value too long to be an xt. */
static int percent_decode(const char *s, size_t len, char *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
      int lo = i + 2 < len ? hex_value(s[i + 2]) : -1;
      if (hi < 0 || lo < 0) return -1;
      c = (char)(hi << 4 | lo);
      i += 2;
    }
    if (c == '\0' || n + 1 >= cap) return -1;
    out[n++] = c;
  }
  out[n] = '\0';
  return (int)n;
}

int mdht_ctl_parse_infohash(mdht_id *out, const char *s) {
  static const char magnet[] = "magnet:?";
  static const char btih[] = "urn:btih:";
  const char *p;

  /* Schemes and the xt key are case-insensitive (RFC 3986), and some
   * sites print links in capitals. */
  if (strncasecmp(s, magnet, sizeof magnet - 1) != 0)
    return parse_hex40(out, s, strlen(s));
  /* Parameters are '&'-separated; the info-hash is the xt that names a
   * BitTorrent v1 hash (a v2-only link has no info-hash the DHT knows). */
  p = s + sizeof magnet - 1;
  while (*p) {
    size_t plen = strcspn(p, "&");
    char v[128];
    int vlen;
    if (plen > 3 && strncasecmp(p, "xt=", 3) == 0 &&
        (vlen = percent_decode(p + 3, plen - 3, v, sizeof v)) >= 0 &&
        strncasecmp(v, btih, sizeof btih - 1) == 0) {
      const char *h = v + sizeof btih - 1;
      size_t hlen = (size_t)vlen - (sizeof btih - 1);
      if (parse_hex40(out, h, hlen) == 0 || parse_base32(out, h, hlen) == 0)
        return 0;
      return MDHT_ERR_INVAL;
    }
    p += plen;
    if (*p == '&') p++;
  }
  return MDHT_ERR_INVAL;
}
