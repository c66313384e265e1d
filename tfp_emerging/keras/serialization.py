"""What a `.keras` file holds of a `FlowModel`: its flow and base by config.

A flow is saved by `{"class_name", "config"}` when its class has
`get_config`/`from_config` and is registered with Keras (this package's
`Glow` is, here); a base distribution given explicitly is saved as its
`tfp.distributions` class and constant parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow import keras
import tensorflow_probability as tfp
from tensorflow_probability import distributions as tfd

from tfp_emerging.flows import glow as glow_lib
from tfp_emerging.flows import variational_dequantization

__all__ = [
  "distribution_config",
  "distribution_from_config",
  "flow_config",
  "flow_from_config",
]


def _array_config(value):
  array = tf.get_static_value(value)
  if array is None:
    raise ValueError(
      f"cannot save a base distribution parameter {value!r}: only "
      f"constants (not variables) are saved in a config."
    )
  array = np.asarray(array)
  return {"array": array.tolist(), "dtype": array.dtype.name}


def distribution_config(distribution: tfd.Distribution) -> dict[str, Any]:
  """A JSON description of a `tfd` distribution with constant parameters."""
  kind = type(distribution)
  if getattr(tfd, kind.__name__, None) is not kind:
    raise ValueError(
      f"cannot save a base distribution of class {kind.__name__}: only "
      f"`tfp.distributions` classes are saved in a config."
    )
  config = {}
  for key, value in distribution.parameters.items():
    if isinstance(value, tfd.Distribution):
      value = {"distribution": distribution_config(value)}
    elif hasattr(value, "trainable"):  # tf.Variable, keras.Variable
      raise ValueError(
        f"cannot save the base distribution's `{key}`, a variable: only "
        f"constant parameters are saved in a config."
      )
    elif value is not None and not isinstance(value, (bool, int, float, str)):
      value = _array_config(value)
    config[key] = value
  return {"class_name": kind.__name__, "config": config}


def distribution_from_config(config: dict[str, Any]) -> tfd.Distribution:
  """The distribution `distribution_config` describes."""
  kind = getattr(tfd, config["class_name"], None)
  if not (isinstance(kind, type) and issubclass(kind, tfd.Distribution)):
    raise ValueError(f"unknown distribution {config['class_name']!r}.")
  arguments = {}
  for key, value in config["config"].items():
    if isinstance(value, dict) and "distribution" in value:
      value = distribution_from_config(value["distribution"])
    elif isinstance(value, dict):
      value = np.asarray(value["array"], value["dtype"])
    arguments[key] = value
  return kind(**arguments)


def flow_config(flow: tfp.bijectors.Bijector) -> dict[str, Any]:
  """`{"class_name", "config"}` of a flow registered with Keras."""
  name = keras.utils.get_registered_name(type(flow))
  if not hasattr(flow, "get_config") or keras.utils.get_registered_object(
    name
  ) is not type(flow):
    raise ValueError(
      f"A FlowModel saves its flow by config: the flow's class "
      f"({type(flow).__name__}) needs `get_config`/`from_config` and "
      f"`keras.utils.register_keras_serializable` (tfp_emerging's Glow has "
      f"both). Without them, use `save_weights` or `tf.train.Checkpoint` "
      f"and rebuild the flow in code."
    )
  return {"class_name": name, "config": flow.get_config()}


def flow_from_config(config: dict[str, Any]) -> tfp.bijectors.Bijector:
  kind = keras.utils.get_registered_object(config["class_name"])
  if kind is None:
    raise ValueError(
      f"unknown flow class {config['class_name']!r}: register it with "
      f"`keras.utils.register_keras_serializable` before loading."
    )
  return kind.from_config(config["config"])


keras.utils.register_keras_serializable(package="tfp_emerging")(glow_lib.Glow)
keras.utils.register_keras_serializable(package="tfp_emerging")(
  variational_dequantization.VariationalDequantizer
)
