#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addr.h"
#include "bep42.h"
#include "id.h"
#include "rtable.h"

#define FRESH ((mdht_time)15 * 60 * 1000)
#define TIMEOUT ((mdht_time)5000)
#define T0 ((mdht_time)1000000)
#define MAX_LIVE 8192

/* ------------------------------------------------------------ fixture */

typedef struct live_node {
  mdht_id id;
  mdht_addr addr;
} live_node;

typedef struct fx {
  mdht_config cfg;
  mdht_bus bus;
  mdht_rtable rt;
  mdht_id self;
  uint64_t rng;
  uint32_t next_host;
  int count[MDHT_EV_COUNT_];
  mdht_event last[MDHT_EV_COUNT_];
  /* The bucket contents as the events tell them; must match the table. */
  live_node live[MAX_LIVE];
  size_t nlive;
  int shadow_errors;
} fx;

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_fill(uint64_t *s, uint8_t *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t)rng_next(s);
}

static long live_find(const fx *f, const mdht_id *id, const mdht_addr *a) {
  for (size_t i = 0; i < f->nlive; i++)
    if (mdht_id_eq(&f->live[i].id, id) && mdht_addr_eq(&f->live[i].addr, a))
      return (long)i;
  return -1;
}

static void live_add(fx *f, const mdht_id *id, const mdht_addr *a) {
  if (live_find(f, id, a) >= 0 || f->nlive == MAX_LIVE) {
    f->shadow_errors++;
    return;
  }
  f->live[f->nlive++] = (live_node){*id, *a};
}

static void live_del(fx *f, const mdht_id *id, const mdht_addr *a) {
  long i = live_find(f, id, a);
  if (i < 0) {
    f->shadow_errors++;
    return;
  }
  f->live[i] = f->live[--f->nlive];
}

static void on_event(const mdht_event *ev, void *user) {
  fx *f = user;
  f->count[ev->type]++;
  f->last[ev->type] = *ev;
  switch (ev->type) {
  case MDHT_EV_NODE_ADDED:
    live_add(f, &ev->id, &ev->addr);
    break;
  case MDHT_EV_NODE_REMOVED:
    live_del(f, &ev->id, &ev->addr);
    break;
  case MDHT_EV_NODE_REPLACED:
    live_del(f, &ev->u.replaced.old_id, &ev->u.replaced.old_addr);
    live_add(f, &ev->id, &ev->addr);
    break;
  default:
    break;
  }
}

static void fx_config(fx *f, uint32_t k) {
  memset(&f->cfg, 0, sizeof f->cfg);
  f->cfg.k = k;
  f->cfg.node_fresh_ms = FRESH;
  f->cfg.max_fails = 3;
  f->cfg.query_timeout_ms = TIMEOUT;
  f->cfg.allow_private = false;
}

/* (Re)starts the table with bucket size k, clearing what the events
 * recorded. */
static void fx_reinit(fx *f, uint32_t k) {
  mdht_rtable_free(&f->rt);
  fx_config(f, k);
  memset(f->count, 0, sizeof f->count);
  f->nlive = 0;
  f->shadow_errors = 0;
  assert_int_equal(
      mdht_rtable_init(&f->rt, &f->self, &f->cfg, &f->bus, rng_next(&f->rng)),
      0);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  if (!f) return -1;
  f->rng = 12345;
  rng_fill(&f->rng, f->self.b, MDHT_ID_LEN);
  mdht_bus_init(&f->bus);
  if (mdht_bus_subscribe(&f->bus, on_event, f) < 0) return -1;
  fx_config(f, 8);
  if (mdht_rtable_init(&f->rt, &f->self, &f->cfg, &f->bus, 99) != 0) return -1;
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  mdht_rtable_free(&f->rt);
  mdht_bus_free(&f->bus);
  free(f);
  return 0;
}

/* An id sharing exactly `cp` leading bits with ours. */
static mdht_id id_at(fx *f, int cp) {
  mdht_id base = f->self, out;
  base.b[cp / 8] ^= (uint8_t)(0x80 >> (cp % 8));
  uint8_t r[MDHT_ID_LEN];
  rng_fill(&f->rng, r, sizeof r);
  mdht_id_random_in(&out, &base, cp + 1, r);
  return out;
}

static mdht_addr addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
                       uint16_t port) {
  mdht_addr r;
  memset(&r, 0, sizeof r);
  r.family = MDHT_AF_INET;
  r.ip[0] = a;
  r.ip[1] = b;
  r.ip[2] = c;
  r.ip[3] = d;
  r.port = port;
  return r;
}

/* A fresh public endpoint, in a /24 of its own. */
static mdht_addr new_addr(fx *f) {
  uint32_t n = ++f->next_host;
  return addr4((uint8_t)(1 + (n >> 16)), (uint8_t)(n >> 8), (uint8_t)n, 1,
               6881);
}

static mdht_addr new_addr6(fx *f) {
  uint32_t n = ++f->next_host;
  mdht_addr r;
  memset(&r, 0, sizeof r);
  r.family = MDHT_AF_INET6;
  r.ip[0] = 0x20;
  r.ip[1] = 0x01;
  r.ip[2] = 0x0d;
  r.ip[3] = 0xb8;
  r.ip[5] = (uint8_t)(n >> 16); /* a /64 of its own */
  r.ip[6] = (uint8_t)(n >> 8);
  r.ip[7] = (uint8_t)n;
  r.ip[15] = 1;
  r.port = 6881;
  return r;
}

static int heard(fx *f, const mdht_id *id, const mdht_addr *a, mdht_rt_how how,
                 mdht_time now) {
  mdht_rt_entry ping;
  return mdht_rtable_heard(&f->rt, id, a, how, now, &ping);
}

static bool same_prefix(const mdht_addr *a, const mdht_addr *b) {
  return a->family == b->family &&
         memcmp(a->ip, b->ip, a->family == MDHT_AF_INET ? 3 : 8) == 0;
}

/* Within a bucket, one entry per /24 or /64 among public addresses. */
static void check_prefix_rule(fx *f, const mdht_rt_bucket *b,
                              const mdht_rt_entry *e) {
  mdht_addr ea = mdht_rtable_addr(&f->rt, e);
  if (f->cfg.allow_same_prefix || mdht_addr_is_private(&ea)) return;
  int same = 0;
  for (uint32_t j = 0; j < b->n + b->nrepl; j++) {
    mdht_addr o =
        mdht_rtable_addr(&f->rt, j < b->n ? &b->nodes[j] : &b->repl[j - b->n]);
    same += same_prefix(&ea, &o);
  }
  assert_int_equal(same, 1);
}

/* One entry per IP in the whole table, buckets and lists together. */
static void check_ip_rule(fx *f) {
  if (f->cfg.allow_same_ip) return;
  mdht_rtable *rt = &f->rt;
  size_t n = 0, cap = rt->index_.n + 1;
  mdht_addr *all = calloc(cap, sizeof *all);
  assert_non_null(all);
  for (uint32_t bi = 0; bi < rt->nbuckets; bi++) {
    const mdht_rt_bucket *b = &rt->buckets[bi];
    for (uint32_t i = 0; i < b->n + b->nrepl && n < cap; i++)
      all[n++] =
          mdht_rtable_addr(rt, i < b->n ? &b->nodes[i] : &b->repl[i - b->n]);
  }
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      assert_false(mdht_addr_ip_eq(&all[i], &all[j]));
  /* The index, keyed by IP, holds exactly these. */
  assert_true(rt->index_.by_ip);
  assert_int_equal(rt->index_.n, n);
  free(all);
}

/* Structural checks over the whole table: bucket ranges, bounds, one
 * entry per ip:port and per id, the index agreeing with the buckets, and
 * the event-built shadow agreeing with the bucket contents. */
static void check_invariants(fx *f) {
  mdht_rtable *rt = &f->rt;
  uint32_t total = 0, repl = 0, v6 = 0;
  for (uint32_t bi = 0; bi < rt->nbuckets; bi++) {
    mdht_rt_bucket *b = &rt->buckets[bi];
    assert_true(b->n <= f->cfg.k);
    assert_true(b->nrepl <= f->cfg.k);
    assert_non_null(b->nodes);
    assert_true(b->n <= b->cap && b->cap <= f->cfg.k);
    for (int list = 0; list < 2; list++) {
      mdht_rt_entry *v = list ? b->repl : b->nodes;
      uint32_t n = list ? b->nrepl : b->n;
      for (uint32_t i = 0; i < n; i++) {
        mdht_addr va = mdht_rtable_addr(rt, &v[i]);
        v6 += mdht_rt_entry_family(&v[i]) == MDHT_AF_INET6;
        assert_int_equal(mdht_rtable_bucket_of(rt, &v[i].id), bi);
        assert_false(mdht_id_eq(&v[i].id, &rt->self));
        assert_false(mdht_addr_is_martian(&va));
        if (!f->cfg.allow_private) assert_false(mdht_addr_is_private(&va));
        mdht_rt_entry *found = mdht_rtable_find(rt, &va);
        if (list)
          assert_null(found);
        else
          assert_ptr_equal(found, &v[i]);
        /* Unique within the bucket; ids and addresses cannot repeat
         * across buckets without repeating here (ids fix the bucket) or
         * breaking find() above (addresses). */
        for (uint32_t j = 0; j < b->n; j++) {
          if (!list && j == i) continue;
          mdht_addr o = mdht_rtable_addr(rt, &b->nodes[j]);
          assert_false(mdht_addr_eq(&va, &o));
          assert_false(mdht_id_eq(&v[i].id, &b->nodes[j].id));
        }
        for (uint32_t j = 0; j < b->nrepl; j++) {
          if (list && j == i) continue;
          mdht_addr o = mdht_rtable_addr(rt, &b->repl[j]);
          assert_false(mdht_addr_eq(&va, &o));
          assert_false(mdht_id_eq(&v[i].id, &b->repl[j].id));
        }
        check_prefix_rule(f, b, &v[i]);
      }
    }
    total += b->n;
    repl += b->nrepl;
  }
  assert_int_equal(rt->index_.n, total + repl);
  /* Each IPv6 entry holds one pool slot, and no slot is held by none. */
  assert_int_equal(rt->v6_.live, v6);
  assert_true(rt->v6_.top <= rt->v6_.cap);
  check_ip_rule(f);
  assert_int_equal(f->shadow_errors, 0);
  assert_int_equal(f->nlive, total);
  for (size_t i = 0; i < f->nlive; i++) {
    mdht_rt_entry *e = mdht_rtable_find(rt, &f->live[i].addr);
    assert_non_null(e);
    assert_true(mdht_id_eq(&e->id, &f->live[i].id));
  }
  uint32_t t, r;
  mdht_rtable_counts(rt, 0, NULL, NULL, &t, &r);
  assert_int_equal(t, total);
  assert_int_equal(r, repl);
}

/* Bucket 0 full of 8 good nodes (answered at T0 + i), after one split, and
 * an empty replacement list: the split is caused by a node sharing one
 * bit with us, which lands in bucket 1. */
static void fill_far_bucket(fx *f, mdht_id ids[8], mdht_addr addrs[8]) {
  for (int i = 0; i < 8; i++) {
    ids[i] = id_at(f, 0);
    addrs[i] = new_addr(f);
    assert_int_equal(
        heard(f, &ids[i], &addrs[i], MDHT_RT_HEARD_REPLY, T0 + (mdht_time)i),
        MDHT_RT_ADDED);
  }
  mdht_id near = id_at(f, 1);
  mdht_addr na = new_addr(f);
  assert_int_equal(heard(f, &near, &na, MDHT_RT_HEARD_REPLY, T0 + 8),
                   MDHT_RT_ADDED);
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->rt.buckets[0].n, 8);
  assert_int_equal(f->rt.buckets[0].nrepl, 0);
}

/* -------------------------------------------------------------- tests */

static void test_init_invalid(void **state) {
  fx *f = *state;
  mdht_rtable rt;
  mdht_config c = f->cfg;
  c.k = 0;
  assert_int_equal(mdht_rtable_init(&rt, &f->self, &c, NULL, 1),
                   MDHT_ERR_INVAL);
  c.k = MDHT_RT_KMAX + 1;
  assert_int_equal(mdht_rtable_init(&rt, &f->self, &c, NULL, 1),
                   MDHT_ERR_INVAL);
  c.k = MDHT_RT_KMAX;
  assert_int_equal(mdht_rtable_init(&rt, &f->self, &c, NULL, 1), 0);
  assert_int_equal(rt.nbuckets, 1);
  mdht_rtable_free(&rt);
  assert_int_equal(mdht_rtable_init(&rt, NULL, &c, NULL, 1), MDHT_ERR_INVAL);
  assert_int_equal(mdht_rtable_init(&rt, &f->self, NULL, NULL, 1),
                   MDHT_ERR_INVAL);
  mdht_id id = id_at(f, 0);
  mdht_addr a = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, NULL, &a, MDHT_RT_HEARD_REPLY, T0, NULL),
      MDHT_ERR_INVAL);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &id, NULL, MDHT_RT_HEARD_REPLY, T0, NULL),
      MDHT_ERR_INVAL);
}

/* A bucket holds room for k nodes and at most k candidates, not
 * MDHT_RT_KMAX of each: with k = 2 every bucket's node block is 2 entries
 * and its candidate block at most 2, and both fill through splits and
 * replacement lists alike. */
static void test_buckets_sized_by_k(void **state) {
  fx *f = *state;
  fx_reinit(f, 2);
  for (int cp = 0; cp < 6; cp++)
    for (int i = 0; i < 4; i++) {
      mdht_id id = id_at(f, cp);
      mdht_addr a = new_addr(f);
      assert_true(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, 10) > 0);
    }
  mdht_rtable *rt = &f->rt;
  assert_true(rt->nbuckets >= 6);
  uint32_t total = 0, repl = 0;
  for (uint32_t b = 0; b < rt->nbuckets; b++) {
    const mdht_rt_bucket *bk = &rt->buckets[b];
    assert_true(malloc_usable_size(bk->nodes) <
                MDHT_RT_KMAX * sizeof(mdht_rt_entry) / 2);
    assert_true(bk->repl_cap <= 2);
    if (bk->repl)
      assert_true(malloc_usable_size(bk->repl) <
                  MDHT_RT_KMAX * sizeof(mdht_rt_entry) / 2);
    assert_true(bk->n <= 2 && bk->nrepl <= 2);
    total += bk->n;
    repl += bk->nrepl;
  }
  /* Every bucket 0..5 is full, and so is its list of candidates. */
  assert_true(total >= 12);
  assert_true(repl >= 10);
  check_invariants(f);
}

/* A bucket's candidate block is allocated with the first candidate,
 * grows as candidates come (2, 4, 6, 8 = k, never more) and is freed when
 * the last one goes, as they take slots or are removed. */
static void test_replacements_grow_and_shrink(void **state) {
  fx *f = *state;
  fx_reinit(f, 8);
  mdht_id ids[20];
  mdht_addr addrs[20];
  for (int i = 0; i < 20; i++) {
    ids[i] = id_at(f, 0);
    addrs[i] = new_addr(f);
  }
  for (int i = 0; i < 8; i++)
    assert_true(heard(f, &ids[i], &addrs[i], MDHT_RT_HEARD_REPLY, T0) > 0);
  uint32_t bi = mdht_rtable_bucket_of(&f->rt, &ids[0]);
  const mdht_rt_bucket *b = &f->rt.buckets[bi];
  assert_int_equal(b->n, 8);
  assert_null(b->repl);
  assert_int_equal(b->repl_cap, 0);
  const uint8_t caps[12] = {2, 2, 4, 4, 6, 6, 8, 8, 8, 8, 8, 8};
  for (int i = 8; i < 20; i++) {
    heard(f, &ids[i], &addrs[i], MDHT_RT_HEARD_REPLY, T0 + 1);
    b = &f->rt.buckets[mdht_rtable_bucket_of(&f->rt, &ids[0])];
    assert_int_equal(b->nrepl, i - 7 > 8 ? 8 : i - 7);
    assert_int_equal(b->repl_cap, caps[i - 8]);
    assert_non_null(b->repl);
  }
  check_invariants(f);
  /* Removing nodes promotes candidates; removing the candidates frees
   * the block. */
  for (int i = 0; i < 20; i++)
    mdht_rtable_remove(&f->rt, &ids[i], &addrs[i], T0 + 2);
  b = &f->rt.buckets[mdht_rtable_bucket_of(&f->rt, &ids[0])];
  assert_int_equal(b->n, 0);
  assert_int_equal(b->nrepl, 0);
  assert_null(b->repl);
  assert_int_equal(b->repl_cap, 0);
  check_invariants(f);
}

static void test_add_and_update(void **state) {
  fx *f = *state;
  mdht_id id = id_at(f, 3);
  mdht_addr a = new_addr(f);
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 1);
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_ADDED].id, &id));
  assert_true(mdht_addr_eq(&f->last[MDHT_EV_NODE_ADDED].addr, &a));
  assert_int_equal(f->last[MDHT_EV_NODE_ADDED].now, T0);

  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &a);
  assert_non_null(e);
  assert_true(mdht_id_eq(&e->id, &id));
  assert_int_equal(e->added, T0);
  assert_int_equal(e->last_reply, T0);
  assert_int_equal(e->last_query, 0);
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed), T0);

  /* A query refreshes last_query only, and is not a bucket change. */
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_QUERY, T0 + 10),
                   MDHT_RT_UPDATED);
  e = mdht_rtable_find(&f->rt, &a);
  assert_int_equal(e->last_query, T0 + 10);
  assert_int_equal(e->last_reply, T0);
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed), T0);

  /* A reply resets the failure count. */
  mdht_rtable_failed(&f->rt, &id, &a, T0 + 15);
  mdht_rtable_failed(&f->rt, &id, &a, T0 + 16);
  assert_int_equal(mdht_rtable_find(&f->rt, &a)->fails, 2);
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0 + 20),
                   MDHT_RT_UPDATED);
  e = mdht_rtable_find(&f->rt, &a);
  assert_int_equal(e->fails, 0);
  assert_int_equal(e->last_reply, T0 + 20);
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed),
                   T0 + 20);
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 1);

  /* A node that only queried us: in, but never answered. */
  mdht_id q = id_at(f, 0);
  mdht_addr qa = new_addr(f);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 30),
                   MDHT_RT_ADDED);
  e = mdht_rtable_find(&f->rt, &qa);
  assert_int_equal(e->last_reply, 0);
  assert_int_equal(e->last_query, T0 + 30);

  /* A clock starting at 0 must not read as "never answered". */
  mdht_id z = id_at(f, 1);
  mdht_addr za = new_addr(f);
  assert_int_equal(heard(f, &z, &za, MDHT_RT_HEARD_REPLY, 0), MDHT_RT_ADDED);
  assert_true(mdht_rtable_find(&f->rt, &za)->last_reply != 0);
  check_invariants(f);
}

static void test_ignored_rules(void **state) {
  fx *f = *state;
  mdht_addr a = new_addr(f);
  assert_int_equal(heard(f, &f->self, &a, MDHT_RT_HEARD_REPLY, T0),
                   MDHT_RT_IGNORED);

  mdht_addr martians[] = {
      addr4(1, 2, 3, 4, 0),      addr4(0, 1, 2, 3, 6881),
      addr4(224, 0, 0, 1, 6881), addr4(239, 1, 1, 1, 6881),
      addr4(240, 1, 1, 1, 6881), addr4(255, 255, 255, 255, 6881),
  };
  for (size_t i = 0; i < sizeof martians / sizeof martians[0]; i++) {
    mdht_id id = id_at(f, 2);
    assert_int_equal(heard(f, &id, &martians[i], MDHT_RT_HEARD_REPLY, T0),
                     MDHT_RT_IGNORED);
  }
  mdht_addr m6;
  memset(&m6, 0, sizeof m6);
  m6.family = MDHT_AF_INET6;
  m6.port = 6881;
  mdht_id id6 = id_at(f, 2);
  assert_int_equal(heard(f, &id6, &m6, MDHT_RT_HEARD_REPLY, T0),
                   MDHT_RT_IGNORED); /* :: */
  m6.ip[0] = 0xff;
  assert_int_equal(heard(f, &id6, &m6, MDHT_RT_HEARD_REPLY, T0),
                   MDHT_RT_IGNORED); /* multicast */

  mdht_addr privs[] = {
      addr4(127, 0, 0, 1, 6881),   addr4(10, 1, 2, 3, 6881),
      addr4(172, 20, 0, 1, 6881),  addr4(192, 168, 0, 9, 6881),
      addr4(169, 254, 0, 1, 6881), addr4(100, 64, 0, 1, 6881),
  };
  mdht_id pids[6];
  for (size_t i = 0; i < 6; i++) {
    pids[i] = id_at(f, (int)i);
    assert_int_equal(heard(f, &pids[i], &privs[i], MDHT_RT_HEARD_REPLY, T0),
                     MDHT_RT_IGNORED);
  }
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 0);
  uint32_t total;
  mdht_rtable_counts(&f->rt, T0, NULL, NULL, &total, NULL);
  assert_int_equal(total, 0);

  /* When we live on a private network, its addresses are fine; martians
   * still are not. */
  f->cfg.allow_private = true;
  for (size_t i = 0; i < 6; i++)
    assert_int_equal(heard(f, &pids[i], &privs[i], MDHT_RT_HEARD_REPLY, T0),
                     MDHT_RT_ADDED);
  mdht_id mid = id_at(f, 9);
  assert_int_equal(heard(f, &mid, &martians[0], MDHT_RT_HEARD_REPLY, T0),
                   MDHT_RT_IGNORED);
  check_invariants(f);
  f->cfg.allow_private = false;
}

static void test_identity_conflicts(void **state) {
  fx *f = *state;
  mdht_id id = id_at(f, 0);
  mdht_addr a = new_addr(f);
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);

  /* Same ip:port, other id: ignored, and the entry is untouched. */
  mdht_id other = id_at(f, 0);
  assert_int_equal(heard(f, &other, &a, MDHT_RT_HEARD_REPLY, T0 + 5),
                   MDHT_RT_IGNORED);
  mdht_id far = id_at(f, 7); /* also when the new id is in another bucket */
  assert_int_equal(heard(f, &far, &a, MDHT_RT_HEARD_QUERY, T0 + 5),
                   MDHT_RT_IGNORED);
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &a);
  assert_true(mdht_id_eq(&e->id, &id));
  assert_int_equal(e->last_reply, T0);
  assert_int_equal(e->last_query, 0);

  /* Same id, other address (other port or other ip): ignored. */
  mdht_addr b = a;
  b.port = 6882;
  assert_int_equal(heard(f, &id, &b, MDHT_RT_HEARD_REPLY, T0 + 6),
                   MDHT_RT_IGNORED);
  mdht_addr c = new_addr(f);
  assert_int_equal(heard(f, &id, &c, MDHT_RT_HEARD_REPLY, T0 + 6),
                   MDHT_RT_IGNORED);
  assert_null(mdht_rtable_find(&f->rt, &b));
  assert_null(mdht_rtable_find(&f->rt, &c));

  /* A failure reported under the wrong id does not count. */
  mdht_rtable_failed(&f->rt, &other, &a, T0 + 7);
  assert_int_equal(mdht_rtable_find(&f->rt, &a)->fails, 0);

  /* The same rules hold for replacement candidates. */
  mdht_id ids[8];
  mdht_addr addrs[8];
  fx_reinit(f, 8);
  fill_far_bucket(f, ids, addrs);
  mdht_id cand = id_at(f, 0);
  mdht_addr ca = new_addr(f);
  assert_int_equal(heard(f, &cand, &ca, MDHT_RT_HEARD_REPLY, T0 + 10),
                   MDHT_RT_REPLACEMENT);
  mdht_id cand2 = id_at(f, 0);
  assert_int_equal(heard(f, &cand2, &ca, MDHT_RT_HEARD_REPLY, T0 + 11),
                   MDHT_RT_IGNORED);
  mdht_addr ca2 = new_addr(f);
  assert_int_equal(heard(f, &cand, &ca2, MDHT_RT_HEARD_REPLY, T0 + 11),
                   MDHT_RT_IGNORED);
  assert_int_equal(f->rt.buckets[0].nrepl, 1);
  check_invariants(f);
}

/* A node that restarted with a new id at the same endpoint takes the place
 * of its old, dead entry once it answers; it does not while the old entry
 * still answers, nor by merely querying us. */
static void test_restarted_node_replaces_bad_entry(void **state) {
  fx *f = *state;
  mdht_id old = id_at(f, 0);
  mdht_addr a = new_addr(f);
  assert_int_equal(heard(f, &old, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  mdht_id fresh = id_at(f, 3);
  for (uint32_t i = 0; i < f->cfg.max_fails; i++) {
    assert_int_equal(heard(f, &fresh, &a, MDHT_RT_HEARD_REPLY, T0 + 1),
                     MDHT_RT_IGNORED);
    mdht_rtable_failed(&f->rt, &old, &a, T0 + 2 + i);
  }
  /* now bad: a query alone is not enough */
  assert_int_equal(heard(f, &fresh, &a, MDHT_RT_HEARD_QUERY, T0 + 10),
                   MDHT_RT_IGNORED);
  assert_int_equal(heard(f, &fresh, &a, MDHT_RT_HEARD_REPLY, T0 + 11),
                   MDHT_RT_ADDED);
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &a);
  assert_non_null(e);
  assert_true(mdht_id_eq(&e->id, &fresh));
  assert_int_equal(e->fails, 0);
  check_invariants(f);
}

static void test_split_single(void **state) {
  fx *f = *state;
  mdht_id far[8];
  for (int i = 0; i < 8; i++) {
    far[i] = id_at(f, 0);
    mdht_addr a = new_addr(f);
    assert_int_equal(heard(f, &far[i], &a, MDHT_RT_HEARD_REPLY, T0),
                     MDHT_RT_ADDED);
  }
  assert_int_equal(f->rt.nbuckets, 1);
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 0);

  /* The single bucket holds our id: it splits, but all 8 fall on the far
   * side, so the newcomer finds its bucket full of good nodes. */
  mdht_id x = id_at(f, 0);
  mdht_addr xa = new_addr(f);
  assert_int_equal(heard(f, &x, &xa, MDHT_RT_HEARD_REPLY, T0 + 1),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 1);
  mdht_event *sp = &f->last[MDHT_EV_BUCKET_SPLIT];
  assert_int_equal(sp->u.split.depth, 0);
  assert_int_equal(sp->u.split.buckets, 2);
  assert_int_equal(sp->now, T0 + 1);
  assert_int_equal(f->rt.buckets[0].n, 8);
  assert_int_equal(f->rt.buckets[1].n, 0);
  assert_int_equal(f->rt.buckets[0].nrepl, 1);

  /* Bucket 0 no longer holds our id: it never splits again. A querier
   * finds a place only while the list is not full of nodes that
   * answered. */
  for (int i = 0; i < 20; i++) {
    mdht_id y = id_at(f, 0);
    mdht_addr ya = new_addr(f);
    const mdht_rt_bucket *b0 = &f->rt.buckets[0];
    bool room = b0->nrepl < 8;
    for (uint32_t j = 0; j < b0->nrepl; j++)
      room = room || b0->repl[j].last_reply == 0;
    int r = heard(f, &y, &ya, i & 1 ? MDHT_RT_HEARD_QUERY : MDHT_RT_HEARD_REPLY,
                  T0 + 2);
    assert_int_equal(r,
                     (i & 1) && !room ? MDHT_RT_IGNORED : MDHT_RT_REPLACEMENT);
  }
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->rt.buckets[0].n, 8);
  assert_int_equal(f->rt.buckets[0].nrepl, 8);

  mdht_id n1 = id_at(f, 1);
  mdht_addr n1a = new_addr(f);
  assert_int_equal(heard(f, &n1, &n1a, MDHT_RT_HEARD_QUERY, T0 + 3),
                   MDHT_RT_ADDED);
  assert_int_equal(mdht_rtable_bucket_of(&f->rt, &n1), 1);
  check_invariants(f);
}

static void test_split_mixed(void **state) {
  fx *f = *state;
  for (int i = 0; i < 4; i++) {
    mdht_id a = id_at(f, 0), b = id_at(f, 5);
    mdht_addr aa = new_addr(f), ba = new_addr(f);
    assert_int_equal(heard(f, &a, &aa, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
    assert_int_equal(heard(f, &b, &ba, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  }
  assert_int_equal(f->rt.buckets[0].n, 8);
  /* A querier may split our bucket too. */
  mdht_id c2 = id_at(f, 2);
  mdht_addr c2a = new_addr(f);
  assert_int_equal(heard(f, &c2, &c2a, MDHT_RT_HEARD_QUERY, T0 + 1),
                   MDHT_RT_ADDED);
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->rt.buckets[0].n, 4);
  assert_int_equal(f->rt.buckets[1].n, 5);
  for (int i = 0; i < 3; i++) {
    mdht_id c1 = id_at(f, 1);
    mdht_addr c1a = new_addr(f);
    assert_int_equal(heard(f, &c1, &c1a, MDHT_RT_HEARD_REPLY, T0 + 2),
                     MDHT_RT_ADDED);
  }
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->rt.buckets[1].n, 8);
  mdht_id c1 = id_at(f, 1);
  mdht_addr c1a = new_addr(f);
  assert_int_equal(heard(f, &c1, &c1a, MDHT_RT_HEARD_REPLY, T0 + 3),
                   MDHT_RT_ADDED);
  assert_int_equal(f->rt.nbuckets, 3);
  assert_int_equal(f->rt.buckets[0].n, 4);
  assert_int_equal(f->rt.buckets[1].n, 4); /* 3 + newcomer */
  assert_int_equal(f->rt.buckets[2].n, 5); /* 4 at cp 5, 1 at cp 2 */
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 2);
  /* Splits keep the bucket's refresh time. */
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[2].last_changed),
                   T0 + 2);
  check_invariants(f);
}

static void test_split_repeated(void **state) {
  fx *f = *state;
  for (int i = 0; i < 8; i++) {
    mdht_id a = id_at(f, 3);
    mdht_addr aa = new_addr(f);
    assert_int_equal(heard(f, &a, &aa, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  }
  mdht_id x = id_at(f, 3);
  mdht_addr xa = new_addr(f);
  assert_int_equal(heard(f, &x, &xa, MDHT_RT_HEARD_REPLY, T0 + 1),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(f->rt.nbuckets, 5);
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 4);
  assert_int_equal(f->last[MDHT_EV_BUCKET_SPLIT].u.split.depth, 3);
  assert_int_equal(f->last[MDHT_EV_BUCKET_SPLIT].u.split.buckets, 5);
  uint8_t want[5] = {0, 0, 0, 8, 0};
  for (int i = 0; i < 5; i++)
    assert_int_equal(f->rt.buckets[i].n, want[i]);
  assert_int_equal(f->rt.buckets[3].nrepl, 1);
  mdht_id y = id_at(f, 10);
  mdht_addr ya = new_addr(f);
  assert_int_equal(heard(f, &y, &ya, MDHT_RT_HEARD_REPLY, T0 + 2),
                   MDHT_RT_ADDED);
  assert_int_equal(mdht_rtable_bucket_of(&f->rt, &y), 4);
  check_invariants(f);
}

static void test_split_to_the_end(void **state) {
  fx *f = *state;
  /* With k = 1 the nodes nearest to us drive the table to its full depth:
   * 160 buckets, the last one holding the one id that differs from ours
   * only in its last bit. */
  fx_reinit(f, 1);
  mdht_id sib = id_at(f, 159);
  mdht_addr sa = new_addr(f);
  assert_int_equal(heard(f, &sib, &sa, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  for (int cp = 158; cp >= 0; cp--) {
    mdht_id id = id_at(f, cp);
    mdht_addr a = new_addr(f);
    assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
    if (cp == 158) assert_int_equal(f->rt.nbuckets, 160);
  }
  assert_int_equal(f->rt.nbuckets, 160);
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 159);
  for (uint32_t i = 0; i < 160; i++)
    assert_int_equal(f->rt.buckets[i].n, 1);
  mdht_id again = id_at(f, 150); /* bucket 150 is full and not ours */
  mdht_addr aa = new_addr(f);
  assert_int_equal(heard(f, &again, &aa, MDHT_RT_HEARD_REPLY, T0),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(f->rt.nbuckets, 160);
  check_invariants(f);

  /* closest() walks all of them in order. */
  mdht_rt_entry out[200];
  size_t n = mdht_rtable_closest(&f->rt, &f->self, 0, out, 200, T0);
  assert_int_equal(n, 160);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(mdht_id_common_prefix(&out[i].id, &f->self), 159 - (int)i);
}

static void test_replacement_list(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_id cid[11];
  mdht_addr ca[11];
  for (int i = 0; i < 11; i++) {
    cid[i] = id_at(f, 0);
    ca[i] = new_addr(f);
    assert_int_equal(heard(f, &cid[i], &ca[i], MDHT_RT_HEARD_REPLY, T0 + 100),
                     MDHT_RT_REPLACEMENT);
  }
  mdht_rt_bucket *b = &f->rt.buckets[0];
  assert_int_equal(b->nrepl, 8);
  for (int i = 0; i < 8; i++) /* the 8 newest, newest last */
    assert_true(mdht_id_eq(&b->repl[i].id, &cid[3 + i]));
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 9);

  /* Heard again: moves to the newest place, not duplicated. */
  assert_int_equal(heard(f, &cid[5], &ca[5], MDHT_RT_HEARD_QUERY, T0 + 200),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(b->nrepl, 8);
  assert_true(mdht_id_eq(&b->repl[7].id, &cid[5]));
  assert_int_equal(b->repl[7].last_query, T0 + 200);
  assert_int_equal(b->repl[7].last_reply, T0 + 100); /* kept */
  assert_true(mdht_id_eq(&b->repl[2].id, &cid[6]));

  /* A dropped candidate is forgotten, so it may come back. */
  assert_int_equal(heard(f, &cid[0], &ca[0], MDHT_RT_HEARD_REPLY, T0 + 300),
                   MDHT_RT_REPLACEMENT);
  assert_true(mdht_id_eq(&b->repl[7].id, &cid[0]));
  assert_true(mdht_id_eq(&b->repl[0].id, &cid[4])); /* cid[3] dropped */
  assert_null(mdht_rtable_find(&f->rt, &ca[0]));
  check_invariants(f);

  /* Full list, all answered: a query-only newcomer displaces nobody (it
   * has not shown it answers) and is forgotten; one that answered pushes
   * out the oldest. */
  mdht_id oldest = b->repl[0].id;
  mdht_id q = id_at(f, 0);
  mdht_addr qa = new_addr(f);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 400),
                   MDHT_RT_IGNORED);
  assert_true(mdht_id_eq(&b->repl[0].id, &oldest));
  assert_int_equal(f->rt.index_.n, 8 + 8 + f->rt.buckets[1].n);
  oldest = b->repl[1].id;
  mdht_id r = id_at(f, 0);
  mdht_addr ra = new_addr(f);
  assert_int_equal(heard(f, &r, &ra, MDHT_RT_HEARD_REPLY, T0 + 500),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(b->nrepl, 8);
  assert_true(mdht_id_eq(&b->repl[0].id, &oldest));
  assert_true(mdht_id_eq(&b->repl[7].id, &r));
  for (int i = 0; i < 8; i++)
    assert_false(mdht_id_eq(&b->repl[i].id, &q));
  check_invariants(f);
}

static void test_states(void **state) {
  fx *f = *state;
  mdht_id id = id_at(f, 0);
  mdht_addr a = new_addr(f);
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &a);
  mdht_rtable *rt = &f->rt;
  assert_int_equal(mdht_rtable_state(rt, e, T0), MDHT_RT_GOOD);
  assert_int_equal(mdht_rtable_state(rt, e, T0 + FRESH - 1), MDHT_RT_GOOD);
  assert_int_equal(mdht_rtable_state(rt, e, T0 + FRESH), MDHT_RT_QUESTIONABLE);
  uint32_t g, q, t;
  mdht_rtable_counts(rt, T0 + FRESH, &g, &q, &t, NULL);
  assert_int_equal(g, 0);
  assert_int_equal(q, 1);
  assert_int_equal(t, 1);

  /* Having answered once, a recent query is enough to be good. */
  mdht_time t1 = T0 + 2 * FRESH;
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_QUERY, t1), MDHT_RT_UPDATED);
  e = mdht_rtable_find(rt, &a);
  assert_int_equal(mdht_rtable_state(rt, e, t1), MDHT_RT_GOOD);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + FRESH - 1), MDHT_RT_GOOD);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + FRESH), MDHT_RT_QUESTIONABLE);

  /* Failures: bad only at max_fails in a row, whatever the times say. */
  mdht_rtable_failed(rt, &id, &a, t1 + 1);
  mdht_rtable_failed(rt, &id, &a, t1 + 2);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + 3), MDHT_RT_GOOD);
  mdht_rtable_failed(rt, NULL, &a, t1 + 3); /* id unknown to the caller */
  assert_int_equal(e->fails, 3);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + 3), MDHT_RT_BAD);
  mdht_rtable_counts(rt, t1 + 3, &g, &q, &t, NULL);
  assert_int_equal(g + q, 0);
  assert_int_equal(t, 1);
  /* No candidate: the bad node stays. A query does not redeem it. */
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_QUERY, t1 + 4),
                   MDHT_RT_UPDATED);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + 4), MDHT_RT_BAD);
  /* An answer does. */
  assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, t1 + 5),
                   MDHT_RT_UPDATED);
  assert_int_equal(mdht_rtable_state(rt, e, t1 + 5), MDHT_RT_GOOD);

  /* A node that never answered is questionable from the start, however
   * often it queries us. */
  mdht_id qid = id_at(f, 1);
  mdht_addr qa = new_addr(f);
  assert_int_equal(heard(f, &qid, &qa, MDHT_RT_HEARD_QUERY, t1), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &qid, &qa, MDHT_RT_HEARD_QUERY, t1 + 1),
                   MDHT_RT_UPDATED);
  assert_int_equal(mdht_rtable_state(rt, mdht_rtable_find(rt, &qa), t1 + 1),
                   MDHT_RT_QUESTIONABLE);
}

static void test_bad_replaced_at_once(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &ids[4], &addrs[4], T0 + 10);
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &addrs[4]);
  assert_non_null(e); /* nothing to replace it with */
  assert_int_equal(mdht_rtable_state(&f->rt, e, T0 + 10), MDHT_RT_BAD);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 0);

  /* A querier does not evict, even a bad node. */
  mdht_id q = id_at(f, 0);
  mdht_addr qa = new_addr(f);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 20),
                   MDHT_RT_REPLACEMENT);
  assert_non_null(mdht_rtable_find(&f->rt, &addrs[4]));

  /* A node that answers takes the bad one's slot at once. */
  mdht_id r = id_at(f, 0);
  mdht_addr ra = new_addr(f);
  assert_int_equal(heard(f, &r, &ra, MDHT_RT_HEARD_REPLY, T0 + 30),
                   MDHT_RT_ADDED);
  assert_null(mdht_rtable_find(&f->rt, &addrs[4]));
  assert_non_null(mdht_rtable_find(&f->rt, &ra));
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 1);
  mdht_event *ev = &f->last[MDHT_EV_NODE_REPLACED];
  assert_true(mdht_id_eq(&ev->id, &r));
  assert_true(mdht_addr_eq(&ev->addr, &ra));
  assert_true(mdht_id_eq(&ev->u.replaced.old_id, &ids[4]));
  assert_true(mdht_addr_eq(&ev->u.replaced.old_addr, &addrs[4]));
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed),
                   T0 + 30);
  /* The old one is forgotten entirely: it may come back as new. */
  assert_int_equal(heard(f, &ids[4], &addrs[4], MDHT_RT_HEARD_REPLY, T0 + 40),
                   MDHT_RT_REPLACEMENT);
  check_invariants(f);
}

static void test_questionable_ping(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_time t1 = T0 + FRESH + 100;
  /* 3..7 (answered at T0+3..T0+7) are questionable now; 0 and 1 answer
   * again. */
  assert_int_equal(heard(f, &ids[0], &addrs[0], MDHT_RT_HEARD_REPLY, t1),
                   MDHT_RT_UPDATED);
  assert_int_equal(heard(f, &ids[1], &addrs[1], MDHT_RT_HEARD_REPLY, t1),
                   MDHT_RT_UPDATED);
  /* 2 answered long ago and queried us just now: good again (BEP 5). */
  assert_int_equal(heard(f, &ids[2], &addrs[2], MDHT_RT_HEARD_QUERY, t1 - 1),
                   MDHT_RT_UPDATED);
  assert_int_equal(
      mdht_rtable_state(&f->rt, mdht_rtable_find(&f->rt, &addrs[2]), t1),
      MDHT_RT_GOOD);

  mdht_rt_entry ping;
  mdht_id a = id_at(f, 0);
  mdht_addr aa = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &a, &aa, MDHT_RT_HEARD_REPLY, t1, &ping),
      MDHT_RT_PING);
  assert_true(mdht_id_eq(&ping.id, &ids[3])); /* least recently seen */
  mdht_addr pa = mdht_rtable_addr(&f->rt, &ping);
  assert_true(mdht_addr_eq(&pa, &addrs[3]));
  assert_int_equal(mdht_rtable_find(&f->rt, &addrs[3])->last_ping, t1);
  assert_int_equal(f->rt.buckets[0].nrepl, 1);
  assert_true(mdht_id_eq(&f->rt.buckets[0].repl[0].id, &a));

  /* While that ping is in flight, the next newcomer names the next one. */
  mdht_id b = id_at(f, 0);
  mdht_addr ba = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &b, &ba, MDHT_RT_HEARD_REPLY, t1 + 1, &ping),
      MDHT_RT_PING);
  assert_true(mdht_id_eq(&ping.id, &ids[4]));

  /* A querier is only kept as a candidate. */
  mdht_id q = id_at(f, 0);
  mdht_addr qa = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &q, &qa, MDHT_RT_HEARD_QUERY, t1 + 2, &ping),
      MDHT_RT_REPLACEMENT);
  /* No place to name a node: plain candidate. */
  mdht_id n = id_at(f, 0);
  mdht_addr na = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &n, &na, MDHT_RT_HEARD_REPLY, t1 + 3, NULL),
      MDHT_RT_REPLACEMENT);

  /* Once every questionable node has a ping in flight, a newcomer waits. */
  for (int i = 5; i < 8; i++) {
    mdht_id c = id_at(f, 0);
    mdht_addr cadr = new_addr(f);
    assert_int_equal(mdht_rtable_heard(&f->rt, &c, &cadr, MDHT_RT_HEARD_REPLY,
                                       t1 + 4, &ping),
                     MDHT_RT_PING);
    assert_true(mdht_id_eq(&ping.id, &ids[i]));
  }
  mdht_id w = id_at(f, 0);
  mdht_addr wa = new_addr(f);
  assert_int_equal(
      mdht_rtable_heard(&f->rt, &w, &wa, MDHT_RT_HEARD_REPLY, t1 + 5, &ping),
      MDHT_RT_REPLACEMENT);
  assert_int_equal(f->rt.buckets[0].nrepl, 8);

  /* The first ping timed out (failed once); after the query timeout the
   * node may be named again. */
  mdht_rtable_failed(&f->rt, &ids[3], &addrs[3], t1 + TIMEOUT);
  mdht_id d = id_at(f, 0);
  mdht_addr da = new_addr(f);
  assert_int_equal(mdht_rtable_heard(&f->rt, &d, &da, MDHT_RT_HEARD_REPLY,
                                     t1 + TIMEOUT, &ping),
                   MDHT_RT_PING);
  assert_true(mdht_id_eq(&ping.id, &ids[3]));

  /* Two more failures make it bad: the newest candidate that answered
   * (d; w and the rest answered too, but d is newest) replaces it. */
  mdht_rtable_failed(&f->rt, &ids[3], &addrs[3], t1 + 2 * TIMEOUT);
  assert_non_null(mdht_rtable_find(&f->rt, &addrs[3]));
  mdht_rtable_failed(&f->rt, &ids[3], &addrs[3], t1 + 3 * TIMEOUT);
  assert_null(mdht_rtable_find(&f->rt, &addrs[3]));
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &da);
  assert_non_null(e);
  assert_true(mdht_id_eq(&e->id, &d));
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 1);
  assert_true(
      mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].u.replaced.old_id, &ids[3]));
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed),
                   t1 + 3 * TIMEOUT);
  check_invariants(f);
}

static void test_failed_prefers_answered(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_id a1 = id_at(f, 0), a2 = id_at(f, 0), q = id_at(f, 0);
  mdht_addr a1a = new_addr(f), a2a = new_addr(f), qa = new_addr(f);
  assert_int_equal(heard(f, &a1, &a1a, MDHT_RT_HEARD_REPLY, T0 + 10),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(heard(f, &a2, &a2a, MDHT_RT_HEARD_REPLY, T0 + 11),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 12),
                   MDHT_RT_REPLACEMENT);

  /* Newest that answered first, though q is newer. */
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &ids[0], &addrs[0], T0 + 20);
  assert_non_null(mdht_rtable_find(&f->rt, &a2a));
  assert_null(mdht_rtable_find(&f->rt, &addrs[0]));
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &ids[1], &addrs[1], T0 + 21);
  assert_non_null(mdht_rtable_find(&f->rt, &a1a));
  /* Then whoever is left. */
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &ids[2], &addrs[2], T0 + 22);
  assert_non_null(mdht_rtable_find(&f->rt, &qa));
  assert_int_equal(f->rt.buckets[0].nrepl, 0);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 3);
  /* And with nobody left, a bad node stays. */
  for (int i = 0; i < 5; i++)
    mdht_rtable_failed(&f->rt, &ids[3], &addrs[3], T0 + 23);
  mdht_rt_entry *e = mdht_rtable_find(&f->rt, &addrs[3]);
  assert_non_null(e);
  assert_int_equal(mdht_rtable_state(&f->rt, e, T0 + 23), MDHT_RT_BAD);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 3);
  check_invariants(f);
}

static void test_failed_candidate_and_unknown(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_id c = id_at(f, 0), d = id_at(f, 0);
  mdht_addr ca = new_addr(f), da = new_addr(f);
  assert_int_equal(heard(f, &c, &ca, MDHT_RT_HEARD_REPLY, T0 + 10),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(heard(f, &d, &da, MDHT_RT_HEARD_REPLY, T0 + 10),
                   MDHT_RT_REPLACEMENT);
  /* Wrong id, unknown address: nothing happens. */
  mdht_rtable_failed(&f->rt, &d, &ca, T0 + 11);
  mdht_addr unknown = new_addr(f);
  mdht_rtable_failed(&f->rt, NULL, &unknown, T0 + 11);
  mdht_rtable_failed(&f->rt, &ids[0], &addrs[1], T0 + 11);
  assert_int_equal(f->rt.buckets[0].nrepl, 2);
  assert_int_equal(mdht_rtable_find(&f->rt, &addrs[1])->fails, 0);
  /* A candidate that fails once is dropped. */
  mdht_rtable_failed(&f->rt, NULL, &ca, T0 + 12);
  assert_int_equal(f->rt.buckets[0].nrepl, 1);
  assert_true(mdht_id_eq(&f->rt.buckets[0].repl[0].id, &d));
  check_invariants(f);
  /* and forgotten: another id may now use that endpoint. */
  mdht_id e = id_at(f, 0);
  assert_int_equal(heard(f, &e, &ca, MDHT_RT_HEARD_REPLY, T0 + 13),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(f->count[MDHT_EV_NODE_REMOVED], 0);
  check_invariants(f);
}

static void test_remove(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_id q = id_at(f, 0), a = id_at(f, 0);
  mdht_addr qa = new_addr(f), aa = new_addr(f);
  assert_int_equal(heard(f, &a, &aa, MDHT_RT_HEARD_REPLY, T0 + 10),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 11),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(mdht_rtable_remove(&f->rt, &ids[1], &addrs[0], T0 + 20),
                   MDHT_ERR_NOTFOUND);
  mdht_addr unknown = new_addr(f);
  assert_int_equal(mdht_rtable_remove(&f->rt, NULL, &unknown, T0 + 20),
                   MDHT_ERR_NOTFOUND);
  assert_int_equal(mdht_rtable_remove(&f->rt, &ids[0], &addrs[0], T0 + 20), 0);
  assert_null(mdht_rtable_find(&f->rt, &addrs[0]));
  assert_int_equal(f->count[MDHT_EV_NODE_REMOVED], 1);
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_REMOVED].id, &ids[0]));
  /* The freed slot goes to the candidate that answered. */
  assert_non_null(mdht_rtable_find(&f->rt, &aa));
  assert_true(mdht_id_eq(&f->last[MDHT_EV_NODE_ADDED].id, &a));
  assert_int_equal(f->rt.buckets[0].n, 8);
  /* Removing a candidate. */
  assert_int_equal(mdht_rtable_remove(&f->rt, &q, &qa, T0 + 21), 0);
  assert_int_equal(f->rt.buckets[0].nrepl, 0);
  assert_int_equal(mdht_rtable_remove(&f->rt, &q, &qa, T0 + 21),
                   MDHT_ERR_NOTFOUND);
  /* Removing with an empty list leaves room for the next one. */
  assert_int_equal(mdht_rtable_remove(&f->rt, NULL, &addrs[1], T0 + 22), 0);
  assert_int_equal(f->rt.buckets[0].n, 7);
  assert_int_equal(heard(f, &q, &qa, MDHT_RT_HEARD_QUERY, T0 + 23),
                   MDHT_RT_ADDED);
  check_invariants(f);
}

static void test_no_bus(void **state) {
  fx *f = *state;
  mdht_rtable rt;
  assert_int_equal(mdht_rtable_init(&rt, &f->self, &f->cfg, NULL, 5), 0);
  for (int i = 0; i < 40; i++) {
    mdht_id id = id_at(f, i % 4);
    mdht_addr a = new_addr(f);
    assert_true(mdht_rtable_heard(&rt, &id, &a, MDHT_RT_HEARD_REPLY, T0, NULL) >
                0);
    if (i % 5 == 0)
      for (int j = 0; j < 3; j++)
        mdht_rtable_failed(&rt, &id, &a, T0);
  }
  assert_true(rt.nbuckets > 1);
  mdht_rtable_free(&rt);
}

/* --------------------------------------------------- closest() checks */

typedef struct ref_entry {
  mdht_id id;
  mdht_addr addr;
} ref_entry;

static void ref_sort(ref_entry *v, size_t n, const mdht_id *target) {
  for (size_t i = 1; i < n; i++) {
    ref_entry x = v[i];
    size_t j = i;
    while (j > 0 && mdht_id_cmp_dist(target, &x.id, &v[j - 1].id) < 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
}

static void test_closest_bruteforce(void **state) {
  fx *f = *state;
  enum { N = 400 };
  ref_entry *ins = calloc(N, sizeof *ins);
  ref_entry *ref = calloc(N, sizeof *ref);
  mdht_rt_entry *out = calloc(N + 10, sizeof *out);
  assert_non_null(ins);
  assert_non_null(ref);
  assert_non_null(out);
  uint64_t s = 777;
  mdht_time now = T0;
  for (int i = 0; i < N; i++) {
    uint64_t r = rng_next(&s);
    /* Mostly far ids, some close ones, like a real network. */
    int cp = (int)(r % 3 == 0 ? rng_next(&s) % 24 : rng_next(&s) % 4);
    ins[i].id = id_at(f, cp);
    ins[i].addr = (r >> 8) % 3 == 0 ? new_addr6(f) : new_addr(f);
    mdht_rt_how how =
        (r >> 16) % 4 == 0 ? MDHT_RT_HEARD_QUERY : MDHT_RT_HEARD_REPLY;
    now += rng_next(&s) % 5000;
    assert_true(heard(f, &ins[i].id, &ins[i].addr, how, now) > 0);
    if ((r >> 24) % 10 == 0) /* some turn bad */
      for (int j = 0; j < 3; j++)
        mdht_rtable_failed(&f->rt, &ins[i].id, &ins[i].addr, now);
    else if ((r >> 24) % 10 == 1) /* some fail once, still eligible */
      mdht_rtable_failed(&f->rt, &ins[i].id, &ins[i].addr, now);
  }
  check_invariants(f);
  assert_true(f->rt.nbuckets >= 4);

  size_t sizes[] = {1, 3, 8, 16, 50, N + 10};
  int families[] = {0, MDHT_AF_INET, MDHT_AF_INET6};
  size_t nonempty = 0;
  for (int trial = 0; trial < 300; trial++) {
    mdht_id target;
    uint64_t r = rng_next(&s);
    switch (r % 4) {
    case 0:
      rng_fill(&s, target.b, MDHT_ID_LEN);
      break;
    case 1:
      target = id_at(f, (int)(rng_next(&s) % 30));
      break;
    case 2:
      target = f->self;
      break;
    default:
      target = ins[rng_next(&s) % N].id;
      break;
    }
    int fam = families[(r >> 8) % 3];
    /* Time passes too: the eligibility rule does not depend on it except
     * through badness, which it must not. */
    mdht_time at = now + (r >> 16) % (3 * FRESH);

    /* Reference: what was inserted, as far as it is in a bucket now
     * (found through the address index), eligible, sorted by distance. */
    size_t nref = 0;
    for (int i = 0; i < N; i++) {
      mdht_rt_entry *e = mdht_rtable_find(&f->rt, &ins[i].addr);
      if (!e || !mdht_id_eq(&e->id, &ins[i].id)) continue;
      if (e->last_reply == 0 || mdht_rtable_state(&f->rt, e, at) == MDHT_RT_BAD)
        continue;
      if (fam && mdht_rt_entry_family(e) != fam) continue;
      ref[nref++] = ins[i];
    }
    ref_sort(ref, nref, &target);

    size_t want = sizes[(r >> 24) % 6];
    size_t got = mdht_rtable_closest(&f->rt, &target, fam, out, want, at);
    assert_int_equal(got, want < nref ? want : nref);
    for (size_t i = 0; i < got; i++) {
      assert_true(mdht_id_eq(&out[i].id, &ref[i].id));
      mdht_addr oa = mdht_rtable_addr(&f->rt, &out[i]);
      assert_true(mdht_addr_eq(&oa, &ref[i].addr));
    }
    nonempty += got > 0;
  }
  assert_true(nonempty > 250);
  assert_int_equal(mdht_rtable_closest(&f->rt, &f->self, 0, out, 0, now), 0);
  free(ins);
  free(ref);
  free(out);
}

/* Random operations of every kind; structure and events must stay
 * consistent throughout. */
/* The address index holds 8 bytes per slot, the key's hash and the id's
 * prefix length, and confirms a hit in the bucket. Two entries of one
 * bucket whose IPs hash alike have equal slots: each stays findable while
 * the other comes and goes, and removing them in either order empties the
 * index. */
typedef struct hash_ix {
  uint32_t hash, n;
} hash_ix;

static int cmp_hash_ix(const void *a, const void *b) {
  const hash_ix *x = a, *y = b;
  return x->hash < y->hash ? -1 : x->hash > y->hash;
}

static mdht_addr addr_n(uint32_t n) {
  return addr4((uint8_t)(1 + (n >> 16)), (uint8_t)(n >> 8), (uint8_t)n, 1,
               6881);
}

static void test_index_equal_slots(void **state) {
  fx *f = *state;
  assert_true(f->rt.one_per_ip_); /* keyed by IP: port 0 in the hash */
  enum { N = 1 << 18 };
  hash_ix *v = malloc(N * sizeof *v);
  assert_non_null(v);
  for (uint32_t n = 0; n < N; n++) {
    mdht_addr a = addr_n(n);
    a.port = 0;
    v[n] = (hash_ix){mdht_addr_hash(&a, f->rt.hash_seed), n};
  }
  qsort(v, N, sizeof *v, cmp_hash_ix);
  uint32_t i = 0;
  while (i + 1 < N && v[i].hash != v[i + 1].hash)
    i++;
  assert_true(i + 1 < N); /* 2^18 draws of 32 bits: a pair is all but sure */
  mdht_addr a = addr_n(v[i].n), b = addr_n(v[i + 1].n);
  free(v);

  mdht_id ia = id_at(f, 0), ib = id_at(f, 0);
  assert_int_equal(heard(f, &ia, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &ib, &b, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  check_invariants(f);
  assert_true(mdht_id_eq(&mdht_rtable_find(&f->rt, &a)->id, &ia));
  assert_true(mdht_id_eq(&mdht_rtable_find(&f->rt, &b)->id, &ib));
  assert_int_equal(mdht_rtable_remove(&f->rt, &ia, &a, T0), 0);
  assert_null(mdht_rtable_find(&f->rt, &a));
  assert_true(mdht_id_eq(&mdht_rtable_find(&f->rt, &b)->id, &ib));
  assert_int_equal(f->rt.index_.n, 1);
  /* back, then the other one goes first */
  assert_int_equal(heard(f, &ia, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  assert_int_equal(mdht_rtable_remove(&f->rt, &ib, &b, T0), 0);
  assert_null(mdht_rtable_find(&f->rt, &b));
  assert_true(mdht_id_eq(&mdht_rtable_find(&f->rt, &a)->id, &ia));
  assert_int_equal(mdht_rtable_remove(&f->rt, &ia, &a, T0), 0);
  assert_int_equal(f->rt.index_.n, 0);
  for (uint32_t j = 0; j < f->rt.index_.cap; j++)
    assert_int_equal(((const uint32_t *)f->rt.index_.slots)[j], 0);
}

/* The index costs 4 bytes a slot: filled to 3/5 to 3/4 (it grows by a
 * quarter), so 4/3 to 5/3 slots per entry, 5.3 to 6.7 bytes per entry
 * (it was 80 to 160, then 16 to 32, then 8 to 16 at a load of 1/2, then
 * 5.3 to 10.7 growing by doubling). Splits move entries between buckets
 * without touching it, and every entry stays findable. */
static void test_index_size_and_splits(void **state) {
  fx *f = *state;
  for (int i = 0; i < 600; i++) {
    mdht_id id = id_at(f, i % 24);
    mdht_addr a = new_addr(f);
    heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0 + (mdht_time)i);
  }
  check_invariants(f);
  assert_true(f->rt.nbuckets > 10);
  uint32_t held = f->rt.index_.n;
  assert_true(held > 150);
  assert_true(f->rt.index_.cap * 3 <= 5 * held + 48); /* + rounding to 16 */
  assert_true(f->rt.index_.cap * 3 >= 4 * held);
  assert_true(malloc_usable_size(f->rt.index_.slots) <=
              4 * f->rt.index_.cap + 32);
}

static void test_random_ops(void **state) {
  fx *f = *state;
  fx_reinit(f, 4);
  enum { POOL = 600 };
  ref_entry *pool = calloc(POOL, sizeof *pool);
  assert_non_null(pool);
  for (int i = 0; i < POOL; i++) {
    pool[i].id = id_at(f, (int)(rng_next(&f->rng) % 12));
    pool[i].addr = i % 2 ? new_addr6(f) : new_addr(f);
  }
  uint64_t s = 2024;
  mdht_time now = T0;
  int results[MDHT_RT_IGNORED + 1] = {0};
  for (int step = 0; step < 20000; step++) {
    uint64_t r = rng_next(&s);
    ref_entry *p = &pool[(r >> 8) % POOL];
    now += (r >> 40) % 20000;
    switch (r % 8) {
    case 0:
    case 1:
    case 2: {
      mdht_rt_entry ping;
      int res = mdht_rtable_heard(&f->rt, &p->id, &p->addr, MDHT_RT_HEARD_REPLY,
                                  now, &ping);
      assert_true(res >= MDHT_RT_ADDED && res <= MDHT_RT_IGNORED);
      results[res]++;
      if (res == MDHT_RT_PING) {
        mdht_addr pa = mdht_rtable_addr(&f->rt, &ping);
        mdht_rt_entry *e = mdht_rtable_find(&f->rt, &pa);
        assert_non_null(e);
        assert_int_equal(mdht_rtable_state(&f->rt, e, now),
                         MDHT_RT_QUESTIONABLE);
      }
      break;
    }
    case 3:
      results[heard(f, &p->id, &p->addr, MDHT_RT_HEARD_QUERY, now)]++;
      break;
    case 4:
    case 5:
      mdht_rtable_failed(&f->rt, (r >> 32) & 1 ? &p->id : NULL, &p->addr, now);
      break;
    case 6:
      mdht_rtable_remove(&f->rt, &p->id, &p->addr, now);
      break;
    default: {
      /* An impostor: a pool address with a fresh id, or the reverse. */
      mdht_id id = id_at(f, (int)((r >> 32) % 12));
      bool known = mdht_rtable_find(&f->rt, &p->addr) != NULL;
      int res = heard(f, &id, &p->addr, MDHT_RT_HEARD_REPLY, now);
      if (known) assert_int_equal(res, MDHT_RT_IGNORED);
      break;
    }
    }
    if (step % 500 == 0) check_invariants(f);
  }
  check_invariants(f);
  for (int i = MDHT_RT_ADDED; i <= MDHT_RT_IGNORED; i++)
    assert_true(results[i] > 0);
  /* Every pool node that is in a bucket is closest-eligible exactly when
   * it answered and is not bad. */
  mdht_rt_entry out[POOL];
  size_t n = mdht_rtable_closest(&f->rt, &f->self, 0, out, POOL, now);
  size_t eligible = 0;
  for (uint32_t bi = 0; bi < f->rt.nbuckets; bi++)
    for (uint32_t i = 0; i < f->rt.buckets[bi].n; i++) {
      mdht_rt_entry *e = &f->rt.buckets[bi].nodes[i];
      eligible += e->last_reply != 0 &&
                  mdht_rtable_state(&f->rt, e, now) != MDHT_RT_BAD;
    }
  assert_int_equal(n, eligible);
  free(pool);
}

/* ------------------------------------------------- one host, one entry */

/* An id sharing exactly `cp` bits with ours, BEP 42-valid for the IP of
 * `a` where possible: the first 21 bits are fixed by the IP, so this
 * changes the address's host part until they fall at depth `cp` (cp is
 * small here). */
static mdht_id valid_id_at(fx *f, int cp, mdht_addr *a) {
  for (;;) {
    uint8_t r[MDHT_ID_LEN];
    rng_fill(&f->rng, r, sizeof r);
    mdht_id id;
    mdht_bep42_make(&id, a, r);
    if (mdht_id_common_prefix(&id, &f->self) == cp) return id;
    *a = new_addr(f);
  }
}

static void test_one_entry_per_ip(void **state) {
  fx *f = *state;
  /* One public IP, 160 ports, ids spread over every depth, all
   * answering: one entry. */
  int added = 0;
  for (int i = 0; i < 160; i++) {
    mdht_id id = id_at(f, i % 40);
    mdht_addr a = addr4(5, 6, 7, 8, (uint16_t)(1000 + i));
    int r = heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0 + (mdht_time)i);
    added += r == MDHT_RT_ADDED;
    if (i > 0) assert_int_equal(r, MDHT_RT_IGNORED);
  }
  assert_int_equal(added, 1);
  uint32_t t, r;
  mdht_rtable_counts(&f->rt, T0, NULL, NULL, &t, &r);
  assert_int_equal(t + r, 1);
  check_invariants(f);

  /* Loopback too, replacement lists included. */
  fx_reinit(f, 2);
  f->cfg.allow_private = true;
  for (int i = 0; i < 50; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = addr4(127, 0, 0, 9, (uint16_t)(1000 + i));
    heard(f, &id, &a, i & 1 ? MDHT_RT_HEARD_QUERY : MDHT_RT_HEARD_REPLY, T0);
  }
  mdht_rtable_counts(&f->rt, T0, NULL, NULL, &t, &r);
  assert_int_equal(t + r, 1);
  check_invariants(f);
}

static void test_same_ip_allowed(void **state) {
  fx *f = *state;
  mdht_rtable_free(&f->rt);
  f->cfg.allow_same_ip = true;
  f->cfg.allow_same_prefix = true;
  assert_int_equal(mdht_rtable_init(&f->rt, &f->self, &f->cfg, &f->bus, 7), 0);
  for (int i = 0; i < 40; i++) {
    mdht_id id = id_at(f, i % 10);
    mdht_addr a = addr4(5, 6, 7, 8, (uint16_t)(1000 + i));
    assert_int_not_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0),
                         MDHT_RT_IGNORED);
  }
  uint32_t t;
  mdht_rtable_counts(&f->rt, T0, NULL, NULL, &t, NULL);
  assert_true(t >= 30);
  check_invariants(f);
}

/* A node that came back on another port takes the place of its dead
 * entry, if it answers; a mere query does not. */
static void test_same_ip_bad_entry_gives_way(void **state) {
  fx *f = *state;
  mdht_id old = id_at(f, 0), neu = id_at(f, 0);
  mdht_addr oa = addr4(5, 6, 7, 8, 1000), na = addr4(5, 6, 7, 8, 2000);
  assert_int_equal(heard(f, &old, &oa, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &neu, &na, MDHT_RT_HEARD_REPLY, T0 + 1),
                   MDHT_RT_IGNORED);
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &old, &oa, T0 + 2);
  assert_int_equal(heard(f, &neu, &na, MDHT_RT_HEARD_QUERY, T0 + 3),
                   MDHT_RT_IGNORED);
  assert_int_equal(heard(f, &neu, &na, MDHT_RT_HEARD_REPLY, T0 + 4),
                   MDHT_RT_ADDED);
  assert_null(mdht_rtable_find(&f->rt, &oa));
  assert_non_null(mdht_rtable_find(&f->rt, &na));
  check_invariants(f);
}

static mdht_addr addr6(uint8_t net, uint8_t sub, uint8_t host) {
  mdht_addr r;
  memset(&r, 0, sizeof r);
  r.family = MDHT_AF_INET6;
  r.ip[0] = 0x2a;
  r.ip[1] = 0x01;
  r.ip[7] = net; /* /64 */
  r.ip[8] = sub; /* inside the /64 */
  r.ip[15] = host;
  r.port = 6881;
  return r;
}

static void test_one_entry_per_prefix(void **state) {
  fx *f = *state;
  /* Public /24: one per bucket; another bucket may hold another. */
  mdht_id a0 = id_at(f, 0), a1 = id_at(f, 0), b1 = id_at(f, 1);
  mdht_addr x = addr4(9, 9, 9, 1, 1), y = addr4(9, 9, 9, 2, 1),
            z = addr4(9, 9, 9, 3, 1), w = addr4(9, 9, 10, 1, 1);
  assert_int_equal(heard(f, &a0, &x, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &a1, &y, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_IGNORED);
  assert_int_equal(heard(f, &a1, &w, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  /* Split the single bucket so that bucket 1 exists, then a /24 already
   * used in bucket 0 is fine in bucket 1. */
  for (int i = 0; i < 8; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = new_addr(f);
    heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0);
  }
  assert_true(f->rt.nbuckets >= 2);
  assert_int_equal(heard(f, &b1, &z, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  check_invariants(f);

  /* Public /64 likewise; another /64 is fine. */
  mdht_id c0 = id_at(f, 0), c1 = id_at(f, 0), c2 = id_at(f, 0);
  mdht_addr p = addr6(1, 1, 1), q = addr6(1, 2, 2), r = addr6(2, 1, 1);
  assert_int_not_equal(heard(f, &c0, &p, MDHT_RT_HEARD_REPLY, T0),
                       MDHT_RT_IGNORED);
  assert_int_equal(heard(f, &c1, &q, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_IGNORED);
  assert_int_not_equal(heard(f, &c2, &r, MDHT_RT_HEARD_REPLY, T0),
                       MDHT_RT_IGNORED);
  check_invariants(f);

  /* Private addresses: the prefix rule does not apply (a LAN is one
   * /24), the IP rule does. */
  fx_reinit(f, 8);
  f->cfg.allow_private = true;
  for (int i = 0; i < 6; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = addr4(10, 0, 0, (uint8_t)(1 + i), 6881);
    assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  }
  check_invariants(f);

  /* allow_same_prefix lifts it. */
  fx_reinit(f, 8);
  f->cfg.allow_same_prefix = true;
  for (int i = 0; i < 6; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = addr4(9, 9, 9, (uint8_t)(1 + i), 6881);
    assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  }
  check_invariants(f);
}

/* A prefix held by a bad node is free for a newcomer that answers. */
static void test_prefix_bad_entry_gives_way(void **state) {
  fx *f = *state;
  mdht_id a = id_at(f, 0), b = id_at(f, 0);
  mdht_addr x = addr4(9, 9, 9, 1, 1), y = addr4(9, 9, 9, 2, 1);
  assert_int_equal(heard(f, &a, &x, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &a, &x, T0 + 1);
  assert_int_equal(heard(f, &b, &y, MDHT_RT_HEARD_QUERY, T0 + 2),
                   MDHT_RT_IGNORED);
  assert_int_equal(heard(f, &b, &y, MDHT_RT_HEARD_REPLY, T0 + 3),
                   MDHT_RT_ADDED);
  assert_null(mdht_rtable_find(&f->rt, &x));
  check_invariants(f);
}

/* Queriers never push a node that answered out of a replacement list. */
static void test_never_answered_never_displaces(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs);
  mdht_rt_bucket *b = &f->rt.buckets[0];
  mdht_id kept[8];
  for (int i = 0; i < 8; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = new_addr(f);
    assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_REPLY, T0 + 10),
                     MDHT_RT_REPLACEMENT);
    kept[i] = id;
  }
  for (int i = 0; i < 100; i++) {
    mdht_id id = id_at(f, 0);
    mdht_addr a = new_addr(f);
    assert_int_equal(heard(f, &id, &a, MDHT_RT_HEARD_QUERY, T0 + 20),
                     MDHT_RT_IGNORED);
    assert_null(mdht_rtable_find(&f->rt, &a));
  }
  assert_int_equal(b->nrepl, 8);
  for (int i = 0; i < 8; i++) {
    assert_true(mdht_id_eq(&b->repl[i].id, &kept[i]));
    assert_true(mdht_id_eq(&b->nodes[i].id, &ids[i]));
  }
  check_invariants(f);
}

/* "Valid id wins" (rtable.h). */
static void test_valid_id_wins(void **state) {
  fx *f = *state;
  mdht_id ids[8];
  mdht_addr addrs[8];
  fill_far_bucket(f, ids, addrs); /* random ids: invalid for their IPs */
  for (int i = 0; i < 8; i++)
    assert_false(mdht_bep42_valid(&ids[i], &addrs[i]));
  mdht_rt_bucket *b = &f->rt.buckets[0];

  /* While they are good, a valid newcomer waits like anyone. */
  mdht_addr va = new_addr(f);
  mdht_id v = valid_id_at(f, 0, &va);
  assert_int_equal(heard(f, &v, &va, MDHT_RT_HEARD_REPLY, T0 + 100),
                   MDHT_RT_REPLACEMENT);
  assert_null(mdht_rtable_find(&f->rt, &va));

  /* Questionable: an invalid newcomer that answers waits for the ping;
   * a valid one takes the slot of the least recently seen at once. */
  mdht_time later = T0 + FRESH + 100;
  mdht_id inv = id_at(f, 0);
  mdht_addr ia = new_addr(f);
  assert_int_equal(heard(f, &inv, &ia, MDHT_RT_HEARD_REPLY, later),
                   MDHT_RT_PING);
  assert_null(mdht_rtable_find(&f->rt, &ia));
  mdht_addr wa = new_addr(f);
  mdht_id w = valid_id_at(f, 0, &wa);
  int replaced = f->count[MDHT_EV_NODE_REPLACED];
  assert_int_equal(heard(f, &w, &wa, MDHT_RT_HEARD_REPLY, later + 1),
                   MDHT_RT_ADDED);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], replaced + 1);
  assert_true(
      mdht_id_eq(&f->last[MDHT_EV_NODE_REPLACED].u.replaced.old_id, &ids[0]));
  assert_non_null(mdht_rtable_find(&f->rt, &wa));
  assert_int_equal(b->n, 8);
  /* The displaced node waits among the candidates. */
  bool in_repl = false;
  for (uint32_t i = 0; i < b->nrepl; i++)
    in_repl = in_repl || mdht_id_eq(&b->repl[i].id, &ids[0]);
  assert_true(in_repl);
  check_invariants(f);

  /* Promotion prefers a valid id among candidates that answered: the
   * valid `v` (older) beats the invalid, newer ones. */
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(&f->rt, &ids[1], &addrs[1], later + 2);
  assert_non_null(mdht_rtable_find(&f->rt, &va));
  check_invariants(f);
}

/* Restoring saved state: two nodes of one public /24 that a deep table
 * holds in different buckets. Into a fresh table, in the order a save
 * writes them, the second is refused (both land in the one unsplit
 * bucket); after mdht_rtable_presplit to the saved depth, both fit, in
 * either order. Found by fuzz_state (a save/load round trip lost one). */
static void test_presplit_restores_prefix_twins(void **state) {
  fx *f = *state;
  mdht_id far = id_at(f, 0), near = id_at(f, 3);
  mdht_addr x = addr4(9, 9, 9, 1, 1), y = addr4(9, 9, 9, 2, 1);
  assert_int_equal(heard(f, &far, &x, MDHT_RT_HEARD_QUERY, T0), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &near, &y, MDHT_RT_HEARD_QUERY, T0),
                   MDHT_RT_IGNORED);
  for (int order = 0; order < 2; order++) {
    fx_reinit(f, 8);
    assert_int_equal(mdht_rtable_presplit(&f->rt, 4, T0), 0);
    assert_int_equal(f->rt.nbuckets, 4);
    assert_int_equal(heard(f, order ? &near : &far, order ? &y : &x,
                           MDHT_RT_HEARD_QUERY, T0),
                     MDHT_RT_ADDED);
    assert_int_equal(heard(f, order ? &far : &near, order ? &x : &y,
                           MDHT_RT_HEARD_QUERY, T0),
                     MDHT_RT_ADDED);
    check_invariants(f);
  }
  /* Never deeper than 160 buckets; never shallower than it is. */
  assert_int_equal(mdht_rtable_presplit(&f->rt, 1000, T0), 0);
  assert_int_equal(f->rt.nbuckets, 160);
  assert_int_equal(mdht_rtable_presplit(&f->rt, 2, T0), 0);
  assert_int_equal(f->rt.nbuckets, 160);
  check_invariants(f);
}

/* A saved entry goes back with its history as given (failures and times,
 * but no ping in flight), where a node that queried us would go, and is
 * refused where mdht_rtable_heard would refuse it; it never evicts. */
/* Entries keep times as 32-bit ticks from the table's epoch: 60 bytes, and
 * exact for the first 2^32 ms. A table that lives longer moves its epoch;
 * times then older than 2^31 ms read as that old, recent ones stay exact,
 * and the state rules (which look back node_fresh_ms at most) hold across
 * the move. */
static void test_ticks_move_epoch(void **state) {
  fx *f = *state;
  assert_true(sizeof(mdht_rt_entry) <= 60);
  fx_reinit(f, 8);
  mdht_id a = id_at(f, 0), b = id_at(f, 1), c = id_at(f, 2);
  mdht_addr aa = new_addr(f), ba = new_addr(f), ca = new_addr(f);
  assert_int_equal(heard(f, &a, &aa, MDHT_RT_HEARD_REPLY, T0), MDHT_RT_ADDED);
  /* Exact while within 2^32 ms: the tick is the time (epoch 0). */
  assert_int_equal(f->rt.epoch, 0);
  assert_int_equal(mdht_rtable_find(&f->rt, &aa)->last_reply, T0);

  mdht_time late = ((mdht_time)1 << 32) + 5000; /* tick would not fit */
  mdht_time tb = ((mdht_time)1 << 32) - 1000;   /* the last that fits */
  assert_int_equal(heard(f, &b, &ba, MDHT_RT_HEARD_REPLY, tb), MDHT_RT_ADDED);
  assert_int_equal(mdht_rtable_find(&f->rt, &ba)->last_reply, tb);
  /* b's tick still fits: no move yet. */
  assert_int_equal(f->rt.epoch, 0);
  /* The move (here by asking for the tick of `late`) re-expresses the
   * bucket's refresh time too: it still reads tb. */
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed), tb);
  mdht_rtable_tick(&f->rt, late);
  assert_int_equal(f->rt.epoch, late - ((mdht_time)1 << 31));
  assert_int_equal(mdht_rtable_time(&f->rt, f->rt.buckets[0].last_changed), tb);
  assert_int_equal(heard(f, &c, &ca, MDHT_RT_HEARD_QUERY, late), MDHT_RT_ADDED);
  mdht_time epoch = late - ((mdht_time)1 << 31);
  assert_int_equal(f->rt.epoch, epoch);
  const mdht_rt_entry *ea = mdht_rtable_find(&f->rt, &aa);
  const mdht_rt_entry *eb = mdht_rtable_find(&f->rt, &ba);
  const mdht_rt_entry *ec = mdht_rtable_find(&f->rt, &ca);
  /* a's times were 49 days old: clamped to 2^31 ms before `late`. */
  assert_int_equal(mdht_rtable_time(&f->rt, ea->last_reply), epoch + 1);
  assert_int_equal(mdht_rtable_time(&f->rt, ea->added), epoch + 1);
  assert_int_equal(ea->last_query, 0); /* never stays never */
  /* b's and c's are exact. */
  assert_int_equal(mdht_rtable_time(&f->rt, eb->last_reply), tb);
  assert_int_equal(mdht_rtable_time(&f->rt, ec->last_query), late);
  assert_int_equal(mdht_rtable_time(&f->rt, ec->added), late);
  assert_int_equal(mdht_rtable_state(&f->rt, ea, late), MDHT_RT_QUESTIONABLE);
  assert_int_equal(mdht_rtable_state(&f->rt, eb, late), MDHT_RT_GOOD);
  assert_int_equal(mdht_rtable_state(&f->rt, eb, tb + FRESH),
                   MDHT_RT_QUESTIONABLE);
  /* A time before the epoch (a clock stepped back) is tick 1, not 0. */
  assert_int_equal(mdht_rtable_tick(&f->rt, epoch - 5), 1);
  assert_int_equal(mdht_rtable_tick(&f->rt, epoch), 1);
  assert_int_equal(mdht_rtable_time(&f->rt, 0), 0);
}

/* closest() answers with the same entries, in the same order, as a full
 * sort by XOR distance, also when ids share their first 64 bits (the fast
 * comparison then falls back on the whole id). */
static void test_closest_shared_prefix(void **state) {
  fx *f = *state;
  fx_reinit(f, 8);
  mdht_id target = id_at(f, 3), ids[6];
  for (int i = 0; i < 6; i++) {
    ids[i] = target;
    ids[i].b[19] ^= (uint8_t)(6 - i); /* distance 6 - i in the last byte */
    mdht_addr a = new_addr(f);
    assert_int_equal(heard(f, &ids[i], &a, MDHT_RT_HEARD_REPLY, T0),
                     MDHT_RT_ADDED);
  }
  mdht_rt_entry out[4];
  size_t n = mdht_rtable_closest(&f->rt, &target, 0, out, 4, T0);
  assert_int_equal(n, 4);
  for (int i = 0; i < 4; i++)
    assert_true(mdht_id_eq(&out[i].id, &ids[5 - i]));
}

static void test_restore(void **state) {
  fx *f = *state;
  fx_reinit(f, 2);
  mdht_time now = T0;
  mdht_rt_entry e, q, r;
  mdht_addr ea, qa, ra;
  memset(&e, 0, sizeof e);
  e.id = id_at(f, 0);
  ea = new_addr(f);
  e.added = now - 3600000;
  e.last_reply = now - 10000;
  e.last_query = now - 20000;
  e.last_ping = now - 1;
  e.fails = 2;
  assert_int_equal(mdht_rtable_restore(&f->rt, &e, &ea, now), MDHT_RT_ADDED);
  mdht_rt_entry *got = mdht_rtable_find(&f->rt, &ea);
  assert_non_null(got);
  assert_int_equal(got->added, e.added);
  assert_int_equal(got->last_reply, e.last_reply);
  assert_int_equal(got->last_query, e.last_query); /* heard() would stamp */
  assert_int_equal(got->fails, 2); /* heard(REPLY) would clear */
  assert_int_equal(got->last_ping, 0);
  assert_int_equal(mdht_rtable_state(&f->rt, got, now), MDHT_RT_GOOD);
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 1);

  /* Never answered: questionable, and not handed to other nodes; an
   * `added` of 0 is stamped now. */
  memset(&q, 0, sizeof q);
  q.id = id_at(f, 0);
  qa = new_addr(f);
  q.fails = 1;
  assert_int_equal(mdht_rtable_restore(&f->rt, &q, &qa, now), MDHT_RT_ADDED);
  got = mdht_rtable_find(&f->rt, &qa);
  assert_non_null(got);
  assert_int_equal(got->added, now);
  assert_int_equal(got->last_reply, 0);
  assert_int_equal(got->last_query, 0);
  assert_int_equal(got->fails, 1);
  assert_int_equal(mdht_rtable_state(&f->rt, got, now), MDHT_RT_QUESTIONABLE);
  mdht_rt_entry out[4];
  assert_int_equal(mdht_rtable_closest(&f->rt, &q.id, 0, out, 4, now), 1);
  assert_true(mdht_id_eq(&out[0].id, &e.id));

  /* Refused as by heard(): the same ip:port, the same id elsewhere, our
   * own id, a martian or private address, the IP of an entry on another
   * port, the /24 of an entry in the same bucket. */
  r = q;
  ra = qa;
  r.id = id_at(f, 0);
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  r = q;
  ra = qa;
  ra = new_addr(f);
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  r.id = f->self;
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  r.id = id_at(f, 0);
  ra.port = 0;
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  ra = addr4(192, 168, 1, 1, 6881);
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  ra = qa;
  ra.port++;
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  ra = qa;
  ra.ip[3]++;
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_IGNORED);
  assert_int_equal(f->count[MDHT_EV_NODE_ADDED], 2);

  /* The bucket is full (k = 2) and holds our id: it splits as usual.
   * Both entries share no bit with us, so bucket 0 stays full and the
   * next one waits as a candidate, even with a bad node in the bucket
   * and a reply in its history: it has not answered this process. */
  mdht_rtable_find(&f->rt, &ea)->fails = 3;
  r = e;
  ra = ea;
  r.id = id_at(f, 0);
  ra = new_addr(f);
  r.last_reply = now;
  r.fails = 0;
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(f->rt.nbuckets, 2);
  assert_int_equal(f->count[MDHT_EV_BUCKET_SPLIT], 1);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 0);
  assert_int_equal(f->rt.buckets[0].n, 2);
  assert_int_equal(f->rt.buckets[0].nrepl, 1);
  assert_int_equal(f->rt.buckets[0].repl[0].last_reply, now);
  /* A restored entry closer to us takes the new bucket's free slot. */
  r.id = id_at(f, 1);
  ra = new_addr(f);
  assert_int_equal(mdht_rtable_restore(&f->rt, &r, &ra, now), MDHT_RT_ADDED);
  assert_int_equal(f->rt.buckets[1].n, 1);
  check_invariants(f);

  assert_int_equal(mdht_rtable_restore(NULL, &e, &ea, now), MDHT_ERR_INVAL);
  assert_int_equal(mdht_rtable_restore(&f->rt, NULL, &ea, now), MDHT_ERR_INVAL);
  assert_int_equal(mdht_rtable_restore(&f->rt, &e, NULL, now), MDHT_ERR_INVAL);
}

/* The address of the bucket node or candidate with id `id`, which must be
 * in the table. */
static mdht_addr addr_of_id(fx *f, const mdht_id *id) {
  mdht_rtable *rt = &f->rt;
  const mdht_rt_bucket *b = &rt->buckets[mdht_rtable_bucket_of(rt, id)];
  for (uint32_t i = 0; i < b->n + b->nrepl; i++) {
    const mdht_rt_entry *e = i < b->n ? &b->nodes[i] : &b->repl[i - b->n];
    if (mdht_id_eq(&e->id, id)) return mdht_rtable_addr(rt, e);
  }
  fail_msg("id not in the table");
  mdht_addr none;
  memset(&none, 0, sizeof none);
  return none;
}

/* Issue 13: an entry is 48 bytes, IPv4 addresses in the entry and IPv6
 * ones in the table's pool. Whatever moves an entry (split, promotion,
 * eviction, removal), its full address goes with it, the events tell the
 * right one, and pool slots are given back and reused. */
static void test_compact_entries(void **state) {
  fx *f = *state;
  assert_int_equal(sizeof(mdht_rt_entry), 44);
  fx_reinit(f, 2);
  mdht_time now = T0;
  mdht_rtable *rt = &f->rt;

  /* Bucket 0 full of IPv6 nodes that answered, a split on the way (the
   * third one), then two IPv6 candidates. */
  mdht_id ia = id_at(f, 0), ib = id_at(f, 0), ic = id_at(f, 0),
          id = id_at(f, 0);
  mdht_addr a = new_addr6(f), b = new_addr6(f), c = new_addr6(f),
            d = new_addr6(f);
  assert_int_equal(heard(f, &ia, &a, MDHT_RT_HEARD_REPLY, now), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &ib, &b, MDHT_RT_HEARD_REPLY, now), MDHT_RT_ADDED);
  assert_int_equal(heard(f, &ic, &c, MDHT_RT_HEARD_REPLY, now),
                   MDHT_RT_REPLACEMENT);
  assert_int_equal(heard(f, &id, &d, MDHT_RT_HEARD_REPLY, now),
                   MDHT_RT_REPLACEMENT);
  assert_true(rt->nbuckets >= 2);
  assert_int_equal(rt->v6_.live, 4);
  mdht_addr got = addr_of_id(f, &ic);
  assert_true(mdht_addr_eq(&got, &c));
  got = mdht_rtable_addr(rt, mdht_rtable_find(rt, &a));
  assert_true(mdht_addr_eq(&got, &a));
  check_invariants(f);

  /* Promotion: `a` turns bad and the newest candidate, `d`, takes its
   * slot; the event names both by their full addresses. */
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(rt, &ia, &a, now);
  assert_int_equal(f->count[MDHT_EV_NODE_REPLACED], 1);
  mdht_event *ev = &f->last[MDHT_EV_NODE_REPLACED];
  assert_true(mdht_addr_eq(&ev->u.replaced.old_addr, &a));
  assert_true(mdht_addr_eq(&ev->addr, &d));
  got = mdht_rtable_addr(rt, mdht_rtable_find(rt, &d));
  assert_true(mdht_addr_eq(&got, &d));
  assert_null(mdht_rtable_find(rt, &a));
  assert_int_equal(rt->v6_.live, 3);
  check_invariants(f);

  /* Removal: `b` goes (its address in NODE_REMOVED), `c` is promoted. */
  assert_int_equal(mdht_rtable_remove(rt, &ib, &b, now), 0);
  assert_true(mdht_addr_eq(&f->last[MDHT_EV_NODE_REMOVED].addr, &b));
  assert_true(mdht_addr_eq(&f->last[MDHT_EV_NODE_ADDED].addr, &c));
  got = mdht_rtable_addr(rt, mdht_rtable_find(rt, &c));
  assert_true(mdht_addr_eq(&got, &c));
  assert_int_equal(rt->v6_.live, 2);
  check_invariants(f);

  /* Eviction: `d` turns bad with no candidate left and a newcomer that
   * answers takes its slot at once, reusing a freed pool slot. */
  for (int i = 0; i < 3; i++)
    mdht_rtable_failed(rt, &id, &d, now);
  uint32_t top = rt->v6_.top;
  mdht_id ie = id_at(f, 0);
  mdht_addr e = new_addr6(f);
  assert_int_equal(heard(f, &ie, &e, MDHT_RT_HEARD_REPLY, now), MDHT_RT_ADDED);
  ev = &f->last[MDHT_EV_NODE_REPLACED];
  assert_true(mdht_addr_eq(&ev->u.replaced.old_addr, &d));
  assert_true(mdht_addr_eq(&ev->addr, &e));
  assert_int_equal(rt->v6_.top, top);
  assert_int_equal(rt->v6_.live, 2);
  got = mdht_rtable_addr(rt, mdht_rtable_find(rt, &e));
  assert_true(mdht_addr_eq(&got, &e));
  check_invariants(f);

  /* Mixed families in one table, through many splits, then churn: what is
   * inserted keeps its address, and the pool never holds more slots than
   * IPv6 entries were live at once. */
  fx_reinit(f, 4);
  enum { N = 400 };
  live_node *ins = calloc(N, sizeof *ins);
  assert_non_null(ins);
  uint32_t peak = 0;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) {
      uint64_t r = rng_next(&f->rng);
      ins[i].id = id_at(f, (int)(r % 16));
      ins[i].addr = (r >> 8) % 2 ? new_addr6(f) : new_addr(f);
      now += 10;
      assert_true(
          heard(f, &ins[i].id, &ins[i].addr,
                (r >> 16) % 4 ? MDHT_RT_HEARD_REPLY : MDHT_RT_HEARD_QUERY,
                now) > 0);
      if (rt->v6_.live > peak) peak = rt->v6_.live;
    }
    check_invariants(f);
    for (int i = 0; i < N; i++) {
      mdht_rt_entry *x = mdht_rtable_find(rt, &ins[i].addr);
      if (!x) continue;
      assert_true(mdht_id_eq(&x->id, &ins[i].id));
      got = mdht_rtable_addr(rt, x);
      assert_true(mdht_addr_eq(&got, &ins[i].addr));
      if (round == 0) continue;
      /* From the second round on, a third turn bad first. */
      if (i % 3 == 0)
        for (int j = 0; j < 3; j++)
          mdht_rtable_failed(rt, &ins[i].id, &ins[i].addr, now);
    }
    check_invariants(f);
    /* Everything goes, candidates included. */
    for (int i = 0; i < N; i++)
      (void)mdht_rtable_remove(rt, &ins[i].id, &ins[i].addr, now);
    for (uint32_t bi = 0; bi < rt->nbuckets; bi++)
      while (rt->buckets[bi].n + rt->buckets[bi].nrepl > 0) {
        const mdht_rt_bucket *bk = &rt->buckets[bi];
        const mdht_rt_entry *x = bk->n ? &bk->nodes[0] : &bk->repl[0];
        mdht_addr xa = mdht_rtable_addr(rt, x);
        mdht_id xi = x->id;
        assert_int_equal(mdht_rtable_remove(rt, &xi, &xa, now), 0);
      }
    assert_int_equal(rt->index_.n, 0);
    assert_int_equal(rt->v6_.live, 0);
    assert_int_equal(f->nlive, 0);
    check_invariants(f);
  }
  assert_true(peak > 20);
  assert_true(rt->v6_.top <= peak);
  assert_true(rt->v6_.cap <= 2 * peak);
  free(ins);
}

/* The entry's 7-bit round trip: exact below 16 ms, within 1/8 above,
 * never 0 once set, monotonic, and it leaves the family bit alone. */
static void test_entry_rtt_code(void **state) {
  (void)state;
  mdht_rt_entry e;
  memset(&e, 0, sizeof e);
  assert_int_equal(mdht_rt_entry_rtt(&e), 0);
  mdht_rt_entry_set_rtt(&e, 0);
  assert_int_equal(mdht_rt_entry_rtt(&e), 1);
  uint32_t prev = 0;
  for (uint64_t ms = 1; ms <= 300000; ms += ms < 2000 ? 1 : 997) {
    e.v6_rtt = MDHT_RT_V6_BIT;
    mdht_rt_entry_set_rtt(&e, ms);
    assert_int_equal(mdht_rt_entry_family(&e), MDHT_AF_INET6);
    uint32_t got = mdht_rt_entry_rtt(&e);
    if (ms < 16) assert_int_equal(got, ms);
    if (ms <= 245760) {
      assert_true(got <= ms);
      assert_true(ms - got <= ms / 8);
    } else {
      assert_int_equal(got, 245760); /* capped */
    }
    assert_true(got >= prev);
    prev = got;
    e.v6_rtt = 0;
    mdht_rt_entry_set_rtt(&e, ms);
    assert_int_equal(mdht_rt_entry_family(&e), MDHT_AF_INET);
    assert_int_equal(mdht_rt_entry_rtt(&e), got);
  }
}

/* A bucket's node block holds what the bucket has: 2 slots, then 4, 6,
 * up to k, growing as nodes come (issue 13), with every node found at its
 * new place; a split gives the new bucket room for what moved into it. */
static void test_node_blocks_grow(void **state) {
  fx *f = *state;
  fx_reinit(f, 8);
  mdht_rtable *rt = &f->rt;
  mdht_time now = T0;
  assert_int_equal(rt->buckets[0].cap, 2);
  const uint8_t want[8] = {2, 2, 4, 4, 6, 6, 8, 8};
  mdht_id ids[8];
  mdht_addr addrs[8];
  for (int i = 0; i < 8; i++) {
    ids[i] = id_at(f, 0);
    addrs[i] = new_addr(f);
    assert_int_equal(heard(f, &ids[i], &addrs[i], MDHT_RT_HEARD_REPLY, now),
                     MDHT_RT_ADDED);
    assert_int_equal(rt->buckets[0].cap, want[i]);
    for (int j = 0; j <= i; j++) {
      mdht_rt_entry *e = mdht_rtable_find(rt, &addrs[j]);
      assert_non_null(e);
      assert_true(mdht_id_eq(&e->id, &ids[j]));
    }
    check_invariants(f);
  }
  /* Full: a node closer to us splits it; the new bucket starts small. */
  mdht_id near = id_at(f, 3);
  mdht_addr na = new_addr(f);
  assert_int_equal(heard(f, &near, &na, MDHT_RT_HEARD_REPLY, now),
                   MDHT_RT_ADDED);
  assert_int_equal(rt->nbuckets, 2);
  assert_int_equal(rt->buckets[0].cap, 8);
  assert_int_equal(rt->buckets[1].n, 1);
  assert_int_equal(rt->buckets[1].cap, 2);
  size_t routing, repl, index;
  mdht_rtable_bytes(rt, &routing, &repl, &index);
  assert_int_equal(routing,
                   2 * sizeof(mdht_rt_bucket) + 10 * sizeof(mdht_rt_entry));
  check_invariants(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_init_invalid, setup, teardown),
      cmocka_unit_test_setup_teardown(test_add_and_update, setup, teardown),
      cmocka_unit_test_setup_teardown(test_buckets_sized_by_k, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replacements_grow_and_shrink, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_ignored_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_identity_conflicts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restarted_node_replaces_bad_entry,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_single, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_mixed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_repeated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_to_the_end, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replacement_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_states, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_replaced_at_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_questionable_ping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_prefers_answered, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_failed_candidate_and_unknown, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_bus, setup, teardown),
      cmocka_unit_test_setup_teardown(test_closest_bruteforce, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_entry_per_ip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_ip_allowed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_ip_bad_entry_gives_way, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_one_entry_per_prefix, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_prefix_bad_entry_gives_way, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_never_answered_never_displaces,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_valid_id_wins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_ops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_index_equal_slots, setup, teardown),
      cmocka_unit_test_setup_teardown(test_index_size_and_splits, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compact_entries, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ticks_move_epoch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_closest_shared_prefix, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_presplit_restores_prefix_twins,
                                      setup, teardown),
      cmocka_unit_test(test_entry_rtt_code),
      cmocka_unit_test_setup_teardown(test_node_blocks_grow, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
