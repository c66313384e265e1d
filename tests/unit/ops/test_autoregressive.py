"""The solvers of `tfp_emerging.ops.autoregressive` against numpy references."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.ops import autoregressive

RNG = np.random.default_rng(5)


def masked_kernel(m, channels, top_left, scale=0.25):
  """A random quadrant kernel with a well-conditioned triangular centre."""
  kernel = RNG.normal(0.0, scale / m, [m, m, channels, channels])
  centre = m - 1 if top_left else 0
  triangle = np.triu if top_left else np.tril
  kernel[centre, centre] = triangle(
    kernel[centre, centre], 1 if top_left else -1
  ) + np.diag(np.exp(RNG.normal(0.0, 0.4, channels)))
  return kernel


def numpy_solve(y, kernel, dilation, top_left):
  """Forward substitution pixel by pixel, written from the mask's definition.

  Top-left: `y[i, j] = sum_{a, b} x[i - a d, j - b d] @ K[p - a, p - b]`;
  bottom-right: `y[i, j] = sum_{a, b} x[i + a d, j + b d] @ K[a, b]`.
  """
  _, h, w, _ = y.shape
  m = kernel.shape[0]
  p = m - 1
  x = np.zeros_like(y)
  pixels = list(itertools.product(range(h), range(w)))
  sign = -1 if top_left else 1
  for i, j in pixels if top_left else reversed(pixels):
    rhs = y[:, i, j].copy()
    for a, b in itertools.product(range(m), repeat=2):
      if a == b == 0:
        continue
      si, sj = i + sign * a * dilation, j + sign * b * dilation
      if 0 <= si < h and 0 <= sj < w:
        tap = kernel[p - a, p - b] if top_left else kernel[a, b]
        rhs -= x[:, si, sj] @ tap
    centre = kernel[p, p] if top_left else kernel[0, 0]
    x[:, i, j] = np.linalg.solve(centre.T, rhs.T).T
  return x


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_pixel_major_holds_residue_classes_and_round_trips(dilation):
  x = RNG.normal(size=[2, 7, 5, 3])
  pm = autoregressive.pixel_major(tf.constant(x), dilation).numpy()
  hd, wd = -(-7 // dilation), -(-5 // dilation)
  assert pm.shape == (hd, wd, 2 * dilation**2, 3)
  for n, r, q in itertools.product(range(2), range(dilation), range(dilation)):
    sub = x[n, r::dilation, q::dilation]
    got = pm[:, :, n * dilation**2 + r * dilation + q]
    np.testing.assert_array_equal(got[: sub.shape[0], : sub.shape[1]], sub)
    np.testing.assert_array_equal(got[sub.shape[0] :], 0)
    np.testing.assert_array_equal(got[:, sub.shape[1] :], 0)
  back = autoregressive.image_major(tf.constant(pm), dilation, 7, 5)
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
  skew, inside, unskew = autoregressive.wavefront_layout(
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


@pytest.mark.parametrize("solver", autoregressive.SOLVERS)
@pytest.mark.parametrize("top_left", [True, False])
@pytest.mark.parametrize(
  "kernel_size,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), (5, 3), (7, 2)]
)
def test_solvers_match_numpy_forward_substitution(
  solver, top_left, kernel_size, dilation
):
  m = (kernel_size + 1) // 2
  kernel = masked_kernel(m, 3, top_left)
  for h, w in [(6, 5), (1, 7), (4, 1)]:
    y = RNG.normal(size=[2, h, w, 3])
    expected = numpy_solve(y, kernel, dilation, top_left)
    x = autoregressive.quadrant_solve(
      tf.constant(y), tf.constant(kernel), dilation, top_left, solver
    )
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-10)
    back = autoregressive.quadrant_conv(
      x, tf.constant(kernel), dilation, top_left
    )
    np.testing.assert_allclose(back.numpy(), y, atol=1e-10)


@pytest.mark.parametrize("top_left", [True, False])
def test_wavefront_agrees_with_raster_in_float32_under_xla(top_left):
  kernel = tf.constant(masked_kernel(2, 12, top_left), tf.float32)
  y = tf.constant(RNG.normal(size=[3, 13, 17, 12]), tf.float32)

  def solve(solver):
    return tf.function(
      lambda y: autoregressive.quadrant_solve(y, kernel, 2, top_left, solver),
      jit_compile=True,
    )(y)

  np.testing.assert_allclose(
    solve("wavefront").numpy(), solve("raster").numpy(), rtol=1e-5, atol=1e-5
  )


def dense_matrix(kernel, height, width, dilation, top_left):
  """`M` `[D, D]` with `flatten(quadrant_conv(x)) = flatten(x) @ M`, per
  image."""
  size = height * width * kernel.shape[-1]
  basis = tf.reshape(
    tf.eye(size, dtype=kernel.dtype), [size, height, width, kernel.shape[-1]]
  )
  return tf.reshape(
    autoregressive.quadrant_conv(basis, kernel, dilation, top_left),
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
  kernel = tf.constant(masked_kernel(m, 2, top_left))
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
  kernel = tf.constant(masked_kernel(2, 8, True), tf.float32)
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


@pytest.mark.parametrize(
  "m,dilation,top_left,h,w",
  [
    (2, 1, True, 5, 7),
    (2, 2, False, 6, 5),
    (3, 1, False, 7, 4),
    (3, 2, True, 5, 5),
    (1, 1, True, 3, 2),
  ],
)
def test_inverse_filter_is_newtons_power_series_inverse(
  m, dilation, top_left, h, w
):
  kernel = masked_kernel(m, 3, top_left)
  g, kappa = autoregressive.inverse_filter(
    tf.constant(kernel), dilation, top_left, h, w
  )
  reference = newton_inverse_filter(kernel, dilation, top_left, h, w)
  np.testing.assert_allclose(g.numpy(), reference, atol=1e-13)
  np.testing.assert_allclose(
    kappa.numpy(), np.abs(reference).sum(axis=(0, 1, 2)).max()
  )


@pytest.mark.parametrize(
  "m,dilation,top_left,h,w",
  [
    (2, 1, True, 9, 7),
    (2, 2, False, 5, 8),
    (3, 1, False, 6, 5),
    (3, 2, True, 7, 9),
    (2, 1, False, 4, 4),  # 16 pixels: the dense inverse
    (3, 1, True, 3, 5),
  ],
)
def test_fft_solver_matches_the_solve(m, dilation, top_left, h, w):
  kernel = masked_kernel(m, 3, top_left)
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
  kernel = tf.constant(masked_kernel(2, 3, False))
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


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 9), (7, 3), (6, 8)])
def test_emerging_conv_equals_the_two_convolutions(m, dilation, h, w):
  first = tf.constant(RNG.normal(size=[m, m, 3, 3]))
  second = tf.constant(RNG.normal(size=[m, m, 3, 3]))
  x = tf.constant(RNG.normal(size=[2, h, w, 3]))
  two = autoregressive.quadrant_conv(
    autoregressive.quadrant_conv(x, first, dilation, True),
    second,
    dilation,
    False,
  )
  np.testing.assert_allclose(
    autoregressive.emerging_conv(x, first, second, dilation).numpy(),
    two.numpy(),
    atol=1e-12,
  )
