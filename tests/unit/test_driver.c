/* driver.c: a node hosted on a loop with its UDP binding. On loopback,
 * with no bootstrap: it answers a ping sent by a plain UDP socket, a
 * bootstrap name that does not resolve is kept for later (a warning, not
 * an error), a second address of the same family is refused with a
 * message, and everything is released (the ASan build checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "driver.h"
#include "krpc.h"

/* A started driver on 127.0.97.x with the kernel's choice of port. */
static int start(mdht_driver *d, mdht_loop *loop, uint8_t last,
                 const char *const *boot, size_t nboot) {
  mdht_driver_opts o;
  mdht_driver_opts_default(&o);
  assert_int_equal(mdht_sock_parse_ip(&o.bind, "127.0.97.1", 0), 0);
  o.bind.ip[3] = last;
  o.bootstrap = boot;
  o.nbootstrap = nboot;
  assert_int_equal(mdht_loop_init(loop), 0);
  return mdht_driver_init(d, loop, &o);
}

static void test_answers_a_ping(void **state) {
  (void)state;
  mdht_loop loop;
  mdht_driver d;
  assert_int_equal(start(&d, &loop, 91, NULL, 0), 0);
  mdht_addr local = d.bind.sock.local;
  assert_int_not_equal(local.port, 0);
  assert_ptr_equal(mdht_driver_node_of(&d, MDHT_AF_INET), d.node);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = htons(local.port)};
  memcpy(&to.sin_addr, local.ip, 4);
  static const char ping[] =
      "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
  assert_int_equal(
      sendto(fd, ping, sizeof ping - 1, 0, (struct sockaddr *)&to, sizeof to),
      (ssize_t)(sizeof ping - 1));
  /* The loop serves the datagram; bounded in time. */
  mdht_loop_run(&loop, mdht_loop_now() + 300);
  /* Our answer, maybe beside the node's confirmation ping to us (a new
   * node that queried it): read at most a few datagrams. */
  mdht_be_tok toks[MDHT_KRPC_TOKENS];
  mdht_krpc_msg m;
  uint8_t buf[1500];
  for (int i = 0; i < 4; i++) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 1000), 1);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    assert_true(n > 0);
    assert_int_equal(
        mdht_krpc_decode(&m, buf, (size_t)n, toks, MDHT_KRPC_TOKENS), 0);
    if (m.y != 'q') break;
  }
  assert_int_equal(m.y, 'r');
  assert_memory_equal(m.t.p, "aa", 2);
  assert_memory_equal(m.id.b, mdht_node_id(d.node)->b, MDHT_ID_LEN);
  close(fd);
  mdht_driver_free(&d);
  mdht_loop_free(&loop);
}

/* Offline: a router name that does not resolve is kept to be tried again
 * later, and the node starts all the same. */
static void test_unresolved_router_kept(void **state) {
  (void)state;
  mdht_loop loop;
  mdht_driver d;
  static const char *const boot[] = {"no-such-host.invalid:6881"};
  assert_int_equal(start(&d, &loop, 92, boot, 1), 0);
  assert_int_equal(d.nunresolved, 1);
  assert_string_equal(d.unresolved[0], "no-such-host.invalid:6881");
  mdht_driver_free(&d);
  mdht_loop_free(&loop);
}

/* BEP 32: the second address must be of the other family; the failure
 * says why in d.error and leaves nothing behind. */
static void test_second_bind_same_family(void **state) {
  (void)state;
  mdht_loop loop;
  mdht_driver d;
  mdht_driver_opts o;
  mdht_driver_opts_default(&o);
  assert_int_equal(mdht_sock_parse_ip(&o.bind, "127.0.97.93", 0), 0);
  assert_int_equal(mdht_sock_parse_ip(&o.bind2, "127.0.97.94", 0), 0);
  o.has_bind2 = true;
  assert_int_equal(mdht_loop_init(&loop), 0);
  assert_true(mdht_driver_init(&d, &loop, &o) < 0);
  assert_true(d.error[0] != '\0');
  mdht_driver_free(&d);
  mdht_loop_free(&loop);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_answers_a_ping),
      cmocka_unit_test(test_unresolved_router_kept),
      cmocka_unit_test(test_second_bind_same_family),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
