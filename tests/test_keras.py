"""FlowModel and WarmupSchedule: fit, evaluate, sample, save/load, tf_keras.

The digits (8x8, 17 grey levels) models are tiny: one short fit per mixing,
shared by the tests through `trained`.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging.flows import dequantization

keras = tfe_keras.keras
NUM_BINS = 17
TRAIN, TEST = slice(0, 512), slice(1500, 1700)


def digits():
  return load_digits().images.astype(np.uint8)[..., None]


def make_model(mixing="emerging", seed=0, learning_rate=2e-3):
  # Periodic kernels need the last level to be 3x3 at least: one level.
  levels = 1 if mixing == "periodic" else 2
  glow = flows.Glow((8, 8, 1), num_levels=levels, num_steps=1, mixing=mixing,
                    hidden_channels=16, seed=seed)
  model = tfe_keras.FlowModel(glow, num_bins=NUM_BINS)
  model.compile(optimizer=keras.optimizers.Adam(
      tfe_keras.WarmupSchedule(learning_rate, 10)))
  return model


class _Snapshot(keras.callbacks.Callback):
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
    train = tf.data.Dataset.from_tensor_slices(images[TRAIN]).shuffle(
        512, seed=0).batch(32)
    # Validation (a second traced step) for one mixing only, to save time.
    test = (tf.data.Dataset.from_tensor_slices(images[TEST]).batch(100)
            if mixing == "emerging" else None)
    snapshot = _Snapshot(images[TEST])
    history = model.fit(train, epochs=2, validation_data=test, verbose=0,
                        callbacks=[snapshot])
    _TRAINED[mixing] = model, snapshot, history
  return _TRAINED[mixing]


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_fit_reduces_bits_per_dim(mixing):
  model, snapshot, history = trained(mixing)
  assert snapshot.initialized  # fit ran the data-dependent init itself.
  after = model.bits_per_dim(digits()[TEST], seed=7).numpy()
  assert after.mean() < snapshot.bits.mean() - 0.1, (snapshot.bits.mean(),
                                                     after.mean())
  logs = history.history
  assert len(logs["loss"]) == 2 and logs["loss"][1] < logs["loss"][0]
  np.testing.assert_allclose(logs["loss"], logs["bits_per_dim"])
  if mixing == "emerging":
    assert set(logs) == {"loss", "bits_per_dim", "val_loss",
                         "val_bits_per_dim"}
    np.testing.assert_allclose(logs["val_loss"][-1], after.mean(), atol=0.05)
    # evaluate reports the same bits/dim, up to the dequantisation noise.
    loss, bits = model.evaluate(digits()[TEST], batch_size=100, verbose=0)
    assert loss == bits and abs(bits - after.mean()) < 0.05


def _underlying(weight):
  return weight.value if tfe_keras.KERAS_3 else weight


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_weights_are_the_flows_variables_and_fit_moves_them_all(mixing):
  model, snapshot, _ = trained(mixing)
  flow = model.flow
  assert len(model.trainable_weights) == len(flow.trainable_variables)
  assert ({id(_underlying(w)) for w in model.trainable_weights} ==
          {id(v) for v in flow.trainable_variables})
  flags = {id(a.initialized) for a in flow.actnorms}
  assert flags <= {id(_underlying(w)) for w in model.non_trainable_weights}
  for v, before in zip(flow.variables, snapshot.values):
    if v.trainable:
      assert np.any(v.numpy() != before), f"fit did not change {v.name}"


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_round_trip_after_training(mixing):
  model, _, _ = trained(mixing)
  flow = model.flow
  x = dequantization.dequantize(digits()[TEST], NUM_BINS, seed=1)
  z = flow.inverse(x)
  x_again = flow.forward(tf.identity(z))
  assert np.abs(x_again.numpy() - x.numpy()).max() <= 1e-4
  z = flow.base_distribution().sample(50, seed=2)
  z_again = flow.inverse(tf.identity(flow.forward(z)))
  assert np.abs(z_again.numpy() - z.numpy()).max() <= 1e-4


def test_save_and_load_weights_restore_identical_log_prob(tmp_path):
  model, _, _ = trained("emerging")
  images = digits()[TEST]
  want = model.bits_per_dim(images, seed=3).numpy()
  path = str(tmp_path / "model.weights.h5")
  model.save_weights(path)
  # The same seed: Conv1x1's fixed signs (constants, not variables) come
  # from it. The trained variables differ from the fresh ones all the same.
  fresh = make_model("emerging")
  assert np.all(fresh.bits_per_dim(images, seed=3).numpy() != want)
  fresh.load_weights(path)
  assert fresh.is_initialized()
  np.testing.assert_array_equal(fresh.bits_per_dim(images, seed=3).numpy(),
                                want)
  # And through tf.train.Checkpoint, with the optimizer.
  prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
      str(tmp_path / "ckpt"))
  other = make_model("emerging")
  other.optimizer.build(other.trainable_variables)
  tf.train.Checkpoint(model=other, optimizer=other.optimizer).restore(
      prefix).assert_existing_objects_matched()
  assert other.is_initialized()
  assert int(other.optimizer.iterations.numpy()) == int(
      model.optimizer.iterations.numpy())
  np.testing.assert_array_equal(other.bits_per_dim(images, seed=3).numpy(),
                                want)


def test_sample():
  model, _, _ = trained("emerging")
  images = model.sample(6, temperature=0.7, seed=4).numpy()
  assert images.shape == (6, 8, 8, 1) and images.dtype == np.int32
  assert images.min() >= 0 and images.max() <= NUM_BINS - 1
  np.testing.assert_array_equal(model.sample(6, temperature=0.7,
                                             seed=4).numpy(), images)
  # At temperature 0 every sample is the image of z = 0.
  modes = model.sample(3, temperature=0.).numpy()
  assert np.all(modes == modes[:1])


def test_warmup_schedule():
  schedule = tfe_keras.WarmupSchedule(1e-3, 10)
  np.testing.assert_allclose(
      [float(schedule(s)) for s in (0, 4, 9, 10, 1000)],
      [1e-4, 5e-4, 1e-3, 1e-3, 1e-3], rtol=1e-6)
  again = keras.optimizers.schedules.deserialize(
      keras.optimizers.schedules.serialize(schedule))
  assert isinstance(again, tfe_keras.WarmupSchedule)
  assert again.get_config() == {"learning_rate": 1e-3, "warmup_steps": 10}
  assert float(tfe_keras.WarmupSchedule(0.5, 0)(3)) == 0.5
  with pytest.raises(ValueError, match="warmup_steps"):
    tfe_keras.WarmupSchedule(1e-3, -1)


_TF_KERAS_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    sys.path.insert(0, sys.argv[1])
    from tests import test_keras as t
    from tfp_emerging import keras as tfe_keras
    model, snapshot, history = t.trained("1x1")
    images = t.digits()[t.TEST]
    want = model.bits_per_dim(images, seed=3).numpy()
    model.save_weights(sys.argv[2])
    fresh = t.make_model("1x1")
    fresh.load_weights(sys.argv[2])
    moved = [bool(np.any(v.numpy() != b)) for v, b in
             zip(model.flow.variables, snapshot.values) if v.trainable]
    print(json.dumps(dict(
        keras=type(model).__mro__[1].__module__,
        keras_3=tfe_keras.KERAS_3,
        initialized=snapshot.initialized,
        weights=len(model.trainable_weights),
        variables=len(model.flow.trainable_variables),
        moved=all(moved),
        before=float(snapshot.bits.mean()),
        after=float(model.bits_per_dim(images, seed=7).numpy().mean()),
        restored=bool(np.array_equal(
            fresh.bits_per_dim(images, seed=3).numpy(), want)),
        sample=list(model.sample(2, seed=1).shape))))
""")


def test_tf_keras_flavour(tmp_path):
  """The same model under tf_keras, in a subprocess (Keras is fixed at import)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(
      [sys.executable, "-c", _TF_KERAS_SCRIPT, root,
       str(tmp_path / "model.weights.h5")],
      env=env, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["keras"].startswith("tf_keras"), report
  assert report["keras_3"] is False
  assert report["initialized"]
  assert report["weights"] == report["variables"] > 0
  assert report["moved"]
  assert report["after"] < report["before"] - 0.1, report
  assert report["restored"]
  assert report["sample"] == [2, 8, 8, 1]
