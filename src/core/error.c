/* Names of error codes, events, methods and drop reasons: each generated
 * from the one X-macro list in mdht.h so that none can drift. */
#include "mdht.h"

const char *mdht_strerror(int err) {
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
      "ping",          "find_node",         "get_peers",
      "announce_peer", "sample_infohashes", "unknown"};
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
