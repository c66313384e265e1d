"""What a TFP or Keras user does by habit, in process: scaled or
out-of-range images, a flow written in either direction, saving to the
wrong format, `sample(0)`, TFP's own `tfb.Glow` fed numpy arrays."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib.digits_models import tfp_glow_model
from tfp_emerging import bijectors
from tfp_emerging import data
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging.ops import autoregressive

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

tfb = tfp.bijectors
tfd = tfp.distributions
NUM_BINS = 17


@pytest.fixture(scope="module")
def digits():
  return np.stack(
    list(data.load("digits").images("train").take(64).as_numpy_iterator())
  )


def _glow_model():
  model = tfe_keras.FlowModel(
    flows.Glow(
      image_shape=(8, 8, 1),
      num_levels=1,
      num_steps=1,
      hidden_channels=4,
      seed=0,
    ),
    num_bins=NUM_BINS,
  )
  model.compile(optimizer=tfe_keras.keras.optimizers.Adam(1e-3))
  return model


RANGE = r"images must be whole numbers in \[0, 17\) \(num_bins=17"


@pytest.mark.parametrize("scale", ["divided", "times15", "minus_half"])
def test_images_not_levels_are_refused_before_training(digits, scale):
  images = {
    "divided": digits / 16.0,
    "times15": digits.astype(np.int32) * 15,
    "minus_half": digits - 0.5,
  }[scale]
  model = _glow_model()
  with pytest.raises(ValueError, match=RANGE):
    model.fit(images, epochs=1, verbose=0)


def test_the_traced_steps_check_every_batch(digits):
  """An initialised model checks inside its compiled train and test steps
  (the first batch is fine, a later one is not)."""
  model = _glow_model()
  model.initialize(digits)
  bad = np.concatenate([digits[:32], digits[32:] * 2])
  batches = tf.data.Dataset.from_tensor_slices(bad).batch(32)
  with pytest.raises(ValueError, match=RANGE + r".*got values from 0 to 32"):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match="FlowModel.evaluate: " + RANGE):
    model.evaluate(batches, verbose=0)
  with pytest.raises(
    ValueError,
    match="FlowModel.bits_per_dim: " + RANGE + ".*not all whole numbers",
  ):
    model.bits_per_dim(digits + 0.25, seed=1)
  with pytest.raises(ValueError, match="FlowModel.initialize: " + RANGE):
    model.initialize(digits - 1.0)


def test_levels_of_any_dtype_are_accepted(digits):
  model = _glow_model()
  for images in (
    digits,
    digits.astype(np.int64),
    digits.astype(np.float32),
    tf.constant(digits, tf.float64),
  ):
    model.fit(images, epochs=1, verbose=0, batch_size=32)
    assert model.bits_per_dim(images, seed=0).shape == (64,)


def _base():
  return tfd.Sample(tfd.Normal(0.0, 1.0), [8, 8, 1])


def _layers():
  return [
    bijectors.ActNorm(1),
    bijectors.EmergingConv2D(1, seed=0),
    bijectors.ActNorm(1, name="actnorm_2"),
    bijectors.Conv1x1(1, seed=1),
  ]


def _solves_traced(monkeypatch, function, *specs):
  """How many autoregressive solves tracing `function` builds (a spy on
  `tfp_emerging.ops.autoregressive._solve`, which every solver goes
  through)."""
  calls = []
  original = autoregressive._solve

  def spy(*args):
    calls.append(args)
    return original(*args)

  monkeypatch.setattr(autoregressive, "_solve", spy)
  tf.function(function).get_concrete_function(*specs)
  monkeypatch.setattr(autoregressive, "_solve", original)
  return len(calls)


def _train_step_solves(monkeypatch, model):
  def step(x):
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.distribution.log_prob(x))
    return tape.gradient(loss, model.trainable_variables)

  return _solves_traced(
    monkeypatch, step, tf.TensorSpec([4, 8, 8, 1], tf.float32)
  )


def test_a_chain_in_glow_direction_is_refused_naming_the_remedy():
  with pytest.raises(
    ValueError,
    match=(
      r"log_prob would run ActNorm 'actnorm', EmergingConv2D 'emerging_conv2d'"
      r".*backwards.*direction='density'.*sampling_direction"
    ),
  ):
    tfe_keras.FlowModel(
      tfb.Chain(_layers()), num_bins=NUM_BINS, base_distribution=_base()
    )
  glow = flows.Glow(
    image_shape=(8, 8, 1), num_levels=1, num_steps=1, hidden_channels=4
  )
  with pytest.raises(ValueError, match="Glow 'glow' backwards"):
    tfe_keras.FlowModel(glow, num_bins=NUM_BINS, direction="density")
  with pytest.raises(ValueError, match="`direction` must be one of"):
    tfe_keras.FlowModel(glow, num_bins=NUM_BINS, direction="forward")


@pytest.mark.parametrize("way", ["density_argument", "sampling_direction"])
def test_either_direction_trains_without_a_solve_and_initialises_actnorm(
  digits, way, monkeypatch
):
  layers = _layers()
  if way == "density_argument":
    model = tfe_keras.FlowModel(
      tfb.Chain(layers),
      num_bins=NUM_BINS,
      base_distribution=_base(),
      direction="density",
    )
  else:
    turned = [bijectors.sampling_direction(layer) for layer in layers[::-1]]
    model = tfe_keras.FlowModel(
      tfb.Chain(turned), num_bins=NUM_BINS, base_distribution=_base()
    )
  assert _train_step_solves(monkeypatch, model) == 0
  model.compile(optimizer=tfe_keras.keras.optimizers.Adam(1e-2))
  model.fit(digits, epochs=2, verbose=0, batch_size=32)
  assert model.is_initialized()
  # The ActNorms were initialised from the data: the one next to the image
  # (after the 1x1 convolution, the first applied) standardises dequantised
  # digits (standard deviation about 0.27), far from its initial log-scale 0.
  assert all(bool(layer.initialized.numpy()) for layer in layers[::2])
  assert abs(float(layers[2].log_scale.numpy()[0])) > 0.3
  # The density equals the change of variables through the layers'
  # forwards, computed independently of TFP's Invert.
  x = tf.random.stateless_uniform([4, 8, 8, 1], [1, 2]) - 0.5
  chain = tfb.Chain(layers)
  expected = _base().log_prob(chain.forward(x)) + (
    chain.forward_log_det_jacobian(x, event_ndims=3)
  )
  np.testing.assert_allclose(
    model.distribution.log_prob(x), expected, rtol=1e-5, atol=1e-4
  )
  assert model.sample(2, seed=0).shape == (2, 8, 8, 1)


def test_the_glow_direction_would_have_solved(monkeypatch):
  """The check above can fail: the same layers run backwards (as a plain
  `TransformedDistribution` would) trace two solves per emerging layer."""
  backwards = tfd.TransformedDistribution(
    _base(), tfb.Chain([bijectors.EmergingConv2D(1, seed=0)])
  )
  assert (
    _solves_traced(
      monkeypatch, backwards.log_prob, tf.TensorSpec([4, 8, 8, 1], tf.float32)
    )
    == 2
  )


def test_h5_and_configless_saves_are_refused_leaving_no_file(tmp_path, digits):
  model = _glow_model()
  model.fit(digits, epochs=1, verbose=0)
  for name in ("m.h5", "m.hdf5"):
    with pytest.raises(
      ValueError, match=r"HDF5 model files cannot hold a flow; save as \.keras"
    ):
      model.save(str(tmp_path / name))
    assert not (tmp_path / name).exists()
  chain = tfe_keras.FlowModel(
    tfb.Chain(_layers()),
    num_bins=NUM_BINS,
    base_distribution=_base(),
    direction="density",
  )
  path = tmp_path / "chain.keras"
  with pytest.raises(ValueError, match="saves its flow by config"):
    chain.save(str(path))
  assert not path.exists()
  model.save(str(tmp_path / "glow.keras"))
  assert os.path.getsize(tmp_path / "glow.keras") > 0


def test_sample_zero_is_an_empty_batch(digits):
  model = _glow_model()
  model.fit(digits, epochs=1, verbose=0)
  empty = model.sample(0)
  assert empty.shape == (0, 8, 8, 1) and empty.dtype == tf.int32
  with pytest.raises(ValueError, match="`n` must be an integer >= 0"):
    model.sample(-1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float64])
def test_tfp_glow_takes_numpy_images(digits, dtype):
  model = tfp_glow_model()
  model.compile(optimizer="adam")
  images = digits.astype(dtype)
  model.fit(images, epochs=1, verbose=0, batch_size=32)
  assert np.isfinite(model.evaluate(images, verbose=0)[0])
  assert model.bits_per_dim(images, seed=0).shape == (64,)
  assert model.sample(3, seed=0).shape == (3, 8, 8, 1)
