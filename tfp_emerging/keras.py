"""Keras training of image flows: `FlowModel` and a warm-up schedule.

Works with the Keras that TensorFlow selects (`tf.keras`): Keras 3 by
default, `tf_keras` when `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is
imported.

Variable tracking. The flow's bijectors own plain `tf.Variable`s. `tf_keras`
tracks them through the flow (a `tf.Module`) held as an attribute, and
`FlowModel` also lists them as the model's own weights, which `tf_keras`'s h5
weights files need. Keras 3
tracks neither raw `tf.Variable`s nor `tf.Module`s, so under Keras 3
`FlowModel` wraps each of the flow's variables in a `keras.Variable` built
*on* that very `tf.Variable` (`keras.Variable(v)` keeps `v` as its value):
the optimizer's updates, `save_weights` and `load_weights` act on exactly the
variables the bijectors read. Either way `model.trainable_weights` lists each
trainable flow variable once and `model.non_trainable_weights` holds the
ActNorm `initialized` flags, so `save_weights`/`load_weights` and
`tf.train.Checkpoint(model=model)` capture the data-dependent init state.
"""

import re

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging.flows import dequantization
from tfp_emerging.ops import checks

keras = tf.keras
tfd = tfp.distributions

__all__ = ["FlowModel", "WarmupSchedule"]

KERAS_3 = hasattr(keras, "Variable")


def _images_of(data):
  """The images of a Keras batch: `x`, `(x,)`, `(x, y)` or `(x, y, w)`."""
  if isinstance(data, (tuple, list)):
    return data[0]
  return data


# The keys of a batch `x` given as a dict: `DEQUANTIZED`, the images already
# dequantised (float, in `[-0.5, 0.5)`), e.g. with noise seeded per image by
# the input pipeline (`tfp_emerging.training.train_batches` and
# `test_batches`); optionally `WEIGHT`, each image's weight `[B]` in the
# evaluation's mean (0 for padding).
DEQUANTIZED = "dequantized"
WEIGHT = "weight"


def _first_batch(x, batch_size):
  """The first batch `fit` will see, for the data-dependent initialisation."""
  if isinstance(x, tf.data.Dataset):
    return _images_of(next(iter(x.take(1))))
  if isinstance(x, (np.ndarray, tf.Tensor)):
    return x[:batch_size or 32]
  raise ValueError(
      "FlowModel.fit can initialise ActNorm from a tf.data.Dataset, a numpy "
      "array or a tensor of images; for other inputs call "
      "`model.initialize(images)` before `fit`.")


class FlowModel(keras.Model):
  """A `keras.Model` that trains a flow on n-bit images, in bits per dimension.

  `FlowModel(flow, num_bins)` holds `distribution =
  tfd.TransformedDistribution(base, flow)`, `base` being
  `flow.base_distribution()` (e.g. `Glow`'s standard normal) unless given.
  Inputs are integer-valued pixels `[B, H, W, C]` (uint8, int or float) in
  `0..num_bins-1`, e.g. 17 levels for sklearn's digits. Each batch is
  dequantised with fresh uniform noise to `x = (k + u) / B - 1/2` and the
  loss is

      bits/dim = -(log p(x) - D log B) / (D log 2),   D = H W C

  (`tfp_emerging.flows.dequantization`), an upper bound on the discrete
  model's code length.

  * `compile(optimizer=...)` needs no loss; `fit(data, epochs=...,
    validation_data=...)` with a `tf.data.Dataset` of image batches (or
    `(images, anything)` pairs) or an image array. `fit` runs the flow's
    data-dependent initialisation on the first batch unless already done
    (for other inputs, call `initialize` yourself). The logs (and progress
    bar) report `loss` and `bits_per_dim`, both the mean bits/dim of the
    epoch's batches (`val_...` for the validation data).
  * `evaluate` returns `[loss, bits_per_dim]` (both bits/dim; a dict with
    `return_dict=True`), with fresh dequantisation noise.
  * `bits_per_dim(images, seed=None)`: per image, `[B]`; reproducible when
    `seed` is an int (the noise is drawn statelessly from it).
  * `sample(n, temperature=1.0, seed=None)`: int32 images `[n, H, W, C]` in
    `0..num_bins-1`: `flow.forward(temperature * base sample)`, quantised.
  * `initialize(images)`: the flow's data-dependent initialisation from one
    dequantised batch.
  * `save_weights(path)` / `load_weights(path)` (Keras 3 wants a path ending
    in `.weights.h5`) and `tf.train.Checkpoint(model=model, ...)` hold every
    flow variable and the ActNorm `initialized` flags. They do not hold
    constants a layer derives from its `seed` (e.g. `Conv1x1`'s fixed signs
    and permutation): restore into a flow built with the same `seed`.

  Cost per training image: one density pass of the flow (its `inverse`:
  convolutions only, no solves) and its gradient.
  """

  def __init__(self, flow, num_bins=256, base_distribution=None,
               name="flow_model", **kwargs):
    """Wraps `flow`.

    Args:
      flow: a bijector latent -> image on events `[H, W, C]`, such as
        `tfp_emerging.flows.Glow`.
      num_bins: `B >= 2`, the number of pixel levels (256 for 8 bits).
      base_distribution: optional base; default `flow.base_distribution()`.
      name: the model's name.
      **kwargs: passed to `keras.Model`.

    Raises:
      ValueError: a bad `num_bins`, or no base distribution.
    """
    super().__init__(name=name, **kwargs)
    self.num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
    if base_distribution is None:
      if not hasattr(flow, "base_distribution"):
        raise ValueError("`base_distribution` must be given for a flow "
                         "without `base_distribution()`.")
      base_distribution = flow.base_distribution()
    self._flow = flow
    self._density = tfd.TransformedDistribution(base_distribution, flow)
    self._event_shape = tuple(base_distribution.event_shape.as_list())
    self._num_dims = int(np.prod(self._event_shape))
    if KERAS_3:
      self._flow_variables = [
          keras.Variable(v, trainable=v.trainable,
                         name=f"{i:04d}_" + re.sub(r"[^\w.-]", "_",
                                                   v.name.split(":")[0]))
          for i, v in enumerate(flow.variables)]
    else:
      # tf_keras already finds them through `self._flow`, but its h5 weights
      # files hold only a model's own lists; the lists are deduplicated.
      for v in flow.variables:
        (self._trainable_weights if v.trainable else
         self._non_trainable_weights).append(v)
    self._loss_tracker = keras.metrics.Mean(name="loss")
    self._bits_tracker = keras.metrics.Mean(name="bits_per_dim")
    self.built = True

  @property
  def flow(self):
    return self._flow

  @property
  def distribution(self):
    """`tfd.TransformedDistribution(base, flow)` on the `[-0.5, 0.5)` images."""
    return self._density

  @property
  def metrics(self):
    return [self._loss_tracker, self._bits_tracker]

  def _continuous_bits(self, x):
    log_prob = self._density.log_prob(x)
    return dequantization.bits_per_dim(log_prob, self._num_dims,
                                       self.num_bins)

  def _noisy_bits(self, images, seed=None):
    x = dequantization.dequantize(images, self.num_bins, seed=seed,
                                  dtype=self._flow.dtype)
    return self._continuous_bits(x)

  def call(self, inputs, training=False):
    """Per-image bits/dim `[B]` of integer images, with fresh noise."""
    del training  # No layer behaves differently in training.
    return self._noisy_bits(inputs)

  def _batch_bits(self, x):
    """Per-image bits/dim of `x`: integer images (fresh noise), or a dict
    whose `DEQUANTIZED` entry holds the dequantised images."""
    if isinstance(x, dict):
      return self._continuous_bits(x[DEQUANTIZED])
    return self._noisy_bits(x)

  def train_step(self, data):
    with tf.GradientTape() as tape:
      bits = self._batch_bits(_images_of(data))
      loss = tf.reduce_mean(bits)
      # Under tf.distribute each replica holds its share of the global batch
      # and the optimizer sums the replicas' gradients: dividing by their
      # number makes the update that of the global batch's mean loss.
      scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
      if KERAS_3:
        # The identity unless the optimizer is Keras 3's LossScaleOptimizer
        # (mixed_float16), which unscales the gradients it is given.
        scaled = self.optimizer.scale_loss(scaled)
    variables = self.trainable_weights
    gradients = tape.gradient(scaled, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self._record(bits)

  def test_step(self, data):
    """Per-image bits/dim of a batch, added to the running per-image mean.

    `data` is `x`, `(x, y)` or `(x, y, sample_weight)`; `x` is a batch of
    integer images (fresh dequantisation noise) or a dict whose `DEQUANTIZED`
    entry holds the dequantised images. `sample_weight` `[B]`, or the dict's
    `WEIGHT` entry, weighs each image in the mean (0 for padding:
    `training.test_batches` pads the last batch so that every batch has one
    shape); `y` is not used.
    """
    x, _, weights = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(x, dict):
      weights = x.get(WEIGHT, weights)
    bits = self._batch_bits(x)
    if weights is not None:
      weights = tf.cast(weights, bits.dtype)
      # A padded image's bits never reach the mean, even if not finite.
      bits = tf.where(weights > 0, bits, tf.zeros_like(bits))
    return self._record(bits, weights)

  def _record(self, bits, weights=None):
    """Adds per-image bits/dim `[B]` to the epoch's per-image means.

    Under `tf.distribute` each replica adds its share; the metrics' totals
    and counts are summed over the replicas, so the result is the mean over
    every image of the global batches.
    """
    self._loss_tracker.update_state(bits, sample_weight=weights)
    self._bits_tracker.update_state(bits, sample_weight=weights)
    return {m.name: m.result() for m in self.metrics}

  def fit(self, x=None, y=None, batch_size=None, **kwargs):
    """`keras.Model.fit`, after the data-dependent init if not yet done."""
    if not self.is_initialized():
      self.initialize(_first_batch(x, batch_size))
    if KERAS_3 and not self.optimizer.built:
      # Creating the slots here, not in the first traced step, spares Keras
      # a second trace of the whole training step.
      with self.distribute_strategy.scope():
        self.optimizer.build(self.trainable_variables)
    return super().fit(x, y, batch_size=batch_size, **kwargs)

  def is_initialized(self):
    """Whether the flow's data-dependent initialisation has run (or is none)."""
    check = getattr(self._flow, "is_initialized", None)
    return check is None or check()

  def initialize(self, images, seed=None):
    """Data-dependent initialisation of the flow from integer `images`.

    Dequantises `images` (noise from `seed` if given) and calls
    `flow.initialize`; a flow without one needs nothing.
    """
    initialize = getattr(self._flow, "initialize", None)
    if initialize is not None:
      initialize(dequantization.dequantize(images, self.num_bins, seed=seed,
                                           dtype=self._flow.dtype))

  def bits_per_dim(self, images, seed=None):
    """Bits/dim per image, `[B]`, of integer `images` `[B, H, W, C]`.

    The dequantisation noise is fresh on each call unless `seed` (an int) is
    given, which makes the result reproducible.
    """
    if seed is None:
      return self._bits_fn(tf.convert_to_tensor(images))
    return self._seeded_bits_fn(tf.convert_to_tensor(images),
                                tf.constant([seed, 0], tf.int64))

  @tf.function(reduce_retracing=True)
  def _bits_fn(self, images):
    return self._noisy_bits(images)

  @tf.function(reduce_retracing=True)
  def _seeded_bits_fn(self, images, seed):
    return self._noisy_bits(images, seed=seed)

  def sample(self, n, temperature=1.0, seed=None):
    """`n` integer images `[n, H, W, C]` (int32, `0..num_bins-1`).

    `x = flow.forward(temperature * z)`, `z` from the base distribution
    (Glow's temperature), quantised with clipping. An int `seed` gives the
    same images on every call. Cost: one sampling pass of the flow (its
    solves).
    """
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([seed, 0], tf.int32)  # Stateless: reproducible.
    z = self._density.distribution.sample(n, seed=seed)
    x = self._generate(z * tf.cast(temperature, z.dtype))
    return dequantization.quantize(x, self.num_bins)

  @tf.function(reduce_retracing=True)
  def _generate(self, z):
    return self._flow.forward(z)


@keras.utils.register_keras_serializable(package="tfp_emerging")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `learning_rate` over `warmup_steps`, then constant.

  `lr(step) = learning_rate * min(1, (step + 1) / warmup_steps)` (step counted
  from 0); `warmup_steps=0` is a constant rate. Glow-style flows diverge
  without a warm-up at their usual rates (Kingma & Dhariwal use 1e-3 after
  a linear warm-up).
  """

  def __init__(self, learning_rate, warmup_steps):
    super().__init__()
    self.learning_rate = float(learning_rate)
    self.warmup_steps = checks.positive_int(warmup_steps, "warmup_steps",
                                            minimum=0)

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    if self.warmup_steps == 0:
      return tf.constant(self.learning_rate, tf.float32) + 0. * step
    fraction = tf.minimum(1., (step + 1.) / self.warmup_steps)
    return self.learning_rate * fraction

  def get_config(self):
    return {"learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps}
