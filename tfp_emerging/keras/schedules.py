"""`WarmupSchedule`: the learning rate of the training path."""

from __future__ import annotations

import tensorflow as tf
from tensorflow import keras

from tfp_emerging.ops import checks

__all__ = ["WarmupSchedule"]


@keras.utils.register_keras_serializable(package="tfp_emerging")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `learning_rate` over `warmup_steps`, then constant.

  `lr(step) = learning_rate * min(1, (step + 1) / warmup_steps)` (step counted
  from 0); `warmup_steps=0` is a constant rate. Glow-style flows diverge
  without a warm-up at their usual rates (Kingma & Dhariwal use 1e-3 after
  a linear warm-up).
  """

  def __init__(self, learning_rate: float, warmup_steps: int) -> None:
    super().__init__()
    self.learning_rate = float(learning_rate)
    self.warmup_steps = checks.positive_int(
      warmup_steps, "warmup_steps", minimum=0
    )

  def __call__(self, step: int | tf.Tensor) -> tf.Tensor:
    step = tf.cast(step, tf.float32)
    if self.warmup_steps == 0:
      return tf.constant(self.learning_rate, tf.float32) + 0.0 * step
    fraction = tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
    return self.learning_rate * fraction

  def get_config(self) -> dict[str, float | int]:
    return {
      "learning_rate": self.learning_rate,
      "warmup_steps": self.warmup_steps,
    }
