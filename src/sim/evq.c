#include "evq.h"

#include <stdlib.h>
#include <string.h>

#define ARITY 4

void mdht_evq_init(mdht_evq *q) {
  memset(q, 0, sizeof *q);
}

void mdht_evq_free(mdht_evq *q) {
  free(q->v);
  mdht_evq_init(q);
}

static bool before(mdht_evq *q, const mdht_evq_item *a,
                   const mdht_evq_item *b) {
  q->cmps++;
  if (a->at != b->at) return a->at < b->at;
  if (a->key != b->key) return a->key < b->key;
  return a->seq < b->seq;
}

int mdht_evq_push(mdht_evq *q, mdht_evq_item it) {
  if (q->n == q->cap) {
    size_t nc = q->cap ? q->cap * 2 : 1024;
    mdht_evq_item *nv = realloc(q->v, nc * sizeof *nv);
    if (!nv) return MDHT_ERR_NOMEM;
    q->v = nv;
    q->cap = nc;
  }
  it.seq = q->seq++;
  size_t i = q->n++;
  while (i > 0) {
    size_t p = (i - 1) / ARITY;
    if (!before(q, &it, &q->v[p])) break;
    q->v[i] = q->v[p];
    i = p;
  }
  q->v[i] = it;
  return 0;
}

const mdht_evq_item *mdht_evq_peek(const mdht_evq *q) {
  return q->n ? &q->v[0] : NULL;
}

size_t mdht_evq_size(const mdht_evq *q) {
  return q->n;
}

/* Sifts `last` down from the root: at each level the earliest of up to
 * ARITY children moves up while it is earlier than `last`. */
bool mdht_evq_pop(mdht_evq *q, mdht_evq_item *out) {
  if (q->n == 0) return false;
  *out = q->v[0];
  mdht_evq_item last = q->v[--q->n];
  size_t i = 0, n = q->n;
  for (;;) {
    size_t c = ARITY * i + 1;
    if (c >= n) break;
    size_t best = c, end = c + ARITY < n ? c + ARITY : n;
    for (size_t k = c + 1; k < end; k++)
      if (before(q, &q->v[k], &q->v[best])) best = k;
    if (!before(q, &q->v[best], &last)) break;
    q->v[i] = q->v[best];
    i = best;
  }
  if (n > 0) q->v[i] = last;
  return true;
}
