/*
 * LogForge: the event logger. One subscriber of a node's bus that turns
 * events into lines, for people (text) or machines (JSON lines):
 *
 *   2026-11-24T11:34:17.123Z info  node_added id=abcd... addr=1.2.3.4:6881
 *   {"ts":"2026-11-24T11:34:17.123Z","level":"info","event":"node_added",
 *    "id":"abcd...","addr":"1.2.3.4:6881"}
 *
 * Each event type has a level (mdht_logforge_event_level); lines above the
 * configured level are not written. Timestamps are wall-clock time from a
 * clock the caller supplies: the core's `now` is monotonic and has no epoch.
 *
 * Every line is written whole under the FILE's lock and flushed, so that a
 * reader of a pipe sees complete lines as they happen.
 */
#ifndef MDHT_LOGFORGE_H
#define MDHT_LOGFORGE_H

#include <stdint.h>
#include <stdio.h>

#include "mdht.h"

typedef enum mdht_log_format { MDHT_LOG_TEXT, MDHT_LOG_JSON } mdht_log_format;

/* Milliseconds since the Unix epoch. */
typedef uint64_t (*mdht_wallclock_cb)(void *user);

typedef struct mdht_logforge {
  FILE *out;
  mdht_log_level level; /* lines at this level or more severe are written */
  mdht_log_format format;
  mdht_wallclock_cb clock; /* NULL: `wall_ms` is used as is */
  void *clock_user;
  uint64_t wall_ms;
} mdht_logforge;

void mdht_logforge_init(mdht_logforge *lf, FILE *out, mdht_log_level level,
                        mdht_log_format format);
void mdht_logforge_set_clock(mdht_logforge *lf, mdht_wallclock_cb clock,
                             void *user);

/* The bus callback; `user` is the mdht_logforge. Pass both to
 * mdht_node_subscribe. */
void mdht_logforge_on_event(const mdht_event *ev, void *user);

/* The level an event is logged at: MDHT_EV_LOG carries its own. */
mdht_log_level mdht_logforge_event_level(const mdht_event *ev);

/* Whether a line at `level` would be written. */
static inline int mdht_logforge_enabled(const mdht_logforge *lf,
                                        mdht_log_level level) {
  return lf && lf->out && level <= lf->level;
}

/* A free-text line, for the driver's and the program's own messages. In
 * JSON it is {"ts":...,"level":...,"event":"log","msg":"..."}. */
void mdht_logforge_logf(mdht_logforge *lf, mdht_log_level level,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The "listening" line written once at start: text "listening on ADDR
 * id=HEX", JSON {"event":"listening","addr":...,"id":...}. */
void mdht_logforge_listening(mdht_logforge *lf, const mdht_addr *addr,
                             const mdht_id *id);

/* "error", "warn", "info", "debug", "trace" <-> level. parse returns 0 or
 * MDHT_ERR_INVAL. */
const char *mdht_log_level_name(mdht_log_level level);
int mdht_log_level_parse(mdht_log_level *out, const char *s);
/* "text" or "json". Returns 0 or MDHT_ERR_INVAL. */
int mdht_log_format_parse(mdht_log_format *out, const char *s);

#endif
