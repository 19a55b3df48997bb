/*
 * mdht sim: the core on the simulator's virtual network (src/sim/), one
 * scenario (src/sim/scenario.h) from the command line: join, announce,
 * kill, look up, report.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "mdht.h"
#include "scenario.h"

int mdht_cmd_sim(int argc, char **argv);

typedef struct sim_args {
  uint32_t nodes;
  uint64_t seed;
  mdht_time latency_ms;
  mdht_time jitter_ms;
  bool lognormal;
  double sigma;
  double loss;
  double churn;
  bool weibull; /* --churn weibull */
  double session_shape;
  double session_scale_min;
  double down_scale_min; /* 0: as the sessions */
  bool same_id;
  const char *weibull_flag; /* a --churn weibull option that was given */
  uint32_t join_batch;
  double dead;
  uint32_t infohashes;
  uint32_t lookups;
  uint32_t routers;
  mdht_time settle_ms;
  mdht_time lookup_step_ms;
  uint32_t alpha;
  mdht_time soft_timeout_ms;
  uint32_t max_txns;
  uint32_t max_lookups;
  uint32_t threads;
  bool json;
  bool progress;
  bool eclipse;       /* the BEP 42 eclipse scenario instead */
  uint32_t attackers; /* ... its attacker addresses */
  bool no_enforce;    /* ... honest nodes without BEP 42 enforcement */
} sim_args;

/* A decimal fraction in [lo, hi]. */
static int parse_double(const char *name, const char *v, double lo, double hi,
                        double *out) {
  char *end;
  double d;
  if (!*v || strchr(v, ' ')) goto bad;
  d = strtod(v, &end);
  if (*end || !isfinite(d) || d < lo || d > hi) goto bad;
  *out = d;
  return 0;
bad:
  cli_error("bad value '%s' for %s (want a number from %g to %g)", v, name, lo,
            hi);
  return -1;
}

static int opt_loss(void *ctx, const char *v) {
  return parse_double("--loss", v, 0, 1, &((sim_args *)ctx)->loss);
}
static int opt_churn(void *ctx, const char *v) {
  sim_args *a = ctx;
  a->weibull = strcmp(v, "weibull") == 0;
  if (a->weibull) return 0;
  if (*v && strchr("0123456789.", *v))
    return parse_double("--churn", v, 0, 1e6, &a->churn);
  cli_error("bad value '%s' for --churn (want a rate from 0 to 1e+06 or "
            "weibull)",
            v);
  return -1;
}
static int opt_shape(void *ctx, const char *v) {
  ((sim_args *)ctx)->weibull_flag = "--session-shape";
  return parse_double("--session-shape", v, 0.05, 10,
                      &((sim_args *)ctx)->session_shape);
}
static int opt_scale(void *ctx, const char *v) {
  ((sim_args *)ctx)->weibull_flag = "--session-scale";
  return parse_double("--session-scale", v, 0.001, 1e6,
                      &((sim_args *)ctx)->session_scale_min);
}
static int opt_down(void *ctx, const char *v) {
  ((sim_args *)ctx)->weibull_flag = "--downtime-scale";
  return parse_double("--downtime-scale", v, 0.001, 1e6,
                      &((sim_args *)ctx)->down_scale_min);
}
static int opt_rejoin(void *ctx, const char *v) {
  sim_args *a = ctx;
  if (strcmp(v, "new-id") == 0)
    a->same_id = false;
  else if (strcmp(v, "same-id") == 0)
    a->same_id = true;
  else {
    cli_error("bad value '%s' for --rejoin (want new-id or same-id)", v);
    return -1;
  }
  return 0;
}
static int opt_dead(void *ctx, const char *v) {
  return parse_double("--dead", v, 0, 0.9, &((sim_args *)ctx)->dead);
}
static int opt_sigma(void *ctx, const char *v) {
  return parse_double("--latency-sigma", v, 0, 4, &((sim_args *)ctx)->sigma);
}

static int opt_dist(void *ctx, const char *v) {
  sim_args *a = ctx;
  if (strcmp(v, "uniform") == 0)
    a->lognormal = false;
  else if (strcmp(v, "lognormal") == 0)
    a->lognormal = true;
  else {
    cli_error("bad value '%s' for --latency-dist (want uniform or lognormal)",
              v);
    return -1;
  }
  return 0;
}

#define OFF(f) offsetof(sim_args, f)
static const cli_opt opts[] = {
    {"--nodes", "N", "nodes in the network (some 37 KiB each)", CLI_U32,
     OFF(nodes), 2, 2000000, NULL},
    {"--seed", "S", "seed of every random choice", CLI_MS, OFF(seed), 0,
     UINT64_MAX, NULL},
    {"--latency", "MS", "median one-way latency of a link", CLI_MS,
     OFF(latency_ms), 0, 10000, NULL},
    {"--jitter", "MS", "plus 0..MS per datagram, uniform", CLI_MS,
     OFF(jitter_ms), 0, 10000, NULL},
    {"--latency-dist", "uniform|lognormal",
     "link latencies: latency x U(0.5,1.5), or latency x exp(sigma N(0,1)) "
     "(default uniform)",
     CLI_CUSTOM, 0, 0, 0, opt_dist},
    {"--latency-sigma", "X", "shape of the lognormal (default 0.6)", CLI_CUSTOM,
     0, 0, 0, opt_sigma},
    {"--loss", "P", "probability a datagram is lost, 0..1 (default 0)",
     CLI_CUSTOM, 0, 0, 0, opt_loss},
    {"--churn", "RATE|weibull",
     "nodes leaving (and as many joining) per virtual second (default 0); "
     "or weibull: every node's sessions and times away drawn from a "
     "Weibull distribution",
     CLI_CUSTOM, 0, 0, 0, opt_churn},
    {"--session-shape", "K",
     "--churn weibull: shape of sessions and times away (default 0.38)",
     CLI_CUSTOM, 0, 0, 0, opt_shape},
    {"--session-scale", "MIN",
     "--churn weibull: scale of session lengths, minutes (default 42.4)",
     CLI_CUSTOM, 0, 0, 0, opt_scale},
    {"--downtime-scale", "MIN",
     "--churn weibull: scale of times away, minutes (default: as "
     "--session-scale)",
     CLI_CUSTOM, 0, 0, 0, opt_down},
    {"--rejoin", "new-id|same-id",
     "a node that left comes back with a new id, or the one it had "
     "(default new-id)",
     CLI_CUSTOM, 0, 0, 0, opt_rejoin},
    {"--join-batch", "N", "nodes joining every 100 ms; 0: max(25, nodes / 400)",
     CLI_U32, OFF(join_batch), 0, 1000000, NULL},
    {"--dead", "FRACTION",
     "kill nodes until this share of routing entries is stale, before the "
     "lookups (default 0)",
     CLI_CUSTOM, 0, 0, 0, opt_dead},
    {"--infohashes", "I", "info-hashes announced", CLI_U32, OFF(infohashes), 1,
     1000000, NULL},
    {"--lookups", "L", "get_peers lookups measured", CLI_U32, OFF(lookups), 1,
     10000000, NULL},
    {"--routers", "N",
     "bootstrap nodes everyone joins through (default 4, at most --nodes)",
     CLI_U32, OFF(routers), 1, 16, NULL},
    {"--settle", "MS", "virtual time between the last join and the announces",
     CLI_MS, OFF(settle_ms), 0, 86400000, NULL},
    {"--lookup-interval", "MS", "virtual time between lookup starts", CLI_MS,
     OFF(lookup_step_ms), 0, 60000, NULL},
    {"--alpha", "N", "lookup parallelism of every node", CLI_U32, OFF(alpha), 1,
     16, NULL},
    {"--soft-timeout", "MS", "lookup soft timeout of every node", CLI_MS,
     OFF(soft_timeout_ms), 0, 5000, NULL},
    {"--max-txns", "N", "outstanding queries per node", CLI_U32, OFF(max_txns),
     16, 65536, NULL},
    {"--max-lookups", "N", "concurrent lookups per node", CLI_U32,
     OFF(max_lookups), 1, 1024, NULL},
    {"--threads", "N",
     "threads delivering events, by default one per online CPU up to 16; "
     "the figures are the same for any N",
     CLI_U32, OFF(threads), 1, 64, NULL},
    {"--json", NULL, "one JSON object instead of the table", CLI_FLAG,
     OFF(json), 0, 0, NULL},
    {"--progress", NULL,
     "on stderr, at each phase and every 2 s of wall time: phase, virtual "
     "time, events and events/s, nodes up, threads, RSS and peak RSS",
     CLI_FLAG, OFF(progress), 0, 0, NULL},
    {"--eclipse", NULL,
     "instead: the BEP 42 eclipse attempt on public virtual addresses "
     "(--nodes honest nodes, --lookups find_node lookups of the target)",
     CLI_FLAG, OFF(eclipse), 0, 0, NULL},
    {"--attackers", "N",
     "--eclipse: attacker addresses, each in its own /24 (default 32)", CLI_U32,
     OFF(attackers), 1, 100000, NULL},
    {"--no-enforce", NULL,
     "--eclipse: honest nodes accept ids that do not match their IP", CLI_FLAG,
     OFF(no_enforce), 0, 0, NULL},
};
#undef OFF

/* One thread per online CPU: the simulator's windows keep them all busy
 * (sim.h). Past 16 the barriers between windows and the share of events
 * each thread gets in a window of a few ms leave little to gain. */
#define MAX_DEFAULT_THREADS 16

static uint32_t default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) return 1;
  return n > MAX_DEFAULT_THREADS ? MAX_DEFAULT_THREADS : (uint32_t)n;
}

static void defaults(sim_args *a) {
  mdht_scenario_opts so;
  mdht_scenario_opts_default(&so);
  memset(a, 0, sizeof *a);
  a->nodes = so.sim.nodes;
  a->seed = so.sim.seed;
  a->latency_ms = so.sim.latency_ms;
  a->jitter_ms = so.sim.jitter_ms;
  a->sigma = so.sim.sigma;
  a->infohashes = so.infohashes;
  a->lookups = so.lookups;
  a->routers = 0; /* given: --routers; else so.routers, at most nodes */
  a->settle_ms = so.settle_ms;
  a->lookup_step_ms = so.lookup_step_ms;
  a->alpha = so.sim.cfg.alpha;
  a->soft_timeout_ms = so.sim.cfg.query_soft_timeout_ms;
  a->max_txns = so.sim.cfg.max_txns;
  a->max_lookups = so.sim.cfg.max_lookups;
  a->attackers = 32;
  a->threads = default_threads();
  a->session_shape = so.session_shape;
  a->session_scale_min = so.session_scale_ms / 60000;
}

/* --eclipse: the honest nodes are --nodes, the rest of the options apply
 * to the network as in the main scenario. */
static int run_eclipse(const sim_args *a, const mdht_scenario_opts *so) {
  mdht_eclipse_opts o;
  mdht_eclipse_opts_default(&o);
  o.sim = so->sim;
  o.honest = a->nodes;
  o.attackers = a->attackers;
  o.routers = so->routers;
  o.lookups = a->lookups;
  o.enforce = !a->no_enforce;
  mdht_eclipse_report r;
  int rc = mdht_eclipse_run(&o, &r);
  if (rc < 0) {
    cli_error("simulation failed: %s", mdht_strerror(rc));
    return CLI_USAGE_ERROR;
  }
  mdht_eclipse_print(stdout, &o, &r);
  return fflush(stdout) == 0 ? 0 : CLI_USAGE_ERROR;
}

static void usage(void) {
  sim_args d;
  defaults(&d);
  printf("usage: mdht sim [options]\n"
         "Runs N nodes on a simulated network in virtual time: they join, "
         "announce\ninfo-hashes, some die, and get_peers lookups from random "
         "nodes are measured\n(success, rounds, datagrams, time to first "
         "peer and to completion against\nthe median link RTT). "
         "Deterministic for a given --seed.\n\noptions:\n");
  cli_print_options(opts, sizeof opts / sizeof opts[0], &d);
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --progress: a line at the start of each phase and, within a phase,
 * every PROGRESS_EVERY_S of wall time. */
#define PROGRESS_EVERY_S 2.0

typedef struct prog {
  bool on;
  uint32_t threads; /* the simulator's, as it reports them */
  double t0;
  double last_wall;     /* of the last line */
  uint64_t last_events; /* ... and the events then */
} prog;

/* The current and peak resident set (VmRSS, VmHWM), in KiB; -1 unknown. */
static void read_rss(long *cur, long *peak) {
  char line[128];
  *cur = *peak = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) *cur = strtol(line + 6, NULL, 10);
    if (strncmp(line, "VmHWM:", 6) == 0) *peak = strtol(line + 6, NULL, 10);
  }
  fclose(f);
}

/* Bytes the allocator has handed out and not had back, in KiB; -1 where
 * the C library cannot tell (not glibc, or its malloc replaced, as under
 * AddressSanitizer: mallinfo2 then reads 0). Against the RSS it shows
 * what fragmentation costs (freed memory the heap cannot return). */
static long heap_in_use(void) {
#ifdef __GLIBC__
  struct mallinfo2 mi = mallinfo2();
  size_t b = mi.uordblks + mi.hblkhd;
  return b ? (long)(b / 1024) : -1;
#else
  return -1;
#endif
}

static void on_progress(const mdht_scenario_status *st, void *user) {
  prog *p = user;
  double now = wall_s();
  p->threads = st->threads;
  if (!p->on || (!st->phase_start && now - p->last_wall < PROGRESS_EVERY_S))
    return;
  double dt = now - p->last_wall;
  double rate = dt > 0 ? (double)(st->c.events - p->last_events) / dt : 0;
  /* mallinfo2 walks every free chunk under the arena locks, the worker
   * threads waiting: over a second per call at a million nodes, so only
   * on the line that starts a phase. */
  long cur, peak, heap = st->phase_start ? heap_in_use() : -1;
  char heaps[48] = "";
  if (heap >= 0)
    snprintf(heaps, sizeof heaps, ", heap in use %.0f", (double)heap / 1024);
  read_rss(&cur, &peak);
  fprintf(stderr,
          "mdht sim: %-8s virtual %8.1f s, %llu events (%.0f/s), %llu "
          "queued, nodes %u/%u up, %u threads, RSS %.0f MiB (peak %.0f%s), "
          "wall %.1f s\n",
          st->phase, (double)st->vt / 1000, (unsigned long long)st->c.events,
          rate, (unsigned long long)st->c.queued, st->alive, st->nodes,
          st->threads, (double)cur / 1024, (double)peak / 1024, heaps,
          now - p->t0);
  p->last_wall = now;
  p->last_events = st->c.events;
}

int mdht_cmd_sim(int argc, char **argv) {
  sim_args a;
  const char *pos[1];
  size_t npos;
  defaults(&a);
  int rc = cli_parse(opts, sizeof opts / sizeof opts[0], argc, argv, &a, pos, 0,
                     &npos);
  if (rc == 1) {
    usage();
    return 0;
  }
  if (rc < 0) return CLI_USAGE_ERROR;
  if (a.routers == 0) {
    mdht_scenario_opts so;
    mdht_scenario_opts_default(&so);
    a.routers = so.routers < a.nodes ? so.routers : a.nodes;
  }
  if (a.weibull_flag && !a.weibull) {
    cli_error("%s needs --churn weibull", a.weibull_flag);
    return CLI_USAGE_ERROR;
  }
  if (a.routers > a.nodes) {
    cli_error("--routers %u is more than --nodes %u", a.routers, a.nodes);
    return CLI_USAGE_ERROR;
  }

  mdht_scenario_opts o;
  mdht_scenario_opts_default(&o);
  o.sim.nodes = a.nodes;
  o.sim.seed = a.seed;
  o.sim.latency_ms = a.latency_ms;
  o.sim.jitter_ms = a.jitter_ms;
  o.sim.dist = a.lognormal ? MDHT_SIM_LAT_LOGNORMAL : MDHT_SIM_LAT_UNIFORM;
  o.sim.sigma = a.sigma;
  o.sim.loss = a.loss;
  o.sim.cfg.alpha = a.alpha;
  o.sim.cfg.query_soft_timeout_ms = a.soft_timeout_ms;
  o.sim.cfg.max_txns = a.max_txns;
  o.sim.cfg.max_lookups = a.max_lookups;
  o.sim.threads = a.threads;
  o.churn = a.churn;
  if (a.weibull) {
    o.churn_model = MDHT_CHURN_WEIBULL;
    o.session_shape = a.session_shape;
    o.session_scale_ms = a.session_scale_min * 60000;
    o.down_scale_ms =
        (a.down_scale_min > 0 ? a.down_scale_min : a.session_scale_min) * 60000;
  }
  o.rejoin_same_id = a.same_id;
  o.join_batch = a.join_batch;
  o.dead = a.dead;
  o.infohashes = a.infohashes;
  o.lookups = a.lookups;
  o.routers = a.routers;
  o.settle_ms = a.settle_ms;
  o.lookup_step_ms = a.lookup_step_ms;
  if (mdht_config_check(&o.sim.cfg) < 0) {
    cli_error("the node settings are inconsistent (soft timeout above the "
              "hard one?)");
    return CLI_USAGE_ERROR;
  }
  if (a.eclipse) return run_eclipse(&a, &o);
  double t0 = wall_s();
  prog p = {a.progress, a.threads, t0, t0, 0};
  o.progress = on_progress;
  o.progress_user = &p;

  mdht_scenario_report r;
  rc = mdht_scenario_run(&o, &r);
  if (rc < 0) {
    cli_error("simulation failed: %s", mdht_strerror(rc));
    return CLI_USAGE_ERROR;
  }
  double wall = wall_s() - p.t0;
  struct rusage ru;
  long rss_kib = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
  double eps = wall > 0 ? (double)r.events / wall : 0;
  if (a.json) {
    char extra[160];
    snprintf(extra, sizeof extra,
             "\"wall_s\":%.2f,\"max_rss_kib\":%ld,\"events_per_s\":%.0f,"
             "\"threads\":%u",
             wall, rss_kib, eps, p.threads);
    mdht_scenario_print_json(stdout, &o, &r, extra);
  } else {
    mdht_scenario_print(stdout, &o, &r);
    printf("run: %.1f s wall on %u threads, %.0f events/s, max RSS %.1f MiB "
           "(%.1f KiB per node)\n",
           wall, p.threads, eps, (double)rss_kib / 1024,
           (double)rss_kib / a.nodes);
  }
  return fflush(stdout) == 0 ? 0 : CLI_USAGE_ERROR;
}
