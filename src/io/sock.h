/*
 * The socket manager: one non-blocking UDP socket, batched receive and send
 * (recvmmsg / sendmmsg), and the conversions between mdht_addr and the
 * kernel's sockaddr.
 *
 * Sending goes through a bounded queue owned by the socket: the driver puts
 * datagrams in (mdht_sock_tx_slot + mdht_sock_tx_commit, or mdht_sock_send),
 * then mdht_sock_flush writes as many as the kernel takes. What the kernel
 * refuses with EAGAIN stays queued until the socket is writable again (the
 * driver watches EPOLLOUT while mdht_sock_tx_pending() is non-zero). The
 * queue is bounded so that a stuck socket pushes back on the node, whose own
 * queue then drops and counts (MDHT_DROP_QUEUE_FULL).
 *
 * Functions return 0 or a count on success and a negative errno value on
 * failure: this is the I/O side, where errno is the natural vocabulary.
 */
#ifndef MDHT_SOCK_H
#define MDHT_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mdht.h"

#define MDHT_SOCK_BATCH 64       /* datagrams per recvmmsg / sendmmsg */
#define MDHT_SOCK_RECV_BUF 65536 /* any UDP datagram fits whole */
#define MDHT_SOCK_SEND_MAX 1500  /* largest datagram the queue holds */
#define MDHT_SOCK_TX_QUEUE 256   /* queued datagrams before push-back */

typedef struct mdht_sock_txslot {
  mdht_addr to;
  uint16_t len;
  uint8_t buf[MDHT_SOCK_SEND_MAX];
} mdht_sock_txslot;

typedef struct mdht_sock_stats {
  uint64_t recv;        /* datagrams received */
  uint64_t sent;        /* datagrams the kernel accepted */
  uint64_t send_errors; /* datagrams dropped on a hard send error */
  uint64_t truncated;   /* datagrams the kernel cut (cannot happen with a
                           64 KiB buffer, counted to be sure) */
} mdht_sock_stats;

typedef struct mdht_sock {
  int fd;
  mdht_addr local; /* the bound address, with the real port */
  /* Ring of datagrams waiting for the kernel. */
  mdht_sock_txslot *tx;
  uint32_t tx_head, tx_len;
  mdht_sock_stats stats;
  int last_send_error; /* errno of the latest dropped datagram, or 0 */
} mdht_sock;

/* One received batch: `n` datagrams, each `data[i]` of `len[i]` bytes from
 * `from[i]`. The buffers are reused by the next mdht_sock_recv_batch. */
typedef struct mdht_sock_rx {
  uint32_t n;
  uint8_t *data[MDHT_SOCK_BATCH];
  size_t len[MDHT_SOCK_BATCH];
  mdht_addr from[MDHT_SOCK_BATCH];
  /* private */
  uint8_t *bufs_;
  struct mmsghdr msgs_[MDHT_SOCK_BATCH];
  struct iovec iov_[MDHT_SOCK_BATCH];
  struct sockaddr_storage names_[MDHT_SOCK_BATCH];
} mdht_sock_rx;

/* Opens a non-blocking UDP socket bound to `bind_addr` (port 0: the kernel
 * picks one; s->local has the result). IPv6 sockets are IPV6_V6ONLY, so an
 * IPv4 node and an IPv6 node can share a port. Returns 0 or -errno. */
int mdht_sock_open(mdht_sock *s, const mdht_addr *bind_addr);
void mdht_sock_close(mdht_sock *s);

/* Receive buffers: 64 x 64 KiB, allocated once. Returns 0 or -ENOMEM. */
int mdht_sock_rx_init(mdht_sock_rx *rx);
void mdht_sock_rx_free(mdht_sock_rx *rx);

/* Receives up to MDHT_SOCK_BATCH datagrams without blocking. Returns the
 * number received (also rx->n), 0 when none is waiting, or -errno.
 * Datagrams from an address family we cannot express are skipped. */
int mdht_sock_recv_batch(mdht_sock *s, mdht_sock_rx *rx);

/* A free queue slot to write a datagram of up to *cap bytes into, or NULL
 * when the queue is full. Nothing is queued until mdht_sock_tx_commit. */
uint8_t *mdht_sock_tx_slot(mdht_sock *s, size_t *cap);
/* Queues the datagram written into the slot returned just before. */
void mdht_sock_tx_commit(mdht_sock *s, const mdht_addr *to, size_t len);
/* Copies and queues one datagram. Returns 0, -EMSGSIZE, or -ENOBUFS when
 * the queue is full. Call mdht_sock_flush to send. */
int mdht_sock_send(mdht_sock *s, const mdht_addr *to, const uint8_t *buf,
                   size_t len);
/* Datagrams queued and not yet accepted by the kernel. */
uint32_t mdht_sock_tx_pending(const mdht_sock *s);

/* Sends queued datagrams in batches of MDHT_SOCK_BATCH until the queue is
 * empty or the kernel says EAGAIN. A datagram the kernel rejects for good
 * (EMSGSIZE, ENETUNREACH, EACCES ...) is dropped and counted, so one bad
 * destination never blocks the rest. Returns the number sent. */
int mdht_sock_flush(mdht_sock *s);

/* mdht_addr <-> sockaddr. to_sockaddr returns the length to pass to the
 * kernel, or 0 for an unknown family. from_sockaddr returns 0 or -EAFNOSUPPORT
 * (and -EINVAL when `len` is too short). */
socklen_t mdht_sock_to_sockaddr(const mdht_addr *a,
                                struct sockaddr_storage *ss);
int mdht_sock_from_sockaddr(mdht_addr *a, const struct sockaddr *sa,
                            socklen_t len);

/* Parses a numeric IPv4 or IPv6 address ("1.2.3.4", "::1", "[::1]") with
 * the given port. Returns 0 or -EINVAL. */
int mdht_sock_parse_ip(mdht_addr *a, const char *s, uint16_t port);

#endif
