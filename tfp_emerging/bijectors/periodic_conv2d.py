"""The invertible periodic convolution: a k x k convolution with wrap-around."""

from __future__ import annotations

import contextlib
import typing

import numpy as np
import tensorflow as tf

from tfp_emerging.bijectors.freezing import FrozenBijector
from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import parameter_table
from tfp_emerging.bijectors.image_bijector import stored_parameter
from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.ops import checks
from tfp_emerging.ops import fourier
from tfp_emerging.ops import initializers

__all__ = ["FORWARD_PATHS", "FrozenPeriodicConv2D", "PeriodicConv2D"]

ForwardPath = typing.Literal["auto", "fft", "spatial"]
FORWARD_PATHS = typing.get_args(ForwardPath)


def _image_size(static_shape, shape):
  """`(H, W)` of events `[..., H, W, C]`: Python ints where `static_shape`
  knows them (the factorisation then takes only the independent
  frequencies: `fourier.independent_frequencies`), else entries of the
  dynamic `shape`."""
  static = [None, None] if static_shape.rank is None else static_shape[-3:-1]
  return tuple(
    shape[axis] if size is None else size
    for axis, size in zip((-3, -2), static)
  )


class PeriodicConv2D(OnePassLogDet, ImageBijector):
  """A `k x k` convolution with periodic boundaries, inverted in Fourier space.

  On events `x` of shape `[H, W, C]`, with `p = (k - 1) // 2`,

      y[i, j] = sum_{a, b = 0..k-1}
                  x[(i + a - p) % H, (j + b - p) % W] @ K[a, b]

  (Hoogeboom et al. 2019, section 3.3; any odd or even `k <= min(H, W)`, any
  `H`, `W`). By the convolution theorem, with `X = DFT_2(x)` per channel,

      Y(u, v) = X(u, v) @ G(u, v),
      G(u, v) = sum_{a,b} K[a, b] exp(2 pi i (u (a-p) / H + v (b-p) / W)),

  one complex `C x C` matrix per frequency (`tfp_emerging.ops.fourier`). The
  DFT is unitary up to a scale that cancels, so

      log|det J| = sum_{u < H, v < W} log|det G(u, v)|,

  computed on the half spectrum of `rfft2d` with each of the `H W` frequencies
  counted exactly once; the real kernel's spectrum is conjugate-symmetric,
  `G(-u, -v) = conj(G(u, v))`, so with `H` and `W` known at trace time only
  its `(H W + s) / 2` independent frequencies (`s <= 4` self-conjugate) are
  factorised (`fourier.independent_frequencies`). One LU factorisation with
  partial pivoting per such frequency
  (`batched_inverse.inverse_and_log_abs_det`: `tf.linalg.lu` without XLA, a
  blocked Gauss-Jordan elimination under XLA, which has no `lu` kernel) gives
  both `log|det G(u, v)|` and `G(u, v)^{-1}`; the inverse is
  `X(u, v) = Y(u, v) G(u, v)^{-1}`, then `irfft2d`: exact, no iteration.

  Parameterisation. `kernel` (`[k, k, C, C]`, HWIO) is free. By default its
  centre tap `K[p, p]` is a random rotation and its other taps are small, so
  the layer starts invertible. As in the paper, invertibility is *not*
  guaranteed by construction: training may drive some `G(u, v)` towards
  singularity. The log-det stays finite and correct while `det G(u, v) != 0`
  (tested down to a smallest singular value of 1e-6 in float64); the
  inverse's round-trip error grows like `cond(J) eps max|x|`, with
  `cond(J) = max sigma_max(G) / min sigma_min(G)` over frequencies and `eps`
  the machine epsilon: measured at most `0.15 cond(J) eps max|x|` for
  `cond(J)` from 2e2 to 2e12 in float64 and 2e1 to 2e5 in float32
  (`test_nearly_singular_kernel` bounds it by `10 cond(J) eps max|x|`).

  Directions and cost (`N` = batch size):

  * forward: by default (`forward_path="auto"`) the cheaper of the spatial
    route, wrap padding and one VALID convolution, `O(N H W k^2 C^2)`, and the
    FFT route, `O(N H W log(H W) C + N H W C^2)` plus `O(H W k C^2)` for the
    kernel's spectrum; `fourier.spatial_is_cheaper` states the rule. Both
    give the same result.
  * inverse: FFTs `O(N H W log(H W) C)`, the per-frequency factorisation
    `O(H W C^3)` (once per call), the products `O(N H W C^2)`.
  * log-det: the kernel's spectrum and the per-frequency factorisation,
    `O(H W k C^2 + H W C^3)`, independent of the batch. The inverse
    keeps its log-det beside TFP's cache (`OnePassLogDet`), so `inverse(y)`
    followed by `inverse_log_det_jacobian(y)`, as in
    `TransformedDistribution.log_prob`, factorises once.

  Linear in `x`: a constant Jacobian (`is_constant_jacobian=True`), so a
  `tfd.TransformedDistribution` through it has a `mean()` and a `mode()`
  (`ImageBijector`).

  Examples:
    >>> import tensorflow as tf
    >>> from tfp_emerging.bijectors import PeriodicConv2D
    >>> layer = PeriodicConv2D(channels=2, kernel_size=4, seed=0)  # even k too
    >>> x = tf.random.stateless_normal([2, 8, 8, 2], seed=[1, 2])
    >>> y = layer.forward(x)
    >>> x_again = layer.inverse(tf.identity(y))  # tf.identity skips TFP's cache
    >>> bool(tf.reduce_max(tf.abs(x_again - x)) < 1e-4)
    True
    >>> layer.forward_log_det_jacobian(x, event_ndims=3).shape
    TensorShape([2])
  """

  def __init__(
    self,
    channels: int,
    kernel_size: int = 3,
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "periodic_conv2d",
    kernel: checks.ParameterLike | None = None,
    forward_path: ForwardPath = "auto",
  ):
    """Creates the layer and, unless given, its kernel variable.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      kernel_size: `k >= 1`, odd or even; events need `H, W >= k`.
      seed: optional int seed for the default initial kernel.
      dtype: `float32` (FFTs in complex64) or `float64` (complex128).
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count or `H, W >= k`
        unknown at trace time is asserted whatever it is:
        `tfp_emerging.ops.checks`), and that a `kernel` variable is.
      name: name scope of the ops and variables.
      kernel: optional initial value (or `tf.Variable`) of shape
        `[k, k, C, C]` (HWIO). Default: a trainable variable whose centre tap
        is a random rotation and whose other taps are drawn from
        `N(0, 0.05^2 / (k^2 C))`.
      forward_path: `"auto"` (the cheaper by `fourier.spatial_is_cheaper`,
        FFT when `H` or `W` is not known at trace time), `"fft"` or
        `"spatial"`.

    Raises:
      ValueError: a bad `channels`, `kernel_size`, `forward_path`, `dtype`, or
        a `kernel` of the wrong shape (one bijector: no batch of them) or,
        given as a value, not finite.
    """
    parameters = dict(locals())
    channels = checks.positive_int(channels, "channels")
    kernel_size = checks.positive_int(kernel_size, "kernel_size")
    dtype = checks.float_dtype(dtype)
    if dtype not in (tf.float32, tf.float64):
      raise ValueError(
        f"`dtype` must be float32 or float64 (the FFTs' real "
        f"types); got {dtype.name}."
      )
    if forward_path not in FORWARD_PATHS:
      raise ValueError(
        f"`forward_path` must be one of {FORWARD_PATHS}; got {forward_path!r}."
      )
    with tf.name_scope(name) as name:
      if kernel is None:
        kernel = tf.Variable(
          self._initial_kernel(channels, kernel_size, seed, dtype),
          name="kernel",
        )
      self._kernel = stored_parameter(
        parameters,
        "kernel",
        kernel,
        [kernel_size, kernel_size, channels, channels],
        dtype,
      )
      self._kernel_size = kernel_size
      self._forward_path = forward_path
      super().__init__(parameters, channels, dtype, name)

  @staticmethod
  def _initial_kernel(channels, kernel_size, seed, dtype):
    """Small random taps around a random rotation at the centre `[p, p]`."""
    p = fourier.kernel_offset(kernel_size)
    taps = initializers.normal(
      [kernel_size, kernel_size, channels, channels],
      0.05 / np.sqrt(kernel_size * kernel_size * channels),
      seed,
      dtype,
    )
    rotation = initializers.random_rotation(
      channels, None if seed is None else seed + 1, dtype
    )
    return tf.tensor_scatter_nd_update(taps, [[p, p]], [rotation])

  @classmethod
  def _parameter_properties(cls, dtype):
    # Unconstrained; its shape depends on `kernel_size`, which the outputs'
    # shape does not give.
    return parameter_table(dict(kernel=(4, None)))

  def _parameter_control_dependencies(self, is_init):
    """`kernel` finite (`checks.parameter_assertions`). Whether each `G(u, v)`
    is invertible depends on the image size: not checked."""
    return self._parameter_checks(is_init, ["kernel"])

  @property
  def kernel_size(self) -> int:
    return self._kernel_size

  @property
  def forward_path(self) -> ForwardPath:
    return self._forward_path

  @property
  def kernel(self) -> tf.Variable | tf.Tensor:
    """The free `[k, k, C, C]` kernel (HWIO); tap `[p, p]` is the centre."""
    return self._kernel

  def frequency_matrices(
    self, height: int | tf.Tensor, width: int | tf.Tensor
  ) -> tf.Tensor:
    """`G(u, v)` on the half spectrum, `[H, W // 2 + 1, C, C]` complex."""
    return fourier.kernel_spectrum(
      tf.convert_to_tensor(self._kernel), height, width
    )

  def _event_assertions(self, z, name):
    """Checks `kernel_size <= H, W`: statically, else a run-time assertion.

    The assertion (whatever `validate_args` is) exists only in graphs traced
    with `H` or `W` unknown; `PeriodicConv2D` needs it there, or a too large
    kernel fails deep inside the FFTs with a raw padding error.
    """
    k = self._kernel_size
    rank = z.shape.rank
    static = z.shape[-3:-1] if rank is not None and rank >= 3 else [None] * 2
    message = (
      f"`kernel_size` ({k}) must be at most the height and width of `{name}`"
    )
    if any(size is not None and size < k for size in static):
      raise ValueError(f"{message}; got shape {z.shape}.")
    if all(size is not None for size in static):
      return []
    return [
      tf.debugging.assert_greater_equal(
        tf.reduce_min(tf.shape(z)[-3:-1]), k, message=f"{message}."
      )
    ]

  def _use_spatial(self, z):
    if self._forward_path != "auto":
      return self._forward_path == "spatial"
    height, width = z.shape[-3], z.shape[-2]
    if height is None or width is None:
      return False
    return fourier.spatial_is_cheaper(
      self._kernel_size, self._channels, height, width
    )

  def _convolve(self, x, kernel):
    """`x` convolved with `kernel` by the forward path (`_use_spatial`)."""
    images, shape = self._as_images(x, "x")
    if self._use_spatial(x):
      y = fourier.circular_conv2d(images, kernel)
    else:
      y = fourier.fft_conv2d(images, kernel)
    return tf.reshape(y, shape)

  def _augmented_forward(self, x):
    # The log-det needs the factorisation the forward does not: computed on
    # demand by `_forward_log_det_jacobian`.
    return self._convolve(x, tf.convert_to_tensor(self._kernel)), {}

  def _augmented_inverse(self, y):
    images, shape = self._as_images(y, "y")
    inverse, log_det = fourier.inverse_spectrum_and_log_abs_det(
      tf.convert_to_tensor(self._kernel), *_image_size(images.shape, shape)
    )
    x = tf.reshape(fourier.spectral_product(images, inverse), shape)
    log_det = tf.fill(shape[:-3], log_det)
    return x, self._log_dets(log_det)

  def _log_det(self, z, name):
    shape = tf.shape(self._checked(z, name))
    log_det = fourier.log_abs_det(
      tf.convert_to_tensor(self._kernel), *_image_size(z.shape, shape)
    )
    return tf.fill(shape[:-3], log_det)

  # The log-det an inverse kept, else a factorisation of its own (no FFTs of
  # the images, no products): not a second inverse.
  def _forward_log_det_jacobian(self, x, **kwargs):
    cached = self._cache.forward_attributes(x, **kwargs)
    return cached["fldj"] if "fldj" in cached else self._log_det(x, "x")

  def _inverse_log_det_jacobian(self, y, **kwargs):
    cached = self._cache.inverse_attributes(y, **kwargs)
    return cached["ildj"] if "ildj" in cached else -self._log_det(y, "y")

  def _frozen(self) -> FrozenPeriodicConv2D:
    """This layer with its weights as they are now, for sampling (`freeze`).

    The kernel is copied now; the inverse spectrum `G(u, v)^{-1}` and the
    log-det, which depend on the image size too, once per size, at first
    use (`FrozenPeriodicConv2D`).
    """
    return FrozenPeriodicConv2D(self)


class FrozenPeriodicConv2D(FrozenBijector):
  """A `PeriodicConv2D` with frozen weights (`PeriodicConv2D._frozen`).

  Holds a copy of the kernel, taken when frozen, and per image size `H x W`
  the inverse spectrum `G(u, v)^{-1}` (`[H, W // 2 + 1, C, C]` complex, and
  its `fourier.real_embedding` for the products without XLA) and
  `log|det J|` from one factorisation
  (`fourier.inverse_spectrum_and_log_abs_det`), computed at the first call
  on that size (eagerly, under `tf.init_scope`, when the layer was frozen
  eagerly; in a graph with `H` or `W` unknown, per call). Then:

  * forward: the layer's, by its `forward_path`, with the copied kernel;
  * inverse: FFTs `O(N H W log(H W) C)` and the per-frequency products
    `O(N H W C^2)`, no factorisation;
  * log-dets: the stored scalar, filled to the batch shape.

  The copies are constants: no gradient reaches the layer's kernel, and a
  later `kernel.assign` changes the layer, not this bijector (freeze again).
  """

  _layer: PeriodicConv2D

  def __init__(self, layer: PeriodicConv2D):
    self._eager = tf.executing_eagerly()
    self._kernel = tf.identity(tf.convert_to_tensor(layer.kernel))
    self._spectra: dict[typing.Any, typing.Any] = {}
    super().__init__(layer)

  def _inverse_spectrum(self, height, width):
    """`(G^{-1} [H, W // 2 + 1, C, C], log|det J|, real embedding of
    G^{-1})`, once per static size."""
    key = (height, width)
    if key in self._spectra:
      return self._spectra[key]
    scope = tf.init_scope() if self._eager else contextlib.nullcontext()
    with scope:
      inverse, log_det = fourier.inverse_spectrum_and_log_abs_det(
        self._kernel, height, width
      )
      entry = inverse, log_det, fourier.real_embedding(inverse)
    if self._eager:  # graph tensors: not reusable by other graphs
      self._spectra[key] = entry
    return entry

  def _sized_spectrum(self, static_shape, shape):
    """`_inverse_spectrum` for events of static shape `static_shape` and
    dynamic shape `shape`: cached when `H` and `W` are static."""
    height, width = _image_size(static_shape, shape)
    if not (isinstance(height, int) and isinstance(width, int)):
      inverse, log_det = fourier.inverse_spectrum_and_log_abs_det(
        self._kernel, height, width
      )
      return inverse, log_det, None
    return self._inverse_spectrum(height, width)

  def _forward(self, x):
    return self._layer._convolve(x, self._kernel)

  def _inverse(self, y):
    images, shape = self._layer._as_images(y, "y")
    inverse, _, embedded = self._sized_spectrum(images.shape, shape)
    x = fourier.spectral_product(images, inverse, embedded)
    return tf.reshape(x, shape)

  def _log_det(self, z, name):
    shape = tf.shape(self._layer._checked(z, name))
    log_det = self._sized_spectrum(z.shape, shape)[1]
    return tf.fill(shape[:-3], log_det)

  def _forward_log_det_jacobian(self, x):
    return self._log_det(x, "x")

  def _inverse_log_det_jacobian(self, y):
    return -self._log_det(y, "y")
