/*
 * The event bus: components publish typed events (include/mdht.h), and
 * subscribers receive them synchronously, in subscription order.
 *
 * The bus only observes. No component learns of another's work through
 * it: the node calls the routing table, token manager, peer store and
 * statistics itself, then publishes what happened. Every subscriber is a
 * user of the node (the logger, persistence, the control socket, tests),
 * none is the node's own, so the node works the same with no subscriber.
 * Since the core never publishes from inside a publish, subscribers hear
 * events in the order things happened; a subscriber that calls into the
 * node from its callback nests the events that call causes inside the one
 * it is hearing (the later subscribers then hear them first).
 *
 * A handle is a slot index; unsubscribing frees the slot for a later
 * subscriber, which is still called after every earlier subscriber. A
 * subscriber may unsubscribe itself or another during a publish: the
 * removed one is not called again, and one added during a publish first
 * hears the next event.
 */
#ifndef MDHT_BUS_H
#define MDHT_BUS_H

#include "mdht.h"

#define MDHT_BUS_MAX_SUBS 16 /* mdht_node_subscribe's documented limit */

typedef struct mdht_bus_sub {
  mdht_event_cb cb; /* NULL = free slot */
  void *user;
  uint32_t gen; /* bumped per subscribe: a reused slot is a new one */
} mdht_bus_sub;

/* The slots are allocated by the first subscribe and grow (1, 2, 4, ...
 * up to MDHT_BUS_MAX_SUBS) as more come: most nodes of a simulated
 * network have one subscriber or none, and 384 bytes inline were an
 * eighth of such a node's struct, 384 allocated at the first subscribe a
 * quarter of its "other" memory (issue 13). A handle is a slot's index,
 * stable while the slots grow. */
typedef struct mdht_bus {
  mdht_bus_sub *subs;               /* `cap` slots, or NULL */
  uint8_t order[MDHT_BUS_MAX_SUBS]; /* handles, in subscription order */
  uint32_t nsubs;
  uint8_t cap;
} mdht_bus;

void mdht_bus_init(mdht_bus *bus);
/* Frees the slots; the bus is then empty, as after mdht_bus_init(). */
void mdht_bus_free(mdht_bus *bus);
/* Returns a handle >= 0, MDHT_ERR_FULL, MDHT_ERR_INVAL (NULL cb) or
 * MDHT_ERR_NOMEM. */
int mdht_bus_subscribe(mdht_bus *bus, mdht_event_cb cb, void *user);
/* An unknown or already freed handle is ignored. */
void mdht_bus_unsubscribe(mdht_bus *bus, int handle);
void mdht_bus_publish(const mdht_bus *bus, const mdht_event *ev);
/* Publishes an event of `type` with the other fields zeroed except now. */
static inline void mdht_bus_event_init(mdht_event *ev, mdht_event_type type,
                                       mdht_time now) {
  *ev = (mdht_event){0};
  ev->type = type;
  ev->now = now;
}

#endif
