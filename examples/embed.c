/*
 * embed: a DHT node inside a program's own poll() loop, using nothing but
 * include/mdht.h and libmdht. The program owns the socket, the clock and
 * the randomness; the node only computes.
 *
 *   embed [-t SECONDS] [-s STATEFILE] [BIND_IP [PORT [BOOTSTRAP_IP:PORT ...]]]
 *
 * Defaults: 127.0.0.1, port 0 (any), no bootstrap, run until Ctrl-C.
 * Bootstrap addresses are numeric (mdht_addr_parse does no DNS). With -s,
 * the node starts from STATEFILE if it holds a saved state (same id, same
 * routing table, same stored peers) and saves to it on exit.
 *
 * Built by the project, and on its own against an installed libmdht:
 *
 *   cc embed.c $(pkg-config --cflags --libs mdht)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* getrandom, clock_gettime under -std=c11 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mdht.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static mdht_time now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (mdht_time)ts.tv_sec * 1000 + (mdht_time)ts.tv_nsec / 1000000;
}

static void random_bytes(uint8_t *buf, size_t len, void *user) {
  (void)user;
  while (len > 0) {
    ssize_t n = getrandom(buf, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      perror("getrandom");
      abort();
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void print_event(const mdht_event *ev, void *user) {
  char id[41], addr[64] = "-";
  (void)user;
  if (ev->type == MDHT_EV_LOG) {
    printf("%8llu log %s\n", (unsigned long long)ev->now, ev->u.log.text);
    return;
  }
  mdht_id_format(&ev->id, id);
  if (ev->addr.family) mdht_addr_format(&ev->addr, addr, sizeof addr);
  printf("%8llu %-18s %s %s\n", (unsigned long long)ev->now,
         mdht_event_name(ev->type), id, addr);
}

static uint64_t unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The whole file, malloc'ed, or NULL (missing, unreadable: start fresh). */
static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
      fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n)) != NULL &&
      fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf) *len = (size_t)n;
  fclose(f);
  return buf;
}

/* Saves the node's state: written aside, then renamed over the old file,
 * so that a crash half-way leaves the old state whole. */
static void save_state(mdht_node *node, const char *path) {
  char tmp[4096];
  uint8_t *buf;
  size_t len;
  FILE *f;
  int rc = mdht_node_save(node, now_ms(), unix_ms(), &buf, &len);
  if (rc < 0) {
    fprintf(stderr, "embed: save: %s\n", mdht_strerror(rc));
    return;
  }
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(tmp, "wb");
  if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0 ||
      rename(tmp, path) != 0)
    perror("embed: save");
  else
    printf("state saved to %s (%zu bytes)\n", path, len);
  free(buf);
}

/* mdht_addr <-> sockaddr: the only glue an embedder has to write. */
static socklen_t to_sockaddr(const mdht_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (a->family == MDHT_AF_INET) {
    struct sockaddr_in *s = (struct sockaddr_in *)ss;
    s->sin_family = AF_INET;
    s->sin_port = htons(a->port);
    memcpy(&s->sin_addr, a->ip, 4);
    return sizeof *s;
  }
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(a->port);
  memcpy(&s->sin6_addr, a->ip, 16);
  return sizeof *s;
}

static int from_sockaddr(mdht_addr *a, const struct sockaddr_storage *ss) {
  memset(a, 0, sizeof *a);
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
    a->family = MDHT_AF_INET;
    a->port = ntohs(s->sin_port);
    memcpy(a->ip, &s->sin_addr, 4);
    return 0;
  }
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
    a->family = MDHT_AF_INET6;
    a->port = ntohs(s->sin6_port);
    memcpy(a->ip, &s->sin6_addr, 16);
    return 0;
  }
  return -1;
}

static void send_queued(mdht_node *node, int fd) {
  uint8_t out[MDHT_MAX_PACKET];
  mdht_addr to;
  int n;

  while ((n = mdht_node_next_packet(node, &to, out, sizeof out)) > 0) {
    struct sockaddr_storage ss;
    socklen_t sl = to_sockaddr(&to, &ss);
    /* UDP: a datagram the kernel will not take is lost, as on the wire. */
    sendto(fd, out, (size_t)n, 0, (struct sockaddr *)&ss, sl);
  }
}

/* Binds a UDP socket to `bound` (port 0: any) and fills in the port the
 * kernel chose. Returns the socket or -1. */
static int open_socket(mdht_addr *bound) {
  struct sockaddr_storage ss;
  socklen_t sl = to_sockaddr(bound, &ss);
  int fd =
      socket(bound->family == MDHT_AF_INET ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0) {
    perror("embed: bind");
    if (fd >= 0) close(fd);
    return -1;
  }
  sl = sizeof ss;
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  from_sockaddr(bound, &ss);
  return fd;
}

/* Creates the node: from the state in `state_path` (its id, table and
 * peers) when there is one, else fresh. */
static mdht_node *start_node(const mdht_addr *bound, const char *state_path,
                             mdht_time now) {
  mdht_config cfg;
  mdht_callbacks cb = {random_bytes, NULL};
  mdht_node *node;
  mdht_id saved_id;
  size_t len = 0;
  uint8_t *saved = state_path ? read_file(state_path, &len) : NULL;
  bool have_id = saved && mdht_node_saved_id(saved, len, &saved_id) == 0;
  int rc;

  mdht_config_default(&cfg);
  /* Loopback and LAN neighbours would be refused as martians on the
   * public DHT; here they are the whole point. */
  cfg.allow_private = true;
  /* The id is fixed when the node is created: the saved one, if any. */
  rc = mdht_node_new(&node, &cfg, &cb, have_id ? &saved_id : NULL, bound, now);
  if (rc < 0) {
    fprintf(stderr, "embed: %s\n", mdht_strerror(rc));
    free(saved);
    return NULL;
  }
  mdht_node_subscribe(node, print_event, NULL);
  if (have_id && (rc = mdht_node_load(node, saved, len, now, unix_ms())) < 0)
    fprintf(stderr, "embed: %s: %s, starting fresh\n", state_path,
            mdht_strerror(rc));
  else if (saved && !have_id)
    fprintf(stderr, "embed: %s is not a saved state, starting fresh\n",
            state_path);
  free(saved);
  return node;
}

/* The program's own loop: until a signal, or `seconds` after `start`. */
static void run(mdht_node *node, int fd, mdht_time start,
                unsigned long seconds) {
  mdht_time end = seconds ? start + seconds * 1000 : 0;
  while (!stop) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    mdht_time now = now_ms(), deadline;
    int timeout;

    send_queued(node, fd);
    deadline = mdht_node_next_deadline(node);
    if (end && deadline > end) deadline = end;
    timeout = deadline <= now          ? 0
              : deadline - now > 60000 ? 60000
                                       : (int)(deadline - now);
    if (poll(&pfd, 1, timeout) > 0) {
      uint8_t in[65536]; /* whole: the node counts oversized datagrams */
      struct sockaddr_storage ss;
      socklen_t sl = sizeof ss;
      mdht_addr from;
      ssize_t n = recvfrom(fd, in, sizeof in, MSG_DONTWAIT,
                           (struct sockaddr *)&ss, &sl);
      if (n >= 0 && from_sockaddr(&from, &ss) == 0)
        mdht_node_recv(node, &from, in, (size_t)n, now_ms());
    }
    now = now_ms();
    if (mdht_node_next_deadline(node) <= now) mdht_node_tick(node, now);
    if (end && now >= end) break;
  }
}

int main(int argc, char **argv) {
  const char *bind_ip = "127.0.0.1", *state_path = NULL;
  unsigned long port = 0, seconds = 0;
  int argi = 1, fd;
  mdht_addr bound;
  mdht_node *node;
  mdht_time start;
  char buf[64], id[41];

  for (; argi + 1 < argc && argv[argi][0] == '-'; argi += 2) {
    if (strcmp(argv[argi], "-t") == 0)
      seconds = strtoul(argv[argi + 1], NULL, 10);
    else if (strcmp(argv[argi], "-s") == 0)
      state_path = argv[argi + 1];
    else
      break;
  }
  if (argi < argc) bind_ip = argv[argi++];
  if (argi < argc) port = strtoul(argv[argi++], NULL, 10);

  memset(&bound, 0, sizeof bound);
  if (inet_pton(AF_INET, bind_ip, bound.ip) == 1)
    bound.family = MDHT_AF_INET;
  else if (inet_pton(AF_INET6, bind_ip, bound.ip) == 1)
    bound.family = MDHT_AF_INET6;
  if (!bound.family || port > 65535) {
    fprintf(stderr, "usage: embed [-t SECONDS] [-s STATEFILE] [BIND_IP [PORT "
                    "[IP:PORT...]]]\n");
    return 2;
  }
  bound.port = (uint16_t)port;
  if ((fd = open_socket(&bound)) < 0) return 2;
  start = now_ms();
  if (!(node = start_node(&bound, state_path, start))) {
    close(fd);
    return 2;
  }
  mdht_addr_format(&bound, buf, sizeof buf);
  mdht_id_format(mdht_node_id(node), id);
  printf("listening on %s id %s\n", buf, id);
  fflush(stdout);

  for (; argi < argc; argi++) {
    mdht_addr boot;
    if (mdht_addr_parse(&boot, argv[argi]) < 0 ||
        mdht_node_ping(node, &boot, now_ms()) < 0)
      fprintf(stderr, "embed: bootstrap %s skipped\n", argv[argi]);
  }

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  run(node, fd, start, seconds);
  if (state_path) save_state(node, state_path);
  mdht_node_del(node);
  close(fd);
  return 0;
}
