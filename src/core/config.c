#include "config.h"
#include "rtable.h"

void mdht_config_default(mdht_config *cfg) {
  *cfg = (mdht_config){
      .k = MDHT_DEFAULT_K,
      .alpha = MDHT_DEFAULT_ALPHA,
      .node_fresh_ms = MDHT_DEFAULT_NODE_FRESH_MS,
      .max_fails = MDHT_DEFAULT_MAX_FAILS,
      .token_rotate_ms = MDHT_DEFAULT_TOKEN_ROTATE_MS,
      .peer_ttl_ms = MDHT_DEFAULT_PEER_TTL_MS,
      .max_infohashes = MDHT_DEFAULT_MAX_INFOHASHES,
      .max_peers_per_ih = MDHT_DEFAULT_MAX_PEERS_PER_IH,
      .max_peers = MDHT_DEFAULT_MAX_PEERS,
      .query_timeout_ms = MDHT_DEFAULT_QUERY_TIMEOUT_MS,
      .query_soft_timeout_ms = MDHT_DEFAULT_QUERY_SOFT_TIMEOUT_MS,
      .max_txns = MDHT_DEFAULT_MAX_TXNS,
      .max_lookups = MDHT_DEFAULT_MAX_LOOKUPS,
      .bucket_refresh_ms = MDHT_DEFAULT_BUCKET_REFRESH_MS,
      .rate_limit_per_sec = MDHT_DEFAULT_RATE_LIMIT,
      .rate_limit_burst = MDHT_DEFAULT_RATE_BURST,
      .out_queue = MDHT_DEFAULT_OUT_QUEUE,
      .read_only = false,
      .allow_private = false,
      .enforce_node_id = false,
      .max_ih_per_ip = MDHT_DEFAULT_MAX_IH_PER_IP,
      .max_values = MDHT_DEFAULT_MAX_VALUES,
      .reply_bytes_per_sec = MDHT_DEFAULT_REPLY_BYTES_PER_SEC,
      .item_ttl_ms = MDHT_DEFAULT_ITEM_TTL_MS,
      .max_items = MDHT_DEFAULT_MAX_ITEMS,
      .max_item_bytes = MDHT_DEFAULT_MAX_ITEM_BYTES,
      .max_items_per_ip = MDHT_DEFAULT_MAX_ITEMS_PER_IP,
      .client_version = {'M', 'D', 0, 1},
  };
}

int mdht_config_check(const mdht_config *cfg) {
  if (!cfg || cfg->k == 0 || cfg->k > MDHT_RT_KMAX || cfg->alpha == 0 ||
      cfg->alpha > 32 || cfg->max_fails == 0 || cfg->max_fails > 255 ||
      cfg->node_fresh_ms == 0 || cfg->token_rotate_ms == 0 ||
      cfg->peer_ttl_ms == 0 || cfg->max_infohashes == 0 ||
      cfg->max_peers_per_ih == 0 || cfg->query_timeout_ms == 0 ||
      cfg->max_txns == 0 || cfg->max_txns > 65535 || cfg->out_queue == 0 ||
      cfg->max_lookups == 0 || cfg->max_ih_per_ip == 0 ||
      cfg->max_values == 0 || cfg->item_ttl_ms == 0 ||
      cfg->max_items_per_ip == 0)
    return MDHT_ERR_INVAL;
  if (cfg->query_soft_timeout_ms > cfg->query_timeout_ms) return MDHT_ERR_INVAL;
  return 0;
}
