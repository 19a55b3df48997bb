#include "notify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

mdht_time mdht_notify_watchdog_interval(uint64_t usec) {
  if (usec == 0) return 0;
  /* Half the timeout (systemd's advice), so that one late iteration of
   * the loop does not cost a restart. */
  mdht_time ms = usec / 2000;
  return ms > 0 ? ms : 1;
}

static const char *plural(uint64_t n, const char *one, const char *many) {
  return n == 1 ? one : many;
}

int mdht_notify_status_text(char *buf, size_t cap, const mdht_addr *addr,
                            const mdht_stats *st) {
  char a[64];
  if (mdht_addr_format(addr, a, sizeof a) < 0) strcpy(a, "?");
  return snprintf(buf, cap, "%s, %u %s (%u good), %u %s, %u %s", a,
                  st->nodes_total, plural(st->nodes_total, "node", "nodes"),
                  st->nodes_good, st->infohashes,
                  plural(st->infohashes, "info-hash", "info-hashes"), st->peers,
                  plural(st->peers, "peer", "peers"));
}

/* Sends STATUS= when the text differs from the last one sent; `prefix`
 * ("READY=1\n") goes in the same message. */
static int send_status(mdht_notify *n, const char *prefix, bool force) {
  char text[sizeof n->last], msg[sizeof n->last + 32];
  text[0] = '\0';
  if (n->status_fn) n->status_fn(text, sizeof text, n->status_user);
  /* One line: a newline would start another assignment. */
  for (char *p = text; *p; p++)
    if (*p == '\n') *p = ' ';
  if (!force && strcmp(text, n->last) == 0) return 0;
  snprintf(msg, sizeof msg, "%s%s%s", prefix, text[0] ? "STATUS=" : "", text);
  int rc = sd_notify(0, msg);
  if (rc < 0) return rc;
  memcpy(n->last, text, sizeof n->last);
  return 0;
}

static void on_watchdog(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  mdht_notify *n = user;
  /* A failed ping has no remedy here: systemd's timeout says the rest. */
  (void)sd_notify(0, "WATCHDOG=1");
  mdht_loop_timer_set(loop, t, mdht_loop_now() + n->watchdog_ms);
}

static void on_status(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  mdht_notify *n = user;
  (void)send_status(n, "", false);
  mdht_loop_timer_set(loop, t, mdht_loop_now() + MDHT_NOTIFY_STATUS_MS);
}

void mdht_notify_init(mdht_notify *n, mdht_loop *loop, mdht_notify_status_fn fn,
                      void *user) {
  const char *sock = getenv("NOTIFY_SOCKET");
  uint64_t usec = 0;

  memset(n, 0, sizeof *n);
  n->loop = loop;
  n->status_fn = fn;
  n->status_user = user;
  n->active = sock && *sock;
  /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID is unset or ours:
   * a watchdog meant for a parent is not ours to feed. */
  if (n->active && sd_watchdog_enabled(0, &usec) > 0)
    n->watchdog_ms = mdht_notify_watchdog_interval(usec);
  mdht_loop_timer_init(&n->watchdog, on_watchdog, n);
  mdht_loop_timer_init(&n->status, on_status, n);
}

int mdht_notify_ready(mdht_notify *n) {
  mdht_time now = mdht_loop_now();
  int rc;
  if (!n->active) return 0;
  if ((rc = send_status(n, "READY=1\n", true)) < 0) return rc;
  if (n->watchdog_ms > 0) {
    /* The first ping at once: the start may have taken a while. */
    (void)sd_notify(0, "WATCHDOG=1");
    if ((rc = mdht_loop_timer_set(n->loop, &n->watchdog,
                                  now + n->watchdog_ms)) < 0)
      return rc;
  }
  if (n->status_fn)
    rc = mdht_loop_timer_set(n->loop, &n->status, now + MDHT_NOTIFY_STATUS_MS);
  return rc;
}

void mdht_notify_stopping(mdht_notify *n) {
  if (!n->active) return;
  (void)sd_notify(0, "STOPPING=1");
  mdht_notify_free(n);
}

void mdht_notify_free(mdht_notify *n) {
  if (!n->loop) return;
  mdht_loop_timer_stop(n->loop, &n->watchdog);
  mdht_loop_timer_stop(n->loop, &n->status);
}
