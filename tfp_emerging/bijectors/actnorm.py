"""Activation normalisation (Glow's actnorm) with data-dependent initialisation."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import tensor_util

from tfp_emerging.ops import checks

__all__ = ["ActNorm"]


class ActNorm(tfp.bijectors.AutoCompositeTensorBijector):
  """A per-channel affine map, `y = (x + bias) * exp(log_scale)` (Kingma 2018).

  On events `[H, W, C]` with `bias` and `log_scale` of shape `[C]`:

      y[i, j, c] = (x[i, j, c] + bias[c]) * exp(log_scale[c])
      log |det dy/dx| = H W sum_c log_scale[c]

  Data-dependent initialisation (`initialize(x)`): `bias = -mean(x)` and
  `log_scale = -log(std(x) + 1e-6)` per channel, over every axis but the
  last, so the layer's output on that batch has zero mean and unit variance
  per channel. `initialize` also sets the non-trainable `initialized` flag,
  a variable that checkpoints carry with the others. Calling the layer before
  `initialize` applies the current values (the identity for the defaults);
  nothing is initialised implicitly by `forward` or `inverse`.

  Directions and cost (`N` = batch size): forward and inverse are one
  elementwise multiply-add, `O(N H W C)`; log-det `O(C)`, shaped like the
  batch.

  #### Example

  ```python
  layer = ActNorm(channels=3)
  x = tf.random.normal([16, 8, 8, 3]) * 4. + 1.
  layer.initialize(x)          # now layer.forward(x) is standardised
  ```
  """

  def __init__(self,
               channels,
               bias=None,
               log_scale=None,
               initialized=None,
               dtype=tf.float32,
               validate_args=False,
               name="actnorm"):
    """Creates the layer and, unless given, its variables.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      bias: optional initial value (or `tf.Variable`) of shape `[C]`.
        Default: a trainable variable of zeros.
      log_scale: optional initial value (or `tf.Variable`) of shape `[C]`.
        Default: a trainable variable of zeros.
      initialized: optional boolean `tf.Variable` (or value), whether the
        data-dependent initialisation has run. Default: a non-trainable
        variable `False`.
      dtype: floating dtype of the variables and events.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`).
      name: name scope of the ops and variables.

    Raises:
      ValueError: bad `channels`, `dtype`, or `bias`/`log_scale` of the wrong
        shape.
    """
    parameters = dict(locals())
    channels = checks.positive_int(channels, "channels")
    dtype = checks.float_dtype(dtype)
    with tf.name_scope(name) as name:
      if bias is None:
        bias = tf.Variable(tf.zeros([channels], dtype), name="bias")
      if log_scale is None:
        log_scale = tf.Variable(tf.zeros([channels], dtype), name="log_scale")
      if initialized is None:
        initialized = tf.Variable(False, trainable=False, name="initialized")
      checks.matrix_shape(bias, [channels], "bias")
      checks.matrix_shape(log_scale, [channels], "log_scale")
      parameters.update(bias=bias, log_scale=log_scale,
                        initialized=initialized)
      self._bias = tensor_util.convert_nonref_to_tensor(
          bias, dtype=dtype, name="bias")
      self._log_scale = tensor_util.convert_nonref_to_tensor(
          log_scale, dtype=dtype, name="log_scale")
      self._initialized = tensor_util.convert_nonref_to_tensor(
          initialized, dtype=tf.bool, name="initialized")
      self._channels = channels
      super().__init__(
          forward_min_event_ndims=3,
          dtype=dtype,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @classmethod
  def _parameter_properties(cls, dtype):
    return dict(
        bias=parameter_properties.ParameterProperties(event_ndims=1),
        log_scale=parameter_properties.ParameterProperties(event_ndims=1),
        initialized=parameter_properties.ParameterProperties(
            event_ndims=0, is_preferred=False))

  @property
  def channels(self):
    return self._channels

  @property
  def bias(self):
    return self._bias

  @property
  def log_scale(self):
    return self._log_scale

  @property
  def initialized(self):
    """Boolean variable: whether `initialize` has run."""
    return self._initialized

  def initialize(self, x):
    """Data-dependent initialisation from a batch `x` of `[..., H, W, C]` inputs.

    Sets `bias = -mean(x)`, `log_scale = -log(std(x) + 1e-6)` per channel
    (moments over every axis but the last) and `initialized = True`. Needs
    `bias`, `log_scale` and `initialized` to be variables. Cost `O(N H W C)`.
    """
    with tf.name_scope(self.name):
      x = tf.convert_to_tensor(x, self.dtype)
      checks.image_event(x, self._channels, self.dtype, "x", False)
      axes = list(range(x.shape.rank - 1))
      mean, variance = tf.nn.moments(x, axes)
      self._bias.assign(-mean)
      self._log_scale.assign(-tf.math.log(tf.sqrt(variance) + 1e-6))
      self._initialized.assign(True)

  def _check(self, x, name):
    return checks.image_event(x, self._channels, self.dtype, name,
                              self.validate_args)

  def _forward(self, x):
    with tf.control_dependencies(self._check(x, "x")):
      return (x + self._bias) * tf.exp(self._log_scale)

  def _inverse(self, y):
    with tf.control_dependencies(self._check(y, "y")):
      return y * tf.exp(-self._log_scale) - self._bias

  def _log_det(self, z, name):
    return checks.pixelwise_log_det(z, self._channels, self.dtype, name,
                                    tf.reduce_sum(self._log_scale),
                                    self.validate_args)

  def _forward_log_det_jacobian(self, x):
    return self._log_det(x, "x")

  def _inverse_log_det_jacobian(self, y):
    return -self._log_det(y, "y")
