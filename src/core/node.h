/*
 * The node: ties the components together and implements the public API
 * of include/mdht.h. It is the message handler: decoded queries go to
 * their handler (ping, find_node, get_peers, announce_peer,
 * sample_infohashes, get, put), responses and errors to the transaction manager
 * and on to whoever asked.
 *
 * Internal header: the struct is visible so that unit tests can look
 * inside; programs use include/mdht.h only.
 */
#ifndef MDHT_NODE_H
#define MDHT_NODE_H

#include "mdht.h"
#include "bootstrap.h"
#include "bus.h"
#include "crawl.h"
#include "extaddr.h"
#include "items.h"
#include "krpc.h"
#include "lookup.h"
#include "maint.h"
#include "outq.h"
#include "peers.h"
#include "ratelimit.h"
#include "rtable.h"
#include "token.h"
#include "txn.h"

/* Owners of outstanding queries (mdht_txn_owner.kind). */
enum {
  MDHT_OWNER_NONE,
  MDHT_OWNER_PING,     /* mdht_node_ping: bootstrap or saved node */
  MDHT_OWNER_CONFIRM,  /* confirming a node that queried us */
  MDHT_OWNER_CHECK,    /* checking a questionable node before eviction */
  MDHT_OWNER_LOOKUP,   /* cookie: lookup id */
  MDHT_OWNER_ANNOUNCE, /* cookie: operation id */
  MDHT_OWNER_PING_OP,  /* cookie: operation id (mdht_node_ping_addr) */
  MDHT_OWNER_BOOT,     /* pinging a bootstrap router */
  MDHT_OWNER_SAMPLE,   /* cookie: operation id, cookie2: crawl slot */
  MDHT_OWNER_HINT      /* BEP 32: a node the sibling's answer named */
};

/* What an operation is for. User operations report through their
 * callback; the others are the node's own housekeeping. */
enum {
  MDHT_OP_USER,
  MDHT_OP_BOOT_SELF, /* bootstrap: lookup of our own id */
  MDHT_OP_BOOT_FILL, /* bootstrap: lookup in a bucket that is not full */
  MDHT_OP_REFRESH    /* routing manager: refresh of a stale bucket */
};

/* One running operation: a lookup, an announce (a lookup, then
 * announce_peer queries) or a ping. Allocated when started, freed when it
 * reports: operations are few and long-lived, never per datagram. The
 * buffers only a user operation fills (peers: 5 KB; values: 2 KB, GET and
 * PUT) are allocated with it, after the struct, and not for the node's own
 * find_node lookups (bootstrap, fill, refresh): a joining node runs ten of
 * those at once, and a simulator a million nodes. */
typedef struct mdht_op {
  struct mdht_op *next;
  uint32_t id;
  mdht_method kind;
  uint8_t purpose; /* MDHT_OP_* */
  uint32_t lookup_id;
  mdht_result_cb cb;
  void *user;
  mdht_id target;
  mdht_time started;
  /* announce */
  uint16_t port;
  bool implied_port, seed;
  uint32_t ann_pending;
  /* scrape (BEP 33): the union of the filters the nodes sent; values of
   * nodes that sent none count as downloaders (the BEP's legacy rule) */
  bool scrape;
  struct mdht_bloom *filters; /* [0] seeds, [1] downloaders; NULL unless
                                 scrape */
  /* sample (BEP 51 crawl): the crawl, and where new info-hashes go */
  mdht_crawl *crawl;
  mdht_sample_cb found;
  struct mdht_node *node;
  /* BEP 32 pair: a user operation on a paired node runs a twin on the
   * sibling and reports once, with both results merged (node.c). */
  bool pair_pending;     /* the twin has not reported yet */
  bool self_done;        /* our own part ended (or never started) */
  uint32_t pair_op;      /* the twin's operation id, on the sibling */
  uint32_t pair_of;      /* in a twin: the id of the operation it serves */
  mdht_result *twin_res; /* the twin's report, kept until ours is done
                            (malloc'ed with its peers after it) */
  /* BEP 44 get / put: what to check answers against, the best item
   * found, and what to put */
  bool item_mutable;
  uint8_t pk[MDHT_ITEM_PK_LEN], sk[MDHT_ITEM_SK_LEN];
  uint8_t salt[MDHT_ITEM_MAX_SALT];
  size_t salt_len;
  uint8_t *found_v; /* MDHT_ITEM_MAX_V bytes each, GET and PUT only */
  uint8_t *put_v;
  size_t put_vlen;
  int64_t put_seq; /* < 0: one above the highest found */
  bool has_cas;
  int64_t cas;
  /* what the report will say */
  mdht_result res;
  mdht_addr *peers; /* MDHT_RESULT_PEERS; user operations only */
} mdht_op;

/* Datagrams larger than this are dropped unread: no KRPC message of ours
 * comes near it, and parsing 64 KB of garbage is work an attacker picks. */
#define MDHT_MAX_DATAGRAM 8192
/* At most this many confirmation / eviction-check pings in flight, so that
 * a flood of new querying nodes cannot turn us into a ping amplifier. */
#define MDHT_MAX_MAINT_PINGS 32
/* BEP 51 crawls running at once: each holds up to a few MB (crawl.h). */
#define MDHT_MAX_CRAWLS 4
/* BEP 32: pings in flight to nodes of our family that the sibling heard
 * of (in the other family's list of an answer), so that a burst of
 * answers cannot make the node a ping source. */
#define MDHT_MAX_HINT_PINGS 16

struct mdht_node {
  mdht_config cfg;
  mdht_callbacks cb;
  mdht_id id;
  mdht_addr bound;
  mdht_bus bus;
  mdht_rtable rt;
  mdht_token_mgr tokens;
  mdht_peer_store peers;
  /* BEP 32 dual stack: the node of the other address family, with the
   * same id, or NULL. Paired nodes share one peer store (`store` points
   * at the first node's) and one operation id counter (`op_ids`), so
   * that an operation id names one operation on either; the BEP 44 item
   * store likewise (`istore`). */
  struct mdht_node *sibling;
  mdht_peer_store *store;  /* &peers, or the sibling's */
  uint32_t *op_ids;        /* &next_op_id, or the sibling's */
  uint32_t hint_pings;     /* MDHT_OWNER_HINT queries outstanding */
  mdht_item_store items;   /* BEP 44 */
  mdht_item_store *istore; /* &items, or the sibling's (as `store`) */
  mdht_txn_mgr txns;
  mdht_ratelimit rl;
  mdht_ratelimit budget; /* reply bytes per destination network */
  mdht_outq outq;
  mdht_stats stats;
  uint32_t maint_pings; /* CONFIRM + CHECK queries outstanding */
  mdht_lookups lookups;
  /* Round-trip estimate (RFC 6298 style, in ms x8 and x4) from the
   * responses we get: it sets the lookups' soft timeout. */
  uint32_t srtt8, rttvar4;
  mdht_maint maint;
  mdht_bootstrap boot;
  mdht_extaddr ext; /* BEP 42: our address, as voted by responders */
  mdht_op *ops;
  mdht_op *starting; /* the operation whose lookup is being started */
  uint32_t next_op_id;
  /* The datagram being handled, on mdht_node_recv's stack (as are the
   * decoder's tokens); NULL outside it. A message being built is on its
   * builder's stack (begin_response, mdht__node_send_query's callers). */
  mdht_krpc_msg *in;
};

/* Draws `len` random bytes through the driver's callback. */
void mdht__node_random(mdht_node *node, void *buf, size_t len);

/* Sends the query `q` (y='q', method and arguments set; t, id, ro, want
 * and v are filled here), built on the caller's stack, to `to`, opening a
 * transaction for `owner`. Returns 0, MDHT_ERR_FULL (transaction table)
 * or MDHT_ERR_NOBUF (queue). */
int mdht__node_send_query(mdht_node *node, mdht_krpc_msg *q,
                          const mdht_addr *to, const mdht_id *expect_id,
                          mdht_txn_owner owner, mdht_time now);

#endif
