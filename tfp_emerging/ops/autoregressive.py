"""Quadrant-masked convolutions and their exact inverses (triangular solves).

All functions here work on the *canonical* problem: a top-left quadrant mask.
A kernel `K` of shape `[m, m, C, C]` (TensorFlow's HWIO layout) acts as

    y[i, j] = sum_{a, b = 0..m-1} x[i - (m-1-a) d, j - (m-1-b) d] @ K[a, b]

with zeros outside the image, so pixel `(i, j)` reads only pixels above and to
its left. The centre tap `K[m-1, m-1]` is upper triangular in `(in, out)`
(output channel `c` reads input channels `c' <= c`) with a nonzero diagonal,
so the Jacobian is triangular in raster order and the map is inverted by
forward substitution. The opposite (bottom-right) mask is this one with the
rows, columns and channels of the image reversed (`reverse_image`) and all
four axes of the kernel reversed (`reverse_kernel`).

Solvers (both exact, pure TensorFlow, `tf.while_loop`, XLA-compilable):

* `raster`: one pixel a step, `H * W` sequential steps of `O(N m^2 C^2)`.
  The reference.
* `wavefront`: every pixel on one anti-diagonal `t = i + j` at once. A pixel
  reads only taps with `a + b >= 1` back along the axes, all on earlier
  anti-diagonals, so `H + W - 1` sequential steps of `O(N W m^2 C^2)` suffice.
  The image is *skewed* so that anti-diagonal `t` is row `t` of a
  `[N, H + W - 1, W, C]` array; each step reads the previous `2 (m - 1)` rows
  (a contiguous window kept in the loop state) and writes one row. In skewed
  coordinates the tap at offset `(-a, -b)` sits at row `-(a + b)`, column
  `-b`, so the contributions of all solved pixels are one small VALID
  convolution of the window.

Dilation `d > 1` couples only pixels whose coordinates agree modulo `d`; the
image splits into `d^2` independent undilated problems of size
`ceil(H/d) x ceil(W/d)` (`split_dilation`), so the wavefront takes
`ceil(H/d) + ceil(W/d) - 1` steps.

Both solvers fold the centre tap's inverse `U^-1` (computed once by
`tf.linalg.triangular_solve`, `O(C^3)`) into the right-hand side and the
off-centre taps, so a step is: read, one convolution or gather-matmul,
subtract, store.
"""

import tensorflow as tf

SOLVERS = ("wavefront", "raster")


def reverse_image(x):
  """Reverses rows, columns and channels of `[N, H, W, C]`."""
  return tf.reverse(x, axis=[1, 2, 3])


def reverse_kernel(kernel):
  """Reverses all four axes of an `[m, m, C, C]` kernel."""
  return tf.reverse(kernel, axis=[0, 1, 2, 3])


def quadrant_conv(x, kernel, dilation, top_left=True):
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


def split_dilation(x, dilation):
  """`[N, H, W, C]` -> `[N d^2, ceil(H/d), ceil(W/d), C]`, one image per residue.

  Pads the bottom and right with zeros to multiples of `d`; padding there never
  influences the canonical problem's real pixels.
  """
  if dilation == 1:
    return x
  shape = tf.shape(x)
  n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
  hd, wd = -(-h // dilation), -(-w // dilation)
  x = tf.pad(x, [[0, 0], [0, hd * dilation - h], [0, wd * dilation - w],
                 [0, 0]])
  x = tf.reshape(x, [n, hd, dilation, wd, dilation, c])
  x = tf.transpose(x, [0, 2, 4, 1, 3, 5])
  return tf.reshape(x, [n * dilation * dilation, hd, wd, c])


def merge_dilation(x, dilation, height, width):
  """Inverse of `split_dilation`: back to `[N, height, width, C]`."""
  if dilation == 1:
    return x
  shape = tf.shape(x)
  hd, wd, c = shape[1], shape[2], x.shape[-1]
  n = shape[0] // (dilation * dilation)
  x = tf.reshape(x, [n, dilation, dilation, hd, wd, c])
  x = tf.transpose(x, [0, 3, 1, 4, 2, 5])
  x = tf.reshape(x, [n, hd * dilation, wd * dilation, c])
  return x[:, :height, :width, :]


def skew(x):
  """`[N, H, W, C]` -> `[N, H + W - 1, W, C]` with `s[:, i + j, j] = x[:, i, j]`.

  Entries that no pixel maps to are zero. Pure pad/reshape/transpose.
  """
  shape = tf.shape(x)
  n, h, w, c = shape[0], shape[1], shape[2], x.shape[-1]
  length = h + w - 1
  cols = tf.transpose(x, [0, 2, 1, 3])                       # [N, W, H, C]
  cols = tf.pad(cols, [[0, 0], [0, 0], [0, length + 1 - h], [0, 0]])
  flat = tf.reshape(cols, [n, w * (length + 1), c])[:, :w * length]
  return tf.transpose(tf.reshape(flat, [n, w, length, c]), [0, 2, 1, 3])


def unskew(s, height):
  """Inverse of `skew`: `[N, H + W - 1, W, C]` -> `[N, height, W, C]`."""
  shape = tf.shape(s)
  n, length, w, c = shape[0], shape[1], shape[2], s.shape[-1]
  cols = tf.reshape(tf.transpose(s, [0, 2, 1, 3]), [n, w * length, c])
  cols = tf.pad(cols, [[0, 0], [0, w], [0, 0]])
  cols = tf.reshape(cols, [n, w, length + 1, c])[:, :, :height]
  return tf.transpose(cols, [0, 2, 1, 3])


def _fold_centre_inverse(kernel):
  """Returns `(U^-1, kernel @ U^-1)` for the centre tap `U = K[m-1, m-1]`."""
  m, channels = kernel.shape[0], kernel.shape[-1]
  centre = kernel[m - 1, m - 1]
  centre_inv = tf.linalg.triangular_solve(
      centre, tf.eye(channels, dtype=kernel.dtype), lower=False)
  return centre_inv, tf.einsum("abij,jk->abik", kernel, centre_inv)


def _raster_solve(y, kernel):
  """Canonical undilated solve, one pixel a step (the reference solver)."""
  m, channels = kernel.shape[0], kernel.shape[-1]
  p = m - 1
  centre_inv, folded = _fold_centre_inverse(kernel)
  shape = tf.shape(y)
  n, h, w = shape[0], shape[1], shape[2]
  rhs = tf.reshape(tf.einsum("nhwi,ij->hwnj", y, centre_inv),
                   [h * w, n, channels])
  # Off-centre taps as offsets (a, b) back along rows and columns.
  offsets = [(a, b) for a in range(m) for b in range(m) if a or b]
  if not offsets:
    return y @ centre_inv
  taps = tf.stack([folded[p - a, p - b] for a, b in offsets])  # [T, C, C]
  rows_back = tf.constant([a for a, _ in offsets])
  cols_back = tf.constant([b for _, b in offsets])

  solved = tf.TensorArray(y.dtype, size=h * w, element_shape=[None, channels],
                          clear_after_read=False)
  solved = solved.write(0, rhs[0])

  def body(k, solved):
    i, j = k // w, k % w
    src_i, src_j = i - rows_back, j - cols_back
    valid = (src_i >= 0) & (src_j >= 0)
    index = tf.where(valid, src_i * w + src_j, 0)
    neighbours = solved.gather(index)                          # [T, N, C]
    neighbours *= tf.cast(valid, y.dtype)[:, None, None]
    x_k = rhs[k] - tf.einsum("tni,tij->nj", neighbours, taps)
    return k + 1, solved.write(k, x_k)

  _, solved = tf.while_loop(lambda k, _: k < h * w, body,
                            (tf.constant(1), solved))
  x = tf.reshape(solved.stack(), [h, w, n, channels])
  return tf.transpose(x, [2, 0, 1, 3])


def _wavefront_solve(y, kernel):
  """Canonical undilated solve, one anti-diagonal a step."""
  m, channels = kernel.shape[0], kernel.shape[-1]
  p = m - 1
  centre_inv, folded = _fold_centre_inverse(kernel)
  rhs = y @ centre_inv
  if p == 0:
    return rhs
  shape = tf.shape(y)
  n, h, w = shape[0], shape[1], shape[2]
  length = h + w - 1
  rhs = tf.transpose(skew(rhs), [1, 0, 2, 3])                 # [L, N, W, C]
  # Skewed kernel: the tap at offset (-a, -b) moves to row 2p - (a + b) of a
  # window of the 2p previous anti-diagonals and to column p - b.
  rows = []
  for r in range(2 * p):
    row = []
    for col in range(m):
      b = p - col
      a = 2 * p - r - b
      if 0 <= a <= p and a + b >= 1:
        row.append(folded[p - a, p - b])
      else:
        row.append(tf.zeros([channels, channels], kernel.dtype))
    rows.append(tf.stack(row))
  skewed_kernel = tf.stack(rows)                              # [2p, m, C, C]
  # Row t holds pixels (t - j, j); those with t - j outside [0, H) are padding
  # and must stay zero, since later pixels read them as the image's border.
  t_minus_j = tf.range(length)[:, None] - tf.range(w)[None, :]
  inside = tf.cast((t_minus_j >= 0) & (t_minus_j < h), y.dtype)[..., None]

  def body(t, window, solved):
    contribution = tf.nn.conv2d(window, skewed_kernel, 1, "VALID")[:, 0]
    x_t = (rhs[t] - contribution) * inside[t]                 # [N, W, C]
    new_row = tf.pad(x_t, [[0, 0], [p, 0], [0, 0]])[:, None]
    window = tf.concat([window[:, 1:], new_row], axis=1)
    return t + 1, window, solved.write(t, x_t)

  window = tf.zeros([n, 2 * p, w + p, channels], y.dtype)
  solved = tf.TensorArray(y.dtype, size=length,
                          element_shape=[None, None, channels])
  _, _, solved = tf.while_loop(lambda t, *_: t < length, body,
                               (tf.constant(0), window, solved))
  return unskew(tf.transpose(solved.stack(), [1, 0, 2, 3]), h)


_SOLVE = {"raster": _raster_solve, "wavefront": _wavefront_solve}


def quadrant_solve(y, kernel, dilation, top_left=True, solver="wavefront"):
  """Solves `quadrant_conv(x, kernel, dilation, top_left) = y` for `x`, exactly.

  Args:
    y: `[N, H, W, C]`.
    kernel: `[m, m, C, C]` as in `quadrant_conv`; its centre tap is upper
      (top-left) or lower (bottom-right) triangular in `(in, out)` with a
      nonzero diagonal.
    dilation: Python int.
    top_left: which quadrant.
    solver: `"wavefront"` (`ceil(H/d) + ceil(W/d) - 1` sequential steps) or
      `"raster"` (`H * W` sequential steps).

  Returns:
    `x`, `[N, H, W, C]`.
  """
  if solver not in _SOLVE:
    raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
  if not top_left:
    return reverse_image(
        quadrant_solve(reverse_image(y), reverse_kernel(kernel), dilation,
                       top_left=True, solver=solver))
  shape = tf.shape(y)
  x = _SOLVE[solver](split_dilation(y, dilation), kernel)
  return merge_dilation(x, dilation, shape[1], shape[2])
