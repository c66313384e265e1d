"""Keras habits and edge inputs of `FlowModel` (issue 23 point 5, issue 26
point 11): frozen layers, `sample_weight`, empty inputs, string labels,
labels given to an unconditional model, TFP's `tfb.Glow` with a smaller last
batch, `ReduceLROnPlateau` over the warm-up."""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib.digits_models import tfp_glow_model
from tfp_emerging import data
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE

keras = tfe_keras.keras
tfb = tfp.bijectors
tfd = tfp.distributions
NUM_BINS = 17
D = 64  # 8 x 8 x 1


@pytest.fixture(scope="module")
def digits():
  return np.stack(
    list(data.load("digits").images("train").take(64).as_numpy_iterator())
  )


def _model(optimizer=None, num_classes=None):
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


def _dequantized(images, seed=0):
  """`(batch, x)`: the pipeline's dict batch of `images` and uniform noise
  `u`, and the dequantised images `x = (k + u) / B - 1/2` (float32)."""
  rng = np.random.default_rng(seed)
  noise = rng.uniform(size=images.shape).astype(np.float32)
  x = ((images + noise) / np.float32(NUM_BINS) - 0.5).astype(np.float32)
  return {LEVELS: images, NOISE: noise}, x


def _hand_bits(model, x):
  """Per-image bits/dim of dequantised `x` from the distribution's
  log-density: -(log p(x) - D log B) / (D log 2)."""
  log_prob = model.distribution.log_prob(x)
  return -(log_prob - D * np.log(NUM_BINS)) / (D * np.log(2.0))


@pytest.mark.slow
def test_a_frozen_model_fits_without_update_and_reports_its_metrics(digits):
  model = _model()
  model.initialize(digits, seed=0)
  for layer in model.layers:
    layer.trainable = False
  assert not model.trainable_weights
  before = [v.numpy().copy() for v in model.weights]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = model.fit(digits, epochs=1, batch_size=32, verbose=0)
  assert any("no trainable weights" in str(w.message) for w in caught)
  assert np.isfinite(history.history["loss"][0])
  assert history.history["loss"] == history.history["bits_per_dim"]
  for old, new in zip(before, model.weights):
    np.testing.assert_array_equal(old, new.numpy())


@pytest.mark.slow
def test_sample_weight_weighs_fit_and_evaluate(digits):
  """Against a hand-weighted mean of per-image bits/dim from
  `distribution.log_prob`; ActNorm is initialised first, so that the
  training step (SGD) is the only change to the weights."""
  images = digits[:16]
  batch, x = _dequantized(images)
  weights = np.array([0, 1, 2, 3] * 4, np.float32)
  model = _model(keras.optimizers.SGD(0.05))
  model.initialize(images, seed=0)
  bits = _hand_bits(model, x).numpy()
  weighted = np.sum(weights * bits) / np.sum(weights)
  assert abs(weighted - bits.mean()) > 1e-3  # the weights matter
  logs = model.evaluate(
    batch,
    sample_weight=weights,
    batch_size=8,
    verbose=0,
    return_dict=True,
  )
  np.testing.assert_allclose(logs["bits_per_dim"], weighted, rtol=1e-5)

  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    hand = _hand_bits(model, x)
    loss = tf.reduce_sum(weights * hand) / np.sum(weights)
  gradients = tape.gradient(loss, variables)
  expected = [
    v.numpy() - 0.05 * g.numpy() for v, g in zip(variables, gradients)
  ]
  history = model.fit(
    batch,
    sample_weight=weights,
    batch_size=16,
    epochs=1,
    shuffle=False,
    verbose=0,
  )
  np.testing.assert_allclose(history.history["loss"][0], weighted, rtol=1e-5)
  for want, v in zip(expected, variables):
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-4, atol=1e-6)


def test_a_batch_of_no_images_gives_no_bits(digits):
  model = _model()
  assert model.bits_per_dim(digits[:0]).shape == (0,)
  assert model.distribution.log_prob(tf.zeros([0, 8, 8, 1])).shape == (0,)
  assert not model.is_initialized()  # nothing to initialise from
  with pytest.raises(ValueError, match="holds no images"):
    model.flow.initialize(tf.zeros([0, 8, 8, 1]))
  model.initialize(digits, seed=0)
  assert model.bits_per_dim(digits[:0], seed=1).shape == (0,)


@pytest.mark.parametrize("initialized", [False, True])
def test_fit_on_an_empty_dataset_names_it(digits, initialized):
  model = _model()
  if initialized:
    model.initialize(digits, seed=0)
  empty = tf.data.Dataset.from_tensor_slices(digits[:0]).batch(8)
  with pytest.raises(ValueError, match=r"FlowModel\.fit: the dataset holds no"):
    model.fit(empty, epochs=1, verbose=0)
  # Of unknown size: found empty when its first batch is drawn.
  filtered = tf.data.Dataset.from_tensor_slices(digits).filter(
    lambda image: tf.reduce_max(image) > 100
  )
  if not initialized:
    with pytest.raises(ValueError, match="the dataset holds no batches"):
      model.fit(filtered.batch(8), epochs=1, verbose=0)
  with pytest.raises(ValueError, match="the image array holds no"):
    model.fit(digits[:0], epochs=1, verbose=0)
  with pytest.raises(ValueError, match=r"FlowModel\.evaluate: the dataset"):
    model.evaluate(empty, verbose=0)


LABEL_DTYPE = r"`labels` must be integer class ids \(an integer dtype"


def test_string_labels_name_labels_and_the_integer_dtype(digits):
  model = _model(num_classes=10)
  names = np.array(["zero"] * len(digits))
  with pytest.raises(ValueError, match="FlowModel.fit: " + LABEL_DTYPE):
    model.fit(digits, names, epochs=1, verbose=0)
  batches = tf.data.Dataset.from_tensor_slices((digits, names)).batch(32)
  with pytest.raises(ValueError, match="FlowModel.fit: " + LABEL_DTYPE):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match="FlowModel.evaluate: " + LABEL_DTYPE):
    model.evaluate(digits, names, verbose=0)
  with pytest.raises(ValueError, match="bits_per_dim: " + LABEL_DTYPE):
    model.bits_per_dim(digits, labels=names)
  with pytest.raises(ValueError, match="initialize: " + LABEL_DTYPE):
    model.initialize(digits, labels=names)


def test_an_unconditional_model_refuses_labels_as_documented(digits):
  model = _model()
  labels = np.zeros(len(digits), np.int32)
  refused = "FlowModel.{}: this FlowModel's flow is not class-conditional"
  batches = tf.data.Dataset.from_tensor_slices((digits, labels)).batch(32)
  with pytest.raises(ValueError, match=refused.format("fit")):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match=refused.format("fit")):
    model.fit(digits, labels, epochs=1, verbose=0)
  assert not model.is_initialized()  # refused before any work
  with pytest.raises(ValueError, match=refused.format("evaluate")):
    model.evaluate(batches, verbose=0)


@pytest.mark.slow
def test_tfp_glow_trains_on_a_smaller_last_batch(digits):
  """TFP's `tfb.Glow` cannot trace a batch of unknown size (its `Reshape`
  concatenates int32 and int64 shapes); batches of 8, 8 and 5 images, whose
  size the traced steps do not know, train and evaluate, with the bits/dim
  of `distribution.log_prob` on the whole batch."""
  model = tfp_glow_model()
  model.compile(optimizer="adam")
  images = tf.data.Dataset.from_tensor_slices(digits[:21]).batch(8)
  assert images.element_spec.shape[0] is None
  history = model.fit(images, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  batch, x = _dequantized(digits[:21])
  dequantized = tf.data.Dataset.from_tensor_slices(batch).batch(8)
  logs = model.evaluate(dequantized, verbose=0, return_dict=True)
  expected = np.mean(_hand_bits(model, x).numpy())
  np.testing.assert_allclose(logs["bits_per_dim"], expected, rtol=1e-5)
  # bits_per_dim traces a batch of unknown size from its second shape on.
  assert model.bits_per_dim(digits[:5], seed=0).shape == (5,)
  assert model.bits_per_dim(digits[:7], seed=0).shape == (7,)


class _RateProbe(keras.callbacks.Callback):
  """The learning rate each SGD step used, measured from the update:
  `w' = w - r g`, so `r = -<w' - w, g> / <g, g>`, `g` the gradient of the
  batch's mean bits/dim from `distribution.log_prob`."""

  def __init__(self, batches):
    super().__init__()
    self.batches, self.rates = batches, []

  def on_train_batch_begin(self, batch, logs=None):
    variables = self.model.trainable_variables
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(_hand_bits(self.model, self.batches[batch]))
    self.gradients = tape.gradient(loss, variables)
    self.before = [v.numpy() for v in variables]

  def on_train_batch_end(self, batch, logs=None):
    steps = [
      v.numpy() - w for v, w in zip(self.model.trainable_variables, self.before)
    ]
    g = np.concatenate([g.numpy().ravel() for g in self.gradients])
    step = np.concatenate([s.ravel() for s in steps])
    self.rates.append(-np.dot(step, g) / np.dot(g, g))


@pytest.mark.slow
def test_reduce_lr_on_plateau_lowers_the_warm_up_schedule(digits, tmp_path):
  """Keras' own callback lowers the rate that SGD uses, through the warm-up
  (10 steps, 4 per epoch): a plateau after epoch 2 halves the rest of the
  warm-up and the peak; the optimizer's checkpoints keep their layout."""
  batch, x = _dequantized(digits)
  schedule = tfe_keras.WarmupSchedule(0.01, 10)
  model = _model(keras.optimizers.SGD(schedule))
  model.initialize(digits, seed=0)
  probe = _RateProbe(np.split(x, 4))
  # No epoch beats the first by 1e6 bits/dim: a plateau from epoch 2 on.
  plateau = keras.callbacks.ReduceLROnPlateau(
    monitor="loss", factor=0.5, patience=1, min_delta=1e6, cooldown=5
  )
  model.fit(
    batch,
    batch_size=16,
    epochs=3,
    shuffle=False,
    verbose=0,
    callbacks=[plateau, probe],
  )
  warm_up = 0.01 * np.minimum(1.0, (np.arange(12) + 1) / 10)
  expected = warm_up * np.where(np.arange(12) >= 8, 0.5, 1.0)
  np.testing.assert_allclose(probe.rates, expected, rtol=2e-3)
  np.testing.assert_allclose(
    float(model.optimizer.learning_rate), 0.005, rtol=1e-6
  )
  # The same checkpoint layout as the bare schedule's: runs resume.
  path = tf.train.Checkpoint(optimizer=model.optimizer).save(tmp_path / "c")
  bare = keras.optimizers.SGD(tfe_keras.WarmupSchedule(0.01, 10))
  bare.build(model.trainable_variables)
  tf.train.Checkpoint(optimizer=bare).restore(path).assert_consumed()
  assert bare.get_config()["learning_rate"]["class_name"] == "WarmupSchedule"
