/*
 * echo: the ceiling of this machine for the benchmark. A raw UDP server
 * that answers each KRPC query with a canned reply carrying the query's
 * transaction id, doing no DHT work at all: only the system calls and
 * copies any single-threaded UDP server must do (recvmmsg, find "t",
 * build the reply, sendmmsg).
 *
 *   echo --bind 127.0.0.1 [--port 0] [--max-seconds 600]
 *
 * It prints "listening on IP:PORT" on stdout once bound, then serves until
 * SIGTERM/SIGINT or --max-seconds (so a forgotten echo never lingers).
 *
 * The canned replies have the shape and size of mdht's, so that both
 * servers put the same bytes on the wire for the same mix: ping gets
 * {ip, r: {id}}, find_node {ip, r: {id, nodes: 8 x 26 bytes}} (289 bytes
 * with a 4-byte t), get_peers the same plus an 8-byte token. The method is
 * read from "q" the same bounded way "t" is.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bcode.h"

#define BATCH 64
#define RX_BUF 2048 /* queries are ~100 bytes; longer ones are ignored */
#define TX_BUF 512

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static void die(const char *what) {
  fprintf(stderr, "echo: %s: %s\n", what, strerror(errno));
  exit(2);
}

typedef struct wbuf {
  uint8_t *p;
  size_t n;
} wbuf;

static void put(wbuf *w, const void *s, size_t n) {
  memcpy(w->p + w->n, s, n);
  w->n += n;
}
#define PUTS(w, lit) put((w), lit, sizeof lit - 1)

static uint8_t node_id[20];
static uint8_t nodes_blob[8 * 26];

enum { Q_PING, Q_FIND_NODE, Q_GET_PEERS };

/* Builds the reply to a query of kind `q` with transaction id t (at most
 * 32 bytes) for a requester at `from`. Keys in bencode order. */
static size_t build_reply(uint8_t *buf, int q, const uint8_t *t, size_t tlen,
                          const struct sockaddr_in *from) {
  wbuf w = {buf, 0};
  char hdr[8];
  PUTS(&w, "d2:ip6:");
  put(&w, &from->sin_addr, 4);
  put(&w, &from->sin_port, 2);
  PUTS(&w, "1:rd2:id20:");
  put(&w, node_id, 20);
  if (q != Q_PING) {
    PUTS(&w, "5:nodes208:");
    put(&w, nodes_blob, sizeof nodes_blob);
  }
  if (q == Q_GET_PEERS) PUTS(&w, "5:token8:tokentok");
  PUTS(&w, "e1:t");
  int hl = snprintf(hdr, sizeof hdr, "%zu:", tlen);
  put(&w, hdr, (size_t)hl);
  put(&w, t, tlen);
  PUTS(&w, "1:v4:EC001:y1:re");
  return w.n;
}

/* Finds t and the method; false for anything that is not a query. */
static bool parse_query(const uint8_t *p, size_t len, bc_span *t, int *q) {
  static const char *const keys[] = {"t", "y", "q"};
  bc_span top, k[3];
  if (bc_value(p, p + len, 0, &top) != p + len || !bc_dict(&top, keys, 3, k))
    return false;
  if (k[0].type != 's' || k[0].len == 0 || k[0].len > 32) return false;
  if (k[1].type != 's' || k[1].len != 1 || k[1].s[0] != 'q') return false;
  if (k[2].type != 's') return false;
  *t = k[0];
  if (k[2].len == 9 && !memcmp(k[2].s, "find_node", 9))
    *q = Q_FIND_NODE;
  else if (k[2].len == 9 && !memcmp(k[2].s, "get_peers", 9))
    *q = Q_GET_PEERS;
  else
    *q = Q_PING;
  return true;
}

int main(int argc, char **argv) {
  const char *bind_ip = "127.0.0.1";
  long port = 0, max_seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--bind"))
      bind_ip = argv[i + 1];
    else if (!strcmp(argv[i], "--port"))
      port = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "--max-seconds"))
      max_seconds = strtol(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "usage: echo --bind IP [--port N] [--max-seconds N]\n");
      return 2;
    }
  }
  if (argc % 2 == 0 || port < 0 || port > 65535 || max_seconds <= 0) {
    fprintf(stderr, "usage: echo --bind IP [--port N] [--max-seconds N]\n");
    return 2;
  }
  for (size_t i = 0; i < sizeof node_id; i++)
    node_id[i] = (uint8_t)(0x5a ^ i);
  for (size_t i = 0; i < sizeof nodes_blob; i++)
    nodes_blob[i] = (uint8_t)(i * 7 + 1);

  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, bind_ip, &a.sin_addr) != 1) {
    fprintf(stderr, "echo: bad --bind address\n");
    return 2;
  }
  /* The socket keeps the kernel's default buffer sizes, as mdht's does:
   * the comparison is between servers, not buffer settings. */
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  socklen_t al = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &al) < 0) die("getsockname");
  char ipbuf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a.sin_addr, ipbuf, sizeof ipbuf);
  printf("listening on %s:%u\n", ipbuf, ntohs(a.sin_port));
  fflush(stdout);

  static uint8_t rx[BATCH][RX_BUF], tx[BATCH][TX_BUF];
  struct mmsghdr rmsg[BATCH], smsg[BATCH];
  struct iovec riov[BATCH], siov[BATCH];
  struct sockaddr_in names[BATCH];
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned long long served = 0;

  while (!stop) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (t1.tv_sec - t0.tv_sec >= max_seconds) break;
    /* Same structure as mdht's driver: wait for readiness, then drain in
     * batches, answering each batch before reading the next. */
    int pr = poll(&pfd, 1, 200);
    if (pr < 0 && errno != EINTR) die("poll");
    if (pr <= 0) continue;
    for (int round = 0; round < 8; round++) {
      for (int i = 0; i < BATCH; i++) {
        riov[i].iov_base = rx[i];
        riov[i].iov_len = RX_BUF;
        memset(&rmsg[i], 0, sizeof rmsg[i]);
        rmsg[i].msg_hdr.msg_name = &names[i];
        rmsg[i].msg_hdr.msg_namelen = sizeof names[i];
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
      }
      int n = recvmmsg(fd, rmsg, BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0) break;
      int m = 0;
      for (int i = 0; i < n; i++) {
        bc_span t;
        int q;
        if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) continue;
        if (!parse_query(rx[i], rmsg[i].msg_len, &t, &q)) continue;
        siov[m].iov_base = tx[m];
        siov[m].iov_len = build_reply(tx[m], q, t.s, t.len, &names[i]);
        memset(&smsg[m], 0, sizeof smsg[m]);
        smsg[m].msg_hdr.msg_name = &names[i];
        smsg[m].msg_hdr.msg_namelen = sizeof names[i];
        smsg[m].msg_hdr.msg_iov = &siov[m];
        smsg[m].msg_hdr.msg_iovlen = 1;
        m++;
      }
      /* Whatever the kernel refuses is lost, as it would be for mdht. */
      for (int off = 0; off < m;) {
        int s = sendmmsg(fd, smsg + off, (unsigned)(m - off), MSG_DONTWAIT);
        if (s <= 0) break;
        off += s;
      }
      served += (unsigned long long)m;
      if (n < BATCH) break;
    }
  }
  fprintf(stderr, "echo: served %llu queries\n", served);
  close(fd);
  return 0;
}
