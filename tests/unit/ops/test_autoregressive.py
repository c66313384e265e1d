"""`tfp_emerging.ops.autoregressive` (the solve, its solver choice and its
implicit gradient) against numpy references."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.masked_references import masked_kernel
from tests.testlib.masked_references import numpy_solve
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import masked_conv

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("solver", autoregressive.SOLVERS)
@pytest.mark.parametrize("top_left", [True, False])
@pytest.mark.parametrize(
  "kernel_size,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), (5, 3), (7, 2)]
)
def test_solvers_match_numpy_forward_substitution(
  solver, top_left, kernel_size, dilation
):
  m = (kernel_size + 1) // 2
  kernel = masked_kernel(RNG, m, 3, top_left)
  for h, w in [(6, 5), (1, 7), (4, 1)]:
    y = RNG.normal(size=[2, h, w, 3])
    expected = numpy_solve(y, kernel, dilation, top_left)
    x = autoregressive.quadrant_solve(
      tf.constant(y), tf.constant(kernel), dilation, top_left, solver
    )
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-10)
    back = masked_conv.quadrant_conv(x, tf.constant(kernel), dilation, top_left)
    np.testing.assert_allclose(back.numpy(), y, atol=1e-10)


def dense_matrix(kernel, height, width, dilation, top_left):
  """`M` `[D, D]` with `flatten(quadrant_conv(x)) = flatten(x) @ M`, per
  image."""
  size = height * width * kernel.shape[-1]
  basis = tf.reshape(
    tf.eye(size, dtype=kernel.dtype), [size, height, width, kernel.shape[-1]]
  )
  return tf.reshape(
    masked_conv.quadrant_conv(basis, kernel, dilation, top_left),
    [size, size],
  )


@pytest.mark.parametrize("solver", autoregressive.SOLVERS)
@pytest.mark.parametrize(
  "top_left,kernel_size,dilation", [(True, 3, 1), (False, 3, 2), (False, 5, 1)]
)
def test_implicit_gradients_match_a_dense_solve(
  solver, top_left, kernel_size, dilation
):
  """Gradients (first and second order) against autodiff of `tf.linalg.solve`.

  The reference differentiates `x = y M(K)^{-1}` with `M(K)` the dense matrix
  of the masked convolution; the solve's gradient is implicit (one adjoint
  solve and one convolution), never taken through its loop.
  """
  m = (kernel_size + 1) // 2
  kernel = tf.constant(masked_kernel(RNG, m, 2, top_left))
  y = tf.constant(RNG.normal(size=[2, 4, 5, 2]))
  cotangent = tf.constant(RNG.normal(size=[2, 4, 5, 2]))

  def first_and_second(solve):
    with tf.GradientTape() as outer:
      outer.watch(kernel)
      with tf.GradientTape() as tape:
        tape.watch([y, kernel])
        loss = tf.reduce_sum(solve(y, kernel) * cotangent)
      g_y, g_kernel = tape.gradient(loss, [y, kernel])
      second = tf.reduce_sum(g_y**2)
    return g_y, g_kernel, outer.gradient(second, kernel)

  def dense_solve(y, kernel):
    matrix = dense_matrix(kernel, 4, 5, dilation, top_left)
    flat = tf.transpose(tf.reshape(y, [2, -1]))
    return tf.reshape(
      tf.transpose(tf.linalg.solve(matrix, flat, adjoint=True)), y.shape
    )

  got = first_and_second(
    lambda y, k: autoregressive.quadrant_solve(y, k, dilation, top_left, solver)
  )
  want = first_and_second(dense_solve)
  # The solve reads one triangle of the centre tap: zero derivative for the
  # other, which the dense matrix (built from the convolution) does read.
  read = autoregressive._read_triangle(m, 2, top_left, tf.float64)
  np.testing.assert_allclose(got[0].numpy(), want[0].numpy(), atol=1e-10)
  for g, w in zip(got[1:], want[1:]):
    np.testing.assert_allclose(g.numpy(), w.numpy() * read, atol=1e-9)
    assert np.all(g.numpy()[read == 0] == 0.0)


def test_unknown_solver_is_rejected():
  with pytest.raises(ValueError, match="solver"):
    autoregressive.quadrant_solve(
      tf.zeros([1, 2, 2, 1]), tf.ones([2, 2, 1, 1]), 1, solver="guess"
    )


def test_raster_is_cheaper_examples():
  rule = autoregressive.raster_is_cheaper
  assert rule(64, 8, 8, 48, 3, 1, xla=True)  # few raster steps
  assert rule(16, 5, 7, 3, 5, 1, xla=True)
  assert not rule(64, 8, 8, 48, 3, 1, xla=False)  # never without XLA
  assert not rule(64, 16, 16, 48, 3, 1, xla=True)
  assert not rule(4, 64, 64, 12, 3, 1, xla=True)
  assert not rule(4, None, 8, 12, 3, 1, xla=True)  # size unknown
  # Dilation: d times shorter and narrower undilated images.
  assert rule(4, 16, 16, 12, 3, 2, xla=True)


def test_auto_resolves_at_trace_time_by_the_rule(monkeypatch):
  """Traced only (no run): under `jit_compile=True` the XLA rule applies."""
  picked = []
  choose = autoregressive.choose_solver

  def spy(*args):
    picked.append(choose(*args))
    return picked[-1]

  monkeypatch.setattr(autoregressive, "choose_solver", spy)
  kernel = tf.constant(masked_kernel(RNG, 2, 8, True), tf.float32)
  for shape, jit, expected in [
    ((16, 8, 8, 8), True, "raster"),
    ((16, 8, 8, 8), False, "wavefront"),
    ((16, 16, 8, 8), True, "wavefront"),
  ]:
    picked.clear()
    solve = tf.function(
      lambda y: autoregressive.quadrant_solve(y, kernel, 1, True, "auto"),
      jit_compile=jit,
    )
    solve.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    assert picked == [expected], (shape, jit)
