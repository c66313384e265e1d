"""Argument checks shared by every layer: loud, early errors.

Static facts (Python ints, dtypes, statically known shapes) are checked at
construction or trace time and raise `ValueError` naming the argument and what
was expected. Facts known only at run time become `tf.debugging` assertions
(`tf.errors.InvalidArgumentError` naming the argument), which the layer's
computation waits for:

* a rank, channel count (or, in `PeriodicConv2D` and `Glow`, image size) that
  is not known statically is asserted at run time whatever `validate_args`
  is. Such an assertion only appears in graphs traced with that axis unknown
  (e.g. `tf.TensorSpec([None, None, None, None])`), so in normal use, where
  the axis is static, it costs nothing: no op is added;
* finiteness is asserted only when the layer has `validate_args=True`, in
  every direction: `forward`, `inverse` and both log-determinants.

Parameters are checked as TFP's bijectors check theirs, in each layer's
`_parameter_control_dependencies(is_init)` (`parameter_assertions`): a value
known at construction (an array, a constant tensor) that breaks a condition
(a sign not +-1, a permutation that is not one, a zero Householder vector, a
non-finite kernel) raises `ValueError` naming the argument, whatever
`validate_args` is; a `tf.Variable`, which may be assigned later, is asserted
at every call, only with `validate_args=True`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow_probability.python.internal import prefer_static as ps
from tensorflow_probability.python.internal import tensor_util

ParameterLike = tf.Variable | tf.Tensor | npt.ArrayLike
"""A layer's parameter as its constructor takes it: a `tf.Variable`
(trained and kept as given), or a tensor or array-like value (kept
constant)."""


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
  """Returns `value` as a Python int, or raises `ValueError` if not >=
  minimum."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
    value, (int, np.integer)
  ):
    raise ValueError(
      f"`{name}` must be an integer >= {minimum}; got {value!r}."
    )
  if value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}.")
  return int(value)


def temperature(value: Any, name: str = "temperature") -> Any:
  """Returns `value` unchanged if it is a finite number `>= 0` (0: the
  mode), or raises `ValueError`; a tensor is checked when it is eager or a
  constant of the graph and otherwise passed through."""
  known = tf.get_static_value(value) if tf.is_tensor(value) else value
  if known is None:
    return value
  try:
    number = float(known)
  except (TypeError, ValueError):
    number = None
  if number is None or not np.isfinite(number) or number < 0:
    raise ValueError(
      f"`{name}` must be a finite number >= 0 (0 samples the mode); got "
      f"{known!r}."
    )
  return value


def odd_kernel_size(value: Any, name: str = "kernel_size") -> int:
  """Returns an odd positive kernel size, or raises `ValueError`."""
  value = positive_int(value, name)
  if value % 2 != 1:
    raise ValueError(
      f"`{name}` must be odd (the mask is centred on one tap); got {value}."
    )
  return value


def float_dtype(dtype: Any, name: str = "dtype") -> tf.dtypes.DType:
  """Returns `dtype` as a floating `tf.DType` (float16/32/64, bfloat16)."""
  try:
    dtype = tf.as_dtype(dtype)
  except TypeError as e:
    raise ValueError(
      f"`{name}` must be a floating dtype; got {dtype!r}."
    ) from e
  if not dtype.is_floating:
    raise ValueError(f"`{name}` must be a floating dtype; got {dtype.name}.")
  return dtype


def image_event(
  x: tf.Tensor,
  channels: int,
  dtype: tf.dtypes.DType,
  name: str,
  validate_args: bool,
) -> list[tf.Operation]:
  """Checks that `x` is `[..., H, W, channels]` of `dtype`.

  Args:
    x: the `Tensor` given to a bijector.
    channels: the expected size of the last axis.
    dtype: the bijector's dtype.
    name: the argument's name in messages (`"x"` or `"y"`).
    validate_args: whether to assert finiteness at run time.

  Returns:
    A list of assertion ops: the rank and channel count where they are not
    known statically, finiteness if `validate_args`. Empty for a statically
    shaped `x` without `validate_args`.

  Raises:
    ValueError: statically wrong rank, channel count or dtype.
  """
  if x.dtype != dtype:
    raise ValueError(
      f"`{name}` must have dtype {dtype.name}, the bijector's dtype; "
      f"got {x.dtype.name}."
    )
  rank = x.shape.rank
  if rank is not None and rank < 3:
    raise ValueError(
      f"`{name}` must have rank >= 3, shaped [..., H, W, C]; got shape "
      f"{x.shape}."
    )
  if rank is not None and x.shape[-1] is not None and x.shape[-1] != channels:
    raise ValueError(
      f"`{name}` must have {channels} channels in its last axis; got shape "
      f"{x.shape}."
    )
  assertions = []
  if rank is None:
    assertions.append(
      tf.debugging.assert_rank_at_least(
        x, 3, message=f"`{name}` must be shaped [..., H, W, C]."
      )
    )
  if rank is None or x.shape[-1] is None:
    with tf.control_dependencies(assertions):
      assertions.append(
        tf.debugging.assert_equal(
          tf.shape(x)[-1],
          channels,
          message=f"`{name}` must have {channels} channels in its last axis.",
        )
      )
  if validate_args:
    assertions.append(
      tf.debugging.assert_all_finite(x, message=f"`{name}` must be finite.")
    )
  return assertions


def checked(
  x: tf.Tensor,
  channels: int,
  dtype: tf.dtypes.DType,
  name: str,
  validate_args: bool,
  assertions: Sequence[tf.Operation] = (),
) -> tf.Tensor:
  """`x` once `image_event`'s checks and `assertions` have passed.

  Ops that read the result run after the assertions, so a bad input fails
  with the assertion's message, never with an error from deeper inside the
  layer. Without assertions (static shapes, no `validate_args`) returns `x`
  itself: no op is added.
  """
  assertions = list(assertions) + image_event(
    x, channels, dtype, name, validate_args
  )
  if not assertions:
    return x
  with tf.control_dependencies(assertions):
    return tf.identity(x)


def as_images(x: tf.Tensor, channels: int) -> tuple[tf.Tensor, tf.Tensor]:
  """Flattens a checked `x` (`checked`) `[..., H, W, C]` to `[N, H, W, C]`.

  Args:
    x: the `Tensor` given to a bijector, `[..., H, W, C]`, once `checked`.
    channels: the size of its last axis, `C`.

  Returns:
    `(images, shape)`: `images` `[N, H, W, C]`, with `C = channels` static
    even where the channel axis of `x` was not (the checks assert it), and
    `shape`, the dynamic shape of `x`, to reshape results back with
    `tf.reshape(result, shape)`.
  """
  shape = tf.shape(x)
  return tf.reshape(x, [-1, shape[-3], shape[-2], channels]), shape


def pixelwise_log_det(
  z: tf.Tensor,
  channels: int,
  dtype: tf.dtypes.DType,
  name: str,
  per_pixel: tf.Tensor,
  validate_args: bool,
) -> tf.Tensor:
  """`H W per_pixel` shaped like the batch of `z` `[..., H, W, C]`.

  The log-det of a layer that applies the same map, of log-det `per_pixel`, to
  every pixel (ActNorm, 1x1 convolutions, a masked convolution's triangular
  Jacobian). Checks `z` as `checked` does, so that with `validate_args` a
  non-finite `z` fails here as it does in `forward` and `inverse`.
  """
  shape = tf.shape(checked(z, channels, dtype, name, validate_args))
  pixels = tf.cast(shape[-3] * shape[-2], dtype)
  return tf.fill(shape[:-3], pixels * per_pixel)


def matrix_shape(value: Any, shape: Sequence[int], name: str) -> None:
  """Raises `ValueError` unless the static shape of `value` equals `shape`.

  The layers hold one bijector each, not a batch of them (their batch shape
  is `[]`): a `value` of shape `[*batch, *shape]` is refused with a message
  that says so.
  """
  static = tuple(tf.TensorShape(getattr(value, "shape", np.shape(value))))
  if static != tuple(shape):
    batched = len(static) > len(shape) and static[-len(shape) :] == tuple(shape)
    raise ValueError(
      f"`{name}` must have shape {list(shape)}; got {list(static)}"
      + (
        f": a batch {list(static[: -len(shape)])} of parameters, but batches "
        "of bijectors are not supported (make one bijector per member)."
        if batched
        else "."
      )
    )


def _shape(output_shape):
  return ps.convert_to_shape_tensor(output_shape, dtype_hint=np.int32)


def channel_vector_shape(output_shape: Any) -> Any:
  """`[*batch, C]` for outputs `[*batch, H, W, C]`: a per-channel parameter's
  shape, as `ParameterProperties.shape_fn` gives it (lists or tensors)."""
  shape = _shape(output_shape)
  return ps.concat([shape[:-3], shape[-1:]], axis=0)


def channel_matrix_shape(output_shape: Any) -> Any:
  """`[*batch, C, C]` for outputs `[*batch, H, W, C]` (a `shape_fn`)."""
  shape = _shape(output_shape)
  return ps.concat([shape[:-3], shape[-1:], shape[-1:]], axis=0)


def bijector_shape(output_shape: Any) -> Any:
  """`[*batch]` for outputs `[*batch, H, W, C]`: one value per bijector, e.g.
  a flag (a `shape_fn`)."""
  return _shape(output_shape)[:-3]


# A condition on a parameter: `(holds, expected)`, `holds(tensor)` a scalar
# boolean tensor, `expected` what the message says the parameter must be.
Condition = tuple[Any, str]

FINITE: Condition = (
  lambda t: tf.reduce_all(tf.math.is_finite(t)),
  "be finite",
)
SIGNS: Condition = (
  lambda t: tf.reduce_all(tf.equal(tf.abs(t), tf.ones([], t.dtype))),
  "have every entry in {-1, 1}",
)
NONZERO_ROWS: Condition = (
  lambda t: tf.reduce_all(tf.reduce_sum(t * t, axis=-1) > 0),
  "have nonzero rows (each row is a Householder vector v, divided by v v^T)",
)
PERMUTATION: Condition = (
  lambda t: tf.reduce_all(
    tf.equal(tf.sort(t), tf.range(tf.size(t), dtype=t.dtype))
  ),
  "be a permutation of 0, ..., C - 1",
)


def _summary(value: np.ndarray) -> str:
  return np.array2string(np.asarray(value), threshold=12, precision=4)


def parameter_assertions(
  parameters: Iterable[tuple[str, Any, Sequence[Condition]]],
  is_init: bool,
  validate_args: bool,
) -> list[Any]:
  """A layer's `_parameter_control_dependencies`: each parameter's checks.

  TFP's pattern: TFP calls `_parameter_control_dependencies(is_init=True)`
  once, at construction, and with `is_init=False` at every call; a value is
  checked at construction unless it is a variable (`tensor_util.is_ref`),
  which is checked at every call. Here,

  * a value whose contents are known when checked (an array, a Python list,
    an eager or constant tensor) that breaks a condition raises
    `ValueError` naming it, at construction, whatever `validate_args` is;
  * otherwise (a variable, or a symbolic tensor), with `validate_args` each
    condition becomes a `tf.debugging.Assert` (`InvalidArgumentError` naming
    the parameter when it fails), which the call's ops wait for: a variable
    assigned a bad value fails the next call. Without `validate_args`,
    nothing: no op is added.

  Args:
    parameters: `(name, value, conditions)` triples: the constructor
      argument, named in messages; the parameter as the layer holds it
      (`tf.Variable`, tensor, or `None`: skipped); its `Condition`s
      (`FINITE`, `SIGNS`, ...).
    is_init: as TFP passes it.
    validate_args: the layer's.

  Returns:
    A list of assertion ops (empty in eager mode, where they run at once).

  Raises:
    ValueError: a statically known value that breaks a condition.
  """
  assertions: list[Any] = []
  for name, value, conditions in parameters:
    if value is None or is_init == tensor_util.is_ref(value):
      continue
    static = None if tensor_util.is_ref(value) else tf.get_static_value(value)
    if static is not None:
      with tf.init_scope():
        for holds, expected in conditions:
          if not bool(holds(tf.constant(static))):
            raise ValueError(
              f"`{name}` must {expected}; got {_summary(static)}."
            )
    elif validate_args:
      tensor = tf.convert_to_tensor(value)
      assertions.extend(
        tf.debugging.Assert(holds(tensor), [f"`{name}` must {expected}."])
        for holds, expected in conditions
      )
  return [a for a in assertions if a is not None]
