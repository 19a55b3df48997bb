/*
 * bench_memory: what a node costs in memory. Creates one node through the
 * public API (include/mdht.h), feeds it datagrams with mdht_node_recv as
 * the network would, and reads its own RSS (/proc/self/status) and heap
 * (mallinfo2) after each stage:
 *
 *   1. an empty node;
 *   2. a full routing table: 8 nodes at every depth 0..DEPTHS-1 below our
 *      id (every bucket a 160-bit table can fill), each of which pings us
 *      and answers our confirmation ping, then 8 more per depth that only
 *      query us and wait in the replacement lists;
 *   3. 20,000 info-hashes with one peer each;
 *   4. 80,000 more peers on the same info-hashes (100,000 in all, 5 per
 *      info-hash), each announced the way a client does it: get_peers
 *      from its IP for a token, then announce_peer with that token.
 *
 * The heap figures are read with glibc's per-thread cache of freed chunks
 * (tcache) turned off: mallinfo2 counts a chunk parked there as in use,
 * so with it on the figures held up to 7 freed chunks of every small size,
 * and a table that grows its blocks (2, 4, 6 ... slots) read as larger
 * than one that allocates k slots at once while holding less. The program
 * re-executes itself with GLIBC_TUNABLES=glibc.malloc.tcache_count=0 unless
 * that is already set, or --tcache asks for the allocator as it is.
 *
 * Every peer has its own IP, so that each one needs its own token and no
 * deduplication helps. Announcers mark their queries ro=1 (BEP 43) so
 * that they stay out of the routing table and stage 2's figures are the
 * table's alone.
 *
 *   bench_memory [--json] [--tcache] [--peers N] [--infohashes N]
 *
 * Exit status: 0, or 1 when the node did not store what it was given.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mdht.h"

#include "bcode.h"
#include "feed.h"

/* A 160-bit table has a bucket per shared-prefix length; past depth 156
 * there are fewer than 8 ids sharing exactly that prefix with ours. */
#define DEPTHS 150
#define K 8

static long status_kb(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long v = -1;
  size_t kl = strlen(key);
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, kl) && line[kl] == ':') v = atol(line + kl + 1);
  fclose(f);
  return v;
}

typedef struct sample {
  long rss_kb;
  size_t heap; /* bytes in use by malloc: uordblks + hblkhd (mmapped) */
} sample;

static sample measure(void) {
  struct mallinfo2 mi = mallinfo2();
  sample s = {status_kb("VmRSS"), mi.uordblks + mi.hblkhd};
  return s;
}

static mdht_node *node;
static mdht_time now = 1000;
static uint8_t last_token[64];
static size_t last_token_len;
static uint64_t pings_answered, bad_packets;

/* Fake node ids, indexed like their addresses (see feed_addr). */
static mdht_id *fake_ids;
static uint32_t nfake;

/* Fake routing nodes live in 2.0.0.0/8, announcers in 3.0.0.0/8. */
static void deliver(const mdht_addr *from, const wbuf *w);

/* Takes what the node wants to send: answers its pings to our fake
 * routing nodes (so they become good), remembers the token of a get_peers
 * response, ignores the rest. */
static void drain(void) {
  static const char *const top_keys[] = {"t", "y", "r"};
  static const char *const r_keys[] = {"token"};
  uint8_t pkt[MDHT_MAX_PACKET];
  mdht_addr to;
  int n;
  while ((n = mdht_node_next_packet(node, &to, pkt, sizeof pkt)) > 0) {
    bc_span top, k[3], r[1];
    if (bc_value(pkt, pkt + n, 0, &top) != pkt + n ||
        !bc_dict(&top, top_keys, 3, k) || k[1].type != 's' || k[1].len != 1) {
      bad_packets++;
      continue;
    }
    if (k[1].s[0] == 'q') {
      uint32_t i = feed_index(&to);
      if (to.ip[0] != 2 || i >= nfake || k[0].type != 's') continue;
      wbuf w;
      feed_pong(&w, &fake_ids[i], k[0].s, k[0].len);
      pings_answered++;
      deliver(&to, &w);
    } else if (k[1].s[0] == 'r' && bc_dict(&k[2], r_keys, 1, r) &&
               r[0].type == 's' && r[0].len <= sizeof last_token) {
      memcpy(last_token, r[0].s, r[0].len);
      last_token_len = r[0].len;
    }
  }
}

static void deliver(const mdht_addr *from, const wbuf *w) {
  mdht_node_recv(node, from, w->p, w->n, now);
  drain();
}

static void query(const mdht_addr *from, const mdht_id *id, const char *q,
                  const wbuf *args_rest, bool ro) {
  wbuf w;
  feed_query(&w, id, q, args_rest, ro);
  deliver(from, &w);
}

/* ---------------------------------------------------------------- main */

#define NO_TCACHE "glibc.malloc.tcache_count=0"

/* Runs this program again with the thread cache off (see the top). Returns
 * only if that could not be done; the caller goes on with the cache on. */
static void reexec_without_tcache(char **argv) {
  const char *old = getenv("GLIBC_TUNABLES");
  char env[1024];
  if (old && strstr(old, NO_TCACHE)) return;
  if (snprintf(env, sizeof env, "%s%s%s", old ? old : "", old ? ":" : "",
               NO_TCACHE) >= (int)sizeof env)
    return;
  if (setenv("GLIBC_TUNABLES", env, 1) != 0) return;
  execv("/proc/self/exe", argv);
  fprintf(stderr, "bench_memory: could not turn glibc's tcache off; heap "
                  "figures include freed chunks it holds\n");
}

int main(int argc, char **argv) {
  bool json = false, tcache = false;
  uint32_t npeers = 100000, nih = 20000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = true;
    else if (!strcmp(argv[i], "--tcache"))
      tcache = true;
    else if (!strcmp(argv[i], "--peers") && i + 1 < argc)
      npeers = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--infohashes") && i + 1 < argc)
      nih = (uint32_t)strtoul(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: bench_memory [--json] [--tcache] [--peers N] "
                      "[--infohashes N]\n");
      return 2;
    }
  }
  if (nih == 0 || nih > npeers || npeers > 1000000) {
    fprintf(stderr, "bench_memory: need 0 < infohashes <= peers <= 1e6\n");
    return 2;
  }
  if (!tcache) reexec_without_tcache(argv);
  const char *tun = getenv("GLIBC_TUNABLES");
  bool tcache_on = !(tun && strstr(tun, NO_TCACHE));

  sample s0 = measure();
  mdht_callbacks cb = {.random = feed_random};
  mdht_addr bound = feed_addr(1, 1);
  mdht_id self;
  feed_random(self.b, sizeof self.b, NULL);
  /* Defaults, as `mdht run` uses them (the rate limiter too: each source
   * sends at most two datagrams). */
  if (mdht_node_new(&node, NULL, &cb, &self, &bound, now) != 0) {
    fprintf(stderr, "bench_memory: mdht_node_new failed\n");
    return 1;
  }
  sample s1 = measure();

  /* Stage 2: the routing table. */
  nfake = 2 * DEPTHS * K;
  fake_ids = malloc(nfake * sizeof *fake_ids);
  if (!fake_ids) return 1;
  for (uint32_t d = 0; d < DEPTHS; d++)
    for (uint32_t j = 0; j < 2 * K; j++)
      fake_ids[d * 2 * K + j] = feed_id_at_depth(&self, d);
  sample s1b = measure(); /* our own fake-id array is not the node's */
  for (uint32_t pass = 0; pass < 2; pass++) {
    /* Pass 0 fills the buckets in depth order (each split leaves the
     * bucket below full); pass 1 adds candidates to full buckets. */
    for (uint32_t d = 0; d < DEPTHS; d++) {
      for (uint32_t j = 0; j < K; j++) {
        uint32_t i = d * 2 * K + pass * K + j;
        mdht_addr a = feed_addr(2, i);
        query(&a, &fake_ids[i], "ping", NULL, false);
        now++;
      }
    }
  }
  mdht_stats st;
  mdht_node_stats(node, now, &st);
  uint32_t rt_entries = st.nodes_total + st.replacements;
  sample s2 = measure();

  /* Stages 3 and 4: peers. Peer p announces info-hash p % nih from IP
   * 3.x.y.z = p, port 10000 + p % 50000. */
  sample s3 = s2;
  uint32_t token_fail = 0;
  for (uint32_t p = 0; p < npeers; p++) {
    mdht_id ih = {{0}}, aid;
    uint32_t h = p % nih;
    memcpy(ih.b, "bench-infohash", 14);
    ih.b[16] = (uint8_t)(h >> 24);
    ih.b[17] = (uint8_t)(h >> 16);
    ih.b[18] = (uint8_t)(h >> 8);
    ih.b[19] = (uint8_t)h;
    feed_random(aid.b, sizeof aid.b, NULL);
    mdht_addr a = feed_addr(3, p);
    wbuf args = {.n = 0};
    PUTS(&args, "9:info_hash20:");
    put(&args, ih.b, 20);
    last_token_len = 0;
    query(&a, &aid, "get_peers", &args, true);
    if (last_token_len == 0) {
      token_fail++;
      continue;
    }
    char port[32];
    snprintf(port, sizeof port, "4:porti%ue", 10000 + p % 50000);
    wbuf ann = {.n = 0};
    put(&ann, args.p, args.n);
    put(&ann, port, strlen(port));
    PUTS(&ann, "5:token");
    put_str(&ann, last_token, last_token_len);
    query(&a, &aid, "announce_peer", &ann, true);
    if ((p & 1023) == 0) now++;
    if (p + 1 == nih) s3 = measure();
  }
  mdht_node_stats(node, now, &st);
  sample s4 = measure();
  long hwm = status_kb("VmHWM");

  double per_rt = rt_entries ? (double)(s2.heap - s1b.heap) / rt_entries : 0;
  double per_ih = nih ? (double)(s3.heap - s2.heap) / nih : 0;
  double per_peer =
      npeers > nih ? (double)(s4.heap - s3.heap) / (npeers - nih) : 0;
  double per_peer_all = (double)(s4.heap - s2.heap) / npeers;
  bool ok = st.peers == npeers && st.infohashes == nih && token_fail == 0 &&
            bad_packets == 0;

  if (json) {
    printf("{\"rss_kb\":%ld,\"hwm_kb\":%ld,\"rss_start_kb\":%ld,"
           "\"rss_empty_node_kb\":%ld,\"rss_table_kb\":%ld,"
           "\"heap_empty_node\":%zu,\"heap_table\":%zu,\"heap_all\":%zu,"
           "\"rt_nodes\":%u,\"rt_replacements\":%u,\"rt_entries\":%u,"
           "\"buckets\":%u,\"peers\":%u,\"infohashes\":%u,"
           "\"bytes_per_rt_entry\":%.1f,\"bytes_per_infohash\":%.1f,"
           "\"bytes_per_peer\":%.1f,\"bytes_per_peer_all\":%.1f,"
           "\"pings_answered\":%llu,\"tcache\":%s,\"ok\":%s}\n",
           s4.rss_kb, hwm, s0.rss_kb, s1.rss_kb, s2.rss_kb, s1.heap - s0.heap,
           s2.heap - s1b.heap, s4.heap - s0.heap, st.nodes_total,
           st.replacements, rt_entries, st.buckets, st.peers, st.infohashes,
           per_rt, per_ih, per_peer, per_peer_all,
           (unsigned long long)pings_answered, tcache_on ? "true" : "false",
           ok ? "true" : "false");
  } else {
    printf("RSS: start %ld kB, empty node %ld kB, full table %ld kB, "
           "with peers %ld kB (peak %ld kB)\n",
           s0.rss_kb, s1.rss_kb, s2.rss_kb, s4.rss_kb, hwm);
    printf("heap (glibc tcache %s): empty node %zu B, routing table %zu B, "
           "total %zu B\n",
           tcache_on ? "on" : "off", s1.heap - s0.heap, s2.heap - s1b.heap,
           s4.heap - s0.heap);
    printf("routing table: %u buckets, %u nodes + %u replacements: "
           "%.1f B per entry\n",
           st.buckets, st.nodes_total, st.replacements, per_rt);
    printf("peers: %u over %u info-hashes: %.1f B per info-hash with its "
           "first peer, %.1f B per further peer, %.1f B per peer overall\n",
           st.peers, st.infohashes, per_ih, per_peer, per_peer_all);
  }
  if (!ok)
    fprintf(stderr,
            "bench_memory: stored %u peers / %u info-hashes, expected %u / "
            "%u (%u token failures, %llu unreadable datagrams)\n",
            st.peers, st.infohashes, npeers, nih, token_fail,
            (unsigned long long)bad_packets);
  mdht_node_del(node);
  free(fake_ids);
  return ok ? 0 : 1;
}
