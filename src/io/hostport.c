/* HOST:PORT: see hostport.h. */
#include "hostport.h"

#include <stdbool.h>
#include <string.h>

static bool valid_port(const char *p) {
  unsigned long v = 0;
  if (!*p) return false;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > 65535) return false;
  }
  return v > 0;
}

int mdht_hostport_split(const char *s, char *host, size_t cap,
                        const char **port) {
  const char *colon;
  size_t hl;

  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return -1;
    hl = (size_t)(end - s - 1);
    if (hl == 0 || hl >= cap) return -1;
    memcpy(host, s + 1, hl);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return -1;
    hl = (size_t)(colon - s);
    /* A bare IPv6 address would be ambiguous: "::1:6881". */
    if (hl == 0 || hl >= cap || memchr(s, ':', hl)) return -1;
    memcpy(host, s, hl);
  }
  host[hl] = '\0';
  *port = colon + 1;
  return valid_port(*port) ? 0 : -1;
}
