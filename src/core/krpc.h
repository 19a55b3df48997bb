/*
 * KRPC messages (BEP 5) with the extension keys mdht understands:
 * ip (BEP 42), ro (BEP 43), want / nodes6 (BEP 32), implied_port,
 * seed / noseed / scrape and BFsd / BFpe (BEP 33),
 * sample_infohashes (BEP 51), get / put (BEP 44).
 *
 * One struct serves both directions, so that decode(encode(m)) == m can be
 * checked by the tests and the fuzzer. Byte fields point into the decoded
 * datagram (zero copy) or into the caller's memory when encoding.
 */
#ifndef MDHT_KRPC_H
#define MDHT_KRPC_H

#include "mdht.h"
#include "bencode.h"

#define MDHT_KRPC_MAX_VALUES 256 /* values beyond this are ignored */
#define MDHT_KRPC_MAX_TOKEN 64
#define MDHT_KRPC_TOKENS 512 /* bencode tokens a datagram may use */

/* KRPC error codes */
#define MDHT_KRPC_E_GENERIC 201
#define MDHT_KRPC_E_SERVER 202
#define MDHT_KRPC_E_PROTOCOL 203
#define MDHT_KRPC_E_METHOD 204

/* BEP 32 "want" flags */
#define MDHT_WANT_N4 1
#define MDHT_WANT_N6 2

typedef struct mdht_bytes {
  const uint8_t *p;
  size_t len;
} mdht_bytes;

typedef struct mdht_krpc_msg {
  char y; /* 'q', 'r' or 'e' */
  mdht_bytes t;
  mdht_bytes v; /* client version, len 0 if absent */
  bool has_ip;  /* BEP 42: our address as the sender sees it */
  mdht_addr ip;
  bool ro; /* BEP 43, queries only */

  /* y == 'q' */
  mdht_method method; /* MDHT_M_UNKNOWN for anything else */
  mdht_bytes q;       /* the method name as sent */

  /* 'q' and 'r': the sender's id (required in both) */
  mdht_id id;
  bool has_id; /* decoded queries: a valid id was present (always,
                  but for unknown methods, which need none) */

  /* query arguments */
  mdht_id target; /* find_node target, get_peers / announce_peer /
                     sample_infohashes info_hash or target */
  uint8_t want;   /* MDHT_WANT_* (0 = not given) */
  int64_t port;   /* announce_peer */
  bool implied_port;
  bool seed;        /* announce_peer "seed" (BEP 33) */
  bool noseed;      /* get_peers "noseed" */
  bool scrape;      /* get_peers "scrape" */
  mdht_bytes token; /* announce_peer / put query, get_peers / get
                       response */

  /* BEP 44, get / put queries and get responses. item_v is the value's
   * verbatim bencoding (any type), len 0 when absent; k is 32 bytes and
   * sig 64 when present (other lengths are MDHT_ERR_PROTO); salt any
   * length (the node answers 207 past 64); seq and cas have flags. A put
   * is mutable when k is present (then seq and sig are required). */
  mdht_bytes item_v, item_k, item_sig, salt;
  bool has_seq, has_cas;
  int64_t seq, cas;

  /* response fields */
  mdht_bytes nodes;  /* concatenated 26-byte compact nodes */
  mdht_bytes nodes6; /* concatenated 38-byte compact nodes */
  /* 6- or 18-byte peers, at most MDHT_KRPC_MAX_VALUES. Encoding reads
   * values[0..nvalues), the caller's array. Decoding counts them and keeps
   * the received list as values_raw (values stays NULL): an array of 256
   * spans in every message would be 4 KB of each node's scratch, most of
   * a simulated node. mdht_krpc_values() reads either form. */
  size_t nvalues;
  const mdht_bytes *values;
  mdht_bytes values_raw; /* decoded: the list's bytes after its 'l' */
  mdht_bytes samples;    /* BEP 51: concatenated 20-byte info-hashes */
  int64_t interval;      /* BEP 51, -1 if absent */
  int64_t num;           /* BEP 51, -1 if absent */
  /* BEP 33 scrape filters, 256 bytes each; len 0 when absent. A received
   * filter of another size is ignored (len 0), not an error: the rest of
   * the answer is still good. */
  mdht_bytes bfsd, bfpe;

  /* y == 'e' */
  int64_t ecode;
  mdht_bytes emsg;
} mdht_krpc_msg;

/* Decodes one datagram. `toks` is scratch of `ntoks` tokens
 * (MDHT_KRPC_TOKENS is plenty for any valid message). Byte fields of `m`
 * point into `pkt`. Returns 0, or
 *   MDHT_ERR_PARSE  not bencode, or more than `ntoks` tokens: drop;
 *   MDHT_ERR_PROTO  bencode, but not a valid KRPC message. If m->y == 'q'
 *                   and m->t.len > 0 on return, the caller answers with
 *                   error 203 using m->t; otherwise drop.
 * A query with an unknown method decodes with method = MDHT_M_UNKNOWN
 * (the node answers 204); its arguments are not checked. Unknown keys are
 * ignored (forward compatible), and so are a malformed "v" or "ip", a "ro"
 * other than i1e, values entries that are not 6- or 18-byte strings, and
 * a response token longer than MDHT_KRPC_MAX_TOKEN. Missing or mistyped
 * required keys, and known keys of the wrong type or shape (nodes not a
 * multiple of 26, port outside 0..65535, negative interval...):
 * MDHT_ERR_PROTO. A response does not say which query it answers: method
 * stays MDHT_M_UNKNOWN and every field present is filled. */
int mdht_krpc_decode(mdht_krpc_msg *m, const uint8_t *pkt, size_t len,
                     mdht_be_tok *toks, size_t ntoks);

/* Encodes `m`, which must have been set up with mdht_krpc_msg_init().
 * Returns the length, MDHT_ERR_NOBUF (nothing is written past `cap`), or
 * MDHT_ERR_INVAL (y not 'q', 'r' or 'e'; has_ip with a bad family).
 * Queries write the arguments of `m->method` (the name in `m->q` for
 * MDHT_M_UNKNOWN), plus "ro" when m->ro. Responses write every field that
 * is present: nodes/nodes6/samples/token when len > 0, values when
 * nvalues > 0, interval/num when >= 0; `m->method` says which query it
 * answers only so that get_peers always writes a token and
 * sample_infohashes always writes samples, get_peers and get a token.
 * BEP 44 fields are written when present (item_v verbatim). "ip" is written
 * whenever has_ip, "v" when v.len > 0. */
int mdht_krpc_encode(const mdht_krpc_msg *m, uint8_t *buf, size_t cap);

/* Convenience: a 2xx error reply, d1:eli<code>e<msg>e[2:ip..]1:t..[1:v..]
 * 1:y1:ee; `ip` may be NULL. */
int mdht_krpc_encode_error(uint8_t *buf, size_t cap, mdht_bytes t, int code,
                           const char *msg, const mdht_addr *ip, mdht_bytes v);

/* Copies up to `max` of `m`'s values (decoded or set for encoding) into
 * `out`, in order; returns how many. For a decoded message they are the
 * list's 6- and 18-byte strings, as counted in nvalues: O(size of the
 * list), no allocation. */
size_t mdht_krpc_values(const mdht_krpc_msg *m, mdht_bytes *out, size_t max);

/* Clears `m` for y: no fields, method MDHT_M_UNKNOWN, interval and num
 * -1. */
void mdht_krpc_msg_init(mdht_krpc_msg *m, char y);

#endif
