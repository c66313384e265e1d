"""Glow's affine coupling layer with its small convolutional network."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf
from tensorflow_probability.python.internal import prefer_static as ps

from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import parameter_table
from tfp_emerging.bijectors.image_bijector import stored_parameter
from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions
from tfp_emerging.ops import initializers

__all__ = ["AffineCoupling"]

# Glow's scale is sigmoid(h + SCALE_OFFSET): about 0.88 when the last layer
# is zero, strictly inside (0, 1), so the layer only ever contracts `x_b`.
SCALE_OFFSET = 2.0


def _policy_compute_dtype(dtype):
  """The Keras global policy's compute dtype if it is mixed over `dtype`."""
  policy = tf.keras.mixed_precision.global_policy()
  if policy.variable_dtype == dtype.name:
    return tf.as_dtype(policy.compute_dtype)
  return dtype


def _variables_of(network):
  """The `tf.Variable`s of a Keras layer (Keras 3 or tf_keras) or tf.Module.

  Keras 3 keeps each weight in a `keras.Variable` whose `.value` is the
  `tf.Variable` the layer reads; that one is returned, so that whoever trains
  the bijector's `trainable_variables` trains the network.
  """
  weights = getattr(network, "weights", None)  # Keras 3 and tf_keras.
  if weights is None:
    weights = getattr(network, "variables", None)  # tf.Module.
  if weights is None:
    raise ValueError(
      "`network` must be a Keras layer or a `tf.Module` (the coupling "
      f"lists and trains its variables); got {network!r}."
    )
  found = []
  for weight in weights:
    variable = (
      weight
      if isinstance(weight, tf.Variable)
      else getattr(weight, "value", None)
    )
    if not isinstance(variable, tf.Variable):
      raise ValueError(
        f"`network` holds {weight!r}, which is not backed by a tf.Variable."
      )
    found.append(variable)
  if not found:
    raise ValueError(
      "`network` has no variables yet: build it first (call it once on an "
      "input, or begin a keras.Sequential with keras.Input)."
    )
  return tuple(found)


def _output_bias_shape(output_shape):
  """`[*batch, 2 C_b]` for outputs `[*batch, H, W, C]` (a `shape_fn`)."""
  shape = checks.channel_vector_shape(output_shape)
  return ps.concat([shape[:-1], 2 * (shape[-1:] - shape[-1:] // 2)], axis=0)


class AffineCoupling(OnePassLogDet, ImageBijector):
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

  Conditioning (`conditional_size=M`): every call takes a condition vector
  `c` (`conditional_input`, `[..., M]`, its batch shape broadcasting to the
  events'), TFP's convention (`forward(x, conditional_input=c)`,
  `bijector_kwargs`). The default network adds a learned linear map of it to
  its first hidden layer, the same for every pixel,

      g_1 = relu(conv_{k x k}(x_a; W_1) + b_1 + c W_c),   W_c [M, F],

  `W_c` (`condition_kernel`) starting at zero, so a new conditional layer is
  the unconditional one; with a one-hot class label `c` this is a learned
  per-class bias. The log-det is `sum log s` as before, now depending on
  `c`: TFP's cache keys include `conditional_input`, so a log-det is reused
  only for the same `x` and the same condition.

  Custom network (`network`): any Keras layer (Keras 3 or tf_keras) or
  `tf.Module` replaces `NN`. It is called as `network(x_a)`, or
  `network(x_a, conditional_input=c)` with `c` `[N, M]` in `dtype` when
  conditional, and returns `[N, H, W, 2 C_b]`: `t` in channels `0::2`, `h`
  in `1::2`, the coupling then as above (its output is cast to `dtype`; it
  computes in its own dtype). Its variables must exist (build it first);
  the layer lists them, the `tf.Variable`s behind Keras 3's
  `keras.Variable`s, among its `trainable_variables` and `variables`.
  Zero-initialise its last layer to start, as Glow does, at the identity
  up to `sigmoid(2)`.

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

  conditional = AffineCoupling(channels=4, hidden_channels=32,
                               conditional_size=10)
  c = tf.one_hot([3] * 8, 10)                    # [8, 10]
  y = conditional.forward(tf.random.normal([8, 16, 16, 4]),
                          conditional_input=c)
  ```
  """

  def __init__(
    self,
    channels: int,
    hidden_channels: int = 512,
    kernel_size: int = 3,
    hidden_kernel: checks.ParameterLike | None = None,
    hidden_bias: checks.ParameterLike | None = None,
    middle_kernel: checks.ParameterLike | None = None,
    middle_bias: checks.ParameterLike | None = None,
    output_kernel: checks.ParameterLike | None = None,
    output_bias: checks.ParameterLike | None = None,
    condition_kernel: checks.ParameterLike | None = None,
    network: Callable[..., tf.Tensor] | None = None,
    network_variables: Sequence[tf.Variable] | None = None,
    conditional_size: int | None = None,
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    compute_dtype: tf.dtypes.DType | str | None = None,
    validate_args: bool = False,
    name: str = "affine_coupling",
  ):
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
      condition_kernel: optional `W_c`, `[M, F]`, for a conditional layer
        with the default network.
      network: optional Keras layer or `tf.Module` replacing the default
        network (see the class docstring); then none of the default
        network's weights may be given, and `hidden_channels`,
        `kernel_size` and `compute_dtype` do not apply.
      network_variables: optional `tf.Variable`s of `network`, for a
        network that is neither a Keras layer nor a `tf.Module` (e.g. a
        function closing over variables). Default: found in the network.
      conditional_size: optional `M >= 1`: the layer then takes
        `conditional_input` vectors `[..., M]` in every call.
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
        time is asserted whatever it is: `tfp_emerging.ops.checks`), and
        that the default network's weights given as variables are.
      name: name scope.

    Raises:
      ValueError: bad `channels`, `hidden_channels`, `kernel_size`, `dtype`,
        `compute_dtype`, `conditional_size`, a weight of the wrong shape (one
        bijector: no batch of them) or, given as a value, not finite, or
        a `network` given with weights, without variables, or not a Keras
        layer or `tf.Module`.
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
    if conditional_size is not None:
      conditional_size = checks.positive_int(
        conditional_size, "conditional_size"
      )
    c_a = channels // 2
    c_b = channels - c_a
    shapes = dict(
      hidden_kernel=[k, k, c_a, hidden],
      hidden_bias=[hidden],
      middle_kernel=[1, 1, hidden, hidden],
      middle_bias=[hidden],
      output_kernel=[k, k, hidden, 2 * c_b],
      output_bias=[2 * c_b],
    )
    if conditional_size is not None:
      shapes["condition_kernel"] = [conditional_size, hidden]
    elif condition_kernel is not None:
      raise ValueError("`condition_kernel` needs `conditional_size`.")
    given = {key: parameters[key] for key in shapes}
    if network is not None:
      if not callable(network):
        raise ValueError(f"`network` must be callable; got {network!r}.")
      if any(value is not None for value in given.values()):
        raise ValueError(
          "Give either `network` or the default network's weights, not both."
        )
      given = {}
      if network_variables is None:
        network_variables = _variables_of(network)
      network_variables = tuple(network_variables)
      if not all(isinstance(v, tf.Variable) for v in network_variables):
        raise ValueError(
          "`network_variables` must be tf.Variables; got "
          f"{network_variables!r}."
        )
    elif network_variables is not None:
      raise ValueError("`network_variables` needs `network`.")
    defaults = dict(
      hidden_kernel=lambda: initializers.normal(
        shapes["hidden_kernel"], 0.05, seed, dtype
      ),
      middle_kernel=lambda: initializers.normal(
        shapes["middle_kernel"], 0.05, None if seed is None else seed + 1, dtype
      ),
    )
    with tf.name_scope(name) as name:
      weights = {}
      for key, value in given.items():
        if value is None:
          initial = (
            defaults[key]() if key in defaults else tf.zeros(shapes[key], dtype)
          )
          value = tf.Variable(initial, name=key)
        weights[key] = stored_parameter(
          parameters, key, value, shapes[key], dtype
        )
      self._weights = weights
      self._network = network
      # A parameter, so that `tf.Module` finds them also where it expands
      # this (composite tensor) bijector into its parameters, e.g. inside a
      # Glow; it does not look inside Keras 3 layers. `None` without a
      # network, as the constructor takes it back (`copy`, and composite
      # tensor packing, which reads this attribute).
      self._network_variables = network_variables
      parameters["network_variables"] = network_variables
      self._conditional_size = conditional_size
      self._compute_dtype = compute_dtype
      self._hidden_channels = hidden
      self._kernel_size = k
      super().__init__(
        parameters, channels, dtype, name, is_constant_jacobian=False
      )

  @classmethod
  def _parameter_properties(cls, dtype):
    # The default network's weights: unconstrained reals. Their shapes depend
    # on `hidden_channels` and `kernel_size`, which the outputs' shape does
    # not give, except `output_bias`'s, `[2 C_b]`. A custom network's
    # variables (`network_variables`) have no batch semantics.
    return parameter_table(
      dict(
        hidden_kernel=(4, None),
        hidden_bias=(1, None),
        middle_kernel=(4, None),
        middle_bias=(1, None),
        output_kernel=(4, None),
        output_bias=(1, _output_bias_shape),
        condition_kernel=(2, None),
        network_variables=(None, None),
      ),
      fixed=["network_variables"],
    )

  def _parameter_control_dependencies(self, is_init):
    """The default network's weights finite (`checks.parameter_assertions`);
    a custom network's variables are its own."""
    return checks.parameter_assertions(
      [
        (name, weight, [checks.FINITE])
        for name, weight in self._weights.items()
      ],
      is_init,
      self.validate_args,
    )

  @property
  def hidden_channels(self) -> int:
    return self._hidden_channels

  @property
  def kernel_size(self) -> int:
    return self._kernel_size

  @property
  def compute_dtype(self) -> tf.dtypes.DType:
    """The dtype of the network's convolutions (see `__init__`)."""
    return self._compute_dtype

  @property
  def conditional_size(self) -> int | None:
    """`M`, the length of the `conditional_input` vectors, or `None`."""
    return self._conditional_size

  @property
  def network(self) -> Callable[..., tf.Tensor] | None:
    """The custom network, or `None` for the default one."""
    return self._network

  @property
  def weights(self) -> dict[str, tf.Variable | tf.Tensor]:
    """Dict of the default network's weights, keyed by constructor argument.

    Six, plus `condition_kernel` when conditional; empty with a custom
    `network` (see `network` and `trainable_variables`).
    """
    return dict(self._weights)

  def _network_output(self, x_a, condition):
    """`[N, H, W, 2 C_b]` from `x_a` `[N, H, W, C_a]` (and `c` `[N, M]`)."""
    if self._network is not None:
      if condition is None:
        out = self._network(x_a)
      else:
        out = self._network(x_a, conditional_input=condition)
      out = tf.convert_to_tensor(out)
      expected = [*x_a.shape[:-1], 2 * (self._channels - x_a.shape[-1])]
      if not out.shape.is_compatible_with(expected):
        raise ValueError(
          f"`network` must map x_a of shape {x_a.shape} to "
          f"shape {expected}; got shape {out.shape}."
        )
      return tf.cast(out, self.dtype)
    w = {
      key: tf.cast(value, self._compute_dtype)
      for key, value in self._weights.items()
    }
    x_a = tf.cast(x_a, self._compute_dtype)
    pre = (
      tf.nn.convolution(x_a, w["hidden_kernel"], padding="SAME")
      + w["hidden_bias"]
    )
    if condition is not None:
      c = tf.matmul(
        tf.cast(condition, self._compute_dtype), w["condition_kernel"]
      )
      pre += tf.reshape(c, [-1, 1, 1, self._hidden_channels])
    g = tf.nn.relu(pre)
    g = tf.nn.relu(tf.nn.convolution(g, w["middle_kernel"]) + w["middle_bias"])
    return tf.cast(
      tf.nn.convolution(g, w["output_kernel"], padding="SAME")
      + w["output_bias"],
      self.dtype,
    )

  def shift_and_log_scale(
    self, x_a: tf.Tensor, condition: tf.Tensor | None = None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`(t, log s)` for conditioning channels `x_a` of `[N, H, W, C_a]`.

    `condition`: the `[N, M]` condition vectors of a conditional layer, one
    row per image. The default network runs in `compute_dtype`; `t` and
    `log s` are in `dtype`.
    """
    conditions.require(condition, self._conditional_size is not None, self.name)
    out = self._network_output(x_a, condition)
    return out[..., 0::2], tf.math.log_sigmoid(out[..., 1::2] + SCALE_OFFSET)

  def _coupled(self, z, name, conditional_input, inverse):
    """`(y, forward log-det)` of the forward (`x -> y`) or, `inverse`, the
    inverse (`y -> x`) coupling of `z`: both read `z_a`, the same in `x` and
    `y`, so the log-det is that of the pair."""
    images, shape = self._as_images(z, name)
    c_a = self._channels // 2
    z_a, z_b = images[..., :c_a], images[..., c_a:]
    condition = self._condition(conditional_input, z)
    shift, log_scale = self.shift_and_log_scale(z_a, condition)
    if inverse:
      out_b = z_b * tf.exp(-log_scale) - shift
    else:
      out_b = (z_b + shift) * tf.exp(log_scale)
    out = tf.reshape(tf.concat([z_a, out_b], axis=-1), shape)
    fldj = tf.reshape(tf.reduce_sum(log_scale, axis=[1, 2, 3]), shape[:-3])
    return out, fldj

  def _condition(self, conditional_input, z):
    """The `[N, M]` condition rows of events `z`, or `None` (unconditional)."""
    conditions.require(
      conditional_input, self._conditional_size is not None, self.name
    )
    if conditional_input is None or self._conditional_size is None:
      return None
    return conditions.vectors(
      conditional_input,
      self._conditional_size,
      z,
      self.dtype,
      self.validate_args,
    )

  def _augmented_forward(self, x, conditional_input=None):
    y, fldj = self._coupled(x, "x", conditional_input, inverse=False)
    return y, self._log_dets(fldj)

  def _augmented_inverse(self, y, conditional_input=None):
    x, fldj = self._coupled(y, "y", conditional_input, inverse=True)
    return x, self._log_dets(fldj)
