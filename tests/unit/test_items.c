/* BEP 44 item store on virtual time: the mutable rules (seq, cas), expiry
 * and refresh, and the bounds no single source can steer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "items.h"
#include "testutil.h"

typedef struct fx {
  mdht_config cfg;
  mdht_bus bus;
  mdht_item_store s;
  int stored; /* ITEM_STORED events */
  mdht_event last;
} fx;

static void on_event(const mdht_event *ev, void *user) {
  fx *f = user;
  if (ev->type == MDHT_EV_ITEM_STORED) {
    f->stored++;
    f->last = *ev;
  }
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  mdht_config_default(&f->cfg);
  mdht_bus_init(&f->bus);
  assert_true(mdht_bus_subscribe(&f->bus, on_event, f) >= 0);
  mdht_items_init(&f->s, &f->cfg, &f->bus);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mdht_items_free(&f->s);
  mdht_bus_free(&f->bus);
  free(f);
  return 0;
}

/* An immutable item "<n>:<text>" and its target. */
static mdht_item_put imm(const char *bencoded, mdht_id *target) {
  mdht_item_put p = {.v = (const uint8_t *)bencoded, .vlen = strlen(bencoded)};
  mdht_item_immutable_target(p.v, p.vlen, target);
  return p;
}

static const uint8_t key[32] = {1, 2, 3};
static const uint8_t sig[64] = {9};

static mdht_item_put mut(const char *bencoded, int64_t seq) {
  mdht_item_put p = {.v = (const uint8_t *)bencoded,
                     .vlen = strlen(bencoded),
                     .is_mutable = true,
                     .k = key,
                     .sig = sig,
                     .seq = seq};
  return p;
}

static void test_immutable_put_get_expire(void **state) {
  fx *f = *state;
  mdht_addr a = test_addr4(10, 0, 0, 1, 1000);
  mdht_id t;
  mdht_item_put p = imm("5:hello", &t);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1000), 0);
  const mdht_item *it = mdht_items_get(&f->s, &t, 1000);
  assert_non_null(it);
  assert_int_equal(it->vlen, 7);
  assert_memory_equal(it->v, "5:hello", 7);
  assert_false(it->is_mutable);
  assert_int_equal(f->stored, 1);
  assert_memory_equal(f->last.id.b, t.b, 20);
  assert_int_equal(f->last.u.item.vlen, 7);

  /* Alive until 2 h after the put; a republish at 1 h extends it. */
  mdht_time ttl = f->cfg.item_ttl_ms;
  assert_int_equal(ttl, 2 * 3600 * 1000);
  assert_non_null(mdht_items_get(&f->s, &t, 1000 + ttl - 1));
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1000 + ttl / 2), 0);
  assert_non_null(mdht_items_get(&f->s, &t, 1000 + ttl + 1));
  assert_int_equal(f->s.n, 1);
  assert_null(mdht_items_get(&f->s, &t, 1000 + ttl / 2 + ttl));
  assert_int_equal(mdht_items_expire(&f->s, 1000 + ttl / 2 + ttl), 1);
  assert_int_equal(f->s.n, 0);
  assert_int_equal(f->s.bytes, 0);
  assert_true(f->s.next_expiry == UINT64_MAX);
}

static void test_mutable_rules(void **state) {
  fx *f = *state;
  mdht_addr a = test_addr4(10, 0, 0, 1, 1000);
  mdht_id t = test_id(0x42);
  mdht_item_put p = mut("1:a", 5);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 10), 0);
  /* lower seq: 302 */
  p = mut("1:b", 4);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 20), MDHT_KRPC_E_SEQ);
  /* same seq, other value: 302 as well */
  p = mut("1:b", 5);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 20), MDHT_KRPC_E_SEQ);
  /* same seq, same value: a refresh */
  p = mut("1:a", 5);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 5000), 0);
  assert_true(mdht_items_get(&f->s, &t, 0)->expires ==
              5000 + f->cfg.item_ttl_ms);
  /* cas that is not the stored seq: 301, even with a higher seq */
  p = mut("1:c", 7);
  p.has_cas = true;
  p.cas = 4;
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 30), MDHT_KRPC_E_CAS);
  const mdht_item *it = mdht_items_get(&f->s, &t, 30);
  assert_int_equal(it->seq, 5);
  assert_memory_equal(it->v, "1:a", 3);
  /* cas right: replaced */
  p.cas = 5;
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 40), 0);
  it = mdht_items_get(&f->s, &t, 40);
  assert_int_equal(it->seq, 7);
  assert_memory_equal(it->v, "1:c", 3);
  assert_memory_equal(it->k, key, 32);
  assert_int_equal(f->s.n, 1);
  assert_int_equal(f->s.bytes, 3);
  /* salt kept */
  mdht_id t2 = test_id(0x43);
  p = mut("1:d", 1);
  p.salt = (const uint8_t *)"pepper";
  p.salt_len = 6;
  assert_int_equal(mdht_items_put(&f->s, &t2, &p, &a, 50), 0);
  it = mdht_items_get(&f->s, &t2, 50);
  assert_int_equal(it->salt_len, 6);
  assert_memory_equal(it->salt, "pepper", 6);
  assert_true(f->last.u.item.is_mutable);
  assert_int_equal(f->last.u.item.seq, 1);
}

static void test_bad_puts_refused(void **state) {
  fx *f = *state;
  mdht_addr a = test_addr4(10, 0, 0, 1, 1000);
  mdht_id t = test_id(1);
  static char big[MDHT_ITEM_MAX_V + 2];
  memset(big, 'x', sizeof big - 1);
  mdht_item_put p = {.v = (const uint8_t *)big, .vlen = MDHT_ITEM_MAX_V + 1};
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1), MDHT_ERR_INVAL);
  p.vlen = 0;
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1), MDHT_ERR_INVAL);
  p = mut("1:a", 1);
  p.salt = (const uint8_t *)big;
  p.salt_len = MDHT_ITEM_MAX_SALT + 1;
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1), MDHT_ERR_INVAL);
  f->cfg.max_items = 0;
  p = mut("1:a", 1);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 1), MDHT_ERR_FULL);
  assert_int_equal(f->s.n, 0);
  assert_int_equal(f->stored, 0);
}

/* A source at its quota keeps putting: only its own oldest items go. */
static void test_per_source_quota(void **state) {
  fx *f = *state;
  f->cfg.max_items_per_ip = 4;
  mdht_addr other = test_addr4(10, 9, 9, 9, 1);
  mdht_id ot = test_id(0xee);
  mdht_item_put op = mut("1:o", 1);
  assert_int_equal(mdht_items_put(&f->s, &ot, &op, &other, 1), 0);
  mdht_addr a = test_addr4(10, 0, 0, 1, 1000);
  for (int i = 0; i < 10; i++) {
    mdht_id t = test_id((uint8_t)(i + 1));
    mdht_item_put p = mut("1:a", 1);
    a.port = (uint16_t)(1000 + i); /* ports do not make new sources */
    assert_int_equal(mdht_items_put(&f->s, &t, &p, &a, 10 + (mdht_time)i), 0);
  }
  assert_int_equal(mdht_items_of_ip(&f->s, &a), 4);
  assert_non_null(mdht_items_get(&f->s, &ot, 100));
  for (int i = 0; i < 10; i++) {
    mdht_id t = test_id((uint8_t)(i + 1));
    if (i < 6)
      assert_null(mdht_items_get(&f->s, &t, 100));
    else
      assert_non_null(mdht_items_get(&f->s, &t, 100));
  }
  /* IPv6: one /64 is one source. */
  mdht_addr v6;
  memset(&v6, 0, sizeof v6);
  v6.family = MDHT_AF_INET6;
  v6.ip[0] = 0x20;
  v6.ip[1] = 0x01;
  for (int i = 0; i < 8; i++) {
    v6.ip[15] = (uint8_t)i;
    mdht_id t = test_id((uint8_t)(0x80 + i));
    mdht_item_put p = mut("1:a", 1);
    assert_int_equal(mdht_items_put(&f->s, &t, &p, &v6, 200), 0);
  }
  assert_int_equal(mdht_items_of_ip(&f->s, &v6), 4);
}

/* At the global bound, the heaviest source pays, whoever puts. */
static void test_eviction_hits_heaviest(void **state) {
  fx *f = *state;
  f->cfg.max_items = 10;
  f->cfg.max_items_per_ip = 100;
  mdht_addr good1 = test_addr4(10, 0, 0, 1, 1),
            good2 = test_addr4(10, 0, 0, 2, 1);
  mdht_addr evil = test_addr4(10, 6, 6, 6, 1);
  uint8_t n = 0;
  /* The legitimate items are the oldest: age-order eviction would hit
   * them first. */
  for (int i = 0; i < 2; i++) {
    mdht_id t = test_id(++n);
    mdht_item_put p = mut("1:g", 1);
    assert_int_equal(mdht_items_put(&f->s, &t, &p, &good1, n), 0);
    t = test_id(++n);
    assert_int_equal(mdht_items_put(&f->s, &t, &p, &good2, n), 0);
  }
  for (int i = 0; i < 30; i++) {
    mdht_id t = test_id((uint8_t)(100 + i));
    mdht_item_put p = mut("1:e", 1);
    assert_int_equal(mdht_items_put(&f->s, &t, &p, &evil, 100 + (mdht_time)i),
                     0);
  }
  assert_int_equal(f->s.n, 10);
  assert_int_equal(mdht_items_of_ip(&f->s, &good1), 2);
  assert_int_equal(mdht_items_of_ip(&f->s, &good2), 2);
  assert_int_equal(mdht_items_of_ip(&f->s, &evil), 6);
  /* The newest of evil's items survive; a newcomer's put evicts evil's
   * oldest. */
  mdht_id newest = test_id(129);
  assert_non_null(mdht_items_get(&f->s, &newest, 500));
  mdht_addr late = test_addr4(10, 0, 0, 3, 1);
  mdht_id t = test_id(0x77);
  mdht_item_put p = mut("1:l", 1);
  assert_int_equal(mdht_items_put(&f->s, &t, &p, &late, 600), 0);
  assert_int_equal(mdht_items_of_ip(&f->s, &evil), 5);
  mdht_id oldest = test_id(124);
  assert_null(mdht_items_get(&f->s, &oldest, 600));
  assert_int_equal(mdht_items_of_ip(&f->s, &good1), 2);
}

/* The byte bound evicts like the count bound; a value larger than the
 * whole budget is refused. */
static void test_byte_bound(void **state) {
  fx *f = *state;
  f->cfg.max_item_bytes = 100;
  mdht_addr a = test_addr4(10, 0, 0, 1, 1), b = test_addr4(10, 0, 0, 2, 1);
  char v[64];
  snprintf(v, sizeof v, "40:%040d", 7); /* 43 bytes */
  mdht_id t1 = test_id(1), t2 = test_id(2), t3 = test_id(3);
  mdht_item_put p = mut(v, 1);
  assert_int_equal(mdht_items_put(&f->s, &t1, &p, &a, 1), 0);
  assert_int_equal(mdht_items_put(&f->s, &t2, &p, &b, 2), 0);
  assert_int_equal(f->s.bytes, 86);
  assert_int_equal(mdht_items_put(&f->s, &t3, &p, &b, 3), 0);
  assert_true(f->s.bytes <= 100);
  assert_int_equal(f->s.n, 2);
  /* Ties of one item each: one went, b's new one is there. */
  assert_non_null(mdht_items_get(&f->s, &t3, 3));
  f->cfg.max_item_bytes = 10;
  mdht_id t4 = test_id(4);
  assert_int_equal(mdht_items_put(&f->s, &t4, &p, &a, 4), MDHT_ERR_FULL);
}

/* Many puts, expiries and evictions: every item is found under its own
 * target, the index and the byte count stay consistent. */
static void test_index_consistency(void **state) {
  fx *f = *state;
  f->cfg.max_items = 64;
  f->cfg.max_items_per_ip = 8;
  f->cfg.item_ttl_ms = 500;
  uint64_t rng = 7;
  for (int i = 0; i < 3000; i++) {
    uint8_t r[4];
    test_random(r, sizeof r, &rng);
    mdht_id t;
    test_random(t.b, sizeof t.b, &rng);
    t.b[0] = r[0] & 0x3f; /* some targets repeat */
    memset(t.b + 1, 0, 19);
    mdht_addr a = test_addr4(10, 0, r[1] & 15, 1, 1);
    char v[16];
    int n = snprintf(v, sizeof v, "i%de", r[2]);
    mdht_item_put p = {.v = (const uint8_t *)v, .vlen = (size_t)n};
    mdht_time now = (mdht_time)i;
    int rc = mdht_items_put(&f->s, &t, &p, &a, now);
    assert_int_equal(rc, 0);
    if (r[3] < 10) mdht_items_expire(&f->s, now);
    size_t bytes = 0;
    for (uint32_t j = 0; j < f->s.n; j++) {
      const mdht_item *it = &f->s.items[j];
      bytes += it->vlen;
      uint32_t pos = f->s.index[j].slot;
      assert_true(pos < f->s.n);
      if (j)
        assert_true(
            memcmp(f->s.index[j - 1].target.b, f->s.index[j].target.b, 20) < 0);
      if (it->expires > now)
        assert_ptr_equal(mdht_items_get(&f->s, &it->target, now), it);
    }
    assert_int_equal(bytes, f->s.bytes);
    assert_true(f->s.n <= 64);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_immutable_put_get_expire, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_mutable_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_puts_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_per_source_quota, setup, teardown),
      cmocka_unit_test_setup_teardown(test_eviction_hits_heaviest, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_byte_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_index_consistency, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
