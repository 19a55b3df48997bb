#include "outq.h"

#include <stdlib.h>
#include <string.h>

/* Each record: mdht_addr, uint16 length, then the bytes. */
#define HDR (sizeof(mdht_addr) + sizeof(uint16_t))
/* First allocation, and what a drained queue keeps after a burst. */
#define OUTQ_MIN 1024
/* A drained queue larger than this gives the rest back: bursts are rare,
 * and a steady flow never drains past it without refilling. */

void mdht_outq_init(mdht_outq *q, size_t max_bytes) {
  *q = (mdht_outq){.max = max_bytes < 4096 ? 4096 : max_bytes};
}

void mdht_outq_free(mdht_outq *q) {
  free(q->buf);
  *q = (mdht_outq){.max = q->max};
}

uint8_t *mdht_outq_reserve(mdht_outq *q, size_t maxlen) {
  if (maxlen > UINT16_MAX) return NULL;
  size_t need = HDR + maxlen;
  if (q->head == q->tail) q->head = q->tail = 0;
  if (q->tail + need > q->cap && q->head > 0) {
    /* Compact before growing: drained space at the front is reused. */
    memmove(q->buf, q->buf + q->head, q->tail - q->head);
    q->tail -= q->head;
    q->head = 0;
  }
  if (q->tail + need > q->cap) {
    /* 1 KB holds the few replies an idle node sends at a time. */
    size_t ncap = q->cap ? q->cap : OUTQ_MIN;
    while (ncap < q->tail + need)
      ncap *= 2;
    if (ncap > q->max) {
      if (q->tail + need > q->max) return NULL;
      ncap = q->max;
    }
    uint8_t *nb = realloc(q->buf, ncap);
    if (!nb) return NULL;
    q->buf = nb;
    q->cap = ncap;
  }
  return q->buf + q->tail + HDR;
}

void mdht_outq_commit(mdht_outq *q, const mdht_addr *to, size_t len) {
  uint16_t l = (uint16_t)len;
  memcpy(q->buf + q->tail, to, sizeof *to);
  memcpy(q->buf + q->tail + sizeof *to, &l, sizeof l);
  q->tail += HDR + len;
  q->count++;
}

int mdht_outq_pop(mdht_outq *q, mdht_addr *to, uint8_t *buf, size_t cap) {
  if (q->head == q->tail) return 0;
  uint16_t l;
  memcpy(&l, q->buf + q->head + sizeof *to, sizeof l);
  if (l > cap) return MDHT_ERR_NOBUF;
  memcpy(to, q->buf + q->head, sizeof *to);
  memcpy(buf, q->buf + q->head + HDR, l);
  q->head += HDR + l;
  q->count--;
  /* Drained: the buffer is kept for the next datagrams (freeing it here
   * cost a malloc and a free per drain: a quarter of the whole-node fuzz
   * target's speed); mdht_outq_trim gives it back. */
  if (q->head == q->tail) q->head = q->tail = 0;
  return l;
}

void mdht_outq_trim(mdht_outq *q) {
  if (q->head != q->tail || !q->buf) return;
  free(q->buf);
  q->buf = NULL;
  q->cap = q->head = q->tail = 0;
}
