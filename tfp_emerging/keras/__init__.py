"""Keras training of image flows: `FlowModel` and a warm-up schedule.

`FlowModel` (`model`) is a `keras.Model` holding a flow as a
`tfd.TransformedDistribution`, trained in bits per dimension;
`WarmupSchedule` (`schedules`) is the training path's learning rate. Each
part of the flow's variables is owned by a `FlowLayer` (`layers`), and
`serialization` is what a `.keras` file holds. Importing `tfp_emerging`
registers `FlowModel`, `WarmupSchedule` and `Glow` with Keras, so
`keras.models.load_model` finds them.
"""

from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE
from tfp_emerging.data.pipeline import WEIGHT
from tfp_emerging.keras.layers import KERAS_3
from tfp_emerging.keras.layers import FlowLayer
from tfp_emerging.keras.layers import keras
from tfp_emerging.keras.model import FlowModel
from tfp_emerging.keras.schedules import WarmupSchedule

__all__ = [
  "KERAS_3",
  "LEVELS",
  "NOISE",
  "WEIGHT",
  "FlowLayer",
  "FlowModel",
  "WarmupSchedule",
  "keras",
]
