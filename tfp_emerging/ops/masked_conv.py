"""Quadrant-masked convolutions and the emerging pair's single convolution.

The masked convolution. A kernel `K` of shape `[m, m, C, C]` (TensorFlow's
HWIO layout), `p = m - 1`, dilation `d`, acts with the top-left mask as

    y[i, j] = sum_{a, b = 0..p} x[i - a d, j - b d] @ K[p - a, p - b]

with zeros outside the image: pixel `(i, j)` reads only pixels up to `p d`
above and to its left. The centre tap `U = K[p, p]` is upper triangular in
`(in, out)` with a nonzero diagonal, so the Jacobian is triangular in raster
order. The bottom-right mask reads `x[i + a d, j + b d] @ K[a, b]`, centre
`K[0, 0]` lower triangular. Its inverse is a triangular solve
(`tfp_emerging.ops.autoregressive.quadrant_solve`).

An emerging convolution is a top-left convolution followed by a
bottom-right one; `emerging_conv` computes the pair as one dense `k x k`
convolution (`k = 2 m - 1`, `equivalent_kernel`) and an exact correction on
the borders.
"""

from __future__ import annotations

import tensorflow as tf


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


def adjoint_kernel(kernel: tf.Tensor) -> tf.Tensor:
  """The kernel of the transposed masked convolution, opposite quadrant.

  `quadrant_conv(., K, d, top_left)` is linear; its transpose is
  `quadrant_conv(., adjoint_kernel(K), d, not top_left)` with
  `adjoint_kernel(K)[a, b] = K[m - 1 - a, m - 1 - b]^T`: a tap that carries
  pixel `(i - a d, j - b d)` to `(i, j)` carries it back, transposed. The
  centre stays the centre, transposed: upper triangular becomes lower.
  """
  return tf.transpose(tf.reverse(kernel, [0, 1]), [0, 1, 3, 2])


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
