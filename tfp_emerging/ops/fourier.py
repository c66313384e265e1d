"""Fourier helpers for periodic (circular) convolutions, all XLA-compilable.

A `k x k` convolution with periodic boundaries on images `[H, W, C]`,

    y[i, j] = sum_{a, b = 0..k-1} x[(i + a - p) % H, (j + b - p) % W] @ K[a, b],

with `p = (k - 1) // 2` (the tap `K[p, p]` is the centre; even `k` reads one
more pixel after the centre than before it), is a circular convolution
`y = x (*) g` with the embedded filter `g[(p - a) % H, (p - b) % W] = K[a, b]`
(`kernel_spectrum` computes its transform directly from the `k^2` taps). By
the convolution theorem it is one `C x C` complex matrix per frequency
`(u, v)`:

    Y(u, v) = X(u, v) @ G(u, v),    G = DFT_2(g),   X = DFT_2(x),

with `X(u, v)` the row vector of the `C` channels' transforms at `(u, v)`.

Real images have Hermitian spectra, `X(-u, -v) = conj(X(u, v))`, so only the
half spectrum `v = 0 .. floor(W/2)` of `tf.signal.rfft2d` is computed. Its
columns `v = 0` and, for even `W`, `v = W/2` are their own mirror images and
stand for one frequency each; every other column stands for two
(`frequency_weights`). Summed with these weights, each of the `H W`
frequencies is counted exactly once.

A real kernel's spectrum is conjugate-symmetric too, `G(-u, -v) =
conj(G(u, v))`, and conjugation keeps `|det|` and commutes with the inverse.
Within the mirror columns, row `H - u` is the conjugate of row `u`, so when
`H` and `W` are known at trace time only the independent frequencies are
factorised (`independent_frequencies`): the other columns' `H` rows and the
mirror columns' rows `0 .. floor(H/2)`, `(H W + s) / 2` matrices with `s`
(1, 2 or 4) the self-conjugate frequencies, against `H (floor(W/2) + 1)` for
the whole half spectrum; the mirrored inverses are conjugates
(`half_spectrum_from_independent`).

The inverse and the log-determinant share one factorisation per frequency,
`inverse_and_log_abs_det`: `G(u, v)^{-1}` and `log|det G(u, v)|` come out of
one LU factorisation with partial pivoting. Without XLA that is
`tf.linalg.lu` (complex, LAPACK-style, per matrix) and `lu_solve` against the
identity. XLA on CPU has no kernel for `lu`, complex `slogdet` or complex
`inv`, and its batched `qr`, real `inv` and `triangular_solve` of many small
matrices run 10 to 100 times slower than the same ops without XLA (measured:
`qr` of 544 real `96 x 96` matrices 2.8 s, `triangular_solve` 0.28 s); under
XLA the same factorisation is therefore written out as a blocked
Gauss-Jordan elimination (`gauss_jordan`) of elementwise ops and batched
matmuls. Either way the cost is `O(C^3)` per frequency, and the gradients
are implicit (`d log|det G| = Re tr(G^{-1} dG)`, `d G^{-1} = -G^{-1} dG
G^{-1}`): matmuls with the inverse, not a differentiated elimination.
"""

from __future__ import annotations

import math

import tensorflow as tf
from tensorflow_probability.python.internal import implementation_selection

__all__ = [
  "circular_conv2d",
  "fft_conv2d",
  "fft_solve",
  "frequency_weights",
  "gauss_jordan",
  "half_spectrum_from_independent",
  "independent_frequencies",
  "inverse_and_log_abs_det",
  "inverse_spectrum_and_log_abs_det",
  "kernel_offset",
  "kernel_spectrum",
  "log_abs_det",
  "log_abs_dets",
  "real_embedding",
  "spatial_is_cheaper",
  "spectral_product",
]

# Columns eliminated per block of `gauss_jordan`.
GAUSS_JORDAN_BLOCK = 4


def kernel_offset(kernel_size: int) -> int:
  """`p = (k - 1) // 2`: tap `(a, b)` reads pixel `(i + a - p, j + b - p)`."""
  return (kernel_size - 1) // 2


def _phases(size, kernel_size, length, dtype):
  """`exp(2 pi i u (a - p) / size)`, `[length, k]`, for `u < length`, `a < k`.

  The exponent's integer part is reduced modulo `size` before scaling, so the
  angle stays in `[0, 2 pi)` whatever the image size.
  """
  offsets = tf.range(kernel_size) - kernel_offset(kernel_size)
  turns = tf.math.floormod(tf.range(length)[:, None] * offsets[None, :], size)
  angle = tf.cast(turns, dtype) * (2 * math.pi / tf.cast(size, dtype))
  return tf.complex(tf.cos(angle), tf.sin(angle))


def kernel_spectrum(
  kernel: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
) -> tf.Tensor:
  """`G(u, v)`, `[H, W // 2 + 1, C_in, C_out]` complex, on the half spectrum.

  `G(u, v) = sum_{a, b} K[a, b] exp(2 pi i (u (a - p) / H + v (b - p) / W))`
  summed directly over the `k^2` taps, separably (columns, then rows): the
  `rfft2d` of the circular filter `g[(p - a) % H, (p - b) % W] = K[a, b]`
  without building `g`. `height` and `width` may be tensors. Cost
  `O(k H W C_in C_out)`, against `O(C_in C_out H W log(H W))` for FFTs of
  `g`.
  """
  k, _, c_in, c_out = kernel.shape
  taps = tf.reshape(kernel, [k, k, c_in * c_out])
  # tf.complex, not tf.cast: its gradient takes the real part explicitly
  # (the cast's gradient does the same with a warning on every trace).
  complex_kernel = tf.complex(taps, tf.zeros_like(taps))
  rows = _phases(height, k, height, kernel.dtype)
  columns = _phases(width, k, width // 2 + 1, kernel.dtype)
  spectrum = tf.einsum(
    "ua,avx->uvx", rows, tf.einsum("vb,abx->avx", columns, complex_kernel)
  )
  return tf.reshape(
    spectrum, tf.concat([tf.shape(spectrum)[:2], [c_in, c_out]], 0)
  )


def frequency_weights(
  width: int | tf.Tensor, dtype: tf.dtypes.DType
) -> tf.Tensor:
  """How many frequencies each half-spectrum column `v = 0 .. W // 2` stands
  for.

  1 for `v = 0` and, when `W` is even, for the Nyquist column `v = W / 2`;
  2 for every other column (`v` and its mirror `W - v`). The weights times
  `H` sum to `H W` for odd and even `W`.
  """
  v = tf.range(width // 2 + 1)
  single = tf.logical_or(tf.equal(v, 0), tf.equal(2 * v, width))
  return tf.where(single, tf.ones([], dtype), 2 * tf.ones([], dtype))


def gauss_jordan(
  matrices: tf.Tensor, block: int = GAUSS_JORDAN_BLOCK
) -> tuple[tf.Tensor, tf.Tensor]:
  """Inverses and `log|det|` of `[F, C, C]` matrices: blocked Gauss-Jordan.

  Column `k` is eliminated from every other row with the pivot row `r_k`,
  the largest entry of column `k` among the rows not yet used (partial
  pivoting). An elimination `E_k` reads only row `r_k`, so the `b` of one
  block compose to `T = I + W R^T`, `R = [e_{r_1} .. e_{r_b}]`, `W = T R - R`:
  each block eliminates its `b` columns step by step (carrying `T R` along as
  `b` extra columns), then updates all other columns at once with one gather
  of `b` rows and one batched matmul. In place: the eliminated column `k`
  stores column `r_k` of the accumulated `T`, so that at the end
  `G^{-1}[k, :] = T[r_k, :]`. `log|det G| = sum_k log|pivot_k|`.
  `O(C^3)` per matrix in `ceil(C / b)` matmuls and `C` steps of elementwise
  ops, all of which XLA compiles. Singular matrices give infinite
  log-determinants.

  Args:
    matrices: `[F, C, C]`, real or complex, `C` static.
    block: columns per block.

  Returns:
    `(inverses [F, C, C], log_abs_dets [F])`.
  """
  n = matrices.shape[-1]
  real_dtype = matrices.dtype.real_dtype
  work = matrices
  used = tf.zeros(tf.shape(matrices)[:-1], tf.bool)
  log_abs_det = tf.zeros(tf.shape(matrices)[:-2], real_dtype)
  pivot_rows = []
  for start in range(0, n, block):
    stop = min(start + block, n)
    width = stop - start
    # The block's columns, then the columns T e_r of its pivot rows, each
    # starting as e_r (the earlier eliminations leave it alone) at its step.
    panel = tf.concat(
      [work[:, :, start:stop], tf.zeros_like(work[:, :, start:stop])], -1
    )
    rows = []
    for j in range(width):
      column = panel[:, :, j]
      row = tf.argmax(
        tf.where(used, -tf.ones([], real_dtype), tf.abs(column)),
        axis=-1,
        output_type=tf.int32,
      )
      unit = tf.one_hot(row, n, dtype=matrices.dtype)
      used = used | tf.cast(tf.math.real(unit), tf.bool)
      pivot_row = tf.reduce_sum(panel * unit[:, :, None], 1, keepdims=True)
      pivot = pivot_row[:, :, j]
      log_abs_det += tf.math.log(tf.abs(pivot[:, 0]))
      panel += unit[:, :, None] * tf.one_hot(
        width + j, 2 * width, dtype=matrices.dtype
      )
      pivot_row += tf.one_hot(width + j, 2 * width, dtype=matrices.dtype)
      # E x = x - (column - e_r) x[r] / pivot.
      panel -= ((column - unit) / pivot)[:, :, None] * pivot_row
      rows.append(row)
    pivot_rows += rows
    rows = tf.stack(rows, -1)
    t_r = panel[:, :, width:]
    others = tf.concat([work[:, :, :start], work[:, :, stop:]], -1)
    if others.shape[-1]:
      w = t_r - tf.one_hot(rows, n, axis=1, dtype=matrices.dtype)
      others += w @ tf.gather(others, rows, batch_dims=1)
    work = tf.concat([others[:, :, :start], t_r, others[:, :, start:]], -1)
  pivot_rows = tf.stack(pivot_rows, -1)
  # work[:, :, k] = T[:, r_k]: T[:, i] = work[:, :, position of i in r].
  t = tf.gather(work, tf.argsort(pivot_rows, -1), axis=2, batch_dims=1)
  return tf.gather(t, pivot_rows, batch_dims=1), log_abs_det


def _lu_log_abs_det(matrices):
  """`(lower_upper, permutation, log|det|)` from `tf.linalg.lu`."""
  lower_upper, permutation = tf.linalg.lu(matrices)
  log_abs_det = tf.reduce_sum(
    tf.math.log(tf.abs(tf.linalg.diag_part(lower_upper))), -1
  )
  return lower_upper, permutation, log_abs_det


def _lu_inverse(lower_upper, permutation):
  identity = tf.eye(
    lower_upper.shape[-1],
    batch_shape=tf.shape(lower_upper)[:-2],
    dtype=lower_upper.dtype,
  )
  return tf.linalg.lu_solve(lower_upper, permutation, identity)


def _log_abs_det_gradient(inverses, log_abs_dets_bar, dtype):
  """`l_bar G^{-H}`: the gradient of `log|det G|` (TensorFlow's convention)."""
  return tf.cast(log_abs_dets_bar, dtype)[:, None, None] * (
    tf.linalg.adjoint(inverses)
  )


# Annotated as called: tf.custom_gradient returns the body's first item.
@tf.custom_gradient
def log_abs_dets(matrices: tf.Tensor) -> tf.Tensor:
  """`log|det G|` of `[F, C, C]` matrices, one factorisation each.

  As `inverse_and_log_abs_det`, but without XLA the inverse (for the
  gradient, `l_bar G^{-H}`) is computed only when the gradient is: a
  log-det alone costs one LU. Real `[F]`.
  """
  if implementation_selection.is_xla():
    inverses, result = gauss_jordan(matrices)

    def inverse():
      return inverses

  else:
    lower_upper, permutation, result = _lu_log_abs_det(matrices)

    def inverse():
      return _lu_inverse(lower_upper, permutation)

  def gradient(log_abs_dets_bar):
    return _log_abs_det_gradient(inverse(), log_abs_dets_bar, matrices.dtype)

  return result, gradient


@tf.custom_gradient  # Annotated as called, as `log_abs_dets`.
def inverse_and_log_abs_det(matrices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """`(G^{-1}, log|det G|)` of `[F, C, C]` matrices from one factorisation.

  LU with partial pivoting: `tf.linalg.lu` without XLA, `gauss_jordan` under
  `jit_compile=True` (XLA has no `lu` kernel; detected at trace time). `O(C^3)`
  per matrix. Gradients through the inverse `Y = G^{-1}`: with cotangents
  `Y_bar` and `l_bar`, `G_bar = Y^H (l_bar I - Y_bar Y^H)` (TensorFlow's
  convention for complex gradients, as for `tf.linalg.inv` and
  `tf.linalg.slogdet`).

  Args:
    matrices: `[F, C, C]` complex (or real), `C` static.

  Returns:
    `(inverses [F, C, C], log_abs_dets [F])`, the latter real.
  """
  if implementation_selection.is_xla():
    inverses, log_abs_det = gauss_jordan(matrices)
  else:
    lower_upper, permutation, log_abs_det = _lu_log_abs_det(matrices)
    inverses = _lu_inverse(lower_upper, permutation)

  def gradient(inverses_bar, log_abs_dets_bar):
    result = tf.zeros_like(matrices)
    if log_abs_dets_bar is not None:
      result += _log_abs_det_gradient(
        inverses, log_abs_dets_bar, matrices.dtype
      )
    if inverses_bar is not None:
      adjoint = tf.linalg.adjoint(inverses)
      result -= adjoint @ inverses_bar @ adjoint
    return result

  return (inverses, log_abs_det), gradient


def circular_conv2d(images: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """The periodic convolution in the spatial domain: wrap padding + VALID conv.

  `images` `[N, H, W, C_in]`, `kernel` `[k, k, C_in, C_out]`, `k <= H, W`.
  Pads `p` rows/columns taken from the far side before and `k - 1 - p` after,
  then one `tf.nn.conv2d`. Cost `O(N H W k^2 C_in C_out)`.
  """
  k = kernel.shape[0]
  before = kernel_offset(k)
  after = k - 1 - before
  for axis in (1, 2):
    size = tf.shape(images)[axis]
    parts = []
    if before:
      parts.append(tf.gather(images, tf.range(size - before, size), axis=axis))
    parts.append(images)
    if after:
      parts.append(tf.gather(images, tf.range(after), axis=axis))
    images = tf.concat(parts, axis=axis)
  return tf.nn.conv2d(images, kernel, strides=1, padding="VALID")


def _image_spectrum(images):
  """`[N, H, W, C]` real to `[N, C, H, W // 2 + 1]` complex."""
  return tf.signal.rfft2d(tf.transpose(images, [0, 3, 1, 2]))


def _image_from_spectrum(spectrum, height, width):
  """Inverse of `_image_spectrum` for images of size `height x width`."""
  images = tf.signal.irfft2d(spectrum, fft_length=tf.stack([height, width]))
  return tf.transpose(images, [0, 2, 3, 1])


def real_embedding(matrices: tf.Tensor) -> tf.Tensor:
  """Complex `S` `[..., C_in, C_out]` as the real `[..., 2 C_in, 2 C_out]`
  `[[Re S, Im S], [-Im S, Re S]]`: for a complex row `x`,
  `[Re x, Im x] @ it = [Re(x S), Im(x S)]`."""
  re, im = tf.math.real(matrices), tf.math.imag(matrices)
  return tf.concat([tf.concat([re, im], -1), tf.concat([-im, re], -1)], -2)


def _frequency_products(spectrum, matrices, embedded):
  """`X(u, v) @ S(u, v)`: `[N, C_in, H, Wf]` by `[H, Wf, C_in, C_out]`.

  Under XLA one complex einsum. Without it, TensorFlow's complex batched
  matmul is slow on CPU (measured, one thread: the einsum alone as long as
  the 3x3 convolution of the forward at `(64, 32, 32, 48)`), so the product
  runs as one real batched matmul of `[Re X, Im X]` by `real_embedding(S)`
  (`embedded`, if given), the same multiply-adds: the frozen inverse
  measured 0.8x at `C = 48`, unchanged at `C = 12`.
  """
  if implementation_selection.is_xla():
    return tf.einsum("nihw,hwio->nohw", spectrum, matrices)
  if embedded is None:
    embedded = real_embedding(matrices)
  shape = tf.shape(spectrum)
  c_in, c_out = matrices.shape[-2], matrices.shape[-1]
  parts = tf.stack([tf.math.real(spectrum), tf.math.imag(spectrum)], 1)
  rows = tf.transpose(
    tf.reshape(parts, [shape[0], 2 * c_in, shape[2], shape[3]]), [2, 3, 0, 1]
  )
  product = tf.reshape(
    tf.transpose(rows @ embedded, [2, 3, 0, 1]),
    [shape[0], 2, c_out, shape[2], shape[3]],
  )
  return tf.complex(product[:, 0], product[:, 1])


def spectral_product(
  images: tf.Tensor, spectrum: tf.Tensor, embedded: tf.Tensor | None = None
) -> tf.Tensor:
  """`irfft2d(X(u, v) @ S(u, v))`: one `C x C` matrix per frequency.

  `images` `[N, H, W, C_in]`, `spectrum` `[H, W // 2 + 1, C_in, C_out]` (the
  half spectrum of a real filter: `kernel_spectrum` or its per-frequency
  inverse); `embedded`: optionally `real_embedding(spectrum)`, precomputed
  (used without XLA). Cost `O(N H W log(H W) C)` for the FFTs and
  `O(N H W C_in C_out)` for the products.
  """
  shape = tf.shape(images)
  product = _frequency_products(_image_spectrum(images), spectrum, embedded)
  return _image_from_spectrum(product, shape[1], shape[2])


def fft_conv2d(images: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """The periodic convolution through the convolution theorem.

  `Y(u, v) = X(u, v) @ G(u, v)` on the half spectrum, then `irfft2d`.
  `images` `[N, H, W, C_in]`, `kernel` `[k, k, C_in, C_out]`. Cost
  `O(N H W log(H W) C)` for the image FFTs, `O(N H W C_in C_out)` for the
  per-frequency products, `O(H W k C_in C_out)` for the kernel's spectrum.
  """
  shape = tf.shape(images)
  return spectral_product(images, kernel_spectrum(kernel, shape[1], shape[2]))


def _is_static(*sizes):
  return all(isinstance(size, int) for size in sizes)


def _mirror_columns(width):
  """The half spectrum's self-mirrored columns: 0 and, for even `W`, `W/2`."""
  return [0, width // 2] if width % 2 == 0 else [0]


def independent_frequencies(
  spectrum: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """The matrices of a real kernel's half spectrum that need factorising.

  `spectrum` `[H, W // 2 + 1, C, C]` (`kernel_spectrum`). With `H` and `W`
  Python ints: the columns `v` that are not their own mirror, all rows
  (weight 2: `(u, v)` and `(-u, -v)`), then the mirror columns `v = 0` and,
  for even `W`, `v = W/2`, rows `u = 0 .. floor(H/2)` (weight 2, but 1 for
  `u = 0` and, for even `H`, `u = H/2`, their own conjugates). Otherwise the
  whole half spectrum, weighted by `frequency_weights`. Either way
  `sum weights log|det|` over the returned matrices is `log|det J|`.

  Returns:
    `(matrices [F, C, C], weights [F])`, the weights real.
  """
  channels = spectrum.shape[-1]
  real_dtype = spectrum.dtype.real_dtype
  if not _is_static(height, width):
    weights = tf.broadcast_to(
      frequency_weights(width, real_dtype), tf.shape(spectrum)[:2]
    )
    return (
      tf.reshape(spectrum, [-1, channels, channels]),
      tf.reshape(weights, [-1]),
    )
  mirrors = _mirror_columns(width)
  columns = width // 2 + 1 - len(mirrors)
  others = spectrum[:, 1 : 1 + columns]
  rows = height // 2 + 1
  own_conjugates = [0, height // 2] if height % 2 == 0 else [0]
  mirror_weights = [1.0 if u in own_conjugates else 2.0 for u in range(rows)]
  matrices = tf.concat(
    [
      tf.reshape(others, [-1, channels, channels]),
      tf.reshape(
        tf.gather(spectrum[:rows], mirrors, axis=1), [-1, channels, channels]
      ),
    ],
    0,
  )
  weights = [2.0] * (height * columns) + [
    w for w in mirror_weights for _ in mirrors
  ]
  return matrices, tf.constant(weights, real_dtype)


def half_spectrum_from_independent(
  matrices: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """`[H, W // 2 + 1, C, C]` from per-matrix results in the order of
  `independent_frequencies` (e.g. the inverses): the mirror columns' rows
  `u > H/2` are the conjugates of rows `H - u`."""
  channels = matrices.shape[-1]
  if not _is_static(height, width):
    return tf.reshape(matrices, [height, width // 2 + 1, channels, channels])
  mirrors = _mirror_columns(width)
  columns = width // 2 + 1 - len(mirrors)
  rows = height // 2 + 1
  others = tf.reshape(
    matrices[: height * columns], [height, columns, channels, channels]
  )
  top = tf.reshape(
    matrices[height * columns :], [rows, len(mirrors), channels, channels]
  )
  bottom = tf.math.conj(tf.reverse(top[1 : (height + 1) // 2], [0]))
  mirrored = tf.concat([top, bottom], 0)
  return tf.concat([mirrored[:, :1], others, mirrored[:, 1:]], 1)


def inverse_spectrum_and_log_abs_det(
  kernel: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
  """`G(u, v)^{-1}` on the half spectrum and `log|det J|`, one factorisation.

  Returns `([H, W // 2 + 1, C, C] complex, real scalar)`: what the inverse
  and its log-determinant share. Cost `O(H W k C^2)` for the kernel's
  spectrum, `O(H W C^3)` for `inverse_and_log_abs_det` on the independent
  frequencies (about `H W / 2` matrices with `H`, `W` static).
  """
  matrices, weights = independent_frequencies(
    kernel_spectrum(kernel, height, width), height, width
  )
  inverses, log_abs_dets = inverse_and_log_abs_det(matrices)
  return (
    half_spectrum_from_independent(inverses, height, width),
    tf.reduce_sum(weights * log_abs_dets),
  )


def fft_solve(images: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
  """Exact inverse of `fft_conv2d`: `X(u, v) = Y(u, v) @ G(u, v)^{-1}`.

  Cost `O(H W C^3)` for the per-frequency inverses (once per call),
  `O(N H W C^2)` for the products, `O(N H W log(H W) C)` for the FFTs.
  """
  shape = tf.shape(images)
  inverse, _ = inverse_spectrum_and_log_abs_det(kernel, shape[1], shape[2])
  return spectral_product(images, inverse)


def log_abs_det(
  kernel: tf.Tensor, height: int | tf.Tensor, width: int | tf.Tensor
) -> tf.Tensor:
  """`log|det J|` of the periodic convolution on `height x width` images.

  `sum_{u, v} log|det G(u, v)|` over all `H W` frequencies: the
  independent frequencies, weighted (`independent_frequencies`). Cost
  `O(H W k C^2)` for the kernel's spectrum and `O(H W C^3)` for the
  per-frequency factorisations (`log_abs_dets`). Returns a real scalar.
  """
  matrices, weights = independent_frequencies(
    kernel_spectrum(kernel, height, width), height, width
  )
  return tf.reduce_sum(weights * log_abs_dets(matrices))


def spatial_is_cheaper(
  kernel_size: int, channels: int, height: int, width: int
) -> bool:
  """The forward's cost rule: is the spatial convolution cheaper than the FFT?

  Per image and pixel, the spatial route costs `k^2 C^2` multiply-adds; the
  FFT route two real FFTs of `C` channels, about `2 x 2.5 C log2(H W)`, plus
  the half spectrum's complex `C x C` products, about `2 C^2` (the kernel's
  FFT, once per call, is amortised over the batch). Measured with XLA on CPU
  (`N = 16`; `C = 3, 16, 48`; `k = 1..13`), the convolution runs about 8
  times more multiply-adds per second than the FFT route, so spatial wins
  when

      k^2 C^2 <= 8 (2 C^2 + 5 C log2(H W)),  i.e.  k^2 <= 16 + 40 log2(H W) / C.

  E.g. `C = 16` on `32 x 32`: spatial up to `k = 6` (measured crossover
  between 5 and 7); `C = 48` on `16 x 16`: up to `k = 4`; `C = 3` on
  `5 x 6`: up to `k = 9`. Python ints in, a Python bool out (decided at
  trace time).
  """
  return kernel_size**2 <= 16 + 40 * math.log2(height * width) / channels
