#include "bus.h"

#include <stdlib.h>
#include <string.h>

void mdht_bus_init(mdht_bus *bus) {
  memset(bus, 0, sizeof *bus);
}

void mdht_bus_free(mdht_bus *bus) {
  if (!bus) return;
  free(bus->subs);
  mdht_bus_init(bus);
}

int mdht_bus_subscribe(mdht_bus *bus, mdht_event_cb cb, void *user) {
  if (!bus || !cb) return MDHT_ERR_INVAL;
  int h = 0;
  while (h < bus->cap && bus->subs[h].cb)
    h++;
  if (h == bus->cap) {
    if (bus->cap >= MDHT_BUS_MAX_SUBS) return MDHT_ERR_FULL;
    uint32_t cap = bus->cap ? 2u * bus->cap : 1u;
    if (cap > MDHT_BUS_MAX_SUBS) cap = MDHT_BUS_MAX_SUBS;
    mdht_bus_sub *v = realloc(bus->subs, cap * sizeof *v);
    if (!v) return MDHT_ERR_NOMEM;
    memset(&v[bus->cap], 0, (cap - bus->cap) * sizeof *v);
    bus->subs = v;
    bus->cap = (uint8_t)cap;
  }
  bus->subs[h].cb = cb;
  bus->subs[h].user = user;
  bus->subs[h].gen++;
  bus->order[bus->nsubs++] = (uint8_t)h;
  return h;
}

void mdht_bus_unsubscribe(mdht_bus *bus, int handle) {
  if (!bus || handle < 0 || handle >= bus->cap || !bus->subs[handle].cb) return;
  bus->subs[handle].cb = NULL;
  bus->subs[handle].user = NULL;
  for (uint32_t i = 0; i < bus->nsubs; i++) {
    if (bus->order[i] != handle) continue;
    memmove(&bus->order[i], &bus->order[i + 1], bus->nsubs - i - 1);
    bus->nsubs--;
    break;
  }
}

void mdht_bus_publish(const mdht_bus *bus, const mdht_event *ev) {
  if (!bus || !ev || bus->nsubs == 0) return;
  /* Subscribers may change the bus under us; iterate over a snapshot and
   * re-check each slot before calling, so that a removed subscriber is
   * skipped and a slot reused meanwhile (different gen) is not a match. */
  uint8_t order[MDHT_BUS_MAX_SUBS];
  uint32_t gen[MDHT_BUS_MAX_SUBS];
  uint32_t n = bus->nsubs;
  for (uint32_t i = 0; i < n; i++) {
    order[i] = bus->order[i];
    gen[i] = bus->subs[order[i]].gen;
  }
  for (uint32_t i = 0; i < n; i++) {
    mdht_event_cb cb = bus->subs[order[i]].cb;
    if (cb && bus->subs[order[i]].gen == gen[i])
      cb(ev, bus->subs[order[i]].user);
  }
}
