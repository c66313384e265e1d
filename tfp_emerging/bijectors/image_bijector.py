"""What this package's layers on image events `[..., H, W, C]` share.

`ImageBijector`, the base of every layer: events of rank 3, the channel
count `C`, the input checks and the parameter checks, with TFP's
conventions (`tfb.AutoCompositeTensorBijector`; each layer still takes
`parameters=dict(locals())` in its own `__init__` and declares its own
`_parameter_properties`, built with `parameter_table`). `PixelwiseLogDet`,
for layers whose log-det is the same at every pixel, `stored_parameter`,
for a constructor argument kept as given (a variable) or as a tensor, and
`ImageFlow`, the base of the flows of fixed image shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import tensorflow as tf
from tensorflow_probability import bijectors as tfb
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import tensor_util

from tfp_emerging.ops import checks

__all__ = [
  "ImageBijector",
  "ImageFlow",
  "PixelwiseLogDet",
  "parameter_table",
  "stored_parameter",
]


def parameter_table(
  table: Mapping[str, tuple[int | None, Any]],
  not_preferred: Iterable[str] = (),
  fixed: Iterable[str] = (),
) -> dict[str, parameter_properties.ParameterProperties]:
  """`_parameter_properties` from `{name: (event_ndims, shape_fn)}`.

  Every parameter is an unconstrained real (TFP's default constraining
  bijector, the identity); `shape_fn=None` is
  `parameter_properties.SHAPE_FN_NOT_IMPLEMENTED` (a shape the outputs'
  shape does not give). Names in `not_preferred` are not TFP's pick among
  mutually exclusive parameters (`is_preferred=False`); names in `fixed` are
  discrete or state, which no bijector maps reals onto
  (`BIJECTOR_NOT_IMPLEMENTED`, not preferred either).
  """
  not_preferred, fixed = set(not_preferred), set(fixed)
  properties = {}
  for name, (event_ndims, shape_fn) in table.items():
    extra: dict[str, Any] = {"is_preferred": name not in not_preferred | fixed}
    if name in fixed:
      extra["default_constraining_bijector_fn"] = (
        parameter_properties.BIJECTOR_NOT_IMPLEMENTED
      )
    properties[name] = parameter_properties.ParameterProperties(
      event_ndims=event_ndims,
      shape_fn=shape_fn or parameter_properties.SHAPE_FN_NOT_IMPLEMENTED,
      **extra,
    )
  return properties


def stored_parameter(
  parameters: dict[str, Any],
  name: str,
  value: Any,
  shape: Sequence[int],
  dtype: tf.dtypes.DType,
) -> Any:
  """`value` checked to be of `shape` (`checks.matrix_shape`), recorded in
  the constructor's `parameters` and returned as the layer stores it: a
  variable as it is, anything else as a `dtype` tensor
  (`tensor_util.convert_nonref_to_tensor`)."""
  checks.matrix_shape(value, shape, name)
  parameters[name] = value
  return tensor_util.convert_nonref_to_tensor(value, dtype=dtype, name=name)


class ImageBijector(tfb.AutoCompositeTensorBijector):
  """Base of a layer on events `[H, W, C]` (`forward_min_event_ndims=3`).

  A layer's `__init__` takes `parameters = dict(locals())`, sets what its
  `_parameter_control_dependencies` reads, then calls this `__init__` once
  with `parameters` (whose `validate_args` it takes), the checked
  `channels` and `dtype`, and `name` (the layer's name scope).

  Every layer of this package but the coupling is linear in `x`
  (`is_constant_jacobian=True`, the default here), so its Jacobian is the
  same at every `x` and a `tfd.TransformedDistribution`
  through it (either way round, e.g. `sampling_direction`) has a `mean()`
  and a `mode()`, the layer applied to the base distribution's.

  Inputs are checked by `_checked` and `_as_images` (`checks.checked`,
  `checks.as_images`: `C` channels, the layer's dtype, finite with
  `validate_args`, plus the layer's `_event_assertions`); parameters by
  `_parameter_checks` (`checks.parameter_assertions`).
  """

  def __init__(
    self,
    parameters: dict[str, Any],
    channels: int,
    dtype: tf.dtypes.DType,
    name: str,
    is_constant_jacobian: bool = True,
  ):
    self._channels = channels
    super().__init__(
      forward_min_event_ndims=3,
      is_constant_jacobian=is_constant_jacobian,
      dtype=dtype,
      validate_args=parameters["validate_args"],
      parameters=parameters,
      name=name,
    )

  @property
  def channels(self) -> int:
    """`C`, the channels of the events `[H, W, C]`."""
    return self._channels

  def _event_assertions(self, z: tf.Tensor, name: str) -> list[Any]:
    """The layer's own checks of an input `z` besides `checks.image_event`'s
    (none here)."""
    del z, name
    return []

  def _checked(self, z: tf.Tensor, name: str) -> tf.Tensor:
    """`z` once checked (`checks.checked`)."""
    return checks.checked(
      z,
      self._channels,
      self.dtype,
      name,
      self.validate_args,
      assertions=self._event_assertions(z, name),
    )

  def _as_images(self, z: tf.Tensor, name: str) -> tuple[tf.Tensor, Any]:
    """`(images [N, H, W, C], shape of z)` once checked (`_checked`, then
    `checks.as_images`)."""
    return checks.as_images(self._checked(z, name), self._channels)

  def _parameter_checks(
    self,
    is_init: bool,
    names: Iterable[str],
    conditions: Mapping[str, list[Any]] | None = None,
    validate_args: bool | None = None,
  ) -> list[Any]:
    """`checks.parameter_assertions` of the stored parameters `names`
    (attributes `_<name>`): each under its `conditions` (default: finite),
    with `validate_args` (default: the layer's)."""
    conditions = conditions or {}
    return checks.parameter_assertions(
      [
        (name, getattr(self, "_" + name), conditions.get(name, [checks.FINITE]))
        for name in names
      ],
      is_init,
      self.validate_args if validate_args is None else validate_args,
    )


class PixelwiseLogDet:
  """Log-dets of a layer whose every pixel has the same one.

  `log|det J|` of events `[..., H, W, C]` is `H W p`, shaped like the batch
  (`checks.pixelwise_log_det`, which also checks the input), with `p` the
  subclass's `_per_pixel_log_det(x)`: `x` is the forward direction's input,
  `None` for the inverse's. Put this class first among the bases.
  """

  # What the bijector it is mixed into has.
  channels: Any
  dtype: Any
  validate_args: Any

  def _per_pixel_log_det(self, x: tf.Tensor | None = None) -> tf.Tensor:
    raise NotImplementedError

  def _forward_log_det_jacobian(self, x):
    return checks.pixelwise_log_det(
      x,
      self.channels,
      self.dtype,
      "x",
      self._per_pixel_log_det(x),
      self.validate_args,
    )

  def _inverse_log_det_jacobian(self, y):
    return -checks.pixelwise_log_det(
      y,
      self.channels,
      self.dtype,
      "y",
      self._per_pixel_log_det(),
      self.validate_args,
    )


class ImageFlow(tfb.Bijector):
  """Base of a flow on events of one shape `image_shape` `(H, W, C)`,
  built from parts it creates (`tfp_emerging.flows.Glow`,
  `tfp_emerging.flows.VariationalDequantizer`).

  Its constructor's arguments describe an architecture, not tensors TFP
  could batch or transform: `_parameter_properties` is empty, and the flow
  is a plain `tfb.Bijector`, not a composite tensor. A subclass sets
  `_image_shape` and its parts, then calls this `__init__` once with its
  `parameters`, `dtype` and `name`, and `validate_args` where `parameters`
  has none.
  """

  _image_shape: tuple[int, int, int]

  def __init__(
    self,
    parameters: dict[str, Any],
    dtype: tf.dtypes.DType,
    name: str,
    validate_args: bool | None = None,
  ):
    super().__init__(
      forward_min_event_ndims=3,
      dtype=dtype,
      validate_args=(
        parameters["validate_args"] if validate_args is None else validate_args
      ),
      parameters=parameters,
      name=name,
    )

  @classmethod
  def _parameter_properties(cls, dtype):
    return {}

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """`(H, W, C)`."""
    return self._image_shape
