/*
 * The node's outgoing datagram queue. The core cannot send, so it queues;
 * the driver drains. Datagrams are packed one after another in one growing
 * byte buffer (a node that sends little holds little memory, which matters
 * when the simulator hosts thousands of nodes) with a hard bound in bytes.
 */
#ifndef MDHT_OUTQ_H
#define MDHT_OUTQ_H

#include "mdht.h"

typedef struct mdht_outq {
  uint8_t *buf;
  size_t cap;  /* allocated bytes */
  size_t max;  /* bound on allocated bytes */
  size_t head; /* offset of the oldest datagram */
  size_t tail; /* offset past the newest */
  uint32_t count;
} mdht_outq;

void mdht_outq_init(mdht_outq *q, size_t max_bytes);
void mdht_outq_free(mdht_outq *q);
/* Reserves room for a datagram of up to `maxlen` bytes to `to` and returns
 * where to write it, or NULL when the queue is full (the caller counts a
 * drop). Commit with mdht_outq_commit(len) before the next reserve. */
uint8_t *mdht_outq_reserve(mdht_outq *q, size_t maxlen);
void mdht_outq_commit(mdht_outq *q, const mdht_addr *to, size_t len);
/* Copies the oldest datagram out: returns its length, 0 when empty, or
 * MDHT_ERR_NOBUF (then it stays queued). */
int mdht_outq_pop(mdht_outq *q, mdht_addr *to, uint8_t *buf, size_t cap);
/* Gives the whole buffer back when the queue is empty (the next reserve
 * allocates again). The node calls it from its tick and from
 * mdht_node_trim(), not per datagram: an idle node then holds no queue at
 * all, where a drained one kept up to 64 KB (a simulated node kept 8 KB,
 * an eighth of its memory). */
void mdht_outq_trim(mdht_outq *q);

#endif
