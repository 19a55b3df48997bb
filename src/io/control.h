/*
 * The control socket: how the client commands (get-peers, announce,
 * find-node, ping, stats, save) reach a long-lived `mdht run`, so that they
 * reuse its routing table instead of joining the DHT from scratch each time.
 *
 * Transport: a Unix stream socket (mode 0600), one or more requests per
 * connection, answered in order.
 *
 * Protocol (all text, lines end with LF): a request is one line
 * (ctl_request.h), a response is output and progress lines and one status
 * line (ctl_format.h).
 *
 * For example:
 *
 *   > get-peers 0123456789abcdef0123456789abcdef01234567 --timeout 5000
 *   < 127.0.2.1:6999
 *   < \0exit 0
 *   > ping 127.0.0.1:1
 *   < \0exit 1 no answer from 127.0.0.1:1
 *   > frobnicate
 *   < \0exit 2 unknown command 'frobnicate'
 *
 * The server never trusts a client: request lines are bounded (a longer one
 * is answered with an error and the connection closed), sockets are
 * non-blocking, output per client is bounded, at most
 * MDHT_CTL_MAX_CLIENTS are served at once (more are told so and closed),
 * an idle or stalled client is dropped after MDHT_CTL_IDLE_MS, and an
 * operation whose client goes away is cancelled.
 *
 * The same request parser (ctl_request.h), job runner (ctl_job.h) and
 * output formatter (ctl_format.h) serve the short-lived node of a client
 * command run without --control, so that the output is the same either
 * way. This header includes them, and the client (ctl_client.h) and
 * info-hash parser (magnet.h), so that the program needs only it.
 */
#ifndef MDHT_CONTROL_H
#define MDHT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ctl_client.h"
#include "ctl_format.h"
#include "ctl_job.h"
#include "ctl_request.h"
#include "loop.h"
#include "magnet.h"
#include "mdht.h"

#define MDHT_CTL_MAX_CLIENTS 16
#define MDHT_CTL_IDLE_MS ((mdht_time)30000)

/* -------------------------------------------------------------- server */

struct mdht_driver;
typedef struct mdht_ctl_client mdht_ctl_client;

/* Saves the node's state now, for a `save` request; called from the loop,
 * outside the node. Returns 0 with `out` filled, or < 0 with a one-line
 * reason in `err`. The persistence layer belongs to the program, not to
 * the server: hence a callback. */
typedef int (*mdht_ctl_save_fn)(void *user, mdht_ctl_saved *out, char *err,
                                size_t errcap);

typedef struct mdht_ctl_server {
  int lfd; /* listening socket; it and each client are watched by the
              driver's loop */
  mdht_loop_timer timer; /* the earliest client deadline */
  mdht_loop_wakeup wake; /* a job ended or a node arrived, inside the node */
  char path[108];
  dev_t dev;
  ino_t ino;
  struct mdht_driver *driver;
  int sub;                  /* event subscription, or -1 */
  mdht_ctl_client *clients; /* MDHT_CTL_MAX_CLIENTS slots */
  uint64_t served;
  /* Set by the program after opening; NULL (a node that keeps no state):
   * `save` is answered with an error. */
  mdht_ctl_save_fn save;
  void *save_user;
} mdht_ctl_server;

/* Creates the socket at `path`: mode 0600; a stale socket (nobody
 * listening) is replaced. Errors, with a one-line reason in `err`:
 * MDHT_ERR_EXISTS (an mdht answers there, `path` is not a socket, or its
 * directory is writable by group or others without the sticky bit),
 * MDHT_ERR_IO (any other failure). */
int mdht_ctl_server_open(mdht_ctl_server *srv, const char *path, char *err,
                         size_t errcap);
/* Starts serving on the driver's loop and node. Returns 0, -errno, or
 * MDHT_ERR_FULL (no subscriber slot left on the node). */
int mdht_ctl_server_attach(mdht_ctl_server *srv, struct mdht_driver *driver);
/* Drops every client (cancelling their operations), closes the socket
 * and removes the file if it is still ours. */
void mdht_ctl_server_close(mdht_ctl_server *srv);

/* -------------------------------------------------------- default path */

/* Where `mdht run` serves and the client commands look by default:
 * $XDG_RUNTIME_DIR/mdht.sock (an absolute XDG_RUNTIME_DIR; XDG says to
 * ignore a relative one), else <state dir>/control, the state directory
 * being `state_dir` or, when NULL, the default one (persist.h). *in_state
 * (may be NULL) tells which. Returns 0, -ENOENT (no XDG_RUNTIME_DIR and no
 * state directory known) or -ENAMETOOLONG. */
int mdht_ctl_default_path(char *buf, size_t cap, const char *state_dir,
                          bool *in_state);
/* Whether a node listens at `path`: a connect succeeds (or finds its
 * backlog full). Says nothing of whose node it is: mdht_ctl_call checks
 * that (SO_PEERCRED) when it talks to it. */
bool mdht_ctl_serves(const char *path);

#endif
