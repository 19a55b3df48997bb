#include "bootstrap.h"

#include <stdlib.h>
#include <string.h>

void mdht_boot_init(mdht_bootstrap *b) {
  memset(b, 0, sizeof *b);
  b->backoff = MDHT_BOOT_BACKOFF_MIN_MS;
}

void mdht_boot_free(mdht_bootstrap *b) {
  free(b->routers);
  free(b->seeds);
  b->routers = NULL;
  b->seeds = NULL;
  b->nrouters = b->nseeds = 0;
}

bool mdht_boot_is_router(const mdht_bootstrap *b, const mdht_addr *a) {
  for (uint32_t i = 0; i < b->nrouters; i++)
    if (mdht_addr_eq(&b->routers[i], a)) return true;
  return false;
}

int mdht_boot_add_router(mdht_bootstrap *b, const mdht_addr *a) {
  if (mdht_boot_is_router(b, a)) return MDHT_ERR_EXISTS;
  if (b->nrouters >= MDHT_BOOT_MAX_ROUTERS) return MDHT_ERR_LIMIT;
  uint32_t n = b->nrouters + 1;
  mdht_addr *r = realloc(b->routers, n * sizeof *r);
  if (!r) return MDHT_ERR_NOMEM;
  b->routers = r;
  mdht_lookup_node *s = realloc(b->seeds, n * sizeof *s);
  if (!s) return MDHT_ERR_NOMEM; /* routers keeps its larger block */
  b->seeds = s;
  b->routers[b->nrouters++] = *a;
  return 0;
}

void mdht_boot_router_answered(mdht_bootstrap *b, const mdht_id *id,
                               const mdht_addr *a) {
  for (uint32_t i = 0; i < b->nseeds; i++) {
    if (mdht_addr_eq(&b->seeds[i].addr, a)) {
      b->seeds[i].id = *id; /* a router may restart with a new id */
      return;
    }
  }
  if (b->nseeds < b->nrouters)
    b->seeds[b->nseeds++] = (mdht_lookup_node){.id = *id, .addr = *a};
}

void mdht_boot_pinged(mdht_bootstrap *b, mdht_time now) {
  if (b->phase == MDHT_BOOT_IDLE || b->phase == MDHT_BOOT_DONE)
    b->phase = MDHT_BOOT_PINGING;
  b->next_attempt = now + b->backoff;
  b->backoff *= 2;
  if (b->backoff > MDHT_BOOT_BACKOFF_MAX_MS)
    b->backoff = MDHT_BOOT_BACKOFF_MAX_MS;
}

void mdht_boot_reset(mdht_bootstrap *b, mdht_time now) {
  b->phase = MDHT_BOOT_IDLE;
  /* Routers must answer again before they seed a lookup: the ones we
   * knew may be as gone as the rest of the table. The backoff is kept, so
   * that a node cut off from the network does not retry every second. */
  b->nseeds = 0;
  b->router_joined = false;
  if (b->next_attempt < now) b->next_attempt = now;
  b->fill_pending = 0;
  b->fill_next = b->fill_end = 0;
}

void mdht_boot_succeeded(mdht_bootstrap *b) {
  b->phase = MDHT_BOOT_DONE;
  b->ever_done = true;
  b->backoff = MDHT_BOOT_BACKOFF_MIN_MS;
}

void mdht_boot_failed(mdht_bootstrap *b, mdht_time now) {
  b->phase = MDHT_BOOT_IDLE;
  b->nseeds = 0;
  /* The lookup through the routers may have been this one: it reached
   * nobody, so the routers are asked again even if the table holds
   * nodes (boot_step). */
  b->router_joined = false;
  b->fill_pending = 0;
  b->fill_next = b->fill_end = 0;
  b->next_attempt = now + b->backoff;
  b->backoff *= 2;
  if (b->backoff > MDHT_BOOT_BACKOFF_MAX_MS)
    b->backoff = MDHT_BOOT_BACKOFF_MAX_MS;
}
