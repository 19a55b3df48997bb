/*
 * The control socket: how the client commands (get-peers, announce,
 * find-node, ping, stats, save) reach a long-lived `mdht run`, so that they
 * reuse its routing table instead of joining the DHT from scratch each time.
 *
 * Transport: a Unix stream socket (mode 0600), one or more requests per
 * connection, answered in order.
 *
 * Protocol (all text, lines end with LF):
 *
 *   request  = command [SP argument] *(SP option) LF      (at most 1024 bytes)
 *   command  = "get-peers" | "announce" | "find-node" | "ping" | "stats"
 *            | "save"
 *   argument = 40 hex digits (find-node), 40 hex digits or a magnet link
 *              (get-peers, announce), a numeric "IP:PORT" or "[IPv6]:PORT"
 *              (ping)
 *   option   = "--json" | "--progress" | "--timeout" SP MS
 *            | "--port" SP N | "--implied-port" | "--seed"      (announce)
 *
 *   response = *(output-line | progress-line) status-line
 *   output-line   = <any bytes but NUL, SOH and LF> *<any bytes but LF> LF
 *                   what the command prints on stdout
 *   progress-line = SOH text LF         (only with --progress; for stderr)
 *   status-line   = NUL "exit" SP code [SP message] LF
 *                   code: the command's exit status (0, 1 or 2); message:
 *                   what it prints on stderr after "mdht: "
 *
 * Output lines never start with NUL or SOH (they are addresses, hex ids,
 * JSON objects, stats text), so the first byte of a line tells its kind and
 * the status line ends the response unambiguously. For example:
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
 * The same request parser, job runner and output formatter serve the
 * short-lived node of a client command run without --control, so that the
 * output is the same either way.
 */
#ifndef MDHT_CONTROL_H
#define MDHT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "loop.h"
#include "mdht.h"

#define MDHT_CTL_MAX_LINE 1024
#define MDHT_CTL_MAX_CLIENTS 16
#define MDHT_CTL_MAX_OUT (256 * 1024) /* bytes of response per request */
#define MDHT_CTL_IDLE_MS ((mdht_time)30000)
#define MDHT_CTL_DEFAULT_TIMEOUT_MS ((mdht_time)30000)
#define MDHT_CTL_MAX_TIMEOUT_MS ((mdht_time)3600 * 1000)

/* Exit statuses, as the command line promises (DESIGN.md). */
#define MDHT_CTL_EXIT_OK 0
#define MDHT_CTL_EXIT_NONE 1 /* asked and answered, but nothing found */
#define MDHT_CTL_EXIT_ERROR 2

#define MDHT_CTL_PROGRESS '\x01'
#define MDHT_CTL_STATUS '\0'

typedef enum mdht_ctl_cmd {
  MDHT_CTL_NONE,
  MDHT_CTL_GET_PEERS,
  MDHT_CTL_ANNOUNCE,
  MDHT_CTL_FIND_NODE,
  MDHT_CTL_PING,
  MDHT_CTL_STATS,
  MDHT_CTL_SAVE /* only on a running node's socket: see mdht_ctl_save_fn */
} mdht_ctl_cmd;

typedef struct mdht_ctl_req {
  mdht_ctl_cmd cmd;
  mdht_id target;       /* info-hash or id */
  mdht_addr addr;       /* ping */
  uint16_t port;        /* announce */
  bool implied_port;    /* announce */
  bool seed;            /* announce */
  bool json;            /* one JSON object per line */
  bool progress;        /* progress lines */
  mdht_time timeout_ms; /* 0: MDHT_CTL_DEFAULT_TIMEOUT_MS */
} mdht_ctl_req;

/* "get-peers" -> MDHT_CTL_GET_PEERS; MDHT_CTL_NONE if unknown. */
mdht_ctl_cmd mdht_ctl_cmd_parse(const char *name);
const char *mdht_ctl_cmd_name(mdht_ctl_cmd cmd);

/* 40 hex digits, or a magnet link whose xt is urn:btih: with 40 hex or 32
 * base32 digits. Returns 0 or MDHT_ERR_INVAL. */
int mdht_ctl_parse_infohash(mdht_id *out, const char *s);

/* Parses one request line (without or with its LF). Returns 0, or
 * MDHT_ERR_INVAL with a one-line reason in `err`. Pure. */
int mdht_ctl_parse(mdht_ctl_req *req, const char *line, size_t len, char *err,
                   size_t errcap);

/* Writes the request line for `req`, LF included. Returns its length or
 * MDHT_ERR_NOBUF. mdht_ctl_parse reads it back to the same request. */
int mdht_ctl_format(const mdht_ctl_req *req, char *buf, size_t cap);

/* ----------------------------------------------------------- responses */

/* A response being built: output lines, progress lines and the status
 * line, in the wire format above. Grows up to MDHT_CTL_MAX_OUT; past that,
 * lines are dropped and `overflow` set. */
typedef struct mdht_ctl_buf {
  char *p;
  size_t len, cap;
  bool overflow;
} mdht_ctl_buf;

void mdht_ctl_buf_free(mdht_ctl_buf *b);
void mdht_ctl_buf_reset(mdht_ctl_buf *b);
/* Appends one line (a LF is added). */
void mdht_ctl_buf_line(mdht_ctl_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends the status line; `msg` may be NULL. */
void mdht_ctl_buf_status(mdht_ctl_buf *b, int code, const char *msg);

/* The lines of a finished operation, and its exit status (and message, if
 * any) into `code` and `msg`. Pure: tests feed it made-up results. */
void mdht_ctl_format_result(const mdht_ctl_req *req, const mdht_result *r,
                            mdht_ctl_buf *out, int *code, char *msg,
                            size_t msgcap);

/* A LOOKUP_PROGRESS event as one line of text, without LF. */
void mdht_ctl_format_progress(const mdht_event *ev, char *buf, size_t cap);

/* `mdht stats`: the node's counters and its routing table per bucket. */
void mdht_ctl_format_stats(const mdht_ctl_req *req, const mdht_node *node,
                           mdht_time now, mdht_ctl_buf *out);

/* What a `save` wrote, for its reply. */
typedef struct mdht_ctl_saved {
  bool counted;          /* the counts below are known */
  uint32_t nodes, peers; /* nodes include replacements */
  char path[4096 + 16];  /* the state file */
} mdht_ctl_saved;

/* `mdht save`: "saved N nodes, M peers to PATH", or with --json one
 * {"type":"saved",...} object. Pure. */
void mdht_ctl_format_saved(const mdht_ctl_req *req, const mdht_ctl_saved *s,
                           mdht_ctl_buf *out);

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

/* Writes `n` bytes of `src` into `dst` (NUL-terminated, at most cap - 1
 * bytes, whole escapes only) with every byte that is not printable ASCII
 * (0x20-0x7e) as \xNN, or \u00NN when `json`. Returns the length. */
size_t mdht_ctl_escape(char *dst, size_t cap, const char *src, size_t n,
                       bool json);

void mdht_ctl_reader_init(mdht_ctl_reader *rd);
int mdht_ctl_reader_feed(mdht_ctl_reader *rd, const char *data, size_t len,
                         FILE *out, FILE *progress);

/* ---------------------------------------------------------------- jobs */

/* One command running on a node: start it, and the node calls back when it
 * ends; `notify` is called then (from inside the node: it must not call
 * into the node). */
typedef struct mdht_ctl_job mdht_ctl_job;
typedef void (*mdht_ctl_notify)(mdht_ctl_job *job, void *user);

struct mdht_ctl_job {
  mdht_ctl_req req;
  mdht_node *node;
  int64_t op; /* > 0 while the node runs it */
  bool done;  /* `out` holds the whole response, status line included */
  int code;   /* exit status once done */
  mdht_time deadline;
  mdht_ctl_buf *out;
  mdht_ctl_notify notify;
  void *user;
  /* Progress: the node's id of our lookup (it differs from `op`), learnt
   * from the LOOKUP_STARTED event published while `starting`. */
  bool starting;
  uint32_t lookup_id;
  uint32_t last_round;
};

/* Prepares `req` on `node`, its response to be appended to `out`; the
 * deadline (req->timeout_ms) runs from `now`. */
void mdht_ctl_job_init(mdht_ctl_job *job, mdht_node *node,
                       const mdht_ctl_req *req, mdht_ctl_buf *out,
                       mdht_time now, mdht_ctl_notify notify, void *user);
/* Starts the job. Returns 0 when it runs (or is done already: stats, an
 * immediate error; see job->done), or MDHT_ERR_AGAIN when the routing
 * table is empty: call again once a node has been added, or
 * mdht_ctl_job_fail at the deadline. */
int mdht_ctl_job_start(mdht_ctl_job *job, mdht_time now);
/* Cancels the node's operation, if any, and ends the job with `code` and
 * `msg`. Not from inside a node callback. */
void mdht_ctl_job_fail(mdht_ctl_job *job, int code, const char *msg);
/* Feed every event of the node here (from a subscriber): it notes the
 * job's lookup id, and appends a progress line for each new round of it if
 * the request asked for progress. */
void mdht_ctl_job_event(mdht_ctl_job *job, const mdht_event *ev);

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
/* Starts serving on the driver's loop and node. Returns 0 or -errno. */
int mdht_ctl_server_attach(mdht_ctl_server *srv, struct mdht_driver *driver);
/* Drops every client (cancelling their operations), closes the socket
 * and removes the file if it is still ours. */
void mdht_ctl_server_close(mdht_ctl_server *srv);

/* -------------------------------------------------------------- client */

/* Connects to `path`, refuses (exit 2, the reason in `msg`) a listener
 * that runs as another uid than ours (SO_PEERCRED), sends `line` (a
 * request with its LF) and prints the response, escaped: output lines on `out`,
 * progress lines on `progress` (NULL: dropped). Gives up `timeout_ms` after
 * sending. Returns the command's exit status; when a message goes with it (the
 * server's, or why the call failed), it is in `msg` (else msg[0] is NUL). */
int mdht_ctl_call(const char *path, const char *line, mdht_time timeout_ms,
                  FILE *out, FILE *progress, char *msg, size_t msgcap);

#endif
