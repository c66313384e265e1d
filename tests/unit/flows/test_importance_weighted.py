"""Importance-weighted bits/dim on a density whose discrete probabilities,
and so whose Jensen gap, are known in closed form.

The density is a factorised Gaussian `N(mu, sigma^2)` per dimension, narrow
against a bin (`sigma = 0.4 / B`), so the single-draw bound is loose. Its
exact discrete probability is `P(k) = prod_d [Phi(hi_d) - Phi(lo_d)]` (the
mass of the bin in the flow's domain), and the expected single-draw bound
is `E[-log p(x)] = 1/2 log(2 pi sigma^2) + (w^2 / 12 + (c - mu)^2) /
(2 sigma^2)` per dimension (`x` uniform on the bin of width `w = 1/B` and
centre `c`): both from scipy and the definition, not from the code.
"""

import numpy as np
from scipy import special
from scipy import stats
import tensorflow as tf

from tfp_emerging.flows import dequantization

NUM_BINS = 17
LEVELS = np.array([3, 8, 8, 15])  # one image, D = 4
SIGMA = 0.4 / NUM_BINS
# Off-centre means: each bin's mass is below one, the density uneven on it.
MU = (LEVELS + np.array([0.2, 0.5, 0.9, 0.35])) / NUM_BINS - 0.5
D = LEVELS.size


def _exact_bits():
  lo = LEVELS / NUM_BINS - 0.5
  hi = (LEVELS + 1) / NUM_BINS - 0.5
  mass = stats.norm.cdf(hi, MU, SIGMA) - stats.norm.cdf(lo, MU, SIGMA)
  return -np.sum(np.log(mass)) / (D * np.log(2.0))


def _jensen_bits():
  width = 1.0 / NUM_BINS
  centre = (LEVELS + 0.5) / NUM_BINS - 0.5
  nats = 0.5 * np.log(2 * np.pi * SIGMA**2) + (
    width**2 / 12 + (centre - MU) ** 2
  ) / (2 * SIGMA**2)
  return (np.sum(nats) + D * np.log(NUM_BINS)) / (D * np.log(2.0))


def _log_probs(num_images, num_samples, seed):
  """`[num_images, num_samples]` log-densities of independent draws."""
  images = np.broadcast_to(LEVELS, (num_images * num_samples, D))
  x = dequantization.dequantize(
    images, NUM_BINS, seed=seed, dtype=tf.float64
  ).numpy()
  log_prob = stats.norm.logpdf(x, MU, SIGMA).sum(-1)
  return log_prob.reshape(num_images, num_samples)


def test_the_case_has_a_large_known_gap():
  assert _jensen_bits() - _exact_bits() > 0.05


def test_one_draw_is_the_single_draw_figure_and_matches_jensen():
  log_probs = _log_probs(40000, 1, seed=1)
  weighted = dequantization.importance_weighted_bits_per_dim(
    log_probs, D, NUM_BINS
  ).numpy()
  single = dequantization.bits_per_dim(log_probs[:, 0], D, NUM_BINS).numpy()
  np.testing.assert_allclose(weighted, single, rtol=0, atol=1e-12)
  error = 5 * single.std() / np.sqrt(single.size)
  assert abs(single.mean() - _jensen_bits()) < error


def test_more_draws_tighten_the_bound_towards_the_exact_figure():
  exact, jensen = _exact_bits(), _jensen_bits()
  means, errors = [], []
  for num_samples in (1, 4, 64, 1024):
    log_probs = _log_probs(256, num_samples, seed=2)
    weighted = dequantization.importance_weighted_bits_per_dim(
      log_probs, D, NUM_BINS
    ).numpy()
    single = dequantization.bits_per_dim(log_probs, D, NUM_BINS).numpy()
    # For the same draws, never above the mean of their single-draw figures.
    assert np.all(weighted <= single.mean(-1) + 1e-12)
    means.append(weighted.mean())
    errors.append(weighted.std() / np.sqrt(weighted.size))
  assert abs(means[0] - jensen) < 5 * errors[0]
  assert means[0] > means[1] > means[2] > means[3] > exact - 5 * errors[3]
  # With 1024 draws the bias (the relative variance of the importance
  # weights over 2K, in bits per dimension) is far below the Jensen gap,
  # and the estimate is within its Monte Carlo error of the exact figure.
  weights = np.exp(_log_probs(1, 100000, seed=3)[0])
  bias = weights.var() / weights.mean() ** 2 / (2 * 1024) / (D * np.log(2.0))
  assert bias < 0.01 * (jensen - exact)
  assert abs(means[3] - bias - exact) < 5 * errors[3] < 0.1 * (jensen - exact)


def test_the_draw_axis_and_logsumexp_against_scipy():
  log_probs = np.random.default_rng(0).normal(-30.0, 5.0, (3, 7, 2))
  got = dequantization.importance_weighted_bits_per_dim(
    log_probs, 12, 256, axis=1
  ).numpy()
  expected = -(
    special.logsumexp(log_probs, axis=1) - np.log(7) - 12 * np.log(256)
  ) / (12 * np.log(2.0))
  np.testing.assert_allclose(got, expected, rtol=1e-12)
