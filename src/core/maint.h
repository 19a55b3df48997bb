/*
 * The routing manager (BEP 5 "routing table maintenance"): decides, from
 * the routing table alone, which questionable nodes to ping and which
 * buckets to refresh. It sends nothing itself: it returns actions and the
 * node carries them out, so that it can be tested against a table alone.
 *
 *   - Questionable nodes (not heard from within node_fresh_ms, or never
 *     answered) are pinged, least recently seen first, at most
 *     MDHT_MAINT_PINGS per period, and never twice within the query
 *     timeout; a ping that times out makes the table count a failure, and
 *     a node that reaches max_fails is replaced from the replacement list.
 *   - A bucket that has not changed for bucket_refresh_ms is refreshed
 *     with a find_node lookup for a random id in its range (one per
 *     period, so that a node waking from a long sleep does not start
 *     twenty lookups at once).
 */
#ifndef MDHT_MAINT_H
#define MDHT_MAINT_H

#include "mdht.h"
#include "rtable.h"

#define MDHT_MAINT_PERIOD_MS 1000
#define MDHT_MAINT_PINGS 4

typedef enum mdht_maint_kind {
  MDHT_MAINT_PING = 1,
  MDHT_MAINT_REFRESH
} mdht_maint_kind;

typedef struct mdht_maint_action {
  mdht_maint_kind kind;
  mdht_id id;      /* PING: the node */
  mdht_addr addr;  /* PING: its address */
  mdht_id target;  /* REFRESH: a random id in the bucket */
  uint32_t bucket; /* REFRESH: which bucket */
} mdht_maint_action;

typedef struct mdht_maint {
  mdht_time next_run;
} mdht_maint;

void mdht_maint_init(mdht_maint *m, mdht_time now);
/* When mdht_maint_run is due. */
mdht_time mdht_maint_next(const mdht_maint *m);
/* Fills `out` (room for at least MDHT_MAINT_PINGS + 1) with the actions
 * due at `now` and returns their count. `rnd` gives 20 random bytes for a
 * refresh target. Marks pinged entries (last_ping) and refreshed buckets
 * (last_changed) so that the same action is not returned again at once. */
size_t mdht_maint_run(mdht_maint *m, mdht_rtable *rt, mdht_time now,
                      const uint8_t rnd[MDHT_ID_LEN], mdht_maint_action *out);
/* A random id in the range of bucket `b`. */
void mdht_maint_bucket_target(const mdht_rtable *rt, uint32_t b,
                              const uint8_t rnd[MDHT_ID_LEN], mdht_id *out);

#endif
