"""The autoregressive (quadrant-masked) k x k convolution bijector."""

from __future__ import annotations

import contextlib
import typing
import warnings

import numpy as np
import tensorflow as tf

from tfp_emerging.bijectors.freezing import FrozenLayer
from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import PixelwiseLogDet
from tfp_emerging.bijectors.image_bijector import parameter_table
from tfp_emerging.bijectors.image_bijector import stored_parameter
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import checks
from tfp_emerging.ops import fft_inverse
from tfp_emerging.ops import initializers
from tfp_emerging.ops import masked_conv
from tfp_emerging.ops import triangular_solvers

__all__ = ["ORDERS", "AutoregressiveConv2D", "FrozenAutoregressiveConv2D"]

Order = typing.Literal["top_left", "bottom_right"]
ORDERS = typing.get_args(Order)
LOG_DIAGONAL_BOUND = 15.0


def quadrant_size(kernel_size: int) -> int:
  """Side `m = (k + 1) / 2` of the nonzero quadrant of a masked `k x k`
  kernel."""
  return (kernel_size + 1) // 2


class AutoregressiveConv2D(PixelwiseLogDet, ImageBijector):
  """An invertible `k x k` convolution with a quadrant mask (triangular
  Jacobian).

  For `order="top_left"` and an odd kernel size `k`, with `m = (k + 1) / 2`
  and dilation `d`, on events `x` of shape `[H, W, C]`:

      y[i, j] = sum_{a, b = 0..m-1} x[i - (m-1-a) d, j - (m-1-b) d] @ K[a, b]

  (zeros outside the image). Output pixel `(i, j)` reads only pixels above and
  to its left, and at its own position only input channels `c' <= c`: the
  centre tap `K[m-1, m-1]` is upper triangular in `(in, out)`. Ordering pixels
  in raster order and channels in order, the Jacobian is block lower
  triangular with the centre tap on its diagonal. `order="bottom_right"` is
  the mirror image: pixels below and to the right, centre tap `K[0, 0]` lower
  triangular, reverse raster order. Only the `m x m` quadrant is stored and
  convolved: no multiply is spent on masked zeros.

  Parameterisation. `kernel` (`[m, m, C, C]`) is free; the centre tap uses
  only its strict triangle, and its diagonal is `exp(s)` with
  `s = B tanh(log_diagonal / B)`, `B = LOG_DIAGONAL_BOUND = 15` (`s` is
  `log_diagonal` to within 0.2% for `|log_diagonal| < 1`). The diagonal thus
  stays in `[e^-15, e^15]` for every value of the variables, with a nonzero
  gradient everywhere: no optimiser step can make the layer singular, nor
  underflow `exp` in float32. (Signs are left to the surrounding layers, e.g.
  the 1x1 convolution that precedes it in a flow.)

  Directions and cost (`N` = batch size):

  * forward: one VALID convolution after one-sided padding,
    `O(N H W m^2 C^2)`.
  * inverse: an exact triangular solve by forward substitution
    (`tfp_emerging.ops.autoregressive`): `solver="wavefront"` takes
    `ceil(H/d) + ceil(W/d) - 1` sequential steps, each one matmul of
    `O(N d^2 ceil(H/d) (m^2 - 1) C^2)` over a skewed row of the image
    (padding slots included; about `O(N H (m^2 - 1) C^2)` for `d = 1`),
    `solver="raster"` `H W` steps of `O(N d^2 (m^2 - 1) C^2)`; plus `O(C^3)`
    once for the centre tap's inverse. `solver="auto"` (the default) picks
    one at trace time by `autoregressive.raster_is_cheaper`: the wavefront,
    except under XLA on images of at most 64 pixels. Pure TensorFlow;
    compiles with XLA. Gradients are implicit (one more solve of the
    transposed convolution and one convolution), not taken through the
    solve's steps, so they compile with XLA too.
  * log-det: `H W sum_c s[c]`, `O(C)`, shaped like the batch.

  Linear in `x`: a constant Jacobian (`is_constant_jacobian=True`), so a
  `tfd.TransformedDistribution` through it has a `mean()` and a `mode()`
  (`ImageBijector`).

  Examples:
    >>> import tensorflow as tf
    >>> from tfp_emerging.bijectors import AutoregressiveConv2D
    >>> x = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 2])
    >>> for solver in ("wavefront", "raster"):  # two exact solves
    ...   layer = AutoregressiveConv2D(channels=3, kernel_size=3,
    ...                                solver=solver, seed=0)
    ...   x_again = layer.inverse(tf.identity(layer.forward(x)))
    ...   print(solver, bool(tf.reduce_max(tf.abs(x_again - x)) < 1e-4))
    wavefront True
    raster True
  """

  def __init__(
    self,
    channels: int,
    kernel_size: int = 3,
    order: Order = "top_left",
    dilation: int = 1,
    kernel: checks.ParameterLike | None = None,
    log_diagonal: checks.ParameterLike | None = None,
    solver: autoregressive.Solver = "auto",
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "autoregressive_conv2d",
  ):
    """Creates the layer and, unless given, its trainable variables.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      kernel_size: odd `k >= 1`; the full masked kernel is `k x k`.
      order: `"top_left"` or `"bottom_right"`, the mask's quadrant.
      dilation: int `d >= 1`, spacing of the taps.
      kernel: optional initial value (or `tf.Variable`) of shape
        `[m, m, C, C]`, `m = (k + 1) / 2`. Default: a trainable variable
        drawn from `N(0, 0.05^2 / (m^2 C))`, close to the identity map.
      log_diagonal: optional initial value (or `tf.Variable`) of shape `[C]`.
        Default: a trainable variable of zeros.
      solver: `"auto"` (default), `"wavefront"`, `"raster"` or `"fft"` (the
        inverse filter, `fft_inverse.inverse_filter`, computed per call
        unless frozen: `_frozen`), the inverse's algorithm
        (`autoregressive.SOLVERS`).
      seed: optional int seed for the default initial kernel.
      dtype: floating dtype of the variables and events.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`), and
        that `kernel` and `log_diagonal` variables are.
      name: name scope of the ops and variables.

    Raises:
      ValueError: a bad `channels`, `kernel_size`, `order`, `dilation`,
        `solver`, `dtype`, or a `kernel`/`log_diagonal` of the wrong shape
        (one bijector: no batch of them) or, given as values, not finite.
    """
    parameters = dict(locals())
    channels = checks.positive_int(channels, "channels")
    kernel_size = checks.odd_kernel_size(kernel_size)
    dilation = checks.positive_int(dilation, "dilation")
    dtype = checks.float_dtype(dtype)
    if order not in ORDERS:
      raise ValueError(f"`order` must be one of {ORDERS}; got {order!r}.")
    if solver not in autoregressive.SOLVERS:
      raise ValueError(
        f"`solver` must be one of {autoregressive.SOLVERS}; got {solver!r}."
      )
    m = quadrant_size(kernel_size)
    with tf.name_scope(name) as name:
      if kernel is None:
        kernel = tf.Variable(
          initializers.normal(
            [m, m, channels, channels],
            0.05 / np.sqrt(m * m * channels),
            seed,
            dtype,
          ),
          name="kernel",
        )
      if log_diagonal is None:
        log_diagonal = tf.Variable(
          tf.zeros([channels], dtype), name="log_diagonal"
        )
      self._kernel = stored_parameter(
        parameters, "kernel", kernel, [m, m, channels, channels], dtype
      )
      self._log_diagonal = stored_parameter(
        parameters, "log_diagonal", log_diagonal, [channels], dtype
      )
      self._kernel_size = kernel_size
      self._order = order
      self._dilation = dilation
      self._solver = solver
      centre = np.zeros([m, m, channels, channels], dtype.as_numpy_dtype)
      centre_index = m - 1 if order == "top_left" else 0
      centre[centre_index, centre_index] = 1.0
      strict = (np.triu if order == "top_left" else np.tril)(
        np.ones([channels, channels]), 1 if order == "top_left" else -1
      )
      self._mask = 1.0 - centre
      self._mask[centre_index, centre_index] = strict
      self._centre_selector = centre
      super().__init__(parameters, channels, dtype, name)

  @classmethod
  def _parameter_properties(cls, dtype):
    # Both unconstrained: the centre tap's strict triangle and diagonal come
    # from them through a mask and a bound (`masked_kernel`). The kernel's
    # shape depends on `kernel_size`, which the outputs' shape does not give.
    return parameter_table(
      dict(kernel=(4, None), log_diagonal=(1, checks.channel_vector_shape))
    )

  def _parameter_control_dependencies(self, is_init):
    return self._parameter_assertions(is_init, self.validate_args)

  def _parameter_assertions(self, is_init, validate_args):
    """`kernel` and `log_diagonal` finite (`checks.parameter_assertions`).

    That is all invertibility needs: the centre tap's diagonal, `exp` of a
    bounded `log_diagonal`, is never zero.
    """
    return self._parameter_checks(
      is_init, ("kernel", "log_diagonal"), validate_args=validate_args
    )

  @property
  def kernel_size(self) -> int:
    return self._kernel_size

  @property
  def order(self) -> Order:
    return self._order

  @property
  def dilation(self) -> int:
    return self._dilation

  @property
  def solver(self) -> autoregressive.Solver:
    return self._solver

  @property
  def kernel(self) -> tf.Variable | tf.Tensor:
    """The free kernel variable, `[m, m, C, C]` (masked by `masked_kernel`)."""
    return self._kernel

  @property
  def log_diagonal(self) -> tf.Variable | tf.Tensor:
    """The free variable behind the centre tap's diagonal, `[C]`."""
    return self._log_diagonal

  def bounded_log_diagonal(self) -> tf.Tensor:
    """`s = B tanh(log_diagonal / B)`: the centre tap's diagonal is `exp(s)`."""
    return LOG_DIAGONAL_BOUND * tf.tanh(
      tf.convert_to_tensor(self._log_diagonal) / LOG_DIAGONAL_BOUND
    )

  def masked_kernel(self) -> tf.Tensor:
    """The `[m, m, C, C]` quadrant kernel the layer convolves with.

    Off-centre taps are `kernel`'s; the centre tap is `kernel`'s strict
    triangle plus `diag(exp(bounded_log_diagonal()))`.
    """
    diagonal = tf.linalg.diag(tf.exp(self.bounded_log_diagonal()))
    return (
      tf.convert_to_tensor(self._kernel) * self._mask
      + self._centre_selector * diagonal
    )

  def full_kernel(self) -> tf.Tensor:
    """The layer as a centred `k x k` kernel (masked taps as zeros), HWIO.

    Away from the image's borders `forward(x)` equals
    `tf.nn.convolution(x, full_kernel(), padding="SAME", dilations=d)`.
    """
    k, m = self._kernel_size, quadrant_size(self._kernel_size)
    before = 0 if self._order == "top_left" else m - 1
    return tf.pad(
      self.masked_kernel(),
      [[before, k - m - before], [before, k - m - before], [0, 0], [0, 0]],
    )

  def _convolve(self, x, kernel):
    """`x` convolved with the masked quadrant `kernel` (`quadrant_conv`)."""
    images, shape = self._as_images(x, "x")
    y = masked_conv.quadrant_conv(
      images, kernel, self._dilation, top_left=self._order == "top_left"
    )
    return tf.reshape(y, shape)

  def _forward(self, x):
    return self._convolve(x, self.masked_kernel())

  def _inverse(self, y):
    images, shape = self._as_images(y, "y")
    x = autoregressive.quadrant_solve(
      images,
      self.masked_kernel(),
      self._dilation,
      top_left=self._order == "top_left",
      solver=self._solver,
    )
    return tf.reshape(x, shape)

  def _per_pixel_log_det(self, x=None):
    del x
    return tf.reduce_sum(self.bounded_log_diagonal())

  def _frozen(self) -> FrozenAutoregressiveConv2D:
    """This layer with its weights as they are now, for sampling (`freeze`).

    The masked kernel, the centre's inverse and the folded taps are computed
    once, here; the FFT solver's inverse filter (or dense inverse) once per
    image size, at first use.
    """
    return FrozenAutoregressiveConv2D(self)


class FrozenAutoregressiveConv2D(FrozenLayer):
  """An `AutoregressiveConv2D` with frozen weights: same maps, less work.

  Holds, as tensors, the masked kernel, `triangular_solvers.wavefront_operands`
  and the log-det per pixel, computed when frozen. The inverse:

  * `solver="wavefront"`/`"raster"`: the layer's solve on the frozen
    operands (the wavefront skips folding the taps each call);
  * `solver="fft"`: the inverse filter `g` (float64), or for images of at
    most `fft_inverse.DENSE_INVERSE_PIXELS` pixels the dense inverse,
    computed once per image size (eagerly, under `tf.init_scope`, when the
    layer was frozen eagerly) and applied in one FFT convolution or matmul;
  * `solver="auto"`: the dense inverse on small images, the FFT on GPU/TPU
    (`fft_inverse.on_accelerator`), in both cases only while
    `kappa eps <= fft_inverse.FFT_ERROR_BOUND` (`fft_is_accurate`);
    otherwise the layer's own `"auto"` solve, with one warning when `g` is
    what ruled the FFT out.
  """

  def __init__(self, layer: AutoregressiveConv2D):
    self._layer = layer
    self._eager = tf.executing_eagerly()
    self._kernel = tf.identity(layer.masked_kernel())
    self._top_left = layer.order == "top_left"
    self._operands = triangular_solvers.wavefront_operands(
      self._kernel, self._top_left
    )
    self._filters: dict[typing.Any, typing.Any] = {}
    self._warned = False
    super().__init__(layer, tf.reduce_sum(layer.bounded_log_diagonal()))

  def _filter(self, height, width):
    """`(kind, operand, kappa)` for `H x W` images, computed once each."""
    key = (height, width)
    if key not in self._filters:
      args = (self._kernel, self._layer.dilation, self._top_left)
      with tf.init_scope() if self._eager else contextlib.nullcontext():
        g, kappa = fft_inverse.inverse_filter(*args, height, width)
        if height * width <= fft_inverse.DENSE_INVERSE_PIXELS:
          entry = ("dense", fft_inverse.dense_inverse(*args, height, width))
        else:
          entry = ("fft", fft_inverse.filter_spectrum(g, self.dtype))
      if not self._eager:  # graph tensors: not reusable by other graphs
        return (*entry, kappa)
      self._filters[key] = (*entry, kappa)
    return self._filters[key]

  def _uses_filter(self, height, width):
    """Whether the inverse applies the filter (see the class docstring)."""
    solver = self._layer.solver
    if solver == "fft":
      return True
    if solver != "auto" or height is None or width is None:
      return False
    small = height * width <= fft_inverse.DENSE_INVERSE_PIXELS
    if not (small or fft_inverse.on_accelerator()):
      return False
    kappa = self._filter(height, width)[2]
    if not self._eager or tf.is_symbolic_tensor(kappa):
      return False
    if fft_inverse.fft_is_accurate(kappa.numpy(), self.dtype):
      return True
    if not self._warned:
      self._warned = True
      warnings.warn(
        f"{self.name}: the inverse filter grows (kappa = "
        f"{float(kappa.numpy()):.3g}); inverting with the sequential solve.",
        stacklevel=2,
      )
    return False

  def _forward(self, x):
    return self._layer._convolve(x, self._kernel)

  def _inverse(self, y):
    images, shape = self._layer._as_images(y, "y")
    height, width = images.shape[1], images.shape[2]
    if self._uses_filter(height, width):
      kind, operand, _ = self._filter(height, width)
      if kind == "dense":
        x = fft_inverse.apply_dense_inverse(images, operand)
      else:
        x = fft_inverse.apply_filter(images, operand, self._top_left)
    else:
      solver = autoregressive.choose_solver(
        self._layer.solver, images, self._kernel, self._layer.dilation
      )
      if solver == "wavefront":
        x = triangular_solvers.wavefront_solve(
          images,
          self._kernel,
          self._layer.dilation,
          self._top_left,
          self._operands,
        )
      else:
        x = autoregressive.quadrant_solve(
          images, self._kernel, self._layer.dilation, self._top_left, solver
        )
    return tf.reshape(x, shape)
