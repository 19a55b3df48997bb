/*
 * The node: the message handler and the public API.
 *
 * Flow of one datagram (DESIGN.md): size and source checks, per-IP rate
 * limit, decode, then either a query handler (which queues the response)
 * or the transaction manager (which hands the response to its owner).
 * Every step publishes an event; the routing table and the statistics
 * learn what happened as subscribers of the bus, not by being called.
 */
#include "node.h"
#include "addr.h"
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
  if (from)
    ev.addr = *from;
  ev.u.drop.reason = r;
  ev.u.drop.len = len;
  publish(node, &ev);
}

/* ------------------------------------------------------------ sending */

/* Encodes node->out into the send queue. */
static int queue_out(mdht_node *node, const mdht_addr *to, mdht_time now) {
  uint8_t *p = mdht_outq_reserve(&node->outq, MDHT_MAX_PACKET);
  if (!p) {
    drop(node, to, MDHT_DROP_QUEUE_FULL, 0, now);
    return MDHT_ERR_NOBUF;
  }
  int n = mdht_krpc_encode(&node->out, p, MDHT_MAX_PACKET);
  if (n < 0)
    return n;
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
  if (n < 0)
    return;
  mdht_outq_commit(&node->outq, to, (size_t)n);
  node->stats.sent_packets++;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_ERROR_SENT, now);
  ev.addr = *to;
  ev.method = method;
  ev.u.error.code = code;
  publish(node, &ev);
}

/* Starts a response to node->in in node->out. */
static mdht_krpc_msg *begin_response(mdht_node *node, const mdht_addr *to) {
  mdht_krpc_msg *r = &node->out;
  mdht_krpc_msg_init(r, 'r');
  fill_common(node, r);
  r->t = node->in.t;
  r->method = node->in.method;
  /* BEP 42: tell every requester how we see it, so that nodes behind NAT
   * learn their external address. */
  r->has_ip = true;
  r->ip = *to;
  return r;
}

static void send_response(mdht_node *node, const mdht_addr *to,
                          mdht_time now) {
  if (queue_out(node, to, now) != 0)
    return;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_RESPONSE_SENT, now);
  ev.addr = *to;
  ev.id = node->in.id;
  ev.method = node->in.method;
  publish(node, &ev);
}

int mdht__node_send_query(mdht_node *node, const mdht_addr *to,
                          const mdht_id *expect_id, mdht_txn_owner owner,
                          mdht_time now) {
  mdht_krpc_msg *q = &node->out;
  uint8_t tid[MDHT_TID_LEN];
  uint16_t check;
  mdht__node_random(node, &check, sizeof check);
  int slot = mdht_txn_open(&node->txns, to, expect_id, q->method, owner,
                           check, now, tid);
  if (slot < 0)
    return slot;
  q->y = 'q';
  fill_common(node, q);
  q->t.p = tid;
  q->t.len = sizeof tid;
  q->ro = node->cfg.read_only;
  int rc = queue_out(node, to, now);
  if (rc != 0) {
    mdht_txn dummy;
    mdht_txn_match(&node->txns, tid, sizeof tid, to, &dummy);
    return rc;
  }
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_QUERY_SENT, now);
  ev.addr = *to;
  if (expect_id)
    ev.id = *expect_id;
  ev.method = q->method;
  publish(node, &ev);
  return 0;
}

static int send_ping(mdht_node *node, const mdht_addr *to,
                     const mdht_id *expect_id, uint8_t kind, mdht_time now) {
  mdht_krpc_msg_init(&node->out, 'q');
  node->out.method = MDHT_M_PING;
  mdht_txn_owner owner = {.kind = kind};
  return mdht__node_send_query(node, to, expect_id, owner, now);
}

/* A maintenance ping (confirming a newcomer, checking a questionable node)
 * within the in-flight bound. */
static void maint_ping(mdht_node *node, const mdht_addr *to,
                       const mdht_id *id, uint8_t kind, mdht_time now) {
  if (node->maint_pings >= MDHT_MAX_MAINT_PINGS)
    return;
  if (send_ping(node, to, id, kind, now) == 0)
    node->maint_pings++;
}

/* ------------------------------------------------------- query handlers */

/* Writes the closest nodes of our family into r->nodes / r->nodes6, using
 * `buf` (MDHT_K_MAX * 38 bytes) as storage. */
static void put_closest(mdht_node *node, mdht_krpc_msg *r,
                        const mdht_id *target, uint8_t *buf, mdht_time now) {
  mdht_rt_entry near[MDHT_RT_KMAX];
  int fam = node->bound.family;
  /* BEP 32: a requester asking only for the other family gets nothing
   * from this single-family table but an empty list. */
  uint8_t want = node->in.want;
  if (want) {
    bool ours = fam == MDHT_AF_INET6 ? (want & MDHT_WANT_N6)
                                     : (want & MDHT_WANT_N4);
    if (!ours)
      return;
  }
  size_t n = mdht_rtable_closest(&node->rt, target, fam, near, node->cfg.k,
                                 now);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += mdht_node_to_compact(&near[i].id, &near[i].addr, buf + len);
  if (fam == MDHT_AF_INET6) {
    r->nodes6.p = buf;
    r->nodes6.len = len;
  } else {
    r->nodes.p = buf;
    r->nodes.len = len;
  }
}

static void handle_ping(mdht_node *node, const mdht_addr *from,
                        mdht_time now) {
  begin_response(node, from);
  send_response(node, from, now);
}

static void handle_find_node(mdht_node *node, const mdht_addr *from,
                             mdht_time now) {
  uint8_t nodes[MDHT_RT_KMAX * MDHT_COMPACT_NODE6];
  mdht_krpc_msg *r = begin_response(node, from);
  put_closest(node, r, &node->in.target, nodes, now);
  send_response(node, from, now);
}

static void handle_get_peers(mdht_node *node, const mdht_addr *from,
                             mdht_time now) {
  uint8_t nodes[MDHT_RT_KMAX * MDHT_COMPACT_NODE6];
  uint8_t token[MDHT_TOKEN_LEN];
  mdht_addr peers[MDHT_KRPC_MAX_VALUES];
  uint8_t compact[MDHT_KRPC_MAX_VALUES][MDHT_COMPACT_PEER6];

  mdht_krpc_msg *r = begin_response(node, from);
  mdht_token_make(&node->tokens, from, token);
  r->token.p = token;
  r->token.len = sizeof token;
  /* libtorrent sends nodes along with values; the requester's lookup
   * converges faster with both. */
  put_closest(node, r, &node->in.target, nodes, now);

  /* No response may exceed MDHT_RESPONSE_LIMIT: measure what is there,
   * then fit as many values as the rest allows. */
  uint8_t probe[MDHT_MAX_PACKET];
  int base = mdht_krpc_encode(r, probe, sizeof probe);
  if (base < 0)
    return;
  size_t per = (node->bound.family == MDHT_AF_INET6 ? MDHT_COMPACT_PEER6
                                                    : MDHT_COMPACT_PEER4) +
               3; /* "18:" or "6:" and a little slack */
  size_t room = 0;
  /* "6:values" + "l" + "e" */
  if ((size_t)base + 10 < MDHT_RESPONSE_LIMIT)
    room = (MDHT_RESPONSE_LIMIT - (size_t)base - 10) / per;
  if (room > MDHT_KRPC_MAX_VALUES)
    room = MDHT_KRPC_MAX_VALUES;
  size_t n = mdht_peers_get(&node->peers, &node->in.target,
                            node->bound.family, peers, room, now);
  for (size_t i = 0; i < n; i++) {
    size_t l = mdht_addr_to_compact(&peers[i], compact[i]);
    r->values[i].p = compact[i];
    r->values[i].len = l;
  }
  r->nvalues = n;
  send_response(node, from, now);
}

static void handle_announce(mdht_node *node, const mdht_addr *from,
                            mdht_time now) {
  const mdht_krpc_msg *q = &node->in;
  if (!mdht_token_check(&node->tokens, from, q->token.p, q->token.len)) {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_TOKEN_REJECTED, now);
    ev.addr = *from;
    ev.id = q->id;
    publish(node, &ev);
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_PROTOCOL,
               "bad token", now);
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
  int rc = mdht_peers_add(&node->peers, &q->target, &peer, q->seed, now);
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
  begin_response(node, from);
  send_response(node, from, now);
}

static void handle_sample(mdht_node *node, const mdht_addr *from,
                          mdht_time now) {
  uint8_t nodes[MDHT_RT_KMAX * MDHT_COMPACT_NODE6];
  /* BEP 51: as many samples as fit in one datagram beside the nodes. */
  enum { MAX_SAMPLES = 40 };
  mdht_id ids[MAX_SAMPLES];
  mdht_krpc_msg *r = begin_response(node, from);
  put_closest(node, r, &node->in.target, nodes, now);
  size_t n = mdht_peers_sample(&node->peers, ids, MAX_SAMPLES);
  r->samples.p = (const uint8_t *)ids;
  r->samples.len = n * MDHT_ID_LEN;
  r->num = node->peers.nih;
  /* Our samples change as announces arrive; 6 hours (BEP 51's maximum)
   * would hide them, libtorrent uses 0..21600 with a default of 21600. */
  r->interval = 300;
  send_response(node, from, now);
}

static void handle_query(mdht_node *node, const mdht_addr *from,
                         mdht_time now) {
  const mdht_krpc_msg *q = &node->in;
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
  publish(node, &ev);

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
  default:
    send_error(node, from, q->t, q->method, MDHT_KRPC_E_METHOD,
               "method unknown", now);
    break;
  }
}

/* ------------------------------------------------------------ responses */

static void handle_reply(mdht_node *node, const mdht_addr *from,
                         mdht_time now) {
  const mdht_krpc_msg *m = &node->in;
  mdht_txn txn;
  if (mdht_txn_match(&node->txns, m->t.p, m->t.len, from, &txn) != 0) {
    drop(node, from, MDHT_DROP_UNMATCHED, 0, now);
    return;
  }
  if (txn.owner.kind == MDHT_OWNER_CONFIRM ||
      txn.owner.kind == MDHT_OWNER_CHECK)
    node->maint_pings--;

  if (m->y == 'e') {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_ERROR_RECEIVED, now);
    ev.addr = *from;
    ev.method = txn.method;
    ev.u.error.code = (int)m->ecode;
    publish(node, &ev);
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
    return;
  }
  publish(node, &ev);
  if (m->has_ip) {
    mdht_event ip;
    mdht_bus_event_init(&ip, MDHT_EV_EXTERNAL_ADDR, now);
    ip.addr = m->ip;
    ip.id = m->id;
    publish(node, &ip);
  }
}

/* ------------------------------------------ internal bus subscribers */

static bool id_is_zero(const mdht_id *id) {
  static const mdht_id zero;
  return mdht_id_eq(id, &zero);
}

/* The routing table's subscription: it learns who answered, who queried
 * and who timed out from the bus. */
static void rt_on_event(const mdht_event *ev, void *user) {
  mdht_node *node = user;
  mdht_rt_entry ping;
  int r;
  switch (ev->type) {
  case MDHT_EV_RESPONSE_RECEIVED:
    r = mdht_rtable_heard(&node->rt, &ev->id, &ev->addr,
                          MDHT_RT_HEARD_REPLY, ev->now, &ping);
    break;
  case MDHT_EV_QUERY_RECEIVED:
    /* BEP 43: a read-only node never enters the table. */
    if (ev->u.query.ro)
      return;
    r = mdht_rtable_heard(&node->rt, &ev->id, &ev->addr,
                          MDHT_RT_HEARD_QUERY, ev->now, &ping);
    if (r == MDHT_RT_ADDED) {
      /* It queried us but has never answered: ask it once, so that it
       * can become good (and be handed to others) or be found dead. */
      maint_ping(node, &ev->addr, &ev->id, MDHT_OWNER_CONFIRM, ev->now);
    }
    break;
  case MDHT_EV_QUERY_TIMEOUT:
    /* A query sent without a known id (bootstrap ping) carries a zero
     * id in its event. */
    mdht_rtable_failed(&node->rt, id_is_zero(&ev->id) ? NULL : &ev->id,
                       &ev->addr, ev->now);
    return;
  default:
    return;
  }
  if (r == MDHT_RT_PING)
    maint_ping(node, &ping.addr, &ping.id, MDHT_OWNER_CHECK, ev->now);
}

/* The statistics' subscription. */
static void stats_on_event(const mdht_event *ev, void *user) {
  mdht_stats *s = user;
  switch (ev->type) {
  case MDHT_EV_QUERY_RECEIVED:
    s->queries_in[ev->method]++;
    break;
  case MDHT_EV_QUERY_SENT:
    s->queries_out[ev->method]++;
    break;
  case MDHT_EV_RESPONSE_SENT:
    s->responses_out++;
    break;
  case MDHT_EV_RESPONSE_RECEIVED:
    s->responses_in++;
    break;
  case MDHT_EV_ERROR_SENT:
    s->errors_out++;
    break;
  case MDHT_EV_ERROR_RECEIVED:
    s->errors_in++;
    break;
  case MDHT_EV_QUERY_TIMEOUT:
    s->timeouts++;
    break;
  case MDHT_EV_DATAGRAM_DROPPED:
    s->dropped[ev->u.drop.reason]++;
    break;
  case MDHT_EV_RATE_LIMITED:
    s->rate_limited++;
    break;
  case MDHT_EV_TOKEN_REJECTED:
    s->tokens_rejected++;
    break;
  default:
    break;
  }
}

/* ----------------------------------------------------------- public API */

int mdht_node_new(mdht_node **out, const mdht_config *cfg,
                  const mdht_callbacks *cb, const mdht_id *id,
                  const mdht_addr *bound, mdht_time now) {
  if (!out || !cb || !cb->random)
    return MDHT_ERR_INVAL;
  mdht_config def;
  if (!cfg) {
    mdht_config_default(&def);
    cfg = &def;
  }
  if (mdht_config_check(cfg) != 0)
    return MDHT_ERR_INVAL;
  mdht_node *node = calloc(1, sizeof *node);
  if (!node)
    return MDHT_ERR_NOMEM;
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
  /* Internal subscribers first: the routing table must have seen an event
   * before the user's callback looks at the table. */
  mdht_bus_subscribe(&node->bus, rt_on_event, node);
  mdht_bus_subscribe(&node->bus, stats_on_event, &node->stats);

  uint8_t secret[MDHT_TOKEN_SECRET_LEN];
  mdht__node_random(node, secret, sizeof secret);
  mdht_token_init(&node->tokens, secret, node->cfg.token_rotate_ms, now);
  mdht_outq_init(&node->outq, (size_t)node->cfg.out_queue * MDHT_MAX_PACKET);

  int rc = mdht_rtable_init(&node->rt, &node->id, &node->cfg, &node->bus,
                            random64(node));
  if (rc == 0)
    rc = mdht_peers_init(&node->peers, &node->cfg, &node->bus,
                         random64(node), random64(node));
  if (rc == 0)
    rc = mdht_txn_init(&node->txns, node->cfg.max_txns,
                       node->cfg.query_timeout_ms);
  if (rc == 0)
    rc = mdht_rl_init(&node->rl, 4096, node->cfg.rate_limit_per_sec,
                      node->cfg.rate_limit_burst, random64(node));
  if (rc != 0) {
    mdht_node_del(node);
    return rc;
  }
  *out = node;
  return 0;
}

void mdht_node_del(mdht_node *node) {
  if (!node)
    return;
  mdht_rtable_free(&node->rt);
  mdht_peers_free(&node->peers);
  mdht_txn_free(&node->txns);
  mdht_rl_free(&node->rl);
  mdht_outq_free(&node->outq);
  free(node);
}

const mdht_id *mdht_node_id(const mdht_node *node) { return &node->id; }

int mdht_node_subscribe(mdht_node *node, mdht_event_cb cb, void *user) {
  if (!node || !cb)
    return MDHT_ERR_INVAL;
  return mdht_bus_subscribe(&node->bus, cb, user);
}

void mdht_node_unsubscribe(mdht_node *node, int handle) {
  /* Handles 0 and 1 are the node's own subscribers. */
  if (node && handle >= 2)
    mdht_bus_unsubscribe(&node->bus, handle);
}

int mdht_node_recv(mdht_node *node, const mdht_addr *from,
                   const uint8_t *pkt, size_t len, mdht_time now) {
  if (!node || !from || (!pkt && len))
    return MDHT_ERR_INVAL;
  node->stats.recv_packets++;
  if (len > MDHT_MAX_DATAGRAM) {
    drop(node, from, MDHT_DROP_TOO_BIG, len, now);
    return 0;
  }
  if (mdht_addr_is_martian(from) || from->family != node->bound.family) {
    drop(node, from, MDHT_DROP_ADDR, len, now);
    return 0;
  }
  if (!mdht_rl_allow(&node->rl, from, now)) {
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_RATE_LIMITED, now);
    ev.addr = *from;
    publish(node, &ev);
    return 0;
  }
  int rc = mdht_krpc_decode(&node->in, pkt, len, node->toks,
                            MDHT_KRPC_TOKENS);
  if (rc == MDHT_ERR_PROTO && node->in.y == 'q' && node->in.t.len > 0 &&
      !node->cfg.read_only) {
    drop(node, from, MDHT_DROP_PROTO, len, now);
    send_error(node, from, node->in.t, MDHT_M_UNKNOWN, MDHT_KRPC_E_PROTOCOL,
               "invalid arguments", now);
    return 0;
  }
  if (rc != 0) {
    drop(node, from,
         rc == MDHT_ERR_PARSE || rc == MDHT_ERR_LIMIT ? MDHT_DROP_PARSE
                                                      : MDHT_DROP_PROTO,
         len, now);
    return 0;
  }
  if (node->in.y == 'q')
    handle_query(node, from, now);
  else
    handle_reply(node, from, now);
  return 0;
}

int mdht_node_next_packet(mdht_node *node, mdht_addr *to, uint8_t *buf,
                          size_t cap) {
  if (!node || !to || !buf)
    return MDHT_ERR_INVAL;
  return mdht_outq_pop(&node->outq, to, buf, cap);
}

static mdht_time min_time(mdht_time a, mdht_time b) { return a < b ? a : b; }

mdht_time mdht_node_next_deadline(const mdht_node *node) {
  mdht_time t = mdht_txn_next_deadline(&node->txns);
  t = min_time(t, mdht_token_next_rotate(&node->tokens));
  t = min_time(t, node->peers.next_expiry);
  return t;
}

int mdht_node_tick(mdht_node *node, mdht_time now) {
  if (!node)
    return MDHT_ERR_INVAL;
  mdht_txn txn;
  while (mdht_txn_expire(&node->txns, now, &txn) == 0) {
    if (txn.owner.kind == MDHT_OWNER_CONFIRM ||
        txn.owner.kind == MDHT_OWNER_CHECK)
      node->maint_pings--;
    mdht_event ev;
    mdht_bus_event_init(&ev, MDHT_EV_QUERY_TIMEOUT, now);
    ev.addr = txn.addr;
    if (txn.has_id)
      ev.id = txn.id;
    ev.method = txn.method;
    publish(node, &ev);
  }
  if (now >= mdht_token_next_rotate(&node->tokens)) {
    uint8_t secret[MDHT_TOKEN_SECRET_LEN];
    mdht__node_random(node, secret, sizeof secret);
    mdht_token_rotate(&node->tokens, secret, now);
  }
  if (now >= node->peers.next_expiry)
    mdht_peers_expire(&node->peers, now);
  return 0;
}

int mdht_node_ping(mdht_node *node, const mdht_addr *addr, mdht_time now) {
  if (!node || !addr)
    return MDHT_ERR_INVAL;
  if (mdht_addr_is_martian(addr) || addr->family != node->bound.family)
    return MDHT_ERR_ADDR;
  return send_ping(node, addr, NULL, MDHT_OWNER_PING, now);
}

void mdht_node_stats(const mdht_node *node, mdht_time now, mdht_stats *out) {
  *out = node->stats;
  mdht_rtable_counts(&node->rt, now, &out->nodes_good,
                     &out->nodes_questionable, &out->nodes_total,
                     &out->replacements);
  out->buckets = node->rt.nbuckets;
  out->infohashes = node->peers.nih;
  out->peers = node->peers.npeers;
  out->txns_outstanding = node->txns.n;
}
