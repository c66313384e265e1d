"""Export a trained flow as a TensorFlow SavedModel with two signatures.

    export(model.discrete_flow, "exported/")         # a FlowModel's (or a flow)
    model.export("exported/")                        # the same, Keras' way
    loaded = tf.saved_model.load("exported/")        # no tfp_emerging needed
    loaded.signatures["log_prob"](x=x)["log_prob"]   # [N]
    loaded.signatures["sample"](n=tf.constant(16), temperature=tf.constant(.7),
                                seed=tf.constant([1, 2]))["images"]

* `log_prob(x)` (also the `serving_default` signature): `x` float32
  `[N, H, W, C]` in the flow's domain (`[-0.5, 0.5)` for a `DiscreteFlow`'s
  dequantised pixels); returns `log_prob` `[N]` (nats) and, for a
  `tfp_emerging.flows.DiscreteFlow` (a `FlowModel`'s `discrete_flow`),
  `bits_per_dim` `[N]` (`x` read as dequantised pixels, see
  `tfp_emerging.flows.dequantization`). Cost: one density pass
  (convolutions only).
* `sample(n, temperature, seed)`: `n` int32 scalar, `temperature` float32
  scalar, `seed` int32 `[2]` (stateless: the same seed gives the same
  samples). The latent is drawn from the model's own base distribution,
  `z = base.sample(n, seed)`, and tempered (`tempered_sample`): `m + T (z -
  m)`, `m` the base's mode, so that for a Gaussian base `T` scales its
  standard deviation (Glow's temperature; `T = 0` gives the image of the
  mode). Returns `x = flow.forward(z)` float32 `[n, H, W, C]` and, for a
  `DiscreteFlow`, `images` int32 `[n, H, W, C]`, `x` quantised to
  `0..num_bins-1`. Cost: one sampling pass (the solves) of the flow frozen
  when exported (`tfp_emerging.bijectors.freeze`): what depends only on
  the weights (1x1 inverses, ActNorm scales, the emerging and periodic
  layers' precomputed values) is held in the SavedModel as constants, so
  the signature serves the weights it was exported with.

Both signatures check their inputs at run time and fail with
`tf.errors.InvalidArgumentError` naming the argument: `sample` a
`temperature` that is not a finite number `>= 0`, and a `DiscreteFlow`'s
`log_prob` an `x` outside `[-0.5, 0.5)` (raw pixel levels, or images scaled
to another range, would otherwise get a meaningless density).

A class-conditional flow (`Glow(..., num_classes=K)`, also inside a
`tfb.Chain`; `tfp_emerging.ops.conditions`) takes the labels too:
`log_prob(x, labels)` with `labels` int32 `[N]` in `0..K-1`, and
`sample(labels, temperature, seed)`, one image per label (`n = size of
labels`):

    loaded.signatures["sample"](labels=tf.constant([3, 3, 7]),
                                temperature=tf.constant(.7),
                                seed=tf.constant([1, 2]))["images"]

The same functions are attributes of the loaded object (`loaded.log_prob(x)`,
`loaded.sample(n, temperature, seed)`; `loaded.num_classes` is `K`, or 0
for an unconditional flow); the flow's variables are saved with their
trained values. The SavedModel holds only TensorFlow ops, so serving
it needs TensorFlow alone.
"""

from __future__ import annotations

import os

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging.bijectors.freezing import freeze
from tfp_emerging.flows import dequantization
from tfp_emerging.flows import discrete
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import conditions

__all__ = ["FlowExport", "export", "tempered_sample"]


def tempered_sample(
  base_distribution: tfp.distributions.Distribution,
  n: int | tf.Tensor,
  temperature: float | tf.Tensor = 1.0,
  seed: int | tf.Tensor | None = None,
) -> tf.Tensor:
  """`n` latents from `base_distribution` at `temperature`.

  `m + T (z - m)` with `z = base_distribution.sample(n, seed=seed)` and `m`
  its mode: every latent's deviation from the mode scaled by `T`. For a
  Gaussian base `N(mu, sigma^2)` that is `N(mu, (T sigma)^2)`, Glow's
  temperature (for the standard normal, exactly `T z`); `T = 1` is the base
  itself and `T = 0` its mode. A tensor `seed` of shape `[2]` samples
  statelessly.

  Raises:
    ValueError: `temperature` may differ from 1 but the base has no mode.
  """
  z = base_distribution.sample(n, seed=seed)
  if isinstance(temperature, (int, float)) and temperature == 1:
    return z
  try:
    mode = base_distribution.mode()
  except NotImplementedError as e:
    raise ValueError(
      f"A temperature needs the base distribution's mode, which "
      f"{type(base_distribution).__name__} does not implement; sample at "
      f"temperature 1."
    ) from e
  return mode + tf.cast(temperature, z.dtype) * (z - mode)


class FlowExport(tf.Module):
  """The exported object: a flow's `log_prob` and `sample` as `tf.function`s."""

  def __init__(
    self,
    model: discrete.DiscreteFlow | tfp.bijectors.Bijector,
    name: str = "flow_export",
  ) -> None:
    """Wraps `model`.

    Args:
      model: a `tfp_emerging.flows.DiscreteFlow` (its flow, base and
        `num_bins`: `log_prob` checks the dequantised range and gives
        `bits_per_dim`, `sample` gives `images`), or a bijector latent ->
        image on events `[H, W, C]` with `flow.base_distribution()`, e.g. a
        `tfp_emerging.flows.Glow` (a flow on continuous data: no
        `bits_per_dim` and no `images`).
      name: the module's name.

    Raises:
      ValueError: `model` is neither (a `FlowModel`: export its
        `discrete_flow`).
    """
    super().__init__(name=name)
    if isinstance(model, tfp.bijectors.Bijector):
      # Its density on continuous data: a DiscreteFlow's `log_prob`, whose
      # levels (`num_bins`) are not used.
      model = discrete.DiscreteFlow(model)
      self._num_bins: int | None = None
    elif isinstance(model, discrete.DiscreteFlow):
      self._num_bins = model.num_bins
    else:
      raise ValueError(
        f"export: `model` must be a tfp_emerging.flows.DiscreteFlow or a "
        f"TFP bijector (for a FlowModel, its `discrete_flow`, or call "
        f"`model.export(path)`); got {model!r}."
      )
    self.density = model
    # Frozen now, for `sample`; set past tf.Module's tracking, so that the
    # SavedModel's objects are the flow's (the frozen values are constants
    # of the traced signature).
    object.__setattr__(self, "_sampling_flow", freeze(model.flow))
    num_classes = model.num_classes
    self.num_classes = tf.Variable(
      num_classes or 0, trainable=False, dtype=tf.int32, name="num_classes"
    )
    images = tf.TensorSpec([None, *model.image_shape], model.dtype, name="x")
    sampling = [
      tf.TensorSpec([], model.dtype, name="temperature"),
      tf.TensorSpec([2], tf.int32, name="seed"),
    ]
    if num_classes is None:
      self.log_prob = tf.function(self._log_prob, input_signature=[images])
      self.sample = tf.function(
        self._sample,
        input_signature=[tf.TensorSpec([], tf.int32, name="n"), *sampling],
      )
    else:
      labels = tf.TensorSpec([None], tf.int32, name="labels")
      self.log_prob = tf.function(
        self._log_prob, input_signature=[images, labels]
      )
      self.sample = tf.function(
        self._sample_classes, input_signature=[labels, *sampling]
      )

  def _log_prob(self, x, labels=None):
    if self._num_bins is not None:
      message = "log_prob: `x` must be dequantised images in [-0.5, 0.5)"
      with tf.control_dependencies(
        [
          tf.debugging.assert_greater_equal(
            x, tf.constant(-0.5, x.dtype), message
          ),
          tf.debugging.assert_less(x, tf.constant(0.5, x.dtype), message),
        ]
      ):
        x = tf.identity(x)
    log_prob = self.density.log_prob(x, labels)
    result = {"log_prob": log_prob}
    if self._num_bins is not None:
      result["bits_per_dim"] = dequantization.bits_per_dim(
        log_prob, self.density.num_dims, self._num_bins
      )
    return result

  def _sample(self, n, temperature, seed, labels=None):
    message = "sample: `temperature` must be a finite number >= 0 (0: the mode)"
    with tf.control_dependencies(
      [
        tf.debugging.assert_all_finite(temperature, message),
        tf.debugging.assert_non_negative(temperature, message),
      ]
    ):
      temperature = tf.identity(temperature)
    z = tempered_sample(
      self.density.distribution.distribution, n, temperature, seed
    )
    flow = self._sampling_flow
    x = flow.forward(z, **conditions.route(flow, labels))
    result = {"x": x}
    if self._num_bins is not None:
      result["images"] = dequantization.quantize(x, self._num_bins)
    return result

  def _sample_classes(self, labels, temperature, seed):
    """A class-conditional flow's `sample`: one image per label."""
    return self._sample(tf.size(labels), temperature, seed, labels)


def export(
  model: discrete.DiscreteFlow | tfp.bijectors.Bijector,
  path: str | os.PathLike[str],
) -> FlowExport:
  """Writes `model` (a `DiscreteFlow` or a flow) as a SavedModel to `path`.

  A `tfp_emerging.flows.DiscreteFlow` (a `FlowModel`'s `discrete_flow`) is
  exported with its base distribution and `num_bins`; a bare flow with
  `flow.base_distribution()` and no `num_bins` (`FlowExport`).

  Returns:
    The `FlowExport` that was saved.

  Raises:
    ValueError: `model` is neither.
  """
  module = FlowExport(model)
  # `sample` serves values: its solves are traced without their implicit
  # gradients, which a SavedModel cannot hold (loading would warn of
  # "unsaved custom gradients" once per solve).
  with autoregressive.without_gradients():
    tf.saved_model.save(
      module,
      path,
      signatures={
        "serving_default": module.log_prob,
        "log_prob": module.log_prob,
        "sample": module.sample,
      },
    )
  return module
