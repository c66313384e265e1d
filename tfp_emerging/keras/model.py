"""`FlowModel`: a `keras.Model` that trains a flow on n-bit images.

Works with the Keras that TensorFlow selects (`tf.keras`): Keras 3 by
default, `tf_keras` when `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is
imported. The flow's variables are owned by `FlowLayer`s
(`tfp_emerging.keras.layers`), so that Keras trains and saves exactly the
variables the bijectors read.
"""

from __future__ import annotations

from collections.abc import Sequence
import contextlib
import io
import os
from typing import Any
import warnings

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow_probability import bijectors as tfb
from tensorflow_probability import distributions as tfd

from tfp_emerging import distribute
from tfp_emerging import export as export_lib
from tfp_emerging.bijectors import direction as direction_lib
from tfp_emerging.bijectors.freezing import FrozenFunction
from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE
from tfp_emerging.data.pipeline import WEIGHT
from tfp_emerging.flows import dequantization
from tfp_emerging.flows import discrete
from tfp_emerging.flows import variational_dequantization
from tfp_emerging.keras import layers as layers_lib
from tfp_emerging.keras import schedules
from tfp_emerging.keras import serialization
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions
from tfp_emerging.ops import input_checks

__all__ = ["FlowModel"]

KERAS_3 = layers_lib.KERAS_3

# Full-model files Keras writes in HDF5, which cannot hold a flow.
_HDF5_SUFFIXES = (".h5", ".hdf5")


def _weighted_targets(x, y, kwargs):
  """`y` for `keras.Model.fit` or `evaluate`: `y`, or `{WEIGHT: weights}`
  when `y` is `None` and `kwargs` holds the `sample_weight` of array
  inputs (taken out of `kwargs`): Keras drops the weights of inputs
  without targets, which a density model has not (`_weighted_bits` reads
  them back)."""
  weights = kwargs.get("sample_weight")
  if y is not None or weights is None or isinstance(x, tf.data.Dataset):
    return y
  del kwargs["sample_weight"]
  return {WEIGHT: weights}


def _first_batch(x, y, batch_size):
  """`(images, labels)` of the first batch `fit` will see, for the
  data-dependent initialisation (`labels` `None` when there are none).

  Raises:
    ValueError: an empty dataset.
  """
  if isinstance(x, tf.data.Dataset):
    first = next(iter(x.take(1)), None)
    if first is None:
      raise input_checks.empty_input_error("FlowModel.fit", "the dataset")
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(first)
    return images, labels
  if isinstance(x, (np.ndarray, tf.Tensor)):
    size = batch_size or 32
    return x[:size], None if y is None else y[:size]
  raise ValueError(
    "FlowModel.fit can initialise ActNorm from a tf.data.Dataset, a numpy "
    "array or a tensor of images; for other inputs call "
    "`model.initialize(images)` before `fit`."
  )


def _frozen_forward(flow, z, labels):
  """`flow.forward(z)`, with `labels` routed to its conditional parts."""
  return flow.forward(z, **conditions.route(flow, labels))


@keras.utils.register_keras_serializable(package="tfp_emerging")
class FlowModel(keras.Model):
  """A `keras.Model` that trains a flow on n-bit images, in bits per dimension.

  `FlowModel(flow, num_bins)` holds `distribution =
  tfd.TransformedDistribution(base, flow)`: `flow` any TFP bijector latent
  -> image (a `tfp_emerging.flows.Glow`, a `tfb.Chain`, TFP's `tfb.Glow`),
  `base` `flow.base_distribution()` unless given. It takes integer pixel
  levels `k` `[B, H, W, C]` in `0..num_bins-1` (any integer or float dtype),
  dequantises each batch with fresh noise `u`, `x = (k + u) / B - 1/2`
  (uniform, or drawn from a `dequantizer` `q(u | k)` trained jointly), and
  its loss, logged as `loss` and `bits_per_dim`, is the bound

      bits/dim = -(log p(x) - log q(u | k) - D log B) / (D log 2),

  `D = H W C`, `log q = 0` for uniform noise. `compile` needs no loss; `fit`
  and `evaluate` take image arrays or `tf.data` datasets (`(images,
  labels)` for a class-conditional flow), and `bits_per_dim`, `sample`,
  `initialize`, `save` and `export` are the other methods. Cost per
  training image: one density pass of the flow (its `inverse`: convolutions
  only, no solves) and its gradient.

  The guide, docs/training.md ("With Keras directly"), gives what each
  method takes and returns, saving and loading, and flows other than
  `Glow`; docs/conditioning.md the class-conditional flows.

  A tiny Glow fitted for one epoch on random 17-level images:

  >>> import numpy as np
  >>> from tensorflow import keras
  >>> from tfp_emerging import flows
  >>> from tfp_emerging.keras import FlowModel
  >>> glow = flows.Glow(
  ...   (8, 8, 1), num_levels=1, num_steps=1, hidden_channels=4, seed=0
  ... )
  >>> model = FlowModel(glow, num_bins=17)
  >>> model.compile(optimizer=keras.optimizers.Adam(1e-3))  # no loss
  >>> images = np.random.default_rng(0).integers(0, 17, [16, 8, 8, 1])
  >>> history = model.fit(images, batch_size=8, epochs=1, verbose=0)
  >>> sorted(history.history)
  ['bits_per_dim', 'loss']
  >>> model.bits_per_dim(images[:4], seed=0).shape  # one figure per image
  TensorShape([4])
  >>> model.sample(2, temperature=0.7, seed=0).shape  # int32 levels
  TensorShape([2, 8, 8, 1])
  """

  def __init__(
    self,
    flow: tfb.Bijector,
    num_bins: int = 256,
    base_distribution: tfd.Distribution | None = None,
    direction: str = direction_lib.SAMPLING,
    dequantizer: (
      variational_dequantization.VariationalDequantizer | None
    ) = None,
    name: str = "flow_model",
    **kwargs,
  ) -> None:
    """Wraps `flow`.

    Args:
      flow: a TFP bijector on events `[H, W, C]`: latent -> image (TFP's
        direction, `direction="sampling"`), such as
        `tfp_emerging.flows.Glow`, a `tfb.Chain` of
        `tfp_emerging.bijectors.sampling_direction(layer)`s or TFP's
        `tfb.Glow`; or image -> latent (`direction="density"`), such as a
        `tfb.Chain` of this package's layers as they come.
      num_bins: `B >= 2`, the number of pixel levels (256 for 8 bits).
      base_distribution: optional base; default `flow.base_distribution()`.
      direction: `"sampling"` (`flow.forward` maps latent to image) or
        `"density"` (`flow.forward` maps image to latent; the model holds
        `tfb.Invert(flow)`).
      dequantizer: `None` for uniform dequantisation, or a
        `tfp_emerging.flows.VariationalDequantizer` of the same image shape,
        `num_bins` and dtype: variational dequantisation, `q(u | k)`
        trained jointly with the flow (see the class docstring).
      name: the model's name.
      **kwargs: passed to `keras.Model`.

    Raises:
      ValueError: a bad `num_bins`, `direction` or `dequantizer`, a `flow`
        that is no bijector, no base distribution, images that are not
        `[H, W, C]` of known size, or a flow whose density pass would run a
        layer of this package backwards (its solve in every training step; an
        `ActNorm` that cannot initialise from data): the message names the
        layers and the remedy.
    """
    super().__init__(name=name, **kwargs)
    if not isinstance(flow, tfb.Bijector):
      raise ValueError(f"`flow` must be a TFP bijector; got {flow!r}.")
    if direction not in direction_lib.DIRECTIONS:
      raise ValueError(
        f"`direction` must be one of "
        f"{direction_lib.DIRECTIONS}; got {direction!r}."
      )
    self._given_flow, self._direction = flow, direction
    if direction == direction_lib.DENSITY:
      flow = tfb.Invert(flow)
    backwards = direction_lib.density_pass_inverses(flow)
    if backwards:
      names = ", ".join(f"{type(b).__name__} {b.name!r}" for b in backwards)
      other = "density" if direction == direction_lib.SAMPLING else "sampling"
      raise ValueError(
        f"FlowModel(direction={direction!r}): log_prob would run {names} "
        f"backwards (this package's layers map image -> latent in forward, "
        f"Glow latent -> image), i.e. a solve in every training step and "
        f"ActNorm uninitialisable from data. Pass direction={other!r}, or "
        f"wrap the layers in tfp_emerging.bijectors.sampling_direction()."
      )
    self._base_given = base_distribution is not None
    self._discrete_flow = discrete.DiscreteFlow(
      flow, num_bins, base_distribution, dequantizer
    )
    self.num_bins = self._discrete_flow.num_bins
    self._flow = flow
    self._num_classes = self._discrete_flow.num_classes
    self._density = self._discrete_flow.distribution
    self._event_shape = self._discrete_flow.image_shape
    self._event_dtype = self._discrete_flow.dtype
    layers_lib.build_lazy_variables(
      self._density, self._event_shape, self._event_dtype
    )
    self._flow_layers = layers_lib.flow_layers(flow)
    self._dequantizer = self._discrete_flow.dequantizer
    self._dequantizer_layers = (
      [] if dequantizer is None else layers_lib.flow_layers(dequantizer)
    )
    self._loss_tracker = keras.metrics.Mean(name="loss")
    self._bits_tracker = keras.metrics.Mean(name="bits_per_dim")
    self._num_samples = 1  # dequantisation draws per image in test_step
    if not KERAS_3:
      # tf_keras' metric results are already the mean over every replica
      # of every worker; its default ("sum" across the workers of a
      # multi-worker run) logged the per-step loss times the workers.
      self.distribute_reduction_method = "first"
    # `sample`'s flow.forward, on the flow frozen while its weights stay.
    self._generate = FrozenFunction(flow, _frozen_forward)
    self.built = True

  def get_config(self) -> dict[str, Any]:
    """`flow` (by config), `num_bins`, an explicit base distribution, `name`.

    Raises:
      ValueError: a flow or base distribution that has no config (which
        can: docs/training.md, "Saving").
    """
    return {
      "flow": serialization.flow_config(self._given_flow),
      "direction": self._direction,
      "num_bins": self.num_bins,
      "dequantizer": (
        None
        if self._dequantizer is None
        else serialization.flow_config(self._dequantizer)
      ),
      "base_distribution": (
        serialization.distribution_config(self._density.distribution)
        if self._base_given
        else None
      ),
      "name": self.name,
    }

  @classmethod
  def from_config(
    cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
  ) -> FlowModel:
    """A new, untrained `FlowModel` of the same flow (`get_config`)."""
    del custom_objects  # Flows are found through Keras' registry.
    config = dict(config)
    flow = serialization.flow_from_config(config.pop("flow"))
    base = config.pop("base_distribution", None)
    if base is not None:
      base = serialization.distribution_from_config(base)
    dequantizer = config.pop("dequantizer", None)
    if dequantizer is not None:
      dequantizer = serialization.flow_from_config(dequantizer)
    return cls(flow, base_distribution=base, dequantizer=dequantizer, **config)

  @property
  def flow(self) -> tfb.Bijector:
    """The flow in TFP's direction (latent -> image): the flow given, or its
    `tfb.Invert` for `direction="density"`."""
    return self._flow

  @property
  def discrete_flow(self) -> discrete.DiscreteFlow:
    """The density core: the flow, its base, `num_bins` and the dequantiser
    (`tfp_emerging.flows.DiscreteFlow`), which every bits/dim of the model
    and its export (`tfp_emerging.export.export`) use."""
    return self._discrete_flow

  @property
  def dequantizer(
    self,
  ) -> variational_dequantization.VariationalDequantizer | None:
    """`discrete_flow.dequantizer`: `q(u | k)`, or `None` (uniform)."""
    return self._discrete_flow.dequantizer

  @property
  def distribution(self) -> tfd.TransformedDistribution:
    """`discrete_flow.distribution`: `base` through `flow`, on the images
    in `[-0.5, 0.5)`."""
    return self._discrete_flow.distribution

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """`discrete_flow.image_shape`, `(H, W, C)`."""
    return self._discrete_flow.image_shape

  @property
  def num_classes(self) -> int | None:
    """`discrete_flow.num_classes`: `K` (class-conditional), else `None`."""
    return self._discrete_flow.num_classes

  @property
  def metrics(self) -> list[keras.metrics.Metric]:
    return [self._loss_tracker, self._bits_tracker]

  def _conditions(self, labels, caller):
    """The flow's keyword arguments that carry `labels` (`{}` for an
    unconditional flow); `ValueError` unless `labels` is given exactly
    when the flow is class-conditional."""
    input_checks.labels_given(self._num_classes, labels is not None, caller)
    if labels is None:
      return {}
    return conditions.route(self._flow, labels)

  def _checked_labels(self, labels, caller) -> tf.Tensor | None:
    """`labels` as a tensor (or `None`), checked now: given exactly when the
    flow is class-conditional, and known class ids within `0..K-1`."""
    self._conditions(labels, caller)
    if labels is None or self._num_classes is None:  # (None: refused above)
      return None
    labels = tf.convert_to_tensor(labels)
    input_checks.labels_dtype(labels.dtype, caller)
    if labels.dtype.is_integer:
      conditions.check_static_ids(
        labels, self._num_classes, f"{caller}: `labels`"
      )
    return labels

  def _checked_batch(self, images, labels, caller):
    """`(images, labels)` as tensors (`labels` `None` when not given),
    checked now: the labels (`_checked_labels`) and the batch's shapes
    (`input_checks.batch_shape`)."""
    labels = self._checked_labels(labels, caller)
    images = tf.convert_to_tensor(images)
    input_checks.batch_shape(
      self._event_shape,
      images.shape,
      None if labels is None else labels.shape,
      caller,
    )
    return images, labels

  def _bits(self, images, noise, labels, caller, seed=None, num_samples=1):
    """Bits/dim `[B]` of integer `images` (`DiscreteFlow.bits_per_dim`:
    dequantised from `noise`, or from `num_samples` fresh or `seed`ed draws
    when `noise` is `None`), after the checks of the labels and the range."""
    input_checks.labels_given(self._num_classes, labels is not None, caller)
    images = input_checks.pixel_levels(images, self.num_bins, caller)
    return self._discrete_flow.bits_per_dim(
      images, noise, labels, seed=seed, num_samples=num_samples
    )

  def call(
    self, inputs: tf.Tensor | Sequence[tf.Tensor], training: bool = False
  ) -> tf.Tensor:
    """Per-image bits/dim `[B]` of integer images, with fresh noise.

    `inputs`: images `[B, H, W, C]`, or `(images, labels)` for a
    class-conditional flow.
    """
    del training  # No layer behaves differently in training.
    images, labels = (
      inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
    )
    return self._bits(images, None, labels, "FlowModel.call")

  def _batch_bits(self, x, labels, caller, num_samples=1):
    """Per-image bits/dim of `x`: integer images (`num_samples` fresh draws
    of noise each), or a dict batch of the pipeline, `{LEVELS: k, NOISE:
    u}`, dequantised from its own noise (`u` `[B, H, W, C]`, or `[B, K, H,
    W, C]`: the importance-weighted bound); `labels` those of a
    class-conditional flow (else `None`)."""
    if not isinstance(x, dict):
      return self._bits(x, None, labels, caller, num_samples=num_samples)
    if LEVELS not in x or NOISE not in x:
      raise ValueError(
        f"{caller}: dict batches must hold the pixel levels and their "
        f"uniform noise, {{{LEVELS!r}: k, {NOISE!r}: u}} "
        f"(tfp_emerging.data.train_batches, test_batches); got keys "
        f"{sorted(x)}."
      )
    return self._bits(x[LEVELS], x[NOISE], labels, caller)

  def _weighted_bits(self, data, caller, num_samples=1):
    """`(bits, weights)` of a Keras batch `data`: `x`, `(x, y)` or `(x, y,
    sample_weight)`.

    `bits`: per-image bits/dim `[B]` (`_batch_bits`; `y` the labels).
    `weights`: each image's weight `[B]` in the means, `sample_weight` or a
    dict batch's `WEIGHT` entry (0 for padding: `data.test_batches` pads
    the last batch so that every batch has one shape), `None` when there are
    none (all 1). An image of weight 0 counts 0 bits, even if not finite.
    """
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(y, dict):  # `_weighted_targets`: weights, no labels
      weights = y[WEIGHT]
      y = None
    if isinstance(x, dict):
      weights = x.get(WEIGHT, weights)
    bits = self._batch_bits(x, y, caller, num_samples)
    if weights is None:
      return bits, None
    weights = tf.reshape(tf.cast(weights, bits.dtype), [-1])
    return tf.where(weights > 0, bits, tf.zeros_like(bits)), weights

  def train_step(
    self, data: tf.Tensor | dict[str, tf.Tensor] | tuple
  ) -> dict[str, tf.Tensor]:
    """One update on the batch's (weighted) mean bits/dim.

    `data` as in `test_step`. The loss is the mean of the per-image bits/dim
    `b_i`, weighted by `sample_weight` `w_i` when given: `sum_i w_i b_i /
    sum_i w_i` (0 for a batch of weight 0), the figure the logs report.
    Without trainable weights (every layer `trainable=False`) there is no
    update, as in Keras, and the metrics are still reported.
    """
    with tf.GradientTape() as tape:
      bits, weights = self._weighted_bits(data, "FlowModel.fit")
      if weights is None:
        loss = tf.reduce_mean(bits)
      else:
        loss = tf.math.divide_no_nan(
          tf.reduce_sum(weights * bits), tf.reduce_sum(weights)
        )
      # Under tf.distribute each replica holds its share of the global batch
      # and the optimizer sums the replicas' gradients: dividing by their
      # number makes the update that of the global batch's mean loss.
      scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
      if KERAS_3:
        # The identity unless the optimizer is Keras 3's LossScaleOptimizer
        # (mixed_float16), which unscales the gradients it is given.
        scaled = self.optimizer.scale_loss(scaled)
    variables = self.trainable_weights
    if variables:
      gradients = tape.gradient(scaled, variables)
      self.optimizer.apply_gradients(zip(gradients, variables))
    else:
      warnings.warn(
        "FlowModel.fit: the model has no trainable weights (every layer is "
        "trainable=False): no update; the metrics are still reported.",
        stacklevel=2,
      )
    return self._record(bits, weights)

  def test_step(
    self, data: tf.Tensor | dict[str, tf.Tensor] | tuple
  ) -> dict[str, tf.Tensor]:
    """Per-image bits/dim of a batch, added to the running per-image mean.

    `data` is `x`, `(x, y)` or `(x, y, sample_weight)`; `x` is a batch of
    integer images (fresh dequantisation noise) or a dict of the pixel
    levels and their noise, `{LEVELS: k, NOISE: u}` (`_batch_bits`).
    `sample_weight` `[B]`, or the dict's
    `WEIGHT` entry, weighs each image in the mean (0 for padding:
    `data.test_batches` pads the last batch so that every batch has one
    shape); `y`, the labels, is given to a class-conditional flow only
    (an unconditional one raises `ValueError`).
    """
    bits, weights = self._weighted_bits(
      data, "FlowModel.evaluate", self._num_samples
    )
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

  def fit(
    self,
    x: tf.data.Dataset | np.ndarray | tf.Tensor | None = None,
    y: np.ndarray | tf.Tensor | None = None,
    batch_size: int | None = None,
    **kwargs,
  ) -> keras.callbacks.History:
    """`keras.Model.fit`, after the data-dependent init if not yet done.

    `sample_weight=` (arrays) or `(images, labels, sample_weight)` batches
    weigh each image in the loss and the logged means (`train_step`). A
    Keras 3 optimizer's `LearningRateSchedule` becomes a
    `schedules.ScaledSchedule` of it, which callbacks that set the learning
    rate (`keras.callbacks.ReduceLROnPlateau`) can lower.

    Raises:
      ValueError: an empty dataset or array; images not `[B,
        *event_shape]`; labels given to an unconditional model, missing for
        a conditional one, or not integer ids or floating vectors; integer
        images that are not whole numbers in `[0, num_bins)` (checked in
        every training step).
    """
    input_checks.keras_input(
      x, y, self._num_classes, self._event_shape, "FlowModel.fit"
    )
    if not self.is_initialized():
      images, labels = _first_batch(x, y, batch_size)
      # Every worker of a multi-worker run must draw the same noise.
      seed = 0 if distribute.is_multi_worker(self.distribute_strategy) else None
      self.initialize(images, labels, seed=seed)
    y = _weighted_targets(x, y, kwargs)
    with self.distribute_strategy.scope():
      # Callbacks that set the learning rate (ReduceLROnPlateau) can then
      # lower a LearningRateSchedule too, which Keras 3 refuses.
      schedules.make_settable(self.optimizer)
      if KERAS_3 and not self.optimizer.built:
        # Creating the slots here, not in the first traced step, spares
        # Keras a second trace of the whole training step.
        self.optimizer.build(self.trainable_variables)
    with input_checks.pixel_level_errors():
      return super().fit(x, y, batch_size=batch_size, **kwargs)

  def evaluate(
    self,
    x: tf.data.Dataset | np.ndarray | tf.Tensor | None = None,
    y: np.ndarray | tf.Tensor | None = None,
    num_samples: int = 1,
    **kwargs,
  ) -> list[float] | dict[str, float]:
    """`keras.Model.evaluate`: `[loss, bits_per_dim]` (see the class).

    With `num_samples = K > 1`, each integer image is dequantised `K` times
    and its bits/dim are the importance-weighted bound over the draws
    (`dequantization.importance_weighted_bits_per_dim`): tighter than the
    single-draw figure, at `K` times the cost. The pipeline's batches
    (`{LEVELS: k, NOISE: u}`) carry their draws themselves: `u` `[B, K, H,
    W, C]` (`data.pipeline.test_batches(..., num_samples=K)`).

    Raises:
      ValueError: an empty dataset or array; images not `[B,
        *event_shape]` (or labels not one per image, given to an
        unconditional model, or not integer ids or floating vectors);
        integer images that are not whole numbers in `[0, num_bins)`;
        `num_samples` not an integer >= 1.
    """
    num_samples = checks.positive_int(num_samples, "num_samples")
    input_checks.keras_input(
      x, y, self._num_classes, self._event_shape, "FlowModel.evaluate"
    )
    y = _weighted_targets(x, y, kwargs)
    with input_checks.pixel_level_errors(), self._draws(num_samples):
      return super().evaluate(x, y, **kwargs)

  @contextlib.contextmanager
  def _draws(self, num_samples):
    """`test_step` with `num_samples` draws per image within the block (a
    new traced step when that changes; `fit`'s validation keeps one)."""
    if num_samples == self._num_samples:
      yield
      return
    self._num_samples, self.test_function = num_samples, None
    try:
      yield
    finally:
      self._num_samples, self.test_function = 1, None

  def save(
    self, filepath: str | os.PathLike[str] | io.IOBase, *args, **kwargs
  ) -> None:
    """`keras.Model.save` to a `.keras` file, refusing what cannot load.

    The config is made first, so that a flow without one raises before any
    file is written; a failed save removes the file it began. HDF5
    (`.h5`, `.hdf5`) is refused: Keras' HDF5 model files rebuild models
    from layer configs, which a flow of bijectors has not (use `.keras`, or
    `save_weights(".weights.h5")`).

    Raises:
      ValueError: an HDF5 path, or a flow or base distribution without a
        config (`get_config`).
    """
    path = (
      os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
    )
    if path is not None and path.lower().endswith(_HDF5_SUFFIXES):
      raise ValueError(
        f"FlowModel.save({path!r}): HDF5 model files cannot hold a flow; "
        f"save as .keras (model.save('model.keras')), or only the weights "
        f"(model.save_weights('model.weights.h5'))."
      )
    self.get_config()  # Raises, naming what has no config, before a write.
    existed = path is not None and os.path.exists(path)
    try:
      return super().save(filepath, *args, **kwargs)
    except BaseException:
      if path is not None and not existed and os.path.isfile(path):
        os.remove(path)
      raise

  def load_weights(
    self, filepath: str | os.PathLike[str], *args, **kwargs
  ) -> None:
    """`keras.Model.load_weights`, the optimizer's state included.

    A `.weights.h5` file of a trained model holds the optimizer's
    variables too (its step count and moments), but Keras restores them
    only into an optimizer that has made its variables, and otherwise
    skips them with a warning: a compiled model whose optimizer has not
    run yet would resume training from a fresh optimizer. So the
    optimizer makes its variables first.
    """
    optimizer = getattr(self, "optimizer", None)
    if optimizer is not None and not getattr(optimizer, "built", True):
      optimizer.build(self.trainable_variables)
    return super().load_weights(filepath, *args, **kwargs)

  def is_initialized(self) -> bool:
    """Whether the flow's data-dependent initialisation has run (or is none).

    The flow's own `is_initialized()` if it has one (`Glow`); otherwise
    whether every boolean variable of the flow, the `initialized` flags of
    its data-dependent layers (this library's `ActNorm`, TFP's
    `ActivationNormalization`), is `True`.
    """
    check = getattr(self._flow, "is_initialized", None)
    if check is not None:
      return bool(check())
    return all(
      bool(v.numpy()) for v in self._flow.variables if v.dtype == tf.bool
    )

  def initialize(
    self,
    images: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | None = None,
    seed: int | tf.Tensor | None = None,
  ) -> None:
    """Data-dependent initialisation of the flow from integer `images`.

    Dequantises `images` (noise from `seed` if given) and calls
    `flow.initialize` (with `conditional_input=labels` for a
    class-conditional `Glow`), or, for a flow without one, evaluates
    `log_prob` once, which initialises the layers that initialise themselves
    from their first batch (this library's `ActNorm`, TFP's `tfb.Glow`).
    Call it eagerly, outside `strategy.run`, with a global batch; on
    several workers (`MultiWorkerMirroredStrategy`) each one initialises its
    copy, so all must pass the same batch and `seed`.

    Raises:
      ValueError: `seed` is `None` under a multi-worker strategy (the
        workers would draw different noise and train different models).
    """
    if seed is None and distribute.is_multi_worker(self.distribute_strategy):
      raise ValueError(
        "FlowModel.initialize: `seed` must be given on several workers "
        "(MultiWorkerMirroredStrategy), so that every worker draws the "
        "same noise; got None."
      )
    images, labels = self._checked_batch(images, labels, "FlowModel.initialize")
    conditions = self._conditions(labels, "FlowModel.initialize")
    with input_checks.pixel_level_errors():
      images = input_checks.pixel_levels(
        images, self.num_bins, "FlowModel.initialize"
      )
    x, _ = self._discrete_flow.dequantize(
      images, self._discrete_flow.uniform_noise(tf.shape(images)[0], seed)
    )
    initialize = getattr(self._flow, "initialize", None)
    if initialize is not None:
      initialize(x, **conditions)
    else:
      self._density.log_prob(x, bijector_kwargs=conditions)

  def bits_per_dim(
    self,
    images: tf.Tensor | np.ndarray,
    labels: tf.Tensor | np.ndarray | None = None,
    seed: int | None = None,
    num_samples: int = 1,
  ) -> tf.Tensor:
    """Bits/dim per image, `[B]`, of integer `images` `[B, H, W, C]`.

    `labels`: the images' classes for a class-conditional flow (ids `[B]`
    or vectors `[B, K]`). The dequantisation noise is fresh on each call
    unless `seed` (an int) is given, which makes the result reproducible.
    `num_samples = K > 1`: the importance-weighted bound over `K` draws
    per image (see `evaluate`). No images (`B = 0`): an empty result `[0]`,
    as TF's per-example ops give.

    Raises:
      ValueError: images not `[B, *event_shape]`, or labels not one per
        image or not integer ids or floating vectors; integer images that
        are not whole numbers in `[0, num_bins)`.
    """
    num_samples = checks.positive_int(num_samples, "num_samples")
    images, labels = self._checked_batch(
      images, labels, "FlowModel.bits_per_dim"
    )
    if images.shape[0] == 0:
      input_checks.pixel_levels(images, self.num_bins, "FlowModel.bits_per_dim")
      return tf.zeros([0], self._event_dtype)
    with input_checks.pixel_level_errors():
      if seed is None:
        return self._bits_fn(images, labels, num_samples)
      return self._seeded_bits_fn(
        images, labels, tf.constant([seed, 0], tf.int64), num_samples
      )

  @tf.function(reduce_retracing=True)
  def _bits_fn(self, images, labels, num_samples):
    return self._bits(
      images, None, labels, "FlowModel.bits_per_dim", num_samples=num_samples
    )

  @tf.function(reduce_retracing=True)
  def _seeded_bits_fn(self, images, labels, seed, num_samples):
    return self._bits(
      images,
      None,
      labels,
      "FlowModel.bits_per_dim",
      seed=seed,
      num_samples=num_samples,
    )

  def sample(
    self,
    n: int,
    temperature: float = 1.0,
    seed: int | tf.Tensor | None = None,
    labels: int | tf.Tensor | np.ndarray | None = None,
  ) -> tf.Tensor:
    """`n` integer images `[n, H, W, C]` (int32, `0..num_bins-1`).

    `x = flow.forward(z)`, `z` the base sample at `temperature`
    (`tfp_emerging.export.tempered_sample`: `m + T (z - m)`, `m` the base's
    mode; for a Gaussian base its standard deviation scaled by `T`, Glow's
    temperature), quantised with clipping. An int `seed` gives the same
    images on every call. Cost: one sampling pass of the flow (its solves),
    frozen (`tfp_emerging.bijectors.freeze`) while its weights stay put:
    frozen at the first call, and again at a call that sees the weights as
    the previous call saw them after they changed (a training step, an
    `assign`); a call right after a change runs the flow itself, so
    sampling once per epoch never re-traces. Every call compares the frozen
    weights with a copy, `O(weights)`
    (`tfp_emerging.bijectors.FrozenFunction`).

    Args:
      n: the number of images, an int `>= 0` (0: an empty batch).
      temperature: `T >= 0`.
      seed: an int (reproducible), a stateless seed `[2]`, or `None`.
      labels: for a class-conditional flow, the class of each image: one
        class id (all `n` images), ids `[n]` in `0..K-1`, or vectors
        `[n, K]`.

    Raises:
      ValueError: `temperature` not a finite number >= 0; the flow is not
        initialised yet (`initialize`, `fit`); labels missing for a
        class-conditional flow, given for another, or not one per image.
    """
    n = checks.positive_int(n, "n", minimum=0)
    checks.temperature(temperature)
    if not self.is_initialized():
      raise ValueError(
        "The flow is not initialised: fit the model, or call "
        "`initialize(images)` (or evaluate it on data) before sampling."
      )
    labels = self._checked_labels(labels, "FlowModel.sample")
    if n == 0:
      return tf.zeros([0, *self._event_shape], tf.int32)
    if labels is not None:
      if labels.shape.rank == 0:
        labels = tf.fill([n], labels)
      elif labels.shape[0] is not None and labels.shape[0] != n:
        raise ValueError(
          f"FlowModel.sample: `labels` must give one class per "
          f"image ({n}); got shape {labels.shape.as_list()}."
        )
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([seed, 0], tf.int32)  # Stateless: reproducible.
    z = export_lib.tempered_sample(
      self._density.distribution, n, temperature, seed
    )
    return dequantization.quantize(self._generate(z, labels), self.num_bins)

  def export(
    self,
    filepath: str | os.PathLike[str],
    format: str = "tf_saved_model",
    verbose: bool | None = None,
    input_signature: Sequence[tf.TensorSpec] | None = None,
    **kwargs,
  ) -> export_lib.FlowExport:
    """Writes a TensorFlow SavedModel serving `log_prob` and `sample`.

    `keras.Model.export`'s signature; the SavedModel is
    `tfp_emerging.export.export(self.discrete_flow, filepath)`'s: signatures
    `log_prob` (also `serving_default`) and `sample`. No input signature is
    needed: the image shape is known.

    Args:
      filepath: the SavedModel's directory.
      format: `"tf_saved_model"`, the only one.
      verbose: print where it went (default `True`).
      input_signature: optional; must accept `[None, H, W, C]` images of the
        model's dtype (and int32 labels `[None]` for a class-conditional
        model, whose `log_prob` takes `(x, labels)` and `sample` `(labels,
        temperature, seed)`).
      **kwargs: none are supported.

    Returns:
      The exported `tfp_emerging.export.FlowExport`.

    Raises:
      ValueError: another `format`, an incompatible `input_signature`, or
        other arguments.
    """
    if format != "tf_saved_model":
      raise ValueError(
        f"FlowModel.export writes format='tf_saved_model' "
        f"only; got format={format!r}."
      )
    if kwargs:
      raise ValueError(f"FlowModel.export takes no {sorted(kwargs)}.")
    if input_signature is not None:
      specs = tf.nest.flatten(input_signature)
      expected = [tf.TensorSpec([None, *self._event_shape], self._event_dtype)]
      if self._num_classes is not None:
        expected.append(tf.TensorSpec([None], tf.int32))
      if len(specs) != len(expected) or not all(
        tf.as_dtype(spec.dtype) == want.dtype
        and tf.TensorShape(spec.shape).is_compatible_with(want.shape)
        for spec, want in zip(specs, expected)
      ):
        raise ValueError(
          f"`input_signature` must describe "
          f"{'images and labels ' if len(expected) > 1 else 'images '}"
          f"{expected}; got {input_signature!r}."
        )
    module = export_lib.export(self._discrete_flow, filepath)
    if verbose is None or verbose:
      print(
        f"Saved a SavedModel at '{filepath}' with signatures log_prob "
        f"(serving_default) and sample."
      )
    return module
