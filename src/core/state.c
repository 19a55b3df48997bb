/*
 * Node state <-> bytes. The format is described in state.h.
 *
 * Reading is two passes over the same bytes: one that validates the whole
 * file and applies nothing, then one that applies. A file that is wrong
 * half-way therefore never leaves a node half-loaded, and the parsing code
 * is shared, so the two passes cannot disagree about what is valid.
 */
#include "state.h"

#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "bencode.h"
#include "id.h"
#include "item.h"
#include "node.h"

enum { SEC_META = 1, SEC_NODES = 2, SEC_PEERS = 3, SEC_ITEMS = 4 };
enum { KIND_NODE = 0, KIND_REPL = 1 };

#define NEVER UINT64_MAX
#define META_LEN (8 + MDHT_ID_LEN)
/* type u8 + length u32 */
#define SEC_HDR_LEN 5

/* ------------------------------------------------------------- writing */

/* A growable buffer whose failure is sticky, so that the writer can be a
 * straight sequence of puts with one check at the end. */
typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;
  bool oom;
} wbuf;

static void put(wbuf *w, const void *d, size_t n) {
  if (w->oom) return;
  if (n > w->cap - w->len) {
    size_t cap = w->cap ? w->cap : 4096;
    while (n > cap - w->len) {
      if (cap > SIZE_MAX / 2) {
        w->oom = true;
        return;
      }
      cap *= 2;
    }
    uint8_t *p = realloc(w->p, cap);
    if (!p) {
      w->oom = true;
      return;
    }
    w->p = p;
    w->cap = cap;
  }
  memcpy(w->p + w->len, d, n);
  w->len += n;
}

static void put_be(wbuf *w, uint64_t v, size_t n) {
  uint8_t b[8];
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
  put(w, b, n);
}

static void put_u8(wbuf *w, uint8_t v) {
  put_be(w, v, 1);
}
static void put_u16(wbuf *w, uint16_t v) {
  put_be(w, v, 2);
}
static void put_u32(wbuf *w, uint32_t v) {
  put_be(w, v, 4);
}
static void put_u64(wbuf *w, uint64_t v) {
  put_be(w, v, 8);
}

static void patch_u32(wbuf *w, size_t at, uint32_t v) {
  if (w->oom) return;
  for (size_t i = 0; i < 4; i++)
    w->p[at + i] = (uint8_t)(v >> (8 * (3 - i)));
}

/* Starts a section; returns where its length goes. */
static size_t begin_section(wbuf *w, uint8_t type) {
  put_u8(w, type);
  size_t at = w->len;
  put_u32(w, 0);
  return at;
}

static void end_section(wbuf *w, size_t at) {
  patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static size_t addr_len(uint8_t family) {
  return family == MDHT_AF_INET6 ? 16 : 4;
}

static void put_addr(wbuf *w, const mdht_addr *a) {
  put_u8(w, a->family);
  put(w, a->ip, addr_len(a->family));
  put_u16(w, a->port);
}

static uint64_t age(mdht_time t, mdht_time now) {
  if (t == 0) return NEVER;
  return t <= now ? now - t : 0;
}

static void put_entry(wbuf *w, const mdht_rtable *rt, const mdht_rt_entry *e,
                      uint8_t kind, mdht_time now) {
  put_u8(w, kind);
  put_u8(w, e->fails);
  mdht_addr a = mdht_rtable_addr(rt, e);
  put_addr(w, &a);
  put(w, e->id.b, MDHT_ID_LEN);
  put_u64(w, age(mdht_rtable_time(rt, e->last_reply), now));
  put_u64(w, age(mdht_rtable_time(rt, e->last_query), now));
  put_u64(w, age(mdht_rtable_time(rt, e->added), now));
}

typedef struct save_ctx {
  wbuf *w;
  mdht_time now;
  uint32_t nih, npeers;
  bool truncated;
} save_ctx;

static int save_group(const mdht_id *ih, const mdht_peer *peers, size_t n,
                      void *user) {
  save_ctx *s = user;
  uint32_t live = 0;
  size_t bytes = MDHT_ID_LEN + 4;
  for (size_t i = 0; i < n; i++) {
    if (peers[i].expires <= s->now) continue;
    live++;
    bytes += 1 + addr_len(peers[i].addr.family) + 2 + 1 + 8;
  }
  if (live == 0) return 0;
  /* Keep the whole file under the size readers accept; the routing table
   * was written first, so only peers are ever left out. */
  if (s->w->len + bytes + MDHT_STATE_HASH_LEN > MDHT_STATE_MAX_SIZE) {
    s->truncated = true;
    return 0;
  }
  put(s->w, ih->b, MDHT_ID_LEN);
  put_u32(s->w, live);
  for (size_t i = 0; i < n; i++) {
    if (peers[i].expires <= s->now) continue;
    put_addr(s->w, &peers[i].addr);
    put_u8(s->w, peers[i].seed ? 1 : 0);
    put_u64(s->w, peers[i].expires - s->now);
  }
  s->nih++;
  s->npeers += live;
  return 0;
}

typedef struct item_save_ctx {
  wbuf *w;
  mdht_time now;
  uint32_t n;
} item_save_ctx;

static int save_item(const mdht_item *it, void *user) {
  item_save_ctx *s = user;
  if (it->expires <= s->now) return 0;
  size_t bytes = MDHT_ID_LEN + 1 + 1 + 16 + 2 + 8 + 2 + it->vlen + 32 + 64 + 8 +
                 1 + it->salt_len;
  if (s->w->len + bytes + MDHT_STATE_HASH_LEN > MDHT_STATE_MAX_SIZE) return 0;
  put(s->w, it->target.b, MDHT_ID_LEN);
  put_u8(s->w, it->is_mutable ? 1 : 0);
  put_addr(s->w, &it->src);
  put_u64(s->w, it->expires - s->now);
  put_u16(s->w, it->vlen);
  put(s->w, it->v, it->vlen);
  if (it->is_mutable) {
    put(s->w, it->k, MDHT_ITEM_PK_LEN);
    put(s->w, it->sig, MDHT_ITEM_SIG_LEN);
    put_u64(s->w, (uint64_t)it->seq);
    put_u8(s->w, it->salt_len);
    put(s->w, it->salt, it->salt_len);
  }
  s->n++;
  return 0;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[32]) {
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, n, p);
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

int mdht_state_save(const mdht_node *node, mdht_time now, uint64_t wall_ms,
                    uint8_t **out, size_t *len, mdht_state_info *info) {
  if (!node || !out || !len) return MDHT_ERR_INVAL;
  wbuf w = {0};
  uint32_t nnodes = 0, nrepl = 0;

  put(&w, MDHT_STATE_MAGIC, MDHT_STATE_MAGIC_LEN);
  put_u16(&w, MDHT_STATE_VERSION);
  put_u16(&w, 0);
  put_u32(&w, 0); /* body length, patched below */

  size_t at = begin_section(&w, SEC_META);
  put_u64(&w, wall_ms);
  put(&w, node->id.b, MDHT_ID_LEN);
  end_section(&w, at);

  at = begin_section(&w, SEC_NODES);
  size_t count_at = w.len;
  put_u32(&w, 0);
  /* BEP 32: a dual-stack pair saves both tables in the one section, each
   * entry with its family; a reader of one family skips the other's. */
  for (const mdht_node *n = node; n; n = n == node ? node->sibling : NULL) {
    const mdht_rtable *rt = &n->rt;
    for (uint32_t bi = 0; bi < rt->nbuckets; bi++) {
      const mdht_rt_bucket *b = &rt->buckets[bi];
      /* A bad node is not worth a slot after the restart either. */
      for (uint32_t i = 0; i < b->n; i++) {
        if (mdht_rtable_state(rt, &b->nodes[i], now) == MDHT_RT_BAD) continue;
        put_entry(&w, rt, &b->nodes[i], KIND_NODE, now);
        nnodes++;
      }
      for (uint32_t i = 0; i < b->nrepl; i++) {
        if (mdht_rtable_state(rt, &b->repl[i], now) == MDHT_RT_BAD) continue;
        put_entry(&w, rt, &b->repl[i], KIND_REPL, now);
        nrepl++;
      }
    }
  }
  patch_u32(&w, count_at, nnodes + nrepl);
  end_section(&w, at);

  at = begin_section(&w, SEC_PEERS);
  count_at = w.len;
  put_u32(&w, 0);
  save_ctx s = {.w = &w, .now = now};
  mdht_peers_foreach(node->store, save_group, &s);
  patch_u32(&w, count_at, s.nih);
  end_section(&w, at);

  /* Only a node that holds items writes the section: the files of the
   * others stay byte for byte what they were. */
  item_save_ctx is = {.w = &w, .now = now};
  if (node->istore->n > 0) {
    at = begin_section(&w, SEC_ITEMS);
    count_at = w.len;
    put_u32(&w, 0);
    mdht_items_foreach(node->istore, save_item, &is);
    patch_u32(&w, count_at, is.n);
    end_section(&w, at);
  }

  if (!w.oom && w.len - MDHT_STATE_HEADER_LEN > UINT32_MAX) w.oom = true;
  patch_u32(&w, MDHT_STATE_HEADER_LEN - 4,
            (uint32_t)(w.len - MDHT_STATE_HEADER_LEN));
  uint8_t hash[MDHT_STATE_HASH_LEN];
  if (!w.oom) sha256(w.p, w.len, hash);
  put(&w, hash, sizeof hash);
  if (w.oom) {
    free(w.p);
    return MDHT_ERR_NOMEM;
  }
  if (info) {
    memset(info, 0, sizeof *info);
    info->version = MDHT_STATE_VERSION;
    info->saved_wall_ms = wall_ms;
    info->id = node->id;
    info->nodes = nnodes;
    info->replacements = nrepl;
    info->infohashes = s.nih;
    info->peers = s.npeers;
    info->items = is.n;
    info->truncated = s.truncated;
  }
  *out = w.p;
  *len = w.len;
  return 0;
}

/* ------------------------------------------------------------- reading */

/* A bounded reader: every get checks the bytes left, and a short read
 * latches `bad` so that callers can check once per record. */
typedef struct rbuf {
  const uint8_t *p;
  size_t len, off;
  bool bad;
  bool family; /* bad was latched by an unknown address family */
} rbuf;

static const uint8_t *get(rbuf *r, size_t n) {
  if (r->bad || n > r->len - r->off) {
    r->bad = true;
    return NULL;
  }
  const uint8_t *p = r->p + r->off;
  r->off += n;
  return p;
}

static uint64_t get_be(rbuf *r, size_t n) {
  const uint8_t *p = get(r, n);
  uint64_t v = 0;
  for (size_t i = 0; p && i < n; i++)
    v = v << 8 | p[i];
  return v;
}

static bool get_addr(rbuf *r, mdht_addr *a) {
  memset(a, 0, sizeof *a);
  uint8_t fam = (uint8_t)get_be(r, 1);
  if (r->bad) return false;
  if (fam != MDHT_AF_INET && fam != MDHT_AF_INET6) {
    r->bad = r->family = true;
    return false;
  }
  a->family = fam;
  const uint8_t *ip = get(r, addr_len(fam));
  if (!ip) return false;
  memcpy(a->ip, ip, addr_len(fam));
  a->port = (uint16_t)get_be(r, 2);
  return !r->bad;
}

typedef struct node_rec {
  uint8_t kind, fails;
  mdht_addr addr;
  mdht_id id;
  uint64_t reply_age, query_age, added_age;
} node_rec;

typedef struct peer_rec {
  mdht_addr addr;
  bool seed;
  uint64_t remaining_ms;
} peer_rec;

/* Section payloads found by the validating pass. */
typedef struct layout {
  uint64_t saved_wall_ms;
  mdht_id id;
  const uint8_t *nodes, *peers, *items; /* NULL: section absent */
  size_t nodes_len, peers_len, items_len;
  uint32_t nnodes, nrepl, nih, npeers, nitems;
} layout;

typedef struct item_rec {
  mdht_id target;
  mdht_addr src;
  uint64_t remaining_ms;
  mdht_item_put put;
} item_rec;

typedef int (*item_fn)(const item_rec *it, void *user);

typedef void (*node_fn)(const node_rec *n, void *user);
typedef int (*peer_fn)(const mdht_id *ih, const peer_rec *p, void *user);

static int corrupt(mdht_state_info *info, const char *why) {
  if (info) info->why = why;
  return MDHT_ERR_CORRUPT;
}

/* Walks the NODES payload, calling `fn` (may be NULL) for each entry. */
static int walk_nodes(layout *l, node_fn fn, void *user,
                      mdht_state_info *info) {
  rbuf r = {.p = l->nodes, .len = l->nodes_len};
  uint32_t count = (uint32_t)get_be(&r, 4);
  l->nnodes = l->nrepl = 0;
  for (uint32_t i = 0; i < count && !r.bad; i++) {
    node_rec n;
    n.kind = (uint8_t)get_be(&r, 1);
    n.fails = (uint8_t)get_be(&r, 1);
    if (!get_addr(&r, &n.addr)) break;
    const uint8_t *id = get(&r, MDHT_ID_LEN);
    if (!id) break;
    memcpy(n.id.b, id, MDHT_ID_LEN);
    n.reply_age = get_be(&r, 8);
    n.query_age = get_be(&r, 8);
    n.added_age = get_be(&r, 8);
    if (r.bad) break;
    if (n.kind != KIND_NODE && n.kind != KIND_REPL)
      return corrupt(info, "unknown routing entry kind");
    if (n.kind == KIND_NODE)
      l->nnodes++;
    else
      l->nrepl++;
    if (fn) fn(&n, user);
  }
  if (r.family) return corrupt(info, "unknown address family");
  if (r.bad) return corrupt(info, "malformed routing entry");
  if (r.off != r.len) return corrupt(info, "routing section length mismatch");
  return 0;
}

/* Walks the PEERS payload, calling `fn` (may be NULL) for each peer; a
 * negative return from `fn` stops the walk and is returned. */
static int walk_peers(layout *l, peer_fn fn, void *user,
                      mdht_state_info *info) {
  rbuf r = {.p = l->peers, .len = l->peers_len};
  uint32_t nih = (uint32_t)get_be(&r, 4);
  l->nih = l->npeers = 0;
  for (uint32_t i = 0; i < nih && !r.bad; i++) {
    mdht_id ih;
    const uint8_t *p = get(&r, MDHT_ID_LEN);
    if (!p) break;
    memcpy(ih.b, p, MDHT_ID_LEN);
    uint32_t n = (uint32_t)get_be(&r, 4);
    if (r.bad) break;
    if (n == 0) return corrupt(info, "info-hash without peers");
    for (uint32_t j = 0; j < n && !r.bad; j++) {
      peer_rec pr;
      if (!get_addr(&r, &pr.addr)) break;
      uint8_t seed = (uint8_t)get_be(&r, 1);
      pr.remaining_ms = get_be(&r, 8);
      if (r.bad) break;
      if (seed > 1) return corrupt(info, "bad seed flag");
      pr.seed = seed;
      l->npeers++;
      if (fn) {
        int rc = fn(&ih, &pr, user);
        if (rc < 0) return rc;
      }
    }
    l->nih++;
  }
  if (r.family) return corrupt(info, "unknown address family");
  if (r.bad) return corrupt(info, "malformed peer entry");
  if (r.off != r.len) return corrupt(info, "peer section length mismatch");
  return 0;
}

/* Reads one item record; false (r->bad latched) if malformed. */
static bool get_item(rbuf *r, item_rec *it) {
  memset(it, 0, sizeof *it);
  const uint8_t *t = get(r, MDHT_ID_LEN);
  if (!t) return false;
  memcpy(it->target.b, t, MDHT_ID_LEN);
  uint8_t mut = (uint8_t)get_be(r, 1);
  if (!get_addr(r, &it->src)) return false;
  it->remaining_ms = get_be(r, 8);
  size_t vlen = (size_t)get_be(r, 2);
  if (r->bad || mut > 1 || vlen == 0 || vlen > MDHT_ITEM_MAX_V) {
    r->bad = true;
    return false;
  }
  it->put.v = get(r, vlen);
  it->put.vlen = vlen;
  if (!mut) return !r->bad;
  it->put.is_mutable = true;
  it->put.k = get(r, MDHT_ITEM_PK_LEN);
  it->put.sig = get(r, MDHT_ITEM_SIG_LEN);
  it->put.seq = (int64_t)get_be(r, 8);
  it->put.salt_len = (size_t)get_be(r, 1);
  if (r->bad || it->put.salt_len > MDHT_ITEM_MAX_SALT) {
    r->bad = true;
    return false;
  }
  it->put.salt = get(r, it->put.salt_len);
  return !r->bad;
}

/* Walks the ITEMS payload, calling `fn` (may be NULL) for each item; a
 * negative return from `fn` stops the walk and is returned. */
static int walk_items(layout *l, item_fn fn, void *user,
                      mdht_state_info *info) {
  rbuf r = {.p = l->items, .len = l->items_len};
  uint32_t n = (uint32_t)get_be(&r, 4);
  l->nitems = 0;
  for (uint32_t i = 0; i < n && !r.bad; i++) {
    item_rec it;
    if (!get_item(&r, &it)) break;
    l->nitems++;
    if (fn) {
      int rc = fn(&it, user);
      if (rc < 0) return rc;
    }
  }
  if (r.family) return corrupt(info, "unknown address family");
  if (r.bad) return corrupt(info, "malformed item entry");
  if (r.off != r.len) return corrupt(info, "item section length mismatch");
  return 0;
}

/* Header, checksum and section framing; fills `l`. */
static int parse_frame(const uint8_t *buf, size_t len, layout *l,
                       mdht_state_info *info) {
  memset(l, 0, sizeof *l);
  if (!buf || len == 0) return corrupt(info, "empty file");
  /* Magic first: a foreign file is named as such, not as "truncated". */
  size_t m = len < MDHT_STATE_MAGIC_LEN ? len : MDHT_STATE_MAGIC_LEN;
  if (memcmp(buf, MDHT_STATE_MAGIC, m) != 0)
    return corrupt(info, "not a mdht state file");
  if (len < MDHT_STATE_MAGIC_LEN + 4) return corrupt(info, "truncated");
  rbuf r = {.p = buf, .len = len, .off = MDHT_STATE_MAGIC_LEN};
  uint16_t version = (uint16_t)get_be(&r, 2);
  uint16_t flags = (uint16_t)get_be(&r, 2);
  if (info) info->version = version;
  /* Checked before the length and the checksum: a later version may
   * frame its file differently, and "written by another mdht version" is
   * the helpful message then. */
  if (version != MDHT_STATE_VERSION) {
    if (info) info->why = "unsupported version";
    return MDHT_ERR_VERSION;
  }
  if (flags != 0) {
    if (info) info->why = "unsupported flags";
    return MDHT_ERR_VERSION;
  }
  if (len < MDHT_STATE_HEADER_LEN + MDHT_STATE_HASH_LEN)
    return corrupt(info, "truncated");
  uint32_t body = (uint32_t)get_be(&r, 4);
  if ((uint64_t)body + MDHT_STATE_HEADER_LEN + MDHT_STATE_HASH_LEN != len)
    return corrupt(info, len < (uint64_t)body + MDHT_STATE_HEADER_LEN +
                                     MDHT_STATE_HASH_LEN
                             ? "truncated"
                             : "trailing bytes");
  uint8_t hash[MDHT_STATE_HASH_LEN];
  sha256(buf, len - MDHT_STATE_HASH_LEN, hash);
  if (memcmp(hash, buf + len - MDHT_STATE_HASH_LEN, sizeof hash) != 0)
    return corrupt(info, "checksum mismatch");

  rbuf s = {.p = buf + MDHT_STATE_HEADER_LEN, .len = body};
  bool meta = false;
  while (s.off < s.len) {
    uint8_t type = (uint8_t)get_be(&s, 1);
    uint32_t n = (uint32_t)get_be(&s, 4);
    const uint8_t *p = get(&s, n);
    if (!p) return corrupt(info, "malformed section");
    if (!meta && type != SEC_META)
      return corrupt(info, "first section is not META");
    switch (type) {
    case SEC_META:
      if (meta) return corrupt(info, "duplicate section");
      if (n != META_LEN) return corrupt(info, "malformed META section");
      meta = true;
      rbuf mr = {.p = p, .len = n};
      l->saved_wall_ms = get_be(&mr, 8);
      memcpy(l->id.b, get(&mr, MDHT_ID_LEN), MDHT_ID_LEN);
      break;
    case SEC_NODES:
      if (l->nodes) return corrupt(info, "duplicate section");
      l->nodes = p;
      l->nodes_len = n;
      break;
    case SEC_PEERS:
      if (l->peers) return corrupt(info, "duplicate section");
      l->peers = p;
      l->peers_len = n;
      break;
    case SEC_ITEMS:
      if (l->items) return corrupt(info, "duplicate section");
      l->items = p;
      l->items_len = n;
      break;
    default:
      break; /* a later writer's addition: skipped */
    }
  }
  if (!meta) return corrupt(info, "no META section");
  return 0;
}

/* The validating pass. */
static int parse(const uint8_t *buf, size_t len, layout *l,
                 mdht_state_info *info) {
  int rc = parse_frame(buf, len, l, info);
  if (rc == 0 && l->nodes) rc = walk_nodes(l, NULL, NULL, info);
  if (rc == 0 && l->peers) rc = walk_peers(l, NULL, NULL, info);
  if (rc == 0 && l->items) rc = walk_items(l, NULL, NULL, info);
  return rc;
}

int mdht_state_check(const uint8_t *buf, size_t len, mdht_state_info *info) {
  layout l;
  if (info) memset(info, 0, sizeof *info);
  int rc = parse(buf, len, &l, info);
  if (rc == 0 && info) {
    info->saved_wall_ms = l.saved_wall_ms;
    info->id = l.id;
    info->nodes = l.nnodes;
    info->replacements = l.nrepl;
    info->infohashes = l.nih;
    info->peers = l.npeers;
    info->items = l.nitems;
  }
  return rc;
}

int mdht_state_peek_id(const uint8_t *buf, size_t len, mdht_id *out) {
  layout l;
  if (!out) return MDHT_ERR_INVAL;
  int rc = parse(buf, len, &l, NULL);
  if (rc == 0) *out = l.id;
  return rc;
}

/* ------------------------------------------------------------- loading */

/* Loaded and not yet pinged: in the table without ever having been heard
 * from or asked. Nothing else can be in the table in that state, since
 * mdht_rtable_heard stamps one of the two times, and only the loader
 * restores entries without them. */
static bool pending(const mdht_rt_entry *e) {
  return e->last_reply == 0 && e->last_query == 0 && e->last_ping == 0;
}

static void count_pending(const mdht_rtable *rt, uint32_t *nodes,
                          uint32_t *repl) {
  *nodes = *repl = 0;
  for (uint32_t bi = 0; bi < rt->nbuckets; bi++) {
    const mdht_rt_bucket *b = &rt->buckets[bi];
    for (uint32_t i = 0; i < b->n; i++)
      *nodes += pending(&b->nodes[i]);
    for (uint32_t i = 0; i < b->nrepl; i++)
      *repl += pending(&b->repl[i]);
  }
}

typedef struct load_ctx {
  mdht_node *node;
  mdht_time now;
  uint64_t downtime;
  uint8_t pass;  /* KIND_NODE, then KIND_REPL */
  uint32_t seen; /* entries of the file */
  int err;
  mdht_state_info *info;
} load_ctx;

/* The depth the saved table had at least: one past the longest prefix
 * any saved entry shares with our id (see mdht_rtable_presplit). */
typedef struct depth_ctx {
  const mdht_id *self;
  uint32_t depth;
} depth_ctx;

static void saved_depth(const node_rec *n, void *user) {
  depth_ctx *d = user;
  uint32_t cp = (uint32_t)mdht_id_common_prefix(&n->id, d->self);
  if (cp + 1 > d->depth) d->depth = cp + 1;
}

static void load_node(const node_rec *n, void *user) {
  load_ctx *c = user;
  mdht_node *node = c->node;
  uint32_t max_fails = node->cfg.max_fails ? node->cfg.max_fails : 1;
  if (n->kind != c->pass || c->err) return;
  c->seen++;
  /* Bad nodes are not worth a slot; the other family cannot be reached
   * from our socket. A node the table already knows (the node was not
   * fresh, or the file lists it twice) keeps what the live table knows:
   * the table refuses it. */
  if (node->sibling && n->addr.family == node->sibling->bound.family)
    node = node->sibling; /* BEP 32: the pair's other table */
  if (n->fails >= max_fails || n->addr.family != node->bound.family) return;
  /* Questionable and marked as loaded-not-yet-pinged (see state.h): no
   * answer or query of ours is carried over, as this process has seen
   * neither. Its failures are: a node that was failing before the
   * restart needs fewer misses to be replaced. */
  mdht_rt_entry e = {.id = n->id,
                     .added = mdht_rtable_tick(&node->rt, c->now),
                     .fails = n->fails};
  int rc = mdht_rtable_restore(&node->rt, &e, &n->addr, c->now);
  if (rc < 0) c->err = rc;
}

static int load_peer(const mdht_id *ih, const peer_rec *p, void *user) {
  load_ctx *c = user;
  if (p->remaining_ms <= c->downtime) {
    c->info->peers_expired++;
    return 0;
  }
  mdht_time left = p->remaining_ms - c->downtime;
  mdht_time exp = c->now + left < c->now ? UINT64_MAX - 1 : c->now + left;
  int rc =
      mdht_peers_add_until(c->node->store, ih, &p->addr, p->seed, exp, c->now);
  if (rc == MDHT_ERR_NOMEM) return rc;
  if (rc == MDHT_ERR_RANGE)
    c->info->peers_expired++;
  else if (rc < 0)
    c->info->peers_skipped++;
  else
    c->info->peers++;
  return 0;
}

/* An item from the file passes the checks a put passes: its target is
 * its own, its signature holds, its value is one bencoded value. */
static bool item_valid(const item_rec *it) {
  const mdht_item_put *p = &it->put;
  mdht_id t;
  if (p->is_mutable) {
    if (p->seq < 0 || !mdht_item_verify(p->k, p->sig, p->salt, p->salt_len,
                                        p->seq, p->v, p->vlen))
      return false;
    mdht_item_mutable_target(p->k, p->salt, p->salt_len, &t);
  } else {
    mdht_item_immutable_target(p->v, p->vlen, &t);
  }
  if (memcmp(t.b, it->target.b, MDHT_ID_LEN) != 0) return false;
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  size_t used = 0;
  return mdht_be_decode(p->v, p->vlen, toks, MDHT_KRPC_TOKENS, &used) > 0 &&
         used == p->vlen;
}

static int load_item(const item_rec *it, void *user) {
  load_ctx *c = user;
  if (it->remaining_ms <= c->downtime || !item_valid(it)) {
    c->info->items_skipped++;
    return 0;
  }
  mdht_time left = it->remaining_ms - c->downtime;
  mdht_time exp = c->now + left < c->now ? UINT64_MAX - 1 : c->now + left;
  int rc = mdht_items_put_until(c->node->istore, &it->target, &it->put,
                                &it->src, exp, c->now);
  if (rc == MDHT_ERR_NOMEM) return rc;
  if (rc != 0)
    c->info->items_skipped++;
  else
    c->info->items++;
  return 0;
}

int mdht_state_load(mdht_node *node, const uint8_t *buf, size_t len,
                    mdht_time now, uint64_t wall_ms, mdht_state_info *info) {
  mdht_state_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof *info);
  if (!node) return MDHT_ERR_INVAL;
  layout l;
  int rc = parse(buf, len, &l, info);
  if (rc) return rc;
  info->saved_wall_ms = l.saved_wall_ms;
  info->id = l.id;
  info->downtime_ms = wall_ms > l.saved_wall_ms ? wall_ms - l.saved_wall_ms : 0;

  load_ctx c = {
      .node = node, .now = now, .downtime = info->downtime_ms, .info = info};
  /* Bucket entries first, so that they get the slots and the candidates
   * queue behind them, as they were. */
  if (l.nodes) {
    depth_ctx d = {.self = &node->id, .depth = 0};
    walk_nodes(&l, saved_depth, &d, NULL);
    rc = mdht_rtable_presplit(&node->rt, d.depth, now);
    if (rc == 0 && node->sibling)
      rc = mdht_rtable_presplit(&node->sibling->rt, d.depth, now);
    if (rc) return rc;
    c.pass = KIND_NODE;
    walk_nodes(&l, load_node, &c, NULL);
    c.pass = KIND_REPL;
    walk_nodes(&l, load_node, &c, NULL);
    if (c.err) return c.err;
  }
  /* Counted from the table rather than as entries went in: a full
   * candidate list drops its oldest, which may be one loaded earlier. */
  count_pending(&node->rt, &info->nodes, &info->replacements);
  if (node->sibling) {
    uint32_t sn, sr;
    count_pending(&node->sibling->rt, &sn, &sr);
    info->nodes += sn;
    info->replacements += sr;
  }
  uint32_t in = info->nodes + info->replacements;
  info->nodes_skipped = c.seen > in ? c.seen - in : 0;
  if (l.peers) {
    rc = walk_peers(&l, load_peer, &c, NULL);
    if (rc) return rc;
  }
  info->infohashes = node->store->nih;
  if (l.items) {
    rc = walk_items(&l, load_item, &c, NULL);
    if (rc) return rc;
  }

  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_STATE_LOADED, now);
  ev.id = l.id;
  ev.u.state.nodes = info->nodes + info->replacements;
  ev.u.state.peers = info->peers;
  mdht_bus_publish(&node->bus, &ev);
  return 0;
}

/* -------------------------------------------------------- loaded nodes */

/* Pings one entry of node->rt; 0 or the send error. */
static int ping_entry(mdht_node *node, mdht_rt_entry *e, mdht_time now) {
  mdht_id id = e->id;
  mdht_addr addr = mdht_rtable_addr(&node->rt, e);
  mdht_krpc_msg q;
  mdht_krpc_msg_init(&q, 'q');
  q.method = MDHT_M_PING;
  mdht_txn_owner owner = {.kind = MDHT_OWNER_PING};
  int rc = mdht__node_send_query(node, &q, &addr, &id, owner, now);
  /* Sending publishes QUERY_SENT only, which changes no table, so `e`
   * still points at the entry. */
  if (rc == 0) e->last_ping = mdht_rtable_tick(&node->rt, now);
  return rc;
}

static int ping_pending_one(mdht_node *node, mdht_time now, uint32_t max);

int mdht_state_ping_pending(mdht_node *node, mdht_time now, uint32_t max) {
  if (!node || max == 0) return MDHT_ERR_INVAL;
  int sent = ping_pending_one(node, now, max);
  /* BEP 32: then the pair's other table, within the same pace. */
  if (node->sibling && sent >= 0 && (uint32_t)sent < max) {
    int more = ping_pending_one(node->sibling, now, max - (uint32_t)sent);
    if (more > 0)
      sent += more;
    else if (more < 0 && sent == 0)
      sent = more;
  }
  return sent;
}

static int ping_pending_one(mdht_node *node, mdht_time now, uint32_t max) {
  mdht_rtable *rt = &node->rt;
  uint32_t sent = 0;
  bool blocked = false;
  /* Bucket entries first: they are the table; candidates only matter
   * once a bucket entry fails. */
  for (int repl = 0; repl < 2 && !blocked; repl++) {
    for (uint32_t bi = 0; bi < rt->nbuckets && !blocked; bi++) {
      mdht_rt_bucket *b = &rt->buckets[bi];
      mdht_rt_entry *v = repl ? b->repl : b->nodes;
      uint32_t n = repl ? b->nrepl : b->n;
      for (uint32_t i = 0; i < n; i++) {
        if (!pending(&v[i])) continue;
        if (sent >= max) return (int)sent;
        if (ping_entry(node, &v[i], now) != 0) {
          blocked = true;
          break;
        }
        sent++;
      }
    }
  }
  if (blocked && sent == 0) return MDHT_ERR_AGAIN;
  return (int)sent;
}

uint32_t mdht_state_pending(const mdht_node *node) {
  uint32_t n, r;
  if (!node) return 0;
  count_pending(&node->rt, &n, &r);
  if (node->sibling) {
    uint32_t sn, sr;
    count_pending(&node->sibling->rt, &sn, &sr);
    n += sn;
    r += sr;
  }
  return n + r;
}

void mdht_state_publish_saved(mdht_node *node, const mdht_state_info *info,
                              mdht_time now) {
  if (!node || !info) return;
  mdht_event ev;
  mdht_bus_event_init(&ev, MDHT_EV_STATE_SAVED, now);
  ev.id = node->id;
  ev.u.state.nodes = info->nodes + info->replacements;
  ev.u.state.peers = info->peers;
  mdht_bus_publish(&node->bus, &ev);
}

/* ----------------------------------------------------------- public API */

/* mdht.h's view of this module: the bytes, without the counts and the
 * driver's pacing of loaded pings (the node's maintenance pings them). */

int mdht_node_save(const mdht_node *node, mdht_time now, uint64_t wall_ms,
                   uint8_t **out, size_t *len) {
  return mdht_state_save(node, now, wall_ms, out, len, NULL);
}

int mdht_node_saved_id(const uint8_t *buf, size_t len, mdht_id *out) {
  return mdht_state_peek_id(buf, len, out);
}

int mdht_node_load(mdht_node *node, const uint8_t *buf, size_t len,
                   mdht_time now, uint64_t wall_ms) {
  return mdht_state_load(node, buf, len, now, wall_ms, NULL);
}
