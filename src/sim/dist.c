#include "dist.h"

#include <math.h>

/* A uniform draw in (0, 1): never 0, so that logs stay finite. */
static double open_u(mdht_uniform_fn u, void *user) {
  double x;
  do
    x = u(user);
  while (x <= 0);
  return x;
}

/* Inverse of the CDF at 1 - U (U and 1 - U are alike). */
double mdht_weibull(mdht_uniform_fn u, void *user, double k, double lambda) {
  return lambda * pow(-log(open_u(u, user)), 1.0 / k);
}

static double normal(mdht_uniform_fn u, void *user) {
  double a = open_u(u, user), b = u(user);
  return sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b);
}

double mdht_gamma(mdht_uniform_fn u, void *user, double shape) {
  if (shape < 1) {
    /* Gamma(a) = Gamma(a + 1) * U^(1/a). */
    double g = mdht_gamma(u, user, shape + 1);
    return g * pow(open_u(u, user), 1.0 / shape);
  }
  double d = shape - 1.0 / 3, c = 1.0 / sqrt(9 * d);
  for (;;) {
    double x = normal(u, user), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double w = open_u(u, user);
    if (log(w) < 0.5 * x * x + d - d * v + d * log(v)) return d * v;
  }
}

double mdht_weibull_residual(mdht_uniform_fn u, void *user, double k,
                             double lambda) {
  double g = mdht_gamma(u, user, 1 + 1.0 / k);
  double biased = lambda * pow(g, 1.0 / k);
  return biased * u(user);
}

double mdht_weibull_mean(double k, double lambda) {
  return lambda * tgamma(1 + 1.0 / k);
}

double mdht_weibull_median(double k, double lambda) {
  return lambda * pow(log(2.0), 1.0 / k);
}

double mdht_weibull_residual_mean(double k, double lambda) {
  return lambda * tgamma(1 + 2.0 / k) / (2 * tgamma(1 + 1.0 / k));
}
