/* Names of error codes, events, methods and drop reasons: each generated
 * from the one X-macro list in mdht.h so that none can drift. */
#include "mdht.h"

#include <string.h>

/* Every code below the errno range, checked where a new one is added. */
#define MDHT__ERR_APART(name, code, text)                                      \
  _Static_assert(code < -MDHT_ERRNO_MAX, "MDHT_ERR_" #name " overlaps "        \
                                         "-errno");
MDHT_ERRORS(MDHT__ERR_APART)
#undef MDHT__ERR_APART

const char *mdht_strerror(int err) {
  /* A negated errno, from the I/O layer or an embedder's own calls: the
   * two domains do not overlap (mdht.h), so no caller has to say which
   * one it holds. */
  if (err < 0 && err >= -MDHT_ERRNO_MAX) return strerror(-err);
  switch (err) {
  case 0:
    return "success";
#define MDHT__ERR_CASE(name, code, text)                                       \
  case code:                                                                   \
    return text;
    MDHT_ERRORS(MDHT__ERR_CASE)
#undef MDHT__ERR_CASE
  default:
    return "unknown error";
  }
}

const char *mdht_event_name(mdht_event_type t) {
  static const char *const names[] = {
#define MDHT__EV_NAME(name, text) text,
      MDHT_EVENTS(MDHT__EV_NAME)
#undef MDHT__EV_NAME
  };
  if ((unsigned)t >= sizeof names / sizeof names[0]) return "unknown";
  return names[t];
}

const char *mdht_method_name(mdht_method m) {
  static const char *const names[] = {
      "ping", "find_node", "get_peers", "announce_peer", "sample_infohashes",
      "get",  "put",       "unknown"};
  if ((unsigned)m >= sizeof names / sizeof names[0]) return "unknown";
  return names[m];
}

const char *mdht_drop_reason_name(mdht_drop_reason r) {
  static const char *const names[] = {
#define MDHT__DROP_NAME(name, text) text,
      MDHT_DROPS(MDHT__DROP_NAME)
#undef MDHT__DROP_NAME
  };
  if ((unsigned)r >= sizeof names / sizeof names[0]) return "unknown";
  return names[r];
}
