"""Quadrant-masked convolutions and their exact inverses (triangular solves).

The masked convolution. A kernel `K` of shape `[m, m, C, C]` (TensorFlow's
HWIO layout), `p = m - 1`, dilation `d`, acts with the top-left mask as

    y[i, j] = sum_{a, b = 0..p} x[i - a d, j - b d] @ K[p - a, p - b]

with zeros outside the image: pixel `(i, j)` reads only pixels up to `p d`
above and to its left. The centre tap `U = K[p, p]` is upper triangular in
`(in, out)` with a nonzero diagonal, so the Jacobian is triangular in raster
order. The bottom-right mask reads `x[i + a d, j + b d] @ K[a, b]`, centre
`K[0, 0]` lower triangular: flipping the image's rows and columns and the
kernel's two spatial axes turns it into the top-left problem (*canonical
form*) with a lower triangular centre. Both solvers below work on the
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
(`(64, 32, 32, 48)`, `(16, 16, 16, 48)`), 0.93-1.04x at `C = 12`.

Raster: one pixel a step, `H W` sequential steps of `O(B (m^2 - 1) C^2)`,
reading the solved neighbours from a buffer of the last `p W + p` pixels.
`solver="auto"` picks one of the two at trace time (`raster_is_cheaper`).

Both solvers are exact (forward substitution, no iteration to convergence),
pure TensorFlow and compile with XLA. Their gradients are implicit
(`quadrant_solve`): one solve of the transposed convolution and one
convolution, never a differentiated loop.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import threading
import typing

import numpy as np
import tensorflow as tf
from tensorflow_probability.python.internal.implementation_selection import (
  is_xla,
)

Solver = typing.Literal["auto", "wavefront", "raster", "fft"]
"""The name of an inverse's solver (a type for hints)."""
SOLVERS = typing.get_args(Solver)
"""The solvers an autoregressive convolution's inverse can use: `"auto"`
(`choose_solver` picks), `"wavefront"`, `"raster"` and `"fft"`."""


def quadrant_conv(
  x: tf.Tensor, kernel: tf.Tensor, dilation: int, top_left: bool = True
) -> tf.Tensor:
  """A quadrant-masked convolution of the nonzero taps only.

  Top-left: pad the top and left by `(m - 1) d`; bottom-right: the bottom and
  right. Then one VALID (dilated) convolution with the `m x m` kernel, so no
  multiply touches a masked zero.

  Args:
    x: `[N, H, W, C]`.
    kernel: `[m, m, C, C]`, the quadrant taps only; centre at `[m-1, m-1]`
      (top-left) or `[0, 0]` (bottom-right).
    dilation: Python int.
    top_left: which quadrant.

  Returns:
    `[N, H, W, C]`. Cost `O(N H W m^2 C^2)`.
  """
  pad = (kernel.shape[0] - 1) * dilation
  before, after = (pad, 0) if top_left else (0, pad)
  x = tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])
  return tf.nn.convolution(x, kernel, padding="VALID", dilations=dilation)


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


def _raster_solve(x, kernel, lower, flip):
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


def _wavefront_solve(y, kernel, dilation, top_left, operands=None):
  """Image-major `[N, H, W, C]` solve, one anti-diagonal a step.

  `operands`: optional `wavefront_operands(kernel, top_left)`, precomputed.

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


def wavefront_solve(
  y: tf.Tensor,
  kernel: tf.Tensor,
  dilation: int,
  top_left: bool,
  operands: tuple[tf.Tensor, tf.Tensor | None],
) -> tf.Tensor:
  """The wavefront solve on precomputed `wavefront_operands`, no implicit
  gradient (differentiated through its steps, `y` only): for frozen weights.
  """
  return _wavefront_solve(y, kernel, dilation, top_left, operands)


def _raster(y, kernel, dilation, top_left):
  """Image-major `[N, H, W, C]` solve with `_raster_solve` (pixel major)."""
  if not top_left:
    kernel = tf.reverse(kernel, [0, 1])
  shape = tf.shape(y)
  x = _raster_solve(
    pixel_major(y, dilation), kernel, lower=not top_left, flip=not top_left
  )
  return image_major(x, dilation, shape[1], shape[2])


DENSE_INVERSE_PIXELS = 16
"""Images of at most this many pixels are inverted with a dense inverse
matrix (`dense_inverse`) in place of the FFT solver's filter."""
FFT_ERROR_BOUND = 1e-5
"""The FFT inverse is used only while `kappa eps` stays within this bound
(`fft_is_accurate`): `kappa`, the inverse filter's largest absolute
column sum (`inverse_filter`), times the dtype's machine epsilon."""


def on_accelerator() -> bool:
  """Whether TensorFlow sees a GPU or TPU (the FFT solver's devices)."""
  return bool(
    tf.config.list_logical_devices("GPU")
    or tf.config.list_logical_devices("TPU")
  )


def _delta_solve(kernel, dilation, top_left, images):
  """The float64 wavefront solve of `images` `[B, H, W, C]`."""
  return _wavefront_solve(
    tf.cast(images, tf.float64), tf.cast(kernel, tf.float64), dilation, top_left
  )


def inverse_filter(
  kernel: tf.Tensor, dilation: int, top_left: bool, height: int, width: int
) -> tuple[tf.Tensor, tf.Tensor]:
  """The inverse filter `g` of a masked convolution on `H x W` images.

  With zero padding the inverse of the top-left convolution is itself a
  top-left (causal) filter, the power series of the kernel's inverse
  truncated to the image: `x[i, j] = sum_{u, v >= 0} y[i - u, j - v] @
  g[u, v]`, `g` `[H, W, C, C]`. (Bottom-right: `x[i, j] = sum y[i + u, j + v]
  @ g[u, v]`.) Row `c` of `g[u, v]` is the solution for a delta image, a one
  in channel `c` at the first pixel of the mask's order; so `g` is one
  float64 wavefront solve of `C` delta images. (Newton's iteration with a
  doubling box gives the same `g`: `tests/unit/ops/test_autoregressive.py`.)

  Returns:
    `(g, kappa)`, both float64: `g` `[H, W, C, C]` and `kappa =
    max_c' sum_{u, v, c} |g[u, v, c, c']|`, the infinity norm of the inverse
    (the largest row sum of `|g|` as an operator): an FFT application loses
    about `kappa eps` relative accuracy. Cost: one solve, `H + W - 1` steps on
    a batch of `C`.
  """
  channels = kernel.shape[-1]
  at = [0, 0] if top_left else [height - 1, width - 1]
  deltas = tf.scatter_nd(
    [[c, *at, c] for c in range(channels)],
    tf.ones([channels], tf.float64),
    [channels, height, width, channels],
  )
  x = _delta_solve(kernel, dilation, top_left, deltas)
  if not top_left:
    x = tf.reverse(x, [1, 2])
  g = tf.transpose(x, [1, 2, 0, 3])
  return g, tf.reduce_max(tf.reduce_sum(tf.abs(g), [0, 1, 2]))


def dense_inverse(
  kernel: tf.Tensor, dilation: int, top_left: bool, height: int, width: int
) -> tf.Tensor:
  """The inverse as a dense float64 `[H W C, H W C]` matrix `M`.

  `x = reshape(reshape(y, [N, H W C]) @ M, y.shape)`: row `r` of `M` is the
  solution for the `r`-th unit image, one float64 wavefront solve of
  `H W C` unit images. For images of at most `DENSE_INVERSE_PIXELS` pixels,
  where one matmul beats every sequential solve.
  """
  size = height * width * kernel.shape[-1]
  units = tf.reshape(
    tf.eye(size, dtype=tf.float64), [size, height, width, kernel.shape[-1]]
  )
  return tf.reshape(
    _delta_solve(kernel, dilation, top_left, units), [size, size]
  )


def filter_spectrum(g: tf.Tensor, dtype: tf.dtypes.DType) -> tf.Tensor:
  """`rfft2d` of `g` `[H, W, C, C]` on the `2H x 2W` grid, `[C, C, 2H, W+1]`.

  Computed in float64 and rounded to the complex type of `dtype`.
  """
  height, width = g.shape[0], g.shape[1]
  spectrum = tf.signal.rfft2d(
    tf.transpose(g, [2, 3, 0, 1]), fft_length=[2 * height, 2 * width]
  )
  return tf.cast(
    spectrum, tf.complex64 if dtype == tf.float32 else tf.complex128
  )


def apply_filter(
  y: tf.Tensor, spectrum: tf.Tensor, top_left: bool
) -> tf.Tensor:
  """`x = g * y` by FFT, `y` `[N, H, W, C]`, `spectrum = filter_spectrum(g)`.

  The linear (not circular) convolution: both on the `2H x 2W` grid, then
  cropped to `H x W`. The bottom-right filter runs on the flipped image.
  Cost: `rfft2d` and `irfft2d` of `N C` planes, `O(N C H W log(H W))`, and a
  `[N, C] @ [C, C]` product per frequency, `O(N H W C^2)`; no sequential
  steps.
  """
  height, width = y.shape[1], y.shape[2]
  if not top_left:
    y = tf.reverse(y, [1, 2])
  grid = [2 * height, 2 * width]
  planes = tf.signal.rfft2d(tf.transpose(y, [0, 3, 1, 2]), fft_length=grid)
  planes = tf.einsum("nchw,cdhw->ndhw", planes, spectrum)
  x = tf.signal.irfft2d(planes, fft_length=grid)[:, :, :height, :width]
  x = tf.transpose(x, [0, 2, 3, 1])
  return tf.reverse(x, [1, 2]) if not top_left else x


def apply_dense_inverse(y: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
  """`x = y @ M` on the flattened images (`dense_inverse`)."""
  shape = tf.shape(y)
  flat = tf.reshape(y, [-1, matrix.shape[0]]) @ tf.cast(matrix, y.dtype)
  return tf.reshape(flat, shape)


def fft_is_accurate(kappa: float, dtype: tf.dtypes.DType) -> bool:
  """`kappa eps <= FFT_ERROR_BOUND`: the FFT inverse keeps its accuracy."""
  return float(kappa) * np.finfo(dtype.as_numpy_dtype).eps <= FFT_ERROR_BOUND


def _fft_solve(y, kernel, dilation, top_left):
  """`solver="fft"`: the inverse filter computed for this call and applied.

  `g` (float64) costs one solve of `C` delta images each call, so this pays
  only where the weights are frozen (`AutoregressiveConv2D._frozen`
  computes it once); images of at most `DENSE_INVERSE_PIXELS` pixels use
  `dense_inverse`. Needs static `H`, `W`.
  """
  height, width = y.shape[1], y.shape[2]
  if height is None or width is None:
    raise ValueError(
      '`solver="fft"` needs images of static height and width; got shape '
      f"{y.shape}."
    )
  if height * width <= DENSE_INVERSE_PIXELS:
    matrix = dense_inverse(kernel, dilation, top_left, height, width)
    return apply_dense_inverse(y, matrix)
  g, _ = inverse_filter(kernel, dilation, top_left, height, width)
  return apply_filter(y, filter_spectrum(g, y.dtype), top_left)


_SOLVE = {"raster": _raster, "wavefront": _wavefront_solve, "fft": _fft_solve}


def adjoint_kernel(kernel: tf.Tensor) -> tf.Tensor:
  """The kernel of the transposed masked convolution, opposite quadrant.

  `quadrant_conv(., K, d, top_left)` is linear; its transpose is
  `quadrant_conv(., adjoint_kernel(K), d, not top_left)` with
  `adjoint_kernel(K)[a, b] = K[m - 1 - a, m - 1 - b]^T`: a tap that carries
  pixel `(i - a d, j - b d)` to `(i, j)` carries it back, transposed. The
  centre stays the centre, transposed: upper triangular becomes lower.
  """
  return tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])


def _read_triangle(m, channels, top_left, dtype):
  """Mask `[m, m, C, C]` of the kernel entries a solve reads.

  Every off-centre tap, and the centre's upper (top-left) or lower
  (bottom-right) triangle with the diagonal; the other strict triangle of the
  centre is ignored by the solve, so its derivative is zero.
  """
  mask = np.ones([m, m, channels, channels], dtype.as_numpy_dtype)
  centre = m - 1 if top_left else 0
  mask[centre, centre] = (np.triu if top_left else np.tril)(
    np.ones([channels, channels])
  )
  return mask


def raster_is_cheaper(
  batch: int | None,
  height: int | None,
  width: int | None,
  channels: int | None,
  kernel_size: int,
  dilation: int,
  xla: bool,
) -> bool:
  """The solvers' cost rule: is the raster solve cheaper than the wavefront?

  With `H' = ceil(H/d)`, `W' = ceil(W/d)`, `B = N d^2` undilated images and
  `T = m^2 - 1` off-centre taps (`m = (k + 1) / 2`), the raster solve takes
  `H' W'` steps of `B T C^2` multiply-adds and a copy of its `p W' + p`
  pixels of history; the wavefront `H' + W' - 1` steps of `H' B T C^2`
  (padding slots included): about twice the raster's arithmetic in far
  fewer steps. So the raster can only win where it has few steps and a
  step's fixed cost is small:

  * without XLA a step costs tens of microseconds of TensorFlow's executor;
    the raster lost everywhere it was measured (3.7 to 120 times slower at
    `(N, H, W, C)` = `(16, 32, 32, 12)`, `(64, 32, 32, 48)`, `(4, 64, 64,
    12)`, `(16, 16, 16, 48)`, `k = 3`): never;
  * under XLA a raster step costs a few microseconds: raster when it has at
    most 64 steps, `H' W' <= 64`.

  Measured under XLA on CPU (`k = 3`, one solve, raster / wavefront time,
  2 to 5 runs each on a loaded 2-core machine, where single runs scatter by
  +-30%): 8 x 8 images 0.47 and 0.74 at `(16, 8, 8, 24)`, 0.78, 0.82 and
  1.15 at `(64, 8, 8, 48)`; 16 x 16 and 32 x 32 images no clear winner
  (medians 0.8 to 1.36, single runs 0.53 to 1.9, at `(16, 16, 16, 12)`,
  `(16, 16, 16, 24)`, `(16, 16, 16, 48)`, `(64, 16, 16, 12)`,
  `(16, 32, 32, 12)`, `(16, 32, 32, 24)`, `(64, 32, 32, 12)`,
  `(4, 32, 32, 48)`, `(64, 32, 32, 48)`); 64 x 64 images 1.3 to 2.2
  (`(4, 64, 64, 12)`, `(16, 64, 64, 12)`, `(4, 64, 64, 48)`).
  `benchmarks/solvers.py` reruns the comparison.

  Python ints in (`height` or `width` `None`, not known at trace time,
  means the wavefront), a Python bool out, decided at trace time.
  """
  del batch, channels, kernel_size  # the measurements show no clear effect
  if not xla or height is None or width is None:
    return False
  return -(-height // dilation) * -(-width // dilation) <= 64


def choose_solver(
  solver: Solver, y: tf.Tensor, kernel: tf.Tensor, dilation: int
) -> Solver:
  """`solver`, or for `"auto"` the one `raster_is_cheaper` picks for `y`."""
  if solver != "auto":
    return solver
  m, channels = kernel.shape[0], kernel.shape[-1]
  batch, height, width = y.shape[0], y.shape[1], y.shape[2]
  cheaper = raster_is_cheaper(
    batch, height, width, channels, 2 * m - 1, dilation, is_xla()
  )
  return "raster" if cheaper else "wavefront"


# Set while tracing functions that will be served without gradients.
_TRACING = threading.local()


@contextlib.contextmanager
def without_gradients() -> Iterator[None]:
  """Within the block, `quadrant_solve` traces its solve alone, without the
  implicit gradient: for functions served without gradients (a SavedModel's
  `sample`), whose graphs then hold no custom-gradient op that a SavedModel
  cannot store (the gradient's own solve has one too)."""
  previous = getattr(_TRACING, "without_gradients", False)
  _TRACING.without_gradients = True
  try:
    yield
  finally:
    _TRACING.without_gradients = previous


def quadrant_solve(
  y: tf.Tensor,
  kernel: tf.Tensor,
  dilation: int,
  top_left: bool = True,
  solver: Solver = "auto",
) -> tf.Tensor:
  """Solves `quadrant_conv(x, kernel, dilation, top_left) = y` for `x`, exactly.

  Gradients are implicit, not taken through the loop: with
  `F(x) = quadrant_conv(x, kernel)` and `x = F^{-1}(y)`, a cotangent `g_x`
  gives `g_y = F^{-T} g_x`, one solve of the transposed convolution (the
  opposite quadrant, `adjoint_kernel`), and
  `g_kernel = -d/dkernel <g_y, F(x)>` at fixed `x`, the kernel gradient of
  one parallel convolution. So the backward pass costs one more solve and one
  convolution, keeps no per-step state, and compiles with XLA (a loop's own
  gradient needs `TensorArray` reads XLA cannot compile); the backward solve
  has the same implicit gradient, so higher derivatives work too.

  Args:
    y: `[N, H, W, C]`.
    kernel: `[m, m, C, C]` as in `quadrant_conv`; its centre tap is upper
      (top-left) or lower (bottom-right) triangular in `(in, out)` with a
      nonzero diagonal (the other strict triangle is not read).
    dilation: Python int.
    top_left: which quadrant.
    solver: `"auto"` (`choose_solver`: by `raster_is_cheaper`, at trace
      time), `"wavefront"` (`ceil(H/d) + ceil(W/d) - 1` sequential steps) or
      `"raster"` (`H * W` sequential steps).

  Returns:
    `x`, `[N, H, W, C]`.
  """
  if solver not in SOLVERS:
    raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
  if getattr(_TRACING, "without_gradients", False):
    return _solve(y, kernel, dilation, top_left, solver)

  @tf.custom_gradient
  def solve(y, kernel):
    x = _solve(y, kernel, dilation, top_left, solver)

    def gradient(g_x):
      g_y = quadrant_solve(
        g_x, adjoint_kernel(kernel), dilation, not top_left, solver
      )
      with tf.GradientTape() as tape:
        tape.watch(kernel)
        y_again = quadrant_conv(x, kernel, dilation, top_left)
      g_kernel = -tape.gradient(y_again, kernel, output_gradients=g_y)
      read = _read_triangle(
        kernel.shape[0], kernel.shape[-1], top_left, kernel.dtype
      )
      return g_y, g_kernel * read

    return x, gradient

  return solve(y, kernel)


def _solve(y, kernel, dilation, top_left, solver):
  """`quadrant_solve` without its gradient."""
  return _SOLVE[choose_solver(solver, y, kernel, dilation)](
    y, kernel, dilation, top_left
  )


def equivalent_kernel(first: tf.Tensor, second: tf.Tensor) -> tf.Tensor:
  """The `[k, k, C, C]` kernel of a top-left then a bottom-right conv.

  `K[a1 + a2, b1 + b2] = sum K_1[a1, b1] @ K_2[a2, b2]`, `k = 2 m - 1`, for
  the `[m, m, C, C]` quadrant kernels `first` (top-left) and `second`
  (bottom-right). Cost `O(m^4 C^3)`.
  """
  m = first.shape[0]
  total = 0.0
  for a in range(m):
    for b in range(m):
      taps = tf.einsum("xyij,jk->xyik", first, second[a, b])
      total += tf.pad(taps, [[a, m - 1 - a], [b, m - 1 - b], [0, 0], [0, 0]])
  return total


def emerging_conv(
  x: tf.Tensor,
  first: tf.Tensor,
  second: tf.Tensor,
  dilation: int,
  kernel: tf.Tensor | None = None,
) -> tf.Tensor:
  """`quadrant_conv(quadrant_conv(x, first), second, top_left=False)` as one
  dense convolution plus an exact border correction.

  With `p = m - 1` and `x` zero outside the image, let `z` be the top-left
  convolution of `x` continued past the image (rows `>= H`, columns `>= W`).
  The dense `k x k` SAME convolution with the equivalent kernel
  (`equivalent_kernel`) is the bottom-right convolution of that continued
  `z`; the two-convolution composite reads `z` only inside the image (the
  intermediate image is zero padded). So

      y = dense(x) - quadrant_conv(z * outside, second, top_left=False)

  and `z * outside` lives on the bottom band (rows `H .. H + p d - 1`,
  columns `0 .. W + p d - 1`, computed from the last `p d` rows of `x`) and
  the right band (columns `W .. W + p d - 1`, rows `0 .. H - 1`, from the
  last `p d` columns); their corrections touch only the last `p d` rows and
  columns of `y`. Exact for every `H, W >= 1` (images thinner than `p d`
  are padded with the zeros they stand for).

  Args:
    x: `[N, H, W, C]` with static `H`, `W`.
    first: the `[m, m, C, C]` top-left kernel.
    second: the `[m, m, C, C]` bottom-right kernel.
    dilation: Python int `d`.
    kernel: optional precomputed `equivalent_kernel(first, second)`.

  Returns:
    `[N, H, W, C]`. Cost: one dense `k x k` convolution, `O(N H W k^2 C^2)`,
    plus four quadrant convolutions on bands of `2 p d` rows or columns,
    `O(N (H + W) p d m^2 C^2)`.
  """
  if kernel is None:
    kernel = equivalent_kernel(first, second)
  y = tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation)
  band = (first.shape[0] - 1) * dilation
  if band == 0:
    return y
  height, width = x.shape[1], x.shape[2]
  zeros = [0, 0]

  def last(z, axis, size):
    """The last `size` rows (axis 1) or columns (axis 2), zeros in front."""
    length = z.shape[axis]
    z = z[:, -size:] if axis == 1 else z[:, :, -size:]
    if length < size:
      padding = [zeros, zeros, zeros, zeros]
      padding[axis] = [size - length, 0]
      z = tf.pad(z, padding)
    return z

  # Bottom band: z on rows H .. H + band - 1 (all W + band columns), read by
  # the last `band` rows of y.
  x_bottom = tf.pad(last(x, 1, band), [zeros, [0, band], [0, band], zeros])
  z_bottom = quadrant_conv(x_bottom, first, dilation, top_left=True)
  z_bottom = tf.pad(z_bottom[:, band:], [zeros, [band, 0], zeros, zeros])
  bottom = quadrant_conv(z_bottom, second, dilation, top_left=False)
  bottom = last(bottom[:, :band, :width], 1, min(band, height))
  # Right band: z on columns W .. W + band - 1, rows 0 .. H - 1.
  x_right = tf.pad(last(x, 2, band), [zeros, zeros, [0, band], zeros])
  z_right = quadrant_conv(x_right, first, dilation, top_left=True)
  z_right = tf.pad(z_right[:, :, band:], [zeros, zeros, [band, 0], zeros])
  right = quadrant_conv(z_right, second, dilation, top_left=False)
  right = last(right[:, :, :band], 2, min(band, width))
  return (
    y
    - tf.pad(bottom, [zeros, [height - bottom.shape[1], 0], zeros, zeros])
    - tf.pad(right, [zeros, zeros, [width - right.shape[2], 0], zeros])
  )
