"""The inverse of a frozen masked convolution as a filter: FFT or dense.

With fixed weights the inverse of a masked convolution on `H x W` images is
one causal filter `g` (`inverse_filter`, computed by one float64 wavefront
solve of delta images, `tfp_emerging.ops.triangular_solvers`), applied by
FFT in `O(N C H W log(H W))` with no sequential steps (`apply_filter`), or,
on images of at most `DENSE_INVERSE_PIXELS` pixels, one dense matrix
(`dense_inverse`, `apply_dense_inverse`). Its accuracy is bounded by the
filter's norm (`fft_is_accurate`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_emerging.ops.triangular_solvers import wavefront_solve

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
  return wavefront_solve(
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
  doubling box gives the same `g`: `tests/unit/ops/test_fft_inverse.py`.)

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


def filter_solve(
  y: tf.Tensor, kernel: tf.Tensor, dilation: int, top_left: bool
) -> tf.Tensor:
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
