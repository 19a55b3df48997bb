/* Fuzzes the whole node: the input is a sequence of datagrams from a few
 * sources, with time passing between them. Whatever arrives, the node must
 * not crash, leak or over-read, and everything it sends must be a valid
 * KRPC message within the size limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "krpc.h"
#include "mdht.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_random(uint8_t *buf, size_t len, void *user) {
  uint64_t *s = user;
  for (size_t i = 0; i < len; i++) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    buf[i] = (uint8_t)(*s >> 56);
  }
}

static void drain(mdht_node *node) {
  uint8_t out[MDHT_MAX_PACKET];
  mdht_addr to;
  int n;
  static mdht_be_tok toks[MDHT_KRPC_TOKENS];
  static mdht_krpc_msg m;
  while ((n = mdht_node_next_packet(node, &to, out, sizeof out)) > 0) {
    if (mdht_krpc_decode(&m, out, (size_t)n, toks, MDHT_KRPC_TOKENS) != 0)
      abort(); /* we sent something we cannot read back */
    if (m.y != 'q' && n > MDHT_RESPONSE_LIMIT) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t seed = 1;
  mdht_callbacks cb = {.random = fuzz_random, .user = &seed};
  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.allow_private = true;
  cfg.rate_limit_per_sec = 0;
  /* Node creation is the per-input cost: the default 4096-slot transaction
   * table (src/core/txn.c, zeroed and ASan-poisoned each time) took half
   * of every execution. 64 slots cost little, and still reach every path,
   * "table full" included (sooner). */
  cfg.max_txns = 64;
  mdht_addr bound = {
      .family = MDHT_AF_INET, .port = 6881, .ip = {127, 0, 0, 1}};
  mdht_node *node;
  mdht_time now = 1000;
  if (mdht_node_new(&node, &cfg, &cb, NULL, &bound, now) != 0) return 0;
  /* A lookup in flight, so that responses have someone to go to. */
  mdht_addr peer = {.family = MDHT_AF_INET, .port = 7000, .ip = {127, 0, 0, 2}};
  mdht_node_add_bootstrap(node, &peer, now);
  drain(node);
  /* Records: 1 byte source (low 2 bits) and time step (high 6 bits), 2
   * bytes length, then the datagram. */
  size_t off = 0;
  while (off + 3 <= size) {
    uint8_t hdr = data[off];
    size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
    off += 3;
    if (len > size - off) len = size - off;
    mdht_addr from = peer;
    from.ip[3] = (uint8_t)(2 + (hdr & 3));
    now += (mdht_time)(hdr >> 2) * 500;
    mdht_node_recv(node, &from, data + off, len, now);
    drain(node);
    if (mdht_node_next_deadline(node) <= now) {
      mdht_node_tick(node, now);
      drain(node);
    }
    off += len;
  }
  mdht_node_tick(node, now + 60000);
  drain(node);
  mdht_node_del(node);
  return 0;
}
