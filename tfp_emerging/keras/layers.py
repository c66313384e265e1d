"""Keras layers that own a flow's variables: `FlowLayer` and `flow_layers`.

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

from __future__ import annotations

from collections.abc import Sequence
import re
import sys
from typing import Any, ClassVar

import tensorflow as tf
from tensorflow import keras
import tensorflow_probability as tfp
from tensorflow_probability import bijectors as tfb

from tfp_emerging.flows import glow as glow_lib

__all__ = ["KERAS_3", "FlowLayer", "build_lazy_variables", "flow_layers"]

KERAS_3 = hasattr(keras, "Variable")
"""Whether the Keras in use is Keras 3 (`keras.Variable` exists), not
tf-keras 2."""


def snake_case(name: str) -> str:
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

  _subclasses: ClassVar[dict[type, type]] = {}

  def __init__(
    self,
    part: tf.Module,
    variables: Sequence[tf.Variable],
    networks: Sequence[keras.layers.Layer] = (),
    name: str | None = None,
  ) -> None:
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
        keras.Variable(v, trainable=v.trainable, name=snake_case(v.name))
        for v in variables
      ]
    else:
      for v in variables:
        (
          self._trainable_weights
          if v.trainable
          else self._non_trainable_weights
        ).append(v)
    self._networks = list(networks)
    self.built = True

  @classmethod
  def for_part(
    cls,
    part: tf.Module,
    variables: Sequence[tf.Variable],
    networks: Sequence[keras.layers.Layer],
    name: str,
  ) -> FlowLayer:
    """A layer for `part`, of the `FlowLayer` subclass named like its class."""
    kind = type(part)
    if kind not in cls._subclasses:
      shown = kind.__name__.lstrip("_")  # TFP's Invert class is `_Invert`.
      cls._subclasses[kind] = type(
        shown,
        (cls,),
        {"__module__": __name__, "__doc__": f"`FlowLayer` of a `{shown}`."},
      )
    return cls._subclasses[kind](part, variables, networks, name)

  @property
  def part(self) -> tf.Module:
    """The wrapped bijector or prior."""
    return self._part

  def load_own_variables(self, store: Any) -> None:
    """Keras' loading of this layer's variables from a `.keras` file, then
    a check that every floating one is finite.

    A damaged file (flipped bytes in its weights) would otherwise load
    silently and give `log_prob` of `-inf` or NaN later, far from the cause.
    Keras retries a layer that failed to load at the other paths that reach
    it; each retry raises the same error, so that Keras reports this one.

    Raises:
      ValueError: a loaded floating variable holds a NaN or infinity; the
        message names the layer and the variable.
    """
    damaged = getattr(self, "_damaged", None)
    if damaged is not None:
      raise damaged
    super().load_own_variables(store)
    for variable in self.weights:
      if not tf.as_dtype(variable.dtype).is_floating:
        continue  # ActNorm's flags, Conv1x1's permutation
      values = tf.convert_to_tensor(variable)
      if not bool(tf.reduce_all(tf.math.is_finite(values))):
        damaged = ValueError(
          f"{self.name}: the loaded weights of `{variable.name}` are not "
          f"finite (NaN or infinite): the saved file is damaged."
        )
        object.__setattr__(self, "_damaged", damaged)  # Not tracked.
        raise damaged


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
        yield (
          f"{prefix}level{level}_step{i // per_step}_{snake_case(layer.name)}",
          layer,
        )
      yield f"{prefix}level{level}_{snake_case(prior.name)}", prior
  elif isinstance(flow, tfb.Composition):
    for i, bijector in enumerate(flow.bijectors):
      yield from _flow_parts(bijector, f"{prefix}{i}_")
  elif isinstance(flow, tfb.Invert) and isinstance(
    flow.bijector, (tfb.Composition, glow_lib.Glow)
  ):
    yield from _flow_parts(flow.bijector, prefix)
  else:
    yield f"{prefix}{snake_case(flow.name)}", flow


def _keras_layer_classes():
  """The `Layer` classes of the Keras packages loaded in this process."""
  return tuple(
    module.layers.Layer
    for module in (sys.modules.get("keras"), sys.modules.get("tf_keras"))
    if module is not None and hasattr(module, "layers")
  )


def flow_layers(flow: tfb.Bijector) -> list[FlowLayer]:
  """One `FlowLayer` per part of `flow` that owns variables, in flow order.

  Each variable belongs to the first part that holds it; variables of the
  flow that no part holds go to a last layer named after the flow. Keras
  layers of the active Keras inside a part (Keras 3 layers own
  `keras.Variable`s, which `tf.Module` does not see) become its sublayers.
  """
  claimed: set[Any] = set()
  layers: list[Any] = []
  names: dict[str, int] = {}

  def take(module):
    variables = [v for v in module.variables if v.ref() not in claimed]
    networks = (
      []
      if not KERAS_3
      else [
        layer
        for layer in module._flatten(
          predicate=lambda m: isinstance(m, keras.layers.Layer)
        )
        if id(layer) not in claimed
      ]
    )
    claimed.update(v.ref() for v in variables)
    claimed.update(id(layer) for layer in networks)
    return variables, networks

  parts = list(_flow_parts(flow))
  parts.append((f"{snake_case(flow.name)}_other", flow))
  for name, part in parts:
    variables, networks = take(part)
    if variables or networks:
      count = names.get(name, 0)
      names[name] = count + 1
      layers.append(
        FlowLayer.for_part(
          part, variables, networks, name if not count else f"{name}_{count}"
        )
      )
  return layers


def build_lazy_variables(
  distribution: tfp.distributions.TransformedDistribution,
  event_shape: Sequence[int],
  dtype: tf.dtypes.DType,
) -> None:
  """Creates the variables of Keras networks that build on first call.

  Traces `distribution.log_prob` on a symbolic batch of one image (nothing
  runs: no data-dependent initialisation happens), only when the flow holds
  an unbuilt Keras layer (e.g. a network without an `Input` in TFP's
  `tfb.Glow`). A static batch size, as some TFP bijectors need one.
  """
  unbuilt = list(
    distribution.bijector._flatten(
      predicate=lambda m: isinstance(m, _keras_layer_classes()) and not m.built,
      recursive=True,
    )
  )
  if unbuilt:
    tf.function(distribution.log_prob).get_concrete_function(
      tf.TensorSpec([1, *event_shape], dtype)
    )
