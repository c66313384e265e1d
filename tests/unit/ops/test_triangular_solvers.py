"""`tfp_emerging.ops.triangular_solvers`: the wavefront's layout and the two
solvers against each other."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.masked_references import masked_kernel
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import triangular_solvers

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_pixel_major_holds_residue_classes_and_round_trips(dilation):
  x = RNG.normal(size=[2, 7, 5, 3])
  pm = triangular_solvers.pixel_major(tf.constant(x), dilation).numpy()
  hd, wd = -(-7 // dilation), -(-5 // dilation)
  assert pm.shape == (hd, wd, 2 * dilation**2, 3)
  for n, r, q in itertools.product(range(2), range(dilation), range(dilation)):
    sub = x[n, r::dilation, q::dilation]
    got = pm[:, :, n * dilation**2 + r * dilation + q]
    np.testing.assert_array_equal(got[: sub.shape[0], : sub.shape[1]], sub)
    np.testing.assert_array_equal(got[sub.shape[0] :], 0)
    np.testing.assert_array_equal(got[:, sub.shape[1] :], 0)
  back = triangular_solvers.image_major(tf.constant(pm), dilation, 7, 5)
  np.testing.assert_array_equal(back.numpy(), x)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
  "height,width,dilation",
  [
    (1, 1, 1),
    (1, 6, 1),
    (5, 1, 1),
    (4, 7, 1),
    (6, 3, 1),
    (7, 5, 2),
    (4, 4, 2),
    (5, 8, 3),
  ],
)
def test_wavefront_layout_puts_anti_diagonals_in_rows_and_back(
  height, width, dilation, flip
):
  """Slot `(t, i, g)` holds pixel `(i, t - i)` of residue class `g`."""
  batch, d = 2, dilation
  pixels = np.arange(batch * height * width) + 1.0
  skew, inside, unskew = triangular_solvers.wavefront_layout(
    batch, height, width, d, flip
  )
  table = np.append(pixels, 0.0)  # the zero row read outside the image
  skewed = table[skew.numpy()]
  rows, columns = -(-height // d), -(-width // d)
  groups = batch * d * d
  assert skewed.shape == (rows + columns - 1, rows * groups)
  images = pixels.reshape(batch, height, width)
  for t, i, g in itertools.product(
    range(rows + columns - 1), range(rows), range(groups)
  ):
    n, r, q = g // (d * d), g // d % d, g % d
    j = t - i
    grid = (rows - 1 - i, columns - 1 - j) if flip else (i, j)
    row, col = grid[0] * d + r, grid[1] * d + q
    real = 0 <= j < columns and row < height and col < width
    assert skewed[t, i * groups + g] == (images[n, row, col] if real else 0.0)
    assert inside.numpy()[t, i * groups + g] == (0 <= j < columns)
  np.testing.assert_array_equal(skewed.reshape(-1)[unskew.numpy()], pixels)


@pytest.mark.parametrize("top_left", [True, False])
def test_wavefront_agrees_with_raster_in_float32_under_xla(top_left):
  kernel = tf.constant(masked_kernel(RNG, 2, 12, top_left), tf.float32)
  y = tf.constant(RNG.normal(size=[3, 13, 17, 12]), tf.float32)

  def solve(solver):
    return tf.function(
      lambda y: autoregressive.quadrant_solve(y, kernel, 2, top_left, solver),
      jit_compile=True,
    )(y)

  np.testing.assert_allclose(
    solve("wavefront").numpy(), solve("raster").numpy(), rtol=1e-5, atol=1e-5
  )


def test_padding_slots_stay_zero_where_the_continuation_overflows():
  """A tall one-column image: the skewed rows carry up to H - 1 padding slots.

  Continued past the right edge with `x[i, j] = -10 x[i, j - 1]`, the
  solution would pass float32's range within 39 columns; the real column does
  not grow. The solve and its gradient must stay finite.
  """
  kernel = np.zeros([2, 2, 1, 1], np.float32)
  kernel[1, 1] = 1.0
  kernel[1, 0] = 10.0  # tap (a, b) = (0, 1): the pixel to the left.
  kernel = tf.constant(kernel)
  y = tf.constant(RNG.normal(size=[1, 40, 1, 1]), tf.float32)
  with tf.GradientTape() as tape:
    tape.watch(kernel)
    x = autoregressive.quadrant_solve(y, kernel, 1, True, "wavefront")
    loss = tf.reduce_sum(x)
  np.testing.assert_allclose(x.numpy(), y.numpy())
  assert np.all(np.isfinite(tape.gradient(loss, kernel).numpy()))
