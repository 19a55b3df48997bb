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
  if (req->cmd == MDHT_CTL_SAMPLE) job->deadline += MDHT_CTL_SAMPLE_GRACE_MS;
}

/* sample: each new info-hash is a line at once, and the owner is told,
 * so that the lines stream while the crawl runs. */
static void on_sample(const mdht_id *ih, const mdht_addr *from, void *user) {
  mdht_ctl_job *job = user;
  mdht_ctl_format_sample_found(&job->req, ih, from, job->out);
  if (job->notify) job->notify(job, job->user);
}

/* Starts the node's operation for `req`: its id, or < 0. */
static int64_t start_op(mdht_ctl_job *job, mdht_time now) {
  const mdht_ctl_req *req = &job->req;
  mdht_node *node = job->node;

  switch (req->cmd) {
  case MDHT_CTL_GET_PEERS:
    return mdht_node_get_peers(node, &req->target, on_result, job, now);
  case MDHT_CTL_SCRAPE:
    return mdht_node_scrape(node, &req->target, on_result, job, now);
  case MDHT_CTL_FIND_NODE:
    return mdht_node_find_node(node, &req->target, on_result, job, now);
  case MDHT_CTL_ANNOUNCE:
    return mdht_node_announce(node, &req->target, req->port, req->implied_port,
                              req->seed, on_result, job, now);
  case MDHT_CTL_PING:
    return mdht_node_ping_addr(node, &req->addr, on_result, job, now);
  case MDHT_CTL_SAMPLE:
    /* The crawl ends by itself at the request's timeout (its report is
     * the answer); job->deadline, a second later, only backs it up. */
    return mdht_node_sample(node, req->max,
                            job->deadline > now + MDHT_CTL_SAMPLE_GRACE_MS
                                ? job->deadline - MDHT_CTL_SAMPLE_GRACE_MS - now
                                : 1,
                            on_sample, on_result, job, now);
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

static void list_node(const mdht_node_entry *e, void *user) {
  mdht_ctl_list_node(user, e);
}
static void list_infohash(const mdht_store_entry *e, void *user) {
  mdht_ctl_list_infohash(user, e);
}
static void list_peer(const mdht_stored_peer *p, void *user) {
  mdht_ctl_list_peer(user, p);
}

/* table, infohashes, peers: what the node holds, listed at once (within
 * the response's budget, see mdht_ctl_list). */
static void run_list(mdht_ctl_job *job, mdht_time now) {
  const mdht_ctl_req *req = &job->req;
  mdht_ctl_list l;
  char hex[41], msg[128];
  int code = MDHT_CTL_EXIT_OK;

  msg[0] = '\0';
  mdht_ctl_list_init(&l, req, job->out, MDHT_CTL_MAX_OUT, now);
  if (req->cmd == MDHT_CTL_TABLE) {
    mdht_node_visit_table(job->node, now, list_node, &l);
    /* BEP 32: a dual-stack node's other table, after the first (the
     * addresses tell the family). */
    if (mdht_node_sibling(job->node))
      mdht_node_visit_table(mdht_node_sibling(job->node), now, list_node, &l);
    if (l.shown + l.more == 0)
      snprintf(msg, sizeof msg, "the routing table is empty");
  } else if (req->cmd == MDHT_CTL_INFOHASHES) {
    mdht_node_visit_store(job->node, now, list_infohash, &l);
    if (l.shown + l.more == 0) snprintf(msg, sizeof msg, "no info-hash stored");
  } else {
    mdht_node_visit_peers(job->node, &req->target, now, list_peer, &l);
    mdht_id_format(&req->target, hex);
    if (l.shown + l.more == 0)
      snprintf(msg, sizeof msg, "no peer stored for %s", hex);
  }
  mdht_ctl_list_end(&l);
  /* Nothing to list is an answer, not an error: exit 1, as get-peers. */
  if (msg[0]) code = MDHT_CTL_EXIT_NONE;
  job_done(job, code, msg[0] ? msg : NULL);
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
  if (req->cmd == MDHT_CTL_TABLE || req->cmd == MDHT_CTL_INFOHASHES ||
      req->cmd == MDHT_CTL_PEERS) {
    run_list(job, now);
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

void mdht_ctl_job_expire(mdht_ctl_job *job, bool waiting) {
  char span[32], addr[64], msg[160];
  mdht_time ms =
      job->req.timeout_ms ? job->req.timeout_ms : MDHT_CTL_DEFAULT_TIMEOUT_MS;
  if (job->done) return;
  if (ms % 1000 == 0)
    snprintf(span, sizeof span, "%llu s", (unsigned long long)(ms / 1000));
  else
    snprintf(span, sizeof span, "%llu ms", (unsigned long long)ms);
  if (job->req.cmd == MDHT_CTL_PING) {
    /* The same "did not answer" as when the node's own query times out:
     * --timeout only says how long to wait for it (docs/mdht.1). */
    if (mdht_addr_format(&job->req.addr, addr, sizeof addr) < 0)
      strcpy(addr, "?");
    snprintf(msg, sizeof msg, "no answer from %s within %s", addr, span);
    mdht_ctl_job_fail(job, MDHT_CTL_EXIT_NONE, msg);
  } else if (waiting) {
    mdht_ctl_job_fail(job, MDHT_CTL_EXIT_ERROR,
                      "the node knows no other node yet");
  } else {
    snprintf(msg, sizeof msg, "timed out after %s", span);
    mdht_ctl_job_fail(job, MDHT_CTL_EXIT_ERROR, msg);
  }
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
