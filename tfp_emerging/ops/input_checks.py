"""Checks of the data a model is given: loud, early errors naming the caller.

`FlowModel` (`tfp_emerging.keras.FlowModel`) checks what its methods get
before any work: images must be whole pixel levels in `[0, num_bins)`
(`pixel_levels`), labels integer class ids or floating vectors
(`labels_dtype`) given exactly when the flow is class-conditional
(`labels_given`), images and labels of matching shapes (`batch_shape`),
and an input must hold batches (`empty_input_error`); `keras_input`
applies these to what `fit` and `evaluate` get.
Each error is a `ValueError` whose message starts with the method called
(`"FlowModel.fit: ..."`).

The range of the pixel levels is known only when the data is: eagerly the
check raises at once; inside a traced step (Keras' `fit`, a `tf.function`)
it is an assertion, whose `InvalidArgumentError` `pixel_level_errors` turns
back into the eager `ValueError`, so that a bad batch reads the same
wherever it is found.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
from typing import Any

import numpy as np
import tensorflow as tf

# The words that mark the failed range check of pixel levels (an assert op
# inside a traced step), turned into a `ValueError` by `pixel_level_errors`.
_RANGE_MESSAGE = "images must be whole numbers in [0, "


def _range_message(caller: str, num_bins: int) -> str:
  """The text of `pixel_levels`' error before the values found: names the
  caller, the range `[0, num_bins)` and the usual mistake (images scaled to
  `[0, 1]`)."""
  return (
    f"{caller}: {_RANGE_MESSAGE}{num_bins}) (num_bins={num_bins}; pass "
    f"the pixel levels themselves, not images scaled to [0, 1]); got "
    f"values from"
  )


def _range_error(text: str, low: float, high: float, whole: bool) -> str:
  """The range error's message: `text` (`_range_message`) and the values
  found, the images' minimum `low`, maximum `high` and whether all are
  whole numbers."""
  kind = "" if whole else ", not all whole numbers"
  return f"{text} {low:g} to {high:g}{kind}."


def holds_levels(dtype: tf.dtypes.DType) -> bool:
  """Whether a tensor of `dtype` can hold pixel levels: an integer or
  floating dtype (not bool, not string)."""
  return not dtype.is_bool and (dtype.is_integer or dtype.is_floating)


def pixel_levels(images: Any, num_bins: int, caller: str) -> tf.Tensor:
  """`images` as a tensor, checked to be whole numbers in `[0, num_bins)`.

  Pixel levels `k` of any integer or floating dtype and any shape (no
  images, size 0, pass). Cost: one min, max and round over the batch.
  Eagerly a failure raises `ValueError` at once; inside a traced step the
  check is a `tf.debugging.Assert` that the result waits for, whose
  failure raises `InvalidArgumentError` where the step runs:
  `pixel_level_errors` around the call turns it into the same
  `ValueError`.

  Args:
    images: the pixel levels, e.g. `[B, H, W, C]`.
    num_bins: `B`, the number of levels.
    caller: the method named in messages (`"FlowModel.fit"`).

  Raises:
    ValueError: a dtype that is neither integer nor floating (bool,
      string), or (eagerly) values outside `[0, num_bins)` or not whole,
      the message giving the smallest and largest value found.
  """
  images = tf.convert_to_tensor(images)
  if not holds_levels(images.dtype):
    raise ValueError(
      f"{caller}: images must be integer pixel levels (any "
      f"integer or float dtype); got dtype {images.dtype.name}."
    )
  values = tf.cast(images, tf.float64)
  whole = tf.reduce_all(tf.equal(values, tf.round(values)))
  low = tf.reduce_min(values)
  high = tf.reduce_max(values)
  in_range = tf.logical_or(
    tf.equal(tf.size(values), 0),
    tf.logical_and(whole, tf.logical_and(low >= 0.0, high <= num_bins - 1.0)),
  )
  if tf.executing_eagerly():
    if not bool(in_range):
      raise ValueError(
        _range_error(
          _range_message(caller, num_bins),
          float(low.numpy()),
          float(high.numpy()),
          bool(whole),
        )
      )
    return images
  check = tf.debugging.Assert(
    in_range, [_range_message(caller, num_bins), low, high, whole], summarize=3
  )
  with tf.control_dependencies([check]):
    return tf.identity(images)


@contextlib.contextmanager
def pixel_level_errors() -> Iterator[None]:
  """Re-raises a failed `pixel_levels` assertion as its `ValueError`.

  Around code that runs traced steps (`keras.Model.fit`, a `tf.function`):
  the `InvalidArgumentError` of the assertion is parsed back into the
  caller, values and message that `pixel_levels` gives eagerly; any other
  error passes unchanged.
  """
  try:
    yield
  except tf.errors.InvalidArgumentError as e:
    if _RANGE_MESSAGE not in e.message:
      raise
    start = e.message.rfind("[", 0, e.message.index(_RANGE_MESSAGE)) + 1
    parts = e.message[start:].split("\n")[0].split("] [")
    text = parts[0]
    low, high, whole = (part.strip(" []") for part in parts[1:4])
    raise ValueError(
      _range_error(
        text, float(low), float(high), whole in ("1", "True", "true")
      )
    ) from None


def labels_dtype(dtype: Any, caller: str) -> tf.dtypes.DType:
  """`dtype` (a TF or numpy dtype) as a `tf.DType`, if it is one that class
  labels have: integer class ids or floating (one-hot) vectors.

  Raises:
    ValueError: any other dtype (strings, objects: class names), naming
      `labels` and `caller`.
  """
  dtype = tf.as_dtype(dtype)  # numpy strings and objects: tf.string
  if not (dtype.is_integer or dtype.is_floating):
    raise ValueError(
      f"{caller}: `labels` must be integer class ids (an integer dtype such "
      f"as int32 or int64) or floating one-hot vectors [B, K]; got dtype "
      f"{dtype.name}. Map class names to ids first."
    )
  return dtype


def empty_input_error(caller: str, what: str) -> ValueError:
  """The `ValueError` for an input of no batches, to raise: `what` (`"the
  dataset"`, `"the image array"`) given to `caller` holds nothing to train
  on or evaluate."""
  return ValueError(
    f"{caller}: {what} holds no batches (an empty dataset or array): there "
    f"is nothing to train on or evaluate; check how the data was loaded, "
    f"filtered or split."
  )


def labels_given(num_classes: int | None, given: bool, caller: str) -> None:
  """`ValueError` unless labels are `given` exactly when the flow is
  class-conditional (`num_classes` classes; `None`: unconditional)."""
  if num_classes is None and given:
    raise ValueError(
      f"{caller}: this FlowModel's flow is not class-conditional, so it "
      f"takes no labels (drop them from the batches, or y=); build it from "
      f"e.g. Glow(..., num_classes=K) to condition on them."
    )
  if num_classes is not None and not given:
    raise ValueError(
      f"{caller}: this FlowModel is class-conditional ({num_classes} "
      f"classes) and needs the labels: (images, labels) batches for fit "
      f"and evaluate, labels= for the other methods."
    )


def batch_shape(
  event_shape: Sequence[int],
  images_shape: Any,
  labels_shape: Any,
  caller: str,
) -> None:
  """`ValueError` now, before any tracing, unless images of
  `images_shape` are `[B, *event_shape]` and labels of `labels_shape`
  (`None`: none) hold `B` classes; dimensions not known yet pass."""
  images_shape = tf.TensorShape(images_shape)
  wanted = tf.TensorShape([None, *event_shape])
  if not images_shape.is_compatible_with(wanted):
    raise ValueError(
      f"{caller}: images must have shape [batch, "
      f"{', '.join(map(str, event_shape))}], the flow's event shape "
      f"{list(event_shape)}; got shape {images_shape.as_list()}."
    )
  if labels_shape is None:
    return
  labels_shape = tf.TensorShape(labels_shape)
  if labels_shape.rank is None:
    return
  batch = images_shape[0] if images_shape.rank else None
  if labels_shape.rank == 0 or (
    batch is not None
    and labels_shape[0] is not None
    and labels_shape[0] != batch
  ):
    raise ValueError(
      f"{caller}: `labels` must give one class per image ({batch} "
      f"images of shape {list(event_shape)}); got labels of shape "
      f"{labels_shape.as_list()}."
    )


def keras_input(
  x: Any,
  y: Any,
  num_classes: int | None,
  event_shape: Sequence[int],
  caller: str,
) -> None:
  """Checks what `fit` or `evaluate` gets, before any tracing: integer
  image arrays `x` (and `y` labels) or a dataset of images, `(images,
  labels)` or `(images, labels, sample_weight)` batches.

  `ValueError` for an empty input (a dataset of no batches, an array of no
  images), labels given to an unconditional model or none to a conditional
  one (`labels_given`), labels that are neither integer ids nor floating
  vectors (`labels_dtype`), and what `batch_shape` refuses. Images of
  other kinds (the pipeline's `{LEVELS: k, NOISE: u}` batches) pass the
  shape check.
  """
  if isinstance(x, tf.data.Dataset):
    if int(x.cardinality()) == 0:
      raise empty_input_error(caller, "the dataset")
    spec = x.element_spec
    images = spec[0] if isinstance(spec, tuple) else spec
    labels = spec[1] if isinstance(spec, tuple) and len(spec) > 1 else None
    given = isinstance(labels, tf.TensorSpec)
    labels_given(num_classes, given, caller)
    if given and labels is not None:
      labels_dtype(labels.dtype, caller)
    if isinstance(images, tf.TensorSpec):
      batch_shape(event_shape, images.shape, None, caller)
  elif isinstance(x, (np.ndarray, tf.Tensor)):
    if np.shape(x)[:1] == (0,):
      raise empty_input_error(caller, "the image array")
    labels_given(num_classes, y is not None, caller)
    if y is not None:
      dtype = y.dtype if hasattr(y, "dtype") else np.asarray(y).dtype
      labels_dtype(dtype, caller)
    batch_shape(
      event_shape, np.shape(x), None if y is None else np.shape(y), caller
    )
