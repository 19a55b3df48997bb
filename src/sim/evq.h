/*
 * The simulator's event queue: a 4-ary min-heap of pending events ordered
 * by virtual time, then by a key the caller chooses, then by the order they
 * were pushed, so that events due at the same millisecond always come out
 * in the same order and a run is repeatable for a seed. The simulator's
 * key names the event by what it is (sender and the sender's datagram
 * count, or the node of a timer), not by when it was pushed: with one
 * queue per thread, push order depends on how nodes are split between
 * threads, and the key does not. A caller with key 0 everywhere gets
 * push order.
 *
 * Push and pop cost O(log N) in the number of queued events (a 4-ary heap
 * is half as deep as a binary one, and each level's four children share a
 * cache line or two, which matters once the queue holds millions of
 * events). The queue counts the comparisons it makes so that a test can
 * check the bound rather than trust it.
 */
#ifndef MDHT_EVQ_H
#define MDHT_EVQ_H

#include <stddef.h>
#include <stdint.h>

#include "mdht.h"

/* What an event is about; the queue only orders by (at, key, seq). The sim
 * uses `to`, `from`, `gen`, `len`, `data` for datagrams and timers; a
 * scenario may use the same fields for its own events (churn). */
typedef struct mdht_evq_item {
  mdht_time at;
  uint64_t key; /* the caller's tie-break at equal `at` */
  uint64_t seq; /* set by the queue: push order */
  uint32_t to;
  uint32_t from;
  uint32_t gen;
  uint16_t len;
  uint8_t *data;
} mdht_evq_item;

typedef struct mdht_evq {
  mdht_evq_item *v;
  size_t n, cap;
  uint64_t seq;
  uint64_t cmps; /* comparisons made so far (for the tests) */
} mdht_evq;

void mdht_evq_init(mdht_evq *q);
/* Frees the queue's array, not the items' data. */
void mdht_evq_free(mdht_evq *q);
/* Errors: MDHT_ERR_NOMEM (the item is not queued). */
int mdht_evq_push(mdht_evq *q, mdht_evq_item it);
/* The earliest item, or NULL when empty. */
const mdht_evq_item *mdht_evq_peek(const mdht_evq *q);
/* Removes the earliest item into *out; false when empty. */
bool mdht_evq_pop(mdht_evq *q, mdht_evq_item *out);
size_t mdht_evq_size(const mdht_evq *q);

#endif
