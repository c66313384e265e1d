"""`tfp_emerging.ops.batched_inverse` against numpy and TensorFlow's dense
`inv` and `slogdet`."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.ops import batched_inverse


def random_complex(shape, seed):
  rng = np.random.default_rng(seed)
  return rng.normal(size=shape) + 1j * rng.normal(size=shape)


@pytest.mark.parametrize(
  "channels,block", [(1, 4), (3, 4), (6, 4), (9, 4), (5, 2), (7, 16)]
)
def test_gauss_jordan_matches_numpy(channels, block):
  """Complex and real, block sizes that do and do not divide `C`, and rows
  that need pivoting (a zero first entry, a tiny second one)."""
  matrices = random_complex([5, channels, channels], channels)
  if channels > 1:
    matrices[0, 0, 0] = 0.0
    matrices[1, :2, :2] = [[1e-12, 1.0], [1.0, 1.0]]
  for m in (matrices, matrices.real):
    inverse, log_abs_det = batched_inverse.gauss_jordan(tf.constant(m), block)
    np.testing.assert_allclose(inverse.numpy(), np.linalg.inv(m), atol=1e-9)
    np.testing.assert_allclose(
      log_abs_det.numpy(), np.linalg.slogdet(m)[1], rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("jit", [False, True])
def test_inverse_and_log_abs_det_match_numpy_and_tf_gradients(jit):
  """Without XLA the LU route, with XLA Gauss-Jordan; gradients against
  `tf.linalg.inv` and `tf.linalg.slogdet` differentiated eagerly."""
  matrices = tf.constant(random_complex([6, 4, 4], 2))
  inverse_bar = tf.constant(random_complex([6, 4, 4], 3))
  log_det_bar = tf.constant(np.random.default_rng(4).normal(size=[6]))

  def loss(fn, m):
    inverse, log_abs_det = fn(m)
    return tf.reduce_sum(tf.math.real(inverse * inverse_bar)) + tf.reduce_sum(
      log_abs_det * log_det_bar
    )

  def with_gradient(fn, m):
    with tf.GradientTape() as tape:
      tape.watch(m)
      value = loss(fn, m)
    return value, tape.gradient(value, m)

  got = tf.function(
    lambda m: with_gradient(batched_inverse.inverse_and_log_abs_det, m),
    jit_compile=jit,
  )(matrices)
  want = with_gradient(
    lambda m: (tf.linalg.inv(m), tf.math.real(tf.linalg.slogdet(m)[1])),
    matrices,
  )
  inverse, log_abs_det = batched_inverse.inverse_and_log_abs_det(matrices)
  np.testing.assert_allclose(
    inverse.numpy(), np.linalg.inv(matrices.numpy()), atol=1e-12
  )
  np.testing.assert_allclose(
    batched_inverse.log_abs_dets(matrices).numpy(),
    log_abs_det.numpy(),
    rtol=1e-12,
  )
  np.testing.assert_allclose(
    log_abs_det.numpy(), np.linalg.slogdet(matrices.numpy())[1], rtol=1e-12
  )
  for g, w in zip(got, want):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-10, atol=1e-10)
  # The log-det alone: its gradient computes the inverse only then.
  got = tf.function(
    lambda m: with_gradient(
      lambda m: (tf.zeros_like(m), batched_inverse.log_abs_dets(m)), m
    ),
    jit_compile=jit,
  )(matrices)
  want = with_gradient(
    lambda m: (tf.zeros_like(m), tf.math.real(tf.linalg.slogdet(m)[1])),
    matrices,
  )
  for g, w in zip(got, want):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-10, atol=1e-10)
