"""Fourier helpers for periodic (circular) convolutions, all XLA-compilable.

A `k x k` convolution with periodic boundaries on images `[H, W, C]`,

    y[i, j] = sum_{a, b = 0..k-1} x[(i + a - p) % H, (j + b - p) % W] @ K[a, b],

with `p = (k - 1) // 2` (the tap `K[p, p]` is the centre; even `k` reads one
more pixel after the centre than before it), is a circular convolution
`y = x (*) g` with the embedded filter `g[(p - a) % H, (p - b) % W] = K[a, b]`
(`embed_kernel`). By the convolution theorem it is one `C x C` complex matrix
per frequency `(u, v)`:

    Y(u, v) = X(u, v) @ G(u, v),    G = DFT_2(g),   X = DFT_2(x),

with `X(u, v)` the row vector of the `C` channels' transforms at `(u, v)`.

Real images have Hermitian spectra, `X(-u, -v) = conj(X(u, v))`, so only the
half spectrum `v = 0 .. floor(W/2)` of `tf.signal.rfft2d` is computed. Its
columns `v = 0` and, for even `W`, `v = W/2` are their own mirror images and
stand for one frequency each; every other column stands for two
(`frequency_weights`). Summed with these weights, each of the `H W`
frequencies is counted exactly once.

XLA on CPU has no kernel for complex `slogdet`, `inv` or `lu`. Per frequency a
complex matrix `A + iB` is therefore replaced by its real representation

    M = [[A, -B],
         [B,  A]]     (2C x 2C),   det M = |det(A + iB)|^2,

and `M = QR` (`tf.linalg.qr`, which compiles) gives both the log-determinant,
`log|det(A + iB)| = 1/2 sum_i log|R_ii|`, and the solve, `R z = Q^T b` by
`tf.linalg.triangular_solve`. Cost: `O((2C)^3) = O(8 C^3)` per frequency for
the factorisation, `O(C^2)` per frequency and right-hand side for the solve.
"""

import math

import tensorflow as tf

__all__ = [
    "kernel_offset", "embed_kernel", "kernel_spectrum", "frequency_weights",
    "real_representation", "complex_log_abs_det", "complex_solve",
    "circular_conv2d", "fft_conv2d", "fft_solve", "log_abs_det",
    "spatial_is_cheaper",
]


def kernel_offset(kernel_size):
  """`p = (k - 1) // 2`: tap `(a, b)` reads pixel `(i + a - p, j + b - p)`."""
  return (kernel_size - 1) // 2


def embed_kernel(kernel, height, width):
  """The circular filter `g` `[H, W, C_in, C_out]` of a `[k, k, C_in, C_out]` kernel.

  `g[(p - a) % H, (p - b) % W] = K[a, b]`, zeros elsewhere, so that the
  periodic convolution of the module docstring is the circular convolution
  `y[i, j] = sum_{m, n} x[m, n] @ g[(i - m) % H, (j - n) % W]`. Needs
  `k <= H` and `k <= W`; `height` and `width` may be tensors.

  Built as: flip the kernel in both spatial axes, zero-pad it to `H x W` and
  roll it by `-(k - 1 - p)` in both axes, for any odd or even `k`.
  """
  k = kernel.shape[0]
  shift = -(k - 1 - kernel_offset(k))
  padded = tf.pad(kernel[::-1, ::-1],
                  [[0, height - k], [0, width - k], [0, 0], [0, 0]])
  return tf.roll(padded, shift=[shift, shift], axis=[0, 1])


def kernel_spectrum(kernel, height, width):
  """`G(u, v)`, `[H, W // 2 + 1, C_in, C_out]` complex: rfft2d of `embed_kernel`.

  Cost `O(C^2 H W log(H W))`.
  """
  g = tf.transpose(embed_kernel(kernel, height, width), [2, 3, 0, 1])
  return tf.transpose(tf.signal.rfft2d(g), [2, 3, 0, 1])


def frequency_weights(width, dtype):
  """How many frequencies each half-spectrum column `v = 0 .. W // 2` stands for.

  1 for `v = 0` and, when `W` is even, for the Nyquist column `v = W / 2`;
  2 for every other column (`v` and its mirror `W - v`). The weights times
  `H` sum to `H W` for odd and even `W`.
  """
  v = tf.range(width // 2 + 1)
  single = tf.logical_or(tf.equal(v, 0), tf.equal(2 * v, width))
  return tf.where(single, tf.ones([], dtype), 2 * tf.ones([], dtype))


def real_representation(matrix):
  """`[[A, -B], [B, A]]`, `[..., 2C, 2C]` real, of complex `A + iB` `[..., C, C]`.

  The map `z -> (A + iB) z` on `C^C` is `M [Re z; Im z]` on `R^2C`, and
  `det M = |det(A + iB)|^2`.
  """
  a, b = tf.math.real(matrix), tf.math.imag(matrix)
  return tf.concat([tf.concat([a, -b], axis=-1), tf.concat([b, a], axis=-1)],
                   axis=-2)


def complex_log_abs_det(matrix):
  """`log|det(A + iB)|` of complex `[..., C, C]` matrices, real `[...]`.

  `1/2 sum log|diag R|` of the QR factorisation of `real_representation`:
  `O(8 C^3)` per matrix, no complex `slogdet` (which XLA lacks on CPU).
  """
  _, r = tf.linalg.qr(real_representation(matrix))
  return 0.5 * tf.reduce_sum(
      tf.math.log(tf.abs(tf.linalg.diag_part(r))), axis=-1)


def complex_solve(matrix, rhs):
  """`z` with `matrix @ z = rhs`; complex `[..., C, C]` and `[..., C, K]`.

  Through the real representation: `M = QR`, then `R [Re z; Im z] = Q^T
  [Re b; Im b]` by `triangular_solve`. `O(8 C^3)` per matrix for the
  factorisation plus `O(4 C^2 K)` for the solve. Backward stable: the error
  grows like the condition number of `matrix` times the machine epsilon.
  """
  c = tf.shape(matrix)[-1]
  q, r = tf.linalg.qr(real_representation(matrix))
  stacked = tf.concat([tf.math.real(rhs), tf.math.imag(rhs)], axis=-2)
  z = tf.linalg.triangular_solve(
      r, tf.linalg.matmul(q, stacked, adjoint_a=True), lower=False)
  return tf.complex(z[..., :c, :], z[..., c:, :])


def circular_conv2d(images, kernel):
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


def fft_conv2d(images, kernel):
  """The periodic convolution through the convolution theorem.

  `Y(u, v) = X(u, v) @ G(u, v)` on the half spectrum, then `irfft2d`.
  `images` `[N, H, W, C_in]`, `kernel` `[k, k, C_in, C_out]`. Cost
  `O(N H W log(H W) C)` for the image FFTs, `O(N H W C_in C_out)` for the
  per-frequency products, `O(H W log(H W) C_in C_out)` for the kernel's.
  """
  shape = tf.shape(images)
  spectrum = kernel_spectrum(kernel, shape[1], shape[2])
  product = tf.einsum("nihw,hwio->nohw", _image_spectrum(images), spectrum)
  return _image_from_spectrum(product, shape[1], shape[2])


def fft_solve(images, kernel):
  """Exact inverse of `fft_conv2d`: one complex `C x C` solve per frequency.

  `X(u, v)^T = G(u, v)^{-T} Y(u, v)^T` by `complex_solve`, then `irfft2d`.
  Cost `O(H W C^3)` for the per-frequency factorisations (once per call),
  `O(N H W C^2)` for the solves, `O(N H W log(H W) C)` for the FFTs.
  """
  shape = tf.shape(images)
  spectrum = kernel_spectrum(kernel, shape[1], shape[2])
  rhs = tf.transpose(_image_spectrum(images), [2, 3, 1, 0])  # [H, Wf, C, N]
  solution = complex_solve(tf.linalg.matrix_transpose(spectrum), rhs)
  return _image_from_spectrum(tf.transpose(solution, [3, 2, 0, 1]), shape[1],
                              shape[2])


def log_abs_det(kernel, height, width):
  """`log|det J|` of the periodic convolution on `height x width` images.

  `sum_{u, v} log|det G(u, v)|` over all `H W` frequencies: the half
  spectrum's columns weighted by `frequency_weights`. Cost
  `O(H W log(H W) C^2)` for the kernel's FFT and `O(H W C^3)` for the
  per-frequency QR factorisations. Returns a real scalar.
  """
  per_frequency = complex_log_abs_det(kernel_spectrum(kernel, height, width))
  weights = frequency_weights(width, per_frequency.dtype)
  return tf.reduce_sum(per_frequency * weights)


def spatial_is_cheaper(kernel_size, channels, height, width):
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
