/*
 * Jobs: one control request running on a node (a lookup, an announce, a
 * ping, or stats), from its start to its response in an mdht_ctl_buf.
 *
 * Its own module because two callers run jobs: the control server
 * (control.c) for each client, and the client commands run without
 * --control (app/commands.c) on their short-lived node. Neither the
 * transport nor the loop shows here: a job only calls the node and is
 * called back by it.
 */
#ifndef MDHT_CTL_JOB_H
#define MDHT_CTL_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl_format.h"
#include "ctl_request.h"
#include "mdht.h"

/* One command running on a node: start it, and the node calls back when it
 * ends; `notify` is called then (from inside the node: it must not call
 * into the node). A sample job also calls `notify` with job->done still
 * false each time it appends an info-hash line: the owner sends what is
 * in `out` (and must not stop on it). */
typedef struct mdht_ctl_job mdht_ctl_job;
typedef void (*mdht_ctl_notify)(mdht_ctl_job *job, void *user);

/* A sample crawl ends by itself at its timeout, with its report; the job's
 * own deadline comes this much later, only in case it does not. */
#define MDHT_CTL_SAMPLE_GRACE_MS ((mdht_time)1000)

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
/* The deadline passed: ends the job as docs/mdht.1 says. A ping that got
 * no answer is exit 1, "no answer from ADDR within N s" (as when its query
 * times out first); a lookup still `waiting` for a usable node is exit 2,
 * "the node knows no other node yet"; anything else exit 2, "timed out
 * after N s". Not from inside a node callback. */
void mdht_ctl_job_expire(mdht_ctl_job *job, bool waiting);
/* Feed every event of the node here (from a subscriber): it notes the
 * job's lookup id, and appends a progress line for each new round of it if
 * the request asked for progress. */
void mdht_ctl_job_event(mdht_ctl_job *job, const mdht_event *ev);

#endif
