"""Checks of the data a model is given: loud, early errors naming the caller.

`FlowModel` (`tfp_emerging.keras.FlowModel`) checks what its methods get
before any work: images must be whole pixel levels in `[0, num_bins)`
(`pixel_levels`), labels integer class ids or floating vectors
(`labels_dtype`), and an input must hold batches (`empty_input_error`).
Each error is a `ValueError` whose message starts with the method called
(`"FlowModel.fit: ..."`).

The range of the pixel levels is known only when the data is: eagerly the
check raises at once; inside a traced step (Keras' `fit`, a `tf.function`)
it is an assertion, whose `InvalidArgumentError` `pixel_level_errors` turns
back into the eager `ValueError`, so that a bad batch reads the same
wherever it is found.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
from typing import Any

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
