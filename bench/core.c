/*
 * bench_core: the cost of mdht's query path alone, without the kernel.
 * One node, created through the public API with a full routing table (8
 * fake nodes at each depth 0..18 below its id, all confirmed), is fed the
 * load generator's kind of traffic straight into mdht_node_recv: a mix of
 * ping / find_node / get_peers with random targets and 4-byte transaction
 * ids from 8 sources, each reply taken with mdht_node_next_packet as the
 * driver takes it. What remains is exactly the per-query work of the core
 * (decode, handler, routing table, token, encode, event bus, queues).
 *
 *   bench_core [--queries N] [--mix P:F:G] [--json]
 *
 * It is deterministic (seeded generator, virtual clock), so that under
 *   valgrind --tool=callgrind bench_core --queries 200000
 * the instruction counts per query are repeatable to the last digit
 * between runs, and a proposed change can be judged by them.
 *
 * Exit status: 0, or 1 if any query went unanswered or a find_node or
 * get_peers reply carried fewer than 8 nodes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mdht.h"

#include "bcode.h"
#include "feed.h"

#define DEPTHS 19 /* full buckets, as run.py gives the real servers */
#define K 8
#define SOURCES 8
#define PREBUILT 4096 /* distinct datagrams, fed round-robin */

static mdht_node *node;
static mdht_time now = 1000;
static mdht_id fake_ids[DEPTHS * K], src_ids[SOURCES];

static uint64_t out_bytes, fn_short;

/* Takes everything the node queued; answers its pings to our fake nodes
 * and sources. With `check`, every reply is parsed and find_node /
 * get_peers replies must carry 8 nodes; without, replies are recognised
 * by their last key (y is last in bencode order: "1:y1:re"), so that the
 * timed loop measures the node and not this program's parser. Returns the
 * number of replies (y=r). */
static uint32_t drain(bool check) {
  static const char *const keys[] = {"t", "y", "r"};
  static const char *const rkeys[] = {"nodes"};
  uint8_t pkt[MDHT_MAX_PACKET];
  mdht_addr to;
  uint32_t replies = 0;
  int n;
  while ((n = mdht_node_next_packet(node, &to, pkt, sizeof pkt)) > 0) {
    bc_span top, k[3], r[1];
    if (!check && n > 2 && pkt[n - 2] == 'r' && pkt[n - 1] == 'e') {
      replies++;
      out_bytes += (uint64_t)n;
      continue;
    }
    if (bc_value(pkt, pkt + n, 0, &top) != pkt + n ||
        !bc_dict(&top, keys, 3, k) || k[1].type != 's' || k[1].len != 1)
      continue;
    if (k[1].s[0] == 'r') {
      replies++;
      out_bytes += (uint64_t)n;
      /* Replies to find_node and get_peers carry the 8 closest nodes. */
      if (bc_dict(&k[2], rkeys, 1, r) && r[0].type == 's' && r[0].len < 8 * 26)
        fn_short++;
      continue;
    }
    if (k[1].s[0] != 'q' || k[0].type != 's') continue;
    uint32_t i = feed_index(&to);
    const mdht_id *id = NULL;
    if (to.ip[0] == 2 && i < DEPTHS * K) id = &fake_ids[i];
    if (to.ip[0] == 3 && i < SOURCES) id = &src_ids[i];
    if (!id) continue;
    wbuf w;
    feed_pong(&w, id, k[0].s, k[0].len);
    mdht_node_recv(node, &to, w.p, w.n, now);
  }
  return replies;
}

typedef struct prebuilt {
  wbuf w;
  uint8_t src;
} prebuilt;

int main(int argc, char **argv) {
  uint64_t nq = 2000000;
  unsigned mix[3] = {1, 4, 4};
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json"))
      json = true;
    else if (!strcmp(argv[i], "--queries") && i + 1 < argc)
      nq = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--mix") && i + 1 < argc &&
             sscanf(argv[i + 1], "%u:%u:%u", &mix[0], &mix[1], &mix[2]) == 3)
      i++;
    else {
      fprintf(stderr,
              "usage: bench_core [--queries N] [--mix P:F:G] [--json]\n");
      return 2;
    }
  }
  if (nq == 0 || nq > 1000000000ULL || mix[0] + mix[1] + mix[2] == 0) {
    fprintf(stderr, "bench_core: bad --queries or --mix\n");
    return 2;
  }

  mdht_config cfg;
  mdht_config_default(&cfg);
  cfg.rate_limit_per_sec = 0; /* as the benchmark runs `mdht run` */
  cfg.reply_bytes_per_sec = 0;
  mdht_callbacks cb = {.random = feed_random};
  mdht_addr bound = feed_addr(1, 1);
  mdht_id self;
  feed_random(self.b, sizeof self.b, NULL);
  if (mdht_node_new(&node, &cfg, &cb, &self, &bound, now) != 0) return 1;

  /* The routing table: each fake node pings, we answer the node's
   * confirmation ping in drain(). */
  for (uint32_t i = 0; i < DEPTHS * K; i++) {
    fake_ids[i] = feed_id_at_depth(&self, i / K);
    mdht_addr a = feed_addr(2, i);
    wbuf w;
    feed_query(&w, &fake_ids[i], "ping", NULL, false);
    mdht_node_recv(node, &a, w.p, w.n, now);
    drain(true);
  }
  for (uint32_t s = 0; s < SOURCES; s++)
    feed_random(src_ids[s].b, sizeof src_ids[s].b, NULL);

  static prebuilt pre[PREBUILT];
  unsigned total = mix[0] + mix[1] + mix[2];
  for (uint32_t i = 0; i < PREBUILT; i++) {
    unsigned r = (unsigned)(feed_rnd64() >> 32) % total;
    wbuf args = {.n = 0};
    uint8_t target[20];
    feed_random(target, sizeof target, NULL);
    const char *q = "ping";
    if (r >= mix[0] && r < mix[0] + mix[1]) {
      q = "find_node";
      PUTS(&args, "6:target20:");
      put(&args, target, 20);
    } else if (r >= mix[0] + mix[1]) {
      q = "get_peers";
      PUTS(&args, "9:info_hash20:");
      put(&args, target, 20);
    }
    pre[i].src = (uint8_t)(i % SOURCES);
    wbuf *w = &pre[i].w;
    w->n = 0;
    PUTS(w, "d1:ad2:id20:");
    put(w, src_ids[pre[i].src].b, 20);
    put(w, args.p, args.n);
    PUTS(w, "e1:q");
    put_str(w, (const uint8_t *)q, strlen(q));
    uint8_t t[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8),
                    (uint8_t)i};
    PUTS(w, "1:t");
    put_str(w, t, 4);
    PUTS(w, "1:y1:qe");
  }
  mdht_addr srcs[SOURCES];
  for (uint32_t s = 0; s < SOURCES; s++)
    srcs[s] = feed_addr(3, s);

  /* Warm-up: the sources enter the table (or its replacement lists) and
   * are confirmed, as they would be in the first moments of a real run. */
  for (uint32_t i = 0; i < PREBUILT; i++) {
    mdht_node_recv(node, &srcs[pre[i].src], pre[i].w.p, pre[i].w.n, now);
    drain(true);
  }
  /* Checked pass: every prebuilt query once, every reply parsed. */
  fn_short = 0;
  uint64_t checked = 0;
  for (uint32_t i = 0; i < PREBUILT; i++) {
    mdht_node_recv(node, &srcs[pre[i].src], pre[i].w.p, pre[i].w.n, now);
    checked += drain(true);
  }
  out_bytes = 0;

  struct timespec t0, t1;
  uint64_t replies = 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (uint64_t i = 0; i < nq; i++) {
    const prebuilt *p = &pre[i % PREBUILT];
    /* A millisecond of virtual time per 64 queries: the driver reads the
     * clock once per recvmmsg batch of up to 64. */
    if ((i & 63) == 0) now++;
    mdht_node_recv(node, &srcs[p->src], p->w.p, p->w.n, now);
    replies += drain(false);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  double ns = secs * 1e9 / (double)nq;
  mdht_stats st;
  mdht_node_stats(node, now, &st);
  if (json)
    printf("{\"queries\":%llu,\"replies\":%llu,\"seconds\":%.3f,"
           "\"ns_per_query\":%.1f,\"queries_per_sec\":%.0f,"
           "\"avg_reply_bytes\":%.1f,\"rt_nodes\":%u}\n",
           (unsigned long long)nq, (unsigned long long)replies, secs, ns,
           (double)nq / secs, replies ? (double)out_bytes / replies : 0,
           st.nodes_total);
  else
    printf("%llu queries, %llu replies in %.3f s: %.0f ns per query, "
           "%.0f queries/s in-process; replies average %.1f bytes; table "
           "%u nodes\n",
           (unsigned long long)nq, (unsigned long long)replies, secs, ns,
           (double)nq / secs, replies ? (double)out_bytes / replies : 0,
           st.nodes_total);
  mdht_node_del(node);
  if (fn_short)
    fprintf(stderr, "bench_core: %llu replies with fewer than 8 nodes\n",
            (unsigned long long)fn_short);
  return replies == nq && checked == PREBUILT && fn_short == 0 ? 0 : 1;
}
