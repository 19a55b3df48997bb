/* Jobs (ctl_job.c): a request run on a node that knows nobody. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_job.h"
#include "testutil.h"

#define HEX1 "0123456789abcdef0123456789abcdef01234567"
#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddcc"

static mdht_id id_of(const char *hex) {
  mdht_id id;
  assert_int_equal(mdht_id_parse(&id, hex), 0);
  return id;
}

static const char *text(mdht_ctl_buf *b) {
  static char s[8192];
  size_t n = b->len < sizeof s - 1 ? b->len : sizeof s - 1;
  memcpy(s, b->p ? b->p : "", n);
  s[n] = '\0';
  return s;
}

static mdht_node *lone_node(uint64_t *seed) {
  mdht_callbacks cb = {test_random, seed};
  mdht_addr bound = test_addr4(127, 0, 0, 1, 6881);
  mdht_id id = id_of(HEX2);
  mdht_node *node = NULL;
  assert_int_equal(mdht_node_new(&node, NULL, &cb, &id, &bound, 1000), 0);
  return node;
}

static void notified(mdht_ctl_job *job, void *user) {
  (void)job;
  (*(int *)user)++;
}

static void test_job_stats(void **state) {
  uint64_t seed = 7;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_STATS};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  mdht_ctl_job_init(&job, node, &req, &b, 61000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 61000), 0);
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, 0);
  assert_non_null(strstr(text(&b), "id               " HEX2 "\n"));
  assert_non_null(strstr(text(&b), "uptime           60 s\n"));
  /* Bad nodes are counted too, and the plurals agree with the counts. */
  assert_non_null(strstr(text(&b), "nodes            0 (0 good, 0 "
                                   "questionable, 0 bad) in 1 bucket, "
                                   "0 replacements\n"));
  assert_non_null(
      strstr(text(&b), "storage          0 info-hashes, 0 peers\n"));
  assert_non_null(strstr(text(&b), "dropped          parse 0, proto 0"));
  assert_int_equal(b.p[b.len - strlen("?exit 0\n")], '\0');

  mdht_ctl_buf_reset(&b);
  req.json = true;
  mdht_ctl_job_init(&job, node, &req, &b, 61000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 61000), 0);
  assert_non_null(strstr(text(&b), "{\"type\":\"stats\",\"id\":\"" HEX2
                                   "\",\"uptime_s\":60,\"nodes\":{\"total\":0,"
                                   "\"good\":0,\"questionable\":0,\"bad\":0,"));
  assert_non_null(strstr(text(&b), "\"dropped\":{\"parse\":0,"));
  /* One line, then the status. */
  assert_int_equal(strchr(text(&b), '\n') - text(&b) + 1 + 8, (long)b.len);
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

/* A job cannot save: only the server, through the program, can. */
static void test_job_save(void **state) {
  uint64_t seed = 11;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_SAVE};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), 0);
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, MDHT_CTL_EXIT_ERROR);
  assert_int_equal(b.p[0], '\0');
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

static void test_job_lookup_waits(void **state) {
  uint64_t seed = 9;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_GET_PEERS, .timeout_ms = 5000};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  req.target = id_of(HEX1);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(job.deadline, 6000);
  /* Nobody to ask: the caller waits for a node, or gives up. */
  assert_int_equal(mdht_ctl_job_start(&job, 1000), MDHT_ERR_AGAIN);
  assert_false(job.done);
  assert_int_equal(calls, 0);
  mdht_ctl_job_fail(&job, 2, "timed out after 5 s");
  assert_true(job.done);
  assert_int_equal(calls, 1);
  assert_int_equal(job.code, 2);
  assert_memory_equal(b.p, "\0exit 2 timed out after 5 s\n", b.len);
  /* Failing twice does nothing. */
  mdht_ctl_job_fail(&job, 2, "again");
  assert_int_equal(calls, 1);

  /* A ping needs no table; cancelling it means no callback. */
  mdht_ctl_buf_reset(&b);
  req.cmd = MDHT_CTL_PING;
  req.addr = test_addr4(127, 0, 0, 2, 6881);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), 0);
  assert_false(job.done);
  assert_true(job.op > 0);
  mdht_ctl_job_fail(&job, 2, "interrupted");
  assert_int_equal(calls, 2);
  /* The query's timeout later finds no operation. */
  mdht_node_tick(node, 100000);
  assert_int_equal(calls, 2);
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

/* The deadline's message and status: a ping that got no answer is exit 1
 * whether its query timed out first or --timeout did. */
static void test_job_expire(void **state) {
  uint64_t seed = 13;
  mdht_node *node = lone_node(&seed);
  mdht_ctl_req req = {.cmd = MDHT_CTL_PING, .timeout_ms = 3000};
  mdht_ctl_buf b = {0};
  mdht_ctl_job job;
  int calls = 0;
  (void)state;

  req.addr = test_addr4(127, 0, 0, 2, 6881);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), 0);
  mdht_ctl_job_expire(&job, false);
  assert_int_equal(job.code, MDHT_CTL_EXIT_NONE);
  assert_memory_equal(
      b.p, "\0exit 1 no answer from 127.0.0.2:6881 within 3 s\n", b.len);
  /* Its own query's timeout: the same status. */
  mdht_ctl_buf_reset(&b);
  mdht_ctl_job_init(&job, node, &req, &b, 200000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 200000), 0);
  mdht_node_tick(node, 300000);
  assert_true(job.done);
  assert_int_equal(job.code, MDHT_CTL_EXIT_NONE);

  /* A lookup waiting for a node, and one that ran out of time. */
  mdht_ctl_buf_reset(&b);
  req.cmd = MDHT_CTL_FIND_NODE;
  req.timeout_ms = 1500;
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  assert_int_equal(mdht_ctl_job_start(&job, 1000), MDHT_ERR_AGAIN);
  mdht_ctl_job_expire(&job, true);
  assert_int_equal(job.code, MDHT_CTL_EXIT_ERROR);
  assert_memory_equal(b.p, "\0exit 2 the node knows no other node yet\n",
                      b.len);
  mdht_ctl_buf_reset(&b);
  mdht_ctl_job_init(&job, node, &req, &b, 1000, notified, &calls);
  mdht_ctl_job_expire(&job, false);
  assert_memory_equal(b.p, "\0exit 2 timed out after 1500 ms\n", b.len);
  mdht_ctl_buf_free(&b);
  mdht_node_del(node);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_job_stats),
      cmocka_unit_test(test_job_expire),
      cmocka_unit_test(test_job_save),
      cmocka_unit_test(test_job_lookup_waits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
