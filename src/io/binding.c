#include "binding.h"

#include <errno.h>
#include <string.h>

/* Batches read per readiness before timers and other sockets get a turn:
 * a flood of queries must not starve timeouts, maintenance or the other
 * nodes of the loop. */
#define RECV_ROUNDS 8

static void set_want_out(mdht_binding *b, bool want) {
  if (want == b->want_out) return;
  if (mdht_loop_modify(b->loop, b->sock.fd, EPOLLIN | (want ? EPOLLOUT : 0)) ==
      0)
    b->want_out = want;
}

/* Moves the timer only when the deadline moved: the usual case after a
 * batch is "unchanged", and then this costs one comparison. */
static void rearm(mdht_binding *b) {
  mdht_time at = mdht_node_next_deadline(b->node);
  if (at == UINT64_MAX) {
    mdht_loop_timer_stop(b->loop, &b->timer);
    return;
  }
  if (mdht_loop_timer_armed(&b->timer) && b->timer.at == at) return;
  if (mdht_loop_timer_set(b->loop, &b->timer, at) < 0)
    mdht_logforge_logf(b->log, MDHT_LOG_ERROR, "cannot set the node's timer");
}

/* Drains the node's queue into the socket's, and the socket's into the
 * kernel, until either is empty. */
static void send_queued(mdht_binding *b) {
  for (bool more = true; more;) {
    uint8_t *slot;
    size_t cap;
    while ((slot = mdht_sock_tx_slot(&b->sock, &cap)) != NULL) {
      mdht_addr to;
      int n = mdht_node_next_packet(b->node, &to, slot, cap);
      if (n <= 0) {
        if (n < 0)
          mdht_logforge_logf(b->log, MDHT_LOG_ERROR, "next_packet: %s",
                             mdht_strerror(n));
        more = false;
        break;
      }
      mdht_sock_tx_commit(&b->sock, &to, (size_t)n);
    }
    mdht_sock_flush(&b->sock);
    /* The kernel is full: what is left waits in our queue (EPOLLOUT) and
     * in the node's, which drops and counts if it overflows. */
    if (mdht_sock_tx_pending(&b->sock) > 0) break;
  }
}

void mdht_binding_flush(mdht_binding *b) {
  uint64_t errors = b->sock.stats.send_errors;
  if (!b->started) return;
  send_queued(b);
  set_want_out(b, mdht_sock_tx_pending(&b->sock) > 0);
  if (b->sock.stats.send_errors != errors)
    mdht_logforge_logf(b->log, MDHT_LOG_DEBUG, "%llu datagrams not sent: %s",
                       (unsigned long long)(b->sock.stats.send_errors - errors),
                       strerror(b->sock.last_send_error));
  rearm(b);
}

static void receive(mdht_binding *b) {
  mdht_sock_rx *rx = mdht_loop_rx(b->loop);
  if (!rx) return; /* out of memory: the kernel keeps them meanwhile */
  for (int round = 0; round < RECV_ROUNDS; round++) {
    int n = mdht_sock_recv_batch(&b->sock, rx);
    if (n < 0) {
      /* ICMP errors surface here on some kernels; they are not fatal. */
      mdht_logforge_logf(b->log, MDHT_LOG_DEBUG, "recv: %s", strerror(-n));
      break;
    }
    if (rx->n == 0) break;
    mdht_time now = mdht_loop_now();
    for (uint32_t i = 0; i < rx->n; i++)
      mdht_node_recv(b->node, &rx->from[i], rx->data[i], rx->len[i], now);
    /* Answered before the next batch is read (the shared buffers are
     * reused by it, and the node's out-queue is bounded). */
    mdht_binding_flush(b);
    if (n < MDHT_SOCK_BATCH) break;
  }
}

static void on_socket(mdht_loop *l, int fd, uint32_t events, void *user) {
  mdht_binding *b = user;
  (void)l, (void)fd;
  if (events & EPOLLOUT) mdht_binding_flush(b);
  if (events & (EPOLLIN | EPOLLERR)) receive(b);
}

static void on_timer(mdht_loop *l, mdht_loop_timer *t, void *user) {
  mdht_binding *b = user;
  mdht_time now = mdht_loop_now();
  (void)l, (void)t;
  if (mdht_node_next_deadline(b->node) <= now) mdht_node_tick(b->node, now);
  mdht_binding_flush(b);
}

static void on_prepare(mdht_loop *l, void *user) {
  (void)l;
  mdht_binding_flush(user);
}

int mdht_binding_open(mdht_binding *b, mdht_loop *loop, const mdht_addr *bind) {
  memset(b, 0, sizeof *b);
  b->loop = loop;
  mdht_loop_timer_init(&b->timer, on_timer, b);
  return mdht_sock_open(&b->sock, bind);
}

int mdht_binding_start(mdht_binding *b, mdht_node *node) {
  int rc = mdht_loop_watch(b->loop, b->sock.fd, EPOLLIN, on_socket, b);
  if (rc < 0) return rc;
  b->node = node;
  b->started = true;
  mdht_loop_prepare_add(b->loop, &b->prep, on_prepare, b);
  mdht_binding_flush(b);
  return 0;
}

void mdht_binding_close(mdht_binding *b) {
  if (!b->loop) return; /* never opened */
  if (b->started) {
    mdht_loop_prepare_del(b->loop, &b->prep);
    mdht_loop_timer_stop(b->loop, &b->timer);
    mdht_loop_unwatch(b->loop, b->sock.fd);
    b->started = false;
  }
  if (b->sock.fd >= 0 || b->sock.tx) mdht_sock_close(&b->sock);
  b->sock.fd = -1;
  b->node = NULL;
}
