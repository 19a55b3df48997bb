/* The churn model's draws: the same seed gives the same draws; the sample
 * median and mean of Weibull session lengths and the mean of their
 * stationary residuals match the analytic values, at the shapes the
 * simulator uses (k = 0.38, heavy-tailed) and at k = 1 (exponential). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "dist.h"

static double uni(void *user) {
  uint64_t *s = user;
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void test_deterministic(void **state) {
  (void)state;
  uint64_t a = 99, b = 99, c = 100;
  double x[3], y[3], z[3];
  for (int i = 0; i < 3; i++) {
    x[i] = mdht_weibull_residual(uni, &a, 0.38, 42.4);
    y[i] = mdht_weibull_residual(uni, &b, 0.38, 42.4);
    z[i] = mdht_weibull_residual(uni, &c, 0.38, 42.4);
  }
  for (int i = 0; i < 3; i++)
    assert_true(x[i] == y[i]);
  assert_true(x[0] != z[0] || x[1] != z[1]);
}

/* With n = 400,000 draws the standard error of the mean is about
 * 3.3 / sqrt(n) = 0.5 % at k = 0.38 (coefficient of variation 3.3), and
 * of the median well under 1 %: the tolerances are several of those. */
static void check_weibull(double k, double lambda) {
  enum { N = 400000 };
  double *v = malloc(N * sizeof *v);
  assert_non_null(v);
  uint64_t s = 12345;
  double sum = 0;
  for (int i = 0; i < N; i++) {
    v[i] = mdht_weibull(uni, &s, k, lambda);
    assert_true(v[i] >= 0 && isfinite(v[i]));
    sum += v[i];
  }
  qsort(v, N, sizeof *v, cmp);
  double mean = sum / N, median = v[N / 2];
  double want_mean = mdht_weibull_mean(k, lambda),
         want_median = mdht_weibull_median(k, lambda);
  assert_true(fabs(mean / want_mean - 1) < 0.04);
  assert_true(fabs(median / want_median - 1) < 0.02);
  free(v);
}

static void test_weibull_moments(void **state) {
  (void)state;
  check_weibull(0.38, 42.4);
  check_weibull(1.0, 10.0);
  /* The analytic values themselves: k = 1 is the exponential. */
  assert_true(fabs(mdht_weibull_mean(1, 10) - 10) < 1e-9);
  assert_true(fabs(mdht_weibull_median(1, 10) - 10 * log(2.0)) < 1e-9);
  /* k = 0.38, lambda = 42.4: median 16.16, mean 163.4 (computed independently).
   */
  assert_true(fabs(mdht_weibull_median(0.38, 42.4) - 16.16) < 0.05);
  assert_true(fabs(mdht_weibull_mean(0.38, 42.4) - 163.4) < 0.5);
}

/* Residual life: at k = 1 (memoryless) it is the exponential again, mean
 * lambda; at k = 0.38 much longer than a fresh session's mean. The
 * residual's own variance is large at k = 0.38, hence 8 %. */
static void check_residual(double k, double lambda, double tol) {
  enum { N = 400000 };
  uint64_t s = 777;
  double sum = 0;
  for (int i = 0; i < N; i++)
    sum += mdht_weibull_residual(uni, &s, k, lambda);
  double want = mdht_weibull_residual_mean(k, lambda);
  assert_true(fabs(sum / N / want - 1) < tol);
}

static void test_residual(void **state) {
  (void)state;
  assert_true(fabs(mdht_weibull_residual_mean(1, 10) - 10) < 1e-9);
  check_residual(1.0, 10.0, 0.02);
  check_residual(0.38, 42.4, 0.08);
  assert_true(mdht_weibull_residual_mean(0.38, 42.4) >
              3 * mdht_weibull_mean(0.38, 42.4));
}

static void test_gamma(void **state) {
  (void)state;
  /* Gamma(a, 1) has mean a: for a below and above 1. */
  double shapes[] = {0.5, 3.63};
  for (int j = 0; j < 2; j++) {
    uint64_t s = 5;
    double sum = 0;
    for (int i = 0; i < 200000; i++)
      sum += mdht_gamma(uni, &s, shapes[j]);
    assert_true(fabs(sum / 200000 / shapes[j] - 1) < 0.02);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_weibull_moments),
      cmocka_unit_test(test_residual),
      cmocka_unit_test(test_gamma),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
