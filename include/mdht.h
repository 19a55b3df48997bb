/*
 * mdht: a BitTorrent Mainline DHT node (BEP 5 and extensions).
 *
 * This header is the whole public surface of libmdht.
 *
 * The node is sans-I/O: it never opens a socket, reads a clock, draws
 * randomness or touches a file. The embedding program (or mdht's own epoll
 * driver, or the simulator) feeds it datagrams and the current time, drains
 * the datagrams it wants sent, and wakes it at the deadline it asks for:
 *
 *     mdht_node_recv(node, &from, buf, len, now);
 *     while ((n = mdht_node_next_packet(node, &to, out, sizeof out)) > 0)
 *         sendto(...);
 *     mdht_node_tick(node, now);          // at mdht_node_next_deadline()
 *
 * Conventions:
 * - Functions return 0 (or a non-negative count) on success and a negative
 *   MDHT_ERR_* code on failure; mdht_strerror() names the code.
 * - `_init`/`_free` work on storage the caller owns; `_new`/`_del` allocate
 *   and free the object.
 * - Time is a monotonic count of milliseconds (mdht_time), chosen by the
 *   caller; only differences matter.
 * - Callbacks must not call back into the node that invoked them.
 */
#ifndef MDHT_H
#define MDHT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MDHT_VERSION "0.1.0"

/* Marks what libmdht.so exports: the library is built with
 * -fvisibility=hidden, so that everything not declared here stays
 * private to it and cannot become an accidental ABI. */
#if defined(__GNUC__) || defined(__clang__)
#define MDHT_EXTERN __attribute__((visibility("default")))
#else
#define MDHT_EXTERN
#endif

/* ---------------------------------------------------------------- errors */

/* Errors are negative ints in one domain with -errno: a negated errno
 * value lies in -1..-4095 (Linux never returns more: MAX_ERRNO), every
 * MDHT_ERR_* below -5000. One int return therefore says which it is, and
 * mdht_strerror() names both, without the caller keeping track of where
 * the code came from. (The errno itself is kept, not folded into one
 * MDHT_ERR_IO, so that callers can still test for -EWOULDBLOCK.)
 *
 * One list, so that the enum and mdht_strerror() cannot drift apart. */
#define MDHT_ERRORS(X)                                                         \
  X(NOMEM, -5001, "out of memory")                                             \
  X(INVAL, -5002, "invalid argument")                                          \
  X(NOBUF, -5003, "buffer too small")                                          \
  X(PARSE, -5004, "malformed bencode")                                         \
  X(PROTO, -5005, "malformed KRPC message")                                    \
  X(LIMIT, -5006, "limit exceeded")                                            \
  X(NOTFOUND, -5007, "not found")                                              \
  X(EXISTS, -5008, "already exists")                                           \
  X(FULL, -5009, "table full")                                                 \
  X(AGAIN, -5010, "nothing to do now")                                         \
  X(RANGE, -5011, "value out of range")                                        \
  X(STATE, -5012, "wrong state for this call")                                 \
  X(IO, -5013, "input/output error")                                           \
  X(CORRUPT, -5014, "corrupt data")                                            \
  X(VERSION, -5015, "unsupported version")                                     \
  X(TIMEOUT, -5016, "timed out")                                               \
  X(ADDR, -5017, "address not acceptable")                                     \
  X(TOKEN, -5018, "bad token")

enum mdht_error {
#define MDHT__ERR_ENUM(name, code, text) MDHT_ERR_##name = code,
  MDHT_ERRORS(MDHT__ERR_ENUM)
#undef MDHT__ERR_ENUM
};

/* The range of negated errno values (see above). */
#define MDHT_ERRNO_MAX 4095

/* A description of `err`, never NULL: the static English text of an
 * MDHT_ERR_* code, strerror's text for a negated errno (-1 to
 * -MDHT_ERRNO_MAX), "success" for 0 and "unknown error" for the rest. */
MDHT_EXTERN const char *mdht_strerror(int err);

/* ------------------------------------------------------------ constants */

#define MDHT_ID_LEN 20
#define MDHT_K 8                 /* bucket size (BEP 5) */
#define MDHT_MAX_PACKET 1500     /* largest datagram the node emits */
#define MDHT_RESPONSE_LIMIT 1400 /* no response ever exceeds this */

/* ---------------------------------------------------------------- types */

typedef uint64_t mdht_time; /* milliseconds, monotonic, caller's epoch */

/* A node id or info-hash: 160 bits, big-endian. */
typedef struct mdht_id {
  uint8_t b[MDHT_ID_LEN];
} mdht_id;

/* An IPv4 or IPv6 endpoint. `ip` holds 4 or 16 bytes in network order;
 * `port` is in host order. Compare with mdht_addr_eq(). */
typedef struct mdht_addr {
  uint8_t family; /* MDHT_AF_INET or MDHT_AF_INET6 */
  uint8_t pad_;
  uint16_t port;
  uint8_t ip[16];
} mdht_addr;

#define MDHT_AF_INET 4
#define MDHT_AF_INET6 6

MDHT_EXTERN bool mdht_addr_eq(const mdht_addr *a, const mdht_addr *b);
/* Writes "1.2.3.4:5" or "[::1]:5" with a NUL; returns the length or
 * MDHT_ERR_NOBUF. 64 bytes always suffice. */
MDHT_EXTERN int mdht_addr_format(const mdht_addr *a, char *buf, size_t cap);
/* Parses "1.2.3.4:5", "[::1]:5" (port required) into `out`. Returns 0 or
 * MDHT_ERR_INVAL. No name resolution. */
MDHT_EXTERN int mdht_addr_parse(mdht_addr *out, const char *s);

/* 40 hex digits <-> id. parse returns 0 or MDHT_ERR_INVAL. `hex` of
 * format must hold 41 bytes. */
MDHT_EXTERN int mdht_id_parse(mdht_id *out, const char *hex);
MDHT_EXTERN void mdht_id_format(const mdht_id *id, char hex[41]);

/* --------------------------------------------------------------- config */

/* Every field has a default (mdht_config_default) and a command-line flag. */
typedef struct mdht_config {
  uint32_t k;                      /* bucket size, default 8 */
  uint32_t alpha;                  /* lookup parallelism, default 5 */
  mdht_time node_fresh_ms;         /* a node is good this long after it
                                      answered: 15 min */
  uint32_t max_fails;              /* failures in a row that make a node
                                      bad: 3 (libtorrent, jech: 3) */
  mdht_time token_rotate_ms;       /* token secret rotation: 5 min */
  mdht_time peer_ttl_ms;           /* stored peer lifetime: 30 min */
  uint32_t max_infohashes;         /* peer store bound: 50000 */
  uint32_t max_peers_per_ih;       /* peer store bound: 500 */
  uint32_t max_peers;              /* all peers stored at most: 200000
                                      (0 = only the two bounds above) */
  mdht_time query_timeout_ms;      /* hard timeout of one query: 5 s */
  mdht_time query_soft_timeout_ms; /* lookup moves on after: 1 s */
  uint32_t max_txns;               /* outstanding queries bound: 4096 */
  uint32_t max_lookups;            /* concurrent lookups: 64 */
  mdht_time bucket_refresh_ms;     /* refresh a bucket idle this long: 15
                                      min */
  uint32_t rate_limit_per_sec;     /* datagrams accepted per source IP
                                      per second, 0 = unlimited: 250 */
  uint32_t rate_limit_burst;       /* bucket depth: 500 */
  uint32_t out_queue;              /* datagrams queued before drop: 1024 */
  bool read_only;                  /* BEP 43: send ro=1, never answer */
  bool allow_private;              /* accept loopback/private addresses
                                      into the routing table; the driver
                                      sets it when bound to one */
  bool enforce_node_id;            /* BEP 42: reject ids that do not
                                      match the source IP (public
                                      addresses only): default off */
  /* Defences against one host owning the node (docs/SECURITY.md). Each
   * is on by default; the switches exist for closed test networks. */
  bool allow_same_ip;           /* many routing entries and lookup
                                   candidates per IP address */
  bool allow_same_prefix;       /* many entries per /24 (IPv4) or /64
                                   (IPv6) in one bucket or lookup */
  bool fixed_id;                /* never derive the id from the
                                   external address (BEP 42) */
  uint32_t max_ih_per_ip;       /* info-hashes one source IP may hold
                                   records in: 256 */
  uint32_t max_values;          /* values in one get_peers reply: 100 */
  uint32_t reply_bytes_per_sec; /* reply budget per destination IP
                                   (anti-amplification), 0 = none:
                                   8000 */
  /* BEP 44 item store (docs/SECURITY.md): bounded like the peer
   * store. */
  mdht_time item_ttl_ms;     /* an item lives this long after its last
                                put: 2 h (BEP 44) */
  uint32_t max_items;        /* items stored at most: 1000 */
  uint32_t max_item_bytes;   /* their values' bytes at most: 512 KiB */
  uint32_t max_items_per_ip; /* items one source IP (IPv6: /64) may
                                hold: 32 */
  uint8_t client_version[4]; /* "v" key: client code "MD" and a
                                2-byte version */
} mdht_config;

MDHT_EXTERN void mdht_config_default(mdht_config *cfg);
/* Checks a configuration: 0 or MDHT_ERR_INVAL (k out of 1..16, zero
 * timeouts or bounds, soft timeout above the hard one ...). */
MDHT_EXTERN int mdht_config_check(const mdht_config *cfg);

/* --------------------------------------------------------------- events */

/* Every component publishes what it has done as events, in the order it
 * happened. They only inform: the node works the same with no subscriber
 * (its statistics and routing table do not listen). Events are delivered
 * synchronously, while the node is inside the call that caused them;
 * pointers inside an event are valid only during the callback.
 *
 * EXTERNAL_ADDR: the address the responders' votes (BEP 42 `ip`) agree on
 * changed, once per change: `addr` is the new one, u.replaced.old_addr
 * the previous one (family 0 at the first). NODE_ID_CHANGED: the node
 * derived a new id from that address (BEP 42) and rebuilt its routing
 * table around it: `id` is the new id, u.replaced.old_id the old one,
 * `addr` the external address; save the state. */
#define MDHT_EVENTS(X)                                                         \
  X(NODE_ADDED, "node_added")                                                  \
  X(NODE_REMOVED, "node_removed")                                              \
  X(NODE_REPLACED, "node_replaced")                                            \
  X(BUCKET_SPLIT, "bucket_split")                                              \
  X(QUERY_RECEIVED, "query_received")                                          \
  X(RESPONSE_SENT, "response_sent")                                            \
  X(ERROR_SENT, "error_sent")                                                  \
  X(QUERY_SENT, "query_sent")                                                  \
  X(RESPONSE_RECEIVED, "response_received")                                    \
  X(ERROR_RECEIVED, "error_received")                                          \
  X(QUERY_TIMEOUT, "query_timeout")                                            \
  X(TOKEN_REJECTED, "token_rejected")                                          \
  X(PEER_STORED, "peer_stored")                                                \
  X(PEER_EXPIRED, "peer_expired")                                              \
  X(LOOKUP_STARTED, "lookup_started")                                          \
  X(LOOKUP_PROGRESS, "lookup_progress")                                        \
  X(LOOKUP_DONE, "lookup_done")                                                \
  X(BOOTSTRAP_DONE, "bootstrap_done")                                          \
  X(STATE_SAVED, "state_saved")                                                \
  X(STATE_LOADED, "state_loaded")                                              \
  X(DATAGRAM_DROPPED, "datagram_dropped")                                      \
  X(RATE_LIMITED, "rate_limited")                                              \
  X(EXTERNAL_ADDR, "external_addr")                                            \
  X(NODE_ID_CHANGED, "node_id_changed")                                        \
  X(ITEM_STORED, "item_stored")                                                \
  X(ITEM_SERVED, "item_served")                                                \
  X(LOG, "log")

typedef enum mdht_event_type {
#define MDHT__EV_ENUM(name, text) MDHT_EV_##name,
  MDHT_EVENTS(MDHT__EV_ENUM)
#undef MDHT__EV_ENUM
      MDHT_EV_COUNT_
} mdht_event_type;

MDHT_EXTERN const char *mdht_event_name(mdht_event_type t);

/* KRPC methods, as carried in events and statistics. */
typedef enum mdht_method {
  MDHT_M_PING,
  MDHT_M_FIND_NODE,
  MDHT_M_GET_PEERS,
  MDHT_M_ANNOUNCE_PEER,
  MDHT_M_SAMPLE_INFOHASHES,
  MDHT_M_GET, /* BEP 44 */
  MDHT_M_PUT,
  MDHT_M_UNKNOWN,
  MDHT_M_COUNT_
} mdht_method;

MDHT_EXTERN const char *mdht_method_name(mdht_method m);

/* Why a datagram was dropped. */
#define MDHT_DROPS(X)                                                          \
  X(PARSE, "not bencode")                                                      \
  X(PROTO, "not a KRPC message")                                               \
  X(UNMATCHED, "response matches no query")                                    \
  X(ADDR, "unacceptable source address")                                       \
  X(READ_ONLY, "query to a read-only node")                                    \
  X(QUEUE_FULL, "send queue full")                                             \
  X(TOO_BIG, "oversized datagram")                                             \
  X(REPLY_BUDGET, "reply budget of the destination spent")                     \
  X(REPLY_TOO_BIG, "reply would exceed 1,400 bytes (long t)")

typedef enum mdht_drop_reason {
#define MDHT__DROP_ENUM(name, text) MDHT_DROP_##name,
  MDHT_DROPS(MDHT__DROP_ENUM)
#undef MDHT__DROP_ENUM
      MDHT_DROP_COUNT_
} mdht_drop_reason;

MDHT_EXTERN const char *mdht_drop_reason_name(mdht_drop_reason r);

typedef enum mdht_log_level {
  MDHT_LOG_ERROR,
  MDHT_LOG_WARN,
  MDHT_LOG_INFO,
  MDHT_LOG_DEBUG,
  MDHT_LOG_TRACE
} mdht_log_level;

typedef struct mdht_event {
  mdht_event_type type;
  mdht_time now;
  /* Most events concern one remote node; fields that do not apply are
   * zero. */
  mdht_id id;     /* remote node id, info-hash or lookup target */
  mdht_addr addr; /* remote endpoint */
  mdht_method method;
  union {
    struct {
      mdht_id old_id;
      mdht_addr old_addr;
    } replaced;
    struct {
      uint32_t depth;
      uint32_t buckets;
    } split;
    struct {
      int code;
    } error; /* ERROR_SENT/RECEIVED */
    struct {
      mdht_drop_reason reason;
      size_t len;
    } drop;
    struct {
      mdht_addr peer;
      uint32_t count;
    } peer; /* PEER_* */
    struct {
      int64_t seq;     /* mutable items; 0 for immutable ones */
      uint32_t vlen;   /* bencoded value's length */
      bool is_mutable; /* BEP 44: signed, under a public key */
    } item;            /* ITEM_STORED (id: target, addr: source),
                          ITEM_SERVED (addr: requester) */
    struct {
      uint32_t lookup_id;
      uint32_t round;
      uint32_t queried;
      uint32_t answered;
      uint32_t failed;
      uint32_t peers;
      uint32_t closest_bits; /* leading bits shared with the target */
      bool ok;
      mdht_time elapsed_ms; /* since LOOKUP_STARTED: the duration at DONE */
    } lookup;
    struct {
      uint32_t nodes;
      uint32_t peers;
    } state;
    struct {
      mdht_time rtt_ms;
    } response;
    struct {
      bool ro;    /* BEP 43: the sender is read-only */
      bool no_id; /* an unknown method sent without a valid id */
    } query;      /* QUERY_RECEIVED */
    struct {
      mdht_log_level level;
      const char *text;
    } log;
  } u;
} mdht_event;

typedef void (*mdht_event_cb)(const mdht_event *ev, void *user);

/* ----------------------------------------------------------------- node */

typedef struct mdht_node mdht_node;

/* Randomness: fill `buf` with `len` unpredictable bytes. Required. The
 * driver uses getrandom(2); tests use a seeded generator. */
typedef void (*mdht_random_cb)(uint8_t *buf, size_t len, void *user);

typedef struct mdht_callbacks {
  mdht_random_cb random; /* required */
  void *user;            /* passed to every callback */
} mdht_callbacks;

/* Creates a node. `id` may be NULL for a random id. `cfg` may be NULL for
 * defaults; it is copied. `bound` is the local address the node answers on
 * (only its family and whether it is private/loopback matter).
 * Errors: MDHT_ERR_NOMEM, MDHT_ERR_INVAL. */
MDHT_EXTERN int mdht_node_new(mdht_node **out, const mdht_config *cfg,
                              const mdht_callbacks *cb, const mdht_id *id,
                              const mdht_addr *bound, mdht_time now);
MDHT_EXTERN void mdht_node_del(mdht_node *node);

MDHT_EXTERN const mdht_id *mdht_node_id(const mdht_node *node);

/* Subscribes `cb` to every event; returns a handle >= 0 for
 * mdht_node_unsubscribe, or MDHT_ERR_FULL (at most 16 subscribers). */
MDHT_EXTERN int mdht_node_subscribe(mdht_node *node, mdht_event_cb cb,
                                    void *user);
MDHT_EXTERN void mdht_node_unsubscribe(mdht_node *node, int handle);

/* Hands one received datagram to the node. Never fails on bad input: a
 * malformed datagram is answered with a KRPC error or dropped and counted.
 * Returns 0, or MDHT_ERR_INVAL for a NULL argument. */
MDHT_EXTERN int mdht_node_recv(mdht_node *node, const mdht_addr *from,
                               const uint8_t *pkt, size_t len, mdht_time now);

/* Takes the next queued datagram: copies it into `buf`, sets `*to`, and
 * returns its length; 0 when nothing is queued; MDHT_ERR_NOBUF when `cap`
 * is too small (the datagram stays queued). MDHT_MAX_PACKET bytes always
 * suffice. */
MDHT_EXTERN int mdht_node_next_packet(mdht_node *node, mdht_addr *to,
                                      uint8_t *buf, size_t cap);

/* Gives back the memory the node keeps only for speed while busy (the
 * send queue's buffer, once drained); the next datagram allocates it
 * again. The node does it at its ticks anyway; a program that hosts many
 * nodes calls it after draining one (the simulator does: at a million
 * nodes, the queues kept between two ticks were 1.3 KB per node at the
 * end of the join). */
MDHT_EXTERN void mdht_node_trim(mdht_node *node);

/* When the node wants mdht_node_tick() next (absolute time). */
MDHT_EXTERN mdht_time mdht_node_next_deadline(const mdht_node *node);

/* Runs timers due at `now`: query timeouts, token rotation, peer expiry,
 * routing maintenance, lookups. Returns 0. */
MDHT_EXTERN int mdht_node_tick(mdht_node *node, mdht_time now);

/* Adds a node we heard of (saved state, a hint): it is pinged, and
 * enters the routing table if it answers. Errors: MDHT_ERR_ADDR,
 * MDHT_ERR_FULL (transaction table), MDHT_ERR_NOBUF (send queue). */
MDHT_EXTERN int mdht_node_ping(mdht_node *node, const mdht_addr *addr,
                               mdht_time now);

/* Remembers a bootstrap router (at most 16) and pings it. Once a router
 * answers, the node looks itself up to fill its table (then BOOTSTRAP_DONE
 * is published); whenever the table empties, it pings the routers again
 * with exponential backoff. Errors: as mdht_node_ping, MDHT_ERR_LIMIT. */
MDHT_EXTERN int mdht_node_add_bootstrap(mdht_node *node, const mdht_addr *addr,
                                        mdht_time now);

/* BEP 32, dual stack: pairs `a` and `b`, two nodes of the two address
 * families created with the same id (one per socket), into one node of
 * the DHT. From then on they share `a`'s peer store (an announce received
 * on either socket is found through either; a get_peers answer carries
 * the values of the asker's family only, 6-byte on IPv4, 18-byte on
 * IPv6), each answers `want: ["n4","n6"]` with both tables (`nodes` and
 * `nodes6`), their queries ask for both, and nodes of the other family
 * named in an answer are pinged from the sibling's socket (a few,
 * bounded). A lookup, announce or scrape started on either runs in both
 * families and reports once, merged (peers of both families; the
 * closest nodes of each, the caller's family first); a ping of the
 * other family's address is sent from the sibling. Operation ids are
 * one space: cancel on either. `b`'s events about the shared store
 * (PEER_STORED, PEER_EXPIRED) are published on `a`. Pair before use:
 * `b` must hold no peer and run no operation. Deleting either unpairs
 * both. Errors: MDHT_ERR_INVAL (same family, different ids, NULL),
 * MDHT_ERR_STATE (already paired, `b` in use). */
MDHT_EXTERN int mdht_node_pair(mdht_node *a, mdht_node *b);
/* The node's sibling (mdht_node_pair), or NULL. */
MDHT_EXTERN mdht_node *mdht_node_sibling(const mdht_node *node);
/* The address family the node was created for: MDHT_AF_INET or
 * MDHT_AF_INET6. */
MDHT_EXTERN int mdht_node_family(const mdht_node *node);

/* True once a bootstrap lookup has completed with at least one node in
 * the routing table. */
MDHT_EXTERN bool mdht_node_bootstrapped(const mdht_node *node);

/* ------------------------------------------------- lookups and queries */

#define MDHT_RESULT_NODES 16
#define MDHT_RESULT_PEERS 256

/* What a lookup, an announce or a ping found. Valid during the callback
 * only. */
typedef struct mdht_result {
  uint32_t id;      /* as returned when started */
  mdht_method kind; /* FIND_NODE, GET_PEERS, ANNOUNCE_PEER or PING */
  mdht_id target;
  bool ok; /* at least one node answered */
  /* FIND_NODE/GET_PEERS/ANNOUNCE_PEER: the closest nodes that answered,
   * closest first. ANNOUNCE_PEER: only the nodes that accepted the
   * announce. PING: the node that answered. */
  size_t nnodes;
  struct {
    mdht_id id;
    mdht_addr addr;
  } nodes[MDHT_RESULT_NODES];
  size_t npeers; /* GET_PEERS and ANNOUNCE_PEER: peers found */
  const mdht_addr *peers;
  uint32_t rounds, queries, responses, failures;
  mdht_time elapsed_ms; /* PING: the round-trip time */
  /* mdht_node_scrape (BEP 33): the estimated distinct seeds and
   * downloaders in the union of the nodes' filters, and how many nodes
   * sent filters. */
  bool scraped;
  uint32_t scrape_nodes;
  double scrape_seeds, scrape_peers;
  /* SAMPLE_INFOHASHES: info-hashes received (repeats included), distinct
   * ones reported, and nodes that do not support BEP 51 (error 204, or
   * an answer without samples; counted apart from `failures`). */
  uint64_t samples;
  uint32_t infohashes, unsupported;
  /* GET (BEP 44): the item found, verified (its hash, or its key and
   * signature); PUT: the item stored. item_vlen 0: none. A mutable item
   * also has item_seq, item_k and item_sig. */
  const uint8_t *item_v; /* the value's bencoding */
  size_t item_vlen;
  bool item_mutable;
  int64_t item_seq;
  uint8_t item_k[32];
  uint8_t item_sig[64];
} mdht_result;

/* Called once when the operation ends. It must not call into the node;
 * it may record what it needs and act after the node returns. */
typedef void (*mdht_result_cb)(const mdht_result *r, void *user);

/* Iterative lookups (BEP 5). Each returns an operation id > 0, or
 * MDHT_ERR_FULL (too many lookups), MDHT_ERR_AGAIN (the routing table is
 * empty: bootstrap first), MDHT_ERR_INVAL. */
MDHT_EXTERN int64_t mdht_node_find_node(mdht_node *node, const mdht_id *target,
                                        mdht_result_cb cb, void *user,
                                        mdht_time now);
MDHT_EXTERN int64_t mdht_node_get_peers(mdht_node *node,
                                        const mdht_id *info_hash,
                                        mdht_result_cb cb, void *user,
                                        mdht_time now);
/* A get_peers lookup, then announce_peer to the closest nodes that gave a
 * token. `port` is ignored with implied_port (the receivers use the
 * source port of our datagrams). */
MDHT_EXTERN int64_t mdht_node_announce(mdht_node *node,
                                       const mdht_id *info_hash, uint16_t port,
                                       bool implied_port, bool seed,
                                       mdht_result_cb cb, void *user,
                                       mdht_time now);
/* A get_peers lookup that asks every node for its BEP 33 scrape filters
 * and reports their union's estimates in scrape_seeds / scrape_peers
 * (and the peers found, as get_peers). */
MDHT_EXTERN int64_t mdht_node_scrape(mdht_node *node, const mdht_id *info_hash,
                                     mdht_result_cb cb, void *user,
                                     mdht_time now);
/* BEP 44 items. A get is a lookup that asks the nodes near the target
 * for the item and checks every answer: an immutable item must hash to
 * the target (the lookup stops at the first that does), a mutable one
 * must be signed by `pk` over its salt, seq and value (the highest valid
 * seq wins). kind is MDHT_M_GET; ok when some node answered; item_vlen 0
 * when none had the item. */
MDHT_EXTERN int64_t mdht_node_get_immutable(mdht_node *node,
                                            const mdht_id *target,
                                            mdht_result_cb cb, void *user,
                                            mdht_time now);
/* `salt` may be NULL when salt_len is 0 (at most 64 bytes). */
MDHT_EXTERN int64_t mdht_node_get_mutable(mdht_node *node, const uint8_t pk[32],
                                          const uint8_t *salt, size_t salt_len,
                                          mdht_result_cb cb, void *user,
                                          mdht_time now);
/* A put: a get lookup for write tokens, then `put` to the closest nodes
 * (up to K) that gave one. `v` is one bencoded value of at most 1,000
 * bytes (MDHT_ERR_INVAL otherwise). kind is MDHT_M_PUT; ok when some
 * node answered the lookup; nodes are those that accepted the put (none:
 * nobody stored it, e.g. all refused a cas or seq). */
MDHT_EXTERN int64_t mdht_node_put_immutable(mdht_node *node, const uint8_t *v,
                                            size_t vlen, mdht_result_cb cb,
                                            void *user, mdht_time now);
/* Mutable: signed here with the Ed25519 key of the 32-byte `seed`. `seq`
 * < 0 means one above the highest valid seq the lookup found (1 if none);
 * with `has_cas`, the nodes store it only if what they hold has seq
 * `cas` (and an automatic seq is cas + 1). */
MDHT_EXTERN int64_t mdht_node_put_mutable(
    mdht_node *node, const uint8_t seed[32], const uint8_t *salt,
    size_t salt_len, const uint8_t *v, size_t vlen, int64_t seq, bool has_cas,
    int64_t cas, mdht_result_cb cb, void *user, mdht_time now);

/* Pings one address and reports its id and the round-trip time.
 * Errors: MDHT_ERR_ADDR, MDHT_ERR_FULL, MDHT_ERR_NOBUF. */
MDHT_EXTERN int64_t mdht_node_ping_addr(mdht_node *node, const mdht_addr *addr,
                                        mdht_result_cb cb, void *user,
                                        mdht_time now);
/* A new info-hash found by mdht_node_sample, and the node that gave it.
 * It must not call into the node. */
typedef void (*mdht_sample_cb)(const mdht_id *info_hash, const mdht_addr *from,
                               void *user);
/* BEP 51 crawl: asks the nodes of the routing table, then the nodes their
 * answers name, for samples of the info-hashes they store, with
 * sample_infohashes, and calls `found` once for each distinct info-hash
 * (at most 65536 per crawl). Honours each node's `interval`; nodes that
 * do not support BEP 51 are skipped. Ends, calling `done` (kind
 * SAMPLE_INFOHASHES; queries, responses, failures, samples, infohashes,
 * unsupported; ok: a node answered with samples), after `max` info-hashes
 * (0: no limit), after `timeout_ms`, or when no node is left to ask.
 * Errors: MDHT_ERR_AGAIN (empty routing table), MDHT_ERR_FULL (4 crawls
 * run already), MDHT_ERR_NOMEM, MDHT_ERR_INVAL. */
MDHT_EXTERN int64_t mdht_node_sample(mdht_node *node, uint32_t max,
                                     mdht_time timeout_ms, mdht_sample_cb found,
                                     mdht_result_cb done, void *user,
                                     mdht_time now);
/* Cancels an operation; its callback is not called. */
MDHT_EXTERN void mdht_node_cancel(mdht_node *node, int64_t op);

/* The routing table's nodes, for `mdht stats` and persistence: calls `fn`
 * for each entry (bucket index, id, address, good?, last reply time). */
typedef void (*mdht_node_visit_cb)(uint32_t bucket, const mdht_id *id,
                                   const mdht_addr *addr, bool good,
                                   mdht_time last_reply, void *user);
MDHT_EXTERN void mdht_node_visit(const mdht_node *node, mdht_time now,
                                 mdht_node_visit_cb fn, void *user);

/* The routing table in detail, for `mdht table`: one call per entry of
 * the buckets (replacement candidates are not listed), bucket by bucket.
 * Times are the node's clock (0 = never); `rtt_ms` is the round trip of
 * its last answer to one of our queries (0 = none yet; capped at 65535). */
typedef enum mdht_node_state {
  MDHT_NODE_GOOD,
  MDHT_NODE_QUESTIONABLE,
  MDHT_NODE_BAD
} mdht_node_state;

typedef struct mdht_node_entry {
  uint32_t bucket;
  mdht_id id;
  mdht_addr addr;
  mdht_node_state state;
  mdht_time added, last_reply, last_query;
  uint32_t rtt_ms;
  uint32_t fails; /* queries in a row that went unanswered */
} mdht_node_entry;
typedef void (*mdht_node_entry_cb)(const mdht_node_entry *e, void *user);
MDHT_EXTERN void mdht_node_visit_table(const mdht_node *node, mdht_time now,
                                       mdht_node_entry_cb fn, void *user);

/* The peer store, for `mdht infohashes`: one call per stored info-hash
 * with its unexpired peers (an info-hash whose peers all expired is left
 * out). Ages are in ms since a peer's last announce, as far as the store
 * knows it: it keeps each record's expiry, so age = TTL - time left (a
 * record restored from saved state shows the age it had). */
typedef struct mdht_store_entry {
  mdht_id infohash;
  uint32_t peers, seeds;
  mdht_time newest_ms, oldest_ms; /* ages of its newest and oldest record */
} mdht_store_entry;
typedef void (*mdht_store_cb)(const mdht_store_entry *e, void *user);
MDHT_EXTERN void mdht_node_visit_store(const mdht_node *node, mdht_time now,
                                       mdht_store_cb fn, void *user);

/* The unexpired peers stored for one info-hash, for `mdht peers`.
 * Returns how many were visited, or MDHT_ERR_NOTFOUND when the store holds
 * no peer for it. */
typedef struct mdht_stored_peer {
  mdht_addr addr;
  bool seed;        /* announced with BEP 33's seed flag */
  mdht_time age_ms; /* since its last announce (see above) */
  mdht_time ttl_ms; /* left before it expires */
} mdht_stored_peer;
typedef void (*mdht_stored_peer_cb)(const mdht_stored_peer *p, void *user);
MDHT_EXTERN int mdht_node_visit_peers(const mdht_node *node,
                                      const mdht_id *infohash, mdht_time now,
                                      mdht_stored_peer_cb fn, void *user);

/* Statistics the node keeps as it works (not through the events). */
typedef struct mdht_stats {
  uint64_t recv_packets, sent_packets;
  uint64_t queries_in[MDHT_M_COUNT_];
  uint64_t queries_out[MDHT_M_COUNT_];
  uint64_t responses_in, responses_out;
  uint64_t errors_in, errors_out;
  uint64_t timeouts;
  uint64_t dropped[MDHT_DROP_COUNT_];
  uint64_t rate_limited;
  uint64_t tokens_rejected;
  uint32_t nodes_good, nodes_questionable, nodes_total, buckets;
  uint32_t replacements;
  uint32_t infohashes, peers;
  uint32_t items;                      /* BEP 44 items stored */
  uint64_t items_stored, items_served; /* puts accepted, gets answered
                                          with an item */
  uint64_t puts_rejected;              /* puts refused (205..302) */
  uint32_t txns_outstanding;
  mdht_time started;
  uint32_t lookups_running; /* lookups (and announces) under way */
} mdht_stats;

/* Fills `out`; `now` classifies routing entries (good / questionable). */
MDHT_EXTERN void mdht_node_stats(const mdht_node *node, mdht_time now,
                                 mdht_stats *out);

/* The heap a node holds, by part, in bytes asked of the allocator (its
 * own bookkeeping and fragmentation not included). Memory follows what a
 * node holds, not its limits: these are the figures to watch when
 * embedding many nodes, or a million in the simulator. A BEP 32 pair
 * shares a peer and an item store: each is counted with the first node. */
typedef struct mdht_memory {
  size_t node;         /* the node's own struct */
  size_t routing;      /* buckets and their node slots (k per bucket) */
  size_t replacements; /* replacement-list blocks */
  size_t index;        /* the routing table's address index */
  size_t transactions; /* queries in flight */
  size_t lookups;      /* slot table and running lookups */
  size_t peers;        /* peer store */
  size_t items;        /* BEP 44 item store */
  size_t limits;       /* rate-limit and reply-budget tables */
  size_t other;        /* outgoing queue, BEP 42 voters, bootstrap,
                          operations */
  size_t total;        /* all of the above */
  uint32_t entries;    /* routing entries: bucket nodes + candidates */
} mdht_memory;

MDHT_EXTERN void mdht_node_memory(const mdht_node *node, mdht_memory *out);

/* ---------------------------------------------------------- saved state */

/* A node's state as bytes, so that a restarted node keeps its id, its
 * routing table and the peers announced to it. The core touches no file:
 * the caller stores the bytes where it likes (mdht writes them crash-safe
 * to its state directory). The format is versioned and checksummed, and
 * loading treats the bytes as untrusted input.
 *
 *     if (mdht_node_saved_id(buf, len, &id) == 0)   // keep the old id
 *         mdht_node_new(&node, &cfg, &cb, &id, &bound, now);
 *     mdht_node_load(node, buf, len, now, unix_ms);
 *     ...
 *     mdht_node_save(node, now, unix_ms, &buf, &len);   // then free(buf)
 *
 * `wall_ms` is the current Unix time in milliseconds: the node's own clock
 * restarts with the process, so the bytes hold ages, and the loader takes
 * away the wall-clock time that passed since the save. */

/* Serializes the node's id, routing table (bad nodes left out) and
 * unexpired peers into a malloc'ed buffer: *out, *len bytes, which the
 * caller frees with free(). Errors: MDHT_ERR_INVAL, MDHT_ERR_NOMEM. */
MDHT_EXTERN int mdht_node_save(const mdht_node *node, mdht_time now,
                               uint64_t wall_ms, uint8_t **out, size_t *len);

/* The node id saved in `buf`, so that the node can be created with it
 * (the id is fixed by mdht_node_new). Errors: MDHT_ERR_CORRUPT (not a
 * whole, valid state), MDHT_ERR_VERSION (a format this library does not
 * read). */
MDHT_EXTERN int mdht_node_saved_id(const uint8_t *buf, size_t len,
                                   mdht_id *out);

/* Restores bytes from mdht_node_save into `node`, normally fresh from
 * mdht_node_new with the saved id. The bytes are checked whole before
 * anything changes, so MDHT_ERR_CORRUPT or MDHT_ERR_VERSION leave the node
 * as it was. Routing entries come back questionable (BEP 5): the node's
 * maintenance pings them, and they are handed to other nodes only once
 * they answer. Peers keep the lifetime they had left, less the time since
 * the save. Publishes STATE_LOADED. Errors: also MDHT_ERR_INVAL,
 * MDHT_ERR_NOMEM (the node may then hold part of the state). */
MDHT_EXTERN int mdht_node_load(mdht_node *node, const uint8_t *buf, size_t len,
                               mdht_time now, uint64_t wall_ms);

#ifdef __cplusplus
}
#endif
#endif /* MDHT_H */
