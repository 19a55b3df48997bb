/*
 * KRPC messages: decoding and encoding. See krpc.h.
 *
 * Decoding makes one pass over the bencode and one merge-walk over each
 * dict it cares about: both the dict's keys and our tables of known keys
 * are sorted, so every key is compared O(1) times.
 */
#include "krpc.h"

#include "addr.h"

#include <stddef.h>
#include <string.h>

typedef struct key {
  const char *s;
  size_t len;
} key;

#define K(lit)                                                                 \
  { lit, sizeof lit - 1 }

/* Each table is in bencode key order, which scan_dict relies on. */
enum { T_A, T_E, T_IP, T_Q, T_R, T_RO, T_T, T_V, T_Y, T_N };
static const key top_keys[T_N] = {K("a"),  K("e"), K("ip"), K("q"), K("r"),
                                  K("ro"), K("t"), K("v"),  K("y")};

enum {
  A_CAS,
  A_ID,
  A_IMPLIED_PORT,
  A_INFO_HASH,
  A_K,
  A_NOSEED,
  A_PORT,
  A_SALT,
  A_SCRAPE,
  A_SEED,
  A_SEQ,
  A_SIG,
  A_TARGET,
  A_TOKEN,
  A_V,
  A_WANT,
  A_N
};
static const key arg_keys[A_N] = {
    K("cas"),    K("id"),   K("implied_port"), K("info_hash"), K("k"),
    K("noseed"), K("port"), K("salt"),         K("scrape"),    K("seed"),
    K("seq"),    K("sig"),  K("target"),       K("token"),     K("v"),
    K("want")};

enum {
  R_BFPE,
  R_BFSD,
  R_ID,
  R_INTERVAL,
  R_K,
  R_NODES,
  R_NODES6,
  R_NUM,
  R_SAMPLES,
  R_SEQ,
  R_SIG,
  R_TOKEN,
  R_V,
  R_VALUES,
  R_N
};
/* Sorted as bencode sorts keys (raw bytes: upper case first). */
static const key resp_keys[R_N] = {
    K("BFpe"),  K("BFsd"),   K("id"),  K("interval"), K("k"),
    K("nodes"), K("nodes6"), K("num"), K("samples"),  K("seq"),
    K("sig"),   K("token"),  K("v"),   K("values")};

/* Indexed by mdht_method. */
static const key method_names[MDHT_M_UNKNOWN] = {K("ping"),
                                                 K("find_node"),
                                                 K("get_peers"),
                                                 K("announce_peer"),
                                                 K("sample_infohashes"),
                                                 K("get"),
                                                 K("put")};

static int keycmp(const uint8_t *a, size_t alen, const key *k) {
  size_t n = alen < k->len ? alen : k->len;
  int c = n ? memcmp(a, k->s, n) : 0;
  if (c) return c;
  return (alen > k->len) - (alen < k->len);
}

/* out[j] = token index of the value of keys[j] in `dict`, or -1. */
static void scan_dict(const uint8_t *buf, const mdht_be_tok *toks, int dict,
                      const key *keys, size_t nkeys, int *out) {
  for (size_t j = 0; j < nkeys; j++)
    out[j] = -1;
  size_t j = 0;
  uint32_t end = toks[dict].next;
  for (uint32_t i = (uint32_t)dict + 1; i < end && j < nkeys;
       i = toks[i + 1].next) {
    const mdht_be_tok *k = &toks[i];
    while (j < nkeys) {
      int c = keycmp(buf + k->start, k->len, &keys[j]);
      if (c < 0) /* a key we do not know: next key */
        break;
      if (c == 0)
        out[j++] = (int)i + 1;
      else /* keys[j] is absent */
        j++;
      if (c == 0) break;
    }
  }
}

static bool is_type(const mdht_be_tok *toks, int i, mdht_be_type type) {
  return i >= 0 && toks[i].type == type;
}

static mdht_bytes bytes_of(const uint8_t *buf, const mdht_be_tok *t) {
  mdht_bytes b = {buf + t->start, t->len};
  return b;
}

static int get_id(const uint8_t *buf, const mdht_be_tok *toks, int i,
                  mdht_id *out) {
  if (!is_type(toks, i, MDHT_BE_STR) || toks[i].len != MDHT_ID_LEN)
    return MDHT_ERR_PROTO;
  memcpy(out->b, buf + toks[i].start, MDHT_ID_LEN);
  return 0;
}

/* Optional integer used as a flag: absent is false, any non-zero true. */
static int get_flag(const mdht_be_tok *toks, int i, bool *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_INT) return MDHT_ERR_PROTO;
  *out = toks[i].ival != 0;
  return 0;
}

/* Optional non-negative integer; stays -1 when absent. */
static int get_count(const mdht_be_tok *toks, int i, int64_t *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_INT || toks[i].ival < 0) return MDHT_ERR_PROTO;
  *out = toks[i].ival;
  return 0;
}

/* Optional string whose length must be a multiple of `unit`. */
static int get_packed(const uint8_t *buf, const mdht_be_tok *toks, int i,
                      size_t unit, mdht_bytes *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_STR || toks[i].len % unit) return MDHT_ERR_PROTO;
  *out = bytes_of(buf, &toks[i]);
  return 0;
}

static int get_want(const uint8_t *buf, const mdht_be_tok *toks, int i,
                    uint8_t *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_LIST) return MDHT_ERR_PROTO;
  for (uint32_t j = (uint32_t)i + 1; j < toks[i].next; j = toks[j].next) {
    if (toks[j].type != MDHT_BE_STR) return MDHT_ERR_PROTO;
    /* Unknown families are skipped: a future "n8" must not break us. */
    if (toks[j].len != 2 || buf[toks[j].start] != 'n') continue;
    if (buf[toks[j].start + 1] == '4')
      *out |= MDHT_WANT_N4;
    else if (buf[toks[j].start + 1] == '6')
      *out |= MDHT_WANT_N6;
  }
  return 0;
}

/* Optional string of exactly `len` bytes. */
static int get_fixed(const uint8_t *buf, const mdht_be_tok *toks, int i,
                     size_t len, mdht_bytes *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_STR || toks[i].len != len) return MDHT_ERR_PROTO;
  *out = bytes_of(buf, &toks[i]);
  return 0;
}

/* Optional integer with a presence flag. */
static int get_opt_int(const mdht_be_tok *toks, int i, bool *has,
                       int64_t *out) {
  if (i < 0) return 0;
  if (toks[i].type != MDHT_BE_INT) return MDHT_ERR_PROTO;
  *has = true;
  *out = toks[i].ival;
  return 0;
}

/* A BEP 44 value: any bencoded type, kept verbatim. */
static void get_raw(const uint8_t *buf, const mdht_be_tok *toks, int i,
                    mdht_bytes *out) {
  size_t off;
  out->len = mdht_be_span(buf, toks, i, &off);
  out->p = buf + off;
}

/* BEP 44 put: token and v always; k, seq and sig together (mutable). */
static int decode_put(mdht_krpc_msg *m, const uint8_t *buf,
                      const mdht_be_tok *toks, const int *k) {
  int rc;
  if (!is_type(toks, k[A_TOKEN], MDHT_BE_STR) ||
      toks[k[A_TOKEN]].len > MDHT_KRPC_MAX_TOKEN || k[A_V] < 0)
    return MDHT_ERR_PROTO;
  m->token = bytes_of(buf, &toks[k[A_TOKEN]]);
  get_raw(buf, toks, k[A_V], &m->item_v);
  if ((rc = get_fixed(buf, toks, k[A_K], 32, &m->item_k)) ||
      (rc = get_fixed(buf, toks, k[A_SIG], 64, &m->item_sig)) ||
      (rc = get_opt_int(toks, k[A_SEQ], &m->has_seq, &m->seq)) ||
      (rc = get_opt_int(toks, k[A_CAS], &m->has_cas, &m->cas)))
    return rc;
  if (k[A_SALT] >= 0) {
    if (toks[k[A_SALT]].type != MDHT_BE_STR) return MDHT_ERR_PROTO;
    m->salt = bytes_of(buf, &toks[k[A_SALT]]);
  }
  if (m->item_k.len && (!m->has_seq || !m->item_sig.len)) return MDHT_ERR_PROTO;
  return 0;
}

static mdht_method method_of(const uint8_t *p, size_t len) {
  for (int i = 0; i < MDHT_M_UNKNOWN; i++)
    if (len == method_names[i].len && !memcmp(p, method_names[i].s, len))
      return (mdht_method)i;
  return MDHT_M_UNKNOWN;
}

static int decode_query(mdht_krpc_msg *m, const uint8_t *buf,
                        const mdht_be_tok *toks, const int *top) {
  int rc;
  m->ro = is_type(toks, top[T_RO], MDHT_BE_INT) && toks[top[T_RO]].ival == 1;
  if (!is_type(toks, top[T_Q], MDHT_BE_STR)) return MDHT_ERR_PROTO;
  m->q = bytes_of(buf, &toks[top[T_Q]]);
  m->method = method_of(m->q.p, m->q.len);
  int a = top[T_A];

  if (m->method == MDHT_M_UNKNOWN) {
    /* Answered with 204 whatever its arguments; keep the id if usable. */
    if (is_type(toks, a, MDHT_BE_DICT))
      m->has_id = get_id(buf, toks, mdht_be_dict_get(buf, toks, a, "id", 2),
                         &m->id) == 0;
    return 0;
  }

  if (!is_type(toks, a, MDHT_BE_DICT)) return MDHT_ERR_PROTO;
  int k[A_N];
  scan_dict(buf, toks, a, arg_keys, A_N, k);
  if ((rc = get_id(buf, toks, k[A_ID], &m->id))) return rc;
  m->has_id = true;

  switch (m->method) {
  case MDHT_M_PING:
    return 0;
  case MDHT_M_FIND_NODE:
  case MDHT_M_SAMPLE_INFOHASHES:
    if ((rc = get_id(buf, toks, k[A_TARGET], &m->target))) return rc;
    return get_want(buf, toks, k[A_WANT], &m->want);
  case MDHT_M_GET_PEERS:
    if ((rc = get_id(buf, toks, k[A_INFO_HASH], &m->target)) ||
        (rc = get_flag(toks, k[A_NOSEED], &m->noseed)) ||
        (rc = get_flag(toks, k[A_SCRAPE], &m->scrape)))
      return rc;
    return get_want(buf, toks, k[A_WANT], &m->want);
  case MDHT_M_ANNOUNCE_PEER:
    if ((rc = get_id(buf, toks, k[A_INFO_HASH], &m->target)) ||
        (rc = get_flag(toks, k[A_IMPLIED_PORT], &m->implied_port)) ||
        (rc = get_flag(toks, k[A_SEED], &m->seed)))
      return rc;
    if (k[A_PORT] >= 0) {
      const mdht_be_tok *p = &toks[k[A_PORT]];
      if (p->type != MDHT_BE_INT || p->ival < 0 || p->ival > 65535)
        return MDHT_ERR_PROTO;
      m->port = p->ival;
    } else if (!m->implied_port) {
      /* BEP 5 requires port, but it is meaningless with implied_port and
       * some clients leave it out. */
      return MDHT_ERR_PROTO;
    }
    if (!is_type(toks, k[A_TOKEN], MDHT_BE_STR) ||
        toks[k[A_TOKEN]].len > MDHT_KRPC_MAX_TOKEN)
      return MDHT_ERR_PROTO;
    m->token = bytes_of(buf, &toks[k[A_TOKEN]]);
    return 0;
  case MDHT_M_GET:
    if ((rc = get_id(buf, toks, k[A_TARGET], &m->target)) ||
        (rc = get_opt_int(toks, k[A_SEQ], &m->has_seq, &m->seq)))
      return rc;
    return get_want(buf, toks, k[A_WANT], &m->want);
  case MDHT_M_PUT:
    return decode_put(m, buf, toks, k);
  default:
    return MDHT_ERR_PROTO;
  }
}

/* A BEP 33 filter: a 256-byte string, else treated as absent. */
static void get_filter(const uint8_t *buf, const mdht_be_tok *toks, int t,
                       mdht_bytes *out) {
  if (t < 0 || toks[t].type != MDHT_BE_STR || toks[t].len != 256) return;
  *out = bytes_of(buf, &toks[t]);
}

/* A walk over the elements of a bencoded list that the decoder has
 * checked, from just after its 'l': raw_next() gives the next 6- or
 * 18-byte string at the list's own level (what the decoder counts as
 * values) and skips anything else, nested lists and dicts included. */
typedef struct raw_list {
  const uint8_t *p, *end;
  uint32_t depth; /* nesting below the list itself */
} raw_list;

static bool raw_next(raw_list *it, mdht_bytes *out) {
  while (it->p < it->end) {
    uint8_t c = *it->p;
    if (c == 'e') {
      if (it->depth == 0) return false;
      it->depth--;
      it->p++;
    } else if (c == 'l' || c == 'd') {
      it->depth++;
      it->p++;
    } else if (c == 'i') {
      const uint8_t *e = memchr(it->p, 'e', (size_t)(it->end - it->p));
      if (!e) return false;
      it->p = e + 1;
    } else {
      size_t len = 0;
      while (it->p < it->end && *it->p >= '0' && *it->p <= '9') {
        len = len * 10 + (size_t)(*it->p++ - '0');
        if (len > (size_t)(it->end - it->p)) return false;
      }
      if (it->p >= it->end || *it->p != ':') return false;
      it->p++;
      if (len > (size_t)(it->end - it->p)) return false;
      const uint8_t *s = it->p;
      it->p += len;
      if (it->depth == 0 &&
          (len == MDHT_COMPACT_PEER4 || len == MDHT_COMPACT_PEER6)) {
        *out = (mdht_bytes){s, len};
        return true;
      }
    }
  }
  return false;
}

static int decode_response(mdht_krpc_msg *m, const uint8_t *buf, size_t buf_len,
                           const mdht_be_tok *toks, const int *top) {
  int rc;
  int r = top[T_R];
  if (!is_type(toks, r, MDHT_BE_DICT)) return MDHT_ERR_PROTO;
  int k[R_N];
  scan_dict(buf, toks, r, resp_keys, R_N, k);
  if ((rc = get_id(buf, toks, k[R_ID], &m->id)) ||
      (rc = get_count(toks, k[R_INTERVAL], &m->interval)) ||
      (rc = get_packed(buf, toks, k[R_NODES], MDHT_COMPACT_NODE4, &m->nodes)) ||
      (rc = get_packed(buf, toks, k[R_NODES6], MDHT_COMPACT_NODE6,
                       &m->nodes6)) ||
      (rc = get_count(toks, k[R_NUM], &m->num)) ||
      (rc = get_packed(buf, toks, k[R_SAMPLES], MDHT_ID_LEN, &m->samples)))
    return rc;
  get_filter(buf, toks, k[R_BFSD], &m->bfsd);
  get_filter(buf, toks, k[R_BFPE], &m->bfpe);
  if ((rc = get_fixed(buf, toks, k[R_K], 32, &m->item_k)) ||
      (rc = get_fixed(buf, toks, k[R_SIG], 64, &m->item_sig)) ||
      (rc = get_opt_int(toks, k[R_SEQ], &m->has_seq, &m->seq)))
    return rc;
  if (k[R_V] >= 0) get_raw(buf, toks, k[R_V], &m->item_v);

  int t = k[R_TOKEN];
  if (t >= 0) {
    if (toks[t].type != MDHT_BE_STR) return MDHT_ERR_PROTO;
    /* An oversized token is the peer's problem: we would never be able to
     * send it back, but the nodes and values are still useful. */
    if (toks[t].len <= MDHT_KRPC_MAX_TOKEN) m->token = bytes_of(buf, &toks[t]);
  }

  int v = k[R_VALUES];
  if (v >= 0) {
    if (toks[v].type != MDHT_BE_LIST) return MDHT_ERR_PROTO;
    for (uint32_t j = (uint32_t)v + 1;
         j < toks[v].next && m->nvalues < MDHT_KRPC_MAX_VALUES;
         j = toks[j].next) {
      if (toks[j].type == MDHT_BE_STR && (toks[j].len == MDHT_COMPACT_PEER4 ||
                                          toks[j].len == MDHT_COMPACT_PEER6))
        m->nvalues++;
    }
    /* mdht_krpc_values() walks the list again when asked: it ends at the
     * list's 'e' (the bencode is valid), the datagram's end bounds it. */
    size_t at = toks[v].start + 1u;
    m->values_raw.p = buf + at;
    m->values_raw.len = buf_len - at;
  }
  return 0;
}

static int decode_error(mdht_krpc_msg *m, const uint8_t *buf,
                        const mdht_be_tok *toks, const int *top) {
  int e = top[T_E];
  if (!is_type(toks, e, MDHT_BE_LIST) || toks[e].len < 2) return MDHT_ERR_PROTO;
  int code = e + 1;
  int msg = (int)toks[code].next;
  if (toks[code].type != MDHT_BE_INT || toks[msg].type != MDHT_BE_STR)
    return MDHT_ERR_PROTO;
  m->ecode = toks[code].ival;
  m->emsg = bytes_of(buf, &toks[msg]);
  return 0;
}

int mdht_krpc_decode(mdht_krpc_msg *m, const uint8_t *pkt, size_t len,
                     mdht_be_tok *toks, size_t ntoks) {
  mdht_krpc_msg_init(m, 0);
  int n = mdht_be_decode(pkt, len, toks, ntoks, NULL);
  if (n < 0) return n == MDHT_ERR_INVAL ? n : MDHT_ERR_PARSE;
  if (toks[0].type != MDHT_BE_DICT) return MDHT_ERR_PROTO;

  int top[T_N];
  scan_dict(pkt, toks, 0, top_keys, T_N, top);

  /* y and t first, so that a query can be answered with 203 whatever else
   * is wrong with it. */
  int y = top[T_Y];
  bool y_ok = is_type(toks, y, MDHT_BE_STR) && toks[y].len == 1;
  if (y_ok) m->y = (char)pkt[toks[y].start];
  /* BEP 5 puts no bound on t ("typically 2 characters"); libtorrent and
   * bittorrent-dht echo 20 bytes and more, and so do we. Only the reply's
   * size bounds it: the node drops a query whose reply would not fit. */
  int t = top[T_T];
  if (is_type(toks, t, MDHT_BE_STR) && toks[t].len >= 1)
    m->t = bytes_of(pkt, &toks[t]);
  if (!y_ok || m->t.len == 0) return MDHT_ERR_PROTO;

  /* v and ip are advisory: a malformed one is ignored, not fatal. */
  if (is_type(toks, top[T_V], MDHT_BE_STR))
    m->v = bytes_of(pkt, &toks[top[T_V]]);
  int ip = top[T_IP];
  if (is_type(toks, ip, MDHT_BE_STR) &&
      mdht_addr_from_compact(&m->ip, pkt + toks[ip].start, toks[ip].len) == 0)
    m->has_ip = true;

  switch (m->y) {
  case 'q':
    return decode_query(m, pkt, toks, top);
  case 'r':
    return decode_response(m, pkt, len, toks, top);
  case 'e':
    return decode_error(m, pkt, toks, top);
  default:
    return MDHT_ERR_PROTO;
  }
}

/* ---------------------------------------------------------------- encoder */

#define W_KEY(w, lit) mdht_be_w_str((w), lit, sizeof lit - 1)

static void w_bytes(mdht_be_w *w, mdht_bytes b) {
  mdht_be_w_str(w, b.p, b.len);
}

static void w_want(mdht_be_w *w, uint8_t want) {
  if (!want) return;
  W_KEY(w, "want");
  mdht_be_w_list(w);
  if (want & MDHT_WANT_N4) W_KEY(w, "n4");
  if (want & MDHT_WANT_N6) W_KEY(w, "n6");
  mdht_be_w_end(w);
}

static void w_opt_int(mdht_be_w *w, const char *key, bool has, int64_t v) {
  if (!has) return;
  mdht_be_w_cstr(w, key);
  mdht_be_w_int(w, v);
}

static void w_opt_bytes(mdht_be_w *w, const char *key, mdht_bytes b) {
  if (!b.len) return;
  mdht_be_w_cstr(w, key);
  w_bytes(w, b);
}

/* BEP 44 put arguments after "id": k, salt, seq, sig, token, v. */
static void w_put_rest(mdht_be_w *w, const mdht_krpc_msg *m) {
  w_opt_bytes(w, "k", m->item_k);
  w_opt_bytes(w, "salt", m->salt);
  w_opt_int(w, "seq", m->has_seq, m->seq);
  w_opt_bytes(w, "sig", m->item_sig);
  W_KEY(w, "token");
  w_bytes(w, m->token);
  W_KEY(w, "v");
  mdht_be_w_raw(w, m->item_v.p, m->item_v.len);
}

static void w_args(mdht_be_w *w, const mdht_krpc_msg *m) {
  mdht_be_w_dict(w);
  if (m->method == MDHT_M_PUT) w_opt_int(w, "cas", m->has_cas, m->cas);
  W_KEY(w, "id");
  mdht_be_w_str(w, m->id.b, MDHT_ID_LEN);
  switch (m->method) {
  case MDHT_M_FIND_NODE:
  case MDHT_M_SAMPLE_INFOHASHES:
    W_KEY(w, "target");
    mdht_be_w_str(w, m->target.b, MDHT_ID_LEN);
    w_want(w, m->want);
    break;
  case MDHT_M_GET_PEERS:
    W_KEY(w, "info_hash");
    mdht_be_w_str(w, m->target.b, MDHT_ID_LEN);
    if (m->noseed) {
      W_KEY(w, "noseed");
      mdht_be_w_int(w, 1);
    }
    if (m->scrape) {
      W_KEY(w, "scrape");
      mdht_be_w_int(w, 1);
    }
    w_want(w, m->want);
    break;
  case MDHT_M_ANNOUNCE_PEER:
    if (m->implied_port) {
      W_KEY(w, "implied_port");
      mdht_be_w_int(w, 1);
    }
    W_KEY(w, "info_hash");
    mdht_be_w_str(w, m->target.b, MDHT_ID_LEN);
    W_KEY(w, "port");
    mdht_be_w_int(w, m->port);
    if (m->seed) {
      W_KEY(w, "seed");
      mdht_be_w_int(w, 1);
    }
    W_KEY(w, "token");
    w_bytes(w, m->token);
    break;
  case MDHT_M_GET:
    w_opt_int(w, "seq", m->has_seq, m->seq);
    W_KEY(w, "target");
    mdht_be_w_str(w, m->target.b, MDHT_ID_LEN);
    w_want(w, m->want);
    break;
  case MDHT_M_PUT:
    w_put_rest(w, m);
    break;
  default: /* ping, and unknown methods: just the id */
    break;
  }
  mdht_be_w_end(w);
}

static void w_resp(mdht_be_w *w, const mdht_krpc_msg *m) {
  mdht_be_w_dict(w);
  if (m->bfpe.len) {
    W_KEY(w, "BFpe");
    w_bytes(w, m->bfpe);
  }
  if (m->bfsd.len) {
    W_KEY(w, "BFsd");
    w_bytes(w, m->bfsd);
  }
  W_KEY(w, "id");
  mdht_be_w_str(w, m->id.b, MDHT_ID_LEN);
  if (m->interval >= 0) {
    W_KEY(w, "interval");
    mdht_be_w_int(w, m->interval);
  }
  w_opt_bytes(w, "k", m->item_k);
  if (m->nodes.len || m->nodes.p) { /* present, even if empty */
    W_KEY(w, "nodes");
    w_bytes(w, m->nodes);
  }
  if (m->nodes6.len || m->nodes6.p) {
    W_KEY(w, "nodes6");
    w_bytes(w, m->nodes6);
  }
  if (m->num >= 0) {
    W_KEY(w, "num");
    mdht_be_w_int(w, m->num);
  }
  /* BEP 51 and BEP 5 make these keys mandatory in their responses even
   * when empty; elsewhere an empty one is left out. */
  if (m->samples.len || m->method == MDHT_M_SAMPLE_INFOHASHES) {
    W_KEY(w, "samples");
    w_bytes(w, m->samples);
  }
  w_opt_int(w, "seq", m->has_seq, m->seq);
  w_opt_bytes(w, "sig", m->item_sig);
  if (m->token.len || m->method == MDHT_M_GET_PEERS ||
      m->method == MDHT_M_GET) {
    W_KEY(w, "token");
    w_bytes(w, m->token);
  }
  if (m->item_v.len) {
    W_KEY(w, "v");
    mdht_be_w_raw(w, m->item_v.p, m->item_v.len);
  }
  size_t nv =
      m->nvalues < MDHT_KRPC_MAX_VALUES ? m->nvalues : MDHT_KRPC_MAX_VALUES;
  if (nv) {
    W_KEY(w, "values");
    mdht_be_w_list(w);
    if (m->values) {
      for (size_t i = 0; i < nv; i++)
        w_bytes(w, m->values[i]);
    } else {
      /* a decoded message, encoded again (the fuzzer's round trip) */
      raw_list it = {m->values_raw.p, m->values_raw.p + m->values_raw.len, 0};
      mdht_bytes b;
      for (size_t i = 0; i < nv && raw_next(&it, &b); i++)
        w_bytes(w, b);
    }
    mdht_be_w_end(w);
  }
  mdht_be_w_end(w);
}

int mdht_krpc_encode(const mdht_krpc_msg *m, uint8_t *buf, size_t cap) {
  if (m->y != 'q' && m->y != 'r' && m->y != 'e') return MDHT_ERR_INVAL;
  /* A put carries a value: without one it would not be bencode. */
  if (m->y == 'q' && m->method == MDHT_M_PUT && !m->item_v.len)
    return MDHT_ERR_INVAL;
  uint8_t ip[MDHT_COMPACT_PEER6];
  size_t iplen = 0;
  if (m->has_ip) {
    if (m->ip.family != MDHT_AF_INET && m->ip.family != MDHT_AF_INET6)
      return MDHT_ERR_INVAL;
    iplen = mdht_addr_to_compact(&m->ip, ip);
  }

  mdht_be_w w;
  mdht_be_w_init(&w, buf, cap);
  mdht_be_w_dict(&w);
  /* Top-level keys in order: a, e, ip, q, r, ro, t, v, y. */
  if (m->y == 'q') {
    W_KEY(&w, "a");
    w_args(&w, m);
  } else if (m->y == 'e') {
    W_KEY(&w, "e");
    mdht_be_w_list(&w);
    mdht_be_w_int(&w, m->ecode);
    w_bytes(&w, m->emsg);
    mdht_be_w_end(&w);
  }
  if (iplen) {
    W_KEY(&w, "ip");
    mdht_be_w_str(&w, ip, iplen);
  }
  if (m->y == 'q') {
    W_KEY(&w, "q");
    if (m->method < MDHT_M_UNKNOWN)
      mdht_be_w_str(&w, method_names[m->method].s, method_names[m->method].len);
    else
      w_bytes(&w, m->q);
  } else if (m->y == 'r') {
    W_KEY(&w, "r");
    w_resp(&w, m);
  }
  if (m->y == 'q' && m->ro) {
    W_KEY(&w, "ro");
    mdht_be_w_int(&w, 1);
  }
  W_KEY(&w, "t");
  w_bytes(&w, m->t);
  if (m->v.len) {
    W_KEY(&w, "v");
    w_bytes(&w, m->v);
  }
  W_KEY(&w, "y");
  mdht_be_w_str(&w, &m->y, 1);
  mdht_be_w_end(&w);
  return mdht_be_w_finish(&w);
}

int mdht_krpc_encode_error(uint8_t *buf, size_t cap, mdht_bytes t, int code,
                           const char *msg, const mdht_addr *ip, mdht_bytes v) {
  mdht_krpc_msg m;
  mdht_krpc_msg_init(&m, 'e');
  m.t = t;
  m.v = v;
  if (ip) {
    m.has_ip = true;
    m.ip = *ip;
  }
  m.ecode = code;
  m.emsg.p = (const uint8_t *)msg;
  m.emsg.len = msg ? strlen(msg) : 0;
  return mdht_krpc_encode(&m, buf, cap);
}

size_t mdht_krpc_values(const mdht_krpc_msg *m, mdht_bytes *out, size_t max) {
  size_t n = m->nvalues < max ? m->nvalues : max;
  if (m->values) {
    memcpy(out, m->values, n * sizeof *out);
    return n;
  }
  /* No list (NULL): nothing to read, and NULL + 0 is undefined in C. */
  if (n == 0 || !m->values_raw.p) return 0;
  raw_list it = {m->values_raw.p, m->values_raw.p + m->values_raw.len, 0};
  size_t i = 0;
  while (i < n && raw_next(&it, &out[i]))
    i++;
  return i;
}

void mdht_krpc_msg_init(mdht_krpc_msg *m, char y) {
  memset(m, 0, sizeof *m);
  m->y = y;
  m->method = MDHT_M_UNKNOWN;
  m->interval = -1;
  m->num = -1;
}
