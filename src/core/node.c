/*
 * The node: the message handler and the public API.
 *
 * Flow of one datagram (DESIGN.md): size and source checks, decode, then
 * the transaction manager (an answer to our query goes to its owner), or
 * else the per-IP rate limit and a query handler (which queues the
 * response, within the destination's reply budget).
 * Each handler calls what must change (the routing table, the token
 * manager, the peer store, the statistics) itself, in the order the
 * protocol needs, and publishes an event for each thing that happened, once
 * it has happened. The bus only observes: the node has no subscriber of its
 * own and works the same with none, and since no publish happens inside
 * another, subscribers hear events in causal order (a query before the
 * confirmation ping it caused, a response before the node it added).
 */
#include "node.h"
#include "addr.h"
#include "bep42.h"
#include "bloom.h"
#include "config.h"
#include "id.h"

#include <stdlib.h>
#include <string.h>

void mdht__node_random(mdht_node *node, void *buf, size_t len) {
  node->cb.random(buf, len, node->cb.user);
}

static uint64_t random64(mdht_node *node) {
  uint64_t v;
  mdht__node_random(node, &v, sizeof v);
  return v;
}

static void publish(mdht_node *node, const mdht_event *ev) {
  mdht_bus_publish(&node->bus, ev);
}

static void drop(mdht_node *node, const mdht_addr *from, mdht_drop_reason r,
                 size_t len, mdht_time now) {
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_DATAGRAM_DROPPED, now);
  if (from) ev.addr = *from;
  ev.u.drop.reason = r;
  ev.u.drop.len = len;
  node->stats.dropped[r]++;
  publish(node, &ev);
}

/* ------------------------------------------------------------ sending */

/* Whether an encoded reply of `n` bytes (or an encoding error) may go
 * out. Replies echo the requester's t, whatever its length; one so long
 * that the reply would pass MDHT_RESPONSE_LIMIT is dropped, and counted,
 * rather than sent oversized. */
static bool reply_fits(mdht_node *node, const mdht_addr *to, int n,
                       mdht_time now) {
  if (n >= 0 && (size_t)n <= MDHT_RESPONSE_LIMIT) return true;
  drop(node, to, MDHT_DROP_REPLY_TOO_BIG, 0, now);
  return false;
}

/* Anti-amplification: a response or error of n bytes to `to` is sent only
 * if the destination's reply budget (per IP, IPv6 per /64 and /48) holds
 * n bytes. A spoofed query makes us send to its claimed source, so the
 * bytes a victim can receive from us are bounded whatever the senders
 * pay; our own queries are not budgeted (they are not answers to anyone,
 * and the limits on them are ours). */
static bool reply_budget_ok(mdht_node *node, const mdht_addr *to, int n,
                            mdht_time now) {
  if (mdht_rl_take(&node->budget, to, (uint32_t)n, now)) return true;
  drop(node, to, MDHT_DROP_REPLY_BUDGET, (size_t)n, now);
  return false;
}

/* Encodes `m` into the send queue. */
static int queue_out(mdht_node *node, const mdht_krpc_msg *m,
                     const mdht_addr *to, mdht_time now) {
  uint8_t *p = mdht_outq_reserve(&node->outq, MDHT_MAX_PACKET);
  if (!p) {
    drop(node, to, MDHT_DROP_QUEUE_FULL, 0, now);
    return MDHT_ERR_NOBUF;
  }
  int n = mdht_krpc_encode(m, p, MDHT_MAX_PACKET);
  if (m->y != 'q' && !reply_fits(node, to, n, now)) return MDHT_ERR_NOBUF;
  if (n < 0) return n;
  if (m->y != 'q' && !reply_budget_ok(node, to, n, now)) return MDHT_ERR_LIMIT;
  mdht_outq_commit(&node->outq, to, (size_t)n);
  node->stats.sent_packets++;
  return 0;
}

static void fill_common(mdht_node *node, mdht_krpc_msg *m) {
  m->v.p = node->cfg.client_version;
  m->v.len = sizeof node->cfg.client_version;
  m->id = node->id;
}

static void send_error(mdht_node *node, const mdht_addr *to, mdht_bytes t,
                       mdht_method method, int code, const char *text,
                       mdht_time now) {
  uint8_t *p = mdht_outq_reserve(&node->outq, MDHT_MAX_PACKET);
  if (!p) {
    drop(node, to, MDHT_DROP_QUEUE_FULL, 0, now);
    return;
  }
  mdht_bytes v = {node->cfg.client_version, sizeof node->cfg.client_version};
  int n = mdht_krpc_encode_error(p, MDHT_MAX_PACKET, t, code, text, to, v);
  if (!reply_fits(node, to, n, now) || !reply_budget_ok(node, to, n, now))
    return;
  mdht_outq_commit(&node->outq, to, (size_t)n);
  node->stats.sent_packets++;
  node->stats.errors_out++;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_ERROR_SENT, now);
  ev.addr = *to;
  ev.method = method;
  ev.u.error.code = code;
  publish(node, &ev);
}

/* Starts a response to node->in in `r` (the handler's: a message being
 * built lives on the stack of whoever builds it, not in the node, which
 * saves 408 bytes in each of a simulation's million nodes). */
static mdht_krpc_msg *begin_response(mdht_node *node, mdht_krpc_msg *r,
                                     const mdht_addr *to) {
  mdht_krpc_msg_init(r, 'r');
  fill_common(node, r);
  r->t = node->in->t;
  r->method = node->in->method;
  /* BEP 42: tell every requester how we see it, so that nodes behind NAT
   * learn their external address. */
  r->has_ip = true;
  r->ip = *to;
  return r;
}

static void send_response(mdht_node *node, const mdht_krpc_msg *r,
                          const mdht_addr *to, mdht_time now) {
  if (queue_out(node, r, to, now) != 0) return;
  node->stats.responses_out++;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_RESPONSE_SENT, now);
  ev.addr = *to;
  ev.id = node->in->id;
  ev.method = node->in->method;
  publish(node, &ev);
}

int mdht__node_send_query(mdht_node *node, mdht_krpc_msg *q,
                          const mdht_addr *to, const mdht_id *expect_id,
                          mdht_txn_owner owner, mdht_time now) {
  uint8_t tid[MDHT_TID_LEN];
  uint32_t check;
  mdht__node_random(node, &check, sizeof check);
  int slot = mdht_txn_open(&node->txns, to, expect_id, q->method, owner, check,
                           now, tid);
  if (slot < 0) return slot;
  q->y = 'q';
  fill_common(node, q);
  q->t.p = tid;
  q->t.len = sizeof tid;
  q->ro = node->cfg.read_only;
  /* BEP 32: a dual-stack node asks for both families' nodes, to feed
   * both tables; a single-family node sends no `want`, as before. */
  if (node->sibling &&
      (q->method == MDHT_M_FIND_NODE || q->method == MDHT_M_GET_PEERS ||
       q->method == MDHT_M_SAMPLE_INFOHASHES))
    q->want = MDHT_WANT_N4 | MDHT_WANT_N6;
  int rc = queue_out(node, q, to, now);
  if (rc != 0) {
    mdht_txn dummy;
    mdht_txn_match(&node->txns, tid, sizeof tid, to, &dummy);
    return rc;
  }
  node->stats.queries_out[q->method]++;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_QUERY_SENT, now);
  ev.addr = *to;
  if (expect_id) ev.id = *expect_id;
  ev.method = q->method;
  publish(node, &ev);
  return 0;
}

static int send_ping(mdht_node *node, const mdht_addr *to,
                     const mdht_id *expect_id, uint8_t kind, mdht_time now) {
  mdht_krpc_msg q;
  mdht_krpc_msg_init(&q, 'q');
  q.method = MDHT_M_PING;
  mdht_txn_owner owner = {.kind = kind};
  return mdht__node_send_query(node, &q, to, expect_id, owner, now);
}

/* A maintenance ping (confirming a newcomer, checking a questionable node)
 * within the in-flight bound. */
static void maint_ping(mdht_node *node, const mdht_addr *to, const mdht_id *id,
                       uint8_t kind, mdht_time now) {
  if (node->maint_pings >= MDHT_MAX_MAINT_PINGS) return;
  if (send_ping(node, to, id, kind, now) == 0) node->maint_pings++;
}

/* ------------------------------------------------------ routing table */

/* We heard from node (id, from): it queried us or answered our query. The
 * table decides where it goes; what the table asks for, we do: a newcomer
 * that only queried us is pinged once, so that it can become good (and be
 * handed to others) or be found dead, and a questionable node standing in
 * a full bucket's way is checked. The table publishes its own changes. */
static void table_heard(mdht_node *node, const mdht_id *id,
                        const mdht_addr *from, mdht_rt_how how, mdht_time now) {
  /* BEP 42: an id not derived from its IP gets no slot. */
  if (node->cfg.enforce_node_id && !mdht_bep42_valid(id, from)) return;
  mdht_rt_entry ping;
  int r = mdht_rtable_heard(&node->rt, id, from, how, now, &ping);
  if (r == MDHT_RT_ADDED && how == MDHT_RT_HEARD_QUERY)
    maint_ping(node, from, id, MDHT_OWNER_CONFIRM, now);
  else if (r == MDHT_RT_PING) {
    mdht_addr pa = mdht_rtable_addr(&node->rt, &ping);
    maint_ping(node, &pa, &ping.id, MDHT_OWNER_CHECK, now);
  }
}

/* The entry's last round trip, for `mdht table`: one O(1) index lookup
 * on the response path, and 7 bits in the entry (rtable.h). */
static void note_rtt(mdht_node *node, const mdht_id *id, const mdht_addr *from,
                     mdht_time rtt) {
  mdht_rt_entry *e = mdht_rtable_find(&node->rt, from);
  if (!e || !mdht_id_eq(&e->id, id)) return;
  mdht_rt_entry_set_rtt(e, rtt);
}

/* ------------------------------------------------------- query handlers */

/* Room for one `nodes` and one `nodes6` list of K entries each. */
#define MDHT_CLOSEST_BUF                                                       \
  (MDHT_RT_KMAX * (MDHT_COMPACT_NODE4 + MDHT_COMPACT_NODE6))

/* The closest nodes of `from`'s table (its own family) into r->nodes or
 * r->nodes6, compact, at `buf`. */
static void list_closest(const mdht_node *from, size_t k, mdht_krpc_msg *r,
                         const mdht_id *target, uint8_t *buf, mdht_time now) {
  mdht_rt_entry near[MDHT_RT_KMAX];
  int fam = from->bound.family;
  size_t n = mdht_rtable_closest(&from->rt, target, fam, near, k, now);
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    mdht_addr a = mdht_rtable_addr(&from->rt, &near[i]);
    len += mdht_node_to_compact(&near[i].id, &a, buf + len);
  }
  mdht_bytes *out = fam == MDHT_AF_INET6 ? &r->nodes6 : &r->nodes;
  out->p = buf;
  out->len = len;
}

/* Writes the closest nodes into r->nodes / r->nodes6, using `buf`
 * (MDHT_CLOSEST_BUF bytes) as storage. BEP 32: without `want`, the
 * requester's (our socket's) family; with it, each family asked for that
 * we have a table of: ours, and the sibling's on a dual-stack node. A
 * single-family node asked only for the other family sends no list. */
static void put_closest(mdht_node *node, mdht_krpc_msg *r,
                        const mdht_id *target, uint8_t *buf, mdht_time now) {
  int fam = node->bound.family;
  uint8_t want = node->in->want;
  if (!want) want = fam == MDHT_AF_INET6 ? MDHT_WANT_N6 : MDHT_WANT_N4;
  const mdht_node *sib = node->sibling;
  const mdht_node *v4 = fam == MDHT_AF_INET ? node : sib;
  const mdht_node *v6 = fam == MDHT_AF_INET6 ? node : sib;
  if ((want & MDHT_WANT_N4) && v4)
    list_closest(v4, node->cfg.k, r, target, buf, now);
  if ((want & MDHT_WANT_N6) && v6)
    list_closest(v6, node->cfg.k, r, target,
                 buf + MDHT_RT_KMAX * MDHT_COMPACT_NODE4, now);
}

static void handle_ping(mdht_node *node, const mdht_addr *from, mdht_time now) {
  mdht_krpc_msg r;
  begin_response(node, &r, from);
  send_response(node, &r, from, now);
}

static void handle_find_node(mdht_node *node, const mdht_addr *from,
                             mdht_time now) {
  uint8_t nodes[MDHT_CLOSEST_BUF];
  mdht_krpc_msg rm;
  mdht_krpc_msg *r = begin_response(node, &rm, from);
  put_closest(node, r, &node->in->target, nodes, now);
  send_response(node, r, from, now);
}

static void handle_get_peers(mdht_node *node, const mdht_addr *from,
                             mdht_time now) {
  uint8_t nodes[MDHT_CLOSEST_BUF];
  uint8_t token[MDHT_TOKEN_LEN];
  mdht_addr peers[MDHT_KRPC_MAX_VALUES];
  uint8_t compact[MDHT_KRPC_MAX_VALUES][MDHT_COMPACT_PEER6];
  mdht_bloom bfsd, bfpe;

  mdht_krpc_msg rm;
  mdht_krpc_msg *r = begin_response(node, &rm, from);
  mdht_token_make(&node->tokens, from, token);
  r->token.p = token;
  r->token.len = sizeof token;
  /* libtorrent sends nodes along with values; the requester's lookup
   * converges faster with both. */
  put_closest(node, r, &node->in->target, nodes, now);
  /* BEP 33: the filters go in first, so that the measurement below leaves
   * the values only the room they leave (both take 526 bytes). */
  if (node->in->scrape &&
      mdht_peers_scrape(node->store, &node->in->target, now, &bfsd, &bfpe)) {
    r->bfsd = (mdht_bytes){bfsd.bits, sizeof bfsd.bits};
    r->bfpe = (mdht_bytes){bfpe.bits, sizeof bfpe.bits};
  }

  /* At most max_values, whatever is stored: a reply carries a random
   * sample, not the swarm. Most get_peers find no peers: only then is the
   * response measured. */
  size_t want = node->cfg.max_values < MDHT_KRPC_MAX_VALUES
                    ? node->cfg.max_values
                    : MDHT_KRPC_MAX_VALUES;
  bool noseed = node->in->noseed;
  size_t n =
      mdht_peers_get_noseed(node->store, &node->in->target, node->bound.family,
                            noseed, peers, want, now);
  if (n > 0) {
    /* No response may exceed MDHT_RESPONSE_LIMIT: measure what is there,
     * then keep as many of the (randomly chosen) values as the rest
     * allows. */
    uint8_t probe[MDHT_MAX_PACKET];
    int base = mdht_krpc_encode(r, probe, sizeof probe);
    if (base < 0) return;
    size_t per = (node->bound.family == MDHT_AF_INET6 ? MDHT_COMPACT_PEER6
                                                      : MDHT_COMPACT_PEER4) +
                 3; /* "18:" or "6:" and a little slack */
    size_t room = 0;
    /* "6:values" + "l" + "e" */
    if ((size_t)base + 10 < MDHT_RESPONSE_LIMIT)
      room = (MDHT_RESPONSE_LIMIT - (size_t)base - 10) / per;
    if (n > room) /* the store samples at random; a prefix would not be */
      n = mdht_peers_get_noseed(node->store, &node->in->target,
                                node->bound.family, noseed, peers, room, now);
  }
  mdht_bytes vals[sizeof compact / sizeof compact[0]];
  for (size_t i = 0; i < n; i++) {
    size_t l = mdht_addr_to_compact(&peers[i], compact[i]);
    vals[i].p = compact[i];
    vals[i].len = l;
  }
  r->values = vals; /* read by send_response, before this returns */
  r->nvalues = n;
  send_response(node, r, from, now);
}

static void handle_announce(mdht_node *node, const mdht_addr *from,
                            mdht_time now) {
  const mdht_krpc_msg *q = node->in;
  if (!mdht_token_check(&node->tokens, from, q->token.p, q->token.len)) {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_TOKEN_REJECTED, now);
    ev.addr = *from;
    ev.id = q->id;
    node->stats.tokens_rejected++;
    publish(node, &ev);
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_PROTOCOL, "bad token",
               now);
    return;
  }
  mdht_addr peer = *from;
  if (!q->implied_port) {
    if (q->port <= 0 || q->port > 65535) {
      send_error(node, from, q->t, q->method, MDHT_KRPC_E_PROTOCOL,
                 "invalid port", now);
      return;
    }
    peer.port = (uint16_t)q->port;
  }
  int rc = mdht_peers_add(node->store, &q->target, &peer, q->seed, now);
  if (rc == MDHT_ERR_ADDR) {
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_PROTOCOL,
               "invalid peer address", now);
    return;
  }
  if (rc < 0) {
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_SERVER,
               "peer store full", now);
    return;
  }
  mdht_krpc_msg r;
  begin_response(node, &r, from);
  send_response(node, &r, from, now);
}

static void handle_sample(mdht_node *node, const mdht_addr *from,
                          mdht_time now) {
  uint8_t nodes[MDHT_CLOSEST_BUF];
  /* BEP 51: as many samples as fit in one datagram beside the nodes. */
  enum { MAX_SAMPLES = 40 };
  mdht_id ids[MAX_SAMPLES];
  mdht_krpc_msg rm;
  mdht_krpc_msg *r = begin_response(node, &rm, from);
  put_closest(node, r, &node->in->target, nodes, now);
  size_t n = mdht_peers_sample(node->store, ids, MAX_SAMPLES);
  r->samples.p = (const uint8_t *)ids;
  r->samples.len = n * MDHT_ID_LEN;
  r->num = node->store->nih;
  /* Our samples change as announces arrive; 6 hours (BEP 51's maximum)
   * would hide them, libtorrent uses 0..21600 with a default of 21600. */
  r->interval = 300;
  if (n > 0) {
    /* Beside 16 IPv6 nodes, 40 samples would not fit: measure, and drop
     * samples until the response is within MDHT_RESPONSE_LIMIT. */
    uint8_t probe[2 * MDHT_MAX_PACKET]; /* room to measure an overshoot */
    int len = mdht_krpc_encode(r, probe, sizeof probe);
    size_t over = len < 0 ? n * MDHT_ID_LEN
                  : (size_t)len > MDHT_RESPONSE_LIMIT
                      ? (size_t)len - MDHT_RESPONSE_LIMIT
                      : 0;
    size_t drop_n = (over + MDHT_ID_LEN - 1) / MDHT_ID_LEN;
    n = drop_n < n ? n - drop_n : 0;
    r->samples.len = n * MDHT_ID_LEN;
  }
  send_response(node, r, from, now);
}

/* ------------------------------------------------------ BEP 44 handlers */

/* Fills the item part of a get response. Immutable items are looked up
 * only when the query has no seq (a seq means a mutable item, as in
 * libtorrent); a mutable item's k, sig and v are left out when the
 * requester already has its seq or a later one (BEP 44). Returns whether
 * a value went in. */
static bool put_item(mdht_krpc_msg *r, const mdht_krpc_msg *q,
                     const mdht_item *it) {
  if (!it || (q->has_seq && !it->is_mutable)) return false;
  if (it->is_mutable) {
    r->has_seq = true;
    r->seq = it->seq;
    if (q->has_seq && q->seq >= it->seq) return false;
    r->item_k = (mdht_bytes){it->k, MDHT_ITEM_PK_LEN};
    r->item_sig = (mdht_bytes){it->sig, MDHT_ITEM_SIG_LEN};
  }
  r->item_v = (mdht_bytes){it->v, it->vlen};
  return true;
}

static void handle_get(mdht_node *node, const mdht_addr *from, mdht_time now) {
  uint8_t nodes[MDHT_RT_KMAX * MDHT_COMPACT_NODE6];
  uint8_t token[MDHT_TOKEN_LEN];
  const mdht_krpc_msg *q = node->in;
  mdht_krpc_msg rm;
  mdht_krpc_msg *r = begin_response(node, &rm, from);
  mdht_token_make(&node->tokens, from, token);
  r->token = (mdht_bytes){token, sizeof token};
  put_closest(node, r, &q->target, nodes, now);
  const mdht_item *it = mdht_items_get(node->istore, &q->target, now);
  bool served = put_item(r, q, it);
  if (served) {
    /* A 1,000-byte value beside 8 IPv6 nodes passes MDHT_RESPONSE_LIMIT:
     * the item is what was asked for, the nodes give way. */
    uint8_t probe[2 * MDHT_MAX_PACKET];
    int len = mdht_krpc_encode(r, probe, sizeof probe);
    if (len < 0 || (size_t)len > MDHT_RESPONSE_LIMIT) {
      r->nodes = (mdht_bytes){NULL, 0};
      r->nodes6 = (mdht_bytes){NULL, 0};
    }
  }
  uint64_t before = node->stats.responses_out;
  send_response(node, r, from, now);
  if (!served || node->stats.responses_out == before) return;
  node->stats.items_served++;
  mdht_event ev;
  mdht_items_event(&ev, MDHT_EV_ITEM_SERVED, it, from, now);
  publish(node, &ev);
}

static void token_rejected(mdht_node *node, const mdht_addr *from,
                           mdht_time now) {
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_TOKEN_REJECTED, now);
  ev.addr = *from;
  ev.id = node->in->id;
  node->stats.tokens_rejected++;
  publish(node, &ev);
}

/* BEP 44 put: stores the item, or returns the KRPC code to refuse it
 * with and its text. The checks run in libtorrent's order, so that both
 * answer a bad put with the same code: size (205), salt (207), token
 * (203), signature (206), then the store's cas (301) and seq (302). */
static int do_put(mdht_node *node, const mdht_addr *from, mdht_time now,
                  const char **text) {
  const mdht_krpc_msg *q = node->in;
  *text = "item not stored";
  if (q->item_v.len > MDHT_ITEM_MAX_V) {
    *text = "message (v field) too big";
    return MDHT_KRPC_E_V_TOO_BIG;
  }
  if (q->salt.len > MDHT_ITEM_MAX_SALT) {
    *text = "salt (salt field) too big";
    return MDHT_KRPC_E_SALT_TOO_BIG;
  }
  if (!mdht_token_check(&node->tokens, from, q->token.p, q->token.len)) {
    token_rejected(node, from, now);
    *text = "bad token";
    return MDHT_KRPC_E_PROTOCOL;
  }
  mdht_id target;
  mdht_item_put p = {.v = q->item_v.p, .vlen = q->item_v.len};
  if (q->item_k.len) { /* mutable */
    if (q->seq < 0) {
      *text = "negative sequence number";
      return MDHT_KRPC_E_PROTOCOL;
    }
    if (!mdht_item_verify(q->item_k.p, q->item_sig.p, q->salt.p, q->salt.len,
                          q->seq, q->item_v.p, q->item_v.len)) {
      *text = "invalid signature";
      return MDHT_KRPC_E_BAD_SIG;
    }
    mdht_item_mutable_target(q->item_k.p, q->salt.p, q->salt.len, &target);
    p = (mdht_item_put){.v = q->item_v.p,
                        .vlen = q->item_v.len,
                        .is_mutable = true,
                        .k = q->item_k.p,
                        .sig = q->item_sig.p,
                        .salt = q->salt.p,
                        .salt_len = q->salt.len,
                        .seq = q->seq,
                        .has_cas = q->has_cas,
                        .cas = q->cas};
  } else {
    mdht_item_immutable_target(q->item_v.p, q->item_v.len, &target);
  }
  int rc = mdht_items_put(node->istore, &target, &p, from, now);
  if (rc == MDHT_KRPC_E_CAS) *text = "CAS mismatch";
  if (rc == MDHT_KRPC_E_SEQ) *text = "sequence number less than current";
  if (rc < 0) rc = MDHT_KRPC_E_SERVER;
  return rc;
}

static void handle_put(mdht_node *node, const mdht_addr *from, mdht_time now) {
  const char *text;
  int code = do_put(node, from, now, &text);
  if (code) {
    node->stats.puts_rejected++;
    send_error(node, from, node->in->t, MDHT_M_PUT, code, text, now);
    return;
  }
  node->stats.items_stored++;
  mdht_krpc_msg r;
  begin_response(node, &r, from);
  send_response(node, &r, from, now);
}

static void handle_query(mdht_node *node, const mdht_addr *from,
                         mdht_time now) {
  const mdht_krpc_msg *q = node->in;
  if (node->cfg.read_only) {
    /* BEP 43: a read-only node does not answer queries. */
    drop(node, from, MDHT_DROP_READ_ONLY, 0, now);
    return;
  }
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_QUERY_RECEIVED, now);
  ev.addr = *from;
  ev.id = q->id;
  ev.method = q->method;
  ev.u.query.ro = q->ro;
  ev.u.query.no_id = !q->has_id;
  node->stats.queries_in[q->method]++;
  publish(node, &ev);
  /* BEP 43: a read-only node never enters the table; nor does a sender we
   * have no id for (an unknown method needs none to get its 204). The
   * table hears of the sender before the handler answers, as it did when
   * it listened on the bus: the confirmation ping draws its transaction
   * check first, so seeded simulations replay as they did. */
  if (!q->ro && q->has_id)
    table_heard(node, &q->id, from, MDHT_RT_HEARD_QUERY, now);

  switch (q->method) {
  case MDHT_M_PING:
    handle_ping(node, from, now);
    break;
  case MDHT_M_FIND_NODE:
    handle_find_node(node, from, now);
    break;
  case MDHT_M_GET_PEERS:
    handle_get_peers(node, from, now);
    break;
  case MDHT_M_ANNOUNCE_PEER:
    handle_announce(node, from, now);
    break;
  case MDHT_M_SAMPLE_INFOHASHES:
    handle_sample(node, from, now);
    break;
  case MDHT_M_GET:
    handle_get(node, from, now);
    break;
  case MDHT_M_PUT:
    handle_put(node, from, now);
    break;
  default:
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_METHOD,
               "method unknown", now);
    break;
  }
}

/* ------------------------------------------------------------ responses */

/* Soft timeouts no shorter than this: below it, a scheduling hiccup of
 * the host would count as a slow node. */
#define MDHT_MIN_SOFT_TIMEOUT_MS 50

/* Folds one round trip into the estimate (RFC 6298's smoothing) and sets
 * the lookups' soft timeout to srtt + 2 rttvar: a node that has not
 * answered by then is most likely gone, on this network, not merely slow.
 * Being early costs little: the soft timeout only lets one more query
 * start, and a late answer still counts until the lookup ends. (srtt + 4
 * rttvar, RFC 6298's retransmission timeout, measured 6.7 RTTs per lookup
 * in the simulator against 4.9 for this.) The configured soft timeout
 * stays the upper bound. */
static void observe_rtt(mdht_node *node, mdht_time rtt) {
  uint32_t r = rtt > 60000 ? 60000 : (uint32_t)rtt;
  if (node->srtt8 == 0) {
    node->srtt8 = r * 8;
    node->rttvar4 = r * 2;
  } else {
    int32_t err = (int32_t)r - (int32_t)(node->srtt8 / 8);
    node->srtt8 = (uint32_t)((int32_t)node->srtt8 + err);
    uint32_t aerr = (uint32_t)(err < 0 ? -err : err);
    node->rttvar4 = node->rttvar4 - node->rttvar4 / 4 + aerr;
  }
  mdht_time soft = node->srtt8 / 8 + node->rttvar4 / 2;
  if (soft < MDHT_MIN_SOFT_TIMEOUT_MS) soft = MDHT_MIN_SOFT_TIMEOUT_MS;
  mdht_lookups_set_soft_timeout(&node->lookups, soft);
}

static void owner_failed(mdht_node *node, const mdht_txn *txn, mdht_time now);
static void external_vote(mdht_node *node, const mdht_addr *from,
                          const mdht_addr *claimed, mdht_time now);
static void owner_answered(mdht_node *node, const mdht_txn *txn,
                           const mdht_addr *from, mdht_time now);
static void sample_failed(mdht_node *node, const mdht_txn *txn, int code,
                          mdht_time now);

/* A response or error that matched our query `txn` (already closed). */
static void handle_reply(mdht_node *node, const mdht_addr *from,
                         const mdht_txn *tx, mdht_time now) {
  const mdht_krpc_msg *m = node->in;
  mdht_txn txn = *tx;
  if (txn.owner.kind == MDHT_OWNER_CONFIRM ||
      txn.owner.kind == MDHT_OWNER_CHECK)
    node->maint_pings--;
  if (txn.owner.kind == MDHT_OWNER_HINT) node->hint_pings--;

  if (m->y == 'e') {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_ERROR_RECEIVED, now);
    ev.addr = *from;
    ev.method = txn.method;
    ev.u.error.code = (int)m->ecode;
    node->stats.errors_in++;
    publish(node, &ev);
    if (txn.owner.kind == MDHT_OWNER_SAMPLE)
      sample_failed(node, &txn, (int)m->ecode, now);
    else
      owner_failed(node, &txn, now);
    return;
  }
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_RESPONSE_RECEIVED, now);
  ev.addr = *from;
  ev.id = m->id;
  ev.method = txn.method;
  ev.u.response.rtt_ms = now - txn.sent;
  if (txn.has_id && !mdht_id_eq(&txn.id, &m->id)) {
    /* It answered with another id than the one we know it by: not the
     * node we wanted, and not to be trusted with a routing slot. */
    mdht_rtable_failed(&node->rt, &txn.id, from, now);
    owner_failed(node, &txn, now);
    return;
  }
  node->stats.responses_in++;
  publish(node, &ev);
  table_heard(node, &m->id, from, MDHT_RT_HEARD_REPLY, now);
  note_rtt(node, &m->id, from, now - txn.sent);
  observe_rtt(node, now - txn.sent);
  /* Only here, after the transaction matched: a vote is a response to
   * one of our queries, from the address we sent it to. */
  if (m->has_ip) external_vote(node, from, &m->ip, now);
  owner_answered(node, &txn, from, now);
}

static bool id_is_zero(const mdht_id *id) {
  static const mdht_id zero;
  return mdht_id_eq(id, &zero);
}

/* ------------------------------------------------------------ operations */

static void boot_step(mdht_node *node, mdht_time now);

static mdht_op *op_new(mdht_node *node, mdht_method kind, uint8_t purpose,
                       const mdht_id *target, mdht_result_cb cb, void *user,
                       mdht_time now) {
  size_t npeers =
      purpose == MDHT_OP_USER && kind != MDHT_M_PING ? MDHT_RESULT_PEERS : 0;
  size_t nv = kind == MDHT_M_GET || kind == MDHT_M_PUT ? MDHT_ITEM_MAX_V : 0;
  mdht_op *op = calloc(1, sizeof *op + npeers * sizeof(mdht_addr) + 2 * nv);
  if (!op) return NULL;
  uint8_t *tail = (uint8_t *)(op + 1); /* mdht_op's alignment suits both */
  op->peers = npeers ? (mdht_addr *)tail : NULL;
  tail += npeers * sizeof(mdht_addr);
  op->found_v = nv ? tail : NULL;
  op->put_v = nv ? tail + nv : NULL;
  op->id = (*node->op_ids)++;
  if (*node->op_ids == 0) *node->op_ids = 1; /* 0 is never an operation id */
  op->kind = kind;
  op->purpose = purpose;
  op->cb = cb;
  op->user = user;
  if (target) op->target = *target;
  op->started = now;
  op->res.id = op->id;
  op->res.kind = kind;
  op->res.target = op->target;
  op->res.peers = op->peers;
  op->next = node->ops;
  node->ops = op;
  return op;
}

static void op_free(mdht_node *node, mdht_op *op) {
  for (mdht_op **p = &node->ops; *p; p = &(*p)->next) {
    if (*p == op) {
      *p = op->next;
      free(op->filters);
      free(op->twin_res);
      mdht_crawl_del(op->crawl);
      free(op);
      return;
    }
  }
}

static mdht_op *op_find(mdht_node *node, uint32_t id) {
  for (mdht_op *op = node->ops; op; op = op->next)
    if (op->id == id) return op;
  return NULL;
}

static mdht_op *op_find_lookup(mdht_node *node, uint32_t lookup_id) {
  for (mdht_op *op = node->ops; op; op = op->next)
    if (op->lookup_id == lookup_id) return op;
  return NULL;
}

/* Reports an operation to its owner and frees it; an operation whose
 * twin on the sibling still runs waits for it (twin_done). */
static void merge_result(mdht_op *op, const mdht_result *r);

static void op_finish(mdht_node *node, mdht_op *op, mdht_time now) {
  if (op->pair_pending) {
    op->self_done = true;
    return;
  }
  if (op->twin_res) {
    merge_result(op, op->twin_res);
    free(op->twin_res);
    op->twin_res = NULL;
  }
  op->res.elapsed_ms =
      op->res.kind == MDHT_M_PING ? op->res.elapsed_ms : now - op->started;
  if (op->filters) {
    op->res.scrape_seeds = mdht_bloom_estimate(&op->filters[0]);
    op->res.scrape_peers = mdht_bloom_estimate(&op->filters[1]);
  }
  if (op->cb) op->cb(&op->res, op->user);
  op_free(node, op);
}

static int lookup_send(void *user, uint32_t lookup_id, mdht_method method,
                       const mdht_id *target, const mdht_id *node_id,
                       const mdht_addr *addr, mdht_time now) {
  mdht_node *node = user;
  mdht_krpc_msg qm;
  mdht_krpc_msg *q = &qm;
  mdht_krpc_msg_init(q, 'q');
  q->method = method;
  q->target = *target;
  /* The engine sends its first queries before it returns the lookup's id:
   * the operation being started is known from node->starting. */
  const mdht_op *op =
      node->starting ? node->starting : op_find_lookup(node, lookup_id);
  q->scrape = op && op->scrape;
  mdht_txn_owner owner = {.kind = MDHT_OWNER_LOOKUP, .cookie = lookup_id};
  return mdht__node_send_query(
      node, q, addr, id_is_zero(node_id) ? NULL : node_id, owner, now);
}

static int start_lookup(mdht_node *node, mdht_op *op, mdht_method kind,
                        mdht_time now) {
  mdht_lookup_node seeds[MDHT_RT_KMAX * 2 + MDHT_BOOT_MAX_ROUTERS];
  mdht_rt_entry near[MDHT_RT_KMAX * 2];
  /* The lookup that a router's answer starts (boot_step) joins us through
   * the routers only, whatever the table holds, whether or not we had
   * joined from it before: the table's nodes, closer to our id, would keep
   * the far routers out of the window. A router whose own first ping was
   * lost holds, when the retry is answered, only joiners that know no one
   * but it; seeded from them, its lookup never asked the router, and it
   * and every node that joined through it stayed an island (50,000 nodes,
   * 5 % loss: a quarter of the network, 62.8 % of lookups found their
   * peer). Any other lookup: more seeds than K, a few are likely stale. */
  bool rejoin = op->purpose == MDHT_OP_BOOT_SELF && node->boot.nseeds > 0 &&
                !node->boot.router_joined;
  size_t n =
      rejoin ? 0
             : mdht_rtable_closest(&node->rt, &op->target, node->bound.family,
                                   near, MDHT_RT_KMAX * 2, now);
  size_t ns = 0;
  for (size_t i = 0; i < n; i++)
    seeds[ns++] = (mdht_lookup_node){
        .id = near[i].id, .addr = mdht_rtable_addr(&node->rt, &near[i])};
  /* Routers that answered us seed every lookup while the table is thin:
   * the engine drops those already present. */
  if (n < node->cfg.k || rejoin)
    for (uint32_t i = 0; i < node->boot.nseeds; i++)
      seeds[ns++] = node->boot.seeds[i];
  node->starting = op;
  int64_t id =
      mdht_lookup_start(&node->lookups, kind, &op->target, seeds, ns, now);
  node->starting = NULL;
  if (id < 0) return (int)id;
  op->lookup_id = (uint32_t)id;
  return 0;
}

static uint32_t table_size(const mdht_node *node, mdht_time now);

static void boot_done(mdht_node *node, mdht_time now) {
  if (table_size(node, now) == 0) {
    /* Nobody answered the lookups: try the routers again later. */
    mdht_boot_reset(&node->boot, now);
    return;
  }
  mdht_boot_succeeded(&node->boot);
  uint32_t good, q, total, repl;
  mdht_rtable_counts(&node->rt, now, &good, &q, &total, &repl);
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_BOOTSTRAP_DONE, now);
  ev.id = node->id;
  ev.u.state.nodes = total;
  ev.u.state.peers = node->store->npeers;
  publish(node, &ev);
}

/* Starts a housekeeping lookup for `target`; returns 0 or an error. */
static int start_internal(mdht_node *node, uint8_t purpose,
                          const mdht_id *target, mdht_time now) {
  mdht_op *op =
      op_new(node, MDHT_M_FIND_NODE, purpose, target, NULL, NULL, now);
  if (!op) return MDHT_ERR_NOMEM;
  int rc = start_lookup(node, op, MDHT_M_FIND_NODE, now);
  if (rc < 0) {
    op_free(node, op);
    return rc;
  }
  /* Housekeeping keeps the plain bound, alpha queries in flight in all
   * (lookup.h, "The window"): nobody waits on it, and the wider window of
   * user lookups costs a third more datagrams. At a million simulated
   * nodes, where every joiner looks up its own id, that was 16 % more
   * events and 22 % more wall time in the join. */
  mdht_lookup_set_alpha(&node->lookups, op->lookup_id, node->cfg.alpha);
  return 0;
}

/* Starts bucket-fill lookups, farthest bucket first, until
 * MDHT_BOOT_FILL_PARALLEL run or none is left; a bucket that is full by
 * its turn is skipped. */
static void fill_more(mdht_node *node, mdht_time now) {
  mdht_bootstrap *bt = &node->boot;
  while (bt->fill_pending < MDHT_BOOT_FILL_PARALLEL &&
         bt->fill_next < bt->fill_end) {
    uint32_t b = bt->fill_next++;
    if (node->rt.buckets[b].n >= node->cfg.k) continue;
    uint8_t rnd[MDHT_ID_LEN];
    mdht__node_random(node, rnd, sizeof rnd);
    mdht_id target;
    mdht_maint_bucket_target(&node->rt, b, rnd, &target);
    if (start_internal(node, MDHT_OP_BOOT_FILL, &target, now) == 0)
      bt->fill_pending++;
  }
}

/* After the lookup for our own id: one lookup in each bucket that is not
 * full, so that the far buckets fill too (BEP 5 leaves this to the
 * implementation; libtorrent and jech/dht do the same), a few at a time
 * (bootstrap.h). */
static void boot_fill(mdht_node *node, mdht_time now) {
  node->boot.phase = MDHT_BOOT_FILL;
  node->boot.fill_pending = 0;
  /* The last bucket is the one the self lookup just filled. Splits
   * during the fills only add buckets past this one. */
  node->boot.fill_next = 0;
  node->boot.fill_end = node->rt.nbuckets - 1;
  fill_more(node, now);
  if (node->boot.fill_pending == 0) boot_done(node, now);
}

static void announce_phase(mdht_node *node, mdht_op *op,
                           const mdht_lookup_results *res, mdht_time now) {
  op->res.rounds = res->rounds;
  op->res.queries = res->queries;
  op->res.responses = res->responses;
  op->res.failures = res->failures;
  for (uint32_t i = 0; i < res->n_nodes && op->ann_pending < node->cfg.k; i++) {
    const mdht_lookup_result *r = &res->nodes[i];
    if (r->token_len == 0) continue;
    mdht_krpc_msg qm;
    mdht_krpc_msg *q = &qm;
    mdht_krpc_msg_init(q, 'q');
    q->method = MDHT_M_ANNOUNCE_PEER;
    q->target = op->target;
    q->port = op->port;
    q->implied_port = op->implied_port;
    q->seed = op->seed;
    q->token.p = r->token;
    q->token.len = r->token_len;
    mdht_txn_owner owner = {.kind = MDHT_OWNER_ANNOUNCE, .cookie = op->id};
    if (mdht__node_send_query(node, q, &r->addr, &r->id, owner, now) == 0)
      op->ann_pending++;
  }
  op->res.queries += op->ann_pending;
  if (op->ann_pending == 0) {
    /* Nobody gave a usable token: nothing was announced. */
    op->res.ok = false;
    op_finish(node, op, now);
  }
}

/* BEP 44: the item the put will store, signed now that the lookup has
 * told the current seq. Returns false if it cannot be (seq overflow). */
static bool put_item_ready(mdht_op *op) {
  mdht_result *res = &op->res;
  if (op->item_mutable) {
    int64_t seq = op->put_seq;
    if (seq < 0) {
      if (res->item_vlen && res->item_seq == INT64_MAX) return false;
      seq = res->item_vlen ? res->item_seq + 1 : 1;
    }
    if (mdht_item_sign(op->sk, op->salt, op->salt_len, seq, op->put_v,
                       op->put_vlen, res->item_sig) != 0)
      return false;
    res->item_mutable = true;
    res->item_seq = seq;
    memcpy(res->item_k, op->pk, MDHT_ITEM_PK_LEN);
  }
  res->item_v = op->put_v;
  res->item_vlen = op->put_vlen;
  return true;
}

/* Puts to the closest nodes that gave a token; their answers come back
 * through announce_reply, which counts them the same way. */
static void put_phase(mdht_node *node, mdht_op *op,
                      const mdht_lookup_results *res, mdht_time now) {
  op->res.rounds = res->rounds;
  op->res.queries = res->queries;
  op->res.responses = res->responses;
  op->res.failures = res->failures;
  bool ready = put_item_ready(op);
  const mdht_result *it = &op->res;
  for (uint32_t i = 0;
       ready && i < res->n_nodes && op->ann_pending < node->cfg.k; i++) {
    const mdht_lookup_result *r = &res->nodes[i];
    if (r->token_len == 0) continue;
    mdht_krpc_msg qm;
    mdht_krpc_msg *q = &qm;
    mdht_krpc_msg_init(q, 'q');
    q->method = MDHT_M_PUT;
    q->token = (mdht_bytes){r->token, r->token_len};
    q->item_v = (mdht_bytes){it->item_v, it->item_vlen};
    if (op->item_mutable) {
      q->item_k = (mdht_bytes){op->pk, MDHT_ITEM_PK_LEN};
      q->item_sig = (mdht_bytes){it->item_sig, MDHT_ITEM_SIG_LEN};
      q->salt = (mdht_bytes){op->salt, op->salt_len};
      q->has_seq = true;
      q->seq = it->item_seq;
      q->has_cas = op->has_cas;
      q->cas = op->cas;
    }
    mdht_txn_owner owner = {.kind = MDHT_OWNER_ANNOUNCE, .cookie = op->id};
    if (mdht__node_send_query(node, q, &r->addr, &r->id, owner, now) == 0)
      op->ann_pending++;
  }
  op->res.queries += op->ann_pending;
  if (op->ann_pending == 0) op_finish(node, op, now); /* no token: nnodes 0 */
}

static void lookup_done(void *user, const mdht_lookup_results *res) {
  mdht_node *node = user;
  mdht_op *op = op_find_lookup(node, res->lookup_id);
  if (!op) return;
  mdht_time now = op->started + res->elapsed;
  op->lookup_id = 0;
  switch (op->purpose) {
  case MDHT_OP_BOOT_SELF:
    op_free(node, op);
    /* Nobody answered: the router we heard from is in the table, but the
     * table is no better than before. Going on would leave this node with
     * one entry until the next bucket refresh; try again instead. */
    if (res->responses == 0)
      mdht_boot_failed(&node->boot, now);
    else
      boot_fill(node, now);
    return;
  case MDHT_OP_BOOT_FILL:
    op_free(node, op);
    if (node->boot.fill_pending == 0) return; /* reset meanwhile */
    node->boot.fill_pending--;
    fill_more(node, now);
    if (node->boot.fill_pending == 0) boot_done(node, now);
    return;
  case MDHT_OP_REFRESH:
    op_free(node, op);
    return;
  default:
    break;
  }
  size_t np =
      res->n_peers < MDHT_RESULT_PEERS ? res->n_peers : MDHT_RESULT_PEERS;
  memcpy(op->peers, res->peers, np * sizeof *op->peers);
  /* Peers announced to this very node count too: the lookup never asks
   * itself, and on a small network it may be one of the closest. */
  mdht_addr local[32];
  size_t nl = mdht_peers_get(node->store, &op->target, node->bound.family,
                             local, 32, now);
  for (size_t i = 0; i < nl && np < MDHT_RESULT_PEERS; i++) {
    bool dup = false;
    for (size_t j = 0; j < np && !dup; j++)
      dup = mdht_addr_eq(&op->peers[j], &local[i]);
    if (!dup) op->peers[np++] = local[i];
  }
  op->res.npeers = np;
  op->res.ok = res->ok;
  if (op->kind == MDHT_M_ANNOUNCE_PEER) {
    announce_phase(node, op, res, now);
    return;
  }
  if (op->kind == MDHT_M_PUT) {
    put_phase(node, op, res, now);
    return;
  }
  size_t nn =
      res->n_nodes < MDHT_RESULT_NODES ? res->n_nodes : MDHT_RESULT_NODES;
  for (size_t i = 0; i < nn; i++) {
    op->res.nodes[i].id = res->nodes[i].id;
    op->res.nodes[i].addr = res->nodes[i].addr;
  }
  op->res.nnodes = nn;
  op->res.rounds = res->rounds;
  op->res.queries = res->queries;
  op->res.responses = res->responses;
  op->res.failures = res->failures;
  op_finish(node, op, now);
}

/* BEP 33: a scrape ORs each node's filters into its own; a node that sent
 * values but no filters is an older node, and its values count as
 * downloaders unless a seed filter already holds them. */
static void scrape_merge(mdht_node *node, uint32_t lookup_id,
                         const mdht_addr *values, size_t nv) {
  const mdht_krpc_msg *m = node->in;
  if (!m->bfsd.len && !m->bfpe.len && nv == 0) return;
  mdht_op *op = op_find_lookup(node, lookup_id);
  if (!op || !op->filters) return;
  mdht_bloom f;
  if (m->bfsd.len || m->bfpe.len) {
    if (mdht_bloom_from_bytes(&f, m->bfsd.p, m->bfsd.len) == 0)
      mdht_bloom_union(&op->filters[0], &f);
    if (mdht_bloom_from_bytes(&f, m->bfpe.p, m->bfpe.len) == 0)
      mdht_bloom_union(&op->filters[1], &f);
    op->res.scrape_nodes++;
    return;
  }
  for (size_t i = 0; i < nv; i++)
    if (!mdht_bloom_test(&op->filters[0], &values[i]))
      mdht_bloom_insert(&op->filters[1], &values[i]);
}

/* BEP 32: nodes of the sibling's family in an answer to us (we asked
 * for both) are offered to the sibling: a few per answer, each pinged
 * from the sibling's socket, so that it enters the sibling's table
 * through the usual path (an answer; the table's per-IP and per-prefix
 * rules, docs/SECURITY.md) only if it answers. Only for buckets with
 * room, never a martian (or a private address on a public node), and
 * never more than MDHT_MAX_HINT_PINGS in flight. */
static void offer_to_sibling(mdht_node *node, mdht_time now) {
  mdht_node *sib = node->sibling;
  if (!sib) return;
  bool v6 = sib->bound.family == MDHT_AF_INET6;
  mdht_bytes blob = v6 ? node->in->nodes6 : node->in->nodes;
  size_t step = v6 ? MDHT_COMPACT_NODE6 : MDHT_COMPACT_NODE4;
  uint32_t offered = 0;
  for (size_t off = 0; off + step <= blob.len && offered < 2; off += step) {
    mdht_id id;
    mdht_addr a;
    if (sib->hint_pings >= MDHT_MAX_HINT_PINGS) return;
    if (mdht_node_from_compact(&id, &a, blob.p + off, step) != 0 ||
        a.family != sib->bound.family || mdht_addr_is_martian(&a) ||
        (!sib->cfg.allow_private && mdht_addr_is_private(&a)) ||
        mdht_id_eq(&id, &sib->id) || mdht_rtable_find(&sib->rt, &a))
      continue;
    uint32_t b = mdht_rtable_bucket_of(&sib->rt, &id);
    if (sib->rt.buckets[b].n >= sib->cfg.k) continue;
    if (send_ping(sib, &a, &id, MDHT_OWNER_HINT, now) == 0) {
      sib->hint_pings++;
      offered++;
    }
  }
}

/* BEP 44: an item in a get answer. It counts only if it checks out: an
 * immutable value must hash to the target (then nothing better can come:
 * a get stops there), a mutable one must carry our key and a valid
 * signature, and beat the seq found so far. */
static void item_answered(mdht_node *node, uint32_t lookup_id,
                          const mdht_krpc_msg *m) {
  mdht_op *op = op_find_lookup(node, lookup_id);
  if (!op || (op->kind != MDHT_M_GET && op->kind != MDHT_M_PUT)) return;
  if (m->item_v.len > MDHT_ITEM_MAX_V) return;
  mdht_result *res = &op->res;
  if (!op->item_mutable) {
    mdht_id t;
    mdht_item_immutable_target(m->item_v.p, m->item_v.len, &t);
    if (!mdht_id_eq(&t, &op->target) || res->item_vlen) return;
  } else {
    if (m->item_k.len != MDHT_ITEM_PK_LEN || !m->has_seq ||
        memcmp(m->item_k.p, op->pk, MDHT_ITEM_PK_LEN) != 0 ||
        (res->item_vlen && m->seq <= res->item_seq) ||
        !mdht_item_verify(op->pk, m->item_sig.p, op->salt, op->salt_len, m->seq,
                          m->item_v.p, m->item_v.len))
      return;
    res->item_mutable = true;
    res->item_seq = m->seq;
    memcpy(res->item_k, op->pk, MDHT_ITEM_PK_LEN);
    memcpy(res->item_sig, m->item_sig.p, MDHT_ITEM_SIG_LEN);
  }
  memcpy(op->found_v, m->item_v.p, m->item_v.len);
  res->item_v = op->found_v;
  res->item_vlen = m->item_v.len;
  if (!op->item_mutable && op->kind == MDHT_M_GET)
    mdht_lookup_stop(&node->lookups, lookup_id);
}

/* A bucket-fill or refresh lookup has done its job once the bucket that
 * covers its target holds k good nodes: what it would find beyond that
 * could only wait in the replacement list. Run to convergence, each such
 * lookup cost some 25 queries; libtorrent and jech/dht refresh a bucket
 * with a single query. Returns how many good nodes the bucket still
 * lacks; called after the responder went into the table. */
static uint32_t bucket_missing(const mdht_node *node, const mdht_id *target,
                               mdht_time now) {
  const mdht_rtable *rt = &node->rt;
  const mdht_rt_bucket *bk = &rt->buckets[mdht_rtable_bucket_of(rt, target)];
  uint32_t good = 0;
  for (uint32_t i = 0; i < bk->n; i++)
    good += mdht_rtable_state(rt, &bk->nodes[i], now) == MDHT_RT_GOOD;
  return good >= node->cfg.k ? 0 : node->cfg.k - good;
}

/* A fill or refresh lookup stops once its bucket is full, and keeps no
 * more queries in flight than the bucket lacks nodes: the answers to the
 * others would have nowhere to go. Not the bucket next to ours (below). */
static void fill_progress(mdht_node *node, uint32_t lookup_id, mdht_time now) {
  const mdht_op *op = op_find_lookup(node, lookup_id);
  if (!op ||
      (op->purpose != MDHT_OP_BOOT_FILL && op->purpose != MDHT_OP_REFRESH))
    return;
  /* The bucket next to ours (the sibling of the range that holds our id)
   * is still filled to convergence: its nodes are among the closest to
   * ids near ours, and each query sent there makes us known to the node
   * asked. Stopped early, lookups in a 200-node network missed one of the
   * true 8 closest nodes (test_sim). */
  if (mdht_rtable_bucket_of(&node->rt, &op->target) + 2 >= node->rt.nbuckets)
    return;
  uint32_t missing = bucket_missing(node, &op->target, now);
  if (missing == 0)
    mdht_lookup_stop(&node->lookups, lookup_id);
  else
    mdht_lookup_set_alpha(&node->lookups, lookup_id, missing);
}

/* Parses a response to a lookup query for the engine. */
static void lookup_answered(mdht_node *node, const mdht_txn *txn,
                            const mdht_addr *from, mdht_time now) {
  const mdht_krpc_msg *m = node->in;
  enum { MAX_NODES = MDHT_MAX_DATAGRAM / MDHT_COMPACT_NODE4 };
  mdht_lookup_node nodes[MAX_NODES];
  mdht_addr values[MDHT_KRPC_MAX_VALUES];
  size_t nn = 0, nv = 0;
  bool v6 = node->bound.family == MDHT_AF_INET6;
  mdht_bytes blob = v6 ? m->nodes6 : m->nodes;
  size_t step = v6 ? MDHT_COMPACT_NODE6 : MDHT_COMPACT_NODE4;
  for (size_t off = 0; off + step <= blob.len && nn < MAX_NODES; off += step) {
    if (mdht_node_from_compact(&nodes[nn].id, &nodes[nn].addr, blob.p + off,
                               step) == 0)
      nn++;
  }
  mdht_bytes raw[MDHT_KRPC_MAX_VALUES];
  size_t nraw = mdht_krpc_values(m, raw, MDHT_KRPC_MAX_VALUES);
  for (size_t i = 0; i < nraw; i++) {
    if (mdht_addr_from_compact(&values[nv], raw[i].p, raw[i].len) == 0 &&
        values[nv].family == node->bound.family)
      nv++;
  }
  offer_to_sibling(node, now);
  scrape_merge(node, txn->owner.cookie, values, nv);
  /* The item first: the answer may be the lookup's last, and the engine
   * reports the end from inside mdht_lookup_on_response. */
  if (m->item_v.len) item_answered(node, txn->owner.cookie, m);
  fill_progress(node, txn->owner.cookie, now);
  mdht_lookup_on_response(&node->lookups, txn->owner.cookie, &m->id, from,
                          nodes, nn, values, nv, m->token.p, m->token.len, now);
}

static void announce_reply(mdht_node *node, const mdht_txn *txn,
                           const mdht_addr *from, bool ok, mdht_time now) {
  mdht_op *op = op_find(node, txn->owner.cookie);
  if (!op || op->ann_pending == 0) return;
  op->ann_pending--;
  if (ok) {
    op->res.responses++;
    if (op->res.nnodes < MDHT_RESULT_NODES) {
      op->res.nodes[op->res.nnodes].id = node->in->id;
      op->res.nodes[op->res.nnodes].addr = *from;
      op->res.nnodes++;
    }
  } else {
    op->res.failures++;
  }
  if (op->ann_pending == 0) {
    /* A put keeps the lookup's ok (nodes answered): whether any stored the
     * item is `nnodes`, so that a refusal (cas, seq) is not "no answer". */
    if (op->kind != MDHT_M_PUT) op->res.ok = op->res.nnodes > 0;
    op_finish(node, op, now);
  }
}

static void ping_op_reply(mdht_node *node, const mdht_txn *txn,
                          const mdht_addr *from, bool ok, mdht_time now) {
  mdht_op *op = op_find(node, txn->owner.cookie);
  if (!op) return;
  op->res.ok = ok;
  op->res.queries = 1;
  if (ok) {
    op->res.responses = 1;
    op->res.nnodes = 1;
    op->res.nodes[0].id = node->in->id;
    op->res.nodes[0].addr = *from;
  } else {
    op->res.failures = 1;
  }
  op->res.elapsed_ms = now - txn->sent;
  op_finish(node, op, now);
}

/* ------------------------------------------------- BEP 51 crawl (sample) */

/* Reports a crawl that has ended, and frees it. Never from inside a crawl
 * call: the crawl is freed here. */
static void sample_check_end(mdht_node *node, mdht_op *op, mdht_time now) {
  if (!op->crawl || mdht_crawl_ended(op->crawl) == MDHT_CRAWL_RUNNING) return;
  const mdht_crawl_stats *st = mdht_crawl_get_stats(op->crawl);
  op->res.ok = st->answered > 0;
  op->res.queries = st->queries;
  op->res.responses = st->answered;
  op->res.failures = st->failed;
  op->res.unsupported = st->unsupported;
  op->res.samples = st->samples;
  op->res.infohashes = st->distinct;
  op_finish(node, op, now);
}

static void sample_answered(mdht_node *node, const mdht_txn *txn,
                            const mdht_addr *from, mdht_time now) {
  const mdht_krpc_msg *m = node->in;
  mdht_op *op = op_find(node, txn->owner.cookie);
  if (!op || !op->crawl) return;
  mdht_crawl_node nodes[MDHT_LOOKUP_MAX_K];
  size_t nn = 0;
  bool v6 = node->bound.family == MDHT_AF_INET6;
  mdht_bytes blob = v6 ? m->nodes6 : m->nodes;
  size_t step = v6 ? MDHT_COMPACT_NODE6 : MDHT_COMPACT_NODE4;
  /* The crawl looks at K nodes of an answer at most. */
  for (size_t off = 0;
       off + step <= blob.len && nn < node->cfg.k && nn < MDHT_LOOKUP_MAX_K;
       off += step)
    if (mdht_node_from_compact(&nodes[nn].id, &nodes[nn].addr, blob.p + off,
                               step) == 0)
      nn++;
  mdht_crawl_reply r = {.id = m->id,
                        .samples = m->samples.p,
                        .nsamples = m->samples.len / MDHT_ID_LEN,
                        .interval = m->interval,
                        .nodes = nodes,
                        .nnodes = nn};
  mdht_crawl_on_response(op->crawl, txn->owner.cookie2, from, &r, now);
  sample_check_end(node, op, now);
}

static void sample_failed(mdht_node *node, const mdht_txn *txn, int code,
                          mdht_time now) {
  mdht_op *op = op_find(node, txn->owner.cookie);
  if (!op || !op->crawl) return;
  mdht_crawl_on_failure(op->crawl, txn->owner.cookie2, &txn->addr, code, now);
  sample_check_end(node, op, now);
}

static int sample_send(void *user, uint32_t slot, const mdht_id *target,
                       const mdht_id *id, const mdht_addr *addr,
                       mdht_time now) {
  mdht_op *op = user;
  mdht_node *node = op->node;
  mdht_krpc_msg q;
  mdht_krpc_msg_init(&q, 'q');
  q.method = MDHT_M_SAMPLE_INFOHASHES;
  q.target = *target;
  mdht_txn_owner owner = {
      .kind = MDHT_OWNER_SAMPLE, .cookie = op->id, .cookie2 = slot};
  return mdht__node_send_query(node, &q, addr, id, owner, now);
}

static void sample_found(void *user, const mdht_id *ih, const mdht_addr *from) {
  mdht_op *op = user;
  if (op->found) op->found(ih, from, op->user);
}

static void sample_random(void *user, void *buf, size_t len) {
  mdht_op *op = user;
  mdht__node_random(op->node, buf, len);
}

/* Runs the crawls' timers; a crawl that ends is reported (and freed, so
 * the walk starts over after each). */
static void sample_tick(mdht_node *node, mdht_time now) {
  bool again = true;
  while (again) {
    again = false;
    for (mdht_op *op = node->ops; op; op = op->next) {
      if (!op->crawl || now < mdht_crawl_next_deadline(op->crawl)) continue;
      mdht_crawl_tick(op->crawl, now);
      if (mdht_crawl_ended(op->crawl) != MDHT_CRAWL_RUNNING) {
        sample_check_end(node, op, now);
        again = true;
        break;
      }
    }
  }
}

static mdht_time sample_next_deadline(const mdht_node *node) {
  mdht_time t = UINT64_MAX;
  for (const mdht_op *op = node->ops; op; op = op->next) {
    mdht_time d = op->crawl ? mdht_crawl_next_deadline(op->crawl) : UINT64_MAX;
    if (d < t) t = d;
  }
  return t;
}

/* Seeds: every routing entry that is not bad, and the routers that
 * answered while the table is thin. Returns how many were taken. */
static size_t sample_seed(mdht_node *node, mdht_crawl *c, mdht_time now) {
  size_t n = 0;
  for (uint32_t b = 0; b < node->rt.nbuckets; b++) {
    const mdht_rt_bucket *bk = &node->rt.buckets[b];
    for (uint32_t i = 0; i < bk->n; i++) {
      if (mdht_rtable_state(&node->rt, &bk->nodes[i], now) == MDHT_RT_BAD)
        continue;
      mdht_addr a = mdht_rtable_addr(&node->rt, &bk->nodes[i]);
      if (mdht_crawl_add(c, &bk->nodes[i].id, &a) == 0) n++;
    }
  }
  if (n < node->cfg.k)
    for (uint32_t i = 0; i < node->boot.nseeds; i++)
      if (mdht_crawl_add(c, &node->boot.seeds[i].id,
                         &node->boot.seeds[i].addr) == 0)
        n++;
  return n;
}

int64_t mdht_node_sample(mdht_node *node, uint32_t max, mdht_time timeout_ms,
                         mdht_sample_cb found, mdht_result_cb done, void *user,
                         mdht_time now) {
  if (!node || timeout_ms == 0) return MDHT_ERR_INVAL;
  uint32_t running = 0;
  for (mdht_op *o = node->ops; o; o = o->next)
    running += o->crawl != NULL;
  if (running >= MDHT_MAX_CRAWLS) return MDHT_ERR_FULL;
  mdht_op *op = op_new(node, MDHT_M_SAMPLE_INFOHASHES, MDHT_OP_USER, NULL, done,
                       user, now);
  if (!op) return MDHT_ERR_NOMEM;
  op->node = node;
  op->found = found;
  mdht_crawl_params p = {.max = max,
                         .deadline = now + timeout_ms,
                         .alpha = node->cfg.alpha,
                         .k = node->cfg.k,
                         .soft_timeout = node->cfg.query_soft_timeout_ms,
                         .allow_same_ip = node->cfg.allow_same_ip,
                         .allow_same_prefix = node->cfg.allow_same_prefix,
                         .family = node->bound.family,
                         .self = node->id,
                         .hash_seed = random64(node)};
  mdht_crawl_cbs cbs = {.send = sample_send,
                        .found = sample_found,
                        .random = sample_random,
                        .user = op};
  int rc = mdht_crawl_new(&op->crawl, &p, &cbs);
  if (rc == 0 && sample_seed(node, op->crawl, now) == 0) rc = MDHT_ERR_AGAIN;
  if (rc < 0) {
    op_free(node, op);
    return rc;
  }
  int64_t id = op->id;
  mdht_crawl_tick(op->crawl, now);
  sample_check_end(node, op, now); /* every send failed: reported now */
  return id;
}

static void owner_answered(mdht_node *node, const mdht_txn *txn,
                           const mdht_addr *from, mdht_time now) {
  switch (txn->owner.kind) {
  case MDHT_OWNER_LOOKUP:
    lookup_answered(node, txn, from, now);
    break;
  case MDHT_OWNER_ANNOUNCE:
    announce_reply(node, txn, from, true, now);
    break;
  case MDHT_OWNER_PING_OP:
    ping_op_reply(node, txn, from, true, now);
    break;
  case MDHT_OWNER_BOOT:
    mdht_boot_router_answered(&node->boot, &node->in->id, from);
    boot_step(node, now);
    break;
  case MDHT_OWNER_SAMPLE:
    sample_answered(node, txn, from, now);
    break;
  default:
    break;
  }
}

/* A query failed: timed out, or answered with an error or garbage. */
static void owner_failed(mdht_node *node, const mdht_txn *txn, mdht_time now) {
  switch (txn->owner.kind) {
  case MDHT_OWNER_LOOKUP:
    mdht_lookup_on_failure(&node->lookups, txn->owner.cookie, &txn->addr, now);
    break;
  case MDHT_OWNER_ANNOUNCE:
    announce_reply(node, txn, &txn->addr, false, now);
    break;
  case MDHT_OWNER_PING_OP:
    ping_op_reply(node, txn, &txn->addr, false, now);
    break;
  case MDHT_OWNER_SAMPLE:
    sample_failed(node, txn, 0, now);
    break;
  default:
    break;
  }
}

/* Whether the table holds a node a lookup can start from: one that has
 * answered us and is not bad. Bad nodes stay in their slots until a
 * newcomer replaces them, and nodes that only ever queried us (anyone can
 * send one spoofed datagram) prove nothing: a table of those is empty
 * for joining purposes. */
static uint32_t table_size(const mdht_node *node, mdht_time now) {
  mdht_rt_entry e;
  return (uint32_t)mdht_rtable_closest(&node->rt, &node->id, node->bound.family,
                                       &e, 1, now);
}

/* The bootstrapper's schedule (see bootstrap.h). */
static void boot_step(mdht_node *node, mdht_time now) {
  mdht_bootstrap *b = &node->boot;
  uint32_t total = table_size(node, now);
  if (b->phase == MDHT_BOOT_DONE && total == 0 && b->nrouters > 0)
    mdht_boot_reset(b, now); /* the network was lost: join again */
  /* A router answered only after we had joined from the table alone:
   * join again, through the routers (start_lookup). */
  if (b->phase == MDHT_BOOT_DONE && b->nseeds > 0 && !b->router_joined)
    b->phase = MDHT_BOOT_IDLE;
  if (b->phase == MDHT_BOOT_IDLE || b->phase == MDHT_BOOT_PINGING) {
    /* A router that just answered starts the lookup at once; nodes already
     * in the table do too, unless the last attempt failed and its backoff
     * is still running. */
    bool via_routers = b->nseeds > 0;
    if (via_routers || (total > 0 && now >= b->next_attempt)) {
      if (start_internal(node, MDHT_OP_BOOT_SELF, &node->id, now) == 0) {
        b->phase = MDHT_BOOT_SELF;
        b->router_joined = b->router_joined || via_routers;
        return;
      }
    }
  }
  /* The routers are asked, with the backoff, while the table is empty,
   * and also while it holds only nodes that found us, until a router has
   * answered: those may be an island that knows nothing but us. A router
   * whose own first ping was lost, flooded by joiners that know only it,
   * would otherwise join them alone and never the network. */
  bool ask = total == 0
                 ? b->phase == MDHT_BOOT_IDLE || b->phase == MDHT_BOOT_PINGING
                 : !b->router_joined && b->nseeds == 0;
  if (ask && b->nrouters > 0 && now >= b->next_attempt) {
    for (uint32_t i = 0; i < b->nrouters; i++)
      send_ping(node, &b->routers[i], NULL, MDHT_OWNER_BOOT, now);
    mdht_boot_pinged(b, now);
  }
}

static void maint_step(mdht_node *node, mdht_time now) {
  if (now < mdht_maint_next(&node->maint)) return;
  uint8_t rnd[MDHT_ID_LEN];
  mdht__node_random(node, rnd, sizeof rnd);
  mdht_maint_action act[MDHT_MAINT_PINGS + 1];
  size_t n = mdht_maint_run(&node->maint, &node->rt, now, rnd, act);
  for (size_t i = 0; i < n; i++) {
    if (act[i].kind == MDHT_MAINT_PING)
      maint_ping(node, &act[i].addr, &act[i].id, MDHT_OWNER_CHECK, now);
    else if (node->boot.phase == MDHT_BOOT_DONE)
      start_internal(node, MDHT_OP_REFRESH, &act[i].target, now);
  }
}

/* --------------------------------------------- BEP 42: our own id */

/* Tick `t` of table `old` as a tick of `rt` (0 stays 0). */
static uint32_t retick(mdht_rtable *rt, const mdht_rtable *old, uint32_t t,
                       mdht_time now) {
  mdht_time at = mdht_rtable_time(old, t);
  return at ? mdht_rtable_tick(rt, at <= now ? at : now) : 0;
}

/* Puts `e`, an entry of the old table, into `rt` with its history. */
static void reinsert(mdht_rtable *rt, const mdht_rtable *old,
                     const mdht_rt_entry *e, mdht_time now) {
  mdht_rt_how how = e->last_reply ? MDHT_RT_HEARD_REPLY : MDHT_RT_HEARD_QUERY;
  mdht_addr a = mdht_rtable_addr(old, e);
  if (mdht_rtable_heard(rt, &e->id, &a, how, now, NULL) <= 0) return;
  mdht_rt_entry *p = mdht_rtable_find(rt, &a);
  if (!p || !mdht_id_eq(&p->id, &e->id)) return;
  /* Its history, not its address: an IPv6 one is a slot of the old
   * table's pool, `p` has its own in the new table. The times, as ticks of
   * the new table (its own epoch). */
  p->fails = e->fails;
  p->v6_rtt =
      (uint8_t)((p->v6_rtt & MDHT_RT_V6_BIT) | (e->v6_rtt & ~MDHT_RT_V6_BIT));
  p->added = retick(rt, old, e->added, now);
  p->last_reply = retick(rt, old, e->last_reply, now);
  p->last_query = retick(rt, old, e->last_query, now);
  p->last_ping = retick(rt, old, e->last_ping, now);
}

/* Which buckets hold a node depends on our id: a new id needs a new
 * table. Every entry is re-inserted through the table's own rules, those
 * that answered us first (where the new buckets have less room, they
 * keep the proven nodes), then those that only queried us, then the
 * replacement candidates. The new table is built silently (no bus): no
 * node was learnt or lost, only moved. On error the old table stays. */
static int rebuild_table(mdht_node *node, const mdht_id *id, mdht_time now) {
  mdht_rtable nrt;
  int rc = mdht_rtable_init(&nrt, id, &node->cfg, NULL, random64(node));
  if (rc != 0) return rc;
  const mdht_rtable *old = &node->rt;
  for (int pass = 0; pass < 3; pass++) {
    for (uint32_t b = 0; b < old->nbuckets; b++) {
      const mdht_rt_bucket *bk = &old->buckets[b];
      const mdht_rt_entry *v = pass == 2 ? bk->repl : bk->nodes;
      uint32_t n = pass == 2 ? bk->nrepl : bk->n;
      for (uint32_t i = 0; i < n; i++)
        if (pass == 2 || (pass == 0) == (v[i].last_reply != 0))
          reinsert(&nrt, old, &v[i], now);
    }
  }
  mdht_rtable_free(&node->rt);
  node->rt = nrt;
  node->rt.bus = &node->bus;
  return 0;
}

/* BEP 42: once the vote says we are at a public address our id does not
 * fit, derive one that does (a random r and random low bits), unless the
 * id was chosen by hand. Private addresses are exempt: a node on a LAN or
 * loopback keeps its id. Lookups in flight go on (they only need to skip
 * the new id); one lookup of the new id fills the buckets that are now
 * near us. */
static void maybe_new_id(mdht_node *node, mdht_time now) {
  const mdht_addr *ext = mdht_extaddr_get(&node->ext);
  /* BEP 32: a pair has one id, and one address can derive it: the IPv4
   * node's votes decide, and the sibling follows (below). */
  if (node->sibling && node->bound.family == MDHT_AF_INET6) return;
  if (node->cfg.fixed_id || !ext || mdht_addr_is_private(ext) ||
      mdht_bep42_valid(&node->id, ext))
    return;
  uint8_t rnd[MDHT_ID_LEN];
  mdht__node_random(node, rnd, sizeof rnd);
  mdht_id id;
  mdht_bep42_make(&id, ext, rnd);
  if (rebuild_table(node, &id, now) != 0)
    return; /* out of memory: the old id and table stay usable */
  mdht_node *sib = node->sibling;
  if (sib && rebuild_table(sib, &id, now) != 0) sib = NULL;
  for (int i = 0; i < 2; i++) {
    mdht_node *n = i == 0 ? node : sib;
    if (!n) break;
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_NODE_ID_CHANGED, now);
    ev.u.replaced.old_id = n->id;
    n->id = id;
    n->lookups.self = id;
    n->lookups.has_self = true;
    ev.id = id;
    ev.addr = *ext;
    publish(n, &ev);
    if (n->boot.phase == MDHT_BOOT_DONE)
      start_internal(n, MDHT_OP_REFRESH, &n->id, now);
  }
}

static void external_vote(mdht_node *node, const mdht_addr *from,
                          const mdht_addr *claimed, mdht_time now) {
  const mdht_addr *cur = mdht_extaddr_get(&node->ext);
  mdht_addr old;
  memset(&old, 0, sizeof old);
  if (cur) old = *cur;
  if (!mdht_extaddr_vote(&node->ext, from, claimed, now)) return;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_EXTERNAL_ADDR, now);
  ev.addr = *mdht_extaddr_get(&node->ext);
  ev.u.replaced.old_addr = old;
  publish(node, &ev);
  maybe_new_id(node, now);
}

/* ---------------------------------------------- BEP 32: paired nodes */

/* Appends the twin's result to the operation's: peers of both families
 * (no repeats), the closest nodes of each family (ours first, each
 * family keeping at least half the slots when both have more), the
 * counters summed, the rounds of the longer. */
static void merge_result(mdht_op *op, const mdht_result *r) {
  size_t np = op->res.npeers;
  for (size_t i = 0; i < r->npeers && np < MDHT_RESULT_PEERS; i++) {
    bool dup = false;
    for (size_t j = 0; j < np && !dup; j++)
      dup = mdht_addr_eq(&op->peers[j], &r->peers[i]);
    if (!dup) op->peers[np++] = r->peers[i];
  }
  op->res.npeers = np;
  size_t half = MDHT_RESULT_NODES / 2, own = op->res.nnodes;
  size_t keep = r->nnodes < half ? MDHT_RESULT_NODES - r->nnodes : half;
  if (own > keep) own = keep;
  for (size_t i = 0; i < r->nnodes && own < MDHT_RESULT_NODES; i++) {
    op->res.nodes[own].id = r->nodes[i].id;
    op->res.nodes[own].addr = r->nodes[i].addr;
    own++;
  }
  op->res.nnodes = own;
  if (r->rounds > op->res.rounds) op->res.rounds = r->rounds;
  op->res.queries += r->queries;
  op->res.responses += r->responses;
  op->res.failures += r->failures;
  op->res.scrape_nodes += r->scrape_nodes;
  op->res.ok = op->res.ok || r->ok;
}

/* The twin's report (its node is the sibling of the operation's). */
static void twin_done(const mdht_result *r, void *user) {
  mdht_op *twin = user;
  mdht_node *node = twin->node->sibling;
  mdht_op *op = node ? op_find(node, twin->pair_of) : NULL;
  if (!op || !op->pair_pending) return;
  /* Kept whole until our own part is done: it writes our result as it
   * ends, and the merge comes last (op_finish). */
  mdht_result *copy = malloc(sizeof *copy + r->npeers * sizeof *r->peers);
  if (copy) {
    *copy = *r;
    copy->peers = (const mdht_addr *)(copy + 1);
    memcpy(copy + 1, r->peers, r->npeers * sizeof *r->peers);
    free(op->twin_res);
    op->twin_res = copy;
  }
  if (op->filters && twin->filters) {
    mdht_bloom_union(&op->filters[0], &twin->filters[0]);
    mdht_bloom_union(&op->filters[1], &twin->filters[1]);
  }
  op->pair_pending = false;
  if (op->self_done) op_finish(node, op, twin->started + r->elapsed_ms);
}

/* Starts the operation's twin on the sibling: the same lookup (and
 * announce) in the other family. True if it runs. */
static bool start_twin(mdht_node *node, mdht_op *op, mdht_method lkind,
                       mdht_time now) {
  mdht_node *sib = node->sibling;
  if (!sib) return false;
  mdht_op *t =
      op_new(sib, op->kind, MDHT_OP_USER, &op->target, twin_done, NULL, now);
  if (!t) return false;
  t->user = t;
  t->node = sib;
  t->pair_of = op->id;
  t->port = op->port;
  t->implied_port = op->implied_port;
  t->seed = op->seed;
  t->scrape = op->scrape;
  t->res.scraped = op->res.scraped;
  if (op->scrape && !(t->filters = calloc(2, sizeof *t->filters))) {
    op_free(sib, t);
    return false;
  }
  op->pair_pending = true;
  op->pair_op = t->id;
  if (start_lookup(sib, t, lkind, now) < 0) {
    op_free(sib, t);
    op->pair_pending = false;
    op->pair_op = 0;
    return false;
  }
  return true;
}

/* Starts a configured user operation's lookup, and on a paired node its
 * twin: the operation runs if either family can start (an empty table
 * on one side is no error while the other has nodes). Returns its id,
 * or the error of our own start when neither runs (the operation is
 * freed). */
static int64_t user_start(mdht_node *node, mdht_op *op, mdht_time now) {
  bool item = op->kind == MDHT_M_GET || op->kind == MDHT_M_PUT;
  mdht_method lkind = op->kind == MDHT_M_FIND_NODE ? MDHT_M_FIND_NODE
                      : item ? MDHT_M_GET /* BEP 44: a put gets its tokens */
                             : MDHT_M_GET_PEERS;
  int rc = start_lookup(node, op, lkind, now);
  if (rc < 0) op->self_done = true;
  int64_t id = op->id;
  /* BEP 44 items run in the operation's own family: the item stores of a
   * pair are not shared, and a twin's item would not be merged. */
  bool paired = !item && start_twin(node, op, lkind, now);
  if (rc < 0 && !paired) {
    op_free(node, op);
    return rc;
  }
  return id; /* op may have been reported already: do not touch it */
}

/* Starts a user operation around a lookup (an announce is a get_peers
 * lookup first). */
static int64_t user_lookup(mdht_node *node, mdht_method kind,
                           const mdht_id *target, mdht_result_cb cb, void *user,
                           mdht_time now) {
  if (!node || !target) return MDHT_ERR_INVAL;
  mdht_op *op = op_new(node, kind, MDHT_OP_USER, target, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  return user_start(node, op, now);
}

int64_t mdht_node_find_node(mdht_node *node, const mdht_id *target,
                            mdht_result_cb cb, void *user, mdht_time now) {
  return user_lookup(node, MDHT_M_FIND_NODE, target, cb, user, now);
}

int64_t mdht_node_get_peers(mdht_node *node, const mdht_id *info_hash,
                            mdht_result_cb cb, void *user, mdht_time now) {
  return user_lookup(node, MDHT_M_GET_PEERS, info_hash, cb, user, now);
}

int64_t mdht_node_scrape(mdht_node *node, const mdht_id *info_hash,
                         mdht_result_cb cb, void *user, mdht_time now) {
  if (!node || !info_hash) return MDHT_ERR_INVAL;
  mdht_op *op =
      op_new(node, MDHT_M_GET_PEERS, MDHT_OP_USER, info_hash, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  op->scrape = true;
  op->filters = calloc(2, sizeof *op->filters);
  op->res.scraped = true;
  if (!op->filters) {
    op_free(node, op);
    return MDHT_ERR_NOMEM;
  }
  return user_start(node, op, now);
}

int64_t mdht_node_announce(mdht_node *node, const mdht_id *info_hash,
                           uint16_t port, bool implied_port, bool seed,
                           mdht_result_cb cb, void *user, mdht_time now) {
  if (port == 0 && !implied_port) return MDHT_ERR_INVAL;
  if (!node || !info_hash) return MDHT_ERR_INVAL;
  mdht_op *op = op_new(node, MDHT_M_ANNOUNCE_PEER, MDHT_OP_USER, info_hash, cb,
                       user, now);
  if (!op) return MDHT_ERR_NOMEM;
  /* Set before the lookups start: the twin copies them. */
  op->port = implied_port && port == 0 ? 1 : port;
  op->implied_port = implied_port;
  op->seed = seed;
  return user_start(node, op, now);
}

/* ------------------------------------------------- BEP 44 client side */

int64_t mdht_node_get_immutable(mdht_node *node, const mdht_id *target,
                                mdht_result_cb cb, void *user, mdht_time now) {
  return user_lookup(node, MDHT_M_GET, target, cb, user, now);
}

/* Sets a mutable operation's key and salt (checked by the caller). */
static void op_set_key(mdht_op *op, const uint8_t *pk, const uint8_t *salt,
                       size_t salt_len) {
  op->item_mutable = true;
  memcpy(op->pk, pk, MDHT_ITEM_PK_LEN);
  op->salt_len = salt_len;
  if (salt_len) memcpy(op->salt, salt, salt_len);
}

int64_t mdht_node_get_mutable(mdht_node *node, const uint8_t pk[32],
                              const uint8_t *salt, size_t salt_len,
                              mdht_result_cb cb, void *user, mdht_time now) {
  if (!pk || salt_len > MDHT_ITEM_MAX_SALT || (salt_len && !salt))
    return MDHT_ERR_INVAL;
  mdht_id target;
  mdht_item_mutable_target(pk, salt, salt_len, &target);
  if (!node) return MDHT_ERR_INVAL;
  mdht_op *op = op_new(node, MDHT_M_GET, MDHT_OP_USER, &target, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  op_set_key(op, pk, salt, salt_len);
  return user_start(node, op, now);
}

/* Whether v is exactly one bencoded value. */
static bool one_value(const uint8_t *v, size_t vlen) {
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  size_t used = 0;
  return vlen > 0 && vlen <= MDHT_ITEM_MAX_V &&
         mdht_be_decode(v, vlen, toks, MDHT_KRPC_TOKENS, &used) > 0 &&
         used == vlen;
}

int64_t mdht_node_put_immutable(mdht_node *node, const uint8_t *v, size_t vlen,
                                mdht_result_cb cb, void *user, mdht_time now) {
  if (!v || !one_value(v, vlen)) return MDHT_ERR_INVAL;
  mdht_id target;
  mdht_item_immutable_target(v, vlen, &target);
  if (!node) return MDHT_ERR_INVAL;
  mdht_op *op = op_new(node, MDHT_M_PUT, MDHT_OP_USER, &target, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  memcpy(op->put_v, v, vlen);
  op->put_vlen = vlen;
  return user_start(node, op, now);
}

int64_t mdht_node_put_mutable(mdht_node *node, const uint8_t seed[32],
                              const uint8_t *salt, size_t salt_len,
                              const uint8_t *v, size_t vlen, int64_t seq,
                              bool has_cas, int64_t cas, mdht_result_cb cb,
                              void *user, mdht_time now) {
  if (!seed || !v || !one_value(v, vlen) || salt_len > MDHT_ITEM_MAX_SALT ||
      (salt_len && !salt) || (has_cas && (cas < 0 || cas == INT64_MAX)))
    return MDHT_ERR_INVAL;
  uint8_t pk[MDHT_ITEM_PK_LEN], sk[MDHT_ITEM_SK_LEN];
  mdht_item_keypair(seed, pk, sk);
  mdht_id target;
  mdht_item_mutable_target(pk, salt, salt_len, &target);
  if (!node) return MDHT_ERR_INVAL;
  mdht_op *op = op_new(node, MDHT_M_PUT, MDHT_OP_USER, &target, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  op_set_key(op, pk, salt, salt_len);
  memcpy(op->sk, sk, sizeof sk);
  memcpy(op->put_v, v, vlen);
  op->put_vlen = vlen;
  op->put_seq = seq < 0 && has_cas ? cas + 1 : seq;
  op->has_cas = has_cas;
  op->cas = cas;
  return user_start(node, op, now);
}

int64_t mdht_node_ping_addr(mdht_node *node, const mdht_addr *addr,
                            mdht_result_cb cb, void *user, mdht_time now) {
  if (!node || !addr) return MDHT_ERR_INVAL;
  /* BEP 32: an address of the other family is the sibling's to ping (the
   * operation ids of a pair are one space: cancel finds it there). */
  if (node->sibling && addr->family == node->sibling->bound.family)
    return mdht_node_ping_addr(node->sibling, addr, cb, user, now);
  if (mdht_addr_is_martian(addr) || addr->family != node->bound.family)
    return MDHT_ERR_ADDR;
  mdht_op *op = op_new(node, MDHT_M_PING, MDHT_OP_USER, NULL, cb, user, now);
  if (!op) return MDHT_ERR_NOMEM;
  mdht_krpc_msg q;
  mdht_krpc_msg_init(&q, 'q');
  q.method = MDHT_M_PING;
  mdht_txn_owner owner = {.kind = MDHT_OWNER_PING_OP, .cookie = op->id};
  int rc = mdht__node_send_query(node, &q, addr, NULL, owner, now);
  if (rc < 0) {
    op_free(node, op);
    return rc;
  }
  return op->id;
}

static void cancel_op(mdht_node *node, mdht_op *op) {
  if (op->lookup_id)
    mdht_lookup_cancel(&node->lookups, op->lookup_id, op->started);
  /* Outstanding announce or ping queries find no operation when they end
   * and are ignored. */
  op_free(node, op);
}

void mdht_node_cancel(mdht_node *node, int64_t id) {
  if (!node || id <= 0 || id > UINT32_MAX) return;
  mdht_op *op = op_find(node, (uint32_t)id);
  mdht_node *sib = node->sibling;
  if (!op) {
    /* A pair's ids are one space: a ping of the other family runs on
     * the sibling. */
    if (sib && (op = op_find(sib, (uint32_t)id)) != NULL) cancel_op(sib, op);
    return;
  }
  mdht_op *twin = sib && op->pair_op ? op_find(sib, op->pair_op) : NULL;
  if (twin) cancel_op(sib, twin);
  cancel_op(node, op);
}

int mdht_node_pair(mdht_node *a, mdht_node *b) {
  if (!a || !b || a == b) return MDHT_ERR_INVAL;
  if (a->bound.family == b->bound.family || !mdht_id_eq(&a->id, &b->id))
    return MDHT_ERR_INVAL;
  if (a->sibling || b->sibling || b->peers.npeers > 0 || b->items.n > 0 ||
      b->ops)
    return MDHT_ERR_STATE;
  a->sibling = b;
  b->sibling = a;
  b->store = &a->peers;
  b->istore = &a->items;
  if (b->next_op_id > a->next_op_id) a->next_op_id = b->next_op_id;
  b->op_ids = &a->next_op_id;
  return 0;
}

mdht_node *mdht_node_sibling(const mdht_node *node) {
  return node ? node->sibling : NULL;
}

int mdht_node_family(const mdht_node *node) {
  return node ? node->bound.family : 0;
}

/* Leaves the pair: the sibling gets its own (empty) store and counter
 * back, and no longer answers from our table. */
static void unpair(mdht_node *node) {
  mdht_node *s = node->sibling;
  if (!s) return;
  s->sibling = NULL;
  node->sibling = NULL;
  if (s->store == &node->peers) s->store = &s->peers;
  if (node->store == &s->peers) node->store = &node->peers;
  if (s->istore == &node->items) s->istore = &s->items;
  if (node->istore == &s->items) node->istore = &node->items;
  uint32_t next = *s->op_ids;
  s->op_ids = &s->next_op_id;
  node->op_ids = &node->next_op_id;
  s->next_op_id = node->next_op_id = next;
}

int mdht_node_add_bootstrap(mdht_node *node, const mdht_addr *addr,
                            mdht_time now) {
  if (!node || !addr) return MDHT_ERR_INVAL;
  if (mdht_addr_is_martian(addr) || addr->family != node->bound.family)
    return MDHT_ERR_ADDR;
  int rc = mdht_boot_add_router(&node->boot, addr);
  if (rc < 0 && rc != MDHT_ERR_EXISTS) return rc;
  rc = send_ping(node, addr, NULL, MDHT_OWNER_BOOT, now);
  /* Routers added while a round is already scheduled (the four defaults,
   * one after the other) join that round: only the first schedules it,
   * so that four routers do not make the first retry wait 8 s. */
  if (rc == 0 && node->boot.phase != MDHT_BOOT_PINGING)
    mdht_boot_pinged(&node->boot, now);
  return rc;
}

bool mdht_node_bootstrapped(const mdht_node *node) {
  return node && node->boot.ever_done;
}

void mdht_node_visit(const mdht_node *node, mdht_time now,
                     mdht_node_visit_cb fn, void *user) {
  for (uint32_t b = 0; b < node->rt.nbuckets; b++) {
    const mdht_rt_bucket *bk = &node->rt.buckets[b];
    for (uint32_t i = 0; i < bk->n; i++) {
      const mdht_rt_entry *e = &bk->nodes[i];
      mdht_addr a = mdht_rtable_addr(&node->rt, e);
      fn(b, &e->id, &a, mdht_rtable_state(&node->rt, e, now) == MDHT_RT_GOOD,
         mdht_rtable_time(&node->rt, e->last_reply), user);
    }
  }
}

static mdht_node_state public_state(mdht_rt_state st) {
  return st == MDHT_RT_GOOD           ? MDHT_NODE_GOOD
         : st == MDHT_RT_QUESTIONABLE ? MDHT_NODE_QUESTIONABLE
                                      : MDHT_NODE_BAD;
}

void mdht_node_visit_table(const mdht_node *node, mdht_time now,
                           mdht_node_entry_cb fn, void *user) {
  if (!node || !fn) return;
  for (uint32_t b = 0; b < node->rt.nbuckets; b++) {
    const mdht_rt_bucket *bk = &node->rt.buckets[b];
    for (uint32_t i = 0; i < bk->n; i++) {
      const mdht_rt_entry *e = &bk->nodes[i];
      mdht_node_entry out;
      memset(&out, 0, sizeof out);
      out.bucket = b;
      out.id = e->id;
      out.addr = mdht_rtable_addr(&node->rt, e);
      out.state = public_state(mdht_rtable_state(&node->rt, e, now));
      out.added = mdht_rtable_time(&node->rt, e->added);
      out.last_reply = mdht_rtable_time(&node->rt, e->last_reply);
      out.last_query = mdht_rtable_time(&node->rt, e->last_query);
      out.rtt_ms = mdht_rt_entry_rtt(e);
      out.fails = e->fails;
      fn(&out, user);
    }
  }
}

/* The store keeps each record's expiry, refreshed to now + TTL by each
 * announce: the age since that announce follows. */
static mdht_time peer_age(const mdht_node *node, const mdht_peer *p,
                          mdht_time now) {
  mdht_time left = p->expires - now;
  return left >= node->cfg.peer_ttl_ms ? 0 : node->cfg.peer_ttl_ms - left;
}

typedef struct store_walk {
  const mdht_node *node;
  mdht_time now;
  const mdht_id *only; /* visit_peers: the one info-hash */
  mdht_store_cb store_fn;
  mdht_stored_peer_cb peer_fn;
  void *user;
  int count;
} store_walk;

static int walk_group(const mdht_id *ih, const mdht_peer *peers, size_t n,
                      void *user) {
  store_walk *w = user;
  mdht_store_entry e;

  if (w->only && !mdht_id_eq(ih, w->only)) return 0;
  memset(&e, 0, sizeof e);
  e.infohash = *ih;
  e.oldest_ms = 0;
  e.newest_ms = UINT64_MAX;
  for (size_t i = 0; i < n; i++) {
    const mdht_peer *p = &peers[i];
    if (p->expires <= w->now) continue; /* not yet swept: already gone */
    mdht_time age = peer_age(w->node, p, w->now);
    if (w->peer_fn) {
      mdht_stored_peer sp = {.addr = p->addr,
                             .seed = p->seed,
                             .age_ms = age,
                             .ttl_ms = p->expires - w->now};
      w->peer_fn(&sp, w->user);
      w->count++;
    }
    e.peers++;
    e.seeds += p->seed;
    if (age > e.oldest_ms) e.oldest_ms = age;
    if (age < e.newest_ms) e.newest_ms = age;
  }
  if (w->store_fn && e.peers > 0) w->store_fn(&e, w->user);
  return w->only ? 1 : 0; /* one info-hash: found, stop */
}

void mdht_node_visit_store(const mdht_node *node, mdht_time now,
                           mdht_store_cb fn, void *user) {
  store_walk w = {.node = node, .now = now, .store_fn = fn, .user = user};
  if (!node || !fn) return;
  mdht_peers_foreach(node->store, walk_group, &w);
}

int mdht_node_visit_peers(const mdht_node *node, const mdht_id *infohash,
                          mdht_time now, mdht_stored_peer_cb fn, void *user) {
  store_walk w = {
      .node = node, .now = now, .only = infohash, .peer_fn = fn, .user = user};
  if (!node || !infohash || !fn) return MDHT_ERR_INVAL;
  mdht_peers_foreach(node->store, walk_group, &w);
  return w.count > 0 ? w.count : MDHT_ERR_NOTFOUND;
}

/* ----------------------------------------------------------- public API */

int mdht_node_new(mdht_node **out, const mdht_config *cfg,
                  const mdht_callbacks *cb, const mdht_id *id,
                  const mdht_addr *bound, mdht_time now) {
  if (!out || !cb || !cb->random) return MDHT_ERR_INVAL;
  mdht_config def;
  if (!cfg) {
    mdht_config_default(&def);
    cfg = &def;
  }
  if (mdht_config_check(cfg) != 0) return MDHT_ERR_INVAL;
  mdht_node *node = calloc(1, sizeof *node);
  if (!node) return MDHT_ERR_NOMEM;
  node->cfg = *cfg;
  node->cb = *cb;
  if (bound)
    node->bound = *bound;
  else
    node->bound.family = MDHT_AF_INET;
  if (id)
    node->id = *id;
  else
    mdht__node_random(node, node->id.b, sizeof node->id.b);
  node->stats.started = now;
  mdht_bus_init(&node->bus);

  uint8_t secret[MDHT_TOKEN_SECRET_LEN];
  mdht__node_random(node, secret, sizeof secret);
  mdht_token_init(&node->tokens, secret, node->cfg.token_rotate_ms, now);
  mdht_outq_init(&node->outq, (size_t)node->cfg.out_queue * MDHT_MAX_PACKET);

  int rc = mdht_rtable_init(&node->rt, &node->id, &node->cfg, &node->bus,
                            random64(node));
  if (rc == 0)
    rc = mdht_peers_init(&node->peers, &node->cfg, &node->bus, random64(node),
                         random64(node));
  mdht_items_init(&node->items, &node->cfg, &node->bus);
  if (rc == 0)
    rc = mdht_txn_init(&node->txns, node->cfg.max_txns,
                       node->cfg.query_timeout_ms);
  if (rc == 0)
    rc = mdht_rl_init(&node->rl, 4096, node->cfg.rate_limit_per_sec,
                      node->cfg.rate_limit_burst, random64(node));
  if (rc == 0) {
    /* A burst of two seconds' worth, like the rate limit's. Its hash key
     * is derived from the limiter's (still secret) rather than drawn, so
     * that the seeded simulations see the same random stream as before. */
    uint32_t b = node->cfg.reply_bytes_per_sec;
    /* 1024 destinations: a spent budget is never the fullest bucket of
     * its set, so a spray of fresh spoofed victims cannot flush it. */
    rc = mdht_rl_init(&node->budget, 1024, b, b > UINT32_MAX / 2 ? b : b * 2,
                      node->rl.hash_seed ^ 0x5bd1e995);
  }
  if (rc == 0) {
    mdht_lookup_cbs lcb = {
        .send = lookup_send, .done = lookup_done, .user = node};
    rc = mdht_lookups_init(&node->lookups, &node->cfg, &node->bus, &lcb,
                           &node->id);
  }
  mdht_maint_init(&node->maint, now);
  mdht_boot_init(&node->boot);
  mdht_extaddr_init(&node->ext, node->bound.family);
  node->next_op_id = 1;
  node->op_ids = &node->next_op_id;
  node->store = &node->peers;
  node->istore = &node->items;
  if (rc != 0) {
    mdht_node_del(node);
    return rc;
  }
  *out = node;
  return 0;
}

void mdht_node_del(mdht_node *node) {
  if (!node) return;
  unpair(node);
  mdht_rtable_free(&node->rt);
  mdht_peers_free(&node->peers);
  mdht_items_free(&node->items);
  mdht_txn_free(&node->txns);
  mdht_rl_free(&node->rl);
  mdht_rl_free(&node->budget);
  mdht_outq_free(&node->outq);
  mdht_lookups_free(&node->lookups);
  mdht_boot_free(&node->boot);
  mdht_extaddr_free(&node->ext);
  while (node->ops) {
    mdht_op *op = node->ops;
    node->ops = op->next;
    free(op->filters);
    free(op->twin_res);
    mdht_crawl_del(op->crawl);
    free(op);
  }
  mdht_token_free(&node->tokens);
  mdht_bus_free(&node->bus);
  free(node);
}

/* Bytes of a rate-limit table pair (each allocated on first use). */
static size_t rl_bytes(const mdht_ratelimit *rl) {
  size_t b = 0;
  if (rl->host.slots)
    b += (size_t)rl->host.nsets * MDHT_RL_WAYS * sizeof(mdht_rl_slot);
  if (rl->site.slots)
    b += (size_t)rl->site.nsets * MDHT_RL_WAYS * sizeof(mdht_rl_slot);
  return b;
}

void mdht_node_memory(const mdht_node *node, mdht_memory *m) {
  if (!m) return;
  memset(m, 0, sizeof *m);
  if (!node) return;
  m->node = sizeof *node;
  mdht_rtable_bytes(&node->rt, &m->routing, &m->replacements, &m->index);
  for (uint32_t b = 0; b < node->rt.nbuckets; b++)
    m->entries += node->rt.buckets[b].n + node->rt.buckets[b].nrepl;
  m->transactions = node->txns.cap * (sizeof(mdht_txn) + sizeof(uint16_t));
  m->lookups = mdht_lookups_bytes(&node->lookups);
  if (node->store == &node->peers) m->peers = mdht_peers_bytes(&node->peers);
  if (node->istore == &node->items)
    m->items = node->items.cap * (sizeof(mdht_item) + sizeof(mdht_item_index) +
                                  sizeof(mdht_addr));
  m->limits = rl_bytes(&node->rl) + rl_bytes(&node->budget);
  m->other = node->outq.cap + node->boot.nrouters * sizeof(mdht_addr) +
             node->boot.nseeds * sizeof(mdht_lookup_node);
  if (node->ext.rec) m->other += MDHT_EXTADDR_SOURCES * node->ext.rec_len;
  m->other += node->bus.cap * sizeof(mdht_bus_sub);
  if (node->tokens.keyed) m->other += 2 * sizeof *node->tokens.keyed;
  for (const mdht_op *op = node->ops; op; op = op->next)
    m->other += sizeof *op;
  m->total = m->node + m->routing + m->replacements + m->index +
             m->transactions + m->lookups + m->peers + m->items + m->limits +
             m->other;
}

const mdht_id *mdht_node_id(const mdht_node *node) {
  return &node->id;
}

int mdht_node_subscribe(mdht_node *node, mdht_event_cb cb, void *user) {
  if (!node || !cb) return MDHT_ERR_INVAL;
  return mdht_bus_subscribe(&node->bus, cb, user);
}

void mdht_node_unsubscribe(mdht_node *node, int handle) {
  if (node) mdht_bus_unsubscribe(&node->bus, handle);
}

static void recv_decoded(mdht_node *node, const mdht_addr *from,
                         const uint8_t *pkt, size_t len, mdht_time now);

int mdht_node_recv(mdht_node *node, const mdht_addr *from, const uint8_t *pkt,
                   size_t len, mdht_time now) {
  if (!node || !from || (!pkt && len)) return MDHT_ERR_INVAL;
  node->stats.recv_packets++;
  if (len > MDHT_MAX_DATAGRAM) {
    drop(node, from, MDHT_DROP_TOO_BIG, len, now);
    return 0;
  }
  if (mdht_addr_is_martian(from) || from->family != node->bound.family) {
    drop(node, from, MDHT_DROP_ADDR, len, now);
    return 0;
  }
  /* The decoder's scratch and the decoded message live on the stack
   * (12 KB and 400 bytes), not in the node: nothing points into them once
   * handled, and a simulator of many nodes would otherwise hold them once
   * per node. */
  mdht_krpc_msg in;
  node->in = &in;
  recv_decoded(node, from, pkt, len, now);
  node->in = NULL;
  return 0;
}

/* mdht_node_recv, with node->in pointing at its scratch. */
static void recv_decoded(mdht_node *node, const mdht_addr *from,
                         const uint8_t *pkt, size_t len, mdht_time now) {
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  int rc = mdht_krpc_decode(node->in, pkt, len, toks, MDHT_KRPC_TOKENS);
  /* Answers to our own queries pass before the rate limit: a flood from
   * the same IP (spoofed, or a shared NAT) must not starve the node we
   * asked. Matching is O(1), and a 32-bit random check from the exact
   * address we queried is what makes them ours. Anything else is
   * unsolicited and spends the source's tokens. */
  mdht_txn txn;
  bool ours = rc == 0 && node->in->y != 'q' &&
              mdht_txn_match(&node->txns, node->in->t.p, node->in->t.len, from,
                             &txn) == 0;
  if (ours) {
    handle_reply(node, from, &txn, now);
    return;
  }
  if (!mdht_rl_allow(&node->rl, from, now)) {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_RATE_LIMITED, now);
    ev.addr = *from;
    node->stats.rate_limited++;
    publish(node, &ev);
    return;
  }
  if (rc == MDHT_ERR_PROTO && node->in->y == 'q' && node->in->t.len > 0 &&
      !node->cfg.read_only) {
    drop(node, from, MDHT_DROP_PROTO, len, now);
    send_error(node, from, node->in->t, MDHT_M_UNKNOWN, MDHT_KRPC_E_PROTOCOL,
               "invalid arguments", now);
    return;
  }
  if (rc != 0) {
    drop(node, from,
         rc == MDHT_ERR_PARSE || rc == MDHT_ERR_LIMIT ? MDHT_DROP_PARSE
                                                      : MDHT_DROP_PROTO,
         len, now);
    return;
  }
  if (node->in->y == 'q')
    handle_query(node, from, now);
  else
    drop(node, from, MDHT_DROP_UNMATCHED, 0, now);
  return;
}

void mdht_node_trim(mdht_node *node) {
  if (node) mdht_outq_trim(&node->outq);
}

int mdht_node_next_packet(mdht_node *node, mdht_addr *to, uint8_t *buf,
                          size_t cap) {
  if (!node || !to || !buf) return MDHT_ERR_INVAL;
  return mdht_outq_pop(&node->outq, to, buf, cap);
}

static mdht_time min_time(mdht_time a, mdht_time b) {
  return a < b ? a : b;
}

mdht_time mdht_node_next_deadline(const mdht_node *node) {
  mdht_time t = mdht_txn_next_deadline(&node->txns);
  t = min_time(t, mdht_token_next_rotate(&node->tokens));
  t = min_time(t, node->store->next_expiry);
  t = min_time(t, node->istore->next_expiry);
  t = min_time(t, mdht_lookups_next_deadline(&node->lookups));
  t = min_time(t, mdht_maint_next(&node->maint));
  t = min_time(t, sample_next_deadline(node));
  return t;
}

int mdht_node_tick(mdht_node *node, mdht_time now) {
  if (!node) return MDHT_ERR_INVAL;
  mdht_txn txn;
  while (mdht_txn_expire(&node->txns, now, &txn) == 0) {
    if (txn.owner.kind == MDHT_OWNER_CONFIRM ||
        txn.owner.kind == MDHT_OWNER_CHECK)
      node->maint_pings--;
    if (txn.owner.kind == MDHT_OWNER_HINT) node->hint_pings--;
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_QUERY_TIMEOUT, now);
    ev.addr = txn.addr;
    if (txn.has_id) ev.id = txn.id;
    ev.method = txn.method;
    node->stats.timeouts++;
    publish(node, &ev);
    /* A query sent without a known id (a bootstrap ping) fails whoever
     * is at that address. */
    mdht_rtable_failed(&node->rt, txn.has_id ? &txn.id : NULL, &txn.addr, now);
    owner_failed(node, &txn, now);
  }
  mdht_lookups_tick(&node->lookups, now);
  sample_tick(node, now);
  boot_step(node, now);
  maint_step(node, now);
  if (now >= mdht_token_next_rotate(&node->tokens)) {
    uint8_t secret[MDHT_TOKEN_SECRET_LEN];
    mdht__node_random(node, secret, sizeof secret);
    mdht_token_rotate(&node->tokens, secret, now);
  }
  if (now >= node->store->next_expiry) mdht_peers_expire(node->store, now);
  mdht_outq_trim(&node->outq); /* once drained: see outq.h */
  if (now >= node->istore->next_expiry) mdht_items_expire(node->istore, now);
  return 0;
}

int mdht_node_ping(mdht_node *node, const mdht_addr *addr, mdht_time now) {
  if (!node || !addr) return MDHT_ERR_INVAL;
  if (mdht_addr_is_martian(addr) || addr->family != node->bound.family)
    return MDHT_ERR_ADDR;
  return send_ping(node, addr, NULL, MDHT_OWNER_PING, now);
}

void mdht_node_stats(const mdht_node *node, mdht_time now, mdht_stats *out) {
  *out = node->stats;
  mdht_rtable_counts(&node->rt, now, &out->nodes_good, &out->nodes_questionable,
                     &out->nodes_total, &out->replacements);
  out->buckets = node->rt.nbuckets;
  out->infohashes = node->store->nih;
  out->peers = node->store->npeers;
  out->items = node->istore->n;
  out->txns_outstanding = node->txns.n;
  out->lookups_running = node->lookups.n_active;
}
