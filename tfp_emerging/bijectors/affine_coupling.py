"""Glow's affine coupling layer with its small convolutional network."""

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import tensor_util

from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.ops import checks
from tfp_emerging.ops import initializers

__all__ = ["AffineCoupling"]

# Glow's scale is sigmoid(h + SCALE_OFFSET): about 0.88 when the last layer
# is zero, strictly inside (0, 1), so the layer only ever contracts `x_b`.
SCALE_OFFSET = 2.


def _policy_compute_dtype(dtype):
  """The Keras global policy's compute dtype if it is mixed over `dtype`."""
  policy = tf.keras.mixed_precision.global_policy()
  if policy.variable_dtype == dtype.name:
    return tf.as_dtype(policy.compute_dtype)
  return dtype


class AffineCoupling(OnePassLogDet,
                     tfp.bijectors.AutoCompositeTensorBijector):
  """Affine coupling: `y_b = (x_b + t(x_a)) * sigmoid(h(x_a) + 2)` (Glow).

  The `C` channels of the events `[H, W, C]` split into `x_a` (the first
  `C_a = C // 2`) and `x_b` (the other `C_b = C - C_a`). A network `NN` of
  three convolutions reads `x_a`:

      g_1 = relu(conv_{k x k}(x_a; W_1) + b_1)             [H, W, F]
      g_2 = relu(conv_{1 x 1}(g_1; W_2) + b_2)             [H, W, F]
      [t, h] = conv_{k x k}(g_2; W_3) + b_3                [H, W, 2 C_b]

  (`SAME` padding; `t` is channels `0::2` of the output, `h` channels `1::2`)
  and

      y_a = x_a,   y_b = (x_b + t) * s,   s = sigmoid(h + 2),
      log |det dy/dx| = sum_{i, j, c} log s[i, j, c].

  `W_3` and `b_3` start at zero (Glow), so a new layer is the map
  `y_b = sigmoid(2) x_b`, and `W_1`, `W_2` start as `N(0, 0.05^2)`. The
  scale lies in `(0, 1)` for every value of the variables, which keeps deep
  stacks from blowing up early in training.

  Directions and cost (`N` = batch size, `F` = hidden channels): forward,
  inverse and log-det each cost one pass of `NN`,
  `O(N H W F (k^2 C_a + F + 2 k^2 C_b))`; the inverse is
  `x_b = y_b / s - t`, no solve. `forward` (or `inverse`) also puts the
  log-det into TFP's bijector cache, so `forward` followed by
  `forward_log_det_jacobian` of the same tensor runs `NN` once.

  #### Example

  ```python
  layer = AffineCoupling(channels=4, hidden_channels=32)
  y = layer.forward(tf.random.normal([8, 16, 16, 4]))
  ```
  """

  def __init__(self,
               channels,
               hidden_channels=512,
               kernel_size=3,
               hidden_kernel=None,
               hidden_bias=None,
               middle_kernel=None,
               middle_bias=None,
               output_kernel=None,
               output_bias=None,
               seed=None,
               dtype=tf.float32,
               compute_dtype=None,
               validate_args=False,
               name="affine_coupling"):
    """Creates the layer and, unless given, its network's variables.

    Args:
      channels: number of channels `C >= 2` of the events `[H, W, C]`.
      hidden_channels: `F >= 1`, the width of the network.
      kernel_size: odd `k >= 1`, the first and last convolutions' size.
      hidden_kernel: optional `W_1`, `[k, k, C_a, F]` (value or variable).
      hidden_bias: optional `b_1`, `[F]`.
      middle_kernel: optional `W_2`, `[1, 1, F, F]`.
      middle_bias: optional `b_2`, `[F]`.
      output_kernel: optional `W_3`, `[k, k, F, 2 C_b]`.
      output_bias: optional `b_3`, `[2 C_b]`.
      seed: optional int seed for the default initial `W_1`, `W_2`.
      dtype: floating dtype of the variables, events and log-det.
      compute_dtype: floating dtype the network computes in (its weights and
        `x_a` are cast to it; `t` and `log s` come back in `dtype`, so the
        coupling itself and its log-det stay in `dtype`). Default: under a
        Keras mixed precision global policy whose variable dtype is `dtype`
        (`keras.mixed_precision.set_global_policy("mixed_float16")`), its
        compute dtype (`float16`); otherwise `dtype`.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`).
      name: name scope.

    Raises:
      ValueError: bad `channels`, `hidden_channels`, `kernel_size`, `dtype`,
        `compute_dtype`, or a weight of the wrong shape.
    """
    parameters = dict(locals())
    channels = checks.positive_int(channels, "channels", minimum=2)
    hidden = checks.positive_int(hidden_channels, "hidden_channels")
    k = checks.odd_kernel_size(kernel_size)
    dtype = checks.float_dtype(dtype)
    if compute_dtype is None:
      compute_dtype = _policy_compute_dtype(dtype)
    compute_dtype = checks.float_dtype(compute_dtype, "compute_dtype")
    parameters["compute_dtype"] = compute_dtype
    c_a = channels // 2
    c_b = channels - c_a
    shapes = dict(hidden_kernel=[k, k, c_a, hidden], hidden_bias=[hidden],
                  middle_kernel=[1, 1, hidden, hidden], middle_bias=[hidden],
                  output_kernel=[k, k, hidden, 2 * c_b],
                  output_bias=[2 * c_b])
    given = dict(hidden_kernel=hidden_kernel, hidden_bias=hidden_bias,
                 middle_kernel=middle_kernel, middle_bias=middle_bias,
                 output_kernel=output_kernel, output_bias=output_bias)
    defaults = dict(
        hidden_kernel=lambda: initializers.normal(
            shapes["hidden_kernel"], 0.05, seed, dtype),
        middle_kernel=lambda: initializers.normal(
            shapes["middle_kernel"], 0.05, None if seed is None else seed + 1,
            dtype))
    with tf.name_scope(name) as name:
      weights = {}
      for key, value in given.items():
        if value is None:
          initial = defaults.get(key, lambda: tf.zeros(shapes[key], dtype))
          value = tf.Variable(initial(), name=key)
        checks.matrix_shape(value, shapes[key], key)
        parameters[key] = value
        weights[key] = tensor_util.convert_nonref_to_tensor(
            value, dtype=dtype, name=key)
      self._weights = weights
      self._compute_dtype = compute_dtype
      self._channels = channels
      self._hidden_channels = hidden
      self._kernel_size = k
      super().__init__(
          forward_min_event_ndims=3,
          dtype=dtype,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @classmethod
  def _parameter_properties(cls, dtype):
    kernel = parameter_properties.ParameterProperties(event_ndims=4)
    bias = parameter_properties.ParameterProperties(event_ndims=1)
    return dict(hidden_kernel=kernel, hidden_bias=bias, middle_kernel=kernel,
                middle_bias=bias, output_kernel=kernel, output_bias=bias)

  @property
  def channels(self):
    return self._channels

  @property
  def hidden_channels(self):
    return self._hidden_channels

  @property
  def kernel_size(self):
    return self._kernel_size

  @property
  def compute_dtype(self):
    """The dtype of the network's convolutions (see `__init__`)."""
    return self._compute_dtype

  @property
  def weights(self):
    """Dict of the network's six weights, keyed by constructor argument."""
    return dict(self._weights)

  def shift_and_log_scale(self, x_a):
    """`(t, log s)` for conditioning channels `x_a` of `[N, H, W, C_a]`.

    The network runs in `compute_dtype`; `t` and `log s` are in `dtype`.
    """
    w = {key: tf.cast(value, self._compute_dtype)
         for key, value in self._weights.items()}
    x_a = tf.cast(x_a, self._compute_dtype)
    g = tf.nn.relu(tf.nn.convolution(x_a, w["hidden_kernel"], padding="SAME")
                   + w["hidden_bias"])
    g = tf.nn.relu(tf.nn.convolution(g, w["middle_kernel"]) + w["middle_bias"])
    out = tf.cast(tf.nn.convolution(g, w["output_kernel"], padding="SAME") +
                  w["output_bias"], self.dtype)
    return out[..., 0::2], tf.math.log_sigmoid(out[..., 1::2] + SCALE_OFFSET)

  def _split(self, z, name):
    images, shape = checks.as_images(z, self._channels, self.dtype, name,
                                     self.validate_args)
    c_a = self._channels // 2
    return images[..., :c_a], images[..., c_a:], shape

  def _augmented_forward(self, x):
    x_a, x_b, shape = self._split(x, "x")
    shift, log_scale = self.shift_and_log_scale(x_a)
    y_b = (x_b + shift) * tf.exp(log_scale)
    y = tf.reshape(tf.concat([x_a, y_b], axis=-1), shape)
    fldj = tf.reshape(tf.reduce_sum(log_scale, axis=[1, 2, 3]), shape[:-3])
    return y, {"fldj": fldj, "ildj": -fldj}

  def _augmented_inverse(self, y):
    y_a, y_b, shape = self._split(y, "y")
    shift, log_scale = self.shift_and_log_scale(y_a)
    x_b = y_b * tf.exp(-log_scale) - shift
    x = tf.reshape(tf.concat([y_a, x_b], axis=-1), shape)
    ildj = -tf.reshape(tf.reduce_sum(log_scale, axis=[1, 2, 3]), shape[:-3])
    return x, {"ildj": ildj, "fldj": -ildj}
