/* BEP 5's numbers and the node's defaults, in one place. */
#ifndef MDHT_CONFIG_H
#define MDHT_CONFIG_H

#include "mdht.h"

#define MDHT_MINUTE_MS ((mdht_time)60 * 1000)

#define MDHT_DEFAULT_K 8
/* libtorrent's default (dht_search_branching = 5): with 3, the simulated
 * 10,000-node network finished lookups in 6.7 RTTs (median), with 5 in
 * 4.9. */
#define MDHT_DEFAULT_ALPHA 5
/* BEP 5: a node is good if it answered within the last 15 minutes. */
#define MDHT_DEFAULT_NODE_FRESH_MS (15 * MDHT_MINUTE_MS)
/* libtorrent and jech/dht both give up on a node after a few failures in a
 * row; one lost UDP datagram must not evict a good node. */
#define MDHT_DEFAULT_MAX_FAILS 3
/* BEP 5: "tokens up to ten minutes old are accepted": a 5-minute secret
 * with the previous one still accepted gives 5 to 10 minutes. */
#define MDHT_DEFAULT_TOKEN_ROTATE_MS (5 * MDHT_MINUTE_MS)
/* Announces are repeated about every 15-30 minutes by clients; libtorrent
 * keeps peers for 30 minutes (announce_interval * 1.5 is 45). */
#define MDHT_DEFAULT_PEER_TTL_MS (30 * MDHT_MINUTE_MS)
#define MDHT_DEFAULT_MAX_INFOHASHES 50000
#define MDHT_DEFAULT_MAX_PEERS_PER_IH 500
/* 50,000 x 500 peers would be a gigabyte; this keeps the store near 10 MB
 * (about 40 bytes a peer plus the per-info-hash entries). */
#define MDHT_DEFAULT_MAX_PEERS 200000
#define MDHT_DEFAULT_QUERY_TIMEOUT_MS 5000
#define MDHT_DEFAULT_QUERY_SOFT_TIMEOUT_MS 1000
#define MDHT_DEFAULT_MAX_TXNS 4096
#define MDHT_DEFAULT_MAX_LOOKUPS 64
#define MDHT_DEFAULT_BUCKET_REFRESH_MS (15 * MDHT_MINUTE_MS)
#define MDHT_DEFAULT_RATE_LIMIT 250
#define MDHT_DEFAULT_RATE_BURST 500
#define MDHT_DEFAULT_OUT_QUEUE 1024
/* One source IP may hold records for this many info-hashes: enough for a
 * seedbox, a quarter of a percent of the default store. */
#define MDHT_DEFAULT_MAX_IH_PER_IP 256
/* libtorrent sends at most 100 values per reply. */
#define MDHT_DEFAULT_MAX_VALUES 100
/* Bytes of replies per second one destination IP may draw (burst: twice
 * that): a spoofed source cannot turn the node into an amplifier. */
/* BEP 44: items MAY expire after 2 hours; libtorrent stores 700 at most. */
#define MDHT_DEFAULT_ITEM_TTL_MS (120 * MDHT_MINUTE_MS)
#define MDHT_DEFAULT_MAX_ITEMS 1000
#define MDHT_DEFAULT_MAX_ITEM_BYTES (512 * 1024)
#define MDHT_DEFAULT_MAX_ITEMS_PER_IP 32
#define MDHT_DEFAULT_REPLY_BYTES_PER_SEC 8000

#endif
