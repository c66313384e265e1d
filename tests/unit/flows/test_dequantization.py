"""Dequantisation and bits/dim against closed forms and exact discrete
models."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf

from tfp_emerging.flows import dequantization


@pytest.mark.parametrize("num_bins", [2, 17, 32, 256])
def test_uniform_density_costs_log2_bins(num_bins):
  """p = 1 on the cube: every pixel costs exactly log2(B) bits."""
  bits = dequantization.bits_per_dim(tf.zeros([3]), 64, num_bins)
  np.testing.assert_allclose(bits.numpy(), np.log2(num_bins), rtol=1e-6)
  assert abs(dequantization.bits_per_dim(0.0, 3072, 256).numpy() - 8.0) < 1e-5


def test_dequantize_stays_in_the_pixel_cell_and_quantize_undoes_it():
  k = np.arange(17, dtype=np.uint8).reshape(1, 17, 1, 1).repeat(50, axis=0)
  for centered, low in ((True, -0.5), (False, 0.0)):
    x = dequantization.dequantize(k, 17, seed=3, centered=centered).numpy()
    assert np.all(x >= k / 17.0 + low) and np.all(x < (k + 1) / 17.0 + low)
    # The noise fills the cell: not just its corner.
    assert np.ptp(x[:, 5]) > 0.5 / 17.0
    np.testing.assert_array_equal(
      dequantization.quantize(x, 17, centered=centered).numpy(), k
    )
  again = dequantization.dequantize(k, 17, seed=3).numpy()
  np.testing.assert_array_equal(
    again, dequantization.dequantize(k, 17, seed=3).numpy()
  )
  assert dequantization.quantize(
    tf.constant([-3.0, 3.0]), 17
  ).numpy().tolist() == [0, 16]


def test_bits_per_dim_bounds_the_exact_discrete_likelihood():
  """A Gaussian on [-0.5, 0.5): dequantised bits/dim vs exact cell masses.

  The discrete model P(k) = Phi(hi) - Phi(lo) over the pixel's cell is exact.
  The dequantised estimate E_u[-log p(x)] / log 2 + log2 B is an upper bound
  (Jensen), and tight when the density is smooth at the scale 1/B.
  """
  num_bins, loc, scale = 32, 0.05, 0.15
  rng = np.random.default_rng(0)
  k = rng.integers(6, 26, size=[4000, 1, 1, 1])
  x = dequantization.dequantize(k, num_bins, seed=5, dtype=tf.float64)
  log_p = stats.norm.logpdf(x.numpy(), loc, scale).reshape(-1)
  estimate = dequantization.bits_per_dim(log_p, 1, num_bins).numpy().mean()
  lo, hi = k / num_bins - 0.5, (k + 1) / num_bins - 0.5
  exact = -np.log2(
    stats.norm.cdf(hi, loc, scale) - stats.norm.cdf(lo, loc, scale)
  ).mean()
  assert estimate > exact - 0.01
  assert abs(estimate - exact) < 0.02
  # Wrongly leaving out the D log B term would be off by log2(32) = 5 bits.
  assert abs(-log_p.mean() / np.log(2.0) - exact) > 4.0


def test_bad_arguments():
  with pytest.raises(ValueError, match="num_bins"):
    dequantization.dequantize(np.zeros([2]), num_bins=1)
  with pytest.raises(ValueError, match="num_dims"):
    dequantization.bits_per_dim(0.0, 0)
