/*
 * The control protocol's responses, and what goes in them: the lines of a
 * finished lookup, of `stats` and of `save`, in text or JSON, and the one
 * escaper that keeps bytes from elsewhere out of terminals and JSON.
 *
 * Its own module because it is pure (tests feed it made-up results) and is
 * what changes when an output line does: the same formatter serves the
 * control socket and the short-lived node of a client command run without
 * --control, so that the output is the same either way.
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
 * the status line ends the response unambiguously.
 */
#ifndef MDHT_CTL_FORMAT_H
#define MDHT_CTL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_request.h"
#include "mdht.h"

#define MDHT_CTL_MAX_OUT (256 * 1024) /* bytes of response per request */

/* Exit statuses, as the command line promises (DESIGN.md). */
#define MDHT_CTL_EXIT_OK 0
#define MDHT_CTL_EXIT_NONE 1 /* asked and answered, but nothing found */
#define MDHT_CTL_EXIT_ERROR 2

#define MDHT_CTL_PROGRESS '\x01'
#define MDHT_CTL_STATUS '\0'

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
/* Appends a progress line, within half the budget; dropping it is not an
 * overflow. */
void mdht_ctl_buf_progress(mdht_ctl_buf *b, const char *text);
/* Appends the status line; `msg` may be NULL. */
void mdht_ctl_buf_status(mdht_ctl_buf *b, int code, const char *msg);

/* The lines of a finished operation, and its exit status (and message, if
 * any) into `code` and `msg`. Pure: tests feed it made-up results. */
void mdht_ctl_format_result(const mdht_ctl_req *req, const mdht_result *r,
                            mdht_ctl_buf *out, int *code, char *msg,
                            size_t msgcap);

/* `mdht sample`: one info-hash as found, "HEX" or with --json
 * {"info_hash":"HEX","from":"IP:PORT"}. Pure. */
void mdht_ctl_format_sample_found(const mdht_ctl_req *req, const mdht_id *ih,
                                  const mdht_addr *from, mdht_ctl_buf *out);

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
 * {"type":"saved",...} object. The path goes through mdht_ctl_escape: a
 * strange one stays one line, and valid JSON. Pure. */
void mdht_ctl_format_saved(const mdht_ctl_req *req, const mdht_ctl_saved *s,
                           mdht_ctl_buf *out);

/* ---------------------------------------------------------- inspection */

/* `mdht table`, `mdht infohashes` and `mdht peers`: one line per routing
 * entry, stored info-hash or stored peer, in text or JSON. A node may hold
 * thousands, so the lines are capped rather than left to overflow the
 * response (which would turn it into an error): once fewer than
 * MDHT_CTL_LIST_RESERVE bytes of `limit` are left, lines are counted, not
 * written, and mdht_ctl_list_end adds "... N more (output capped)" (JSON:
 * {"type":"more","count":N}). Every field is a number, hex, a numeric
 * address or a fixed word: nothing from the network is printed as text,
 * so there is nothing for the escaper to do here. Pure. */
#define MDHT_CTL_LIST_RESERVE 1024

typedef struct mdht_ctl_list {
  const mdht_ctl_req *req;
  mdht_ctl_buf *out;
  size_t limit; /* bytes of `out` the lines may fill: MDHT_CTL_MAX_OUT */
  mdht_time now;
  uint64_t shown, more;
} mdht_ctl_list;

void mdht_ctl_list_init(mdht_ctl_list *l, const mdht_ctl_req *req,
                        mdht_ctl_buf *out, size_t limit, mdht_time now);
/* "BUCKET ID ADDR STATE age Ns seen Ns rtt Nms" ("seen -", "rtt -" when
 * never); JSON {"type":"node",...}. */
void mdht_ctl_list_node(mdht_ctl_list *l, const mdht_node_entry *e);
/* "INFOHASH peers N seeds N newest Ns oldest Ns"; {"type":"infohash",...} */
void mdht_ctl_list_infohash(mdht_ctl_list *l, const mdht_store_entry *e);
/* "IP:PORT age Ns[ seed]"; {"type":"peer",...,"seed":..,"age_ms":..} */
void mdht_ctl_list_peer(mdht_ctl_list *l, const mdht_stored_peer *p);
/* The "... N more" line, if lines were left out. */
void mdht_ctl_list_end(mdht_ctl_list *l);

/* ------------------------------------------------------------ escaping */

/* The one escaper of the control code. Printable ASCII (0x20-0x7e) passes;
 * every other byte (C0 controls, ESC, CR, TAB, DEL, and all of 0x80-0xff,
 * where C1 controls and their UTF-8 forms live, and where a non-UTF-8 file
 * name would make invalid JSON) is written as \xNN, or \u00NN in the JSON
 * modes, where it is then valid inside a string. */
typedef enum mdht_ctl_esc {
  MDHT_CTL_ESC_TEXT,     /* \xNN; the backslash passes */
  MDHT_CTL_ESC_JSON,     /* \u00NN; quote and backslash pass: for whole JSON
                            lines, whose own escapes must survive */
  MDHT_CTL_ESC_JSON_STR, /* \u00NN, and \" and \\: for a string's body */
} mdht_ctl_esc;

/* Writes `n` bytes of `src` into `dst` (NUL-terminated, at most cap - 1
 * bytes, whole escapes only), escaped as `mode` says. Returns the length. */
size_t mdht_ctl_escape_as(char *dst, size_t cap, const char *src, size_t n,
                          mdht_ctl_esc mode);
/* MDHT_CTL_ESC_JSON when `json`, else MDHT_CTL_ESC_TEXT. */
size_t mdht_ctl_escape(char *dst, size_t cap, const char *src, size_t n,
                       bool json);

#endif
