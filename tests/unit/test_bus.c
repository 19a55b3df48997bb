#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bus.h"

/* Each subscriber appends its tag to a shared log, so a test can assert
 * who was called and in which order. */
typedef struct log_ {
  char tags[64];
  int n;
  mdht_event_type last_type;
  mdht_time last_now;
} log_;

typedef struct sub {
  log_ *log;
  char tag;
  mdht_bus *bus;   /* for subscribers that modify the bus */
  int victim;      /* handle to unsubscribe, -1 none */
  int self;        /* own handle */
  int added;       /* handle subscribed from inside the callback */
  struct sub *add; /* subscriber to add from inside the callback */
} sub;

static void record(const mdht_event *ev, void *user) {
  sub *s = user;
  s->log->tags[s->log->n++] = s->tag;
  s->log->tags[s->log->n] = '\0';
  s->log->last_type = ev->type;
  s->log->last_now = ev->now;
}

static void unsub_victim(const mdht_event *ev, void *user) {
  sub *s = user;
  record(ev, user);
  mdht_bus_unsubscribe(s->bus, s->victim);
}

static void unsub_self(const mdht_event *ev, void *user) {
  sub *s = user;
  record(ev, user);
  mdht_bus_unsubscribe(s->bus, s->self);
}

static void add_other(const mdht_event *ev, void *user) {
  sub *s = user;
  record(ev, user);
  if (s->added < 0) s->added = mdht_bus_subscribe(s->bus, record, s->add);
}

/* Frees the victim's slot and immediately refills it with `add`. */
static void swap_other(const mdht_event *ev, void *user) {
  sub *s = user;
  record(ev, user);
  if (s->added < 0) {
    mdht_bus_unsubscribe(s->bus, s->victim);
    s->added = mdht_bus_subscribe(s->bus, record, s->add);
  }
}

static void publish(mdht_bus *bus, mdht_event_type t, mdht_time now) {
  mdht_event ev;
  mdht_bus_event_init(&ev, t, now);
  mdht_bus_publish(bus, &ev);
}

static void test_no_subscribers(void **state) {
  (void)state;
  mdht_bus bus;
  mdht_bus_init(&bus);
  publish(&bus, MDHT_EV_LOG, 1);
  assert_int_equal(bus.nsubs, 0);
  /* No subscriber, no slots: a simulated node pays nothing for the bus. */
  assert_null(bus.subs);
  mdht_bus_unsubscribe(&bus, 0);
  mdht_bus_free(&bus);
}

/* The slots grow with the subscribers (1, 2, 4, ...), handles stay
 * valid across the growth, and a freed slot is reused before growing. */
static void test_slots_grow_with_subscribers(void **state) {
  (void)state;
  mdht_bus bus;
  mdht_bus_init(&bus);
  log_ lg = {0};
  sub a = {.log = &lg, .tag = 'a'}, b = {.log = &lg, .tag = 'b'},
      c = {.log = &lg, .tag = 'c'};
  assert_int_equal(mdht_bus_subscribe(&bus, record, &a), 0);
  assert_int_equal(bus.cap, 1);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &b), 1);
  assert_int_equal(bus.cap, 2);
  mdht_bus_unsubscribe(&bus, 0);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &c), 0); /* reused */
  assert_int_equal(bus.cap, 2);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &a), 2);
  assert_int_equal(bus.cap, 4);
  mdht_bus_unsubscribe(&bus, 3); /* a slot grown but never used */
  assert_int_equal(bus.nsubs, 3);
  publish(&bus, MDHT_EV_LOG, 1);
  assert_string_equal(lg.tags, "bca");
  mdht_bus_free(&bus);
  assert_null(bus.subs);
  assert_int_equal(bus.cap, 0);
}

static void test_event_init_zeroes(void **state) {
  (void)state;
  mdht_event ev;
  memset(&ev, 0xAB, sizeof ev);
  mdht_bus_event_init(&ev, MDHT_EV_PEER_STORED, 77);
  assert_int_equal(ev.type, MDHT_EV_PEER_STORED);
  assert_int_equal(ev.now, 77);
  assert_int_equal(ev.addr.port, 0);
  assert_int_equal(ev.id.b[0], 0);
  assert_int_equal(ev.u.peer.count, 0);
}

static void test_order_and_payload(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub a = {.log = &lg, .tag = 'a'}, b = {.log = &lg, .tag = 'b'},
      c = {.log = &lg, .tag = 'c'};
  mdht_bus_init(&bus);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &a), 0);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &b), 1);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &c), 2);
  publish(&bus, MDHT_EV_QUERY_TIMEOUT, 1234);
  assert_string_equal(lg.tags, "abc");
  assert_int_equal(lg.last_type, MDHT_EV_QUERY_TIMEOUT);
  assert_int_equal(lg.last_now, 1234);
  publish(&bus, MDHT_EV_LOG, 5);
  assert_string_equal(lg.tags, "abcabc");
  mdht_bus_free(&bus);
}

static void test_unsubscribe_and_reuse(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub a = {.log = &lg, .tag = 'a'}, b = {.log = &lg, .tag = 'b'},
      c = {.log = &lg, .tag = 'c'}, d = {.log = &lg, .tag = 'd'};
  mdht_bus_init(&bus);
  int ha = mdht_bus_subscribe(&bus, record, &a);
  int hb = mdht_bus_subscribe(&bus, record, &b);
  int hc = mdht_bus_subscribe(&bus, record, &c);
  mdht_bus_unsubscribe(&bus, hb);
  assert_int_equal(bus.nsubs, 2);
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "ac");

  /* The freed slot is reused, but the newcomer still comes last. */
  int hd = mdht_bus_subscribe(&bus, record, &d);
  assert_int_equal(hd, hb);
  lg.n = 0;
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "acd");

  /* Stale, repeated and out-of-range handles are ignored. */
  mdht_bus_unsubscribe(&bus, -1);
  mdht_bus_unsubscribe(&bus, MDHT_BUS_MAX_SUBS);
  mdht_bus_unsubscribe(&bus, 1000);
  mdht_bus_unsubscribe(&bus, 5);
  mdht_bus_unsubscribe(&bus, ha);
  mdht_bus_unsubscribe(&bus, ha);
  lg.n = 0;
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "cd");
  mdht_bus_unsubscribe(&bus, hc);
  mdht_bus_unsubscribe(&bus, hd);
  assert_int_equal(bus.nsubs, 0);
  lg.n = 0;
  lg.tags[0] = '\0';
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "");
  mdht_bus_free(&bus);
}

static void test_full(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub s[MDHT_BUS_MAX_SUBS + 1];
  mdht_bus_init(&bus);
  for (int i = 0; i < MDHT_BUS_MAX_SUBS; i++) {
    s[i] = (sub){.log = &lg, .tag = (char)('A' + i)};
    assert_int_equal(mdht_bus_subscribe(&bus, record, &s[i]), i);
  }
  s[MDHT_BUS_MAX_SUBS] = (sub){.log = &lg, .tag = 'z'};
  assert_int_equal(mdht_bus_subscribe(&bus, record, &s[MDHT_BUS_MAX_SUBS]),
                   MDHT_ERR_FULL);
  publish(&bus, MDHT_EV_LOG, 0);
  char all[MDHT_BUS_MAX_SUBS + 2] = {0}, after[MDHT_BUS_MAX_SUBS + 2] = {0};
  for (int i = 0, j = 0; i < MDHT_BUS_MAX_SUBS; i++) {
    all[i] = (char)('A' + i);
    if (i != 7) after[j++] = (char)('A' + i);
  }
  after[MDHT_BUS_MAX_SUBS - 1] = 'z';
  assert_string_equal(lg.tags, all);
  /* Freeing one slot makes room for exactly one more. */
  mdht_bus_unsubscribe(&bus, 7);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &s[MDHT_BUS_MAX_SUBS]), 7);
  assert_int_equal(mdht_bus_subscribe(&bus, record, &s[0]), MDHT_ERR_FULL);
  lg.n = 0;
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, after);
  mdht_bus_free(&bus);
}

static void test_null_args(void **state) {
  (void)state;
  mdht_bus bus;
  mdht_bus_init(&bus);
  assert_int_equal(mdht_bus_subscribe(&bus, NULL, NULL), MDHT_ERR_INVAL);
  assert_int_equal(mdht_bus_subscribe(NULL, record, NULL), MDHT_ERR_INVAL);
  assert_int_equal(bus.nsubs, 0);
  mdht_bus_publish(&bus, NULL);
  mdht_bus_publish(NULL, NULL);
  mdht_bus_unsubscribe(NULL, 0);
  mdht_bus_free(&bus);
}

static void test_unsubscribe_other_during_publish(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub a = {.log = &lg, .tag = 'a', .bus = &bus};
  sub b = {.log = &lg, .tag = 'b'}, c = {.log = &lg, .tag = 'c'};
  mdht_bus_init(&bus);
  mdht_bus_subscribe(&bus, unsub_victim, &a);
  a.victim = mdht_bus_subscribe(&bus, record, &b);
  mdht_bus_subscribe(&bus, record, &c);
  publish(&bus, MDHT_EV_LOG, 0);
  /* b was removed before its turn: skipped, and c still called. */
  assert_string_equal(lg.tags, "ac");
  assert_int_equal(bus.nsubs, 2);
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "acac");
  mdht_bus_free(&bus);
}

static void test_unsubscribe_self_during_publish(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub a = {.log = &lg, .tag = 'a', .bus = &bus};
  sub b = {.log = &lg, .tag = 'b'};
  mdht_bus_init(&bus);
  a.self = mdht_bus_subscribe(&bus, unsub_self, &a);
  mdht_bus_subscribe(&bus, record, &b);
  publish(&bus, MDHT_EV_LOG, 0);
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "abb");
  mdht_bus_free(&bus);
}

static void test_reuse_during_publish(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  /* a removes b and subscribes d, which lands in b's slot while the
   * publish is still in flight. d must not receive that event through
   * b's old position, and must come last afterwards. */
  sub d = {.log = &lg, .tag = 'd'};
  sub a = {.log = &lg, .tag = 'a', .bus = &bus, .added = -1, .add = &d};
  sub b = {.log = &lg, .tag = 'b'}, c = {.log = &lg, .tag = 'c'};
  mdht_bus_init(&bus);
  mdht_bus_subscribe(&bus, swap_other, &a);
  a.victim = mdht_bus_subscribe(&bus, record, &b);
  mdht_bus_subscribe(&bus, record, &c);
  publish(&bus, MDHT_EV_LOG, 0);
  assert_int_equal(a.added, a.victim);
  assert_string_equal(lg.tags, "ac");
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "acacd");
  mdht_bus_free(&bus);
}

static void test_add_during_publish_then_remove(void **state) {
  (void)state;
  mdht_bus bus;
  log_ lg = {0};
  sub d = {.log = &lg, .tag = 'd'};
  sub a = {.log = &lg, .tag = 'a', .bus = &bus, .added = -1, .add = &d};
  sub b = {.log = &lg, .tag = 'b', .bus = &bus};
  mdht_bus_init(&bus);
  mdht_bus_subscribe(&bus, add_other, &a);
  b.victim = 0; /* b removes a after a has run */
  mdht_bus_subscribe(&bus, unsub_victim, &b);
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "ab");
  publish(&bus, MDHT_EV_LOG, 0);
  assert_string_equal(lg.tags, "abbd");
  mdht_bus_free(&bus);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_subscribers),
      cmocka_unit_test(test_slots_grow_with_subscribers),
      cmocka_unit_test(test_event_init_zeroes),
      cmocka_unit_test(test_order_and_payload),
      cmocka_unit_test(test_unsubscribe_and_reuse),
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_null_args),
      cmocka_unit_test(test_unsubscribe_other_during_publish),
      cmocka_unit_test(test_unsubscribe_self_during_publish),
      cmocka_unit_test(test_reuse_during_publish),
      cmocka_unit_test(test_add_during_publish_then_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
