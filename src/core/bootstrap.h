/*
 * The bootstrapper: joining the network from router addresses.
 *
 * Routers are pinged first (their ids are unknown, and a lookup needs
 * ids); those that answer seed a find_node lookup for our own id, which
 * fills the buckets near us; then one lookup per bucket that is not full
 * fills the rest, MDHT_BOOT_FILL_PARALLEL at a time, farthest bucket first
 * (a bucket that filled meanwhile, from the answers to earlier lookups,
 * gets none). When the routing table empties (the network was lost),
 * the routers are pinged again with exponential backoff.
 *
 * Until a router has answered, the routers are pinged (with the backoff)
 * even while the table has nodes, and a router that answers late gets a
 * lookup of our id of its own: nodes that reached us by querying us prove
 * nothing about the network. A router whose own first ping is lost while
 * joiners that know only it flood in would otherwise build, from them, an
 * island that never meets the rest (it did in the simulator: 5 % loss,
 * 2,000 nodes, seed 7, 39.5 % of lookups found their peer). The first
 * retry comes after 1 s, not 5 s: the island grows with every second.
 *
 * This module keeps the state and the schedule; the node runs the pings
 * and lookups.
 */
#ifndef MDHT_BOOTSTRAP_H
#define MDHT_BOOTSTRAP_H

#include "mdht.h"
#include "lookup.h"

#define MDHT_BOOT_MAX_ROUTERS 16
#define MDHT_BOOT_BACKOFF_MIN_MS 1000
#define MDHT_BOOT_BACKOFF_MAX_MS (5 * 60 * 1000)
/* Bucket-fill lookups running at once. All at once, a joining node had a
 * dozen lookups and some 60 queries in flight: 40 KB for a few seconds,
 * which in a simulator whose joiners overlap by the thousand was a fifth
 * of the peak memory (issue 13), and a burst no network needs. */
#define MDHT_BOOT_FILL_PARALLEL 3

typedef enum mdht_boot_phase {
  MDHT_BOOT_IDLE,    /* no routers, or nothing to do */
  MDHT_BOOT_PINGING, /* routers pinged, waiting for an answer */
  MDHT_BOOT_SELF,    /* lookup for our own id running */
  MDHT_BOOT_FILL,    /* lookups for buckets that are not full */
  MDHT_BOOT_DONE
} mdht_boot_phase;

typedef struct mdht_bootstrap {
  /* Both arrays have room for nrouters entries, allocated as routers are
   * added: a node has one to four routers (a simulated node one), and
   * room for MDHT_BOOT_MAX_ROUTERS of each cost 960 bytes per node. */
  mdht_addr *routers;
  uint32_t nrouters;
  /* Routers that answered, with their ids: lookup seeds. */
  mdht_lookup_node *seeds;
  uint32_t nseeds;
  mdht_boot_phase phase;
  uint32_t fill_pending;  /* bucket lookups still running */
  uint32_t fill_next;     /* next bucket that may get a fill lookup ... */
  uint32_t fill_end;      /* ... up to this one, excluded */
  mdht_time next_attempt; /* next router ping round */
  mdht_time backoff;
  bool ever_done;
  /* A lookup for our id has started from routers that answered (above);
   * cleared by mdht_boot_reset. */
  bool router_joined;
} mdht_bootstrap;

void mdht_boot_init(mdht_bootstrap *b);
/* Frees the router and seed arrays. */
void mdht_boot_free(mdht_bootstrap *b);
/* Returns 0, MDHT_ERR_EXISTS (already known) or MDHT_ERR_LIMIT. */
int mdht_boot_add_router(mdht_bootstrap *b, const mdht_addr *a);
bool mdht_boot_is_router(const mdht_bootstrap *b, const mdht_addr *a);
/* A router answered with `id`: remember it as a seed. */
void mdht_boot_router_answered(mdht_bootstrap *b, const mdht_id *id,
                               const mdht_addr *a);
/* Routers were just pinged at `now`: schedule the next round, doubling the
 * wait up to MDHT_BOOT_BACKOFF_MAX_MS. */
void mdht_boot_pinged(mdht_bootstrap *b, mdht_time now);
/* The table emptied, or a bootstrap lookup found nobody: start over from
 * the routers at the next attempt (the backoff keeps growing). */
void mdht_boot_reset(mdht_bootstrap *b, mdht_time now);
/* The lookup for our own id got no answer at all (a lost datagram, a
 * router that went away): try again after the backoff, which grows; the
 * routers are pinged again even while the table holds nodes. */
void mdht_boot_failed(mdht_bootstrap *b, mdht_time now);
/* A bootstrap completed with nodes in the table: the backoff starts over
 * from its minimum. */
void mdht_boot_succeeded(mdht_bootstrap *b);

#endif
