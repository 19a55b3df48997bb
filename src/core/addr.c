#include "addr.h"
#include "hash.h"

#include <stdio.h>
#include <string.h>

static size_t ip_len(const mdht_addr *a) {
  return a->family == MDHT_AF_INET ? 4 : 16;
}

/* memcmp of a constant length in each branch: the compiler turns it into
 * one or two loads instead of a library call (the lookups' candidate check
 * and the routing table's index run these on every datagram). */
bool mdht_addr_ip_eq(const mdht_addr *a, const mdht_addr *b) {
  if (a->family != b->family) return false;
  return ip_len(a) == 4 ? memcmp(a->ip, b->ip, 4) == 0
                        : memcmp(a->ip, b->ip, 16) == 0;
}

bool mdht_addr_eq(const mdht_addr *a, const mdht_addr *b) {
  return a->port == b->port && mdht_addr_ip_eq(a, b);
}

/* ------------------------------------------------------------ compact */

size_t mdht_addr_to_compact(const mdht_addr *a, uint8_t *out) {
  size_t n = a->family == MDHT_AF_INET6 ? 16 : 4;
  memcpy(out, a->ip, n);
  out[n] = (uint8_t)(a->port >> 8);
  out[n + 1] = (uint8_t)(a->port & 0xff);
  return n + 2;
}

int mdht_addr_from_compact(mdht_addr *a, const uint8_t *p, size_t len) {
  if (!a || !p || (len != MDHT_COMPACT_PEER4 && len != MDHT_COMPACT_PEER6))
    return MDHT_ERR_INVAL;
  size_t n = len - 2;
  /* Zero everything so that unused ip bytes and padding never make two
   * equal endpoints look different to memcmp-minded callers. */
  memset(a, 0, sizeof *a);
  a->family = n == 4 ? MDHT_AF_INET : MDHT_AF_INET6;
  memcpy(a->ip, p, n);
  a->port = (uint16_t)(p[n] << 8 | p[n + 1]);
  return 0;
}

size_t mdht_node_to_compact(const mdht_id *id, const mdht_addr *a,
                            uint8_t *out) {
  memcpy(out, id->b, MDHT_ID_LEN);
  return MDHT_ID_LEN + mdht_addr_to_compact(a, out + MDHT_ID_LEN);
}

int mdht_node_from_compact(mdht_id *id, mdht_addr *a, const uint8_t *p,
                           size_t len) {
  if (!id || !p || (len != MDHT_COMPACT_NODE4 && len != MDHT_COMPACT_NODE6))
    return MDHT_ERR_INVAL;
  int err = mdht_addr_from_compact(a, p + MDHT_ID_LEN, len - MDHT_ID_LEN);
  if (err) return err;
  memcpy(id->b, p, MDHT_ID_LEN);
  return 0;
}

/* ------------------------------------------------------------ classes */

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};

static bool v4_martian(const uint8_t *ip) {
  /* 0/8 "this network"; from 224 up: multicast, reserved, broadcast. */
  return ip[0] == 0 || ip[0] >= 224;
}

static bool v4_private(const uint8_t *ip) {
  return ip[0] == 127 || ip[0] == 10 ||
         (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
         (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254) ||
         (ip[0] == 100 && (ip[1] & 0xc0) == 64);
}

bool mdht_addr_is_martian(const mdht_addr *a) {
  if (a->port == 0) return true;
  if (a->family == MDHT_AF_INET) return v4_martian(a->ip);
  if (a->family != MDHT_AF_INET6) return true;
  static const uint8_t zero[16] = {0};
  if (memcmp(a->ip, zero, 16) == 0 || a->ip[0] == 0xff) return true;
  if (memcmp(a->ip, v4_mapped_prefix, 12) == 0) return v4_martian(a->ip + 12);
  return false;
}

bool mdht_addr_is_private(const mdht_addr *a) {
  if (a->family == MDHT_AF_INET) return v4_private(a->ip);
  if (a->family != MDHT_AF_INET6) return false;
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0, 0, 0, 0, 0, 0, 1};
  if (memcmp(a->ip, loopback, 16) == 0) return true;
  if ((a->ip[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
    return true;
  if (a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80) /* fe80::/10 */
    return true;
  if (memcmp(a->ip, v4_mapped_prefix, 12) == 0) return v4_private(a->ip + 12);
  return false;
}

/* --------------------------------------------------------------- hash */

uint32_t mdht_addr_hash(const mdht_addr *a, uint64_t seed) {
  uint8_t buf[19];
  size_t n = ip_len(a);
  buf[0] = a->family;
  memcpy(buf + 1, a->ip, n);
  buf[1 + n] = (uint8_t)(a->port >> 8);
  buf[2 + n] = (uint8_t)(a->port & 0xff);
  /* Remote nodes choose their addresses: the index needs a keyed hash. */
  uint64_t h = mdht_hash(seed, buf, n + 3);
  return (uint32_t)(h ^ (h >> 32));
}

/* -------------------------------------------------------------- text */

static int put_v6(const uint8_t *ip, char *out) {
  uint16_t w[8];
  for (int i = 0; i < 8; i++)
    w[i] = (uint16_t)(ip[2 * i] << 8 | ip[2 * i + 1]);
  /* RFC 5952: the longest run of two or more zero groups becomes "::",
   * the first one on a tie. */
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (w[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && w[j] == 0)
      j++;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  char *p = out;
  bool mapped = memcmp(ip, v4_mapped_prefix, 12) == 0;
  int groups = mapped ? 6 : 8;
  for (int i = 0; i < groups; i++) {
    if (i == best) {
      p += sprintf(p, "::");
      i += best_len - 1;
      continue;
    }
    if (i > 0 && i != best + best_len) *p++ = ':';
    p += sprintf(p, "%x", (unsigned)w[i]);
  }
  if (mapped) p += sprintf(p, ":%u.%u.%u.%u", ip[12], ip[13], ip[14], ip[15]);
  *p = '\0';
  return (int)(p - out);
}

int mdht_addr_format(const mdht_addr *a, char *buf, size_t cap) {
  if (!a || !buf) return MDHT_ERR_INVAL;
  char tmp[64];
  int n;
  if (a->family == MDHT_AF_INET) {
    n = sprintf(tmp, "%u.%u.%u.%u:%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3],
                (unsigned)a->port);
  } else if (a->family == MDHT_AF_INET6) {
    tmp[0] = '[';
    n = 1 + put_v6(a->ip, tmp + 1);
    n += sprintf(tmp + n, "]:%u", (unsigned)a->port);
  } else {
    return MDHT_ERR_INVAL;
  }
  if ((size_t)n >= cap) return MDHT_ERR_NOBUF;
  memcpy(buf, tmp, (size_t)n + 1);
  return n;
}

/* Dotted quad, exactly s[0..len): decimal 0..255, no leading zeros (which
 * some parsers read as octal). */
static bool parse_v4(const char *s, size_t len, uint8_t out[4]) {
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= len || s[i] != '.') return false;
      i++;
    }
    size_t start = i;
    unsigned v = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3)
      v = v * 10 + (unsigned)(s[i++] - '0');
    size_t digits = i - start;
    if (digits == 0 || v > 255 || (digits > 1 && s[start] == '0')) return false;
    out[part] = (uint8_t)v;
  }
  return i == len;
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* RFC 4291 text form, exactly s[0..len); no zone index. */
static bool parse_v6(const char *s, size_t len, uint8_t out[16]) {
  uint16_t w[8];
  int n = 0, gap = -1;
  size_t i = 0;
  if (len >= 2 && s[0] == ':' && s[1] == ':') {
    gap = 0;
    i = 2;
  }
  while (i < len) {
    size_t start = i;
    unsigned v = 0;
    int d;
    while (i < len && i - start < 5 && (d = hex_digit(s[i])) >= 0) {
      v = v << 4 | (unsigned)d;
      i++;
    }
    if (i < len && s[i] == '.') {
      /* An embedded dotted quad ends the address and fills two groups. */
      uint8_t q[4];
      if (n > 6 || !parse_v4(s + start, len - start, q)) return false;
      w[n++] = (uint16_t)(q[0] << 8 | q[1]);
      w[n++] = (uint16_t)(q[2] << 8 | q[3]);
      i = len;
      break;
    }
    if (i == start || i - start > 4 || n == 8) return false;
    w[n++] = (uint16_t)v;
    if (i == len) break;
    if (s[i] != ':' || ++i == len) return false;
    if (s[i] == ':') {
      if (gap >= 0) return false;
      gap = n;
      i++;
    }
  }
  if (gap >= 0) {
    /* "::" stands for at least one zero group. */
    if (n >= 8) return false;
    int tail = n - gap;
    memmove(&w[8 - tail], &w[gap], (size_t)tail * sizeof w[0]);
    for (int j = gap; j < 8 - tail; j++)
      w[j] = 0;
  } else if (n != 8) {
    return false;
  }
  for (int j = 0; j < 8; j++) {
    out[2 * j] = (uint8_t)(w[j] >> 8);
    out[2 * j + 1] = (uint8_t)(w[j] & 0xff);
  }
  return true;
}

int mdht_addr_parse(mdht_addr *out, const char *s) {
  if (!out || !s) return MDHT_ERR_INVAL;
  mdht_addr r;
  memset(&r, 0, sizeof r);
  const char *rest;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (!close || !parse_v6(s + 1, (size_t)(close - s - 1), r.ip))
      return MDHT_ERR_INVAL;
    r.family = MDHT_AF_INET6;
    rest = close + 1;
  } else {
    const char *colon = strchr(s, ':');
    if (!colon || !parse_v4(s, (size_t)(colon - s), r.ip))
      return MDHT_ERR_INVAL;
    r.family = MDHT_AF_INET;
    rest = colon;
  }
  if (rest[0] != ':') return MDHT_ERR_INVAL;
  rest++;
  unsigned port = 0;
  size_t digits = 0;
  while (rest[digits] >= '0' && rest[digits] <= '9' && digits < 6)
    port = port * 10 + (unsigned)(rest[digits++] - '0');
  if (digits == 0 || rest[digits] != '\0' || port == 0 || port > 65535)
    return MDHT_ERR_INVAL;
  r.port = (uint16_t)port;
  *out = r;
  return 0;
}
