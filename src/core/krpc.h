/*
 * KRPC messages (BEP 5) with the extension keys mdht understands:
 * ip (BEP 42), ro (BEP 43), want / nodes6 (BEP 32), implied_port,
 * seed / noseed / scrape (BEP 33 fields are decoded, not yet answered),
 * sample_infohashes (BEP 51).
 *
 * One struct serves both directions, so that decode(encode(m)) == m can be
 * checked by the tests and the fuzzer. Byte fields point into the decoded
 * datagram (zero copy) or into the caller's memory when encoding.
 */
#ifndef MDHT_KRPC_H
#define MDHT_KRPC_H

#include "mdht.h"
#include "bencode.h"

#define MDHT_KRPC_MAX_TID 16     /* longer transaction ids are refused */
#define MDHT_KRPC_MAX_VALUES 256 /* values beyond this are ignored */
#define MDHT_KRPC_MAX_TOKEN 64
#define MDHT_KRPC_TOKENS 512     /* bencode tokens a datagram may use */

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
  mdht_bytes v;        /* client version, len 0 if absent */
  bool has_ip;         /* BEP 42: our address as the sender sees it */
  mdht_addr ip;
  bool ro;             /* BEP 43, queries only */

  /* y == 'q' */
  mdht_method method;  /* MDHT_M_UNKNOWN for anything else */
  mdht_bytes q;        /* the method name as sent */

  /* 'q' and 'r': the sender's id (required in both) */
  mdht_id id;

  /* query arguments */
  mdht_id target;      /* find_node target, get_peers / announce_peer /
                          sample_infohashes info_hash or target */
  uint8_t want;        /* MDHT_WANT_* (0 = not given) */
  int64_t port;        /* announce_peer */
  bool implied_port;
  bool seed;           /* announce_peer "seed" (BEP 33) */
  bool noseed;         /* get_peers "noseed" */
  bool scrape;         /* get_peers "scrape" */
  mdht_bytes token;    /* announce_peer query, get_peers response */

  /* response fields */
  mdht_bytes nodes;    /* concatenated 26-byte compact nodes */
  mdht_bytes nodes6;   /* concatenated 38-byte compact nodes */
  size_t nvalues;
  mdht_bytes values[MDHT_KRPC_MAX_VALUES]; /* 6- or 18-byte peers */
  mdht_bytes samples;  /* BEP 51: concatenated 20-byte info-hashes */
  int64_t interval;    /* BEP 51, -1 if absent */
  int64_t num;         /* BEP 51, -1 if absent */

  /* y == 'e' */
  int64_t ecode;
  mdht_bytes emsg;
} mdht_krpc_msg;

/* Decodes one datagram. `toks` is scratch of `ntoks` tokens
 * (MDHT_KRPC_TOKENS is plenty for any valid message).
 * Returns 0, or
 *   MDHT_ERR_PARSE  not bencode: drop;
 *   MDHT_ERR_PROTO  bencode, but not a valid KRPC message. If m->y == 'q'
 *                   and m->t.len > 0 on return, the caller answers with
 *                   error 203 using m->t; otherwise drop.
 * A query with an unknown method decodes with method = MDHT_M_UNKNOWN
 * (the node answers 204). Unknown keys are ignored (forward compatible).
 * Missing or mistyped required keys: MDHT_ERR_PROTO. */
int mdht_krpc_decode(mdht_krpc_msg *m, const uint8_t *pkt, size_t len,
                     mdht_be_tok *toks, size_t ntoks);

/* Encodes `m` (fields as above; which ones are written depends on y and
 * method: see krpc.c). Returns the length, or MDHT_ERR_NOBUF.
 * For responses, `m->method` says which query it answers (so that
 * get_peers writes token/values, sample_infohashes writes samples...).
 * `values` with nvalues > 0 is written as a list; nodes/nodes6 when
 * len > 0. */
int mdht_krpc_encode(const mdht_krpc_msg *m, uint8_t *buf, size_t cap);

/* Convenience: a 2xx error reply. */
int mdht_krpc_encode_error(uint8_t *buf, size_t cap, mdht_bytes t,
                           int code, const char *msg, const mdht_addr *ip,
                           mdht_bytes v);

void mdht_krpc_msg_init(mdht_krpc_msg *m, char y);

#endif
