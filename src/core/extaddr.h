/*
 * The external address vote (BEP 42): every response to one of our
 * queries may carry `ip`, our address as the responder sees it. The node
 * believes an address only when several independent responders agree, so
 * that one liar (or one host with many addresses) cannot move it, and
 * the node's BEP 42 id, derived from that address, does not flap.
 *
 * Rule:
 *   - one vote per source: a source is a /24 (IPv4) or a /64 (IPv6), so
 *     that one host or one subnet counts once however many addresses it
 *     answers from; a private source (loopback, LAN) counts per address,
 *     since on a LAN every peer shares one /24. A source's newer vote
 *     replaces its older one.
 *   - a private source cannot vote for a public address (it cannot see
 *     one), and votes of the other family or for a martian address are
 *     ignored.
 *   - votes age out after MDHT_EXTADDR_TTL_MS; the table holds
 *     MDHT_EXTADDR_SOURCES sources and forgets the oldest vote when full.
 *   - with no address yet, address A is adopted once at least
 *     MDHT_EXTADDR_MIN_VOTES sources vote for it and they are a strict
 *     majority of the live votes;
 *   - the adopted address C changes to A only when A has the same minimum,
 *     a strict majority, and at least twice the votes C still has
 *     (hysteresis: a minority that disagrees, or an even split, never
 *     moves it; once C's voters have re-voted or aged out, A wins).
 * Addresses are compared by IP; the port of the vote that decided is kept
 * for reporting.
 *
 * Sans-I/O and bounded: one fixed array, one pass over it per vote.
 */
#ifndef MDHT_EXTADDR_H
#define MDHT_EXTADDR_H

#include "mdht.h"

#define MDHT_EXTADDR_SOURCES 64
#define MDHT_EXTADDR_MIN_VOTES 3
#define MDHT_EXTADDR_TTL_MS (30 * 60 * 1000)

/* A table holds the votes of one family (a node's socket has one; the
 * BEP 32 pair has a table per node). A source's record is its time, a
 * 32-bit tick from the table's epoch, then its key and its vote, each an
 * IP of the family: 12 bytes for IPv4, 36 for IPv6 (it was 40 for either,
 * 56 before that). The records are allocated with the first vote: 768
 * bytes for the 64 sources of an IPv4 table, held inline they cost every
 * node 2.5 KB (a third of a simulated node's struct). The key is the
 * source's /24 or /64 with the rest zero, or its whole IP if private: the
 * two never meet, since no private address is public. */
typedef struct mdht_extaddr {
  uint8_t *rec;   /* MDHT_EXTADDR_SOURCES records of rec_len bytes, or NULL
                     before the first vote */
  uint8_t family; /* MDHT_AF_INET or MDHT_AF_INET6 */
  uint8_t iplen;  /* 4 or 16 */
  uint8_t rec_len;
  /* Tick 0 of the records' times. Moved forward when a tick would not
   * fit in 32 bits; the votes then older than 2^31 ms, long past
   * MDHT_EXTADDR_TTL_MS, read as that old, which changes no outcome. */
  mdht_time epoch;
  mdht_addr current; /* valid when `has` */
  bool has;
} mdht_extaddr;

/* An empty table for votes of `family` (MDHT_AF_INET or MDHT_AF_INET6);
 * votes of the other family are refused. */
void mdht_extaddr_init(mdht_extaddr *x, uint8_t family);
/* Frees the records; the table is empty (of the same family) after. */
void mdht_extaddr_free(mdht_extaddr *x);

/* `source` (the responder) says we are `claimed`. Returns true when this
 * vote changed the adopted address (the first adoption included). */
bool mdht_extaddr_vote(mdht_extaddr *x, const mdht_addr *source,
                       const mdht_addr *claimed, mdht_time now);

/* The adopted address, or NULL before one is adopted. */
const mdht_addr *mdht_extaddr_get(const mdht_extaddr *x);

/* Live votes for the IP of `a` (for tests and statistics). */
uint32_t mdht_extaddr_votes(const mdht_extaddr *x, const mdht_addr *a,
                            mdht_time now);

#endif
