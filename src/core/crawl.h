/*
 * The BEP 51 crawler: walks the keyspace with sample_infohashes and
 * reports every info-hash it has not reported before.
 *
 * Sans-I/O and independent of the node, like the lookup engine: it never
 * encodes KRPC and knows nothing of transactions. The owner
 *   - creates a crawl and adds seed nodes (its routing table);
 *   - sends the queries the crawl asks for through the `send` callback
 *     (which names each query by a slot);
 *   - reports each answer with mdht_crawl_on_response() (samples, interval
 *     and the nodes already parsed) and each failure (timeout, error
 *     reply: 204 means "no BEP 51 here") with mdht_crawl_on_failure();
 *   - calls mdht_crawl_tick() at mdht_crawl_next_deadline();
 *   - finishes the crawl once mdht_crawl_ended() says so: the crawl never
 *     calls back to say it ended, so that the owner frees it outside of
 *     any crawl call.
 *
 * The walk:
 *   - Candidates are asked in the order they were learnt (breadth first):
 *     the seeds, then the nodes each answer names (its first K of our
 *     family, like a lookup: a BEP 5 reply carries K, a longer list is
 *     forged; martian addresses and our own id are skipped).
 *   - Targets alternate between the asked node's own id (its answer then
 *     names its neighbourhood, which far nodes may not know) and a random
 *     id in the least known region of the keyspace (the id prefix, at a
 *     level where each region should hold about two candidates, with the
 *     fewest candidates so far): random targets alone missed whole
 *     clusters (crawl.c). BEP 51: the target steers `nodes`, never the
 *     samples.
 *   - One host, one candidate (docs/SECURITY.md, as in lookups): a node is
 *     skipped when a candidate has its IP (unless allow_same_ip; then its
 *     IP and port) or, for a public address, its /24 (IPv4) or /64 (IPv6)
 *     (unless allow_same_prefix). One machine, or one reply naming
 *     hundreds of ports of one IP, costs one query per interval.
 *   - In flight: at most `alpha` queries younger than the soft timeout,
 *     and at most MDHT_CRAWL_MAX_INFLIGHT in all (slow ones included).
 *   - Interval (BEP 51): a node is asked again only once the interval it
 *     gave has passed (at least MDHT_CRAWL_MIN_INTERVAL_MS; 6 hours, the
 *     BEP's maximum and libtorrent's default, when it gave none), at most
 *     MDHT_CRAWL_REVISITS times, and only if that falls before the crawl's
 *     deadline.
 *   - A node that answers error 204, or without a `samples` key (a node
 *     that treats unknown methods as find_node), is counted as
 *     unsupported and not asked again; the nodes it names are used.
 *
 * The crawl ends (mdht_crawl_ended) when `max` distinct info-hashes have
 * been reported (exactly `max`: the rest of that reply is not reported),
 * at its deadline, or when nothing is left to do before the deadline: no
 * candidate unasked, nothing in flight, no revisit due in time.
 *
 * Memory, bounded and allocated at creation or growing to a bound:
 * MDHT_CRAWL_MAX_NODES candidates (asked or not; past that, new nodes are
 * dropped and counted) with a host index twice that size, and a set of
 * the info-hashes seen that doubles up to 2 x the limit of distinct
 * info-hashes (`max`, or MDHT_CRAWL_MAX_SEEN if `max` is 0 or larger): a
 * crawl reports at most MDHT_CRAWL_MAX_SEEN info-hashes (1.3 MB of ids,
 * 2.6 MB of table); run another for more. Both tables hash with a secret
 * key (hash.h): the keys are chosen by remote nodes.
 */
#ifndef MDHT_CRAWL_H
#define MDHT_CRAWL_H

#include "mdht.h"

#define MDHT_CRAWL_MAX_NODES 4096
#define MDHT_CRAWL_MAX_SEEN 65536
#define MDHT_CRAWL_MAX_INFLIGHT 32
#define MDHT_CRAWL_REVISITS 2
#define MDHT_CRAWL_MIN_INTERVAL_MS ((mdht_time)60 * 1000)
#define MDHT_CRAWL_DEFAULT_INTERVAL_S 21600

typedef struct mdht_crawl mdht_crawl;

typedef struct mdht_crawl_cbs {
  /* Sends sample_infohashes for `target` to (id, addr); `slot` names the
   * query in the answer. Returns 0, or < 0 if it could not be sent (the
   * node counts as failed). */
  int (*send)(void *user, uint32_t slot, const mdht_id *target,
              const mdht_id *id, const mdht_addr *addr, mdht_time now);
  /* A new info-hash, from the node at `from`. Must not call into the
   * crawl. */
  void (*found)(void *user, const mdht_id *ih, const mdht_addr *from);
  void (*random)(void *user, void *buf, size_t len);
  void *user;
} mdht_crawl_cbs;

typedef struct mdht_crawl_params {
  uint32_t max;           /* distinct info-hashes to stop at, 0 = none */
  mdht_time deadline;     /* absolute: the crawl ends here */
  uint32_t alpha;         /* fresh queries in flight */
  uint32_t k;             /* nodes taken from one answer */
  mdht_time soft_timeout; /* a query older than this stops counting */
  bool allow_same_ip;     /* see "One host, one candidate" */
  bool allow_same_prefix;
  uint8_t family;     /* the nodes we can reach */
  mdht_id self;       /* never a candidate */
  uint64_t hash_seed; /* secret key of the tables */
} mdht_crawl_params;

typedef enum mdht_crawl_end {
  MDHT_CRAWL_RUNNING,
  MDHT_CRAWL_END_MAX,      /* `max` (or MDHT_CRAWL_MAX_SEEN) reported */
  MDHT_CRAWL_END_DEADLINE, /* the deadline passed */
  MDHT_CRAWL_END_EXHAUSTED /* nobody left to ask before the deadline */
} mdht_crawl_end;

typedef struct mdht_crawl_stats {
  uint32_t queries;     /* sent, revisits included */
  uint32_t answered;    /* answers with samples */
  uint32_t unsupported; /* error 204, or an answer without samples */
  uint32_t failed;      /* timeouts, other errors, not sent */
  uint32_t revisits;    /* queries to a node asked before */
  uint32_t dropped;     /* nodes not kept: the candidate table was full */
  uint32_t nodes;       /* candidates kept */
  uint64_t samples;     /* info-hashes received, repeats included */
  uint32_t distinct;    /* info-hashes reported */
} mdht_crawl_stats;

/* One node of an answer. */
typedef struct mdht_crawl_node {
  mdht_id id;
  mdht_addr addr;
} mdht_crawl_node;

/* One sample_infohashes answer. `samples` points to nsamples x 20 bytes,
 * or is NULL when the answer had no samples key. interval: seconds, -1 if
 * absent. */
typedef struct mdht_crawl_reply {
  mdht_id id;
  const uint8_t *samples;
  size_t nsamples;
  int64_t interval;
  const mdht_crawl_node *nodes;
  size_t nnodes;
} mdht_crawl_reply;

/* Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL (alpha or k 0, no random or send
 * callback). */
int mdht_crawl_new(mdht_crawl **out, const mdht_crawl_params *p,
                   const mdht_crawl_cbs *cb);
void mdht_crawl_del(mdht_crawl *c);

/* Adds a seed (or any node heard of): 0, MDHT_ERR_EXISTS (its host is a
 * candidate already), MDHT_ERR_ADDR (martian, other family, our id),
 * MDHT_ERR_FULL. Call mdht_crawl_tick() after the seeds to start. */
int mdht_crawl_add(mdht_crawl *c, const mdht_id *id, const mdht_addr *addr);

/* The answer to query `slot` from `from` (ignored unless it is the query
 * in flight to that address). Reports new info-hashes, learns nodes and
 * sends more queries. */
void mdht_crawl_on_response(mdht_crawl *c, uint32_t slot, const mdht_addr *from,
                            const mdht_crawl_reply *r, mdht_time now);
/* Query `slot` failed: `code` is the KRPC error code, or 0 for a timeout
 * or a bad answer. */
void mdht_crawl_on_failure(mdht_crawl *c, uint32_t slot, const mdht_addr *from,
                           int code, mdht_time now);

/* Sends what may be sent, schedules revisits, checks the deadline. */
void mdht_crawl_tick(mdht_crawl *c, mdht_time now);
/* When mdht_crawl_tick() is wanted next (UINT64_MAX: never). */
mdht_time mdht_crawl_next_deadline(const mdht_crawl *c);

mdht_crawl_end mdht_crawl_ended(const mdht_crawl *c);
const mdht_crawl_stats *mdht_crawl_get_stats(const mdht_crawl *c);

#endif
