"""The emerging convolution: two opposite autoregressive convolutions."""

from __future__ import annotations

import typing

import tensorflow as tf
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal.implementation_selection import (
  is_xla,
)

from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.autoregressive_conv2d import (
  FrozenAutoregressiveConv2D,
)
from tfp_emerging.bijectors.freezing import FrozenLayer
from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import PixelwiseLogDet
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import checks
from tfp_emerging.ops import masked_conv

__all__ = ["FORWARD_PATHS", "EmergingConv2D", "FrozenEmergingConv2D"]

ForwardPath = typing.Literal["auto", "two_convolutions", "equivalent"]
FORWARD_PATHS = typing.get_args(ForwardPath)
# Constructor arguments that both parts share (`EmergingConv2D.copy`): those
# their variables outlive, and those that change the variables' shapes.
_PART_ARGUMENTS = ("dilation", "solver", "validate_args")
_NEW_PART_ARGUMENTS = ("channels", "kernel_size", "dtype")


def equivalent_is_cheaper(
  batch: int | None,
  height: int | None,
  width: int | None,
  channels: int,
  xla: bool,
) -> bool:
  """Is one equivalent-kernel convolution plus its border correction
  (`masked_conv.emerging_conv`) faster than the two masked convolutions?

  Measured on the 2-core CPU (`k = 3`, one run, load 0.6; equivalent / two
  convolutions): 1.61, 1.49, 1.59, 1.51 without XLA and 1.29, 1.23, 1.24,
  1.34 with XLA at `(16, 32, 32, 12)`, `(64, 32, 32, 48)`, `(4, 64, 64, 12)`,
  `(16, 16, 16, 48)`: the nine-tap dense convolution costs as much as the two
  four-tap ones, and the correction's four band convolutions come on top.
  So never, until a device run (`benchmarks/device_check.sh`, which times
  both) shows otherwise; decided at trace time.
  """
  del batch, height, width, channels, xla
  return False


class EmergingConv2D(PixelwiseLogDet, ImageBijector):
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

  Linear in `x`: a constant Jacobian (`is_constant_jacobian=True`), so a
  `tfd.TransformedDistribution` through it has a `mean()` and a `mode()`
  (`ImageBijector`).

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
    forward_path: ForwardPath = "auto",
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
      solver: `"auto"` (default), `"wavefront"`, `"raster"` or `"fft"`, for
        both inverses (`AutoregressiveConv2D`).
      forward_path: `"two_convolutions"` (the masked convolutions one after
        the other), `"equivalent"` (one `k x k` convolution with
        `equivalent_kernel` plus the exact border correction,
        `masked_conv.emerging_conv`; equal to round-off) or `"auto"`
        (default: `equivalent_is_cheaper`, at trace time).
      first: optional top-left `AutoregressiveConv2D` to use as `f_1`.
      second: optional bottom-right `AutoregressiveConv2D` to use as `f_2`.
      seed: optional int seed for the default initial kernels.
      dtype: floating dtype.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`), and
        that both parts' variables are.
      name: name scope.

    Raises:
      ValueError: bad `channels`, `kernel_size`, `dilation`, `solver`, `dtype`,
        or `first`/`second` that do not match them.
    """
    parameters = dict(locals())
    if forward_path not in FORWARD_PATHS:
      raise ValueError(
        f"`forward_path` must be one of {FORWARD_PATHS}; got {forward_path!r}."
      )
    self._forward_path = forward_path
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
        or (
          part.channels,
          part.kernel_size,
          part.dilation,
          part.solver,
          part.dtype,
        )
        != (channels, kernel_size, dilation, solver, checks.float_dtype(dtype))
      ):
        raise ValueError(
          f"`{argument}` must be an AutoregressiveConv2D with order={order!r}"
          f", channels={channels}, kernel_size={kernel_size}, "
          f"dilation={dilation}, solver={solver!r}, "
          f"dtype={tf.as_dtype(dtype).name}."
        )
    parameters.update(first=first, second=second)
    self._first = first
    self._second = second
    super().__init__(parameters, channels, first.dtype, name)

  @classmethod
  def _parameter_properties(cls, dtype):
    # Each part transforms this layer's events: its batch shape (`[]`) is
    # this layer's.
    part = parameter_properties.BatchedComponentProperties(event_ndims=3)
    return dict(first=part, second=part)

  def _parameter_control_dependencies(self, is_init):
    """The parts' parameter checks (`AutoregressiveConv2D`), with either's
    `validate_args` or this layer's: the equivalent-kernel forward and the
    log-det read the parts' kernels without calling the parts."""
    return [
      assertion
      for part in self.bijectors
      for assertion in part._parameter_assertions(
        is_init, self.validate_args or part.validate_args
      )
    ]

  def copy(self, **override_parameters_kwargs) -> EmergingConv2D:
    """This layer built again with some constructor arguments changed.

    TFP's rule, `type(self)(**dict(self.parameters, **overrides))`, with the
    parts rebuilt to match unless `first` or `second` is overridden:
    `dilation`, `solver` and `validate_args` go to copies of both parts,
    which keep their variables (`AutoregressiveConv2D.copy`); a different
    `channels`, `kernel_size` or `dtype` gives new parts with new variables,
    initialised from `seed` (the parts' variables cannot take the new
    shapes). Without overrides, or with only `seed`, `forward_path` or
    `name`, the copy shares this layer's parts.
    """
    overrides = dict(override_parameters_kwargs)
    if not {"first", "second"} & overrides.keys():
      if any(
        key in overrides and overrides[key] != self.parameters[key]
        for key in _NEW_PART_ARGUMENTS
      ):
        return type(self)(
          **dict(self.parameters, **overrides, first=None, second=None)
        )
      shared = {
        key: overrides[key] for key in _PART_ARGUMENTS if key in overrides
      }
      if shared:
        overrides.update(
          first=self._first.copy(**shared), second=self._second.copy(**shared)
        )
    return super().copy(**overrides)

  @property
  def bijectors(self) -> tuple[AutoregressiveConv2D, AutoregressiveConv2D]:
    """`(f_1, f_2)`: the top-left then the bottom-right convolution."""
    return (self._first, self._second)

  @property
  def kernel_size(self) -> int:
    return self._first.kernel_size

  @property
  def dilation(self) -> int:
    return self._first.dilation

  @property
  def forward_path(self) -> ForwardPath:
    return self._forward_path

  def uses_equivalent_kernel(self, x: tf.Tensor) -> bool:
    """Whether `forward(x)` takes the equivalent-kernel path (trace time):
    only for batches `[N, H, W, C]` of static `H`, `W`."""
    if x.shape.rank != 4 or None in x.shape[1:3]:
      return False
    if self._forward_path != "auto":
      return self._forward_path == "equivalent"
    return equivalent_is_cheaper(
      x.shape[0], x.shape[1], x.shape[2], self.channels, is_xla()
    )

  def equivalent_kernel(self) -> tf.Tensor:
    """The single `[k, k, C, C]` kernel (HWIO) that `forward` applies.

    Away from the borders, `forward(x)` equals
    `tf.nn.convolution(x, equivalent_kernel(), padding="SAME", dilations=d)`.
    Cost `O(m^4 C^3)`.
    """
    return masked_conv.equivalent_kernel(
      self._first.masked_kernel(), self._second.masked_kernel()
    )

  def _forward(self, x):
    x = self._checked(x, "x")
    if self.uses_equivalent_kernel(x):
      return masked_conv.emerging_conv(
        x,
        self._first.masked_kernel(),
        self._second.masked_kernel(),
        self.dilation,
      )
    return self._second.forward(self._first.forward(x))

  def _inverse(self, y):
    return self._first.inverse(self._second.inverse(self._checked(y, "y")))

  def _per_pixel_log_det(self, x=None):
    del x
    return sum(part._per_pixel_log_det() for part in self.bijectors)

  def _frozen(self) -> FrozenEmergingConv2D:
    """This layer with its weights as they are now (`freeze`): both parts
    frozen (`FrozenAutoregressiveConv2D`) and the equivalent kernel computed
    once."""
    return FrozenEmergingConv2D(self)


class FrozenEmergingConv2D(FrozenLayer):
  """An `EmergingConv2D` with frozen weights (`EmergingConv2D._frozen`).

  Forward by the layer's `forward_path` with the equivalent kernel computed
  once; inverse through the two frozen parts in reverse order, each by its
  frozen solver (with `solver="fft"` two inverse filters, the crop to the
  image between them).
  """

  def __init__(self, layer: EmergingConv2D):
    first, second = layer.bijectors
    self._parts = (first._frozen(), second._frozen())
    self._kernel = tf.identity(layer.equivalent_kernel())
    super().__init__(layer, sum(part._per_pixel for part in self._parts))

  @property
  def bijectors(
    self,
  ) -> tuple[FrozenAutoregressiveConv2D, FrozenAutoregressiveConv2D]:
    """The two frozen parts, `(f_1, f_2)`."""
    return self._parts

  def _forward(self, x):
    x = self._layer._checked(x, "x")
    first, second = self._parts
    if self._layer.uses_equivalent_kernel(x):
      return masked_conv.emerging_conv(
        x, first._kernel, second._kernel, self._layer.dilation, self._kernel
      )
    return second.forward(first.forward(x))

  def _inverse(self, y):
    first, second = self._parts
    return first.inverse(second.inverse(self._layer._checked(y, "y")))
