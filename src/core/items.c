/*
 * BEP 44 item storage. See items.h for the rules and the bounds.
 */
#include "items.h"

#include <stdlib.h>
#include <string.h>

/* The source an item is counted against: the IP, IPv6 by /64 (one host
 * has a /64 to pick addresses from). Zeroed elsewhere, so memcmp works. */
static mdht_addr source_of(const mdht_addr *a) {
  mdht_addr s;
  memset(&s, 0, sizeof s);
  s.family = a->family;
  memcpy(s.ip, a->ip, a->family == MDHT_AF_INET6 ? 8 : 4);
  return s;
}

static int src_cmp(const void *a, const void *b) {
  return memcmp(a, b, sizeof(mdht_addr));
}

/* Binary search: true if found; *pos is its index position, else where it
 * would go. */
static bool index_find(const mdht_item_store *s, const mdht_id *t,
                       uint32_t *pos) {
  uint32_t lo = 0, hi = s->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    int c = memcmp(s->index[mid].target.b, t->b, MDHT_ID_LEN);
    if (c == 0) {
      *pos = mid;
      return true;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *pos = lo;
  return false;
}

void mdht_items_init(mdht_item_store *s, const mdht_config *cfg,
                     mdht_bus *bus) {
  memset(s, 0, sizeof *s);
  s->cfg = cfg;
  s->bus = bus;
  s->next_expiry = UINT64_MAX;
}

void mdht_items_free(mdht_item_store *s) {
  free(s->items);
  free(s->index);
  free(s->scratch);
  s->items = NULL;
  s->index = NULL;
  s->scratch = NULL;
  s->n = s->cap = 0;
  s->bytes = 0;
}

/* Removes the item in `slot`; the last item moves into it. */
static void remove_at(mdht_item_store *s, uint32_t slot) {
  uint32_t pos;
  if (index_find(s, &s->items[slot].target, &pos))
    memmove(&s->index[pos], &s->index[pos + 1],
            (s->n - pos - 1) * sizeof *s->index);
  s->bytes -= s->items[slot].vlen;
  uint32_t last = s->n - 1;
  s->n--;
  if (slot != last) {
    s->items[slot] = s->items[last];
    if (index_find(s, &s->items[slot].target, &pos)) s->index[pos].slot = slot;
  }
}

/* The slot of the oldest (least recently put) item of `src`, or -1. */
static int64_t oldest_of(const mdht_item_store *s, const mdht_addr *src) {
  int64_t best = -1;
  for (uint32_t i = 0; i < s->n; i++)
    if (!src_cmp(&s->items[i].src, src) &&
        (best < 0 || s->items[i].put_at < s->items[best].put_at))
      best = i;
  return best;
}

/* Evicts the oldest item of the source holding the most items (ties: the
 * lowest address, which no source picks better than another). */
static void evict_heaviest(mdht_item_store *s) {
  for (uint32_t i = 0; i < s->n; i++)
    s->scratch[i] = s->items[i].src;
  qsort(s->scratch, s->n, sizeof *s->scratch, src_cmp);
  uint32_t best = 0, best_run = 0;
  for (uint32_t i = 0; i < s->n;) {
    uint32_t j = i + 1;
    while (j < s->n && !src_cmp(&s->scratch[j], &s->scratch[i]))
      j++;
    if (j - i > best_run) {
      best_run = j - i;
      best = i;
    }
    i = j;
  }
  mdht_addr heavy = s->scratch[best];
  int64_t slot = oldest_of(s, &heavy);
  if (slot >= 0) remove_at(s, (uint32_t)slot);
}

static int grow(mdht_item_store *s) {
  if (s->n < s->cap) return 0;
  uint32_t cap = s->cap ? s->cap * 2 : 8;
  if (cap > s->cfg->max_items) cap = s->cfg->max_items;
  if (cap <= s->n) return MDHT_ERR_FULL;
  mdht_item *items = realloc(s->items, cap * sizeof *items);
  if (!items) return MDHT_ERR_NOMEM;
  s->items = items;
  mdht_item_index *index = realloc(s->index, cap * sizeof *index);
  if (!index) return MDHT_ERR_NOMEM;
  s->index = index;
  mdht_addr *scratch = realloc(s->scratch, cap * sizeof *scratch);
  if (!scratch) return MDHT_ERR_NOMEM;
  s->scratch = scratch;
  s->cap = cap;
  return 0;
}

void mdht_items_event(mdht_event *ev, mdht_event_type type, const mdht_item *it,
                      const mdht_addr *from, mdht_time now) {
  mdht_bus_event_init(ev, type, now);
  ev->id = it->target;
  ev->addr = *from;
  ev->u.item.seq = it->seq;
  ev->u.item.vlen = it->vlen;
  ev->u.item.is_mutable = it->is_mutable;
}

static void publish_stored(mdht_item_store *s, const mdht_item *it,
                           const mdht_addr *from, mdht_time now) {
  if (!s->bus) return;
  mdht_event ev;
  mdht_items_event(&ev, MDHT_EV_ITEM_STORED, it, from, now);
  mdht_bus_publish(s->bus, &ev);
}

static void fill(mdht_item *it, const mdht_id *target, const mdht_item_put *p) {
  it->target = *target;
  it->is_mutable = p->is_mutable;
  it->vlen = (uint16_t)p->vlen;
  memcpy(it->v, p->v, p->vlen);
  it->seq = 0;
  it->salt_len = 0;
  if (p->is_mutable) {
    it->seq = p->seq;
    memcpy(it->k, p->k, MDHT_ITEM_PK_LEN);
    memcpy(it->sig, p->sig, MDHT_ITEM_SIG_LEN);
    it->salt_len = (uint8_t)p->salt_len;
    if (p->salt_len) memcpy(it->salt, p->salt, p->salt_len);
  }
}

/* A new item for `src`: quota first, then the global bounds. */
static int insert_new(mdht_item_store *s, const mdht_id *target,
                      const mdht_item_put *p, const mdht_addr *src,
                      mdht_time expires, mdht_time now) {
  const mdht_config *cfg = s->cfg;
  if (cfg->max_items == 0 || p->vlen > cfg->max_item_bytes)
    return MDHT_ERR_FULL;
  if (mdht_items_of_ip(s, src) >= cfg->max_items_per_ip) {
    int64_t own = oldest_of(s, src);
    if (own >= 0) remove_at(s, (uint32_t)own);
  }
  while (s->n > 0 &&
         (s->n >= cfg->max_items || s->bytes + p->vlen > cfg->max_item_bytes))
    evict_heaviest(s);
  int rc = grow(s);
  if (rc) return rc;
  uint32_t pos;
  index_find(s, target, &pos);
  memmove(&s->index[pos + 1], &s->index[pos], (s->n - pos) * sizeof *s->index);
  uint32_t slot = s->n++;
  s->index[pos].target = *target;
  s->index[pos].slot = slot;
  mdht_item *it = &s->items[slot];
  fill(it, target, p);
  it->src = *src;
  it->put_at = now;
  it->expires = expires;
  s->bytes += p->vlen;
  if (expires < s->next_expiry) s->next_expiry = expires;
  return 0;
}

/* A put to an item we hold. Returns 0 (refresh or update done), a KRPC
 * code, or an error. */
static int put_existing(mdht_item_store *s, uint32_t slot,
                        const mdht_item_put *p, mdht_time expires,
                        mdht_time now) {
  mdht_item *it = &s->items[slot];
  /* Same target, other kind: only a SHA-1 collision gets here. */
  if (it->is_mutable != p->is_mutable) return MDHT_ERR_EXISTS;
  bool same = it->vlen == p->vlen && !memcmp(it->v, p->v, p->vlen);
  if (p->is_mutable) {
    if (p->has_cas && p->cas != it->seq) return MDHT_KRPC_E_CAS;
    if (p->seq < it->seq || (p->seq == it->seq && !same))
      return MDHT_KRPC_E_SEQ;
  }
  if (!p->is_mutable || p->seq == it->seq) { /* a republish: refresh */
    if (expires > it->expires) it->expires = expires;
    it->put_at = now;
    return 0;
  }
  /* A newer version: it replaces the old one, under the old one's
   * source, and passes the byte bound like any new item. */
  mdht_addr src = it->src;
  mdht_id target = it->target;
  remove_at(s, slot);
  return insert_new(s, &target, p, &src, expires, now);
}

static int put_at(mdht_item_store *s, const mdht_id *target,
                  const mdht_item_put *p, const mdht_addr *from,
                  mdht_time expires, mdht_time now) {
  if (!p->v || p->vlen == 0 || p->vlen > MDHT_ITEM_MAX_V ||
      p->salt_len > MDHT_ITEM_MAX_SALT || (p->is_mutable && (!p->k || !p->sig)))
    return MDHT_ERR_INVAL;
  if (now >= s->next_expiry) mdht_items_expire(s, now);
  uint32_t pos;
  int rc;
  if (index_find(s, target, &pos)) {
    rc = put_existing(s, s->index[pos].slot, p, expires, now);
  } else {
    mdht_addr src = source_of(from);
    rc = insert_new(s, target, p, &src, expires, now);
  }
  if (rc == 0) {
    const mdht_item *it = mdht_items_get(s, target, now);
    if (it) publish_stored(s, it, from, now);
  }
  return rc;
}

int mdht_items_put(mdht_item_store *s, const mdht_id *target,
                   const mdht_item_put *p, const mdht_addr *src,
                   mdht_time now) {
  return put_at(s, target, p, src, now + s->cfg->item_ttl_ms, now);
}

int mdht_items_put_until(mdht_item_store *s, const mdht_id *target,
                         const mdht_item_put *p, const mdht_addr *src,
                         mdht_time expires, mdht_time now) {
  if (expires <= now) return MDHT_ERR_RANGE;
  mdht_time cap = now + s->cfg->item_ttl_ms;
  return put_at(s, target, p, src, expires < cap ? expires : cap, now);
}

const mdht_item *mdht_items_get(const mdht_item_store *s, const mdht_id *target,
                                mdht_time now) {
  uint32_t pos;
  if (!index_find(s, target, &pos)) return NULL;
  const mdht_item *it = &s->items[s->index[pos].slot];
  return it->expires > now ? it : NULL;
}

size_t mdht_items_expire(mdht_item_store *s, mdht_time now) {
  size_t dropped = 0;
  mdht_time next = UINT64_MAX;
  /* Downwards: remove_at moves the last item, already looked at, into
   * the hole. */
  for (uint32_t i = s->n; i-- > 0;) {
    if (s->items[i].expires <= now) {
      remove_at(s, i);
      dropped++;
    }
  }
  for (uint32_t i = 0; i < s->n; i++)
    if (s->items[i].expires < next) next = s->items[i].expires;
  s->next_expiry = next;
  return dropped;
}

uint32_t mdht_items_of_ip(const mdht_item_store *s, const mdht_addr *ip) {
  mdht_addr src = source_of(ip);
  uint32_t n = 0;
  for (uint32_t i = 0; i < s->n; i++)
    n += !src_cmp(&s->items[i].src, &src);
  return n;
}

int mdht_items_foreach(const mdht_item_store *s, mdht_items_cb fn, void *user) {
  for (uint32_t i = 0; i < s->n; i++) {
    int rc = fn(&s->items[i], user);
    if (rc) return rc;
  }
  return 0;
}
