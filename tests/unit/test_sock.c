/* The socket manager over real loopback sockets: batched send and receive,
 * the bounded send queue, and mdht_addr <-> sockaddr. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include "sock.h"

static mdht_addr loopback4(uint16_t port) {
  mdht_addr a;
  assert_int_equal(mdht_sock_parse_ip(&a, "127.0.0.1", port), 0);
  return a;
}

/* Receives until `want` datagrams have arrived or 5 s pass, calling `check`
 * on each. Returns the number received. */
static int recv_all(mdht_sock *s, mdht_sock_rx *rx, int want,
                    void (*check)(int i, const uint8_t *p, size_t len,
                                  const mdht_addr *from, void *user),
                    void *user) {
  int got = 0;
  while (got < want) {
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    int n;
    if (poll(&pfd, 1, 5000) <= 0) break;
    n = mdht_sock_recv_batch(s, rx);
    assert_true(n >= 0);
    assert_true(n <= MDHT_SOCK_BATCH);
    for (int i = 0; i < n; i++) {
      if (check) check(got, rx->data[i], rx->len[i], &rx->from[i], user);
      got++;
    }
  }
  return got;
}

static void fill(uint8_t *p, size_t len, int i) {
  for (size_t j = 0; j < len; j++)
    p[j] = (uint8_t)(i * 31 + (int)j);
}

static size_t len_of(int i) {
  return 1 + (size_t)(i * 13) % 1400;
}

static void check_batch(int i, const uint8_t *p, size_t len,
                        const mdht_addr *from, void *user) {
  const mdht_addr *sender = user;
  uint8_t want[MDHT_SOCK_SEND_MAX];
  assert_true(mdht_addr_eq(from, sender));
  /* Loopback keeps order, so datagram i is the i-th sent. */
  assert_int_equal(len, len_of(i));
  fill(want, len, i);
  assert_memory_equal(p, want, len);
}

static void test_batch_100(void **state) {
  mdht_sock a, b;
  mdht_sock_rx rx;
  mdht_addr any = loopback4(0);
  int sent = 0;
  (void)state;

  assert_int_equal(mdht_sock_open(&a, &any), 0);
  assert_int_equal(mdht_sock_open(&b, &any), 0);
  assert_int_equal(mdht_sock_rx_init(&rx), 0);
  assert_int_equal(a.local.family, MDHT_AF_INET);
  assert_int_not_equal(a.local.port, 0);
  assert_int_not_equal(a.local.port, b.local.port);

  for (int i = 0; i < 100; i++) {
    uint8_t buf[MDHT_SOCK_SEND_MAX];
    fill(buf, len_of(i), i);
    assert_int_equal(mdht_sock_send(&a, &b.local, buf, len_of(i)), 0);
  }
  assert_int_equal(mdht_sock_tx_pending(&a), 100);
  /* 100 on an idle loopback socket: all accepted, in two sendmmsg. */
  while (mdht_sock_tx_pending(&a) > 0) {
    int n = mdht_sock_flush(&a);
    assert_true(n >= 0);
    sent += n;
    if (n == 0) {
      struct pollfd pfd = {.fd = a.fd, .events = POLLOUT};
      poll(&pfd, 1, 1000);
    }
  }
  assert_int_equal(sent, 100);
  assert_int_equal(a.stats.sent, 100);
  assert_int_equal(a.stats.send_errors, 0);

  assert_int_equal(recv_all(&b, &rx, 100, check_batch, &a.local), 100);
  assert_int_equal(b.stats.recv, 100);
  /* Nothing more: a non-blocking empty read is 0, not an error. */
  assert_int_equal(mdht_sock_recv_batch(&b, &rx), 0);

  mdht_sock_rx_free(&rx);
  mdht_sock_close(&a);
  mdht_sock_close(&b);
}

static void test_queue_bounded(void **state) {
  mdht_sock a;
  mdht_addr any = loopback4(0);
  uint8_t big[MDHT_SOCK_SEND_MAX + 1] = {0};
  size_t cap;
  (void)state;

  assert_int_equal(mdht_sock_open(&a, &any), 0);
  for (int i = 0; i < MDHT_SOCK_TX_QUEUE; i++)
    assert_int_equal(mdht_sock_send(&a, &a.local, (const uint8_t *)"x", 1), 0);
  assert_int_equal(mdht_sock_send(&a, &a.local, (const uint8_t *)"x", 1),
                   -ENOBUFS);
  assert_null(mdht_sock_tx_slot(&a, &cap));
  assert_int_equal(mdht_sock_tx_pending(&a), MDHT_SOCK_TX_QUEUE);
  mdht_sock_close(&a);

  assert_int_equal(mdht_sock_open(&a, &any), 0);
  assert_int_equal(mdht_sock_send(&a, &a.local, big, sizeof big), -EMSGSIZE);
  assert_non_null(mdht_sock_tx_slot(&a, &cap));
  assert_int_equal(cap, MDHT_SOCK_SEND_MAX);
  mdht_sock_close(&a);
}

/* A destination the kernel refuses for good is dropped and counted; the
 * datagrams behind it in the same batch still go. */
static void test_hard_error_does_not_block(void **state) {
  mdht_sock a, b;
  mdht_sock_rx rx;
  mdht_addr any = loopback4(0), bad;
  (void)state;

  assert_int_equal(mdht_sock_open(&a, &any), 0);
  assert_int_equal(mdht_sock_open(&b, &any), 0);
  assert_int_equal(mdht_sock_rx_init(&rx), 0);
  /* An IPv6 destination on an IPv4 socket. */
  assert_int_equal(mdht_sock_parse_ip(&bad, "::1", 9), 0);
  assert_int_equal(mdht_sock_send(&a, &b.local, (const uint8_t *)"one", 3), 0);
  assert_int_equal(mdht_sock_send(&a, &bad, (const uint8_t *)"bad", 3), 0);
  assert_int_equal(mdht_sock_send(&a, &b.local, (const uint8_t *)"two", 3), 0);
  assert_int_equal(mdht_sock_flush(&a), 2);
  assert_int_equal(mdht_sock_tx_pending(&a), 0);
  assert_int_equal(a.stats.send_errors, 1);
  assert_int_not_equal(a.last_send_error, 0);
  assert_int_equal(recv_all(&b, &rx, 2, NULL, NULL), 2);
  mdht_sock_rx_free(&rx);
  mdht_sock_close(&a);
  mdht_sock_close(&b);
}

/* The core counts oversized datagrams, so the driver must see them whole. */
static void test_large_datagram_whole(void **state) {
  mdht_sock a, b;
  mdht_sock_rx rx;
  mdht_addr any = loopback4(0);
  struct sockaddr_storage ss;
  socklen_t sl;
  size_t len = 65000;
  uint8_t *big = malloc(len);
  int sndbuf = 1 << 20;
  (void)state;

  assert_non_null(big);
  fill(big, len, 3);
  assert_int_equal(mdht_sock_open(&a, &any), 0);
  assert_int_equal(mdht_sock_open(&b, &any), 0);
  assert_int_equal(mdht_sock_rx_init(&rx), 0);
  setsockopt(a.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  sl = mdht_sock_to_sockaddr(&b.local, &ss);
  assert_int_equal(sendto(a.fd, big, len, 0, (struct sockaddr *)&ss, sl),
                   (ssize_t)len);
  assert_int_equal(recv_all(&b, &rx, 1, NULL, NULL), 1);
  assert_int_equal(rx.len[0], len);
  assert_memory_equal(rx.data[0], big, len);
  assert_int_equal(b.stats.truncated, 0);
  free(big);
  mdht_sock_rx_free(&rx);
  mdht_sock_close(&a);
  mdht_sock_close(&b);
}

static void test_ipv6_loopback(void **state) {
  mdht_sock a, b;
  mdht_sock_rx rx;
  mdht_addr any;
  int rc;
  (void)state;

  assert_int_equal(mdht_sock_parse_ip(&any, "::1", 0), 0);
  rc = mdht_sock_open(&a, &any);
  if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
    skip(); /* a container without IPv6 */
    return;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(mdht_sock_open(&b, &any), 0);
  assert_int_equal(mdht_sock_rx_init(&rx), 0);
  assert_int_equal(a.local.family, MDHT_AF_INET6);
  assert_int_equal(mdht_sock_send(&a, &b.local, (const uint8_t *)"six", 3), 0);
  assert_int_equal(mdht_sock_flush(&a), 1);
  assert_int_equal(recv_all(&b, &rx, 1, NULL, NULL), 1);
  assert_true(mdht_addr_eq(&rx.from[0], &a.local));
  assert_int_equal(rx.len[0], 3);
  assert_memory_equal(rx.data[0], "six", 3);
  mdht_sock_rx_free(&rx);
  mdht_sock_close(&a);
  mdht_sock_close(&b);
}

static void test_bind_in_use(void **state) {
  mdht_sock a, b;
  mdht_addr any = loopback4(0);
  (void)state;
  assert_int_equal(mdht_sock_open(&a, &any), 0);
  assert_int_equal(mdht_sock_open(&b, &a.local), -EADDRINUSE);
  assert_int_equal(b.fd, -1);
  mdht_sock_close(&b); /* harmless after a failed open */
  mdht_sock_close(&a);
}

/* ------------------------------------------------ addresses, no sockets */

static void test_roundtrip_v4(void **state) {
  mdht_addr a, back;
  struct sockaddr_storage ss;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  socklen_t sl;
  (void)state;

  assert_int_equal(mdht_sock_parse_ip(&a, "192.0.2.17", 6881), 0);
  sl = mdht_sock_to_sockaddr(&a, &ss);
  assert_int_equal(sl, sizeof(struct sockaddr_in));
  assert_int_equal(sin->sin_family, AF_INET);
  assert_int_equal(sin->sin_port, htons(6881));
  assert_int_equal(sin->sin_addr.s_addr, inet_addr("192.0.2.17"));
  assert_int_equal(mdht_sock_from_sockaddr(&back, (struct sockaddr *)&ss, sl),
                   0);
  assert_true(mdht_addr_eq(&a, &back));
  assert_memory_equal(&a, &back, sizeof a);
}

static void test_roundtrip_v6(void **state) {
  mdht_addr a, back;
  struct sockaddr_in6 sin6;
  struct sockaddr_storage ss;
  socklen_t sl;
  (void)state;

  memset(&sin6, 0, sizeof sin6);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(51413);
  assert_int_equal(inet_pton(AF_INET6, "2001:db8::a:b", &sin6.sin6_addr), 1);
  assert_int_equal(
      mdht_sock_from_sockaddr(&a, (struct sockaddr *)&sin6, sizeof sin6), 0);
  assert_int_equal(a.family, MDHT_AF_INET6);
  assert_int_equal(a.port, 51413);
  assert_memory_equal(a.ip, &sin6.sin6_addr, 16);

  sl = mdht_sock_to_sockaddr(&a, &ss);
  assert_int_equal(sl, sizeof sin6);
  assert_memory_equal(&ss, &sin6, sizeof sin6);
  assert_int_equal(mdht_sock_from_sockaddr(&back, (struct sockaddr *)&ss, sl),
                   0);
  assert_memory_equal(&a, &back, sizeof a);

  assert_int_equal(mdht_sock_parse_ip(&back, "[2001:db8::a:b]", 51413), 0);
  assert_memory_equal(&a, &back, sizeof a);
}

static void test_bad_sockaddrs(void **state) {
  struct sockaddr_un sun;
  struct sockaddr_in sin;
  struct sockaddr_storage ss;
  mdht_addr a;
  (void)state;

  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  assert_int_equal(
      mdht_sock_from_sockaddr(&a, (struct sockaddr *)&sun, sizeof sun),
      -EAFNOSUPPORT);
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  assert_int_equal(mdht_sock_from_sockaddr(&a, (struct sockaddr *)&sin, 4),
                   -EINVAL);
  memset(&a, 0, sizeof a);
  a.family = 5;
  assert_int_equal(mdht_sock_to_sockaddr(&a, &ss), 0);
}

static void test_parse_ip(void **state) {
  static const struct {
    const char *in;
    int rc;
    uint8_t family;
  } cases[] = {
      {"0.0.0.0", 0, MDHT_AF_INET},  {"127.0.0.1", 0, MDHT_AF_INET},
      {"::", 0, MDHT_AF_INET6},      {"[::1]", 0, MDHT_AF_INET6},
      {"fe80::1", 0, MDHT_AF_INET6}, {"", -EINVAL, 0},
      {"localhost", -EINVAL, 0},     {"1.2.3", -EINVAL, 0},
      {"256.1.1.1", -EINVAL, 0},     {"1.2.3.4:5", -EINVAL, 0},
      {"[1.2.3.4]", -EINVAL, 0},     {"[::1", -EINVAL, 0},
      {"::1]", -EINVAL, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    mdht_addr a;
    int rc = mdht_sock_parse_ip(&a, cases[i].in, 7);
    if (rc != cases[i].rc)
      fail_msg("parse_ip(\"%s\") = %d, want %d", cases[i].in, rc, cases[i].rc);
    if (rc == 0) {
      assert_int_equal(a.family, cases[i].family);
      assert_int_equal(a.port, 7);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_100),
      cmocka_unit_test(test_queue_bounded),
      cmocka_unit_test(test_hard_error_does_not_block),
      cmocka_unit_test(test_large_datagram_whole),
      cmocka_unit_test(test_ipv6_loopback),
      cmocka_unit_test(test_bind_in_use),
      cmocka_unit_test(test_roundtrip_v4),
      cmocka_unit_test(test_roundtrip_v6),
      cmocka_unit_test(test_bad_sockaddrs),
      cmocka_unit_test(test_parse_ip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
