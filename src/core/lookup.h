/*
 * The iterative lookup engine: node lookups (find_node), peer lookups
 * (get_peers, whose K closest responders and their tokens feed
 * announce_peer) and item lookups (BEP 44 get, whose tokens feed put; the
 * owner checks the items), many in flight at once.
 *
 * Sans-I/O and independent of the node: it never encodes KRPC, never
 * touches a socket, and knows nothing of transactions. The owner
 *   - starts a lookup with seeds from its routing table;
 *   - sends the queries the engine asks for through the `send` callback;
 *   - reports each answer (already parsed into nodes, values and token)
 *     with mdht_lookup_on_response(), and each hard timeout, error reply or
 *     unparseable answer with mdht_lookup_on_failure();
 *   - calls mdht_lookups_tick() at mdht_lookups_next_deadline();
 *   - gets the results through the `done` callback.
 * Candidates are matched by address: the engine never queries an address
 * twice within a lookup, so (lookup id, address) names one query.
 *
 * The algorithm (libtorrent's traversal_algorithm, BEP 5, except for the
 * treatment of slow nodes at the end, below):
 *   - Candidates are kept sorted by XOR distance to the target, at most
 *     MDHT_LOOKUP_MAX_CANDS; when full, a new candidate evicts the farthest
 *     never-queried one if it is closer, else it is dropped. Queried
 *     candidates are never evicted, so "never query the same node twice"
 *     holds for the whole lookup: a node is skipped when its id or its
 *     address is already a candidate.
 *   - One host, one candidate: a node is also skipped when a candidate
 *     has its IP (unless cfg->allow_same_ip) or, for a public address, its
 *     /24 (IPv4) or /64 (IPv6) (unless cfg->allow_same_prefix; as
 *     libtorrent's restrict_search_ips). Seeds obey the same rules. So
 *     one machine, or one reply naming hundreds of ports of one IP, costs
 *     at most one query per lookup.
 *   - From one reply only the first K (cfg->k) nodes of each family are
 *     looked at: BEP 5 replies carry K, a longer list is forged.
 *   - The "window" is the sorted candidates up to and including the K-th
 *     (cfg->k) one that answered (all of them while fewer than K have
 *     answered). Queries go to the closest unqueried candidates of the
 *     window, closest first. The closest unqueried candidate c is asked
 *     while fewer than cfg->alpha queries younger than the soft timeout
 *     ("fresh") are in flight to candidates closer than c; K of them
 *     (cfg->k, if more than alpha) in the end game, when a candidate
 *     closer than c has already answered (no unqueried node is closer than
 *     the closest responder: the lookup has stopped getting closer, and
 *     all that is left is to ask the rest of the K closest).
 *     Why closer than c, not alpha in all (libtorrent, BEP 5): an answer
 *     that names nodes closer than every query in flight freed one slot
 *     only, so the chase towards the target went one query at a time while
 *     the other slots waited on far nodes that had been overtaken. Why K
 *     in the end game: with alpha slots the last K closest were asked a
 *     few at a time, each waiting for an answer (or a dead node's soft
 *     timeout) to free a slot. Measured with `mdht sim` (5 % loss, 10 %
 *     dead entries, 50 ms x U(0.5,1.5) one-way latency + 0-20 ms jitter,
 *     alpha 5, K 8), time to first peer / completion (median, x the median
 *     RTT) and datagrams per lookup went at 20,000 nodes from 2.88 / 5.08 /
 *     42.5 (alpha in all) to 2.61 / 4.26 / 56.1 (seed 2: 2.84 / 5.12 /
 *     42.7 to 2.63 / 4.39 / 55.5), at 100,000 from 3.45 / 5.77 / 47.8 to
 *     3.22 / 4.87 / 64.8 (p99 completion 8.32 to 7.06; found 100 % in
 *     all). At 20,000 nodes, ending at the soft timeout rather than the end
 *     wait (lookup.c, end_wait()): both rules 2.56 / 4.06 / 53.5, the end
 *     game alone 2.85 / 4.66 / 45.4, the closer-than-c rule alone 2.54 /
 *     4.45 / 50.9. The cost is the datagrams: a third more per lookup.
 *     A lookup whose alpha the owner set (mdht_lookup_set_alpha) keeps
 *     the plain bound: at most its alpha fresh queries in all.
 *   - A query in flight longer than cfg->query_soft_timeout_ms makes its
 *     node "slow" (MDHT_LC_SLOW): it stops counting against alpha, so one
 *     more query may start, and it holds the lookup open once K nodes
 *     have answered only until its end wait (see Termination). Its answer
 *     still counts if it arrives before the lookup ends (the node then
 *     joins the window, and the closer nodes it names are asked); after
 *     the end it is ignored.
 *     Bound: when a candidate is asked, fewer than alpha (K in the end
 *     game) fresh queries are in flight to closer candidates; more may be
 *     in flight in all, fresh or older, and at most MDHT_LOOKUP_MAX_QUERIES
 *     are sent per lookup.
 *   - Termination: the lookup ends when the window holds no unqueried
 *     candidate and no query younger than the soft timeout, and
 *       - either K candidates have answered: the K closest responders
 *         have no unqueried or fresh candidate among or before them, and
 *         no slow one whose query went out less than the "end wait" (1.25
 *         soft timeouts) ago. A slow node closer than the K-th responder is
 *         waited for that long only: the lookup ends at the latest one end
 *         wait after the last query in the window went out, never at a
 *         slow node's hard timeout, and the result is the K closest nodes
 *         that answered by then (a closer node slower than that is missing
 *         from it).
 *         Why: on a 50-node loopback network every lookup that had queried
 *         one dead node took the full hard timeout to end although it had
 *         K answers; past the soft timeout most nodes are gone, and waiting
 *         for each would make every lookup as slow as its worst node.
 *         (libtorrent differs here: a request past its short timeout still
 *         holds its traversal until the full timeout.)
 *         Why 1.25 soft timeouts and not 1: see end_wait() in lookup.c (the
 *         end game sends the last of the K closest at once; they turn slow
 *         together, and a live but slow one was cut off too often).
 *       - or fewer than K have answered and no query is in flight at all,
 *         slow ones included: with fewer than K answers the slow nodes are
 *         all that can still add to the result, so they are awaited until
 *         they answer or fail (at the latest at the hard timeout). Ending
 *         at the soft timeout instead would fail every lookup whose nodes
 *         are all slow, e.g. one seeded with a single far router, or every
 *         lookup when the soft timeout is 0.
 *     Queries still in flight to nodes farther than the K-th responder
 *     never hold it back: they could only report nodes that the K closest
 *     responders, which are closer to the target, failed to know.
 *   - Safety: at most MDHT_LOOKUP_MAX_QUERIES queries per lookup; once
 *     spent, unqueried candidates no longer hold the lookup. The engine
 *     also fails a query on its own after cfg->query_timeout_ms, so a
 *     report the owner loses cannot stall a lookup forever (a report that
 *     arrives after that is ignored).
 *
 * Memory: a lookup's slot is allocated when it starts and freed when it
 * ends, so an idle node holds none and a busy one as many as it runs. A
 * slot is a small header, its candidates (48 bytes each, room for
 * MDHT_LOOKUP_CANDS_INIT at first, doubled when full up to
 * MDHT_LOOKUP_MAX_CANDS: at most two reallocations per lookup, none per
 * response beyond that), their tokens (33 bytes each, get_peers and get
 * only) and the peers (5 KB, get_peers only). A find_node lookup holds
 * some 1.6 to 6 KB, not the 16 KB every lookup held before.
 *
 * Events (all with id = target, method = the lookup kind, u.lookup):
 *   LOOKUP_STARTED  when started; counters zero.
 *   LOOKUP_PROGRESS after each accepted response; addr = the responder;
 *                   round, queried, answered, failed, peers, closest_bits
 *                   (leading bits the closest responder shares with the
 *                   target).
 *   LOOKUP_DONE     when it ends or is cancelled (ok = false then); same
 *                   counters.
 *
 * Callbacks must not call back into the lookup set, except that `done` may
 * start or cancel other lookups.
 */
#ifndef MDHT_LOOKUP_H
#define MDHT_LOOKUP_H

#include "mdht.h"
#include "bus.h"

/* Candidates kept per lookup (sorted by distance). */
#define MDHT_LOOKUP_MAX_CANDS 128
/* Queries per lookup; below MAX_CANDS so that room for new candidates
 * always remains. A lookup in the public DHT takes some 20 to 60. */
#define MDHT_LOOKUP_MAX_QUERIES 96
/* Distinct peers collected per get_peers lookup; more are ignored. */
#define MDHT_LOOKUP_MAX_PEERS 256
/* Longest token stored. libtorrent's are 4 bytes, jech/Transmission's and
 * ours 8, WebTorrent's and anacrolix's 20; a longer token is not kept (the
 * responder still counts, but cannot be announced to). */
#define MDHT_LOOKUP_TOKEN_MAX 32
/* Upper bound of cfg->k for lookups (the routing table's is lower). */
#define MDHT_LOOKUP_MAX_K 32

/* A node: a seed, or one learned from a response. */
typedef struct mdht_lookup_node {
  mdht_id id;
  mdht_addr addr;
} mdht_lookup_node;

/* One of the K closest responders. */
typedef struct mdht_lookup_result {
  mdht_id id;
  mdht_addr addr;
  uint8_t token_len; /* 0: no (usable) token */
  uint8_t token[MDHT_LOOKUP_TOKEN_MAX];
} mdht_lookup_result;

/* Given to `done`; pointers are valid only during the callback. */
typedef struct mdht_lookup_results {
  uint32_t lookup_id;
  mdht_method kind; /* MDHT_M_FIND_NODE or MDHT_M_GET_PEERS */
  mdht_id target;
  bool ok;                         /* at least one node answered */
  const mdht_lookup_result *nodes; /* K closest responders, closest first
                                      (those that answered before the end) */
  uint32_t n_nodes;
  const mdht_addr *peers; /* get_peers: distinct peers, in arrival order */
  uint32_t n_peers;
  uint32_t rounds;    /* deepest hop that answered: a seed is 1, a node
                         learned from a depth-d answer is d+1 */
  uint32_t queries;   /* sent (including those whose send failed) */
  uint32_t responses; /* accepted answers, slow ones (past the soft
                         timeout, before the end) included */
  uint32_t failures;  /* failed sends, failure reports, own timeouts,
                         rejected answers */
  mdht_time elapsed;  /* ms from start to end */
} mdht_lookup_results;

typedef struct mdht_lookup_cbs {
  /* Sends `method` (find_node or get_peers, for `target`) to node_id at
   * addr. Returns 0, or a negative error: the candidate then counts as
   * failed. Required. */
  int (*send)(void *user, uint32_t lookup_id, mdht_method method,
              const mdht_id *target, const mdht_id *node_id,
              const mdht_addr *addr, mdht_time now);
  /* A lookup ended (not called for a cancelled one, nor from inside
   * mdht_lookup_start). Optional. */
  void (*done)(void *user, const mdht_lookup_results *res);
  void *user;
} mdht_lookup_cbs;

/* Candidate states. */
enum {
  MDHT_LC_NEW,      /* not queried */
  MDHT_LC_INFLIGHT, /* queried, younger than the soft timeout */
  MDHT_LC_SLOW,     /* queried, older than the soft timeout: still
                       accepted, holds the lookup only while fewer than K
                       have answered */
  MDHT_LC_ANSWERED,
  MDHT_LC_FAILED
};

typedef struct mdht_lookup_cand {
  mdht_id id;
  mdht_addr addr;
  uint32_t sent; /* ms after the lookup started (mdht_lookup.started) */
  uint16_t depth;
  uint8_t state; /* MDHT_LC_* */
  uint8_t pad_;
} mdht_lookup_cand;

/* The token a candidate answered with (get_peers and get lookups only:
 * a find_node answer carries none we use). */
typedef struct mdht_lookup_token {
  uint8_t len; /* 0: none (or too long to keep) */
  uint8_t b[MDHT_LOOKUP_TOKEN_MAX];
} mdht_lookup_token;

/* Candidates room a lookup starts with; it doubles when full, up to
 * MDHT_LOOKUP_MAX_CANDS. A find_node lookup in a 20,000-node simulation
 * ends with 16 to 63 candidates in nine cases out of ten. */
#define MDHT_LOOKUP_CANDS_INIT 32

/* Internal; visible so that tests and the node can look inside. */
typedef struct mdht_lookup {
  uint32_t id;    /* never 0 while the slot exists */
  bool finishing; /* inside the done callback */
  bool end_due;   /* must end at the next tick (see mdht_lookup_start) */
  bool capped;    /* mdht_lookup_set_alpha was called: alpha bounds the
                     fresh queries in all (see "The window") */
  mdht_method kind;
  mdht_id target;
  mdht_time started;
  mdht_time deadline;  /* next timer of this lookup, UINT64_MAX none */
  uint32_t alpha;      /* fresh queries in flight to closer candidates
                          at most (see "The window"): cfg.alpha, or as
                          set (mdht_lookup_set_alpha: then in all) */
  uint32_t n_inflight; /* MDHT_LC_INFLIGHT candidates */
  uint32_t n_slow;     /* MDHT_LC_SLOW candidates */
  uint32_t queries, responses, failures, rounds;
  uint32_t n_cands;
  uint32_t cap; /* room in cands (and tokens) */
  uint32_t n_peers;
  /* Allocated apart from the slot, each only for the kinds that use it:
   * the node's own find_node lookups (bootstrap, fill, refresh) are most
   * lookups, and need neither tokens nor peers. */
  mdht_lookup_cand *cands;   /* cap, sorted by distance to the target */
  mdht_lookup_token *tokens; /* cap, parallel to cands; NULL for find_node */
  mdht_addr *peers;          /* MDHT_LOOKUP_MAX_PEERS; get_peers only */
} mdht_lookup;

typedef struct mdht_lookups {
  const mdht_config *cfg; /* borrowed (the node's; a copy cost 144 bytes a
                             node): alpha, k, timeouts, max_lookups,
                             allow_private, allow_same_ip,
                             allow_same_prefix */
  mdht_bus *bus;          /* borrowed, may be NULL */
  mdht_lookup_cbs cb;
  mdht_id self;
  bool has_self;
  mdht_time soft_ms;   /* soft timeout in force: cfg's, or less when the
                          owner measures faster round trips */
  mdht_lookup **slots; /* cap pointers; a slot is allocated when a lookup
                          starts, freed when it ends */
  uint16_t *gens;      /* per slot: bumped per use, so that ids are not
                          reused soon */
  uint32_t cap;        /* room in slots and gens: 4, doubled when more
                          lookups run at once, up to cfg.max_lookups */
  uint32_t n_alloc;    /* slots[n_alloc..] have never been used */
  uint32_t n_active;
} mdht_lookups;

/* `cfg` must outlive `ls`. `self` (may be NULL) is never queried nor
 * returned. Only a table of a
 * few slot pointers is allocated here. Errors: MDHT_ERR_INVAL (k,
 * alpha, max_lookups out of range, no send callback), MDHT_ERR_NOMEM. */
int mdht_lookups_init(mdht_lookups *ls, const mdht_config *cfg, mdht_bus *bus,
                      const mdht_lookup_cbs *cbs, const mdht_id *self);
/* Heap bytes: the slot table and the running lookups. */
size_t mdht_lookups_bytes(const mdht_lookups *ls);
/* Ends every lookup silently (no callback, no event). Idempotent. */
void mdht_lookups_free(mdht_lookups *ls);

/* Sets the soft timeout (clamped to cfg->query_soft_timeout_ms, which is
 * its upper bound). The node sets it from the round trips it measures, so
 * that a lookup on a fast network does not wait a fixed second on every
 * node that will never answer. */
void mdht_lookups_set_soft_timeout(mdht_lookups *ls, mdht_time ms);

/* Starts a lookup of `kind` (MDHT_M_FIND_NODE, MDHT_M_GET_PEERS or
 * MDHT_M_GET) for
 * `target` from `seeds` (martian, private unless cfg->allow_private,
 * self and duplicates are skipped) and sends the first queries. Returns
 * the lookup id (> 0; as int64 so it can carry a uint32 and an error), or
 * MDHT_ERR_INVAL, MDHT_ERR_FULL (max_lookups running), MDHT_ERR_AGAIN (no
 * usable seed: try again once the routing table has nodes). If every first
 * send fails, the lookup ends at the next tick, not inside this call. */
int64_t mdht_lookup_start(mdht_lookups *ls, mdht_method kind,
                          const mdht_id *target, const mdht_lookup_node *seeds,
                          size_t n_seeds, mdht_time now);

/* Reports the answer of node_id at addr to lookup `lookup_id`: the nodes
 * it returned (parsed from nodes / nodes6 by the owner), the peers
 * (values) and the token. If node_id differs from the id the query was
 * sent to, the candidate takes the new id (or the answer is rejected as a
 * failure if another candidate already has it). Returns 0, or
 * MDHT_ERR_NOTFOUND when no such lookup is running or no query to addr is
 * awaited (late, duplicate or unsolicited: ignored). */
int mdht_lookup_on_response(mdht_lookups *ls, uint32_t lookup_id,
                            const mdht_id *node_id, const mdht_addr *addr,
                            const mdht_lookup_node *nodes, size_t n_nodes,
                            const mdht_addr *values, size_t n_values,
                            const uint8_t *token, size_t token_len,
                            mdht_time now);

/* Reports that the query to addr failed: hard timeout, error reply or an
 * unusable answer. Returns 0 or MDHT_ERR_NOTFOUND (as above). */
int mdht_lookup_on_failure(mdht_lookups *ls, uint32_t lookup_id,
                           const mdht_addr *addr, mdht_time now);

/* Ends a lookup without calling `done`; publishes LOOKUP_DONE with ok =
 * false. Later reports for it are ignored. Returns 0 or
 * MDHT_ERR_NOTFOUND. */
int mdht_lookup_cancel(mdht_lookups *ls, uint32_t lookup_id, mdht_time now);

/* Ends a lookup early, with its results so far: it sends no more queries
 * and `done` is called at the next mdht_lookups_tick() (the deadline is
 * due at once). For a BEP 44 get that has found a verified immutable item:
 * nothing closer can improve it. Returns 0 or MDHT_ERR_NOTFOUND. */
int mdht_lookup_stop(mdht_lookups *ls, uint32_t lookup_id);

/* Lowers the queries lookup `lookup_id` keeps in flight to `alpha` (1 up
 * to cfg->alpha; other values are clamped), from its next send on, and
 * from then on bounds them in all, without the wider bounds of "The
 * window" (closer candidates only, K in the end game). For
 * an owner that needs only a few more answers (a bucket-fill lookup one
 * node short of a full bucket): the answers to more queries in flight
 * would go unused. Returns 0 or MDHT_ERR_NOTFOUND. */
int mdht_lookup_set_alpha(mdht_lookups *ls, uint32_t lookup_id, uint32_t alpha);

/* Runs soft and hard timeouts due at `now` and ends the lookups that
 * are over. Returns the number of lookups that ended. */
int mdht_lookups_tick(mdht_lookups *ls, mdht_time now);

/* When mdht_lookups_tick() is due next (absolute), or UINT64_MAX. */
mdht_time mdht_lookups_next_deadline(const mdht_lookups *ls);

/* The running lookup `lookup_id`, or NULL. */
const mdht_lookup *mdht_lookup_find(const mdht_lookups *ls, uint32_t lookup_id);

#endif
