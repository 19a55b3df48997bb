/*
 * libFuzzer target: KRPC decoder and encoder.
 *
 * A message that decodes must encode, decode again to the same fields, and
 * encode again to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "krpc.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x)) abort();                                                         \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool bytes_eq(mdht_bytes a, mdht_bytes b) {
  return a.len == b.len && (!a.len || memcmp(a.p, b.p, a.len) == 0);
}

static bool addr_eq(const mdht_addr *a, const mdht_addr *b) {
  size_t n = a->family == MDHT_AF_INET6 ? 16 : 4;
  return a->family == b->family && a->port == b->port &&
         memcmp(a->ip, b->ip, n) == 0;
}

static void check_same(const mdht_krpc_msg *a, const mdht_krpc_msg *b) {
  CHECK(a->y == b->y);
  CHECK(bytes_eq(a->t, b->t));
  CHECK(bytes_eq(a->v, b->v));
  CHECK(a->has_ip == b->has_ip);
  if (a->has_ip) CHECK(addr_eq(&a->ip, &b->ip));
  CHECK(a->ro == b->ro);
  CHECK(a->method == b->method);
  CHECK(bytes_eq(a->q, b->q));
  CHECK(memcmp(&a->id, &b->id, sizeof a->id) == 0);
  CHECK(memcmp(&a->target, &b->target, sizeof a->target) == 0);
  CHECK(a->want == b->want);
  CHECK(a->port == b->port);
  CHECK(a->implied_port == b->implied_port);
  CHECK(a->seed == b->seed && a->noseed == b->noseed);
  CHECK(a->scrape == b->scrape);
  CHECK(bytes_eq(a->token, b->token));
  CHECK(bytes_eq(a->item_v, b->item_v) && bytes_eq(a->item_k, b->item_k));
  CHECK(bytes_eq(a->item_sig, b->item_sig) && bytes_eq(a->salt, b->salt));
  CHECK(a->has_seq == b->has_seq && (!a->has_seq || a->seq == b->seq));
  CHECK(a->has_cas == b->has_cas && (!a->has_cas || a->cas == b->cas));
  CHECK(bytes_eq(a->nodes, b->nodes));
  CHECK(bytes_eq(a->nodes6, b->nodes6));
  CHECK(a->nvalues == b->nvalues);
  static mdht_bytes va[MDHT_KRPC_MAX_VALUES], vb[MDHT_KRPC_MAX_VALUES];
  CHECK(mdht_krpc_values(a, va, MDHT_KRPC_MAX_VALUES) == a->nvalues);
  CHECK(mdht_krpc_values(b, vb, MDHT_KRPC_MAX_VALUES) == b->nvalues);
  for (size_t i = 0; i < a->nvalues; i++)
    CHECK(bytes_eq(va[i], vb[i]));
  CHECK(bytes_eq(a->samples, b->samples));
  CHECK(a->interval == b->interval && a->num == b->num);
  CHECK(a->ecode == b->ecode);
  CHECK(bytes_eq(a->emsg, b->emsg));
}

static void check_invariants(const mdht_krpc_msg *m, const uint8_t *data,
                             size_t size) {
  CHECK(m->y == 'q' || m->y == 'r' || m->y == 'e');
  CHECK(m->t.len >= 1);
  CHECK(m->t.p >= data && m->t.p + m->t.len <= data + size);
  CHECK(m->nodes.len % 26 == 0 && m->nodes6.len % 38 == 0);
  CHECK(m->samples.len % 20 == 0);
  CHECK(m->nvalues <= MDHT_KRPC_MAX_VALUES);
  static mdht_bytes vs[MDHT_KRPC_MAX_VALUES];
  CHECK(mdht_krpc_values(m, vs, MDHT_KRPC_MAX_VALUES) == m->nvalues);
  for (size_t i = 0; i < m->nvalues; i++)
    CHECK((vs[i].len == 6 || vs[i].len == 18) && vs[i].p >= data &&
          vs[i].p + vs[i].len <= data + size);
  CHECK(m->token.len <= MDHT_KRPC_MAX_TOKEN);
  CHECK(m->port >= 0 && m->port <= 65535);
  /* BEP 44: fixed sizes, and v a whole bencoded value inside the
   * datagram. */
  CHECK(m->item_k.len == 0 || m->item_k.len == 32);
  CHECK(m->item_sig.len == 0 || m->item_sig.len == 64);
  if (m->item_v.len) {
    CHECK(m->item_v.p >= data && m->item_v.p + m->item_v.len <= data + size);
    mdht_be_tok vt[MDHT_KRPC_TOKENS];
    size_t used = 0;
    CHECK(mdht_be_decode(m->item_v.p, m->item_v.len, vt, MDHT_KRPC_TOKENS,
                         &used) > 0);
    CHECK(used == m->item_v.len);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  mdht_krpc_msg *m1 = malloc(sizeof *m1);
  mdht_krpc_msg *m2 = malloc(sizeof *m2);
  CHECK(m1 && m2);
  int rc = mdht_krpc_decode(m1, data, size, toks, MDHT_KRPC_TOKENS);
  if (rc != 0) {
    CHECK(rc == MDHT_ERR_PARSE || rc == MDHT_ERR_PROTO);
    /* The 203 reply path reads t: it must lie inside the datagram. */
    if (m1->t.len) CHECK(m1->t.p >= data && m1->t.p + m1->t.len <= data + size);
    free(m1);
    free(m2);
    return 0;
  }
  check_invariants(m1, data, size);

  /* Encoding may add keys the sender left out (an empty id for an unknown
   * query, a port for implied_port), never much. */
  size_t cap = 2 * size + 256;
  uint8_t *out1 = malloc(cap);
  uint8_t *out2 = malloc(cap);
  CHECK(out1 && out2);
  int n1 = mdht_krpc_encode(m1, out1, cap);
  CHECK(n1 > 0);
  CHECK(mdht_krpc_encode(m1, out2, (size_t)n1 - 1) == MDHT_ERR_NOBUF);

  mdht_be_tok toks2[MDHT_KRPC_TOKENS];
  CHECK(mdht_krpc_decode(m2, out1, (size_t)n1, toks2, MDHT_KRPC_TOKENS) == 0);
  check_same(m1, m2);

  int n2 = mdht_krpc_encode(m2, out2, cap);
  CHECK(n2 == n1 && memcmp(out1, out2, (size_t)n1) == 0);

  if (m1->y == 'e' && m1->ecode >= INT32_MIN && m1->ecode <= INT32_MAX &&
      m1->emsg.len < 256 && !memchr(m1->emsg.p, 0, m1->emsg.len)) {
    char msg[256];
    memcpy(msg, m1->emsg.p, m1->emsg.len);
    msg[m1->emsg.len] = 0;
    int n3 = mdht_krpc_encode_error(out2, cap, m1->t, (int)m1->ecode, msg,
                                    m1->has_ip ? &m1->ip : NULL, m1->v);
    CHECK(n3 == n1 && memcmp(out1, out2, (size_t)n1) == 0);
  }

  free(out1);
  free(out2);
  free(m1);
  free(m2);
  return 0;
}
