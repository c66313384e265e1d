"""Tiny FlowModels on sklearn's digits, shared by the Keras tests.

`trained(mixing)` fits one model per mixing for two epochs on 512 digits
and caches it for the process; the tf_keras worker reuses the same models
under the other Keras.
"""

import os
import tempfile

import numpy as np
from sklearn.datasets import load_digits
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras

keras = tfe_keras.keras
tfd = tfp.distributions
NUM_BINS = 17
TRAIN, TEST = slice(0, 512), slice(1500, 1700)
# The full-model checkpoints that `trained` writes every epoch, by mixing.
CHECKPOINTS = {
  mixing: os.path.join(tempfile.mkdtemp(), f"{mixing}.keras")
  for mixing in ("emerging", "1x1")
}


def digits():
  return load_digits().images.astype(np.uint8)[..., None]


def glow(
  mixing="emerging",
  image_shape=(8, 8, 1),
  num_levels=None,
  num_steps=1,
  hidden_channels=16,
  seed=0,
  **options,
):
  """A small `flows.Glow`, on the digits' `[8, 8, 1]` images by default.

  `num_levels` by default: two (with a split prior), or one for periodic
  mixing, whose kernels need the last level to be 3x3 at least. `options`
  are further `flows.Glow` arguments.
  """
  if num_levels is None:
    num_levels = 1 if mixing == "periodic" else 2
  return flows.Glow(
    image_shape,
    num_levels=num_levels,
    num_steps=num_steps,
    mixing=mixing,
    hidden_channels=hidden_channels,
    seed=seed,
    **options,
  )


def make_model(mixing="emerging", seed=0, learning_rate=2e-3):
  model = tfe_keras.FlowModel(glow(mixing, seed=seed), num_bins=NUM_BINS)
  model.compile(
    optimizer=keras.optimizers.Adam(tfe_keras.WarmupSchedule(learning_rate, 10))
  )
  return model


def small_model(optimizer=None, num_classes=None):
  """A compiled `FlowModel` of a one-level, one-step `Glow` four channels
  wide (`num_classes` for a class-conditional one), Adam at 1e-3 unless
  `optimizer` is given: the model of the edge-input and Keras-habit tests."""
  model = tfe_keras.FlowModel(
    flows.Glow(
      image_shape=(8, 8, 1),
      num_levels=1,
      num_steps=1,
      hidden_channels=4,
      num_classes=num_classes,
      seed=0,
    ),
    num_bins=NUM_BINS,
  )
  model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-3))
  return model


class Snapshot(keras.callbacks.Callback):
  """Records the state fit starts from, after its automatic initialisation."""

  def __init__(self, test_images):
    super().__init__()
    self.test_images = test_images

  def on_train_begin(self, logs=None):
    self.initialized = self.model.is_initialized()
    self.bits = self.model.bits_per_dim(self.test_images, seed=7).numpy()
    self.values = [v.numpy().copy() for v in self.model.flow.variables]


_TRAINED = {}


def trained(mixing):
  """`(model, snapshot, history)` after two epochs on 512 digits (cached)."""
  if mixing not in _TRAINED:
    images = digits()
    model = make_model(mixing)
    assert not model.is_initialized()
    train = (
      tf.data.Dataset.from_tensor_slices(images[TRAIN])
      .shuffle(512, seed=0)
      .batch(32)
    )
    # Validation (a second traced step) for one mixing only, to save time.
    test = (
      tf.data.Dataset.from_tensor_slices(images[TEST]).batch(100)
      if mixing == "emerging"
      else None
    )
    snapshot = Snapshot(images[TEST])
    callbacks = [snapshot]
    if mixing in CHECKPOINTS:
      callbacks.append(
        keras.callbacks.ModelCheckpoint(
          CHECKPOINTS[mixing], save_weights_only=False
        )
      )
    history = model.fit(
      train, epochs=2, validation_data=test, verbose=0, callbacks=callbacks
    )
    _TRAINED[mixing] = model, snapshot, history
  return _TRAINED[mixing]


def lu_model_off_its_seed():
  """An "lu" model with every variable, signs and permutation included,
  away from what its config's seed gives, and a non-standard base."""
  glow = flows.Glow(
    (8, 8, 1), num_levels=1, num_steps=1, mixing="lu", hidden_channels=8, seed=0
  )
  base = tfd.Sample(tfd.Normal(0.1, 0.7), (8, 8, 1))
  model = tfe_keras.FlowModel(glow, num_bins=NUM_BINS, base_distribution=base)
  model.compile(
    optimizer=keras.optimizers.Adam(tfe_keras.WarmupSchedule(1e-3, 10))
  )
  model.optimizer.build(model.trainable_variables)
  model.initialize(digits()[:64])
  rng = np.random.default_rng(0)
  for v in glow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0.0, 0.05, v.shape), v.dtype))
  conv = glow.steps[0][1]
  conv.factor("sign").assign(-conv.factor("sign"))
  conv.factor("permutation").assign(conv.factor("permutation")[::-1])
  return model


def checkpoint_restores_the_trained_model(mixing):
  """Whether `trained(mixing)`'s ModelCheckpoint file is that model."""
  model, _, _ = trained(mixing)
  loaded = keras.models.load_model(CHECKPOINTS[mixing])  # after epoch 2
  return (
    np.array_equal(
      loaded.bits_per_dim(digits()[TEST], seed=3).numpy(),
      model.bits_per_dim(digits()[TEST], seed=3).numpy(),
    )
    and int(loaded.optimizer.iterations.numpy())
    == int(model.optimizer.iterations.numpy())
    > 0
  )


def part_sizes(model):
  """Parameters per part, counted on the bijectors' own variables."""
  sizes = []
  for layer in model.layers:
    sizes.append(sum(int(np.prod(v.shape)) for v in layer.part.variables))
  return sizes


def tfp_glow_model():
  """A `FlowModel` of TFP's own `tfb.Glow` (one block of one step, its
  default networks) on the 8x8 digits, not compiled."""
  tfb, tfd = tfp.bijectors, tfp.distributions
  glow = tfb.Glow(
    output_shape=(8, 8, 1),
    num_glow_blocks=1,
    num_steps_per_block=1,
    coupling_bijector_fn=tfb.GlowDefaultNetwork,
    exit_bijector_fn=tfb.GlowDefaultExitNetwork,
    seed=0,
  )
  return tfe_keras.FlowModel(
    glow,
    num_bins=NUM_BINS,
    base_distribution=tfd.Sample(
      tfd.Normal(0.0, 1.0), glow.inverse_event_shape((8, 8, 1))
    ),
  )
