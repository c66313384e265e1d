"""Importance-weighted bits/dim on a density whose discrete probabilities,
and so whose Jensen gap, are known in closed form
(`tests.testlib.known_gap`: a narrow factorised Gaussian, whose exact
figure and expected single-draw bound come from scipy and the definition,
not from the code).
"""

import numpy as np
from scipy import special
from scipy import stats
import tensorflow as tf

from tests.testlib.known_gap import LEVELS
from tests.testlib.known_gap import MU
from tests.testlib.known_gap import NUM_BINS
from tests.testlib.known_gap import SIGMA
from tests.testlib.known_gap import D
from tests.testlib.known_gap import exact_bits as _exact_bits
from tests.testlib.known_gap import jensen_bits as _jensen_bits
from tfp_emerging.flows import dequantization


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
