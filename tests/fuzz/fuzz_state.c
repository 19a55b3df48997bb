/*
 * libFuzzer target: the state file reader (src/core/state.c).
 *
 * Each input is tried twice: as it is, which mostly exercises the header
 * and checksum checks, and with a valid header and checksum forced onto
 * it, so that mutations reach the section parser behind the checksum.
 *
 * Properties: check, peek and load agree; a refused file changes nothing
 * in the node; every entry of an accepted file is accounted for (loaded,
 * skipped or expired); what a node saves after loading is itself a valid
 * file with the same entries.
 */
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"
#include "state.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x)) abort();                                                         \
  } while (0)

#define NOW 1000000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_random(uint8_t *buf, size_t len, void *user) {
  uint64_t *s = user;
  for (size_t i = 0; i < len; i++) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    buf[i] = (uint8_t)(*s >> 56);
  }
}

static mdht_node *new_node(uint64_t *seed, const mdht_id *id) {
  mdht_node *n = NULL;
  mdht_callbacks cb = {.random = fuzz_random, .user = seed};
  mdht_addr bound = {.family = MDHT_AF_INET, .port = 6881, .ip = {1, 2, 3, 4}};
  mdht_config cfg;
  mdht_config_default(&cfg);
  /* small bounds, so that inputs reach the eviction paths */
  cfg.max_infohashes = 16;
  cfg.max_peers_per_ih = 8;
  cfg.out_queue = 64;
  /* Node creation is the per-input cost: the default 4096-slot transaction
   * table (src/core/txn.c, zeroed and ASan-poisoned each time) took half
   * of every execution. 64 slots cost little, and still reach every path,
   * "table full" included (sooner). */
  cfg.max_txns = 64;
  CHECK(mdht_node_new(&n, &cfg, &cb, id, &bound, NOW) == 0);
  return n;
}

static uint32_t entries(const mdht_node *n) {
  uint32_t total, repl;
  mdht_rtable_counts(&n->rt, NOW, NULL, NULL, &total, &repl);
  return total + repl;
}

static void one(const uint8_t *data, size_t size) {
  mdht_state_info info, li;
  int rc = mdht_state_check(data, size, &info);
  CHECK(rc == 0 || rc == MDHT_ERR_CORRUPT || rc == MDHT_ERR_VERSION);
  CHECK(rc == 0 || info.why != NULL);
  mdht_id id;
  CHECK(mdht_state_peek_id(data, size, &id) == rc);

  uint64_t seed = 1;
  mdht_node *node = new_node(&seed, rc == 0 ? &id : NULL);
  int lrc = mdht_state_load(node, data, size, NOW, info.saved_wall_ms, &li);
  if (rc != 0) {
    CHECK(lrc == rc);
    CHECK(entries(node) == 0 && node->peers.npeers == 0);
    mdht_node_del(node);
    return;
  }
  CHECK(lrc == 0);
  CHECK(li.nodes + li.replacements + li.nodes_skipped ==
        info.nodes + info.replacements);
  CHECK(li.peers + li.peers_expired + li.peers_skipped == info.peers);
  CHECK(entries(node) == li.nodes + li.replacements);
  CHECK(mdht_state_pending(node) == li.nodes + li.replacements);

  uint8_t *out = NULL;
  size_t len = 0;
  mdht_state_info si;
  CHECK(mdht_state_save(node, NOW, 7, &out, &len, &si) == 0);
  CHECK(mdht_state_check(out, len, NULL) == 0);
  CHECK(si.nodes + si.replacements == li.nodes + li.replacements);
  CHECK(si.peers == node->peers.npeers);

  uint64_t seed2 = 1;
  mdht_node *again = new_node(&seed2, &id);
  mdht_state_info l2;
  CHECK(mdht_state_load(again, out, len, NOW, 7, &l2) == 0);
  CHECK(l2.nodes + l2.replacements == si.nodes + si.replacements);
  CHECK(l2.nodes_skipped == 0 && l2.peers_expired == 0);
  CHECK(l2.peers + l2.peers_skipped == si.peers);

  /* paced pings drain the loaded nodes, whatever the table looks like */
  uint32_t before = mdht_state_pending(again);
  int sent = mdht_state_ping_pending(again, NOW, 4);
  CHECK(sent == MDHT_ERR_AGAIN || (sent >= 0 && sent <= 4));
  if (sent >= 0) CHECK(mdht_state_pending(again) == before - (uint32_t)sent);

  free(out);
  mdht_node_del(again);
  mdht_node_del(node);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  one(data, size);
  if (size < MDHT_STATE_HEADER_LEN + MDHT_STATE_HASH_LEN || size > (1u << 20))
    return 0;
  uint8_t *fixed = malloc(size);
  CHECK(fixed);
  memcpy(fixed, data, size);
  memcpy(fixed, MDHT_STATE_MAGIC, MDHT_STATE_MAGIC_LEN);
  size_t body = size - MDHT_STATE_HEADER_LEN - MDHT_STATE_HASH_LEN;
  const uint8_t hdr[8] = {0,
                          MDHT_STATE_VERSION,
                          0,
                          0,
                          (uint8_t)(body >> 24),
                          (uint8_t)(body >> 16),
                          (uint8_t)(body >> 8),
                          (uint8_t)body};
  memcpy(fixed + MDHT_STATE_MAGIC_LEN, hdr, sizeof hdr);
  struct sha256_ctx ctx;
  sha256_init(&ctx);
  sha256_update(&ctx, size - MDHT_STATE_HASH_LEN, fixed);
  sha256_digest(&ctx, SHA256_DIGEST_SIZE, fixed + size - MDHT_STATE_HASH_LEN);
  one(fixed, size);
  free(fixed);
  return 0;
}
