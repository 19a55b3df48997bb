/*
 * A UDP binding: one socket and one node, attached to a loop (loop.h).
 * It is the whole I/O of a sans-I/O node:
 *
 *   - datagrams are received in batches (recvmmsg, into the loop's shared
 *     buffers) and handed to mdht_node_recv; each batch is answered before
 *     the next is read, so the node's bounded out-queue holds at most one
 *     batch of replies;
 *   - mdht_node_next_packet is drained into batched sends (sendmmsg); what
 *     the kernel refuses waits for EPOLLOUT;
 *   - a loop timer stands at mdht_node_next_deadline and calls
 *     mdht_node_tick;
 *   - before each wait, a prepare hook sends what the node queued when
 *     someone else called into it (a lookup started by the control server,
 *     a ping from persistence) and moves the timer to its new deadline.
 *
 * Any number of bindings share one loop: `mdht testnet` runs a thousand;
 * a dual-stack node is two. The node stays the caller's: create it with
 * the bound address (b->sock.local) after mdht_binding_open.
 */
#ifndef MDHT_BINDING_H
#define MDHT_BINDING_H

#include <stdbool.h>

#include "logforge.h"
#include "loop.h"
#include "mdht.h"
#include "sock.h"

typedef struct mdht_binding {
  mdht_loop *loop;
  mdht_node *node; /* NULL until mdht_binding_start */
  mdht_sock sock;
  mdht_loop_timer timer;
  mdht_loop_prepare prep;
  bool want_out; /* EPOLLOUT watched */
  bool started;
  mdht_logforge *log; /* send errors, at debug level; NULL: silent */
} mdht_binding;

/* Opens the socket on `bind` (port 0: the kernel picks one; b->sock.local
 * then has it). Returns 0 or -errno. */
int mdht_binding_open(mdht_binding *b, mdht_loop *loop, const mdht_addr *bind);

/* Serves `node` from now on: watches the socket, sets the timer, sends
 * what the node has queued. Returns 0 or -errno. */
int mdht_binding_start(mdht_binding *b, mdht_node *node);

/* Sends what the node has queued and moves the timer to its next
 * deadline. The prepare hook does this before each wait; call it only to
 * send sooner. */
void mdht_binding_flush(mdht_binding *b);

/* Leaves the loop and closes the socket; the node is left as it is.
 * Safe after a failed open, and twice. */
void mdht_binding_close(mdht_binding *b);

#endif
