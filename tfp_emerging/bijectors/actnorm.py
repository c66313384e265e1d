"""Activation normalisation (Glow's actnorm) with data-dependent
initialisation."""

from __future__ import annotations

import numpy.typing as npt
import tensorflow as tf
from tensorflow_probability.python.internal import tensor_util

from tfp_emerging.bijectors.freezing import FrozenLayer
from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import PixelwiseLogDet
from tfp_emerging.bijectors.image_bijector import parameter_table
from tfp_emerging.bijectors.image_bijector import stored_parameter
from tfp_emerging.ops import checks

__all__ = ["ActNorm", "FrozenActNorm"]


class ActNorm(PixelwiseLogDet, ImageBijector):
  """A per-channel affine map, `y = (x + bias) * exp(log_scale)` (Kingma 2018).

  On events `[H, W, C]` with `bias` and `log_scale` of shape `[C]`:

      y[i, j, c] = (x[i, j, c] + bias[c]) * exp(log_scale[c])
      log |det dy/dx| = H W sum_c log_scale[c]

  Data-dependent initialisation: `bias = -mean(x)` and
  `log_scale = -log(std(x) + 1e-6)` per channel, over every axis but the
  last, so the layer's output on that batch has zero mean and unit variance
  per channel, and the non-trainable `initialized` flag (a variable that
  checkpoints carry with the others) becomes `True`. It happens

  * implicitly, on the first batch `forward` or `forward_log_det_jacobian`
    sees while `initialized` is `False` (as TFP's `tfb.Glow` actnorm does):
    `forward` is the density direction in this library, so a flow's first
    `log_prob` initialises it from data. This works eagerly, in `tf.function`
    and under XLA: a graph traced while the layer is uninitialised holds a
    `tf.cond` on the flag; one traced after it (e.g. `fit`'s training step,
    traced after `FlowModel.fit` initialised the flow) just reads the
    variables, at no cost;
  * or explicitly with `initialize(x)`, which also re-initialises.

  An uninitialised layer is never evaluated silently. `inverse` (sampling)
  and `inverse_log_det_jacobian` do not initialise from their input, a
  latent rather than data: on an uninitialised layer they raise
  `InvalidArgumentError` (and, under XLA, which drops assertions, return
  NaN). Neither does `forward` inside a replica context of a
  `tf.distribute` strategy (`strategy.run`, or `fit` under
  `MirroredStrategy`): a replica sees only its share of the batch, and
  mirrored variables cannot be assigned inside a `tf.cond` there; it raises
  the same way. Initialise from a global batch beforehand, in the
  cross-replica context, as `FlowModel.fit` does (`initialize`, or one
  `log_prob` outside `strategy.run`).

  Directions and cost (`N` = batch size): forward and inverse are one
  elementwise multiply-add, `O(N H W C)`; log-det `O(C)`, shaped like the
  batch.

  Affine in `x` for the values its variables have, so its Jacobian is the
  same at every `x`: the layer declares `is_constant_jacobian=True`, and a
  `tfd.TransformedDistribution` through it has a `mean()` and a `mode()`, the
  layer applied to the base distribution's (through `sampling_direction`, the
  inverse, which needs an initialised layer).

  #### Example

  ```python
  layer = ActNorm(channels=3)
  x = tf.random.normal([16, 8, 8, 3]) * 4. + 1.
  y = layer.forward(x)         # the first batch initialises: y standardised
  layer.initialize(x)          # the same, explicitly
  ```
  """

  def __init__(
    self,
    channels: int,
    bias: checks.ParameterLike | None = None,
    log_scale: checks.ParameterLike | None = None,
    initialized: tf.Variable | tf.Tensor | bool | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "actnorm",
  ):
    """Creates the layer and, unless given, its variables.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      bias: optional initial value (or `tf.Variable`) of shape `[C]`.
        Default: a trainable variable of zeros.
      log_scale: optional initial value (or `tf.Variable`) of shape `[C]`.
        Default: a trainable variable of zeros.
      initialized: optional boolean `tf.Variable` (or value), whether the
        data-dependent initialisation has run. Default: a non-trainable
        variable, `True` if both `bias` and `log_scale` are given (their
        values are kept), else `False`.
      dtype: floating dtype of the variables and events.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`), and
        that `bias` and `log_scale` variables are.
      name: name scope of the ops and variables.

    Raises:
      ValueError: bad `channels`, `dtype`, or `bias`/`log_scale` of the wrong
        shape (one bijector: no batch of them) or, given as values, not
        finite.
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
        initialized = tf.Variable(
          parameters["bias"] is not None
          and parameters["log_scale"] is not None,
          trainable=False,
          name="initialized",
        )
      self._bias = stored_parameter(parameters, "bias", bias, [channels], dtype)
      self._log_scale = stored_parameter(
        parameters, "log_scale", log_scale, [channels], dtype
      )
      parameters["initialized"] = initialized
      self._initialized = tensor_util.convert_nonref_to_tensor(
        initialized, dtype=tf.bool, name="initialized"
      )
      super().__init__(parameters, channels, dtype, name)

  @classmethod
  def _parameter_properties(cls, dtype):
    # Unconstrained reals (`log_scale` is a log); the flag is state, not a
    # parameter TFP may transform or create.
    return parameter_table(
      dict(
        bias=(1, checks.channel_vector_shape),
        log_scale=(1, checks.channel_vector_shape),
        initialized=(0, checks.bijector_shape),
      ),
      fixed=["initialized"],
    )

  def _parameter_control_dependencies(self, is_init):
    """`bias` and `log_scale` finite (`checks.parameter_assertions`)."""
    return self._parameter_checks(is_init, ("bias", "log_scale"))

  @property
  def bias(self) -> tf.Variable | tf.Tensor:
    return self._bias

  @property
  def log_scale(self) -> tf.Variable | tf.Tensor:
    return self._log_scale

  @property
  def initialized(self) -> tf.Variable | tf.Tensor:
    """Boolean variable: whether the data-dependent initialisation has run."""
    return self._initialized

  def initialize(self, x: tf.Tensor | npt.ArrayLike) -> None:
    """Data-dependent initialisation from a batch `x` of `[..., H, W, C]`
    inputs.

    Sets `bias = -mean(x)`, `log_scale = -log(std(x) + 1e-6)` per channel
    (moments over every axis but the last) and `initialized = True`, whether
    or not the layer was initialised before. Needs `bias`, `log_scale` and
    `initialized` to be variables. Cost `O(N H W C)`.
    """
    with tf.name_scope(self.name):
      x = tf.convert_to_tensor(x, self.dtype)
      checks.image_event(x, self._channels, self.dtype, "x", False)
      self._assign_moments(x)

  def _assign_moments(self, x):
    """Assigns the data-dependent values from `x`; returns the flag's update."""
    axes = tf.range(tf.rank(x) - 1)
    mean = tf.reduce_mean(x, axes)
    variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axes)
    with tf.control_dependencies(
      [
        self._bias.assign(-mean),
        self._log_scale.assign(-tf.math.log(tf.sqrt(variance) + 1e-6)),
      ]
    ):
      return self._initialized.assign(True, read_value=False)

  def _initialized_now(self):
    """Whether the flag is `True` now: read eagerly, even while tracing.

    `False` where it cannot be read when the graph is built: a flag that is
    a graph tensor, or a variable whose handle is one, as in a layer passed
    to a `tf.function` as an argument (rebuilt from its composite tensor
    components there). Such a trace also serves other layers of the same
    type spec, initialised or not, so it keeps the run-time cond or check.
    """
    static = tf.get_static_value(self._initialized)
    if static is not None:  # A constant.
      return bool(static)
    try:
      handle = self._initialized.handle
    except (AttributeError, ValueError):  # A tensor; a distributed variable.
      handle = None
    if handle is not None and tf.is_symbolic_tensor(handle):
      return False
    try:
      with tf.init_scope():
        return bool(self._initialized.numpy())
    except (AttributeError, NotImplementedError, ValueError, tf.errors.OpError):
      return False  # Unreadable here: keep the run-time cond or check.

  def _checked_parameters(self, x=None):
    """`(bias, log_scale)`, never those of an uninitialised layer.

    An initialised layer (when the graph is built: a graph traced after the
    initialisation has no cond and no check) reads its variables. Otherwise,
    with `x` (the forward direction's input), outside a replica context and
    with an assignable flag, bias and scale, a `tf.cond` on `initialized`
    initialises the layer from `x` first. Otherwise an uninitialised layer
    fails an assertion naming the remedy, and, where assertions are dropped
    (XLA), its parameters are NaN.
    """
    if self._initialized_now():
      return (
        tf.convert_to_tensor(self._bias),
        tf.convert_to_tensor(self._log_scale),
      )
    if (
      x is not None
      and all(
        hasattr(v, "assign")
        for v in (self._bias, self._log_scale, self._initialized)
      )
      and not (
        tf.distribute.has_strategy()
        and not tf.distribute.in_cross_replica_context()
      )
    ):

      def initialize():
        with tf.control_dependencies([self._assign_moments(x)]):
          return tf.constant(True)

      initialization = tf.cond(
        self._initialized, lambda: tf.constant(False), initialize
      )
      with tf.control_dependencies([initialization]):
        return tf.identity(self._bias), tf.identity(self._log_scale)
    initialized = tf.convert_to_tensor(self._initialized)
    message = (
      f"ActNorm {self.name!r} is not initialised: evaluate the flow's "
      f"log_prob on a batch of data first (the forward direction "
      f"initialises it, outside a tf.distribute replica context), or call "
      f"initialize(x)."
    )
    with tf.control_dependencies([tf.debugging.Assert(initialized, [message])]):
      nan = tf.constant(float("nan"), self.dtype)
      return (
        tf.where(initialized, self._bias, nan),
        tf.where(initialized, self._log_scale, nan),
      )

  def _forward(self, x):
    x = self._checked(x, "x")
    bias, log_scale = self._checked_parameters(x)
    return (x + bias) * tf.exp(log_scale)

  def _inverse(self, y):
    y = self._checked(y, "y")
    bias, log_scale = self._checked_parameters()
    return y * tf.exp(-log_scale) - bias

  def _per_pixel_log_det(self, x=None):
    return tf.reduce_sum(self._checked_parameters(x)[1])

  def _frozen(self) -> ActNorm | FrozenActNorm:
    """This layer with its weights as they are now (`freeze`): the scales
    and the log-det computed once. An uninitialised layer is returned as it
    is: its forward still initialises it from data, its inverse still
    refuses to run."""
    if not self._initialized_now():
      return self
    return FrozenActNorm(self)


class FrozenActNorm(FrozenLayer):
  """An initialised `ActNorm` with frozen weights (`ActNorm._frozen`).

  Holds `bias`, `exp(log_scale)`, `exp(-log_scale)` and
  `sum_c log_scale[c]`, computed when frozen: forward
  `y = (x + bias) * exp(log_scale)` and inverse
  `x = y * exp(-log_scale) - bias`, one multiply-add each, `O(M C)` for `M`
  pixels, without the `exp`s or the initialisation check; log-dets `O(1)`.
  """

  def __init__(self, layer: ActNorm):
    bias, log_scale = layer._checked_parameters()
    self._bias = tf.identity(bias)
    self._scale = tf.exp(log_scale)
    self._inverse_scale = tf.exp(-log_scale)
    super().__init__(layer, tf.reduce_sum(log_scale))

  def _forward(self, x):
    return (self._layer._checked(x, "x") + self._bias) * self._scale

  def _inverse(self, y):
    return self._layer._checked(y, "y") * self._inverse_scale - self._bias
