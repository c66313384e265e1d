"""The `conditional_input` of conditional bijectors: checks and one layout.

A conditional bijector takes its condition the way TFP's conditional
bijectors (`tfb.RealNVP`, `tfb.MaskedAutoregressiveFlow`) do, as the keyword
argument `conditional_input` of `forward`, `inverse` and the log-dets, which
`tfd.TransformedDistribution` passes on from
`bijector_kwargs={"conditional_input": c}` and `tfb.Chain` from
`bijector_kwargs={name: {"conditional_input": c}}`.

A flow may hold conditional bijectors anywhere in its `tfb.Chain`s:
`conditional_parts`, `num_classes_of` and `route` find them and address
the labels to each.

Bijectors here flatten their events `[..., H, W, C]` to images
`[N, H, W, C]`; these helpers lay the condition out alongside, as one row
per image, `[N, K]`, after checking that it broadcasts to the events' batch
shape `[...]` without changing it (so one condition may serve the whole
batch). Statically wrong conditions raise `ValueError` naming
`conditional_input`; a wrong size known only at run time fails in
`tf.broadcast_to` (`InvalidArgumentError`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import tensorflow as tf
from tensorflow_probability import bijectors as tfb

__all__ = [
  "check_static_ids",
  "class_vectors",
  "conditional_parts",
  "num_classes_of",
  "require",
  "route",
  "vectors",
]

NAME = "conditional_input"


def require(
  conditional_input: tf.Tensor | npt.ArrayLike | None,
  conditional: bool,
  owner: str,
) -> None:
  """Raises `ValueError` unless `conditional_input` is given iff `conditional`.

  Args:
    conditional_input: what the caller passed (`None` when nothing).
    conditional: whether the bijector takes a condition.
    owner: the bijector's name, for the message.
  """
  if conditional and conditional_input is None:
    raise ValueError(
      f"`{owner}` is conditional: pass `{NAME}` (e.g. "
      f"`forward(z, {NAME}=c)`, or `bijector_kwargs={{'{NAME}': c}}` to a "
      f"TransformedDistribution)."
    )
  if not conditional and conditional_input is not None:
    raise ValueError(
      f"`{owner}` is unconditional and takes no `{NAME}`; build it with a "
      f"condition (e.g. `num_classes`) to condition it."
    )


def _check_broadcasts(shape, batch_shape, what):
  """Raises `ValueError` if static `shape` cannot broadcast to `batch_shape`."""
  if shape.rank is None or batch_shape.rank is None:
    return
  fits = shape.rank <= batch_shape.rank and all(
    s is None or b is None or s in (1, b)
    for s, b in zip(reversed(shape.as_list()), reversed(batch_shape.as_list()))
  )
  if not fits:
    raise ValueError(
      f"`{NAME}` must be {what} whose batch shape broadcasts to the "
      f"events' batch shape {batch_shape} (events [..., H, W, C]); got "
      f"batch shape {shape}."
    )


def vectors(
  conditional_input: tf.Tensor | npt.ArrayLike,
  size: int,
  events: tf.Tensor,
  dtype: tf.dtypes.DType,
  validate_args: bool,
) -> tf.Tensor:
  """Condition vectors `[..., size]` laid out as `[N, size]` rows.

  Args:
    conditional_input: floating `[..., size]`, the leading axes broadcasting
      to the batch shape `[...]` of `events`; cast to `dtype`.
    size: `K`, the vectors' length.
    events: the bijector's input `[..., H, W, C]`.
    dtype: the bijector's floating dtype.
    validate_args: whether to assert finiteness at run time.

  Returns:
    `[N, K]` in `dtype`, `N` the number of events, in their order.

  Raises:
    ValueError: a non-floating dtype, a last axis other than `K`, or a
      batch shape that does not broadcast.
  """
  c = tf.convert_to_tensor(conditional_input, name=NAME)
  if not c.dtype.is_floating:
    raise ValueError(
      f"`{NAME}` must be floating vectors [..., {size}]; got "
      f"dtype {c.dtype.name}."
    )
  if c.shape.rank == 0 or (
    c.shape.rank is not None and c.shape[-1] not in (None, size)
  ):
    raise ValueError(
      f"`{NAME}` must be vectors [..., {size}]; got shape {c.shape}."
    )
  if c.shape.rank is not None:
    _check_broadcasts(c.shape[:-1], events.shape[:-3], f"vectors [..., {size}]")
  c = tf.cast(c, dtype)
  assertions = []
  if validate_args:
    assertions.append(
      tf.debugging.assert_all_finite(c, message=f"`{NAME}` must be finite.")
    )
  with tf.control_dependencies(assertions):
    batch_shape = tf.shape(events)[:-3]
    c = tf.broadcast_to(c, tf.concat([batch_shape, [size]], axis=0))
  return tf.reshape(c, [-1, size])


def check_static_ids(
  ids: tf.Tensor | npt.ArrayLike, num_classes: int, what: str
) -> bool:
  """Checks integer class ids whose values are known now (eager tensors,
  constants) against `0..K-1`; returns whether they were known.

  Raises:
    ValueError: a known id outside `0..K-1`, naming `what`.
  """
  static = tf.get_static_value(ids)
  if static is None:
    return False
  static = np.asarray(static)
  wrong = static[(static < 0) | (static >= num_classes)]
  if wrong.size:
    raise ValueError(
      f"{what} class ids must lie in 0..{num_classes - 1}; "
      f"got {np.unique(wrong).tolist()}."
    )
  return True


def class_vectors(
  conditional_input: tf.Tensor | npt.ArrayLike,
  num_classes: int,
  events: tf.Tensor,
  dtype: tf.dtypes.DType,
  validate_args: bool,
) -> tf.Tensor:
  """Class labels as `[N, K]` rows: one-hot for ids, as given for vectors.

  Args:
    conditional_input: either integer class ids `[...]` in `0..K-1`, or
      floating vectors `[..., K]` (one-hot, or class weights, which mix the
      classes' learned terms linearly); the batch shape `[...]` broadcasts
      to that of `events` (a single label serves a whole batch).
    num_classes: `K`.
    events: the bijector's input `[..., H, W, C]`.
    dtype: the bijector's floating dtype.
    validate_args: as for `vectors`.

  Returns:
    `[N, K]` in `dtype`.

  Raises:
    ValueError: a dtype neither integer nor floating, a statically known id
      outside `0..K-1`, or a shape that does not fit. Ids known only at run
      time are checked by an assertion (`InvalidArgumentError`), always:
      `tf.one_hot` would silently map a wrong id to a zero vector.
  """
  ids = tf.convert_to_tensor(conditional_input, name=NAME)
  if ids.dtype.is_floating:
    return vectors(ids, num_classes, events, dtype, validate_args)
  if not ids.dtype.is_integer:
    raise ValueError(
      f"`{NAME}` must be integer class ids [...] or floating one-hot "
      f"vectors [..., {num_classes}]; got dtype {ids.dtype.name}."
    )
  _check_broadcasts(
    ids.shape,
    events.shape[:-3],
    "integer class ids (pass one-hot vectors as floats)",
  )
  assertions = []
  if not check_static_ids(ids, num_classes, f"`{NAME}`"):
    message = f"`{NAME}` class ids must lie in 0..{num_classes - 1}."
    assertions += [
      tf.debugging.assert_non_negative(ids, message=message),
      tf.debugging.assert_less(
        ids, tf.cast(num_classes, ids.dtype), message=message
      ),
    ]
  with tf.control_dependencies(assertions):
    ids = tf.broadcast_to(ids, tf.shape(events)[:-3])
  return tf.one_hot(tf.reshape(ids, [-1]), num_classes, dtype=dtype)


def conditional_parts(flow: tfb.Bijector) -> list[tfb.Bijector]:
  """The class-conditional parts of `flow` (those with a `num_classes`, such
  as a conditional `Glow`), found through `tfb.Chain`s and `tfb.Invert`."""
  if getattr(flow, "num_classes", None) is not None:
    return [flow]
  if isinstance(flow, tfb.Invert):
    return conditional_parts(flow.bijector)
  if isinstance(flow, tfb.Composition):
    return [
      part
      for bijector in flow.bijectors
      for part in conditional_parts(bijector)
    ]
  return []


def route(
  flow: tfb.Bijector, labels: tf.Tensor | npt.ArrayLike
) -> dict[str, Any]:
  """The keyword arguments of `flow`'s calls that give `labels` to each of
  its class-conditional parts, TFP's way.

  `{"conditional_input": labels}` for a conditional bijector (`flow.forward(
  z, **route(flow, y))`, `dist.log_prob(x, bijector_kwargs=route(flow,
  y))`), routed by bijector name through a `tfb.Chain` (`{name: {...}}`);
  `tfb.Invert` passes them on as they are. `{}` for an unconditional flow.
  """
  if getattr(flow, "num_classes", None) is not None:
    return {NAME: labels}
  if isinstance(flow, tfb.Invert):
    return route(flow.bijector, labels)
  if isinstance(flow, tfb.Composition):
    routed = {
      bijector.name: route(bijector, labels) for bijector in flow.bijectors
    }
    return {name: kwargs for name, kwargs in routed.items() if kwargs}
  return {}


def num_classes_of(flow: tfb.Bijector) -> int | None:
  """`K` of a flow whose conditional parts all take `K` classes, `None` for
  an unconditional flow; `ValueError` for parts that disagree."""
  counts = sorted({part.num_classes for part in conditional_parts(flow)})
  if len(counts) > 1:
    raise ValueError(
      f"The class-conditional parts of the flow must take one "
      f"number of classes; they take {counts}."
    )
  return counts[0] if counts else None
