/*
 * The client commands (DESIGN.md, "Command line contract").
 *
 * Every command is turned into a control request (src/io/control.h). With
 * --control PATH the request goes to the running node behind PATH; without,
 * a short-lived node answers it: read-only (BEP 43, so that it does not
 * litter other nodes' routing tables), bootstrapped for this one job, and
 * gone after. Both ways print through the same formatter and reader, so the
 * output and exit status are the same.
 */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sodium.h>
#include <unistd.h>

#include "addr.h"
#include "cli.h"
#include "control.h"
#include "driver.h"
#include "hostport.h"
#include "item.h"
#include "loop.h"
#include "mdht.h"
#include "sock.h"

#define DEFAULT_TIMEOUT_MS ((mdht_time)30000)
/* How much longer a --control client waits for the node's own answer at
 * the deadline (the node ends the request at --timeout): --timeout N
 * returns within N + 1 s even from a stuck node (docs/mdht.1). */
#define CONTROL_GRACE_MS 500
/* How often the short-lived node looks whether its bootstrap can still
 * succeed (router pings in flight). */
#define BOOT_POLL_MS 200

typedef struct client_args {
  mdht_ctl_cmd cmd;
  const char *bind;
  uint32_t port; /* announce: the peer's port; else the local UDP port */
  bool port_given;
  const char *bootstrap[CLI_MAX_BOOTSTRAP];
  size_t nbootstrap;
  mdht_time timeout_ms;
  bool json;
  bool implied_port;
  bool seed;
  bool standalone;
  const char *control;
  uint32_t max; /* sample */
  /* BEP 44 get / put */
  const char *pubkey, *salt, *keyfile;
  uint64_t seq, cas;
  bool seq_given, cas_given;
} client_args;

static int set_bind(void *ctx, const char *v) {
  client_args *a = ctx;
  if (cli_check_bind(v) < 0) return -1;
  a->bind = v;
  return 0;
}

static int set_port(void *ctx, const char *v) {
  client_args *a = ctx;
  uint64_t p;
  uint64_t min = a->cmd == MDHT_CTL_ANNOUNCE ? 1 : 0;
  if (cli_parse_u64(v, min, 65535, &p) < 0) {
    cli_error("bad value '%s' for --port (want an integer from %llu to 65535)",
              v, (unsigned long long)min);
    return -1;
  }
  a->port = (uint32_t)p;
  a->port_given = true;
  return 0;
}

static int set_bootstrap(void *ctx, const char *v) {
  client_args *a = ctx;
  return cli_add_bootstrap(a->bootstrap, &a->nbootstrap, v);
}

#define OPT(field) offsetof(client_args, field)
#define COMMON_OPTS                                                            \
  {"--bootstrap",                                                              \
   "HOST:PORT",                                                                \
   "join through this node (repeatable; default: the public routers)",         \
   CLI_CUSTOM,                                                                 \
   0,                                                                          \
   0,                                                                          \
   0,                                                                          \
   set_bootstrap},                                                             \
      {"--bind",   "ADDR",  "local IPv4 or IPv6 address (default 0.0.0.0)",    \
       CLI_CUSTOM, 0,       0,                                                 \
       0,          set_bind},                                                  \
      {"--timeout",                                                            \
       "SECONDS",                                                              \
       "give up after this long",                                              \
       CLI_SECONDS,                                                            \
       OPT(timeout_ms),                                                        \
       1,                                                                      \
       3600,                                                                   \
       NULL},                                                                  \
      {"--json", NULL, "one JSON object per line", CLI_FLAG, OPT(json), 0,     \
       0,        NULL},                                                        \
      {"--control",                                                            \
       "PATH",                                                                 \
       "ask the node serving PATH (default: $MDHT_CONTROL, else the default "  \
       "socket if a node serves it)",                                          \
       CLI_PATH,                                                               \
       OPT(control),                                                           \
       0,                                                                      \
       0,                                                                      \
       NULL},                                                                  \
  {                                                                            \
    "--standalone", NULL,                                                      \
        "start a short-lived node even if a running one serves the socket",    \
        CLI_FLAG, OPT(standalone), 0, 0, NULL                                  \
  }

/* Rows that several tables share. */
#define PORT_OPT                                                               \
  {                                                                            \
    "--port", "N", "local UDP port (default 0: any free one)", CLI_CUSTOM, 0,  \
        0, 0, set_port                                                         \
  }
#define SALT_OPT                                                               \
  {                                                                            \
    "--salt", "S", "a mutable item's salt (at most 64 bytes)", CLI_CUSTOM, 0,  \
        0, 0, set_salt                                                         \
  }

static const cli_opt lookup_opts[] = {
    COMMON_OPTS,
    PORT_OPT,
};

static const cli_opt announce_opts[] = {
    COMMON_OPTS,
    {"--port", "N", "the peer's port to announce (required)", CLI_CUSTOM, 0, 0,
     0, set_port},
    {"--implied-port", NULL,
     "receivers use our UDP source port (the short-lived node binds N)",
     CLI_FLAG, OPT(implied_port), 0, 0, NULL},
    {"--seed", NULL, "announce as a seed (BEP 33 \"seed\" key)", CLI_FLAG,
     OPT(seed), 0, 0, NULL},
};

static const cli_opt sample_opts[] = {
    COMMON_OPTS,
    PORT_OPT,
    {"--max", "N", "stop after N distinct info-hashes (0: no limit)", CLI_U32,
     OPT(max), 0, MDHT_CTL_MAX_SAMPLE, NULL},
};

static int set_str(const char **field, const char *opt, const char *v) {
  if (!*v) {
    cli_error("empty %s", opt);
    return -1;
  }
  *field = v;
  return 0;
}

static int set_pubkey(void *ctx, const char *v) {
  return set_str(&((client_args *)ctx)->pubkey, "--pubkey", v);
}

static int set_salt(void *ctx, const char *v) {
  client_args *a = ctx;
  if (strlen(v) > MDHT_ITEM_MAX_SALT) {
    cli_error("--salt of %zu bytes (at most 64)", strlen(v));
    return -1;
  }
  a->salt = v;
  return 0;
}

static int set_keyfile(void *ctx, const char *v) {
  return set_str(&((client_args *)ctx)->keyfile, "--key", v);
}

static int set_seq_cas(client_args *a, const char *opt, const char *v,
                       uint64_t *out, bool *given) {
  if (cli_parse_u64(v, 0, (uint64_t)INT64_MAX - 1, out) < 0) {
    cli_error("bad value '%s' for %s (want an integer from 0 to %lld)", v, opt,
              (long long)INT64_MAX - 1);
    return -1;
  }
  (void)a;
  *given = true;
  return 0;
}

static int set_seq(void *ctx, const char *v) {
  client_args *a = ctx;
  return set_seq_cas(a, "--seq", v, &a->seq, &a->seq_given);
}

static int set_cas(void *ctx, const char *v) {
  client_args *a = ctx;
  return set_seq_cas(a, "--cas", v, &a->cas, &a->cas_given);
}

static const cli_opt get_opts[] = {
    COMMON_OPTS,
    PORT_OPT,
    {"--pubkey", "HEX", "a mutable item: the publisher's key (64 hex digits)",
     CLI_CUSTOM, 0, 0, 0, set_pubkey},
    SALT_OPT,
};

static const cli_opt put_opts[] = {
    COMMON_OPTS,
    PORT_OPT,
    {"--key", "FILE", "a mutable item, signed with this key (mdht keygen)",
     CLI_CUSTOM, 0, 0, 0, set_keyfile},
    SALT_OPT,
    {"--seq", "N", "sequence number (default: one above the current)",
     CLI_CUSTOM, 0, 0, 0, set_seq},
    {"--cas", "N", "store only if the current sequence number is N", CLI_CUSTOM,
     0, 0, 0, set_cas},
};

static const cli_opt keygen_opts[] = {
    {"--json", NULL, "one JSON object", CLI_FLAG, OPT(json), 0, 0, NULL},
};

static const cli_opt stats_opts[] = {
    {"--control", "PATH",
     "the running node's control socket (default: $MDHT_CONTROL, else the "
     "default socket)",
     CLI_PATH, OPT(control), 0, 0, NULL},
    {"--timeout", "SECONDS", "give up after this long", CLI_SECONDS,
     OPT(timeout_ms), 1, 3600, NULL},
    {"--json", NULL, "one JSON object", CLI_FLAG, OPT(json), 0, 0, NULL},
};

#define NOPTS(t) (sizeof t / sizeof t[0])

static const struct {
  const char *name;
  mdht_ctl_cmd cmd;
  const char *args;
  const char *what;
} commands[] = {
    {"get-peers", MDHT_CTL_GET_PEERS, "INFOHASH",
     "Prints the peers of a torrent, one \"ip:port\" per line. Exit status\n"
     "0 if any peer was found, 1 if none."},
    {"announce", MDHT_CTL_ANNOUNCE, "INFOHASH --port N",
     "Announces a peer on PORT for the torrent to the nodes closest to it;\n"
     "prints \"nodeid ip:port\" for each node that accepted."},
    {"find-node", MDHT_CTL_FIND_NODE, "ID",
     "Prints the nodes closest to ID, \"nodeid ip:port\", closest first."},
    {"scrape", MDHT_CTL_SCRAPE, "INFOHASH",
     "BEP 33 scrape: asks the nodes closest to the torrent for the bloom\n"
     "filters of the seeds and downloaders they store, merges them and\n"
     "prints the estimated counts, \"N seeds, M peers (from K nodes)\",\n"
     "without joining the swarm. Exit status 1 if no node holds the\n"
     "swarm."},
    {"ping", MDHT_CTL_PING, "HOST:PORT",
     "Pings one node; prints \"nodeid rtt_ms\". Exit status 1 if it does\n"
     "not answer."},
    {"stats", MDHT_CTL_STATS, "",
     "Prints the routing table, storage and message counters of a running\n"
     "node."},
    {"sample", MDHT_CTL_SAMPLE, "[--max N]",
     "BEP 51 crawler: asks node after node for samples of the info-hashes\n"
     "they store (sample_infohashes), honouring each node's interval, and\n"
     "prints each new info-hash as it is found, one per line. Stops after\n"
     "--max info-hashes, at --timeout, or when no node is left to ask; a\n"
     "summary goes to stderr. Exit status 0 if any info-hash was found, 1\n"
     "if none."},
    {"get", MDHT_CTL_GET_ITEM, "TARGET | --pubkey HEX [--salt S]",
     "Gets a BEP 44 item: immutable by its target (40 hex digits), mutable\n"
     "by its publisher's key and salt; prints the value (a string's bytes,\n"
     "else its bencoding). Exit status 1 if no node has it."},
    {"put", MDHT_CTL_PUT_ITEM,
     "VALUE [--key FILE [--salt S] [--seq N|--cas N]]",
     "Stores VALUE (as a bencoded string) in the DHT (BEP 44): immutable,\n"
     "or mutable when signed with --key; prints the target (and the seq)."},
    {"keygen", MDHT_CTL_NONE, "FILE",
     "Writes a new Ed25519 key (BEP 44 mutable items) to FILE, mode 0600,\n"
     "and prints its public key. FILE must not exist."},
    {"save", MDHT_CTL_SAVE, "",
     "Makes a running node save its state now (as SIGHUP does); prints\n"
     "\"saved N nodes, M peers to FILE\". Exit status 2 if the node runs\n"
     "with --no-state or the save fails."},
    {"table", MDHT_CTL_TABLE, "",
     "Prints a running node's routing table, one entry per line:\n"
     "\"BUCKET ID IP:PORT STATE age Ns seen Ns rtt Nms\" (STATE good,\n"
     "questionable or bad; age since it was added, seen since it last\n"
     "answered or queried, rtt of its last answer; \"-\": never). Exit\n"
     "status 1 if the table is empty."},
    {"infohashes", MDHT_CTL_INFOHASHES, "",
     "Prints the info-hashes a running node stores peers for:\n"
     "\"INFOHASH peers N seeds N newest Ns oldest Ns\" (ages since the\n"
     "newest and oldest announce). Exit status 1 if none."},
    {"peers", MDHT_CTL_PEERS, "INFOHASH",
     "Prints the peers a running node stores for one info-hash:\n"
     "\"IP:PORT age Ns [seed]\". Exit status 1 if none."},
};

static int find_command(const char *name) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0) return (int)i;
  return -1;
}

bool client_command(const char *name) {
  return find_command(name) >= 0;
}

/* About the running node itself: nothing a short-lived node could answer. */
static bool node_only(mdht_ctl_cmd cmd) {
  return cmd == MDHT_CTL_STATS || cmd == MDHT_CTL_SAVE ||
         cmd == MDHT_CTL_TABLE || cmd == MDHT_CTL_INFOHASHES ||
         cmd == MDHT_CTL_PEERS;
}

static void opts_of(mdht_ctl_cmd cmd, const cli_opt **opts, size_t *n) {
  if (cmd == MDHT_CTL_ANNOUNCE) {
    *opts = announce_opts;
    *n = NOPTS(announce_opts);
  } else if (cmd == MDHT_CTL_SAMPLE) {
    *opts = sample_opts;
    *n = NOPTS(sample_opts);
  } else if (node_only(cmd)) {
    *opts = stats_opts;
    *n = NOPTS(stats_opts);
  } else if (cmd == MDHT_CTL_GET_ITEM) {
    *opts = get_opts;
    *n = NOPTS(get_opts);
  } else if (cmd == MDHT_CTL_PUT_ITEM) {
    *opts = put_opts;
    *n = NOPTS(put_opts);
  } else if (cmd == MDHT_CTL_NONE) {
    *opts = keygen_opts;
    *n = NOPTS(keygen_opts);
  } else {
    *opts = lookup_opts;
    *n = NOPTS(lookup_opts);
  }
}

static void args_default(client_args *a, mdht_ctl_cmd cmd) {
  memset(a, 0, sizeof *a);
  a->cmd = cmd;
  a->timeout_ms = DEFAULT_TIMEOUT_MS;
}

void client_usage(const char *name) {
  int i = find_command(name);
  const cli_opt *opts;
  size_t n;
  client_args defaults;

  if (i < 0) return;
  opts_of(commands[i].cmd, &opts, &n);
  args_default(&defaults, commands[i].cmd);
  printf("usage: mdht %s %s%s[OPTIONS]\n\n%s\n", name, commands[i].args,
         commands[i].args[0] ? " " : "", commands[i].what);
  if (commands[i].cmd == MDHT_CTL_GET_PEERS ||
      commands[i].cmd == MDHT_CTL_ANNOUNCE ||
      commands[i].cmd == MDHT_CTL_PEERS || commands[i].cmd == MDHT_CTL_SCRAPE)
    printf("INFOHASH is 40 hex digits or a magnet link "
           "(magnet:?xt=urn:btih:...).\n");
  printf("Exit status 2 means a usage or runtime error, explained on "
         "stderr.\n\noptions:\n");
  cli_print_options(opts, n, &defaults);
}

/* ------------------------------------------------------------ addresses */

/* Resolves HOST:PORT for ping, in `family` (MDHT_AF_*, or 0 for either,
 * IPv4 first). Returns 0, or -1 after printing why. */
static int resolve(const char *hostport, int family, mdht_addr *out) {
  struct addrinfo hints = {0}, *res = NULL, *ai;
  char host[256];
  const char *port;
  int rc;

  if (mdht_hostport_split(hostport, host, sizeof host, &port) < 0) {
    cli_error("bad address '%s' (want HOST:PORT, port 1-65535)", hostport);
    return -1;
  }
  hints.ai_family = family == MDHT_AF_INET    ? AF_INET
                    : family == MDHT_AF_INET6 ? AF_INET6
                                              : AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    cli_error("cannot resolve '%s': %s", host,
              rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    return -1;
  }
  rc = -1;
  for (int pass = 0; pass < 2 && rc < 0; pass++)
    for (ai = res; ai && rc < 0; ai = ai->ai_next)
      if ((pass == 1 || ai->ai_family == AF_INET) &&
          mdht_sock_from_sockaddr(out, ai->ai_addr, ai->ai_addrlen) == 0)
        rc = 0;
  freeaddrinfo(res);
  if (rc < 0) cli_error("cannot resolve '%s' to a usable address", host);
  return rc;
}

/* Whether the short-lived node must accept private and loopback nodes:
 * when it is told to talk to one. Names other than localhost are not
 * resolved for this (the driver resolves them). */
static bool wants_private(const client_args *a, const mdht_ctl_req *req) {
  mdht_addr x;
  if (a->bind && mdht_sock_parse_ip(&x, a->bind, 0) == 0 &&
      mdht_addr_is_private(&x))
    return true;
  if (req->cmd == MDHT_CTL_PING && mdht_addr_is_private(&req->addr))
    return true;
  for (size_t i = 0; i < a->nbootstrap; i++) {
    char host[256];
    const char *port;
    if (mdht_hostport_split(a->bootstrap[i], host, sizeof host, &port) < 0)
      continue;
    if (strcmp(host, "localhost") == 0) return true;
    if (mdht_sock_parse_ip(&x, host, 1) == 0 && mdht_addr_is_private(&x))
      return true;
  }
  return false;
}

/* ---------------------------------------------------- short-lived node */

typedef struct local {
  mdht_loop loop;
  mdht_driver d;
  mdht_ctl_job job;
  mdht_ctl_buf out;
  mdht_ctl_reader rd;
  size_t fed;     /* bytes of `out` given to the reader */
  FILE *progress; /* stderr on a terminal, else NULL */
  mdht_loop_timer timeout, poll;
  mdht_loop_wakeup wake;
  size_t routers;          /* bootstrap addresses pinged */
  mdht_time boot_deadline; /* their pings have timed out by then */
  int sub;                 /* our subscription to the node, or -1 */
  bool started;            /* the job runs (no longer waits for a node) */
  bool finished;           /* the reader saw the status line */
  bool proto_error;
  mdht_time timeout_ms;
} local;

/* Prints what the job has produced so far: output, progress, status. */
static void feed(local *l) {
  int rc;
  if (l->fed >= l->out.len || l->finished) return;
  rc = mdht_ctl_reader_feed(&l->rd, l->out.p + l->fed, l->out.len - l->fed,
                            stdout, l->progress);
  l->fed = l->out.len;
  if (rc == 1) l->finished = true;
  if (rc < 0) l->finished = l->proto_error = true;
  fflush(stdout);
}

static void local_notify(mdht_ctl_job *job, void *user) {
  local *l = user;
  feed(l);
  /* A sample job notifies each line it streams, and runs on. */
  if (job->done) mdht_loop_stop(&l->loop);
}

static void on_event(const mdht_event *ev, void *user) {
  local *l = user;
  mdht_ctl_job_event(&l->job, ev);
  if (ev->type == MDHT_EV_LOOKUP_PROGRESS) feed(l);
  /* Started from the loop, outside the node. */
  if (!l->started &&
      (ev->type == MDHT_EV_NODE_ADDED || ev->type == MDHT_EV_BOOTSTRAP_DONE))
    mdht_loop_wake(&l->loop, &l->wake);
}

static bool has_nodes(local *l) {
  mdht_stats s;
  mdht_node_stats(l->d.node, mdht_driver_now(), &s);
  return s.nodes_total > 0 || mdht_node_bootstrapped(l->d.node);
}

/* One progress line per phase (on a terminal only): the lookup's own
 * rounds follow. */
static void phase(local *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void phase(local *l, const char *fmt, ...) {
  char text[160];
  va_list ap;
  if (!l->progress || l->job.done) return;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  mdht_ctl_buf_progress(&l->out, text);
  feed(l);
}

static void try_start(local *l) {
  if (l->started || l->job.done) return;
  /* A ping needs no table; a lookup waits for the first node to answer
   * (it then finds the others itself). */
  if (l->job.req.cmd != MDHT_CTL_PING && !has_nodes(l)) return;
  if (l->job.req.cmd != MDHT_CTL_PING) {
    mdht_stats s;
    char hex[41];
    mdht_node_stats(l->d.node, mdht_driver_now(), &s);
    mdht_id_format(&l->job.req.target, hex);
    phase(l, "joined: %u node%s", s.nodes_total, s.nodes_total == 1 ? "" : "s");
    phase(l, "looking up %s...", hex);
  }
  if (mdht_ctl_job_start(&l->job, mdht_driver_now()) == 0) l->started = true;
}

/* Before the job starts: once every router ping has had its query timeout
 * (5 s) with no answer, or none is in flight any more, the bootstrap has
 * failed (the node's own retries are seconds to minutes away): fail now
 * rather than at --timeout. */
static void on_poll(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  local *l = user;
  mdht_stats s;
  try_start(l);
  if (l->started || l->job.done) return;
  mdht_node_stats(l->d.node, mdht_driver_now(), &s);
  if (!has_nodes(l) &&
      (s.txns_outstanding == 0 || mdht_loop_now() >= l->boot_deadline)) {
    mdht_ctl_job_fail(&l->job, MDHT_CTL_EXIT_ERROR,
                      "no bootstrap node answered");
    return;
  }
  mdht_loop_timer_set(loop, t, mdht_loop_now() + BOOT_POLL_MS);
}

static void on_wake(mdht_loop *loop, mdht_loop_wakeup *w, void *user) {
  (void)loop, (void)w;
  try_start(user);
}

static void on_timeout(mdht_loop *loop, mdht_loop_timer *t, void *user) {
  local *l = user;
  char msg[160];
  (void)loop, (void)t;
  if (l->job.done) return;
  if (!l->started && l->job.req.cmd != MDHT_CTL_PING) {
    snprintf(msg, sizeof msg, "no bootstrap node answered within %llu s",
             (unsigned long long)(l->timeout_ms / 1000));
    mdht_ctl_job_fail(&l->job, MDHT_CTL_EXIT_ERROR, msg);
  } else {
    mdht_ctl_job_expire(&l->job, false);
  }
}

/* The short-lived node's options: where it binds, read-only. */
static void local_opts(const client_args *a, const mdht_ctl_req *req,
                       mdht_driver_opts *o) {
  const char *bind = a->bind;
  uint16_t port = 0;
  if (req->cmd == MDHT_CTL_ANNOUNCE) {
    /* With implied_port the receivers take the UDP source port: it must be
     * the announced one. */
    if (req->implied_port) port = (uint16_t)a->port;
  } else {
    port = (uint16_t)a->port;
  }
  if (!bind)
    bind = req->cmd == MDHT_CTL_PING && req->addr.family == MDHT_AF_INET6
               ? "::"
               : "0.0.0.0";
  mdht_driver_opts_default(o);
  mdht_sock_parse_ip(&o->bind, bind, port);
  /* BEP 43: a passer-by asks, never answers, and is not added to
   * routing tables. */
  o->cfg.read_only = true;
  if (wants_private(a, req)) o->cfg.allow_private = true;
  o->log = NULL; /* the program reports errors itself, in one line */
}

/* Adds the routers (a ping needs none). Returns 0, or -1 after saying why. */
static int local_bootstrap(local *l, const client_args *a) {
  const char *const *boot = a->bootstrap;
  size_t nboot = a->nbootstrap, added = 0;
  if (l->job.req.cmd == MDHT_CTL_PING) return 0;
  if (nboot == 0) {
    boot = mdht_default_bootstrap;
    nboot = mdht_default_bootstrap_count;
  }
  for (size_t i = 0; i < nboot; i++)
    added += (size_t)mdht_driver_bootstrap(&l->d, boot[i]);
  l->routers = added;
  if (added > 0) {
    phase(l, "bootstrapping via %zu router%s...", added, added == 1 ? "" : "s");
    return 0;
  }
  cli_error("no usable bootstrap address (names that do not resolve, or "
            "not of the %s family)",
            l->d.bind.sock.local.family == MDHT_AF_INET6 ? "IPv6" : "IPv4");
  return -1;
}

/* The loop, the node, its timeout and wake-up. Returns 0, or -1 after
 * saying why (local_free releases what was made). */
static int local_init(local *l, const client_args *a, const mdht_ctl_req *req) {
  mdht_driver_opts o;
  memset(l, 0, sizeof *l);
  l->sub = -1;
  l->timeout_ms = a->timeout_ms;
  l->progress = isatty(STDERR_FILENO) ? stderr : NULL;
  mdht_ctl_reader_init(&l->rd);
  int rc = mdht_loop_init(&l->loop);
  if (rc == 0) rc = mdht_loop_stop_on_signals(&l->loop);
  if (rc < 0) {
    cli_error("cannot set up the event loop: %s", strerror(-rc));
    return -1;
  }
  local_opts(a, req, &o);
  if (mdht_driver_init(&l->d, &l->loop, &o) < 0) {
    cli_error("%s", l->d.error);
    return -1;
  }
  l->sub = mdht_node_subscribe(l->d.node, on_event, l);
  mdht_loop_timer_init(&l->timeout, on_timeout, l);
  /* A crawl ends by itself at its timeout, with its report. */
  mdht_time grace = req->cmd == MDHT_CTL_SAMPLE ? MDHT_CTL_SAMPLE_GRACE_MS : 0;
  mdht_loop_timer_init(&l->poll, on_poll, l);
  if (l->sub < 0 ||
      mdht_loop_timer_set(&l->loop, &l->timeout,
                          mdht_loop_now() + a->timeout_ms + grace) < 0) {
    cli_error("cannot set up the node: out of memory");
    return -1;
  }
  mdht_loop_wakeup_add(&l->loop, &l->wake, on_wake, l);
  mdht_ctl_job_init(&l->job, l->d.node, req, &l->out, mdht_driver_now(),
                    local_notify, l);
  if (local_bootstrap(l, a) < 0) return -1;
  l->boot_deadline = mdht_loop_now() + o.cfg.query_timeout_ms;
  if (req->cmd != MDHT_CTL_PING &&
      mdht_loop_timer_set(&l->loop, &l->poll, mdht_loop_now() + BOOT_POLL_MS) <
          0) {
    cli_error("cannot set up the node: out of memory");
    return -1;
  }
  return 0;
}

static void local_free(local *l) {
  if (l->job.op > 0 && !l->job.done) mdht_node_cancel(l->d.node, l->job.op);
  if (l->d.node && l->sub >= 0) mdht_node_unsubscribe(l->d.node, l->sub);
  if (l->loop.epfd >= 0) {
    mdht_loop_timer_stop(&l->loop, &l->timeout);
    mdht_loop_timer_stop(&l->loop, &l->poll);
    mdht_loop_wakeup_del(&l->loop, &l->wake);
  }
  mdht_driver_free(&l->d);
  mdht_loop_free(&l->loop);
  mdht_ctl_buf_free(&l->out);
}

static int run_local(const client_args *a, const mdht_ctl_req *req) {
  local l;
  int code = MDHT_CTL_EXIT_ERROR;

  if (local_init(&l, a, req) < 0) {
    local_free(&l);
    return CLI_USAGE_ERROR;
  }
  try_start(&l);
  if (!l.job.done) {
    int rc = mdht_loop_run(&l.loop, 0);
    if (rc < 0) {
      cli_error("event loop failed: %s", strerror(-rc));
      local_free(&l);
      return code;
    }
  }
  /* Stopped with the job still running: SIGINT or SIGTERM, the user gave
   * up; the status a shell shows for it (130 for Ctrl-C). */
  if (!l.job.done)
    mdht_ctl_job_fail(&l.job,
                      l.loop.stop_signal ? 128 + l.loop.stop_signal
                                         : MDHT_CTL_EXIT_ERROR,
                      "interrupted");
  feed(&l);
  if (!l.finished || l.proto_error)
    cli_error("internal error: incomplete answer");
  else
    code = l.rd.code;
  if (l.finished && !l.proto_error && l.rd.msg[0]) cli_error("%s", l.rd.msg);
  local_free(&l);
  return code;
}

/* ------------------------------------------------------------- commands */

static int run_control(const client_args *a, const mdht_ctl_req *req) {
  char line[MDHT_CTL_MAX_LINE + 1], msg[512];
  int code;

  if (mdht_ctl_format(req, line, sizeof line) < 0) {
    cli_error("request too long");
    return CLI_USAGE_ERROR;
  }
  code =
      mdht_ctl_call(a->control, line, a->timeout_ms + CONTROL_GRACE_MS, stdout,
                    isatty(STDERR_FILENO) ? stderr : NULL, msg, sizeof msg);
  fflush(stdout);
  if (msg[0]) cli_error("%s", msg);
  return code;
}

/* ------------------------------------------------------------- BEP 44 */

static int hexval(char c) {
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

/* 2n hex digits to n bytes; 0 or -1. */
static int unhex(const char *s, uint8_t *out, size_t n) {
  if (strlen(s) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi * 16 + lo);
  }
  return 0;
}

static void hex_of(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
}

/* A key file: the 32-byte seed in hex, one line. Returns 0, or -1 after
 * saying why. */
static int read_key(const char *path, uint8_t seed[32]) {
  char buf[130];
  FILE *f = fopen(path, "r");
  if (!f) {
    cli_error("cannot read key file %s: %s", path, strerror(errno));
    return -1;
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  if (unhex(buf, seed, 32) < 0) {
    cli_error("%s is not a key file (want 64 hex digits, as 'mdht keygen' "
              "writes)",
              path);
    return -1;
  }
  return 0;
}

static int item_request(const client_args *a, const char *arg,
                        mdht_ctl_req *req) {
  if (a->salt) {
    req->salt_len = strlen(a->salt);
    memcpy(req->salt, a->salt, req->salt_len);
  }
  if (a->cmd == MDHT_CTL_GET_ITEM) {
    if (a->pubkey) {
      if (arg) {
        cli_error("get takes a TARGET or --pubkey, not both");
        return -1;
      }
      if (unhex(a->pubkey, req->pk, 32) < 0) {
        cli_error("bad --pubkey '%s' (want 64 hex digits)", a->pubkey);
        return -1;
      }
      req->item_mutable = true;
      mdht_item_mutable_target(req->pk, req->salt, req->salt_len, &req->target);
      return 0;
    }
    if (a->salt) {
      cli_error("--salt needs --pubkey (a mutable item)");
      return -1;
    }
    if (mdht_id_parse(&req->target, arg) < 0) {
      cli_error("bad target '%s' (want 40 hex digits)", arg);
      return -1;
    }
    return 0;
  }
  /* put: VALUE goes as a bencoded string */
  size_t vl = strlen(arg);
  int hl = snprintf((char *)req->value, sizeof req->value, "%zu:", vl);
  if (hl < 0 || (size_t)hl + vl > sizeof req->value) {
    cli_error("VALUE of %zu bytes is too long (at most 1000 bytes bencoded)",
              vl);
    return -1;
  }
  memcpy(req->value + hl, arg, vl);
  req->value_len = (size_t)hl + vl;
  if (!a->keyfile) {
    if (a->salt || a->seq_given || a->cas_given) {
      cli_error("--salt, --seq and --cas need --key FILE (a mutable item)");
      return -1;
    }
    mdht_item_immutable_target(req->value, req->value_len, &req->target);
    return 0;
  }
  if (a->seq_given && a->cas_given) {
    cli_error("--seq and --cas exclude each other");
    return -1;
  }
  if (read_key(a->keyfile, req->key) < 0) return -1;
  uint8_t sk[MDHT_ITEM_SK_LEN];
  mdht_item_keypair(req->key, req->pk, sk);
  req->item_mutable = true;
  req->has_seq = a->seq_given;
  req->seq = (int64_t)a->seq;
  req->has_cas = a->cas_given;
  req->cas = (int64_t)a->cas;
  mdht_item_mutable_target(req->pk, req->salt, req->salt_len, &req->target);
  return 0;
}

/* mdht keygen FILE: a fresh seed, written to a new file only its owner can
 * read. */
static int cmd_keygen(int argc, char **argv) {
  client_args a;
  const char *pos[1];
  size_t npos;
  uint8_t seed[32], pk[32], sk[64];
  char line[66], pkhex[65];
  args_default(&a, MDHT_CTL_NONE);
  int rc =
      cli_parse(keygen_opts, NOPTS(keygen_opts), argc, argv, &a, pos, 1, &npos);
  if (rc == 1) {
    client_usage("keygen");
    return 0;
  }
  if (rc < 0) return CLI_USAGE_ERROR;
  if (npos == 0) {
    cli_error("keygen needs FILE (try 'mdht keygen --help')");
    return CLI_USAGE_ERROR;
  }
  randombytes_buf(seed, sizeof seed);
  mdht_item_keypair(seed, pk, sk);
  int fd = open(pos[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    cli_error("cannot create %s: %s", pos[0], strerror(errno));
    return CLI_USAGE_ERROR;
  }
  hex_of(seed, 32, line);
  line[64] = '\n';
  bool ok = write(fd, line, 65) == 65;
  ok = close(fd) == 0 && ok;
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk, sizeof sk);
  sodium_memzero(line, sizeof line);
  if (!ok) {
    cli_error("cannot write %s: %s", pos[0], strerror(errno));
    unlink(pos[0]);
    return CLI_USAGE_ERROR;
  }
  hex_of(pk, 32, pkhex);
  pkhex[64] = '\0';
  if (a.json)
    printf("{\"type\":\"key\",\"pubkey\":\"%s\"}\n", pkhex);
  else
    printf("%s\n", pkhex);
  return 0;
}

/* The request's argument and announce options, from the command line.
 * Returns 0, or -1 after saying why. */
static int build_request(const client_args *a, const char *arg,
                         mdht_ctl_req *req) {
  switch (a->cmd) {
  case MDHT_CTL_GET_PEERS:
  case MDHT_CTL_ANNOUNCE:
  case MDHT_CTL_PEERS:
  case MDHT_CTL_SCRAPE:
    if (mdht_ctl_parse_infohash(&req->target, arg) < 0) {
      cli_error("bad info-hash '%s' (want 40 hex digits or a magnet link "
                "with urn:btih:)",
                arg);
      return -1;
    }
    break;
  case MDHT_CTL_FIND_NODE:
    if (mdht_id_parse(&req->target, arg) < 0) {
      cli_error("bad id '%s' (want 40 hex digits)", arg);
      return -1;
    }
    break;
  case MDHT_CTL_GET_ITEM:
  case MDHT_CTL_PUT_ITEM:
    return item_request(a, arg, req);
  case MDHT_CTL_PING: {
    int family = 0;
    mdht_addr b, lit;
    char host[256];
    const char *port;
    if (a->bind && mdht_sock_parse_ip(&b, a->bind, 0) == 0) family = b.family;
    /* An address literal of the other family than --bind: say so, rather
     * than the resolver's "Address family for hostname not supported". */
    if (family && mdht_hostport_split(arg, host, sizeof host, &port) == 0 &&
        mdht_sock_parse_ip(&lit, host, 0) == 0 && lit.family != family) {
      cli_error("cannot ping an %s address from an %s binding (--bind %s)",
                lit.family == MDHT_AF_INET6 ? "IPv6" : "IPv4",
                family == MDHT_AF_INET6 ? "IPv6" : "IPv4", a->bind);
      return -1;
    }
    if (resolve(arg, family, &req->addr) < 0) return -1;
    break;
  }
  default:
    break;
  }
  if (a->cmd == MDHT_CTL_ANNOUNCE) {
    if (!a->port_given) {
      cli_error("announce needs --port N (the peer's port)");
      return -1;
    }
    req->port = (uint16_t)a->port;
    req->implied_port = a->implied_port;
    req->seed = a->seed;
  }
  return 0;
}

/* "PATH" with every byte that could drive a terminal escaped: the path
 * comes from the environment. */
static const char *shown(const char *path, char *buf, size_t cap) {
  mdht_ctl_escape(buf, cap, path, strlen(path), false);
  return buf;
}

/* Which node answers (DESIGN.md): $MDHT_CONTROL, else --control, else the
 * default socket when a node serves it, else a short-lived node, said in
 * one line. --standalone, and the options that only a short-lived node
 * can use (--bootstrap, --bind, --port), go straight to the short-lived
 * node. */
static int dispatch(client_args *a, const mdht_ctl_req *req, const char *name,
                    bool node_cmd) {
  const char *env = getenv("MDHT_CONTROL");
  bool local_opts_given = a->nbootstrap > 0 || a->bind ||
                          (a->port_given && a->cmd != MDHT_CTL_ANNOUNCE);
  char path[4096 + 16], esc[4096 * 4 + 64];

  bool have;

  if (a->standalone && a->control) {
    cli_error("--standalone and --control exclude each other");
    return CLI_USAGE_ERROR;
  }
  /* Explicit options beat the environment. */
  if (!a->control && !a->standalone && !local_opts_given && env && *env)
    a->control = env;
  if (a->control) {
    if (local_opts_given) {
      cli_error("--control uses the running node: --bootstrap, --bind and "
                "--port do not apply");
      return CLI_USAGE_ERROR;
    }
    return run_control(a, req);
  }
  if (a->standalone || local_opts_given) return run_local(a, req);
  have = mdht_ctl_default_path(path, sizeof path, NULL, NULL) == 0;
  if (have && mdht_ctl_serves(path)) {
    a->control = path;
    return run_control(a, req);
  }
  if (node_cmd && have)
    cli_error("%s needs a running node: none serves %s (start 'mdht run', "
              "or give --control PATH or MDHT_CONTROL)",
              name, shown(path, esc, sizeof esc));
  else if (node_cmd)
    cli_error("%s needs a running node: no default socket (set "
              "XDG_RUNTIME_DIR, or give --control PATH or MDHT_CONTROL)",
              name);
  else if (have)
    cli_error("no running node at %s; starting a short-lived one",
              shown(path, esc, sizeof esc));
  else
    cli_error("no running node (no default socket); starting a "
              "short-lived one");
  return node_cmd ? CLI_USAGE_ERROR : run_local(a, req);
}

static int client_main(const char *name, int argc, char **argv) {
  int i = find_command(name);
  const cli_opt *opts;
  size_t nopts, npos;
  const char *pos[1];
  client_args a;
  mdht_ctl_req req;
  int rc;

  if (i < 0) {
    cli_error("unknown command '%s'", name);
    return CLI_USAGE_ERROR;
  }
  if (commands[i].cmd == MDHT_CTL_NONE) return cmd_keygen(argc, argv);
  args_default(&a, commands[i].cmd);
  opts_of(a.cmd, &opts, &nopts);
  /* peers takes an info-hash; sample and the other node-only commands
   * nothing. */
  bool node_cmd = node_only(a.cmd);
  size_t max_pos =
      (node_cmd && a.cmd != MDHT_CTL_PEERS) || a.cmd == MDHT_CTL_SAMPLE ? 0 : 1;
  rc = cli_parse(opts, nopts, argc, argv, &a, pos, max_pos, &npos);
  if (rc == 1) {
    client_usage(name);
    return 0;
  }
  if (rc < 0) return CLI_USAGE_ERROR;

  memset(&req, 0, sizeof req);
  req.cmd = a.cmd;
  req.json = a.json;
  req.timeout_ms = a.timeout_ms;
  req.progress = isatty(STDERR_FILENO);
  req.max = a.max;
  /* get --pubkey takes no TARGET */
  bool arg_optional = a.cmd == MDHT_CTL_GET_ITEM && a.pubkey;
  if (max_pos > 0 && npos == 0 && !arg_optional) {
    cli_error("%s needs %s (try 'mdht %s --help')", name, commands[i].args,
              name);
    return CLI_USAGE_ERROR;
  }
  if (build_request(&a, max_pos && npos > 0 ? pos[0] : NULL, &req) < 0)
    return CLI_USAGE_ERROR;
  return dispatch(&a, &req, name, node_cmd);
}

/* Whether --json is among the options (before a "--"), whatever else on
 * the line is wrong: a usage error is reported as JSON too. */
static bool wants_json(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) return false;
    if (strcmp(argv[i], "--json") == 0) return true;
  }
  return false;
}

int cmd_client(const char *name, int argc, char **argv) {
  int rc = client_main(name, argc, argv);
  /* With --json a failure is also one object on stdout, for programs that
   * read only stdout; the "mdht: ..." line on stderr stays, as always. */
  if (rc != 0 && wants_json(argc, argv)) {
    const char *m = cli_last_error();
    char esc[512 * 6 + 1];
    mdht_ctl_escape_as(esc, sizeof esc, m, strlen(m), MDHT_CTL_ESC_JSON_STR);
    printf("{\"type\":\"error\",\"error\":\"%s\",\"exit\":%d}\n",
           esc[0] ? esc : "failed", rc);
    fflush(stdout);
  }
  return rc;
}
