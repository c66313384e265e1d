"""Initial values for the layers' variables, reproducible from an int seed."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf


def normal(
  shape: Sequence[int] | tf.Tensor,
  stddev: float | tf.Tensor,
  seed: int | None,
  dtype: tf.dtypes.DType,
) -> tf.Tensor:
  """`N(0, stddev^2)` values; stateless (reproducible) when `seed` is an int."""
  if seed is None:
    return tf.random.normal(shape, stddev=stddev, dtype=dtype)
  return tf.random.stateless_normal(
    shape, seed=[seed, 0], stddev=stddev, dtype=dtype
  )


def random_rotation(
  channels: int, seed: int | None, dtype: tf.dtypes.DType
) -> tf.Tensor:
  """A random `C x C` orthogonal matrix with determinant +1, as Glow starts.

  The Q factor of a Gaussian matrix, with its columns' signs fixed by R's
  diagonal (Haar distributed), and one column negated if the determinant is -1.
  """
  q, r = tf.linalg.qr(normal([channels, channels], 1.0, seed, tf.float64))
  q = q * tf.sign(tf.linalg.diag_part(r))[None, :]
  sign = tf.sign(tf.linalg.det(q))
  q = tf.concat([q[:, :1] * sign, q[:, 1:]], axis=1)
  return tf.cast(q, dtype)
