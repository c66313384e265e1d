"""The emerging convolution: two opposite autoregressive convolutions."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.autoregressive_conv2d import quadrant_size
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import checks

__all__ = ["EmergingConv2D"]


class EmergingConv2D(tfp.bijectors.AutoCompositeTensorBijector):
  """An invertible `k x k` convolution: `y = f_2(f_1(x))` (Hoogeboom et al.
  2019).

  `f_1` is an `AutoregressiveConv2D` with the top-left mask and `f_2` one with
  the bottom-right mask, each on the `m x m` quadrant, `m = (k + 1) / 2`. Their
  composition is one `k x k` convolution whose kernel is

      K[a1 + a2, b1 + b2] = sum K_1[a1, b1] @ K_2[a2, b2]

  (`equivalent_kernel`), so the receptive field is exactly a standard `k x k`
  (dilated) convolution while both factors keep triangular Jacobians.

  Directions and cost (`N` = batch size, events `[H, W, C]`):

  * forward: the two masked convolutions, `O(2 N H W m^2 C^2)`, about the
    `O(N H W k^2 C^2)` of one dense `k x k` convolution for `k = 3`.
  * inverse: the two triangular solves in reverse order (`f_2^-1`, then
    `f_1^-1`), each `ceil(H/d) + ceil(W/d) - 1` sequential steps with the
    wavefront solver, the one `solver="auto"` picks except under XLA for
    images of at most 64 pixels (`AutoregressiveConv2D`).
  * log-det: the sum of the two, `H W sum_c (log_diagonal_1 + log_diagonal_2)`.

  Examples:
    >>> import tensorflow as tf
    >>> from tfp_emerging.bijectors import EmergingConv2D
    >>> layer = EmergingConv2D(channels=3, kernel_size=3, seed=0)
    >>> x = tf.random.stateless_normal([2, 8, 8, 3], seed=[1, 2])
    >>> y = layer.forward(x)
    >>> y.shape
    TensorShape([2, 8, 8, 3])
    >>> layer.equivalent_kernel().shape  # one 3x3 kernel, HWIO
    TensorShape([3, 3, 3, 3])
    >>> x_again = layer.inverse(tf.identity(y))  # tf.identity skips TFP's cache
    >>> bool(tf.reduce_max(tf.abs(x_again - x)) < 1e-4)
    True
  """

  def __init__(
    self,
    channels: int,
    kernel_size: int = 3,
    dilation: int = 1,
    solver: autoregressive.Solver = "auto",
    first: AutoregressiveConv2D | None = None,
    second: AutoregressiveConv2D | None = None,
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "emerging_conv2d",
  ):
    """Creates the two autoregressive convolutions unless given.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      kernel_size: odd `k >= 1`, the side of the equivalent kernel.
      dilation: int `d >= 1`.
      solver: `"auto"` (default), `"wavefront"` or `"raster"`, for both
        inverses.
      first: optional top-left `AutoregressiveConv2D` to use as `f_1`.
      second: optional bottom-right `AutoregressiveConv2D` to use as `f_2`.
      seed: optional int seed for the default initial kernels.
      dtype: floating dtype.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`).
      name: name scope.

    Raises:
      ValueError: bad `channels`, `kernel_size`, `dilation`, `solver`, `dtype`,
        or `first`/`second` that do not match them.
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      if first is None:
        first = AutoregressiveConv2D(
          channels,
          kernel_size,
          order="top_left",
          dilation=dilation,
          solver=solver,
          seed=seed,
          dtype=dtype,
          validate_args=validate_args,
          name="top_left",
        )
      if second is None:
        second = AutoregressiveConv2D(
          channels,
          kernel_size,
          order="bottom_right",
          dilation=dilation,
          solver=solver,
          seed=None if seed is None else seed + 1,
          dtype=dtype,
          validate_args=validate_args,
          name="bottom_right",
        )
    for argument, part, order in (
      ("first", first, "top_left"),
      ("second", second, "bottom_right"),
    ):
      if (
        not isinstance(part, AutoregressiveConv2D)
        or part.order != order
        or (part.channels, part.kernel_size, part.dilation, part.dtype)
        != (channels, kernel_size, dilation, checks.float_dtype(dtype))
      ):
        raise ValueError(
          f"`{argument}` must be an AutoregressiveConv2D with order={order!r}"
          f", channels={channels}, kernel_size={kernel_size}, "
          f"dilation={dilation}, dtype={tf.as_dtype(dtype).name}."
        )
    parameters.update(first=first, second=second)
    self._first = first
    self._second = second
    super().__init__(
      forward_min_event_ndims=3,
      dtype=first.dtype,
      validate_args=validate_args,
      parameters=parameters,
      name=name,
    )

  @classmethod
  def _parameter_properties(cls, dtype):
    return {}

  @property
  def bijectors(self) -> tuple[AutoregressiveConv2D, AutoregressiveConv2D]:
    """`(f_1, f_2)`: the top-left then the bottom-right convolution."""
    return (self._first, self._second)

  @property
  def channels(self) -> int:
    return self._first.channels

  @property
  def kernel_size(self) -> int:
    return self._first.kernel_size

  @property
  def dilation(self) -> int:
    return self._first.dilation

  def equivalent_kernel(self) -> tf.Tensor:
    """The single `[k, k, C, C]` kernel (HWIO) that `forward` applies.

    Away from the borders, `forward(x)` equals
    `tf.nn.convolution(x, equivalent_kernel(), padding="SAME", dilations=d)`.
    Cost `O(m^4 C^3)`.
    """
    m = quadrant_size(self.kernel_size)
    first, second = self._first.masked_kernel(), self._second.masked_kernel()
    total = 0.0
    for a in range(m):
      for b in range(m):
        taps = tf.einsum("xyij,jk->xyik", first, second[a, b])
        total += tf.pad(taps, [[a, m - 1 - a], [b, m - 1 - b], [0, 0], [0, 0]])
    return total

  def _checked(self, z, name):
    """`z` once checked with this layer's `validate_args` (`checks.checked`)."""
    return checks.checked(
      z, self.channels, self.dtype, name, self.validate_args
    )

  def _forward(self, x):
    return self._second.forward(self._first.forward(self._checked(x, "x")))

  def _inverse(self, y):
    return self._first.inverse(self._second.inverse(self._checked(y, "y")))

  def _log_det(self, z, name):
    per_pixel = sum(
      tf.reduce_sum(part.bounded_log_diagonal()) for part in self.bijectors
    )
    return checks.pixelwise_log_det(
      z, self.channels, self.dtype, name, per_pixel, self.validate_args
    )

  def _forward_log_det_jacobian(self, x):
    return self._log_det(x, "x")

  def _inverse_log_det_jacobian(self, y):
    return -self._log_det(y, "y")
