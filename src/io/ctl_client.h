/*
 * The control client: how a client command (get-peers, announce,
 * find-node, ping, stats, save) run with --control asks a long-lived
 * `mdht run` over its Unix socket (control.h), and prints the answer.
 *
 * Its own module because it runs in another process than the server and
 * trusts it no more than the server trusts it: the listener must run as our
 * uid (SO_PEERCRED), every byte of the answer is escaped before it reaches
 * a terminal, and one deadline bounds the whole call.
 */
#ifndef MDHT_CTL_CLIENT_H
#define MDHT_CTL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ctl_format.h"
#include "mdht.h"

/* Reads a response: call with each chunk received. Output lines go to
 * `out`, progress lines to `progress` (NULL: dropped), the status message
 * to `msg`, all with mdht_ctl_escape applied: the bytes come from another
 * process, and must not drive the terminal they are printed on. Returns 1 once
 * the status line has been read (then `code` and `msg` are set), 0 if more is
 * needed, MDHT_ERR_PROTO on a line longer than the reader's buffer. */
enum {
  MDHT_CTL_RD_START,   /* at the start of a line */
  MDHT_CTL_RD_OUTPUT,  /* in an output line: passed through */
  MDHT_CTL_RD_BUFFERED /* in a progress or status line: buffered */
};

typedef struct mdht_ctl_reader {
  int state;
  char kind; /* of a buffered line */
  char line[1024];
  size_t len;
  int code;
  char msg[512];
  bool json; /* escapes in output lines as \u00NN, not \xNN */
} mdht_ctl_reader;

void mdht_ctl_reader_init(mdht_ctl_reader *rd);
int mdht_ctl_reader_feed(mdht_ctl_reader *rd, const char *data, size_t len,
                         FILE *out, FILE *progress);

/* Connects to `path`, refuses (exit 2, the reason in `msg`) a listener
 * that runs as another uid than ours (SO_PEERCRED), sends `line` (a
 * request with its LF) and prints the response, escaped: output lines on `out`,
 * progress lines on `progress` (NULL: dropped). Gives up `timeout_ms` after
 * it starts (connect, send and answer together). Runs on an mdht_loop of its
 * own (loop.h); for the call's length SIGINT and SIGTERM are blocked and
 * taken through the loop (even when inherited as ignored), and end the
 * call with 128 + the signal (130 for SIGINT, 143 for SIGTERM) and
 * "interrupted", as they end the short-lived node of the client commands.
 * Returns the command's exit status; when a message goes with it (the server's,
 * or why the call failed), it is in `msg` (else msg[0] is NUL). */
int mdht_ctl_call(const char *path, const char *line, mdht_time timeout_ms,
                  FILE *out, FILE *progress, char *msg, size_t msgcap);

#endif
