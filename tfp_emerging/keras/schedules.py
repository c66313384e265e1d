"""`WarmupSchedule`: the learning rate of the training path, and
`ScaledSchedule`, which lets callbacks such as `ReduceLROnPlateau` lower a
schedule (`FlowModel.fit` makes a Keras 3 optimizer's schedule one)."""

from __future__ import annotations

import tensorflow as tf
from tensorflow import keras

from tfp_emerging.keras.layers import KERAS_3
from tfp_emerging.ops import checks

__all__ = ["ScaledSchedule", "WarmupSchedule", "make_settable"]


@keras.utils.register_keras_serializable(package="tfp_emerging")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `learning_rate` over `warmup_steps`, then constant.

  `lr(step) = learning_rate * min(1, (step + 1) / warmup_steps)` (step counted
  from 0); `warmup_steps=0` is a constant rate. Glow-style flows diverge
  without a warm-up at their usual rates (Kingma & Dhariwal use 1e-3 after
  a linear warm-up). Under Keras 3, `FlowModel.fit` makes it a
  `ScaledSchedule`, which `keras.callbacks.ReduceLROnPlateau` can lower.
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


@keras.utils.register_keras_serializable(package="tfp_emerging")
class ScaledSchedule:
  """A `LearningRateSchedule` that callbacks can lower: `scale * schedule`.

  Keras 3 refuses to set the learning rate of an optimizer built with a
  `LearningRateSchedule` (a `TypeError`), so
  `keras.callbacks.ReduceLROnPlateau`, and any callback that sets
  `optimizer.learning_rate`, cannot lower a warm-up. Keras 3 also takes a
  callable without arguments as an optimizer's learning rate, and sets it
  with its `assign`; this is one, for step `t` (the optimizer's
  `iterations`):

      lr(t) = s * schedule(t)

  `assign(r)` sets `s = r / schedule(t)` at the current step, so that the
  rate is `r` now and the schedule's shape (the rest of a warm-up)
  continues, scaled. `s` is a float32 variable starting at 1 (the
  schedule's own rates, bit for bit). It is no part of the optimizer's
  checkpoints, which keep their layout: a restored optimizer starts at
  `s = 1` again, as `ReduceLROnPlateau` starts afresh. Its config is the
  schedule's; `from_config` gives the bare schedule back (`FlowModel.fit`
  wraps it again: `make_settable`).

  Cost: one multiply per step.
  """

  def __init__(
    self,
    schedule: keras.optimizers.schedules.LearningRateSchedule,
    iterations: tf.Variable,
  ) -> None:
    self.schedule = schedule
    self._iterations = iterations
    self.scale = tf.Variable(1.0, trainable=False, name="learning_rate_scale")

  def __call__(self) -> tf.Tensor:
    rate = tf.cast(self.schedule(self._iterations), tf.float32)
    return rate * self.scale

  def assign(self, learning_rate: float | tf.Tensor) -> None:
    """Scales the schedule so that the rate at the current step is
    `learning_rate`.

    Raises:
      ValueError: the schedule's rate is 0 now (no scale gives another).
    """
    rate = tf.cast(self.schedule(self._iterations), tf.float32)
    if tf.executing_eagerly() and float(rate) == 0.0:
      raise ValueError(
        f"The learning-rate schedule is 0 at step {int(self._iterations)}: "
        f"no scale makes it {float(learning_rate)}."
      )
    self.scale.assign(tf.cast(learning_rate, tf.float32) / rate)

  def get_config(self) -> dict[str, dict]:
    return {"schedule": keras.optimizers.schedules.serialize(self.schedule)}

  @classmethod
  def from_config(
    cls, config: dict[str, dict]
  ) -> keras.optimizers.schedules.LearningRateSchedule:
    return keras.optimizers.schedules.deserialize(config["schedule"])


def make_settable(optimizer: keras.optimizers.Optimizer) -> None:
  """Makes a Keras 3 `optimizer` built with a `LearningRateSchedule` take
  a learning rate from callbacks (`ReduceLROnPlateau`): its schedule
  becomes a `ScaledSchedule` of it. Other optimizers, and every optimizer
  under `tf_keras` (which takes no callable rates), are left as they are.
  A `LossScaleOptimizer` (mixed precision) has its inner optimizer's
  schedule made settable. Call it in the strategy scope that holds the
  optimizer's variables."""
  optimizer = getattr(optimizer, "inner_optimizer", optimizer)
  schedule = getattr(optimizer, "_learning_rate", None)
  if KERAS_3 and isinstance(
    schedule, keras.optimizers.schedules.LearningRateSchedule
  ):
    optimizer.learning_rate = ScaledSchedule(schedule, optimizer.iterations)
