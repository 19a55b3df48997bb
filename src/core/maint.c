#include "maint.h"
#include "id.h"

void mdht_maint_init(mdht_maint *m, mdht_time now) {
  m->next_run = now + MDHT_MAINT_PERIOD_MS;
}

mdht_time mdht_maint_next(const mdht_maint *m) {
  return m->next_run;
}

void mdht_maint_bucket_target(const mdht_rtable *rt, uint32_t b,
                              const uint8_t rnd[MDHT_ID_LEN], mdht_id *out) {
  if (b + 1 >= rt->nbuckets) {
    /* The last bucket: everything sharing at least b bits with us. */
    mdht_id_random_in(out, &rt->self, (int)b, rnd);
    return;
  }
  /* Bucket b: exactly b shared bits, so bit b differs from ours. */
  mdht_id_random_in(out, &rt->self, (int)b, rnd);
  int ours = mdht_id_bit(&rt->self, (int)b);
  if (mdht_id_bit(out, (int)b) == ours)
    out->b[b / 8] ^= (uint8_t)(0x80u >> (b % 8));
}

/* A tick of the table: only compared with others of the same table. */
static uint32_t last_seen(const mdht_rt_entry *e) {
  return e->last_reply > e->last_query ? e->last_reply : e->last_query;
}

size_t mdht_maint_run(mdht_maint *m, mdht_rtable *rt, mdht_time now,
                      const uint8_t rnd[MDHT_ID_LEN], mdht_maint_action *out) {
  if (now < m->next_run) return 0;
  m->next_run = now + MDHT_MAINT_PERIOD_MS;
  size_t n = 0;

  /* The MDHT_MAINT_PINGS least recently seen questionable nodes, found in
   * one pass with a small insertion-sorted list. */
  mdht_rt_entry *pick[MDHT_MAINT_PINGS];
  size_t npick = 0;
  for (uint32_t b = 0; b < rt->nbuckets; b++) {
    mdht_rt_bucket *bk = &rt->buckets[b];
    for (uint32_t i = 0; i < bk->n; i++) {
      mdht_rt_entry *e = &bk->nodes[i];
      if (mdht_rtable_state(rt, e, now) != MDHT_RT_QUESTIONABLE) continue;
      mdht_time pinged = mdht_rtable_time(rt, e->last_ping);
      if (pinged && now - pinged < rt->cfg->query_timeout_ms)
        continue; /* a ping is already on its way */
      size_t j = npick < MDHT_MAINT_PINGS ? npick++ : MDHT_MAINT_PINGS;
      if (j == MDHT_MAINT_PINGS) {
        if (last_seen(e) >= last_seen(pick[j - 1])) continue;
        j--;
      }
      while (j > 0 && last_seen(pick[j - 1]) > last_seen(e)) {
        pick[j] = pick[j - 1];
        j--;
      }
      pick[j] = e;
    }
  }
  uint32_t tick = mdht_rtable_tick(rt, now); /* may re-express the ticks */
  for (size_t i = 0; i < npick; i++) {
    pick[i]->last_ping = tick;
    out[n++] = (mdht_maint_action){.kind = MDHT_MAINT_PING,
                                   .id = pick[i]->id,
                                   .addr = mdht_rtable_addr(rt, pick[i])};
  }

  /* One stale bucket per period. */
  for (uint32_t b = 0; b < rt->nbuckets; b++) {
    mdht_rt_bucket *bk = &rt->buckets[b];
    if (now - mdht_rtable_time(rt, bk->last_changed) <
        rt->cfg->bucket_refresh_ms)
      continue;
    bk->last_changed = mdht_rtable_tick(rt, now);
    mdht_maint_action a = {.kind = MDHT_MAINT_REFRESH, .bucket = b};
    mdht_maint_bucket_target(rt, b, rnd, &a.target);
    out[n++] = a;
    break;
  }
  return n;
}
