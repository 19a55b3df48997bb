#include "sim.h"
#include "bep42.h"
#include "evq.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A pending delivery or timer: `to` the node, `from` the sender or TIMER,
 * `gen` the generation of `to` it was meant for (churn), `data`/`len` the
 * datagram. Its `key` orders events due at the same millisecond by what
 * they are, whatever thread queued them (evq.h): a datagram by its sender
 * and the sender's count of datagrams sent, a timer by its node (after
 * that node's own datagrams of the same instant). */
typedef mdht_evq_item event;
#define TIMER UINT32_MAX
#define SEQ_BITS 40
#define SEQ_MASK ((1ull << SEQ_BITS) - 1)

static uint64_t datagram_key(uint32_t from, uint64_t seq) {
  return (uint64_t)from << SEQ_BITS | (seq % SEQ_MASK);
}
static uint64_t timer_key(uint32_t node) {
  return (uint64_t)node << SEQ_BITS | SEQ_MASK;
}

typedef struct simnode {
  mdht_node *node;
  mdht_addr addr;
  bool alive;
  uint32_t gen;
  mdht_time armed; /* the timer already queued, UINT64_MAX none */
  mdht_time spare; /* a later timer still queued (superseded by `armed`),
                      UINT64_MAX none */
  uint64_t rng;    /* the node's own random stream (its callback) */
  uint64_t net;    /* the network's draws for the node's datagrams (loss,
                      jitter): the sender's, so no thread shares it */
  uint64_t nsent;  /* datagrams it sent, every generation: their keys */
} simnode;

/* Datagram copies come from per-thread free lists of a few size classes,
 * carved from aligned chunks: no malloc per datagram. A buffer goes back
 * to the thread whose chunk it came from (the chunk's header says which),
 * through a return list handed over at the window barrier like the
 * outboxes, so that no thread's lists grow while another's shrink. */
#define SLAB_SHIFT 7 /* 128-byte buffers, then 256 ... */
#define SLAB_CLASSES 5
#define SLAB_CHUNK ((size_t)1 << 16)
#define SLAB_HDR 64 /* the chunk header: owner and the chunk list */
_Static_assert((128u << (SLAB_CLASSES - 1)) >= MDHT_MAX_PACKET,
               "the largest slab class holds the largest datagram");

typedef struct buflist {
  uint8_t *head, *tail;
} buflist;

typedef struct chunk_hdr {
  uint32_t owner;
  struct chunk_hdr *next;
} chunk_hdr;

/* Events for another thread's nodes, sent during a window. */
typedef struct outbox {
  event *v;
  size_t n, cap;
} outbox;

#define MAX_THREADS 64

typedef struct worker {
  struct mdht_sim *sim;
  uint32_t id;
  mdht_evq q;
  mdht_time now;
  mdht_time out_min; /* earliest event put in an outbox this window */
  mdht_sim_counts c;
  uint64_t sent, lost;
  buflist free[SLAB_CLASSES];
  chunk_hdr *chunks;
  /* [window parity][destination thread] */
  outbox out[2][MAX_THREADS];
  buflist ret[2][MAX_THREADS][SLAB_CLASSES];
  pthread_t tid;
  bool started;
} worker;

struct mdht_sim {
  mdht_sim_opts o;
  simnode *nodes;
  uint32_t n;
  mdht_time now;
  void (*poll)(void *user);
  void *poll_user;
  uint64_t poll_every, poll_next;
  uint64_t rng;
  /* Threads: node i belongs to worker i % nthreads; worker 0 is the
   * calling thread. Windows of `lookahead` ms: every datagram takes at
   * least that long, so nothing sent in a window is due within it. */
  uint32_t nthreads;
  mdht_time lookahead;
  worker **w;
  uint32_t nworkers; /* allocated (nthreads, unless threads failed) */
  pthread_barrier_t start, end;
  bool barriers;
  pthread_mutex_t mu; /* and cv: the threads' start (go 1) or not (-1) */
  pthread_cond_t cv;
  int go;
  mdht_time win_end; /* the window's events are those due before it */
  unsigned parity;   /* the window's outboxes and return lists */
  bool stop;
};

/* The worker running on this thread, while it delivers (NULL outside). */
static _Thread_local worker *cur;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t mdht_sim_rand(mdht_sim *sim) {
  return splitmix(&sim->rng);
}

static void node_random(uint8_t *buf, size_t len, void *user) {
  uint64_t *s = user;
  while (len > 0) {
    uint64_t v = splitmix(s);
    size_t k = len < 8 ? len : 8;
    memcpy(buf, &v, k);
    buf += k;
    len -= k;
  }
}

double mdht_sim_uniform(mdht_sim *sim) {
  return (double)(splitmix(&sim->rng) >> 11) * 0x1.0p-53;
}

/* A hash of the seed and the unordered pair: the link's own randomness,
 * independent of the order in which datagrams happen to be sent. */
static uint64_t link_hash(const mdht_sim *sim, uint32_t i, uint32_t j,
                          uint64_t salt) {
  uint64_t lo = i < j ? i : j, hi = i < j ? j : i;
  uint64_t s = sim->o.seed ^ (lo << 32 | hi) * 0xd6e8feb86659fd93ull ^ salt;
  splitmix(&s);
  return splitmix(&s);
}

static double unit(uint64_t h) {
  return (double)(h >> 11) * 0x1.0p-53;
}

mdht_time mdht_sim_link_latency(const mdht_sim *sim, uint32_t i, uint32_t j) {
  double base = (double)sim->o.latency_ms;
  if (sim->o.dist == MDHT_SIM_LAT_LOGNORMAL) {
    /* Box-Muller from two independent hashes of the pair. */
    double u1 = unit(link_hash(sim, i, j, 1)),
           u2 = unit(link_hash(sim, i, j, 2));
    if (u1 < 1e-300) u1 = 1e-300;
    double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    double v = base * exp(sim->o.sigma * z);
    if (v < base / 10) v = base / 10;
    if (v > base * 20) v = base * 20;
    return (mdht_time)(v + 0.5);
  }
  if (!sim->o.per_link) return sim->o.latency_ms;
  return (mdht_time)(base * (0.5 + unit(link_hash(sim, i, j, 3))) + 0.5);
}

/* Node i lives at 127.0.0.1 + i: unique, and private so that every node
 * accepts the others (allow_private); or, with public_addrs, at
 * 20.0.0.1 + 256 i: public (BEP 42 applies), one node per /24. */
#define PUBLIC_BASE 0x14000001u
#define PUBLIC_MAX (1u << 20)

static mdht_addr addr_of(const mdht_sim *sim, uint32_t i) {
  uint32_t ip = sim->o.public_addrs ? PUBLIC_BASE + (i << 8) : 0x7f000001u + i;
  mdht_addr a;
  memset(&a, 0, sizeof a);
  a.family = MDHT_AF_INET;
  a.ip[0] = (uint8_t)(ip >> 24);
  a.ip[1] = (uint8_t)(ip >> 16);
  a.ip[2] = (uint8_t)(ip >> 8);
  a.ip[3] = (uint8_t)ip;
  a.port = 6881;
  return a;
}

bool mdht_sim_index(const mdht_sim *sim, const mdht_addr *a, uint32_t *i) {
  if (a->family != MDHT_AF_INET || a->port != 6881) return false;
  uint32_t ip = (uint32_t)a->ip[0] << 24 | (uint32_t)a->ip[1] << 16 |
                (uint32_t)a->ip[2] << 8 | a->ip[3];
  uint32_t k = ip - 0x7f000001u;
  if (sim->o.public_addrs) {
    k = ip - PUBLIC_BASE;
    if (k & 0xff) return false;
    k >>= 8;
  }
  if (k >= sim->n) return false;
  *i = k;
  return true;
}

/* Makes node i at its address; `keep` (may be NULL): the id it had. */
static int make_node(mdht_sim *sim, uint32_t i, const mdht_id *keep) {
  simnode *s = &sim->nodes[i];
  s->rng = splitmix(&sim->rng);
  s->net = s->rng ^ 0x6a09e667f3bcc909ull;
  mdht_callbacks cb = {.random = node_random, .user = &s->rng};
  mdht_config cfg = sim->o.cfg;
  cfg.allow_private = true;
  s->addr = addr_of(sim, i);
  s->alive = true;
  s->armed = s->spare = UINT64_MAX;
  mdht_id id;
  bool chosen = sim->o.node_setup && sim->o.node_setup(sim->o.node_setup_user,
                                                       i, &s->addr, &id, &cfg);
  if (keep) {
    id = *keep;
    cfg.fixed_id = true;
    chosen = true;
  }
  if (!chosen && sim->o.public_addrs) {
    uint8_t rnd[MDHT_ID_LEN];
    node_random(rnd, sizeof rnd, &s->rng);
    mdht_bep42_make(&id, &s->addr, rnd);
    chosen = true;
  }
  int rc = mdht_node_new(&s->node, &cfg, &cb, chosen ? &id : NULL, &s->addr,
                         sim->now);
  if (rc < 0) {
    s->node = NULL;
    s->alive = false; /* never touched, never delivered to */
  }
  return rc;
}

void mdht_sim_opts_default(mdht_sim_opts *o) {
  memset(o, 0, sizeof *o);
  o->nodes = 100;
  o->seed = 1;
  o->latency_ms = 50;
  o->jitter_ms = 50;
  o->dist = MDHT_SIM_LAT_UNIFORM;
  o->per_link = false;
  o->sigma = 0.6;
  o->loss = 0;
  o->threads = 1;
  mdht_config_default(&o->cfg);
  /* Every node shares one IP range in the simulation: no rate limit. */
  o->cfg.rate_limit_per_sec = 0;
}

/* The shortest one-way latency the model can give (sim.h): the base of a
 * link is at least latency/2 (per-link uniform, rounded) or latency/10
 * (log-normal, clamped), and jitter only adds. */
static mdht_time lookahead_of(const mdht_sim_opts *o) {
  if (o->dist == MDHT_SIM_LAT_LOGNORMAL) return o->latency_ms / 10;
  if (o->per_link) return o->latency_ms / 2;
  return o->latency_ms;
}

/* Runs of 64 nodes take turns: every thread gets nodes that joined early
 * and late alike, while neighbouring simnodes, written on every datagram a
 * node sends, share a cache line only at the edge of a run (node i on
 * thread i % T made the two threads write to the same lines all the time). */
#define OWNER_RUN_SHIFT 6

static worker *owner(const mdht_sim *sim, uint32_t i) {
  return sim->w[(i >> OWNER_RUN_SHIFT) % sim->nthreads];
}

/* ------------------------------------------------------------- slab */

static unsigned size_class(uint16_t len) {
  unsigned c = 0;
  while ((128u << c) < len)
    c++;
  return c;
}

static uint8_t *next_of(uint8_t *p) {
  uint8_t *n;
  memcpy(&n, p, sizeof n);
  return n;
}
static void set_next(uint8_t *p, uint8_t *n) {
  memcpy(p, &n, sizeof n);
}

static void list_push(buflist *l, uint8_t *p) {
  set_next(p, l->head);
  if (!l->head) l->tail = p;
  l->head = p;
}

/* Moves all of `from` to the front of `to`. */
static void list_splice(buflist *to, buflist *from) {
  if (!from->head) return;
  set_next(from->tail, to->head);
  if (!to->head) to->tail = from->tail;
  to->head = from->head;
  from->head = from->tail = NULL;
}

static bool slab_refill(worker *w, unsigned c) {
  chunk_hdr *h = aligned_alloc(SLAB_CHUNK, SLAB_CHUNK);
  if (!h) return false;
  h->owner = w->id;
  h->next = w->chunks;
  w->chunks = h;
  size_t sz = (size_t)128 << c;
  for (size_t off = SLAB_HDR; off + sz <= SLAB_CHUNK; off += sz)
    list_push(&w->free[c], (uint8_t *)h + off);
  return true;
}

static uint8_t *slab_get(worker *w, uint16_t len) {
  unsigned c = size_class(len);
  if (!w->free[c].head && !slab_refill(w, c)) return NULL;
  uint8_t *p = w->free[c].head;
  w->free[c].head = next_of(p);
  return p;
}

/* A buffer of another thread's chunk waits in a return list until the
 * barrier; its owner takes it back at the next window. */
static void slab_put(worker *w, uint8_t *p, uint16_t len) {
  chunk_hdr *h = (chunk_hdr *)((uintptr_t)p & ~(uintptr_t)(SLAB_CHUNK - 1));
  unsigned c = size_class(len);
  if (h->owner == w->id)
    list_push(&w->free[c], p);
  else
    list_push(&w->sim->w[h->owner]->ret[w->sim->parity][w->id][c], p);
}

/* ------------------------------------------------------ construction */

static void *worker_main(void *arg);

/* Threads 1..n-1 (worker 0 is the caller's). They wait for `go` before
 * the first barrier: if one cannot be started, the others are told to
 * quit and the run uses this thread alone (the results do not depend on
 * how many threads there are). */
static void start_threads(mdht_sim *sim) {
  uint32_t n = sim->nthreads, started = 1;
  if (n < 2) return;
  if (pthread_barrier_init(&sim->start, NULL, n) != 0) goto single;
  if (pthread_barrier_init(&sim->end, NULL, n) != 0) {
    pthread_barrier_destroy(&sim->start);
    goto single;
  }
  sim->barriers = true;
  for (; started < n; started++)
    if (pthread_create(&sim->w[started]->tid, NULL, worker_main,
                       sim->w[started]) != 0)
      break;
  pthread_mutex_lock(&sim->mu);
  sim->go = started == n ? 1 : -1;
  pthread_cond_broadcast(&sim->cv);
  pthread_mutex_unlock(&sim->mu);
  if (started == n) return;
  for (uint32_t t = 1; t < started; t++)
    pthread_join(sim->w[t]->tid, NULL);
  pthread_barrier_destroy(&sim->start);
  pthread_barrier_destroy(&sim->end);
  sim->barriers = false;
single:
  sim->nthreads = 1;
}

static int make_workers(mdht_sim *sim) {
  uint32_t t = sim->o.threads ? sim->o.threads : 1;
  if (t > MAX_THREADS) t = MAX_THREADS;
  if (t > sim->o.nodes) t = sim->o.nodes;
  sim->lookahead = lookahead_of(&sim->o);
  if (sim->lookahead == 0) t = 1; /* no window to run ahead in */
  sim->w = calloc(t, sizeof *sim->w);
  if (!sim->w) return MDHT_ERR_NOMEM;
  sim->nthreads = sim->nworkers = t;
  for (uint32_t k = 0; k < t; k++) {
    sim->w[k] = calloc(1, sizeof *sim->w[k]);
    if (!sim->w[k]) return MDHT_ERR_NOMEM;
    sim->w[k]->sim = sim;
    sim->w[k]->id = k;
    sim->w[k]->out_min = UINT64_MAX;
    mdht_evq_init(&sim->w[k]->q);
  }
  start_threads(sim);
  return 0;
}

int mdht_sim_new(mdht_sim **out, const mdht_sim_opts *o) {
  if (!out || !o || o->nodes == 0 || o->nodes > (1u << 24) ||
      (o->public_addrs && o->nodes > PUBLIC_MAX) || o->loss < 0 ||
      o->loss > 1 || !(o->sigma >= 0 && o->sigma <= 4) ||
      (o->dist != MDHT_SIM_LAT_UNIFORM && o->dist != MDHT_SIM_LAT_LOGNORMAL))
    return MDHT_ERR_INVAL;
  mdht_sim *sim = calloc(1, sizeof *sim);
  if (!sim) return MDHT_ERR_NOMEM;
  sim->o = *o;
  sim->rng = o->seed;
  sim->now = 1000; /* 0 means "never" in some of the node's fields */
  pthread_mutex_init(&sim->mu, NULL);
  pthread_cond_init(&sim->cv, NULL);
  sim->nodes = calloc(o->nodes, sizeof *sim->nodes);
  int rc = sim->nodes ? make_workers(sim) : MDHT_ERR_NOMEM;
  for (uint32_t i = 0; rc == 0 && i < o->nodes; i++) {
    rc = make_node(sim, i, NULL);
    sim->n = rc == 0 ? i + 1 : i;
  }
  if (rc < 0) {
    mdht_sim_del(sim);
    return rc;
  }
  *out = sim;
  return 0;
}

static void free_worker(worker *w) {
  if (!w) return;
  mdht_evq_free(&w->q);
  for (int p = 0; p < 2; p++)
    for (int t = 0; t < MAX_THREADS; t++)
      free(w->out[p][t].v);
  while (w->chunks) {
    chunk_hdr *next = w->chunks->next;
    free(w->chunks);
    w->chunks = next;
  }
  free(w);
}

void mdht_sim_del(mdht_sim *sim) {
  if (!sim) return;
  if (sim->barriers && sim->nthreads > 1) {
    sim->stop = true;
    pthread_barrier_wait(&sim->start);
    for (uint32_t t = 1; t < sim->nthreads; t++)
      pthread_join(sim->w[t]->tid, NULL);
  }
  if (sim->barriers) {
    pthread_barrier_destroy(&sim->start);
    pthread_barrier_destroy(&sim->end);
  }
  pthread_mutex_destroy(&sim->mu);
  pthread_cond_destroy(&sim->cv);
  for (uint32_t i = 0; i < sim->n; i++)
    mdht_node_del(sim->nodes[i].node);
  /* Queued datagrams live in the workers' chunks, freed with them. */
  for (uint32_t t = 0; sim->w && t < sim->nworkers; t++)
    free_worker(sim->w[t]);
  free(sim->w);
  free(sim->nodes);
  free(sim);
}

/* -------------------------------------------------------- accessors */

uint32_t mdht_sim_count(const mdht_sim *sim) {
  return sim->n;
}
mdht_node *mdht_sim_node(mdht_sim *sim, uint32_t i) {
  return sim->nodes[i].node;
}
const mdht_addr *mdht_sim_addr(const mdht_sim *sim, uint32_t i) {
  return &sim->nodes[i].addr;
}
/* Inside a delivery, the time of that delivery (each thread is at its own
 * point of the window); outside, the time the run reached. */
mdht_time mdht_sim_now(const mdht_sim *sim) {
  return cur && cur->sim == sim ? cur->now : sim->now;
}
uint32_t mdht_sim_threads(const mdht_sim *sim) {
  return sim->nthreads;
}
uint32_t mdht_sim_thread(const mdht_sim *sim) {
  return cur && cur->sim == sim ? cur->id : 0;
}
mdht_time mdht_sim_lookahead(const mdht_sim *sim) {
  return sim->lookahead;
}
bool mdht_sim_alive(const mdht_sim *sim, uint32_t i) {
  return sim->nodes[i].alive;
}
uint64_t mdht_sim_sent(const mdht_sim *sim) {
  uint64_t n = 0;
  for (uint32_t t = 0; t < sim->nthreads; t++)
    n += sim->w[t]->sent;
  return n;
}
uint64_t mdht_sim_lost(const mdht_sim *sim) {
  uint64_t n = 0;
  for (uint32_t t = 0; t < sim->nthreads; t++)
    n += sim->w[t]->lost;
  return n;
}

void mdht_sim_kill(mdht_sim *sim, uint32_t i) {
  sim->nodes[i].alive = false;
}

int mdht_sim_restart(mdht_sim *sim, uint32_t i) {
  return mdht_sim_restart_as(sim, i, false);
}

int mdht_sim_restart_as(mdht_sim *sim, uint32_t i, bool same_id) {
  simnode *s = &sim->nodes[i];
  mdht_id old = *mdht_node_id(s->node);
  mdht_node_del(s->node);
  s->node = NULL;
  s->gen++;
  int rc = make_node(sim, i, same_id ? &old : NULL);
  if (rc == 0) mdht_sim_touch(sim, i);
  return rc;
}

/* ------------------------------------------------------------ events */

/* Queues ev for its node's thread: directly when that is this thread or
 * when no window is running, else through this thread's outbox (merged
 * at the barrier; it is due after the window anyway). */
static void post(mdht_sim *sim, worker *w, event ev) {
  worker *dst = owner(sim, ev.to);
  if (cur == NULL || dst == w) {
    if (mdht_evq_push(&dst->q, ev) < 0 && ev.data) slab_put(w, ev.data, ev.len);
    return;
  }
  outbox *b = &w->out[sim->parity][dst->id];
  if (b->n == b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 256;
    event *nv = realloc(b->v, nc * sizeof *nv);
    if (!nv) {
      if (ev.data) slab_put(w, ev.data, ev.len);
      return;
    }
    b->v = nv;
    b->cap = nc;
  }
  b->v[b->n++] = ev;
  if (ev.at < w->out_min) w->out_min = ev.at;
}

/* Sends one datagram of node i (on worker w, at `now`) to j: lost, or
 * copied and queued with the link's latency and the sender's jitter. */
static void send_one(mdht_sim *sim, worker *w, uint32_t i, uint32_t j,
                     const uint8_t *buf, int len, mdht_time now) {
  simnode *s = &sim->nodes[i];
  uint64_t seq = s->nsent++;
  if (sim->o.loss > 0 &&
      (double)(splitmix(&s->net) >> 11) * 0x1.0p-53 < sim->o.loss) {
    w->lost++;
    return;
  }
  mdht_time lat = mdht_sim_link_latency(sim, i, j);
  if (sim->o.jitter_ms) lat += splitmix(&s->net) % (sim->o.jitter_ms + 1);
  uint8_t *data = slab_get(w, (uint16_t)len);
  if (!data) return;
  memcpy(data, buf, (size_t)len);
  event ev = {.at = now + lat,
              .key = datagram_key(i, seq),
              .to = j,
              .from = i,
              .gen = sim->nodes[j].gen,
              .len = (uint16_t)len,
              .data = data};
  post(sim, w, ev);
}

/* Sends what node i queued and makes sure its timer is queued. */
static void touch(mdht_sim *sim, worker *w, uint32_t i, mdht_time now) {
  simnode *s = &sim->nodes[i];
  if (!s->alive) return;
  uint8_t buf[MDHT_MAX_PACKET];
  mdht_addr to;
  int len;
  while ((len = mdht_node_next_packet(s->node, &to, buf, sizeof buf)) > 0) {
    w->sent++;
    uint32_t j;
    if (mdht_sim_index(sim, &to, &j)) /* else nobody lives there */
      send_one(sim, w, i, j, buf, len, now);
  }
  /* A million queues kept between ticks would be 1.3 GB (mdht.h). */
  mdht_node_trim(s->node);
  mdht_time d = mdht_node_next_deadline(s->node);
  /* Never "now" again: a timer that fires without clearing its deadline
   * must not spin the loop at one instant. */
  if (d <= now) d = now + 1;
  /* Queue a timer only if it is earlier than the one already queued:
   * later ones are re-armed when that one fires. The timer an earlier one
   * superseded is still queued: it serves as the next one if it is not
   * later than the deadline (at 20,000 nodes, 18 % of all timers were a
   * second one queued for the same instant, firing with nothing due). */
  if (s->armed == UINT64_MAX && s->spare <= d && s->spare >= now) {
    s->armed = s->spare;
    s->spare = UINT64_MAX;
  }
  if (d != UINT64_MAX && d < s->armed) {
    event ev = {
        .at = d, .key = timer_key(i), .to = i, .from = TIMER, .gen = s->gen};
    if (s->armed != UINT64_MAX) s->spare = s->armed;
    s->armed = d;
    post(sim, w, ev);
  }
}

void mdht_sim_touch(mdht_sim *sim, uint32_t i) {
  if (cur && cur->sim == sim)
    touch(sim, cur, i, cur->now);
  else
    touch(sim, owner(sim, i), i, sim->now);
}

/* Delivers one event on worker w; the event's data goes back here. */
static void deliver(mdht_sim *sim, worker *w, event *ev) {
  simnode *s = &sim->nodes[ev->to];
  if (!s->alive || ev->gen != s->gen) {
    w->c.dropped++;
  } else if (ev->from == TIMER) {
    w->c.timers++;
    if (s->armed == ev->at)
      s->armed = UINT64_MAX;
    else if (s->spare == ev->at)
      s->spare = UINT64_MAX;
    if (mdht_node_next_deadline(s->node) <= w->now)
      mdht_node_tick(s->node, w->now);
    else
      w->c.early++;
    touch(sim, w, ev->to, w->now);
  } else {
    w->c.datagrams++;
    mdht_node_recv(s->node, &sim->nodes[ev->from].addr, ev->data, ev->len,
                   w->now);
    touch(sim, w, ev->to, w->now);
  }
  if (ev->data) slab_put(w, ev->data, ev->len);
}

static uint64_t events_total(const mdht_sim *sim) {
  uint64_t n = 0;
  for (uint32_t t = 0; t < sim->nthreads; t++)
    n += sim->w[t]->c.events;
  return n;
}

static void maybe_poll(mdht_sim *sim) {
  if (!sim->poll) return;
  uint64_t n = events_total(sim);
  if (n < sim->poll_next) return;
  sim->poll_next = n + sim->poll_every;
  sim->poll(sim->poll_user);
}

/* One thread: everything in key order up to `until`. */
static void run_serial(mdht_sim *sim, mdht_time until) {
  worker *w = sim->w[0];
  const event *top;
  w->now = sim->now;
  cur = w;
  while ((top = mdht_evq_peek(&w->q)) && top->at <= until) {
    event ev;
    mdht_evq_pop(&w->q, &ev);
    if (ev.at > w->now) w->now = ev.at;
    w->c.events++;
    deliver(sim, w, &ev);
    maybe_poll(sim);
  }
  cur = NULL;
  sim->now = w->now > until ? w->now : until;
}

/* ---------------------------------------------------------- windows */

/* Takes what the other threads sent this worker during window `parity`:
 * events into its queue, buffers back into its free lists. */
static void take_inbox(mdht_sim *sim, worker *w, unsigned parity) {
  for (uint32_t t = 0; t < sim->nthreads; t++) {
    worker *src = sim->w[t];
    outbox *b = &src->out[parity][w->id];
    for (size_t k = 0; k < b->n; k++)
      if (mdht_evq_push(&w->q, b->v[k]) < 0 && b->v[k].data)
        slab_put(w, b->v[k].data, b->v[k].len);
    b->n = 0;
    for (unsigned c = 0; c < SLAB_CLASSES; c++)
      list_splice(&w->free[c], &w->ret[parity][t][c]);
  }
}

/* This worker's share of the window: its inbox from the last window, then
 * its nodes' events due before win_end, in key order. */
static void window(mdht_sim *sim, worker *w) {
  cur = w;
  take_inbox(sim, w, sim->parity ^ 1u);
  w->out_min = UINT64_MAX;
  w->now = sim->now;
  const event *top;
  while ((top = mdht_evq_peek(&w->q)) && top->at < sim->win_end) {
    event ev;
    mdht_evq_pop(&w->q, &ev);
    if (ev.at > w->now) w->now = ev.at;
    w->c.events++;
    deliver(sim, w, &ev);
  }
  cur = NULL;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  mdht_sim *sim = w->sim;
  pthread_mutex_lock(&sim->mu);
  while (sim->go == 0)
    pthread_cond_wait(&sim->cv, &sim->mu);
  int go = sim->go;
  pthread_mutex_unlock(&sim->mu);
  if (go < 0) return NULL;
  for (;;) {
    pthread_barrier_wait(&sim->start);
    if (sim->stop) break;
    window(sim, w);
    pthread_barrier_wait(&sim->end);
  }
  return NULL;
}

/* The earliest pending event of any thread, queued or in an outbox. */
static mdht_time earliest(const mdht_sim *sim) {
  mdht_time t = UINT64_MAX;
  for (uint32_t k = 0; k < sim->nthreads; k++) {
    const event *top = mdht_evq_peek(&sim->w[k]->q);
    if (top && top->at < t) t = top->at;
    if (sim->w[k]->out_min < t) t = sim->w[k]->out_min;
  }
  return t;
}

/* Windows [t, t + lookahead) from the earliest event on, the last one cut
 * at `until`; the calling thread is worker 0. Between windows (behind the
 * barriers) only this thread runs: it reads the queues' heads, polls, and
 * at the end takes every outbox in, so that the caller finds all events
 * queued. */
static void run_parallel(mdht_sim *sim, mdht_time until) {
  for (;;) {
    mdht_time t = earliest(sim);
    if (t == UINT64_MAX || t > until) break;
    if (t > sim->now) sim->now = t;
    mdht_time e = t + sim->lookahead;
    if (e > until + 1) e = until + 1;
    sim->win_end = e;
    sim->parity ^= 1u;
    pthread_barrier_wait(&sim->start);
    window(sim, sim->w[0]);
    pthread_barrier_wait(&sim->end);
    sim->now = e - 1;
    maybe_poll(sim);
  }
  for (uint32_t k = 0; k < sim->nthreads; k++) {
    take_inbox(sim, sim->w[k], sim->parity);
    take_inbox(sim, sim->w[k], sim->parity ^ 1u);
    sim->w[k]->out_min = UINT64_MAX;
  }
  if (until > sim->now) sim->now = until;
}

void mdht_sim_run(mdht_sim *sim, mdht_time until) {
  if (sim->nthreads > 1)
    run_parallel(sim, until);
  else
    run_serial(sim, until);
}

void mdht_sim_set_poll(mdht_sim *sim, uint64_t every, void (*fn)(void *user),
                       void *user) {
  sim->poll = fn;
  sim->poll_user = user;
  sim->poll_every = every ? every : 1;
  sim->poll_next = events_total(sim) + sim->poll_every;
}

void mdht_sim_counts_get(const mdht_sim *sim, mdht_sim_counts *out) {
  memset(out, 0, sizeof *out);
  for (uint32_t t = 0; t < sim->nthreads; t++) {
    const worker *w = sim->w[t];
    out->events += w->c.events;
    out->datagrams += w->c.datagrams;
    out->timers += w->c.timers;
    out->early += w->c.early;
    out->dropped += w->c.dropped;
    out->queued += mdht_evq_size(&w->q);
    for (uint32_t d = 0; d < sim->nthreads; d++)
      out->queued += w->out[0][d].n + w->out[1][d].n;
  }
}
