"""Argument checks shared by every layer: loud, early `ValueError`s.

Static facts (Python ints, dtypes, statically known shapes) are checked at
construction or trace time and raise `ValueError` naming the argument and what
was expected. Facts known only at run time (dynamic channel counts, finiteness)
become `tf.debugging` assertions when the layer has `validate_args=True`.
"""

import numpy as np
import tensorflow as tf


def positive_int(value, name, minimum=1):
  """Returns `value` as a Python int, or raises `ValueError` if not >= minimum."""
  if isinstance(value, (bool, np.bool_)) or not isinstance(
      value, (int, np.integer)):
    raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
  if value < minimum:
    raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}.")
  return int(value)


def odd_kernel_size(value, name="kernel_size"):
  """Returns an odd positive kernel size, or raises `ValueError`."""
  value = positive_int(value, name)
  if value % 2 != 1:
    raise ValueError(
        f"`{name}` must be odd (the mask is centred on one tap); got {value}.")
  return value


def float_dtype(dtype, name="dtype"):
  """Returns `dtype` as a floating `tf.DType` (float16/32/64, bfloat16)."""
  try:
    dtype = tf.as_dtype(dtype)
  except TypeError as e:
    raise ValueError(f"`{name}` must be a floating dtype; got {dtype!r}.") from e
  if not dtype.is_floating:
    raise ValueError(f"`{name}` must be a floating dtype; got {dtype.name}.")
  return dtype


def image_event(x, channels, dtype, name, validate_args):
  """Checks that `x` is `[..., H, W, channels]` of `dtype`.

  Args:
    x: the `Tensor` given to a bijector.
    channels: the expected size of the last axis.
    dtype: the bijector's dtype.
    name: the argument's name in messages (`"x"` or `"y"`).
    validate_args: whether to add run-time assertions for what is not known
      statically (the channel count, finiteness).

  Returns:
    A list of assertion ops (empty unless `validate_args`).

  Raises:
    ValueError: statically wrong rank, channel count or dtype.
  """
  if x.dtype != dtype:
    raise ValueError(
        f"`{name}` must have dtype {dtype.name}, the bijector's dtype; "
        f"got {x.dtype.name}.")
  rank = x.shape.rank
  if rank is not None and rank < 3:
    raise ValueError(
        f"`{name}` must have rank >= 3, shaped [..., H, W, C]; got shape "
        f"{x.shape}.")
  if rank is not None and x.shape[-1] is not None and x.shape[-1] != channels:
    raise ValueError(
        f"`{name}` must have {channels} channels in its last axis; got shape "
        f"{x.shape}.")
  if not validate_args:
    return []
  return [
      tf.debugging.assert_rank_at_least(
          x, 3, message=f"`{name}` must be shaped [..., H, W, C]."),
      tf.debugging.assert_equal(
          tf.shape(x)[-1], channels,
          message=f"`{name}` must have {channels} channels."),
      tf.debugging.assert_all_finite(
          x, message=f"`{name}` must be finite."),
  ]


def as_images(x, channels, dtype, name, validate_args, assertions=()):
  """Checks `x` (`image_event`) and flattens `[..., H, W, C]` to `[N, H, W, C]`.

  Args:
    x, channels, dtype, name, validate_args: as for `image_event`.
    assertions: further run-time assertions the reshape must wait for.

  Returns:
    `(images, shape)`: `images` `[N, H, W, C]` and `shape`, the dynamic shape
    of `x`, to reshape results back with `tf.reshape(result, shape)`.
  """
  assertions = list(assertions) + image_event(x, channels, dtype, name,
                                              validate_args)
  with tf.control_dependencies(assertions):
    shape = tf.shape(x)
  return tf.reshape(x, tf.concat([[-1], shape[-3:]], axis=0)), shape


def pixelwise_log_det(z, channels, dtype, name, per_pixel):
  """`H W per_pixel` shaped like the batch of `z` `[..., H, W, C]`.

  The log-det of a layer that applies the same map, of log-det `per_pixel`, to
  every pixel (ActNorm, 1x1 convolutions, a masked convolution's triangular
  Jacobian). Checks `z` statically as `image_event` does.
  """
  image_event(z, channels, dtype, name, False)
  shape = tf.shape(z)
  pixels = tf.cast(shape[-3] * shape[-2], dtype)
  return tf.fill(shape[:-3], pixels * per_pixel)


def matrix_shape(value, shape, name):
  """Raises `ValueError` unless the static shape of `value` equals `shape`."""
  static = tuple(tf.TensorShape(getattr(value, "shape", np.shape(value))))
  if static != tuple(shape):
    raise ValueError(f"`{name}` must have shape {list(shape)}; got "
                     f"{list(static)}.")
