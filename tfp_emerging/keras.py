"""Keras training of image flows: `FlowModel` and a warm-up schedule.

Works with the Keras that TensorFlow selects (`tf.keras`): Keras 3 by
default, `tf_keras` when `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is
imported.

Variable tracking. The flow's bijectors own plain `tf.Variable`s, which
Keras 3 does not track (nor `tf.Module`s such as bijectors). `FlowModel`
therefore holds one Keras layer per part of the flow (`FlowLayer`: each
bijector of a `Glow` step, each prior, each bijector of a `tfb.Chain`...),
and each layer owns that part's variables: under Keras 3 as `keras.Variable`s
built *on* the very `tf.Variable`s (`keras.Variable(v)` keeps `v` as its
value), under `tf_keras` as the `tf.Variable`s themselves. So the
optimizer's updates, `summary()`, `save_weights`/`load_weights`, `.keras`
files and `tf.train.Checkpoint(model=model)` all act on exactly the
variables the bijectors read, non-trainable ones included (ActNorm's
`initialized` flags, `Conv1x1`'s fixed signs and permutation). Wrapping
beats re-creating the variables as Keras weights: the bijectors stay plain
TFP bijectors, usable without Keras, and any TFP bijector can be a flow.
"""

import re
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging import export as export_lib
from tfp_emerging.flows import dequantization
from tfp_emerging.flows import glow as glow_lib
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions

keras = tf.keras
tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["FlowLayer", "FlowModel", "WarmupSchedule"]

KERAS_3 = hasattr(keras, "Variable")


# The keys of a batch `x` given as a dict: `DEQUANTIZED`, the images already
# dequantised (float, in `[-0.5, 0.5)`), e.g. with noise seeded per image by
# the input pipeline (`tfp_emerging.training.train_batches` and
# `test_batches`); optionally `WEIGHT`, each image's weight `[B]` in the
# evaluation's mean (0 for padding).
DEQUANTIZED = "dequantized"
WEIGHT = "weight"


def _first_batch(x, y, batch_size):
  """`(images, labels)` of the first batch `fit` will see, for the
  data-dependent initialisation (`labels` `None` when there are none)."""
  if isinstance(x, tf.data.Dataset):
    first = next(iter(x.take(1)))
    images, labels, _ = keras.utils.unpack_x_y_sample_weight(first)
    return images, labels
  if isinstance(x, (np.ndarray, tf.Tensor)):
    size = batch_size or 32
    return x[:size], None if y is None else y[:size]
  raise ValueError(
      "FlowModel.fit can initialise ActNorm from a tf.data.Dataset, a numpy "
      "array or a tensor of images; for other inputs call "
      "`model.initialize(images)` before `fit`.")


def _snake_case(name):
  """`name` as a Keras layer or variable name: `[A-Za-z0-9_.-]`, no `/`."""
  name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.split(":")[0])
  return re.sub(r"[^\w.-]+", "_", name).strip("_").lower() or "part"


class FlowLayer(keras.layers.Layer):
  """One part of a flow (a bijector or a prior) as a Keras layer.

  Owns the part's variables (see the module docstring), so that Keras
  counts, trains and saves them. `summary()` shows each layer with the
  class name of its part (e.g. `level0_step0_actnorm (ActNorm)`): the layer
  of a part of class `C` is an instance of a subclass of `FlowLayer` named
  `C`, made once per class (`for_part`). The layer has no `call`; the flow
  itself computes, through its bijectors.
  """

  _subclasses = {}

  def __init__(self, part, variables, networks=(), name=None):
    """Wraps `part`.

    Args:
      part: the bijector or prior (a `tf.Module`).
      variables: the `tf.Variable`s this layer owns (the part's, less any an
        earlier layer owns).
      networks: Keras layers (of the active Keras) inside `part`, tracked as
        sublayers.
      name: the layer's name.
    """
    super().__init__(name=name)
    object.__setattr__(self, "_part", part)  # Not tracked: the model is.
    if KERAS_3:
      self._part_variables = [
          keras.Variable(v, trainable=v.trainable, name=_snake_case(v.name))
          for v in variables]
    else:
      for v in variables:
        (self._trainable_weights if v.trainable else
         self._non_trainable_weights).append(v)
    self._networks = list(networks)
    self.built = True

  @classmethod
  def for_part(cls, part, variables, networks, name):
    """A layer for `part`, of the `FlowLayer` subclass named like its class."""
    kind = type(part)
    if kind not in cls._subclasses:
      shown = kind.__name__.lstrip("_")  # TFP's Invert class is `_Invert`.
      cls._subclasses[kind] = type(shown, (cls,), {
          "__module__": __name__, "__doc__": f"`FlowLayer` of a `{shown}`."})
    return cls._subclasses[kind](part, variables, networks, name)

  @property
  def part(self):
    """The wrapped bijector or prior."""
    return self._part


def _flow_parts(flow, prefix=""):
  """`(name, part)` for each part of `flow` that gets a `FlowLayer`.

  A `Glow`: each layer of each step (`level0_step0_actnorm`, ...) and each
  level's prior; a `tfb.Chain` (any composition) or the `tfb.Invert` of one:
  the parts of its bijectors, in its list's order; any other bijector
  (including the `tfb.Invert` of one, which may hold its network, as in
  TFP's `tfb.Glow`): itself.
  """
  if isinstance(flow, glow_lib.Glow):
    for level, (layers, prior) in enumerate(zip(flow.steps, flow.priors)):
      per_step = len(layers) // flow.num_steps
      for i, layer in enumerate(layers):
        yield (f"{prefix}level{level}_step{i // per_step}_"
               f"{_snake_case(layer.name)}", layer)
      yield f"{prefix}level{level}_{_snake_case(prior.name)}", prior
  elif isinstance(flow, tfb.Composition):
    for i, bijector in enumerate(flow.bijectors):
      yield from _flow_parts(bijector, f"{prefix}{i}_")
  elif isinstance(flow, tfb.Invert) and isinstance(
      flow.bijector, (tfb.Composition, glow_lib.Glow)):
    yield from _flow_parts(flow.bijector, prefix)
  else:
    yield f"{prefix}{_snake_case(flow.name)}", flow


def _keras_layer_classes():
  """The `Layer` classes of the Keras packages loaded in this process."""
  return tuple(module.layers.Layer for module in
               (sys.modules.get("keras"), sys.modules.get("tf_keras"))
               if module is not None and hasattr(module, "layers"))


def _flow_layers(flow):
  """One `FlowLayer` per part of `flow` that owns variables, in flow order.

  Each variable belongs to the first part that holds it; variables of the
  flow that no part holds go to a last layer named after the flow. Keras
  layers of the active Keras inside a part (Keras 3 layers own
  `keras.Variable`s, which `tf.Module` does not see) become its sublayers.
  """
  claimed, layers, names = set(), [], {}

  def take(module):
    variables = [v for v in module.variables if v.ref() not in claimed]
    networks = [] if not KERAS_3 else [
        layer for layer in module._flatten(  # pylint: disable=protected-access
            predicate=lambda m: isinstance(m, keras.layers.Layer))
        if id(layer) not in claimed]
    claimed.update(v.ref() for v in variables)
    claimed.update(id(layer) for layer in networks)
    return variables, networks

  parts = list(_flow_parts(flow))
  parts.append((f"{_snake_case(flow.name)}_other", flow))
  for name, part in parts:
    variables, networks = take(part)
    if variables or networks:
      count = names.get(name, 0)
      names[name] = count + 1
      layers.append(FlowLayer.for_part(
          part, variables, networks, name if not count else f"{name}_{count}"))
  return layers


def _build_lazy_variables(distribution, event_shape, dtype):
  """Creates the variables of Keras networks that build on first call.

  Traces `distribution.log_prob` on a symbolic batch of one image (nothing
  runs: no data-dependent initialisation happens), only when the flow holds
  an unbuilt Keras layer (e.g. a network without an `Input` in TFP's
  `tfb.Glow`). A static batch size, as some TFP bijectors need one.
  """
  unbuilt = list(distribution.bijector._flatten(  # pylint: disable=protected-access
      predicate=lambda m: isinstance(m, _keras_layer_classes()) and
      not m.built, recursive=True))
  if unbuilt:
    tf.function(distribution.log_prob).get_concrete_function(
        tf.TensorSpec([1, *event_shape], dtype))


def _array_config(value):
  array = tf.get_static_value(value)
  if array is None:
    raise ValueError(
        f"cannot save a base distribution parameter {value!r}: only "
        f"constants (not variables) are saved in a config.")
  array = np.asarray(array)
  return {"array": array.tolist(), "dtype": array.dtype.name}


def _distribution_config(distribution):
  """A JSON description of a `tfd` distribution with constant parameters."""
  kind = type(distribution)
  if getattr(tfd, kind.__name__, None) is not kind:
    raise ValueError(
        f"cannot save a base distribution of class {kind.__name__}: only "
        f"`tfp.distributions` classes are saved in a config.")
  config = {}
  for key, value in distribution.parameters.items():
    if isinstance(value, tfd.Distribution):
      value = {"distribution": _distribution_config(value)}
    elif hasattr(value, "trainable"):  # tf.Variable, keras.Variable
      raise ValueError(
          f"cannot save the base distribution's `{key}`, a variable: only "
          f"constant parameters are saved in a config.")
    elif value is not None and not isinstance(value, (bool, int, float, str)):
      value = _array_config(value)
    config[key] = value
  return {"class_name": kind.__name__, "config": config}


def _distribution_from_config(config):
  """The distribution `_distribution_config` describes."""
  kind = getattr(tfd, config["class_name"], None)
  if not (isinstance(kind, type) and issubclass(kind, tfd.Distribution)):
    raise ValueError(f"unknown distribution {config['class_name']!r}.")
  arguments = {}
  for key, value in config["config"].items():
    if isinstance(value, dict) and "distribution" in value:
      value = _distribution_from_config(value["distribution"])
    elif isinstance(value, dict):
      value = np.asarray(value["array"], value["dtype"])
    arguments[key] = value
  return kind(**arguments)


def _flow_config(flow):
  """`{"class_name", "config"}` of a flow registered with Keras."""
  name = keras.utils.get_registered_name(type(flow))
  if (not hasattr(flow, "get_config") or
      keras.utils.get_registered_object(name) is not type(flow)):
    raise ValueError(
        f"A FlowModel saves its flow by config: the flow's class "
        f"({type(flow).__name__}) needs `get_config`/`from_config` and "
        f"`keras.utils.register_keras_serializable` (tfp_emerging's Glow has "
        f"both). Without them, use `save_weights` or `tf.train.Checkpoint` "
        f"and rebuild the flow in code.")
  return {"class_name": name, "config": flow.get_config()}


def _flow_from_config(config):
  kind = keras.utils.get_registered_object(config["class_name"])
  if kind is None:
    raise ValueError(
        f"unknown flow class {config['class_name']!r}: register it with "
        f"`keras.utils.register_keras_serializable` before loading.")
  return kind.from_config(config["config"])


keras.utils.register_keras_serializable(package="tfp_emerging")(
    glow_lib.Glow)


@keras.utils.register_keras_serializable(package="tfp_emerging")
class FlowModel(keras.Model):
  """A `keras.Model` that trains a flow on n-bit images, in bits per dimension.

  `FlowModel(flow, num_bins)` holds `distribution =
  tfd.TransformedDistribution(base, flow)`, `base` being
  `flow.base_distribution()` (e.g. `Glow`'s standard normal) unless given.
  `flow` is any TFP bijector latent -> image: a `Glow`, a `tfb.Chain`, TFP's
  own `tfb.Glow` (with `base_distribution=tfd.Sample(tfd.Normal(0., 1.),
  glow.inverse_event_shape(image_shape))`). The image shape `[H, W, C]` is
  the distribution's event shape.
  Inputs are integer-valued pixels `[B, H, W, C]` (uint8, int or float) in
  `0..num_bins-1`, e.g. 17 levels for sklearn's digits. Each batch is
  dequantised with fresh uniform noise to `x = (k + u) / B - 1/2` and the
  loss is

      bits/dim = -(log p(x) - D log B) / (D log 2),   D = H W C

  (`tfp_emerging.flows.dequantization`), an upper bound on the discrete
  model's code length.

  * `compile(optimizer=...)` needs no loss; `fit(data, epochs=...,
    validation_data=...)` with a `tf.data.Dataset` of image batches (or
    `(images, labels)` pairs; an unconditional model ignores the labels) or
    an image array (and `y=labels`). `fit` runs the flow's data-dependent
    initialisation on the first (global) batch, eagerly and outside any
    replica context, unless already done (for other inputs, call
    `initialize` yourself). The logs (and progress bar) report `loss` and
    `bits_per_dim`, both the mean bits/dim of the epoch's batches (`val_...`
    for the validation data).
  * `evaluate` returns `[loss, bits_per_dim]` (both bits/dim; a dict with
    `return_dict=True`), with fresh dequantisation noise.
  * `bits_per_dim(images, labels=None, seed=None)`: per image, `[B]`;
    reproducible when `seed` is an int (the noise is drawn statelessly from
    it).
  * `sample(n, temperature=1.0, seed=None, labels=None)`: int32 images
    `[n, H, W, C]` in `0..num_bins-1`, `flow.forward` of a tempered base
    sample (`tfp_emerging.export.tempered_sample`: Glow's temperature, the
    base's deviation from its mode scaled by `temperature`), quantised.
  * `initialize(images, labels=None)`: the flow's data-dependent
    initialisation from one dequantised batch.

  Class-conditional flows. When the flow has class-conditional parts (a
  `Glow(..., num_classes=K)`, also inside a `tfb.Chain` or `tfb.Invert`),
  `num_classes` is `K` and every density and sampling call takes the labels:
  `fit` and `evaluate` read them from `(images, labels)` batches (or `y=`),
  `bits_per_dim`, `initialize` and `sample` from `labels=`, either int class
  ids `[B]` in `0..K-1` or one-hot (or any) vectors `[B, K]`; `sample` also
  takes one class id for all `n` images. They reach the flow TFP's way:
  `log_prob(x, bijector_kwargs={"conditional_input": labels})`, routed by
  bijector name through a `tfb.Chain`. A conditional model without labels
  (or an unconditional one given `labels=`) raises `ValueError`.
  * `summary()` lists one layer per part of the flow (`FlowLayer`: each
    bijector of each step, each prior, ...) with its parameter count.
  * Saving: `model.save("m.keras")` and `keras.models.load_model("m.keras")`
    (the flow is rebuilt from its config: a `Glow`, or any flow class with
    `get_config`/`from_config` registered with Keras; a base distribution
    given explicitly must be a `tfp.distributions` class with constant
    parameters), a full-model `keras.callbacks.ModelCheckpoint`,
    `save_weights(path)` / `load_weights(path)` (Keras 3 wants a path ending
    in `.weights.h5`) and `tf.train.Checkpoint(model=model, ...)` all hold
    every variable of the flow, the non-trainable ones included (ActNorm's
    `initialized` flags, `Conv1x1`'s fixed signs and permutation).
  * `export(path)`: a SavedModel serving `log_prob` and `sample`, no input
    signature needed (`tfp_emerging.export`).

  Cost per training image: one density pass of the flow (its `inverse`:
  convolutions only, no solves) and its gradient.
  """

  def __init__(self, flow, num_bins=256, base_distribution=None,
               name="flow_model", **kwargs):
    """Wraps `flow`.

    Args:
      flow: a TFP bijector latent -> image on events `[H, W, C]`, such as
        `tfp_emerging.flows.Glow`, a `tfb.Chain` or TFP's `tfb.Glow`.
      num_bins: `B >= 2`, the number of pixel levels (256 for 8 bits).
      base_distribution: optional base; default `flow.base_distribution()`.
      name: the model's name.
      **kwargs: passed to `keras.Model`.

    Raises:
      ValueError: a bad `num_bins`, a `flow` that is no bijector, no base
        distribution, or images that are not `[H, W, C]` of known size.
    """
    super().__init__(name=name, **kwargs)
    self.num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
    if not isinstance(flow, tfb.Bijector):
      raise ValueError(f"`flow` must be a TFP bijector; got {flow!r}.")
    self._base_given = base_distribution is not None
    if base_distribution is None:
      if not hasattr(flow, "base_distribution"):
        raise ValueError("`base_distribution` must be given for a flow "
                         "without `base_distribution()`.")
      base_distribution = flow.base_distribution()
    self._flow = flow
    self._num_classes = conditions.num_classes_of(flow)
    self._density = tfd.TransformedDistribution(base_distribution, flow)
    event_shape = self._density.event_shape
    if event_shape.rank != 3 or not event_shape.is_fully_defined():
      raise ValueError(
          f"The flow must map the base distribution to images [H, W, C] of "
          f"known size; its events have shape {event_shape}.")
    self._event_shape = tuple(event_shape.as_list())
    self._num_dims = int(np.prod(self._event_shape))
    # A tfb.Chain's dtype is None: the images have the distribution's.
    self._event_dtype = tf.as_dtype(self._density.dtype)
    _build_lazy_variables(self._density, self._event_shape,
                          self._event_dtype)
    self._flow_layers = _flow_layers(flow)
    self._loss_tracker = keras.metrics.Mean(name="loss")
    self._bits_tracker = keras.metrics.Mean(name="bits_per_dim")
    self.built = True

  def get_config(self):
    """`flow` (by config), `num_bins`, an explicit base distribution, `name`.

    Raises:
      ValueError: a flow or base distribution that has no config (see the
        class docstring).
    """
    return {
        "flow": _flow_config(self._flow),
        "num_bins": self.num_bins,
        "base_distribution": (
            _distribution_config(self._density.distribution)
            if self._base_given else None),
        "name": self.name,
    }

  @classmethod
  def from_config(cls, config, custom_objects=None):
    """A new, untrained `FlowModel` of the same flow (`get_config`)."""
    del custom_objects  # Flows are found through Keras' registry.
    config = dict(config)
    flow = _flow_from_config(config.pop("flow"))
    base = config.pop("base_distribution", None)
    if base is not None:
      base = _distribution_from_config(base)
    return cls(flow, base_distribution=base, **config)

  @property
  def flow(self):
    return self._flow

  @property
  def distribution(self):
    """`tfd.TransformedDistribution(base, flow)` on the `[-0.5, 0.5)` images."""
    return self._density

  @property
  def image_shape(self):
    """`(H, W, C)`, the shape of one image."""
    return self._event_shape

  @property
  def num_classes(self):
    """`K` for a class-conditional flow, else `None`."""
    return self._num_classes

  @property
  def metrics(self):
    return [self._loss_tracker, self._bits_tracker]

  def _conditions(self, labels, caller):
    """The flow's keyword arguments that carry `labels` (`{}` for an
    unconditional flow); `ValueError` unless `labels` is given exactly
    when the flow is class-conditional."""
    if self._num_classes is None:
      if labels is not None:
        raise ValueError(
            f"{caller}: this FlowModel's flow is not class-conditional, so it "
            f"takes no labels; build it from e.g. Glow(..., num_classes=K).")
      return {}
    if labels is None:
      raise ValueError(
          f"{caller}: this FlowModel is class-conditional ({self._num_classes} "
          f"classes) and needs the labels: (images, labels) batches for fit "
          f"and evaluate, labels= for the other methods.")
    return conditions.route(self._flow, labels)

  def _checked_labels(self, labels, caller):
    """`labels` as a tensor (or `None`), checked now: given exactly when the
    flow is class-conditional, and known class ids within `0..K-1`."""
    self._conditions(labels, caller)
    if labels is None:
      return None
    labels = tf.convert_to_tensor(labels)
    if labels.dtype.is_integer:
      conditions.check_static_ids(labels, self._num_classes,
                                  f"{caller}: `labels`")
    return labels

  def _continuous_bits(self, x, labels=None, caller="FlowModel"):
    log_prob = self._density.log_prob(
        x, bijector_kwargs=self._conditions(labels, caller))
    return dequantization.bits_per_dim(log_prob, self._num_dims,
                                       self.num_bins)

  def _noisy_bits(self, images, labels=None, seed=None, caller="FlowModel"):
    x = dequantization.dequantize(images, self.num_bins, seed=seed,
                                  dtype=self._event_dtype)
    return self._continuous_bits(x, labels, caller)

  def call(self, inputs, training=False):
    """Per-image bits/dim `[B]` of integer images, with fresh noise.

    `inputs`: images `[B, H, W, C]`, or `(images, labels)` for a
    class-conditional flow.
    """
    del training  # No layer behaves differently in training.
    images, labels = (inputs if isinstance(inputs, (tuple, list))
                      else (inputs, None))
    return self._noisy_bits(images, labels, caller="FlowModel.call")

  def _labels_of(self, y):
    """The labels of a Keras batch's `y` that the flow takes: `y` for a
    class-conditional flow; an unconditional one ignores any `y`."""
    return y if self._num_classes is not None else None

  def _batch_bits(self, x, y, caller):
    """Per-image bits/dim of `x`: integer images (fresh noise), or a dict
    whose `DEQUANTIZED` entry holds the dequantised images; `y` the labels
    (used by a class-conditional flow only)."""
    labels = self._labels_of(y)
    if isinstance(x, dict):
      return self._continuous_bits(x[DEQUANTIZED], labels, caller)
    return self._noisy_bits(x, labels, caller=caller)

  def train_step(self, data):
    x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
      bits = self._batch_bits(x, y, "FlowModel.fit")
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
    shape); `y`, the labels, is used by a class-conditional flow only.
    """
    x, y, weights = keras.utils.unpack_x_y_sample_weight(data)
    if isinstance(x, dict):
      weights = x.get(WEIGHT, weights)
    bits = self._batch_bits(x, y, "FlowModel.evaluate")
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
      images, labels = _first_batch(x, y, batch_size)
      self.initialize(images, self._labels_of(labels))
    if KERAS_3 and not self.optimizer.built:
      # Creating the slots here, not in the first traced step, spares Keras
      # a second trace of the whole training step.
      with self.distribute_strategy.scope():
        self.optimizer.build(self.trainable_variables)
    return super().fit(x, y, batch_size=batch_size, **kwargs)

  def is_initialized(self):
    """Whether the flow's data-dependent initialisation has run (or is none).

    The flow's own `is_initialized()` if it has one (`Glow`); otherwise
    whether every boolean variable of the flow, the `initialized` flags of
    its data-dependent layers (this library's `ActNorm`, TFP's
    `ActivationNormalization`), is `True`.
    """
    check = getattr(self._flow, "is_initialized", None)
    if check is not None:
      return bool(check())
    return all(bool(v.numpy()) for v in self._flow.variables
               if v.dtype == tf.bool)

  def initialize(self, images, labels=None, seed=None):
    """Data-dependent initialisation of the flow from integer `images`.

    Dequantises `images` (noise from `seed` if given) and calls
    `flow.initialize` (with `conditional_input=labels` for a
    class-conditional `Glow`), or, for a flow without one, evaluates
    `log_prob` once, which initialises the layers that initialise themselves
    from their first batch (this library's `ActNorm`, TFP's `tfb.Glow`).
    Call it eagerly, outside `strategy.run`, with a global batch.
    """
    conditions = self._conditions(labels, "FlowModel.initialize")
    x = dequantization.dequantize(images, self.num_bins, seed=seed,
                                  dtype=self._event_dtype)
    initialize = getattr(self._flow, "initialize", None)
    if initialize is not None:
      initialize(x, **conditions)
    else:
      self._density.log_prob(x, bijector_kwargs=conditions)

  def bits_per_dim(self, images, labels=None, seed=None):
    """Bits/dim per image, `[B]`, of integer `images` `[B, H, W, C]`.

    `labels`: the images' classes for a class-conditional flow (ids `[B]`
    or vectors `[B, K]`). The dequantisation noise is fresh on each call
    unless `seed` (an int) is given, which makes the result reproducible.
    """
    labels = self._checked_labels(labels, "FlowModel.bits_per_dim")
    images = tf.convert_to_tensor(images)
    if seed is None:
      return self._bits_fn(images, labels)
    return self._seeded_bits_fn(images, labels,
                                tf.constant([seed, 0], tf.int64))

  @tf.function(reduce_retracing=True)
  def _bits_fn(self, images, labels):
    return self._noisy_bits(images, labels)

  @tf.function(reduce_retracing=True)
  def _seeded_bits_fn(self, images, labels, seed):
    return self._noisy_bits(images, labels, seed=seed)

  def sample(self, n, temperature=1.0, seed=None, labels=None):
    """`n` integer images `[n, H, W, C]` (int32, `0..num_bins-1`).

    `x = flow.forward(z)`, `z` the base sample at `temperature`
    (`tfp_emerging.export.tempered_sample`: `m + T (z - m)`, `m` the base's
    mode; for a Gaussian base its standard deviation scaled by `T`, Glow's
    temperature), quantised with clipping. An int `seed` gives the same
    images on every call. Cost: one sampling pass of the flow (its solves).

    Args:
      n: the number of images.
      temperature: `T >= 0`.
      seed: an int (reproducible), a stateless seed `[2]`, or `None`.
      labels: for a class-conditional flow, the class of each image: one
        class id (all `n` images), ids `[n]` in `0..K-1`, or vectors
        `[n, K]`.

    Raises:
      ValueError: the flow is not initialised yet (`initialize`, `fit`);
        labels missing for a class-conditional flow, given for another, or
        not one per image.
    """
    if not self.is_initialized():
      raise ValueError(
          "The flow is not initialised: fit the model, or call "
          "`initialize(images)` (or evaluate it on data) before sampling.")
    labels = self._checked_labels(labels, "FlowModel.sample")
    if labels is not None:
      if labels.shape.rank == 0:
        labels = tf.fill([n], labels)
      elif labels.shape[0] is not None and labels.shape[0] != n:
        raise ValueError(f"FlowModel.sample: `labels` must give one class per "
                         f"image ({n}); got shape {labels.shape.as_list()}.")
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([seed, 0], tf.int32)  # Stateless: reproducible.
    z = export_lib.tempered_sample(self._density.distribution, n,
                                   temperature, seed)
    return dequantization.quantize(self._generate(z, labels), self.num_bins)

  @tf.function(reduce_retracing=True)
  def _generate(self, z, labels):
    return self._flow.forward(z, **self._conditions(labels, "FlowModel.sample"))

  def export(self, filepath, format="tf_saved_model", verbose=None,  # pylint: disable=redefined-builtin
             input_signature=None, **kwargs):
    """Writes a TensorFlow SavedModel serving `log_prob` and `sample`.

    `keras.Model.export`'s signature; the SavedModel is
    `tfp_emerging.export.export(self, filepath)`'s: signatures `log_prob`
    (also `serving_default`) and `sample`. No input signature is needed: the
    image shape is known.

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
      raise ValueError(f"FlowModel.export writes format='tf_saved_model' "
                       f"only; got format={format!r}.")
    if kwargs:
      raise ValueError(f"FlowModel.export takes no {sorted(kwargs)}.")
    if input_signature is not None:
      specs = tf.nest.flatten(input_signature)
      expected = [tf.TensorSpec([None, *self._event_shape], self._event_dtype)]
      if self._num_classes is not None:
        expected.append(tf.TensorSpec([None], tf.int32))
      if len(specs) != len(expected) or not all(
          tf.as_dtype(spec.dtype) == want.dtype and
          tf.TensorShape(spec.shape).is_compatible_with(want.shape)
          for spec, want in zip(specs, expected)):
        raise ValueError(
            f"`input_signature` must describe "
            f"{'images and labels ' if len(expected) > 1 else 'images '}"
            f"{expected}; got {input_signature!r}.")
    module = export_lib.export(self, filepath)
    if verbose is None or verbose:
      print(f"Saved a SavedModel at '{filepath}' with signatures log_prob "
            f"(serving_default) and sample.")
    return module


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
