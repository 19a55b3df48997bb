/*
 * Random draws for the simulator's churn model, from a caller's uniform
 * source (so that they follow the run's seed).
 *
 * Weibull(k, lambda): P(X > x) = exp(-(x / lambda)^k). With k < 1 it is
 * heavy-tailed: most sessions are short, a few last for days, and the
 * longer a node has been up the longer it is likely to stay up. Session
 * lengths measured on file-sharing networks fit it with k of 0.34-0.59
 * (Stutzbach and Rejaie, "Understanding Churn in Peer-to-Peer Networks",
 * IMC 2006; see docs/PERFORMANCE.md, "Churn").
 *
 * A network observed at an arbitrary moment does not consist of sessions
 * that all just began: the time a node that is up *now* has left is the
 * residual life of a stationary renewal process, whose length is biased
 * towards long sessions. mdht_weibull_residual draws it: a session drawn
 * with probability proportional to its length (for a Weibull, lambda *
 * G^(1/k) with G ~ Gamma(1 + 1/k, 1)), times a uniform fraction.
 */
#ifndef MDHT_DIST_H
#define MDHT_DIST_H

/* A uniform draw in [0, 1). */
typedef double (*mdht_uniform_fn)(void *user);

double mdht_weibull(mdht_uniform_fn u, void *user, double k, double lambda);
/* Gamma(shape, 1), shape > 0 (Marsaglia and Tsang's method). */
double mdht_gamma(mdht_uniform_fn u, void *user, double shape);
double mdht_weibull_residual(mdht_uniform_fn u, void *user, double k,
                             double lambda);
/* The analytic figures the tests compare with. */
double mdht_weibull_mean(double k, double lambda);
double mdht_weibull_median(double k, double lambda);
/* E[residual] = E[X^2] / (2 E[X]). */
double mdht_weibull_residual_mean(double k, double lambda);

#endif
