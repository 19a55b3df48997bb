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

/* 40 bytes a source (it was 56): the time as a 32-bit tick from the
 * table's epoch, and the vote as an IP alone, of the source's family
 * (votes of another family are refused, and votes compare by IP). */
typedef struct mdht_extaddr_src {
  uint32_t at;      /* when it voted: ms since `epoch`, 0 = free slot */
  uint8_t key[17];  /* family, then the source's /24, /64 or whole IP */
  uint8_t vote[16]; /* the IP it says we have (family key[0]) */
} mdht_extaddr_src;

typedef struct mdht_extaddr {
  mdht_extaddr_src src[MDHT_EXTADDR_SOURCES];
  /* Tick 0 of `at`. Moved forward when a tick would not fit in 32 bits;
   * the votes then older than 2^31 ms, long past MDHT_EXTADDR_TTL_MS,
   * read as that old, which changes no outcome. */
  mdht_time epoch;
  mdht_addr current; /* valid when `has` */
  bool has;
} mdht_extaddr;

void mdht_extaddr_init(mdht_extaddr *x);

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
