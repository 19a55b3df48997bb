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

/* Resizes the slot array to `ncap` slots and rebuilds the free stack.
 * Growing keeps every index; shrinking only drops slots that are free
 * (the caller checks nhigh_). New slots are zero, i.e. free, and handed
 * out lowest first. */
static int resize(mdht_txn_mgr *tm, uint32_t ncap) {
  bool grow = ncap > tm->cap;
  if (!grow) {
    /* Drop the free slots past the new end first: the stack may hold
     * more entries than the smaller array has room for. */
    uint32_t k = 0;
    for (uint32_t j = 0; j < tm->nfree_; j++)
      if (tm->free_[j] < ncap) tm->free_[k++] = tm->free_[j];
    tm->nfree_ = k;
  }
  /* A shrinking realloc that fails leaves the larger block: keep it. A
   * growing one that fails leaves the table as it was (a larger `slots`
   * block is harmless). */
  mdht_txn *ns = realloc(tm->slots, ncap * sizeof *ns);
  if (!ns && grow) return MDHT_ERR_NOMEM;
  if (ns) tm->slots = ns;
  uint16_t *nf = realloc(tm->free_, ncap * sizeof *nf);
  if (!nf && grow) return MDHT_ERR_NOMEM;
  if (nf) tm->free_ = nf;
  ns = tm->slots;
  if (grow) {
    /* The new slots go on top, the lowest index topmost. */
    for (uint32_t i = ncap; i-- > tm->cap;) {
      ns[i] = (mdht_txn){.next_ = NONE, .prev_ = NONE};
      tm->free_[tm->nfree_++] = (uint16_t)i;
    }
  }
  tm->cap = ncap;
  /* Open transactions in the new upper half. */
  tm->nhigh_ = 0;
  for (uint32_t i = ncap / 2; i < ncap; i++)
    tm->nhigh_ += ns[i].used_;
  return 0;
}

/* Gives memory back once the table is mostly idle (txn.h). */
static void maybe_shrink(mdht_txn_mgr *tm) {
  while (tm->cap > MDHT_TXN_MIN_SLOTS && tm->n <= tm->cap / 4 &&
         tm->nhigh_ == 0) {
    uint32_t half = tm->cap / 2;
    if (half < MDHT_TXN_MIN_SLOTS) half = MDHT_TXN_MIN_SLOTS;
    if (resize(tm, half) != 0) return;
  }
}

/* Closes slot i; its check stays, so that the next open of this slot can
 * avoid reusing it. */
static void close_slot(mdht_txn_mgr *tm, uint16_t i, mdht_txn *out) {
  fifo_unlink(tm, i);
  if (out) *out = tm->slots[i];
  tm->slots[i].used_ = false;
  tm->free_[tm->nfree_++] = i;
  tm->n--;
  if (i >= tm->cap / 2) tm->nhigh_--;
  maybe_shrink(tm);
}

int mdht_txn_init(mdht_txn_mgr *tm, uint32_t max, mdht_time timeout) {
  if (!tm) return MDHT_ERR_INVAL;
  memset(tm, 0, sizeof *tm);
  tm->head_ = tm->tail_ = NONE;
  /* Index 0xffff is the "none" link, hence at most 65535 slots. */
  if (max == 0 || max > NONE) return MDHT_ERR_INVAL;
  tm->max = max;
  tm->timeout = timeout;
  uint32_t first = max < MDHT_TXN_MIN_SLOTS ? max : MDHT_TXN_MIN_SLOTS;
  if (resize(tm, first) != 0) {
    mdht_txn_free(tm);
    return MDHT_ERR_NOMEM;
  }
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
  if (!tm || !addr || !tid || !tm->slots) return MDHT_ERR_INVAL;
  if (tm->n >= tm->max) return MDHT_ERR_FULL;
  if (tm->nfree_ == 0) {
    uint32_t ncap = tm->cap * 2 > tm->max ? tm->max : tm->cap * 2;
    int rc = resize(tm, ncap);
    if (rc != 0) return rc;
  }
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
  if (i >= tm->cap / 2) tm->nhigh_++;
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
