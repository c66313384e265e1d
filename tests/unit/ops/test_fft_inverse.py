"""`tfp_emerging.ops.fft_inverse`: the inverse filter against Newton's
power-series inverse, and the FFT solver against the exact solve."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.masked_references import masked_kernel
from tests.testlib.masked_references import numpy_solve
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import fft_inverse

RNG = np.random.default_rng(5)

# Kernel size m, dilation, mask, image size: both masks, dilated and not,
# the 1 x 1 kernel, and images of at most `DENSE_INVERSE_PIXELS` pixels (the
# dense inverse) and larger (the FFT filter).
FILTER_CASES = pytest.mark.parametrize(
  "m,dilation,top_left,h,w",
  [
    (2, 1, True, 5, 7),
    (2, 2, False, 6, 5),
    (3, 1, False, 7, 4),
    (3, 2, True, 5, 5),
    (1, 1, True, 3, 2),
    (2, 1, False, 4, 4),
  ],
)


def newton_inverse_filter(kernel, dilation, top_left, h, w):
  """numpy: `g = K^-1` in the ring of `[h, w]`-truncated matrix power series,
  by Newton's iteration `G <- G (2 - K G)`, doubling the exact box each step.

  The canonical (top-left) series of the kernel has coefficient
  `K[p - a, p - b]` at offset `(a d, b d)`; the bottom-right one `K[a, b]`
  (offsets counted down and to the left).
  """
  m, c = kernel.shape[0], kernel.shape[-1]
  p = m - 1
  series = np.zeros([h, w, c, c])
  for a, b in itertools.product(range(m), repeat=2):
    if a * dilation < h and b * dilation < w:
      tap = kernel[p - a, p - b] if top_left else kernel[a, b]
      series[a * dilation, b * dilation] = tap

  def times(f, g):
    out = np.zeros_like(f)
    for u, v in itertools.product(range(h), range(w)):
      out[u:, v:] += np.einsum("ij,xyjk->xyik", f[u, v], g[: h - u, : w - v])
    return out

  delta = np.zeros_like(series)
  delta[0, 0] = np.eye(c)
  g = delta * 0
  g[0, 0] = np.linalg.inv(series[0, 0])
  for _ in range(int(np.ceil(np.log2(h + w))) + 1):
    g = times(g, 2 * delta - times(series, g))
  return g


@FILTER_CASES
def test_inverse_filter_is_newtons_power_series_inverse(
  m, dilation, top_left, h, w
):
  kernel = masked_kernel(RNG, m, 3, top_left)
  g, kappa = fft_inverse.inverse_filter(
    tf.constant(kernel), dilation, top_left, h, w
  )
  reference = newton_inverse_filter(kernel, dilation, top_left, h, w)
  np.testing.assert_allclose(g.numpy(), reference, atol=1e-13)
  np.testing.assert_allclose(
    kappa.numpy(), np.abs(reference).sum(axis=(0, 1, 2)).max()
  )


@FILTER_CASES
def test_fft_solver_matches_the_solve(m, dilation, top_left, h, w):
  kernel = masked_kernel(RNG, m, 3, top_left)
  y = RNG.normal(size=[2, h, w, 3])
  exact = numpy_solve(y, kernel, dilation, top_left)
  x = autoregressive.quadrant_solve(
    tf.constant(y), tf.constant(kernel), dilation, top_left, "fft"
  )
  np.testing.assert_allclose(x.numpy(), exact, atol=1e-12)
  x32 = autoregressive.quadrant_solve(
    tf.constant(y, tf.float32),
    tf.constant(kernel, tf.float32),
    dilation,
    top_left,
    "fft",
  )
  np.testing.assert_allclose(x32.numpy(), exact, atol=1e-5)


@pytest.mark.parametrize("shape", [[2, 6, 7, 3], [2, 3, 4, 3]])
def test_fft_solver_compiles_with_xla_and_its_gradients_match(shape):
  kernel = tf.constant(masked_kernel(RNG, 2, 3, False))
  y = tf.constant(RNG.normal(size=shape))
  weights = tf.constant(RNG.normal(size=shape))

  def loss_and_gradients(solver):
    def fn(y, kernel):
      with tf.GradientTape() as tape:
        tape.watch([y, kernel])
        x = autoregressive.quadrant_solve(y, kernel, 1, False, solver)
        loss = tf.reduce_sum(weights * x)
      return (x, *tape.gradient(loss, [y, kernel]))

    return fn

  fft = tf.function(loss_and_gradients("fft"), jit_compile=True)(y, kernel)
  wave = loss_and_gradients("wavefront")(y, kernel)
  for got, want in zip(fft, wave):
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-11)
