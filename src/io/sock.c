#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

socklen_t mdht_sock_to_sockaddr(const mdht_addr *a,
                                struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (a->family == MDHT_AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(a->port);
    memcpy(&sin->sin_addr, a->ip, 4);
    return sizeof *sin;
  }
  if (a->family == MDHT_AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(a->port);
    memcpy(&sin6->sin6_addr, a->ip, 16);
    return sizeof *sin6;
  }
  return 0;
}

int mdht_sock_from_sockaddr(mdht_addr *a, const struct sockaddr *sa,
                            socklen_t len) {
  memset(a, 0, sizeof *a);
  if (len < (socklen_t)sizeof(sa_family_t)) return -EINVAL;
  if (sa->sa_family == AF_INET) {
    struct sockaddr_in sin;
    if (len < (socklen_t)sizeof sin) return -EINVAL;
    /* Copied out: `sa` may point into a byte buffer of any alignment. */
    memcpy(&sin, sa, sizeof sin);
    a->family = MDHT_AF_INET;
    a->port = ntohs(sin.sin_port);
    memcpy(a->ip, &sin.sin_addr, 4);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    struct sockaddr_in6 sin6;
    if (len < (socklen_t)sizeof sin6) return -EINVAL;
    memcpy(&sin6, sa, sizeof sin6);
    a->family = MDHT_AF_INET6;
    a->port = ntohs(sin6.sin6_port);
    memcpy(a->ip, &sin6.sin6_addr, 16);
    return 0;
  }
  return -EAFNOSUPPORT;
}

int mdht_sock_parse_ip(mdht_addr *a, const char *s, uint16_t port) {
  char tmp[INET6_ADDRSTRLEN + 2];
  size_t n = strlen(s);

  memset(a, 0, sizeof *a);
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    if (n - 2 >= sizeof tmp) return -EINVAL;
    memcpy(tmp, s + 1, n - 2);
    tmp[n - 2] = '\0';
    if (inet_pton(AF_INET6, tmp, a->ip) != 1) return -EINVAL;
    a->family = MDHT_AF_INET6;
  } else if (inet_pton(AF_INET, s, a->ip) == 1) {
    a->family = MDHT_AF_INET;
  } else if (inet_pton(AF_INET6, s, a->ip) == 1) {
    a->family = MDHT_AF_INET6;
  } else {
    return -EINVAL;
  }
  a->port = port;
  return 0;
}

int mdht_sock_open(mdht_sock *s, const mdht_addr *bind_addr) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd, err;

  memset(s, 0, sizeof *s);
  s->fd = -1;
  sl = mdht_sock_to_sockaddr(bind_addr, &ss);
  if (sl == 0) return -EAFNOSUPPORT;
  s->tx = calloc(MDHT_SOCK_TX_QUEUE, sizeof *s->tx);
  if (!s->tx) return -ENOMEM;

  fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) goto fail;
  if (ss.ss_family == AF_INET6) {
    /* Without it, an IPv6 socket on :: would also take the IPv4 port and
     * hand us v4-mapped addresses that the IPv4 node should see instead. */
    int one = 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
      goto fail;
  }
  /* The default buffers hold about 200 small datagrams: a burst (a busy
   * node, a load test) overflows them and the kernel drops silently. As
   * root, FORCE lifts the rmem_max cap; otherwise the kernel caps it. A
   * failure here only leaves the default. */
  int bufsz = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof bufsz) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof bufsz) < 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
  if (bind(fd, (struct sockaddr *)&ss, sl) < 0) goto fail;
  sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) goto fail;
  if (mdht_sock_from_sockaddr(&s->local, (struct sockaddr *)&ss, sl) < 0) {
    errno = EAFNOSUPPORT;
    goto fail;
  }
  s->fd = fd;
  return 0;

fail:
  err = errno;
  if (fd >= 0) close(fd);
  free(s->tx);
  s->tx = NULL;
  return -err;
}

void mdht_sock_close(mdht_sock *s) {
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  free(s->tx);
  s->tx = NULL;
  s->tx_head = s->tx_len = 0;
}

int mdht_sock_rx_init(mdht_sock_rx *rx) {
  memset(rx, 0, sizeof *rx);
  rx->bufs_ = malloc((size_t)MDHT_SOCK_BATCH * MDHT_SOCK_RECV_BUF);
  if (!rx->bufs_) return -ENOMEM;
  for (size_t i = 0; i < MDHT_SOCK_BATCH; i++) {
    rx->iov_[i].iov_base = rx->bufs_ + i * MDHT_SOCK_RECV_BUF;
    rx->iov_[i].iov_len = MDHT_SOCK_RECV_BUF;
  }
  return 0;
}

void mdht_sock_rx_free(mdht_sock_rx *rx) {
  free(rx->bufs_);
  rx->bufs_ = NULL;
}

int mdht_sock_recv_batch(mdht_sock *s, mdht_sock_rx *rx) {
  int got;

  rx->n = 0;
  /* The kernel overwrites msg_namelen and msg_flags, so each call starts
   * from a fresh header. */
  for (size_t i = 0; i < MDHT_SOCK_BATCH; i++) {
    struct msghdr *h = &rx->msgs_[i].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = &rx->names_[i];
    h->msg_namelen = sizeof rx->names_[i];
    h->msg_iov = &rx->iov_[i];
    h->msg_iovlen = 1;
    rx->msgs_[i].msg_len = 0;
  }
  do {
    got = recvmmsg(s->fd, rx->msgs_, MDHT_SOCK_BATCH, MSG_DONTWAIT, NULL);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
  for (int i = 0; i < got; i++) {
    struct msghdr *h = &rx->msgs_[i].msg_hdr;
    uint32_t n = rx->n;
    if (mdht_sock_from_sockaddr(&rx->from[n], (struct sockaddr *)h->msg_name,
                                h->msg_namelen) < 0)
      continue;
    if (h->msg_flags & MSG_TRUNC) s->stats.truncated++;
    rx->data[n] = rx->iov_[i].iov_base;
    rx->len[n] = rx->msgs_[i].msg_len;
    rx->n++;
  }
  s->stats.recv += (uint64_t)got;
  return (int)rx->n;
}

uint8_t *mdht_sock_tx_slot(mdht_sock *s, size_t *cap) {
  if (s->tx_len >= MDHT_SOCK_TX_QUEUE) return NULL;
  *cap = MDHT_SOCK_SEND_MAX;
  return s->tx[(s->tx_head + s->tx_len) % MDHT_SOCK_TX_QUEUE].buf;
}

void mdht_sock_tx_commit(mdht_sock *s, const mdht_addr *to, size_t len) {
  mdht_sock_txslot *slot;

  if (s->tx_len >= MDHT_SOCK_TX_QUEUE || len > MDHT_SOCK_SEND_MAX) return;
  slot = &s->tx[(s->tx_head + s->tx_len) % MDHT_SOCK_TX_QUEUE];
  slot->to = *to;
  slot->len = (uint16_t)len;
  s->tx_len++;
}

int mdht_sock_send(mdht_sock *s, const mdht_addr *to, const uint8_t *buf,
                   size_t len) {
  size_t cap;
  uint8_t *p;

  if (len > MDHT_SOCK_SEND_MAX) return -EMSGSIZE;
  p = mdht_sock_tx_slot(s, &cap);
  if (!p) return -ENOBUFS;
  memcpy(p, buf, len);
  mdht_sock_tx_commit(s, to, len);
  return 0;
}

uint32_t mdht_sock_tx_pending(const mdht_sock *s) {
  return s->tx_len;
}

static void tx_pop(mdht_sock *s, uint32_t n) {
  s->tx_head = (s->tx_head + n) % MDHT_SOCK_TX_QUEUE;
  s->tx_len -= n;
}

int mdht_sock_flush(mdht_sock *s) {
  struct mmsghdr msgs[MDHT_SOCK_BATCH];
  struct iovec iov[MDHT_SOCK_BATCH];
  struct sockaddr_storage names[MDHT_SOCK_BATCH];
  int total = 0;

  while (s->tx_len > 0) {
    uint32_t n = 0;
    int sent;

    while (n < MDHT_SOCK_BATCH && n < s->tx_len) {
      mdht_sock_txslot *slot = &s->tx[(s->tx_head + n) % MDHT_SOCK_TX_QUEUE];
      socklen_t sl = mdht_sock_to_sockaddr(&slot->to, &names[n]);
      if (sl == 0) {
        /* A destination we cannot express can only be a caller's bug;
         * drop it here rather than let it wedge the queue. */
        if (n == 0) {
          tx_pop(s, 1);
          s->stats.send_errors++;
          s->last_send_error = EAFNOSUPPORT;
          continue;
        }
        break;
      }
      memset(&msgs[n], 0, sizeof msgs[n]);
      iov[n].iov_base = slot->buf;
      iov[n].iov_len = slot->len;
      msgs[n].msg_hdr.msg_name = &names[n];
      msgs[n].msg_hdr.msg_namelen = sl;
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    if (n == 0) continue;

    sent = sendmmsg(s->fd, msgs, n, MSG_DONTWAIT);
    if (sent > 0) {
      tx_pop(s, (uint32_t)sent);
      s->stats.sent += (uint64_t)sent;
      total += sent;
      /* A short count means the kernel stopped at a datagram: the next
       * round retries it alone and learns why (EAGAIN, or a hard error). */
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break; /* kept for the next EPOLLOUT */
    /* Everything else, ENOBUFS included (level-triggered EPOLLOUT would
     * spin on it), means this datagram will not go: drop it, as the
     * network would. */
    s->last_send_error = sent < 0 ? errno : EIO;
    tx_pop(s, 1);
    s->stats.send_errors++;
  }
  return total;
}
