/*
 * The transaction manager: outstanding queries, their transaction ids and
 * deadlines, and the matching of responses.
 *
 * A transaction id is 6 bytes: a 16-bit slot index (O(1) lookup) and a
 * 32-bit random check, so that an off-path sender cannot guess a valid id
 * for a slot: with 16 bits, a spoofer sending at 1 Mbit/s had a few
 * percent chance to forge the reply to a 5 s query; with 32, it needs
 * 2^31 tries on average per query. BEP 5 lets the querier choose the
 * length and every implementation echoes it. A response matches only if
 * id and responder address (IP and port) both match. Every query has the same
 * hard timeout, so the outstanding queries form a FIFO by deadline and the next
 * deadline is the head's.
 *
 * Memory follows the queries in flight, not the bound: the slot array
 * starts at MDHT_TXN_MIN_SLOTS, doubles when every slot is taken (up to
 * the bound, `max`), and halves when at most a quarter of it is in use
 * and its upper half is empty, so an idle node holds a few hundred bytes
 * whatever max_txns says. A doubling keeps every slot index (and so every
 * transaction id) valid. Steady traffic neither grows nor shrinks it.
 */
#ifndef MDHT_TXN_H
#define MDHT_TXN_H

#include "mdht.h"

#define MDHT_TID_LEN 6

/* Who is waiting for the answer: the node dispatches on `kind`. */
typedef struct mdht_txn_owner {
  uint8_t kind;    /* node-defined: lookup, maintenance ping, ... */
  uint32_t cookie; /* node-defined: lookup id ... */
  uint32_t cookie2;
} mdht_txn_owner;

typedef struct mdht_txn {
  mdht_addr addr;
  mdht_id id; /* the id we expect to answer, if known */
  bool has_id;
  mdht_method method;
  mdht_time sent;
  mdht_time deadline;
  mdht_txn_owner owner;
  /* internal */
  uint32_t check;
  uint16_t next_, prev_; /* FIFO links, 0xffff = none */
  bool used_;
} mdht_txn;

/* Slots allocated at first (and kept at least, once shrunk). */
#define MDHT_TXN_MIN_SLOTS 4

typedef struct mdht_txn_mgr {
  mdht_txn *slots;
  uint32_t max; /* bound: outstanding queries at most */
  uint32_t cap; /* slots allocated: a power of two times the minimum,
                   or max */
  uint32_t n;
  uint16_t head_, tail_; /* FIFO by deadline */
  uint16_t *free_;       /* stack of free slot indexes below cap */
  uint32_t nfree_;
  uint32_t nhigh_; /* open transactions in slots cap/2 .. cap-1 */
  mdht_time timeout;
} mdht_txn_mgr;

/* max <= 65535: at most that many transactions open at once. Allocates
 * only the first few slots. Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL. */
int mdht_txn_init(mdht_txn_mgr *tm, uint32_t max, mdht_time timeout);
void mdht_txn_free(mdht_txn_mgr *tm);

/* Opens a transaction; writes its id to `tid`. `check` is 32 random bits
 * from the caller. Returns the slot (>= 0), MDHT_ERR_FULL (max open) or
 * MDHT_ERR_NOMEM (the table could not grow). */
int mdht_txn_open(mdht_txn_mgr *tm, const mdht_addr *addr, const mdht_id *id,
                  mdht_method method, mdht_txn_owner owner, uint32_t check,
                  mdht_time now, uint8_t tid[MDHT_TID_LEN]);

/* Matches a response or error from `from` carrying transaction id `tid`.
 * On a match, copies the transaction to `*out`, closes it, and returns 0;
 * otherwise MDHT_ERR_NOTFOUND (late, unknown or spoofed). */
int mdht_txn_match(mdht_txn_mgr *tm, const uint8_t *tid, size_t tidlen,
                   const mdht_addr *from, mdht_txn *out);

/* Pops one transaction whose deadline is <= now into *out: returns 0, or
 * MDHT_ERR_AGAIN when none is due. Call in a loop. */
int mdht_txn_expire(mdht_txn_mgr *tm, mdht_time now, mdht_txn *out);

/* Deadline of the oldest outstanding query, or UINT64_MAX. */
mdht_time mdht_txn_next_deadline(const mdht_txn_mgr *tm);

#endif
