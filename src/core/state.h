/*
 * The node's state to bytes and back, so that a restarted node keeps its
 * id, its routing table and the peers announced to it (the file I/O lives
 * in the driver: src/io/persist.c).
 *
 * Format, version 1. Integers are big-endian (network order, as in the
 * DHT's compact encodings):
 *
 *   header   magic "MDHTSTATE" (9 bytes), version u16 = 1, flags u16 = 0,
 *            body length u32
 *   body     sections: type u8, payload length u32, payload
 *   trailer  SHA-256 (32 bytes) of header and body
 *
 * The file is exactly 17 + length + 32 bytes. Sections:
 *
 *   1 META   (once, first): saved_wall_ms u64 (Unix time of the save),
 *            node id (20 bytes)
 *   2 NODES  (at most once): count u32, then per entry kind u8 (0 = in a
 *            bucket, 1 = replacement candidate), fails u8, family u8 (4 or
 *            6), ip (4 or 16 bytes), port u16, id (20 bytes), and three
 *            ages in ms at save time, u64 each, all ones = never:
 *            since it last answered us, since it last queried us, since it
 *            entered the table
 *   3 PEERS  (at most once): count u32 of info-hashes, then per info-hash
 *            the info-hash (20 bytes), n u32 >= 1, and n peers: family u8,
 *            ip (4 or 16), port u16, seed u8 (0 or 1), remaining lifetime
 *            in ms at save time u64
 *   4 ITEMS  (at most once; BEP 44, added without a version change, as
 *            readers skip sections they do not know and files without
 *            it load as before): count u32, then per item target (20
 *            bytes), mutable u8 (0 or 1), source family u8, ip (4 or 16),
 *            port u16, remaining lifetime in ms u64, value length u16
 *            (1..1000), the value's bencoding; mutable items then k (32),
 *            sig (64), seq (u64, two's complement), salt length u8
 *            (0..64), salt. The loader re-checks every item as a put
 *            would (target, signature, bencoding) and skips one that
 *            fails.
 *
 * Readers skip section types they do not know (a later writer may add
 * some), and refuse a version or a flag bit they do not know
 * (MDHT_ERR_VERSION). Everything else that does not parse exactly is
 * MDHT_ERR_CORRUPT: the file is untrusted input, every read is bounded.
 *
 * Times: the node's clock is monotonic and restarts with the process, so
 * the file holds ages relative to the save and the wall-clock time of the
 * save; the loader adds the wall-clock time that passed in between. A
 * clock that went backwards counts as no time passed.
 *
 * Loaded nodes are questionable (BEP 5) until they answer: they enter the
 * table as if never heard from, with their failure count, and are not
 * handed to other nodes (mdht_rtable_closest skips nodes that never
 * answered). mdht_state_ping_pending() pings them at a pace the caller
 * sets; an answer makes a node good through the usual path (the response
 * event), a timeout counts a failure. No list of pending nodes is kept:
 * "in the table, never answered, never queried us, never pinged" is
 * exactly the set of loaded nodes still to ping, so the routing table is
 * the queue and nothing can get out of step with it.
 */
#ifndef MDHT_STATE_H
#define MDHT_STATE_H

#include "mdht.h"

#define MDHT_STATE_MAGIC "MDHTSTATE"
#define MDHT_STATE_MAGIC_LEN 9
#define MDHT_STATE_VERSION 1
#define MDHT_STATE_HEADER_LEN 17
#define MDHT_STATE_HASH_LEN 32
/* The largest state this node writes or reads. The routing table is a few
 * hundred KB at most; the bound is for the peer store, which is a cache:
 * peers beyond it are not saved. */
#define MDHT_STATE_MAX_SIZE ((size_t)64 << 20)

typedef struct mdht_state_info {
  uint16_t version;
  uint64_t saved_wall_ms; /* Unix time of the save, ms */
  uint64_t downtime_ms;   /* load: wall-clock time since the save */
  mdht_id id;             /* the id in the file */
  /* save and check: entries in the file; load: entries now in the table
   * (a bucket that is full takes the rest as candidates, so the split
   * may differ from the file's) */
  uint32_t nodes, replacements;
  uint32_t nodes_skipped; /* load: bad, other family, martian or private,
                             already known, or no room left */
  uint32_t infohashes, peers;
  uint32_t peers_expired; /* load: past their expiry, dropped */
  uint32_t peers_skipped; /* load: martian, or no room in the store */
  uint32_t items;         /* BEP 44 items saved / checked / loaded */
  uint32_t items_skipped; /* load: expired, failing a check, or no room */
  bool truncated;         /* save: peers left out at MDHT_STATE_MAX_SIZE */
  const char *why;        /* check/load failure: a static phrase for the
                             warning ("checksum mismatch", ...) */
} mdht_state_info;

/* Serializes the node's id, routing table (bad nodes left out) and
 * unexpired peers. `now` is the node's clock, `wall_ms` the Unix time in
 * ms. On success *out is a malloc'ed buffer of *len bytes that the caller
 * frees; `info` (may be NULL) gets the counts. Errors: MDHT_ERR_INVAL,
 * MDHT_ERR_NOMEM. */
int mdht_state_save(const mdht_node *node, mdht_time now, uint64_t wall_ms,
                    uint8_t **out, size_t *len, mdht_state_info *info);

/* Validates a whole file without a node: header, checksum and every
 * section. 0 when mdht_state_load would accept it; MDHT_ERR_CORRUPT
 * (truncated, not a state file, checksum mismatch, malformed section) or
 * MDHT_ERR_VERSION (a version or flag this reader does not know).
 * `info` (may be NULL) gets the header fields and counts, and info->why
 * the reason of a failure. */
int mdht_state_check(const uint8_t *buf, size_t len, mdht_state_info *info);

/* The node id saved in a valid file, so that the node can be created with
 * it (the id is fixed at mdht_node_new). Errors: as mdht_state_check. */
int mdht_state_peek_id(const uint8_t *buf, size_t len, mdht_id *out);

/* Restores a state into `node` (normally fresh from mdht_node_new with the
 * peeked id; another id works too, nodes are placed by the node's own).
 * The whole file is validated before anything changes, so a failure
 * leaves the node as it was. Routing entries enter as questionable, to be
 * pinged by mdht_state_ping_pending(); entries of the other address family
 * than the node's, martian, or private on a public node are skipped. Peers
 * keep the lifetime they had left minus the downtime; those past it are
 * dropped. Publishes STATE_LOADED. `wall_ms` is the current Unix time in
 * ms; `info` may be NULL. Errors: as mdht_state_check, MDHT_ERR_INVAL,
 * MDHT_ERR_NOMEM (the node may then hold part of the state). */
int mdht_state_load(mdht_node *node, const uint8_t *buf, size_t len,
                    mdht_time now, uint64_t wall_ms, mdht_state_info *info);

/* Pings up to `max` loaded nodes that have not been pinged yet, bucket
 * entries before replacement candidates, each with the id we know it by
 * (an answer with another id counts as a failure). Call it on a timer
 * until it returns 0: the caller's pace is the rate bound (the driver uses
 * 20 per second), so that a restart with a full table does not send a
 * burst of hundreds of pings. Returns how many were pinged, 0 when none is
 * left, MDHT_ERR_AGAIN when some are left but none could be sent now
 * (transaction table or send queue full), or MDHT_ERR_INVAL (max 0). */
int mdht_state_ping_pending(mdht_node *node, mdht_time now, uint32_t max);

/* Loaded nodes not yet pinged. */
uint32_t mdht_state_pending(const mdht_node *node);

/* Publishes STATE_SAVED with the counts of `info`: the driver calls it
 * once the bytes are safely on disk, which the core cannot know. */
void mdht_state_publish_saved(mdht_node *node, const mdht_state_info *info,
                              mdht_time now);

#endif
