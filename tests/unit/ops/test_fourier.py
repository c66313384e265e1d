"""tfp_emerging.ops.fourier against numpy written from the definitions."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.ops import fourier

SIZES = [
  (1, 3, 3),
  (2, 4, 5),
  (3, 5, 6),
  (4, 4, 7),
  (4, 6, 4),
  (5, 5, 5),
  (3, 8, 3),
]


def numpy_kernel(k, c_in, c_out, seed=0):
  return np.random.default_rng(seed).normal(size=[k, k, c_in, c_out])


def numpy_spectrum(kernel, height, width):
  """`G(u, v) = sum K[a, b] exp(2 pi i (u (a-p) / H + v (b-p) / W))`, full."""
  k = kernel.shape[0]
  p = (k - 1) // 2
  u = np.arange(height)[:, None, None, None]
  v = np.arange(width)[None, :, None, None]
  spectrum = 0.0
  for a, b in itertools.product(range(k), repeat=2):
    phase = np.exp(2j * np.pi * (u * (a - p) / height + v * (b - p) / width))
    spectrum = spectrum + phase * kernel[a, b]
  return spectrum


@pytest.mark.parametrize("k,height,width", SIZES)
def test_kernel_spectrum_is_the_half_of_the_dft(k, height, width):
  kernel = numpy_kernel(k, 2, 3)
  expected = numpy_spectrum(kernel, height, width)[:, : width // 2 + 1]
  got = fourier.kernel_spectrum(tf.constant(kernel), height, width)
  assert got.dtype == tf.complex128
  np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)
  got32 = fourier.kernel_spectrum(
    tf.constant(kernel, tf.float32), height, width
  )
  assert got32.dtype == tf.complex64


@pytest.mark.parametrize("width", range(1, 10))
def test_frequency_weights_count_each_frequency_once(width):
  weights = fourier.frequency_weights(width, tf.float64).numpy()
  counts = np.zeros(width // 2 + 1)
  for v in range(width):
    # Frequency v is represented in the half spectrum by v or by W - v.
    counts[v if v <= width // 2 else width - v] += 1
  np.testing.assert_array_equal(weights, counts)
  assert weights.sum() == width


def test_independent_frequencies_stand_for_the_whole_spectrum():
  """Every parity of `H` and `W`: `(H W + s) / 2` matrices (`s` the
  self-conjugate frequencies, counted from the definition), weighted
  log-dets summing to the full spectrum's, inverses restored to the half
  spectrum's; with `H` and `W` as tensors, the whole half spectrum."""
  kernel = numpy_kernel(3, 3, 3, seed=9) * 0.3 + np.eye(3)
  for height, width in itertools.product(range(1, 6), range(1, 7)):
    full = numpy_spectrum(kernel, height, width)
    half = full[:, : width // 2 + 1]
    spectrum = tf.constant(half)
    own = sum(
      (-u % height, -v % width) == (u, v)
      for u, v in itertools.product(range(height), range(width))
    )
    for sizes, count in (
      ((height, width), (height * width + own) // 2),
      (
        (tf.constant(height), tf.constant(width)),
        half.shape[0] * half.shape[1],
      ),
    ):
      matrices, weights = fourier.independent_frequencies(spectrum, *sizes)
      assert matrices.shape[0] == count, (height, width)
      np.testing.assert_allclose(
        np.sum(weights.numpy() * np.linalg.slogdet(matrices.numpy())[1]),
        np.linalg.slogdet(full)[1].sum(),
        rtol=1e-12,
        atol=1e-12,
      )
      restored = fourier.half_spectrum_from_independent(
        tf.constant(np.linalg.inv(matrices.numpy())), *sizes
      )
      np.testing.assert_allclose(
        restored.numpy(), np.linalg.inv(half), atol=1e-12
      )


@pytest.mark.parametrize("k,height,width", SIZES)
def test_log_abs_det_sums_the_full_spectrum(k, height, width):
  kernel = numpy_kernel(k, 3, 3, seed=k) * 0.3 / k + np.eye(3)
  expected = np.linalg.slogdet(numpy_spectrum(kernel, height, width))[1].sum()
  got = fourier.log_abs_det(tf.constant(kernel), height, width)
  np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def numpy_circular_conv(x, kernel):
  p = (kernel.shape[0] - 1) // 2
  y = 0.0
  for a, b in itertools.product(range(kernel.shape[0]), repeat=2):
    y = y + np.roll(x, (p - a, p - b), axis=(1, 2)) @ kernel[a, b]
  return y


@pytest.mark.parametrize("k,height,width", SIZES)
def test_spatial_and_fft_convolutions_match_numpy(k, height, width):
  kernel = numpy_kernel(k, 2, 3)
  x = np.random.default_rng(4).normal(size=[2, height, width, 2])
  expected = numpy_circular_conv(x, kernel)
  for conv in (fourier.circular_conv2d, fourier.fft_conv2d):
    got = conv(tf.constant(x), tf.constant(kernel))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("k,height,width", SIZES)
def test_fft_solve_inverts_fft_conv(k, height, width):
  kernel = numpy_kernel(k, 3, 3, seed=k) * 0.3 / k + np.eye(3)
  y = np.random.default_rng(5).normal(size=[2, height, width, 3])
  x = fourier.fft_solve(tf.constant(y), tf.constant(kernel))
  np.testing.assert_allclose(
    numpy_circular_conv(x.numpy(), kernel), y, atol=1e-11
  )


def test_cost_rule_examples():
  assert fourier.spatial_is_cheaper(9, 3, 5, 6)
  assert not fourier.spatial_is_cheaper(10, 3, 5, 6)
  assert fourier.spatial_is_cheaper(6, 16, 32, 32)
  assert not fourier.spatial_is_cheaper(7, 16, 32, 32)
  assert fourier.spatial_is_cheaper(4, 48, 16, 16)
  assert not fourier.spatial_is_cheaper(5, 48, 16, 16)
