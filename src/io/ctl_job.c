/* Jobs: a control request run on a node. See ctl_job.h. */
#include "ctl_job.h"

#include <stdio.h>
#include <string.h>

#include "id.h"

static void job_done(mdht_ctl_job *job, int code, const char *msg) {
  job->op = 0;
  job->code = code;
  mdht_ctl_buf_status(job->out, code, msg);
  job->done = true;
  if (job->notify) job->notify(job, job->user);
}

static void on_result(const mdht_result *r, void *user) {
  mdht_ctl_job *job = user;
  char msg[256];
  int code;
  mdht_ctl_format_result(&job->req, r, job->out, &code, msg, sizeof msg);
  job_done(job, code, msg[0] ? msg : NULL);
}

void mdht_ctl_job_init(mdht_ctl_job *job, mdht_node *node,
                       const mdht_ctl_req *req, mdht_ctl_buf *out,
                       mdht_time now, mdht_ctl_notify notify, void *user) {
  memset(job, 0, sizeof *job);
  job->req = *req;
  job->node = node;
  job->out = out;
  job->notify = notify;
  job->user = user;
  job->deadline =
      now + (req->timeout_ms ? req->timeout_ms : MDHT_CTL_DEFAULT_TIMEOUT_MS);
}

/* Starts the node's operation for `req`: its id, or < 0. */
static int64_t start_op(mdht_ctl_job *job, mdht_time now) {
  const mdht_ctl_req *req = &job->req;
  mdht_node *node = job->node;

  switch (req->cmd) {
  case MDHT_CTL_GET_PEERS:
    return mdht_node_get_peers(node, &req->target, on_result, job, now);
  case MDHT_CTL_FIND_NODE:
    return mdht_node_find_node(node, &req->target, on_result, job, now);
  case MDHT_CTL_ANNOUNCE:
    return mdht_node_announce(node, &req->target, req->port, req->implied_port,
                              req->seed, on_result, job, now);
  case MDHT_CTL_PING:
    return mdht_node_ping_addr(node, &req->addr, on_result, job, now);
  case MDHT_CTL_GET_ITEM:
    if (req->item_mutable)
      return mdht_node_get_mutable(node, req->pk, req->salt, req->salt_len,
                                   on_result, job, now);
    return mdht_node_get_immutable(node, &req->target, on_result, job, now);
  case MDHT_CTL_PUT_ITEM:
    if (req->item_mutable)
      return mdht_node_put_mutable(node, req->key, req->salt, req->salt_len,
                                   req->value, req->value_len,
                                   req->has_seq ? req->seq : -1, req->has_cas,
                                   req->cas, on_result, job, now);
    return mdht_node_put_immutable(node, req->value, req->value_len, on_result,
                                   job, now);
  default:
    return MDHT_ERR_INVAL;
  }
}

int mdht_ctl_job_start(mdht_ctl_job *job, mdht_time now) {
  const mdht_ctl_req *req = &job->req;
  int64_t rc;
  char msg[128];

  if (req->cmd == MDHT_CTL_STATS) {
    mdht_ctl_format_stats(req, job->node, now, job->out);
    job_done(job, MDHT_CTL_EXIT_OK, NULL);
    return 0;
  }
  if (req->cmd == MDHT_CTL_SAVE) {
    /* The server answers it (mdht_ctl_server.save); a job has no state
     * to save. */
    job_done(job, MDHT_CTL_EXIT_ERROR,
             "save needs a running node's control "
             "socket");
    return 0;
  }
  job->starting = true;
  rc = start_op(job, now);
  job->starting = false;
  if (rc == MDHT_ERR_AGAIN) return MDHT_ERR_AGAIN;
  if (rc < 0) {
    if (rc == MDHT_ERR_FULL)
      snprintf(msg, sizeof msg,
               "the node is busy (too many lookups), "
               "try again later");
    else if (rc == MDHT_ERR_ADDR)
      snprintf(msg, sizeof msg, "address not usable from this node");
    else
      snprintf(msg, sizeof msg, "cannot start %s: %s",
               mdht_ctl_cmd_name(req->cmd), mdht_strerror((int)rc));
    job_done(job, MDHT_CTL_EXIT_ERROR, msg);
    return 0;
  }
  /* The callback may have run already, inside the call. */
  if (!job->done) job->op = rc;
  return 0;
}

void mdht_ctl_job_fail(mdht_ctl_job *job, int code, const char *msg) {
  if (job->done) return;
  if (job->op > 0) mdht_node_cancel(job->node, job->op);
  job_done(job, code, msg);
}

void mdht_ctl_job_event(mdht_ctl_job *job, const mdht_event *ev) {
  char text[256];

  /* The lookup's own id shows only in its events: the one that starts
   * inside mdht_ctl_job_start's call is ours. */
  if (ev->type == MDHT_EV_LOOKUP_STARTED && job->starting &&
      mdht_id_eq(&ev->id, &job->req.target)) {
    job->lookup_id = ev->u.lookup.lookup_id;
    return;
  }
  if (ev->type != MDHT_EV_LOOKUP_PROGRESS || job->done || !job->req.progress ||
      !job->lookup_id || ev->u.lookup.lookup_id != job->lookup_id)
    return;
  /* One line per round: a response each is too many to read. */
  if (ev->u.lookup.round == job->last_round && job->last_round) return;
  job->last_round = ev->u.lookup.round;
  mdht_ctl_format_progress(ev, text, sizeof text);
  mdht_ctl_buf_progress(job->out, text);
}
