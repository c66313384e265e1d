"""The sequential solvers of a masked convolution: wavefront and raster.

The masked convolutions are those of `tfp_emerging.ops.masked_conv`. The
bottom-right mask's problem turns into the top-left one by flipping the
image's rows and columns and the kernel's two spatial axes (*canonical
form*), with a lower triangular centre. Both solvers below work on the
canonical form and accept either triangle.

Solving. Both solvers fold the centre's inverse `U^-1` (one
`tf.linalg.triangular_solve`, `O(C^3)`) into the right-hand side and the
off-centre taps, `y' = y U^-1` and `K'[.] = K[.] U^-1`; then

    x[i, j] = y'[i, j]
              - sum_{(a, b) != (0, 0)} x[i - a d, j - b d] @ K'[p - a, p - b]

and a pixel is known as soon as the pixels it reads are.

Dilation. Tap offsets are multiples of `d`, so only pixels whose coordinates
agree modulo `d` interact: the image splits into `d^2` independent undilated
problems of size `ceil(H/d) x ceil(W/d)`, stacked along the batch (the
wavefront's gathers, `wavefront_layout`; the raster's `pixel_major`). Both
solvers run on that undilated problem.

Ordering (wavefront). In the undilated problem pixel `(i, j)` reads
`(i - a, j - b)` for `0 <= a, b <= p`, `a + b >= 1`: every read lies on an
anti-diagonal `t' = t - (a + b)` with `t = i + j`, between 1 and `2 p` earlier.
So all pixels of one anti-diagonal are independent and anti-diagonals can be
solved in order `t = 0, 1, ..., H + W - 2`: `H + W - 1` sequential steps for
any kernel size, each reading the `2 p` previous anti-diagonals. No ordering
has fewer steps: the taps `(1, 0)` and `(0, 1)` alone chain `(0, 0)` to
`(H - 1, W - 1)` through `H + W - 1` pixels. With dilation the steps are
`ceil(H/d) + ceil(W/d) - 1`.

Layout (wavefront). The problem is *skewed* by one gather straight from the
image-major `[N H W, C]` rows (`wavefront_layout`): anti-diagonal `t`
becomes a contiguous row of `H B` vectors (`B = N d^2`) whose slot `(i, n)`
holds pixel `(i, t - i)` of undilated image `n`. Slots with `t - i` outside
`[0, W)` are padding, left (`t - i < 0`) or right (`t - i >= W`) of the
image. The pixel `(i - a, j - b)` that `(i, j)` reads through tap `(a, b)`
sits in row `t - (a + b)` at slot `i - a`, `a B` slots before `(i, n)`: each
tap reads a whole earlier row shifted by `a B` slots, zeros shifted in for
pixels above the image. With `R_{t-s, a}` row `t - s` shifted by `a`, a step
is

    x_t = (y'_skewed[t] - [R_{t-s, a} for (s, a) in taps] @ K'') * inside[t]

over the nonzero taps `s = a + b = 1..2p`, `max(0, s - p) <= a <= min(s, p)`
(`m^2 - 1` blocks, 3 for `k = 3`, oldest row first; `_window_taps`), `K''`
stacking the matching folded taps, `[(m^2 - 1) C, C]`. The state keeps the
shifted copies of the last `2 p` rows that are still to be read.
`inside[t]` is 0 on padding slots: the left ones are read by the pixels of
the first `p` columns (as the zeros left of the image); the right ones are
never read by real pixels but would hold the solution continued past the
image's right edge, which can overflow and turn gradients into NaN. A step is
one concat, one `O(H B (m^2 - 1) C^2)` matmul, a subtract and the mask's
multiply, a pad and `p` slices for the shifted copies of `x_t`: a handful of
small ops on contiguous `[H B, C]` blocks. A last gather returns the pixels
straight to the image-major layout; dilation and the flip of the
bottom-right mask ride on both gathers' indices. The steps are unrolled when
the image size is static and not under XLA (TensorFlow's executor then runs
no loop bookkeeping and no `TensorArray`, about a third of a small solve);
otherwise one `tf.while_loop` writes the rows to a `TensorArray`. Unrolled,
a step's matmul runs on its real slots only (rows `max(0, t - W' + 1) ..
min(t, H' - 1)`), the padding slots padded in as zeros: half the arithmetic
of a square image; measured 0.82-0.83x the solve's time at `C = 48`

Raster: one pixel a step, `H W` sequential steps of `O(B (m^2 - 1) C^2)`,
reading the solved neighbours from a buffer of the last `p W + p` pixels.
`solver="auto"` picks one of the two at trace time
(`tfp_emerging.ops.autoregressive.raster_is_cheaper`).

Both solvers are exact (forward substitution, no iteration to convergence),
pure TensorFlow and compile with XLA. Here they are differentiated through
their steps; `tfp_emerging.ops.autoregressive.quadrant_solve` gives them
implicit gradients: one solve of the transposed convolution and one
convolution, never a differentiated loop.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow_probability.python.internal.implementation_selection import (
  is_xla,
)


def pixel_major(x: tf.Tensor, dilation: int) -> tf.Tensor:
  """`[N, H, W, C]` -> `[ceil(H/d), ceil(W/d), N d^2, C]`, one transpose.

  Image `n d^2 + r d + q` of the result is the residue class
  `x[n, r::d, q::d]`: the `d^2` independent undilated problems of a dilation
  `d` masked convolution. The bottom and right are zero-padded to multiples
  of `d`; padding there never influences real pixels of either mask's problem
  (it sits after them in the top-left order and is cut by `image_major`).
  """
  shape = tf.shape(x)
  n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
  if dilation == 1:
    return tf.transpose(x, [1, 2, 0, 3])
  hd, wd = -(-h // dilation), -(-w // dilation)
  x = tf.pad(
    x, [[0, 0], [0, hd * dilation - h], [0, wd * dilation - w], [0, 0]]
  )
  x = tf.reshape(x, [n, hd, dilation, wd, dilation, c])
  x = tf.transpose(x, [1, 3, 0, 2, 4, 5])
  return tf.reshape(x, [hd, wd, n * dilation * dilation, c])


def image_major(
  x: tf.Tensor, dilation: int, height: int | tf.Tensor, width: int | tf.Tensor
) -> tf.Tensor:
  """Inverse of `pixel_major`: back to `[N, height, width, C]`."""
  if dilation == 1:
    return tf.transpose(x, [2, 0, 1, 3])
  shape = tf.shape(x)
  hd, wd, c = shape[0], shape[1], x.shape[-1]
  n = shape[2] // (dilation * dilation)
  x = tf.reshape(x, [hd, wd, n, dilation, dilation, c])
  x = tf.transpose(x, [2, 0, 3, 1, 4, 5])
  x = tf.reshape(x, [n, hd * dilation, wd * dilation, c])
  return x[:, :height, :width, :]


def wavefront_layout(
  batch: int | tf.Tensor,
  height: int | tf.Tensor,
  width: int | tf.Tensor,
  dilation: int,
  flip: bool,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """Where each slot of the skewed layout reads from, and back.

  The undilated problems (the `d^2` residue classes of each image, the
  `G = N d^2` groups) have `H' = ceil(H/d)` rows and `W' = ceil(W/d)`
  columns. Slot `(t, i, g)`, `t < H' + W' - 1`, `i < H'`, holds pixel
  `(i, t - i)` of group `g = n d^2 + r d + q`, which is pixel
  `(i d + r, (t - i) d + q)` of image `n`; with `flip`, the bottom-right
  mask's canonical order, pixel `(H' - 1 - i, W' - 1 - (t - i))` of the
  residue grid instead.

  Args:
    batch: `N`, images (an int or a scalar tensor).
    height: `H`, their rows (an int or a scalar tensor).
    width: `W`, their columns (an int or a scalar tensor).
    dilation: Python int `d`.
    flip: whether the pixels are read in reverse order.

  Returns:
    `(skew, inside, unskew)`: `skew` `[H' + W' - 1, H' G]`, the row of the
    image-major `[N H W, C]` each slot reads, or `N H W` (a zero row appended
    by the caller) where it reads outside the image; `inside` `[H' + W' - 1,
    H' G]` bool, whether `0 <= t - i < W'`; `unskew` `[N H W]`, the slot (in
    the flattened `[(H' + W' - 1) H' G]` layout) of each image-major pixel.
  """
  d = dilation
  rows, columns = -(-height // d), -(-width // d)
  groups = batch * d * d
  length = rows + columns - 1
  t = tf.range(length)[:, None, None]
  i = tf.range(rows)[None, :, None]
  group = tf.range(groups)[None, None, :]
  image, r, q = group // (d * d), group // d % d, group % d
  inside = (t - i >= 0) & (t - i < columns)
  grid_i, grid_j = (rows - 1 - i, columns - 1 - (t - i)) if flip else (i, t - i)
  row, col = grid_i * d + r, grid_j * d + q
  skew = tf.where(
    inside & (row < height) & (col < width),
    (image * height + row) * width + col,
    batch * height * width,
  )
  image = tf.range(batch)[:, None, None]
  row = tf.range(height)[None, :, None]
  col = tf.range(width)[None, None, :]
  grid_i, grid_j = row // d, col // d
  if flip:
    grid_i, grid_j = rows - 1 - grid_i, columns - 1 - grid_j
  group = image * d * d + row % d * d + col % d
  unskew = ((grid_i + grid_j) * rows + grid_i) * groups + group
  inside = tf.broadcast_to(inside, [length, rows, groups])
  return (
    tf.reshape(skew, [length, rows * groups]),
    tf.reshape(inside, [length, rows * groups]),
    tf.reshape(unskew, [-1]),
  )


def _fold_centre_inverse(kernel, lower):
  """`(U^-1, K @ U^-1)` for the canonical centre tap `U = K[m-1, m-1]`."""
  m, channels = kernel.shape[0], kernel.shape[-1]
  centre_inv = tf.linalg.triangular_solve(
    kernel[m - 1, m - 1], tf.eye(channels, dtype=kernel.dtype), lower=lower
  )
  return centre_inv, tf.einsum("abij,jk->abik", kernel, centre_inv)


def _canonical_raster_solve(x, kernel, lower, flip):
  """Pixel-major `[H, W, B, C]` canonical solve, one pixel a step.

  The loop keeps the last `p W + p` solved pixels (all a tap can reach, zeros
  before the first) as `[B, p W + p, C]`; a step gathers the `m^2 - 1` taps'
  pixels at fixed offsets from its end, zeroes those left of the image, does
  one `[B, (m^2 - 1) C] @ [(m^2 - 1) C, C]` matmul and shifts the new pixel
  in. `flip`: the pixels come in the bottom-right mask's order; reversed to
  the canonical raster order on the way in and back on the way out.
  """
  m, channels = kernel.shape[0], kernel.shape[-1]
  p = m - 1
  centre_inv, folded = _fold_centre_inverse(kernel, lower)
  shape = tf.shape(x)
  h, w, batch = shape[0], shape[1], shape[2]
  rhs = tf.reshape(x, [h * w, batch, channels]) @ centre_inv
  if flip:
    rhs = tf.reverse(rhs, [0])
  offsets = [(a, b) for a in range(m) for b in range(m) if a or b]
  if offsets:
    taps = tf.concat([folded[p - a, p - b] for a, b in offsets], 0)
    reach = p * w + p
    positions = reach - tf.stack([a * w + b for a, b in offsets])
    cols_back = tf.constant([b for _, b in offsets])
    width = len(offsets) * channels

    def body(k, recent, solved):
      left_of_image = tf.cast(k % w >= cols_back, x.dtype)[:, None]
      neighbours = tf.gather(recent, positions, axis=1) * left_of_image
      x_k = rhs[k] - tf.reshape(neighbours, [-1, width]) @ taps
      recent = tf.concat([recent[:, 1:], x_k[:, None]], 1)
      return k + 1, recent, solved.write(k, x_k)

    solved = tf.TensorArray(x.dtype, size=h * w, element_shape=[None, channels])
    _, _, solved = tf.while_loop(
      lambda k, *_: k < h * w,
      body,
      (tf.constant(0), tf.zeros([batch, reach, channels], x.dtype), solved),
    )
    rhs = solved.stack()
  if flip:
    rhs = tf.reverse(rhs, [0])
  return tf.reshape(rhs, shape)


def _window_taps(p):
  """The `(s, a)` blocks of the wavefront window: row `t - s` shifted by `a`.

  Tap `(a, b)` reads row `t - (a + b)` shifted by `a`, so the nonzero taps are
  the pairs `s = 1..2p`, `max(0, s - p) <= a <= min(s, p)`; oldest row first.
  """
  return [
    (s, a)
    for s in range(2 * p, 0, -1)
    for a in range(max(0, s - p), min(s, p) + 1)
  ]


def wavefront_operands(
  kernel: tf.Tensor, top_left: bool
) -> tuple[tf.Tensor, tf.Tensor | None]:
  """What the wavefront solve needs of the kernel, weights only.

  `(U^-1, K'')`: the canonical centre tap's inverse `[C, C]` and the folded
  off-centre taps `K[.] U^-1` stacked in `_window_taps` order,
  `[(m^2 - 1) C, C]` (`None` for `m = 1`). Cost `O(m^2 C^3)`; computed once
  by a frozen layer (`AutoregressiveConv2D._frozen`).
  """
  if not top_left:
    kernel = tf.reverse(kernel, [0, 1])
  p = kernel.shape[0] - 1
  centre_inv, folded = _fold_centre_inverse(kernel, lower=not top_left)
  if p == 0:
    return centre_inv, None
  taps = tf.concat([folded[p - a, p - (s - a)] for s, a in _window_taps(p)], 0)
  return centre_inv, taps


def wavefront_solve(
  y: tf.Tensor,
  kernel: tf.Tensor,
  dilation: int,
  top_left: bool,
  operands: tuple[tf.Tensor, tf.Tensor | None] | None = None,
) -> tf.Tensor:
  """Image-major `[N, H, W, C]` solve, one anti-diagonal a step.

  `operands`: optional `wavefront_operands(kernel, top_left)`, precomputed
  (a frozen layer's). No implicit gradient: differentiated through its steps
  (`tfp_emerging.ops.autoregressive.quadrant_solve` adds the implicit one).

  The right-hand side is folded (`y U^-1`) as one `[N H W, C]` matmul and
  skewed by one gather straight from the image-major layout
  (`wavefront_layout`, dilation and the bottom-right flip included), and
  the solution is gathered straight back: no transposes. The steps run in a
  `tf.while_loop` when the image size is not known at trace time or under
  XLA (one compiled loop); otherwise they are unrolled, which spares
  TensorFlow's executor the loop's bookkeeping and `TensorArray`, about a
  third of the time of a small solve.
  """
  if operands is None:
    operands = wavefront_operands(kernel, top_left)
  centre_inv, taps = operands
  m, channels = kernel.shape[0], kernel.shape[-1]
  p = m - 1
  shape = tf.shape(y)
  pixels = tf.reshape(y, [-1, channels]) @ centre_inv
  if p == 0:
    return tf.reshape(pixels, shape)
  skew, inside, unskew = wavefront_layout(
    shape[0], shape[1], shape[2], dilation, flip=not top_left
  )
  groups = shape[0] * dilation * dilation
  slots = tf.shape(skew)[1]
  rhs = tf.gather(
    tf.concat([pixels, tf.zeros([1, channels], y.dtype)], 0), skew
  )
  inside = tf.cast(inside, y.dtype)[..., None]
  window_taps = _window_taps(p)

  def lowest(s):
    """Row `t - s` is kept shifted by `lowest(s)..p`, as read now and later."""
    return max(0, s - p)

  # Loop-invariant arguments of the pad and slices, built once.
  padding = tf.stack([tf.stack([p * groups, 0]), [0, 0]])
  size = tf.stack([slots, channels])
  begins = [tf.stack([(p - a) * groups, 0]) for a in range(1, m)]

  def step(rhs_t, inside_t, history, real=None):
    """`x_t` and the history for `t + 1`.

    `history[k]` is row `t - (2p - k)` as its shifted copies. `real`:
    optional static `(lo, hi)`, the slot rows `i` of row `t` that hold
    pixels (`0 <= t - i < W'`): the window is concatenated and the matmul
    runs on those rows only, and the padding slots are set to zero, as
    `inside_t` would (about half the arithmetic and copies of a square
    image).
    """
    blocks = [history[2 * p - s][a - lowest(s)] for s, a in window_taps]
    if real is None:
      x_t = (rhs_t - tf.concat(blocks, -1) @ taps) * inside_t
    else:
      begin, end = real[0] * groups, (real[1] + 1) * groups
      # The window of the real rows only: its concatenation copied more
      # than the matmul reads (profiled at 64x32x32x48).
      window = tf.concat([block[begin:end] for block in blocks], -1)
      x_t = tf.pad(
        rhs_t[begin:end] - window @ taps,
        tf.stack([tf.stack([begin, slots - end]), [0, 0]]),
      )
      x_t.set_shape(rhs_t.shape)
    padded = tf.pad(x_t, padding)
    shifted = [x_t]
    for begin in begins:
      shifted.append(tf.slice(padded, begin, size))
      shifted[-1].set_shape(x_t.shape)
    history = tuple(
      history[2 * p - s][lowest(s + 1) - lowest(s) :]
      for s in range(2 * p - 1, 0, -1)
    ) + (tuple(shifted),)
    return x_t, history

  history = tuple(
    tuple(tf.zeros([slots, channels], y.dtype) for _ in range(lowest(s), m))
    for s in range(2 * p, 0, -1)
  )
  height, width = y.shape[1], y.shape[2]
  if height is not None and width is not None and not is_xla():
    solved = []
    rows, columns = -(-height // dilation), -(-width // dilation)
    length = rows + columns - 1
    for t, (rhs_t, inside_t) in enumerate(
      zip(tf.unstack(rhs, length), tf.unstack(inside, length))
    ):
      real = (max(0, t - columns + 1), min(t, rows - 1))
      x_t, history = step(rhs_t, inside_t, history, real)
      solved.append(x_t)
    solved = tf.stack(solved)
  else:

    def body(t, history, solved):
      x_t, history = step(tf.gather(rhs, t), tf.gather(inside, t), history)
      return t + 1, history, solved.write(t, x_t)

    length = tf.shape(rhs)[0]
    solved = tf.TensorArray(
      y.dtype, size=length, element_shape=[None, channels]
    )
    _, _, solved = tf.while_loop(
      lambda t, *_: t < length, body, (tf.constant(0), history, solved)
    )
    solved = solved.stack()
  return tf.reshape(
    tf.gather(tf.reshape(solved, [-1, channels]), unskew), shape
  )


def raster_solve(
  y: tf.Tensor, kernel: tf.Tensor, dilation: int, top_left: bool
) -> tf.Tensor:
  """Image-major `[N, H, W, C]` solve, one pixel a step: the pixel-major
  `_canonical_raster_solve` between `pixel_major` and `image_major`."""
  if not top_left:
    kernel = tf.reverse(kernel, [0, 1])
  shape = tf.shape(y)
  x = _canonical_raster_solve(
    pixel_major(y, dilation), kernel, lower=not top_left, flip=not top_left
  )
  return image_major(x, dilation, shape[1], shape[2])
