"""Uniform dequantisation of n-bit images and bits per dimension.

Pixels are integers `k` in `0..B-1` (`B = num_bins`, 256 for 8-bit data, 17
for sklearn's digits). Uniform dequantisation adds `u ~ U[0, 1)^D` and maps
to the flow's domain `[-0.5, 0.5)^D` (Glow's convention):

    x = (k + u) / B - 1/2.

Let `p` be the flow's density on `x`. The density of `y = k + u` on
`[0, B)^D` is `p(y / B - 1/2) / B^D` (the scaling's Jacobian; the shift has
none), and by Jensen's inequality the discrete model `P(k) = int p_y(k + u)
du` satisfies

    -log2 P(k) <= E_u[-log p(x)] / log 2 + D log2 B.

Bits per dimension are this bound divided by `D`:

    bpd = -(log p(x) - D log B) / (D log 2).

A model with `p = 1` on the cube (uniform) has `bpd = log2 B`, 8 for 8-bit
data.

Importance weighting (Burda et al., 2016) tightens the bound. Uniform noise
is a proposal of density 1 on the cube, so `P(k) = E_u[p_y(k + u)]` and, for
`K` independent draws `u_1 .. u_K`,

    log P(k) >= E[log (1/K) sum_j p_y(k + u_j)],

a bound that increases with `K`, equals Jensen's at `K = 1` and tends to
`log P(k)` as `K -> infinity`. For the same draws it is never looser than
the mean of their single-draw bounds (`log` of a mean >= mean of `log`s):

    bpd_K = -(logsumexp_j log p(x_j) - log K - D log B) / (D log 2).
 With `centered=False` the domain is `[0, 1)^D` instead; the shift by
1/2 has unit Jacobian, so the bits per dimension are the same formula.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tfp_emerging.ops import checks

__all__ = [
  "bits_per_dim",
  "dequantize",
  "importance_weighted_bits_per_dim",
  "quantize",
  "uniform_noise",
]


def dequantize(
  images: tf.Tensor | np.ndarray,
  num_bins: int = 256,
  seed: int | tf.Tensor | None = None,
  centered: bool = True,
  dtype: tf.dtypes.DType | str = tf.float32,
) -> tf.Tensor:
  """`x = (k + u) / B - 1/2` with `u ~ U[0, 1)`, elementwise.

  Args:
    images: integer (or integer-valued) pixels `k` in `0..num_bins-1`, any
      shape.
    num_bins: `B >= 2`.
    seed: optional stateless seed (int or shape-[2] int tensor); `None`
      draws fresh noise from the global generator.
    centered: `True` for `[-0.5, 0.5)`, `False` for `[0, 1)`.
    dtype: floating dtype of the result.

  Returns:
    Continuous values, same shape as `images`. Cost `O(size)`.
  """
  num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
  dtype = checks.float_dtype(dtype)
  k = tf.cast(images, dtype)
  x = (k + uniform_noise(tf.shape(k), seed, dtype)) / num_bins
  return x - 0.5 if centered else x


def uniform_noise(
  shape: tf.Tensor | Sequence[int],
  seed: int | tf.Tensor | None = None,
  dtype: tf.dtypes.DType | str = tf.float32,
) -> tf.Tensor:
  """`u ~ U[0, 1)` of `shape`: statelessly from `seed` (an int or a shape-[2]
  int tensor), else from the global generator; `dequantize`'s noise."""
  dtype = checks.float_dtype(dtype)
  if seed is None:
    return tf.random.uniform(shape, dtype=dtype)
  if isinstance(seed, (int, np.integer)):
    seed = [seed, 0]
  return tf.random.stateless_uniform(shape, seed=seed, dtype=dtype)


def quantize(
  x: tf.Tensor | np.ndarray, num_bins: int = 256, centered: bool = True
) -> tf.Tensor:
  """Inverse of `dequantize` up to the noise: `clip(floor((x + 1/2) B))`, int32.

  Values outside the domain (e.g. samples at a high temperature) are clipped
  to `0..num_bins-1`. Cost `O(size)`.
  """
  num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
  x = tf.convert_to_tensor(x)
  if centered:
    x = x + 0.5
  k = tf.floor(x * num_bins)
  return tf.cast(tf.clip_by_value(k, 0.0, num_bins - 1.0), tf.int32)


def bits_per_dim(
  log_prob: tf.Tensor | np.ndarray, num_dims: int, num_bins: int = 256
) -> tf.Tensor:
  """`-(log p(x) - D log B) / (D log 2)` for the continuous `log p(x)`.

  Args:
    log_prob: the flow's log-density of the dequantised `x` (any shape).
    num_dims: `D`, the number of dimensions per image (`H W C`).
    num_bins: `B`.

  Returns:
    Bits per dimension, shaped like `log_prob`.
  """
  num_dims = checks.positive_int(num_dims, "num_dims")
  num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
  log_prob = tf.convert_to_tensor(log_prob)
  nats = log_prob - num_dims * np.log(num_bins)
  return -nats / (num_dims * np.log(2.0))


def importance_weighted_bits_per_dim(
  log_probs: tf.Tensor | np.ndarray,
  num_dims: int,
  num_bins: int = 256,
  axis: int = -1,
) -> tf.Tensor:
  """Bits/dim of the `K`-draw bound: `-(logsumexp_j log p(x_j) - log K -
  D log B) / (D log 2)`.

  Args:
    log_probs: the flow's log-densities of `K` dequantisations of the same
      images, the draws along `axis` (e.g. `[B, K]`).
    num_dims: `D`, the number of dimensions per image (`H W C`).
    num_bins: `B`.
    axis: the axis of the `K` draws.

  Returns:
    Bits per dimension, `log_probs`' shape without `axis`: never above the
    mean of the draws' single-draw `bits_per_dim`, equal to it for `K = 1`.
    Cost `O(size)`.
  """
  log_probs = tf.convert_to_tensor(log_probs)
  num_samples = tf.cast(tf.shape(log_probs)[axis], log_probs.dtype)
  log_mean = tf.reduce_logsumexp(log_probs, axis=axis) - tf.math.log(
    num_samples
  )
  return bits_per_dim(log_mean, num_dims, num_bins)
