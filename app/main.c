/*
 * mdht: the command. `mdht run` hosts a long-lived node (with a control
 * socket for the client commands, if asked); the client commands live in
 * commands.c.
 *
 * Exit status: 0 success, 2 usage or runtime error (one line on stderr).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "conffile.h"
#include "config.h"
#include "control.h"
#include "driver.h"
#include "logforge.h"
#include "loop.h"
#include "mdht.h"
#include "metrics.h"
#include "notify.h"
#include "persist.h"
#include "state.h"
#include "sock.h"

static void usage(FILE *f) {
  fputs(
      "usage: mdht COMMAND [OPTIONS]\n"
      "\n"
      "A BitTorrent Mainline DHT node (BEP 5).\n"
      "\n"
      "commands:\n"
      "  run          run a node until SIGINT or SIGTERM\n"
      "  get-peers    INFOHASH: print the peers of a torrent\n"
      "  announce     INFOHASH --port N: announce a peer\n"
      "  find-node    ID: print the closest nodes to ID\n"
      "  ping         HOST:PORT: print the node's id and round-trip time\n"
      "  stats        print the counters of a running node\n"
      "  save         make a running node save its state now\n"
      "  sample       crawl the DHT for info-hashes (BEP 51)\n"
      "  table        print a running node's routing table\n"
      "  infohashes   print the info-hashes a running node stores\n"
      "  peers        INFOHASH: print the peers a running node stores\n"
      "  scrape       INFOHASH: estimate a torrent's seeds and peers (BEP 33)\n"
      "  put          VALUE [--key FILE]: store a BEP 44 item\n"
      "  get          TARGET | --pubkey HEX: print a BEP 44 item\n"
      "  keygen       FILE: write a new key for mutable items\n"
      "  testnet      --nodes N: run N nodes on loopback\n"
      "  sim          simulate a network of N nodes on virtual time\n"
      "  help [CMD]   show this help, or a command's options\n"
      "\n"
      "  mdht --version    print the version\n"
      "\n"
      "The client commands ask the running node at $MDHT_CONTROL, --control\n"
      "PATH or the default socket ($XDG_RUNTIME_DIR/mdht.sock, else\n"
      "~/.local/state/mdht/control), else start a short-lived read-only\n"
      "node (--standalone: always).\n"
      "Exit status 2 means a usage or runtime error, explained on stderr.\n",
      f);
}

/* ------------------------------------------------------------------ run */

typedef struct run_args {
  const char *bind;
  const char *bind2; /* BEP 32: the other family's address, or NULL */
  uint32_t nbind;    /* --bind given this many times */
  uint32_t port;
  mdht_id id;
  bool have_id;
  const char *bootstrap[CLI_MAX_BOOTSTRAP];
  size_t nbootstrap;
  bool no_bootstrap;
  const char *state_dir; /* NULL: the default directory */
  bool no_state;
  mdht_time save_interval_ms;
  mdht_log_level level;
  mdht_log_format format;
  const char *control;
  bool no_control;
  const char *metrics; /* ADDR:PORT of the /metrics page, or NULL */
  const char *config;  /* --config FILE */
  char *conf_text;     /* its bytes: the values above may point into it */
  mdht_config cfg;
} run_args;

/* --bind, repeatable (BEP 32): at most one address of each family. */
static int set_bind(void *ctx, const char *v) {
  run_args *a = ctx;
  if (cli_check_bind(v) < 0) return -1;
  if (a->nbind == 0) {
    a->bind = v;
  } else if (a->nbind == 1 &&
             (strchr(v, ':') != NULL) != (strchr(a->bind, ':') != NULL)) {
    a->bind2 = v;
  } else {
    cli_error("--bind %s: at most one IPv4 and one IPv6 address", v);
    return -1;
  }
  a->nbind++;
  return 0;
}

static int set_id(void *ctx, const char *v) {
  run_args *a = ctx;
  if (mdht_id_parse(&a->id, v) < 0) {
    cli_error("bad node id '%s' (want 40 hex digits)", v);
    return -1;
  }
  a->have_id = true;
  a->cfg.fixed_id = true; /* chosen by hand: BEP 42 must not replace it */
  return 0;
}

static int set_bootstrap(void *ctx, const char *v) {
  run_args *a = ctx;
  return cli_add_bootstrap(a->bootstrap, &a->nbootstrap, v);
}

static int set_level(void *ctx, const char *v) {
  run_args *a = ctx;
  if (mdht_log_level_parse(&a->level, v) < 0) {
    cli_error("bad log level '%s' (want error, warn, info, debug or trace)", v);
    return -1;
  }
  return 0;
}

static int set_format(void *ctx, const char *v) {
  run_args *a = ctx;
  if (mdht_log_format_parse(&a->format, v) < 0) {
    cli_error("bad log format '%s' (want text or json)", v);
    return -1;
  }
  return 0;
}

/* "MD0001": two letters naming the client, then a 2-byte version in hex
 * (BEP 5 "v" key, as libtorrent writes it). */
static int set_client_version(void *ctx, const char *v) {
  run_args *a = ctx;
  unsigned hi, lo;
  char end;
  if (strlen(v) != 6 || v[0] < 0x21 || v[0] > 0x7E || v[1] < 0x21 ||
      v[1] > 0x7E || sscanf(v + 2, "%2x%2x%c", &hi, &lo, &end) != 2 ||
      strspn(v + 2, "0123456789abcdefABCDEF") != 4) {
    cli_error("bad client version '%s' (want 2 letters and 4 hex digits, "
              "e.g. MD0001)",
              v);
    return -1;
  }
  a->cfg.client_version[0] = (uint8_t)v[0];
  a->cfg.client_version[1] = (uint8_t)v[1];
  a->cfg.client_version[2] = (uint8_t)hi;
  a->cfg.client_version[3] = (uint8_t)lo;
  return 0;
}

static int set_save_interval(void *ctx, const char *v) {
  run_args *a = ctx;
  if (mdht_persist_parse_seconds(v, &a->save_interval_ms) < 0) {
    cli_error("bad save interval '%s' (want seconds, e.g. 300 or 0.5)", v);
    return -1;
  }
  return 0;
}
static int set_metrics(void *ctx, const char *v) {
  run_args *a = ctx;
  if (mdht_metrics_check_addr(v) < 0) {
    cli_error("bad --metrics address '%s' (want ADDR:PORT or [ADDR]:PORT)", v);
    return -1;
  }
  a->metrics = v;
  return 0;
}

#define CFG(field) offsetof(run_args, cfg.field)
#define U32MAX 4294967295u
#define SECMAX 4000000000ull /* ms fit in mdht_time with room to add */

static const cli_opt run_opts[] = {
    {"--config", "FILE",
     "read options from FILE first ('key = value' lines); flags given "
     "here win",
     CLI_PATH, offsetof(run_args, config), 0, 0, NULL},
    {"--bind", "ADDR",
     "local IPv4 or IPv6 address; twice for both families (default "
     "0.0.0.0 and ::, :: only where the machine has IPv6)",
     CLI_CUSTOM, 0, 0, 0, set_bind},
    {"--port", "N", "UDP port, 0 = any free one", CLI_U32,
     offsetof(run_args, port), 0, 65535, NULL},
    {"--id", "HEX", "node id, 40 hex digits (default random)", CLI_CUSTOM, 0, 0,
     0, set_id},
    {"--bootstrap", "HOST:PORT",
     "join through this node (repeatable; replaces the defaults)", CLI_CUSTOM,
     0, 0, 0, set_bootstrap},
    {"--no-bootstrap", NULL, "do not contact any bootstrap node", CLI_FLAG,
     offsetof(run_args, no_bootstrap), 0, 0, NULL},
    {"--state", "DIR",
     "keep the node's state in DIR (default $XDG_STATE_HOME/mdht, else "
     "~/.local/state/mdht)",
     CLI_PATH, offsetof(run_args, state_dir), 0, 0, NULL},
    {"--no-state", NULL, "neither load nor save any state", CLI_FLAG,
     offsetof(run_args, no_state), 0, 0, NULL},
    {"--save-interval", "SECONDS",
     "save the state this often (default 300; 0 = only on exit and SIGHUP)",
     CLI_CUSTOM, 0, 0, 0, set_save_interval},
    {"--control", "PATH",
     "serve client commands on this Unix socket (mode 0600; default "
     "$XDG_RUNTIME_DIR/mdht.sock, else STATE_DIR/control)",
     CLI_PATH, offsetof(run_args, control), 0, 0, NULL},
    {"--no-control", NULL, "serve no control socket", CLI_FLAG,
     offsetof(run_args, no_control), 0, 0, NULL},
    {"--metrics", "ADDR:PORT",
     "serve Prometheus metrics at http://ADDR:PORT/metrics", CLI_CUSTOM, 0, 0,
     0, set_metrics},
    {"--log-level", "LEVEL", "error, warn, info (default), debug or trace",
     CLI_CUSTOM, 0, 0, 0, set_level},
    {"--log-format", "FMT", "text (default) or json (one object per line)",
     CLI_CUSTOM, 0, 0, 0, set_format},
    {"--k", "N", "bucket size", CLI_U32, CFG(k), 1, 16, NULL},
    {"--alpha", "N", "lookup parallelism", CLI_U32, CFG(alpha), 1, 32, NULL},
    {"--node-fresh", "SECONDS", "a node is good this long after it answered",
     CLI_SECONDS, CFG(node_fresh_ms), 1, SECMAX, NULL},
    {"--max-fails", "N", "failures in a row that make a node bad", CLI_U32,
     CFG(max_fails), 1, U32MAX, NULL},
    {"--token-rotate", "SECONDS", "token secret rotation", CLI_SECONDS,
     CFG(token_rotate_ms), 1, SECMAX, NULL},
    {"--peer-ttl", "SECONDS", "stored peer lifetime", CLI_SECONDS,
     CFG(peer_ttl_ms), 1, SECMAX, NULL},
    {"--max-infohashes", "N", "info-hashes stored at most", CLI_U32,
     CFG(max_infohashes), 1, U32MAX, NULL},
    {"--max-peers", "N", "peers stored per info-hash", CLI_U32,
     CFG(max_peers_per_ih), 1, U32MAX, NULL},
    {"--max-peers-total", "N", "peers stored in all, 0 = no such bound",
     CLI_U32, CFG(max_peers), 0, U32MAX, NULL},
    {"--query-timeout", "MS", "a query fails after this", CLI_MS,
     CFG(query_timeout_ms), 1, SECMAX, NULL},
    {"--query-soft-timeout", "MS", "a lookup moves on after this", CLI_MS,
     CFG(query_soft_timeout_ms), 0, SECMAX, NULL},
    {"--max-txns", "N", "outstanding queries at most", CLI_U32, CFG(max_txns),
     1, 65535, NULL},
    {"--max-lookups", "N", "concurrent lookups at most", CLI_U32,
     CFG(max_lookups), 1, U32MAX, NULL},
    {"--bucket-refresh", "SECONDS", "refresh a bucket idle this long",
     CLI_SECONDS, CFG(bucket_refresh_ms), 1, SECMAX, NULL},
    {"--rate-limit", "N", "datagrams per second per source IP, 0 = unlimited",
     CLI_U32, CFG(rate_limit_per_sec), 0, U32MAX, NULL},
    {"--rate-burst", "N", "rate limiter bucket depth", CLI_U32,
     CFG(rate_limit_burst), 0, U32MAX, NULL},
    {"--out-queue", "N", "datagrams queued for sending at most", CLI_U32,
     CFG(out_queue), 1, U32MAX, NULL},
    {"--client-version", "CCXXXX",
     "\"v\" key: 2 letters, 4 hex digits (default MD0001)", CLI_CUSTOM, 0, 0, 0,
     set_client_version},
    {"--read-only", NULL, "BEP 43 read-only node: never answer queries",
     CLI_FLAG, CFG(read_only), 0, 0, NULL},
    {"--allow-private", NULL,
     "accept private/loopback addresses (automatic when bound to one)",
     CLI_FLAG, CFG(allow_private), 0, 0, NULL},
    {"--enforce-node-id", NULL, "BEP 42: reject ids that do not match the IP",
     CLI_FLAG, CFG(enforce_node_id), 0, 0, NULL},
    {"--allow-same-ip", NULL,
     "several routing entries per IP address (closed test networks only)",
     CLI_FLAG, CFG(allow_same_ip), 0, 0, NULL},
    {"--allow-same-prefix", NULL,
     "several entries per /24 or /64 in a bucket (closed test networks only)",
     CLI_FLAG, CFG(allow_same_prefix), 0, 0, NULL},
    {"--max-infohashes-per-ip", "N",
     "info-hashes one source IP may hold peers in", CLI_U32, CFG(max_ih_per_ip),
     1, U32MAX, NULL},
    {"--max-values", "N", "peers in one get_peers reply", CLI_U32,
     CFG(max_values), 1, 1000, NULL},
    {"--reply-budget", "BYTES",
     "reply bytes per second to one IP, 0 = unlimited", CLI_U32,
     CFG(reply_bytes_per_sec), 0, U32MAX, NULL},
    {"--item-ttl", "SECONDS", "BEP 44 item lifetime after its last put",
     CLI_SECONDS, CFG(item_ttl_ms), 1, SECMAX, NULL},
    {"--max-items", "N", "BEP 44 items stored at most, 0 = store none", CLI_U32,
     CFG(max_items), 0, U32MAX, NULL},
    {"--max-item-bytes", "BYTES", "BEP 44 value bytes stored at most", CLI_U32,
     CFG(max_item_bytes), 0, U32MAX, NULL},
    {"--max-items-per-ip", "N", "BEP 44 items one source IP may hold", CLI_U32,
     CFG(max_items_per_ip), 1, U32MAX, NULL},
};
#define NRUN_OPTS (sizeof run_opts / sizeof run_opts[0])

static void run_args_default(run_args *a) {
  memset(a, 0, sizeof *a);
  a->bind = "0.0.0.0";
  a->port = 6881;
  a->level = MDHT_LOG_INFO;
  a->format = MDHT_LOG_TEXT;
  a->save_interval_ms = MDHT_PERSIST_SAVE_INTERVAL_MS;
  mdht_config_default(&a->cfg);
}

static void run_usage(void) {
  run_args defaults;
  run_args_default(&defaults);
  printf("usage: mdht run [OPTIONS]\n\n"
         "Runs a DHT node until SIGINT or SIGTERM. Logs go to stderr.\n\n"
         "options:\n");
  cli_print_options(run_opts, NRUN_OPTS, &defaults);
}

/* The counts of what was written come only with the STATE_SAVED event. */
static void note_saved(const mdht_event *ev, void *user) {
  mdht_ctl_saved *s = user;
  if (ev->type != MDHT_EV_STATE_SAVED) return;
  s->counted = true;
  s->nodes = ev->u.state.nodes;
  s->peers = ev->u.state.peers;
}

/* The control socket's `save`: the same save as SIGHUP's, with what it
 * wrote, or why not, for the reply. */
static int save_on_request(void *user, mdht_ctl_saved *out, char *err,
                           size_t errcap) {
  mdht_persist *p = user;
  mdht_node *node = p->d->node;
  /* Only for this one save; should the node have no subscriber slot
   * left, the save still happens, reported without counts. */
  int sub = mdht_node_subscribe(node, note_saved, out);
  int rc = mdht_persist_save(p, node);

  if (sub >= 0) mdht_node_unsubscribe(node, sub);
  snprintf(out->path, sizeof out->path, "%s/%s", p->dir, MDHT_PERSIST_FILE);
  if (rc < 0) {
    snprintf(err, errcap,
             "cannot save state to %s: %s (the previous state is kept)",
             out->path, mdht_strerror(rc));
    return rc;
  }
  return 0;
}

/* Everything `mdht run` holds, so that one function releases it. */
typedef struct run_ctx {
  run_args a;
  mdht_logforge log;
  mdht_loop loop;
  mdht_driver d;
  mdht_ctl_server ctl;
  mdht_persist ps;
  mdht_metrics_server met;
  mdht_notify notify; /* systemd's NOTIFY_SOCKET, when set */
  bool have_loop, have_ctl, have_state, have_metrics;
  /* The control socket's path: --control, the default one, or NULL. */
  const char *ctl_path;
  bool ctl_default;  /* not asked for: a failure other than "another node
                        serves" is a warning, and the node runs without */
  bool ctl_in_state; /* in the state directory: made once it exists */
  char ctl_why[160]; /* why there is no default socket, for the log */
  char ctlbuf[4096 + 16];
  int stop_signal; /* what stopped the loop: SIGINT exits 130 */
  uint8_t *saved;  /* the state file's bytes, until restored */
  size_t saved_len;
  mdht_id saved_id;
  char dirbuf[4096];
} run_ctx;

static void run_close(run_ctx *c) {
  /* Before the node goes: the server cancels its clients' operations. */
  if (c->have_ctl) mdht_ctl_server_close(&c->ctl);
  if (c->have_metrics) mdht_metrics_close(&c->met); /* it reads the node */
  if (c->have_state) mdht_persist_close(&c->ps);
  mdht_notify_free(&c->notify);
  mdht_driver_free(&c->d);
  if (c->have_loop) mdht_loop_free(&c->loop);
  free(c->saved);
  c->saved = NULL;
  free(c->a.conf_text);
  c->a.conf_text = NULL;
  c->have_ctl = c->have_state = c->have_loop = c->have_metrics = false;
}

static void on_stop_signal(mdht_loop *loop, int signo, void *user) {
  run_ctx *c = user;
  mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "%s received, shutting down",
                     signo == SIGINT ? "SIGINT" : "SIGTERM");
  if (!c->stop_signal) c->stop_signal = signo;
  mdht_loop_stop(loop);
}

static void on_hup(mdht_loop *loop, int signo, void *user) {
  run_ctx *c = user;
  (void)loop, (void)signo;
  if (!c->have_state) {
    mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "SIGHUP received, ignored");
    return;
  }
  mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "SIGHUP received, saving");
  mdht_persist_save(&c->ps, c->d.node);
}

/* One setting of the config file, checked as its flag would be. */
static int conf_apply(void *user, size_t key, const char *value,
                      unsigned line) {
  run_args *a = user;
  const cli_opt *o = &run_opts[key];
  cli_set_where(a->config, line);
  int rc = -1;
  if (strcmp(o->name, "--config") == 0)
    cli_error("'config' cannot be set in a config file");
  else
    rc = cli_apply(o, a, value);
  cli_set_where(NULL, 0);
  return rc;
}

/* Applies --config FILE to `a` (its defaults). Returns 0, or -1 after one
 * line naming the file (and the line). */
static int run_load_config(run_args *a, const char *path) {
  static mdht_conf_key keys[NRUN_OPTS];
  mdht_conf_err err;
  size_t len;

  for (size_t i = 0; i < NRUN_OPTS; i++) {
    keys[i].name = run_opts[i].name + 2; /* "--port" -> "port" */
    keys[i].value = run_opts[i].metavar != NULL;
    keys[i].repeat = run_opts[i].custom == set_bootstrap;
  }
  a->config = path;
  if (mdht_conf_read(path, &a->conf_text, &len, &err) < 0) {
    cli_error("%s: %s", path, err.msg);
    return -1;
  }
  if (mdht_conf_parse(a->conf_text, len, keys, NRUN_OPTS, conf_apply, a, &err) <
      0) {
    if (err.msg[0]) cli_error("%s:%u: %s", path, err.line, err.msg);
    return -1;
  }
  return 0;
}

/* The command line wins over the file: where it picks one side of an
 * exclusive pair, the file's choice of the other side is dropped. */
static void run_cmdline_wins(run_args *a, const run_args *cl) {
  if (cl->nbootstrap > 0) a->no_bootstrap = false;
  if (cl->nbootstrap > 0 || cl->no_bootstrap) a->nbootstrap = 0;
  if (cl->state_dir) a->no_state = false;
  if (cl->no_state) a->state_dir = NULL;
  if (cl->control) a->no_control = false;
  if (cl->no_control) a->control = NULL;
  /* --bind on the command line names the addresses, all of them. */
  if (cl->nbind > 0) {
    a->nbind = 0;
    a->bind2 = NULL;
  }
}

/* Parses and checks the flags: the command line alone first (to find
 * --config and to report its errors), then the file, then the command
 * line again on top. Returns 0, 1 after --help, or -1. */
static int run_parse(run_args *a, int argc, char **argv) {
  static run_args cl;
  size_t npos;
  run_args_default(&cl);
  int rc = cli_parse(run_opts, NRUN_OPTS, argc, argv, &cl, NULL, 0, &npos);
  if (rc == 1) run_usage();
  if (rc != 0) return rc;
  run_args_default(a);
  if (cl.config) {
    if (run_load_config(a, cl.config) < 0) return -1;
    run_cmdline_wins(a, &cl);
    /* The same arguments again: they parsed once, they parse now. */
    if (cli_parse(run_opts, NRUN_OPTS, argc, argv, a, NULL, 0, &npos) != 0)
      return -1;
  } else {
    *a = cl;
  }
  if (a->no_bootstrap && a->nbootstrap > 0) {
    cli_error("--no-bootstrap and --bootstrap exclude each other");
    return -1;
  }
  if (a->no_state && a->state_dir) {
    cli_error("--state and --no-state exclude each other");
    return -1;
  }
  if (a->no_control && a->control) {
    cli_error("--control and --no-control exclude each other");
    return -1;
  }
  if (mdht_config_check(&a->cfg) < 0) {
    /* Only combinations get here; each flag's range was checked. */
    cli_error("inconsistent settings (is --query-soft-timeout above "
              "--query-timeout?)");
    return -1;
  }
  return 0;
}

static void run_driver_opts(run_ctx *c, mdht_driver_opts *o) {
  run_args *a = &c->a;
  mdht_driver_opts_default(o);
  mdht_sock_parse_ip(&o->bind, a->bind, (uint16_t)a->port);
  /* BEP 32: both families, by default where the machine has IPv6 (the
   * driver probes by binding ::). */
  if (a->bind2 || a->nbind == 0) {
    o->has_bind2 = true;
    o->bind2_optional = a->nbind == 0;
    mdht_sock_parse_ip(&o->bind2,
                       a->bind2 ? a->bind2 : "::", (uint16_t)a->port);
  }
  o->cfg = a->cfg;
  o->id = a->have_id ? &a->id : NULL;
  if (a->nbootstrap > 0) {
    o->bootstrap = a->bootstrap;
    o->nbootstrap = a->nbootstrap;
  } else if (!a->no_bootstrap) {
    o->bootstrap = mdht_default_bootstrap;
    o->nbootstrap = mdht_default_bootstrap_count;
  }
  o->log = &c->log;
}

/* Locks the state directory (before the socket is bound: a second node on
 * the same directory stops here, with the reason logged) and reads the
 * state. The id is fixed when the node is created: the saved one, unless
 * --id says otherwise. Returns 0 or -1. */
static int run_open_state(run_ctx *c, mdht_driver_opts *o) {
  const char *dir = c->a.state_dir;
  int rc;
  if (!dir) {
    if (mdht_persist_default_dir(c->dirbuf, sizeof c->dirbuf) < 0) {
      cli_error("no state directory: set XDG_STATE_HOME or HOME, or give "
                "--state DIR or --no-state");
      return -1;
    }
    dir = c->dirbuf;
  }
  c->have_state = true;
  if ((rc = mdht_persist_open(&c->ps, dir, &c->log)) < 0 ||
      (rc = mdht_persist_read(&c->ps, &c->saved, &c->saved_len, NULL)) < 0) {
    /* A directory or file another user controls: refused, and said
     * here, as a usage error is. */
    if (rc == -EPERM) cli_error("%s", c->ps.why);
    return -1;
  }
  if (c->saved && !c->a.have_id &&
      mdht_state_peek_id(c->saved, c->saved_len, &c->saved_id) == 0)
    o->id = &c->saved_id;
  return 0;
}

/* Restores the saved state and hands the routers to the persist layer: at
 * once when nothing was saved, else only after the saved nodes had their
 * chance. Returns 0 or -1. */
static int run_attach_state(run_ctx *c, const char *const *routers,
                            size_t nrouters) {
  mdht_persist_run_opts ro;
  if (c->saved)
    mdht_persist_restore(&c->ps, c->d.node, c->saved, c->saved_len, NULL);
  free(c->saved);
  c->saved = NULL;
  mdht_persist_run_opts_default(&ro);
  ro.save_interval_ms = c->a.save_interval_ms;
  ro.bootstrap = routers;
  ro.nbootstrap = nrouters;
  int rc = mdht_persist_attach(&c->ps, &c->d, &ro);
  if (rc < 0) {
    mdht_logforge_logf(&c->log, MDHT_LOG_ERROR, "state timers: %s",
                       mdht_strerror(rc));
    return -1;
  }
  if (c->have_ctl) {
    c->ctl.save = save_on_request;
    c->ctl.save_user = &c->ps;
  }
  return 0;
}

/* The loop and its signals, then the node on it. Returns 0 or -1. */
static int run_start_node(run_ctx *c, mdht_driver_opts *o) {
  const char *const *routers = o->bootstrap;
  size_t nrouters = o->nbootstrap;
  int rc = mdht_loop_init(&c->loop);
  c->have_loop = rc == 0;
  if (rc == 0 &&
      ((rc = mdht_loop_signal(&c->loop, SIGINT, on_stop_signal, c)) < 0 ||
       (rc = mdht_loop_signal(&c->loop, SIGTERM, on_stop_signal, c)) < 0 ||
       (rc = mdht_loop_signal(&c->loop, SIGHUP, on_hup, c)) < 0))
    mdht_logforge_logf(&c->log, MDHT_LOG_ERROR, "event loop: %s",
                       mdht_strerror(rc));
  if (rc < 0) return -1;
  if (c->have_state) {
    o->bootstrap = NULL;
    o->nbootstrap = 0;
  }
  /* The documented one line, "mdht: cannot bind ...", not a log line. */
  if (mdht_driver_init(&c->d, &c->loop, o) < 0) {
    cli_error("%s", c->d.error);
    return -1;
  }
  if (c->have_state && run_attach_state(c, routers, nrouters) < 0) return -1;
  if (c->have_ctl && (rc = mdht_ctl_server_attach(&c->ctl, &c->d)) < 0) {
    mdht_logforge_logf(&c->log, MDHT_LOG_ERROR, "control socket %s: %s",
                       c->ctl_path, mdht_strerror(rc));
    return -1;
  }
  if (c->have_ctl)
    mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "control socket %s",
                       c->ctl_path);
  else if (c->ctl_why[0])
    mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "%s", c->ctl_why);
  if (c->have_metrics) {
    rc = mdht_metrics_attach(&c->met, &c->loop, c->d.node, &c->log,
                             mdht_driver_wallclock(NULL));
    if (rc < 0) {
      mdht_logforge_logf(&c->log, MDHT_LOG_ERROR, "metrics on %s: %s",
                         c->a.metrics, mdht_strerror(rc));
      return -1;
    }
    mdht_logforge_logf(&c->log, MDHT_LOG_INFO, "metrics on http://%s/metrics",
                       c->a.metrics);
  }
  return 0;
}

/* Where the control socket goes: --control, else the default path
 * (control.h), else none (--no-control; or --no-state without
 * XDG_RUNTIME_DIR: there is no directory of ours to put it in, and
 * /tmp is not one). */
static void run_control_path(run_ctx *c) {
  int rc;
  if (c->a.no_control) return;
  if (c->a.control) {
    c->ctl_path = c->a.control;
    return;
  }
  c->ctl_default = true;
  const char *rt = getenv("XDG_RUNTIME_DIR");
  if (c->a.no_state && !(rt && rt[0] == '/')) {
    snprintf(c->ctl_why, sizeof c->ctl_why,
             "no control socket: no XDG_RUNTIME_DIR, and --no-state leaves "
             "no state directory for one (give --control PATH)");
    return;
  }
  rc = mdht_ctl_default_path(c->ctlbuf, sizeof c->ctlbuf, c->a.state_dir,
                             &c->ctl_in_state);
  if (rc < 0) {
    snprintf(c->ctl_why, sizeof c->ctl_why,
             "no control socket: %s (give --control PATH)",
             rc == -ENAMETOOLONG ? "its default path is too long"
                                 : "no XDG_RUNTIME_DIR nor state directory");
    return;
  }
  c->ctl_path = c->ctlbuf;
}

/* Opens the control socket. Returns 0, or -1 after one line: always when
 * another node serves the path; for the default path otherwise only a
 * warning is noted (the node runs without a socket). */
static int run_open_control(run_ctx *c) {
  char err[256], shown[512];
  int rc = mdht_ctl_server_open(&c->ctl, c->ctl_path, err, sizeof err);
  if (rc == 0) {
    c->have_ctl = true;
    return 0;
  }
  if (c->ctl_default && rc != MDHT_ERR_EXISTS) {
    mdht_logforge_logf(&c->log, MDHT_LOG_WARN, "no control socket: %s", err);
    return 0;
  }
  /* The path comes from the environment: no control byte reaches the
   * terminal. */
  mdht_ctl_escape(shown, sizeof shown, err, strlen(err), false);
  cli_error("%s", shown);
  return -1;
}

/* STATUS= for the service manager: where the node listens, what it holds. */
static void run_status(char *buf, size_t cap, void *user) {
  run_ctx *c = user;
  mdht_stats st;
  mdht_node_stats(c->d.node, mdht_driver_now(), &st);
  mdht_notify_status_text(buf, cap, &c->d.bind.sock.local, &st);
}

/* Tells systemd the node is bound and serving (and starts the watchdog
 * pings); a no-op without NOTIFY_SOCKET. A failure is logged, not fatal:
 * the node itself works. */
static void run_notify_ready(run_ctx *c) {
  mdht_notify_init(&c->notify, &c->loop, run_status, c);
  int rc = mdht_notify_ready(&c->notify);
  if (rc < 0)
    mdht_logforge_logf(&c->log, MDHT_LOG_WARN, "sd_notify %s: %s",
                       getenv("NOTIFY_SOCKET"), mdht_strerror(rc));
}

static int cmd_run(int argc, char **argv) {
  static run_ctx c; /* large (paths), and there is one per process */
  mdht_driver_opts o;

  memset(&c, 0, sizeof c);
  int rc = run_parse(&c.a, argc, argv);
  if (rc != 0) {
    free(c.a.conf_text);
    return rc > 0 ? 0 : CLI_USAGE_ERROR;
  }
  mdht_logforge_init(&c.log, stderr, c.a.level, c.a.format);
  mdht_logforge_set_clock(&c.log, mdht_driver_wallclock, NULL);
  run_driver_opts(&c, &o);

  /* The control socket first: a second node on the same path is refused
   * before it binds a port or says it listens. One in the state directory
   * waits for the directory (made by run_open_state), whose lock refuses
   * a second node first, naming its pid. */
  run_control_path(&c);
  if (c.ctl_path && !c.ctl_in_state && run_open_control(&c) < 0)
    return CLI_USAGE_ERROR;
  /* The metrics port too: a busy one is one line and exit 2, before the
   * node binds its own. */
  if (c.a.metrics) {
    char err[256];
    if (mdht_metrics_open(&c.met, c.a.metrics, err, sizeof err) < 0) {
      cli_error("%s", err);
      run_close(&c);
      return CLI_USAGE_ERROR;
    }
    c.have_metrics = true;
  }
  if ((!c.a.no_state && run_open_state(&c, &o) < 0) ||
      (c.ctl_path && c.ctl_in_state && run_open_control(&c) < 0) ||
      run_start_node(&c, &o) < 0) {
    run_close(&c);
    return CLI_USAGE_ERROR;
  }
  run_notify_ready(&c);
  rc = mdht_loop_run(&c.loop, 0);
  if (rc < 0)
    mdht_logforge_logf(&c.log, MDHT_LOG_ERROR, "epoll_wait: %s",
                       mdht_strerror(rc));
  mdht_notify_stopping(&c.notify);
  if (c.have_ctl) mdht_ctl_server_close(&c.ctl);
  c.have_ctl = false;
  if (c.have_state) mdht_persist_save(&c.ps, c.d.node); /* clean shutdown */
  run_close(&c);
  /* SIGTERM is how a service manager stops us: a clean stop, 0. SIGINT is
   * Ctrl-C, which a shell reports as 130 for every command. */
  if (rc < 0) return CLI_USAGE_ERROR;
  return c.stop_signal == SIGINT ? 128 + SIGINT : 0;
}

/* ----------------------------------------------------------------- main */

int mdht_cmd_sim(int argc, char **argv);     /* app/sim.c */
int mdht_cmd_testnet(int argc, char **argv); /* app/testnet.c */

static int cmd_help(int argc, char **argv) {
  if (argc == 0) {
    usage(stdout);
    return 0;
  }
  if (argc > 1) {
    cli_error("unexpected argument '%s'", argv[1]);
    return CLI_USAGE_ERROR;
  }
  if (strcmp(argv[0], "run") == 0) {
    run_usage();
    return 0;
  }
  if (client_command(argv[0])) {
    client_usage(argv[0]);
    return 0;
  }
  if (strcmp(argv[0], "sim") == 0)
    return mdht_cmd_sim(1, (char *[]){"--help", NULL});
  if (strcmp(argv[0], "testnet") == 0)
    return mdht_cmd_testnet(1, (char *[]){"--help", NULL});
  cli_error("unknown command '%s' (try 'mdht --help')", argv[0]);
  return CLI_USAGE_ERROR;
}

int main(int argc, char **argv) {
  const char *cmd;

  /* A reader of our stderr or a control client that goes away must cost a
   * write error, not the process: a node killed by SIGPIPE would not save
   * its state nor remove its control socket. */
  signal(SIGPIPE, SIG_IGN);

  if (argc < 2) {
    cli_error("no command given (try 'mdht --help')");
    return CLI_USAGE_ERROR;
  }
  cmd = argv[1];
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
    printf("mdht %s\n", MDHT_VERSION);
    return 0;
  }
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
    return cmd_help(0, NULL);
  if (strcmp(cmd, "help") == 0) return cmd_help(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 2, argv + 2);
  if (client_command(cmd)) return cmd_client(cmd, argc - 2, argv + 2);
  if (strcmp(cmd, "sim") == 0) return mdht_cmd_sim(argc - 2, argv + 2);
  if (strcmp(cmd, "testnet") == 0) return mdht_cmd_testnet(argc - 2, argv + 2);
  if (cmd[0] == '-')
    cli_error("unknown option '%s' (try 'mdht --help')", cmd);
  else
    cli_error("unknown command '%s' (try 'mdht --help')", cmd);
  return CLI_USAGE_ERROR;
}
