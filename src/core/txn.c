#include "txn.h"

#include <stdlib.h>
#include <string.h>

#define NONE 0xffffu

static void fifo_unlink(mdht_txn_mgr *tm, uint16_t i) {
  mdht_txn *t = &tm->slots[i];
  if (t->prev_ != NONE)
    tm->slots[t->prev_].next_ = t->next_;
  else
    tm->head_ = t->next_;
  if (t->next_ != NONE)
    tm->slots[t->next_].prev_ = t->prev_;
  else
    tm->tail_ = t->prev_;
  t->next_ = t->prev_ = NONE;
}

static void fifo_append(mdht_txn_mgr *tm, uint16_t i) {
  mdht_txn *t = &tm->slots[i];
  t->prev_ = tm->tail_;
  t->next_ = NONE;
  if (tm->tail_ != NONE)
    tm->slots[tm->tail_].next_ = i;
  else
    tm->head_ = i;
  tm->tail_ = i;
}

/* Closes slot i; its check stays, so that the next open of this slot can
 * avoid reusing it. */
static void close_slot(mdht_txn_mgr *tm, uint16_t i, mdht_txn *out) {
  fifo_unlink(tm, i);
  if (out) *out = tm->slots[i];
  tm->slots[i].used_ = false;
  tm->free_[tm->nfree_++] = i;
  tm->n--;
}

int mdht_txn_init(mdht_txn_mgr *tm, uint32_t cap, mdht_time timeout) {
  if (!tm) return MDHT_ERR_INVAL;
  memset(tm, 0, sizeof *tm);
  /* Index 0xffff is the "none" link, hence at most 65535 slots. */
  if (cap == 0 || cap > NONE) return MDHT_ERR_INVAL;
  tm->slots = calloc(cap, sizeof *tm->slots);
  tm->free_ = malloc(cap * sizeof *tm->free_);
  if (!tm->slots || !tm->free_) {
    free(tm->slots);
    free(tm->free_);
    memset(tm, 0, sizeof *tm);
    return MDHT_ERR_NOMEM;
  }
  tm->cap = cap;
  tm->timeout = timeout;
  tm->head_ = tm->tail_ = NONE;
  /* Pushed in reverse so that slot 0 is handed out first. */
  for (uint32_t i = 0; i < cap; i++) {
    tm->slots[i].next_ = tm->slots[i].prev_ = NONE;
    tm->free_[i] = (uint16_t)(cap - 1 - i);
  }
  tm->nfree_ = cap;
  return 0;
}

void mdht_txn_free(mdht_txn_mgr *tm) {
  if (!tm) return;
  free(tm->slots);
  free(tm->free_);
  memset(tm, 0, sizeof *tm);
  tm->head_ = tm->tail_ = NONE;
}

int mdht_txn_open(mdht_txn_mgr *tm, const mdht_addr *addr, const mdht_id *id,
                  mdht_method method, mdht_txn_owner owner, uint32_t check,
                  mdht_time now, uint8_t tid[MDHT_TID_LEN]) {
  if (!tm || !addr || !tid) return MDHT_ERR_INVAL;
  if (tm->nfree_ == 0) return MDHT_ERR_FULL;
  uint16_t i = tm->free_[--tm->nfree_];
  mdht_txn *t = &tm->slots[i];
  /* The random check could repeat the slot's previous one (1 in 2^32);
   * then a late answer to the previous query would match this one. */
  if (check == t->check) check ^= 1;
  *t = (mdht_txn){0};
  t->addr = *addr;
  if (id) {
    t->id = *id;
    t->has_id = true;
  }
  t->method = method;
  t->sent = now;
  /* Constant timeout: appending keeps the FIFO sorted by deadline. */
  t->deadline = now + tm->timeout;
  t->owner = owner;
  t->check = check;
  t->used_ = true;
  fifo_append(tm, i);
  tm->n++;
  tid[0] = (uint8_t)(i >> 8);
  tid[1] = (uint8_t)i;
  for (int b = 0; b < 4; b++)
    tid[2 + b] = (uint8_t)(check >> (24 - 8 * b));
  return i;
}

int mdht_txn_match(mdht_txn_mgr *tm, const uint8_t *tid, size_t tidlen,
                   const mdht_addr *from, mdht_txn *out) {
  if (!tm || !tid || !from || tidlen != MDHT_TID_LEN) return MDHT_ERR_NOTFOUND;
  uint32_t i = (uint32_t)tid[0] << 8 | tid[1];
  uint32_t check = (uint32_t)tid[2] << 24 | (uint32_t)tid[3] << 16 |
                   (uint32_t)tid[4] << 8 | tid[5];
  if (i >= tm->cap) return MDHT_ERR_NOTFOUND;
  mdht_txn *t = &tm->slots[i];
  /* A mismatch leaves the transaction open: a spoofed answer must not
   * cancel the query that the real node may still answer. */
  if (!t->used_ || t->check != check || !mdht_addr_eq(&t->addr, from))
    return MDHT_ERR_NOTFOUND;
  close_slot(tm, (uint16_t)i, out);
  return 0;
}

int mdht_txn_expire(mdht_txn_mgr *tm, mdht_time now, mdht_txn *out) {
  if (!tm || tm->head_ == NONE || tm->slots[tm->head_].deadline > now)
    return MDHT_ERR_AGAIN;
  close_slot(tm, tm->head_, out);
  return 0;
}

mdht_time mdht_txn_next_deadline(const mdht_txn_mgr *tm) {
  if (!tm || tm->head_ == NONE) return UINT64_MAX;
  return tm->slots[tm->head_].deadline;
}
