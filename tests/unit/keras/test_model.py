"""FlowModel and WarmupSchedule: fit, evaluate, sample, save/load.

The digits (8x8, 17 grey levels) models are tiny: one short fit per mixing,
shared by the tests through `tests.testlib.digits_models.trained`; the
same models under tf_keras: tests/integration/test_tf_keras.py.
"""

import os
import re
import zipfile

import h5py
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib.digits_models import NUM_BINS
from tests.testlib.digits_models import TEST
from tests.testlib.digits_models import TRAIN
from tests.testlib.digits_models import checkpoint_restores_the_trained_model
from tests.testlib.digits_models import digits
from tests.testlib.digits_models import lu_model_off_its_seed
from tests.testlib.digits_models import make_model
from tests.testlib.digits_models import part_sizes
from tests.testlib.digits_models import trained
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging.flows import dequantization

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

keras = tfe_keras.keras
tfb = tfp.bijectors
tfd = tfp.distributions


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_fit_reduces_bits_per_dim(mixing):
  model, snapshot, history = trained(mixing)
  assert snapshot.initialized  # fit ran the data-dependent init itself.
  after = model.bits_per_dim(digits()[TEST], seed=7).numpy()
  assert after.mean() < snapshot.bits.mean() - 0.1, (
    snapshot.bits.mean(),
    after.mean(),
  )
  logs = history.history
  assert len(logs["loss"]) == 2 and logs["loss"][1] < logs["loss"][0]
  np.testing.assert_allclose(logs["loss"], logs["bits_per_dim"])
  if mixing == "emerging":
    assert set(logs) == {"loss", "bits_per_dim", "val_loss", "val_bits_per_dim"}
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
  assert {id(_underlying(w)) for w in model.trainable_weights} == {
    id(v) for v in flow.trainable_variables
  }
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
  # Another seed: other initial values, Conv1x1 signs included, all of which
  # the weights file restores.
  fresh = make_model("emerging", seed=5)
  assert np.all(fresh.bits_per_dim(images, seed=3).numpy() != want)
  fresh.load_weights(path)
  assert fresh.is_initialized()
  # The optimizer's state too (Keras skips it into an unbuilt optimizer).
  assert int(fresh.optimizer.iterations.numpy()) == int(
    model.optimizer.iterations.numpy()
  )
  np.testing.assert_array_equal(
    fresh.bits_per_dim(images, seed=3).numpy(), want
  )
  # And through tf.train.Checkpoint, with the optimizer.
  prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
    str(tmp_path / "ckpt")
  )
  other = make_model("emerging", seed=5)
  other.optimizer.build(other.trainable_variables)
  tf.train.Checkpoint(model=other, optimizer=other.optimizer).restore(
    prefix
  ).assert_existing_objects_matched()
  assert other.is_initialized()
  assert int(other.optimizer.iterations.numpy()) == int(
    model.optimizer.iterations.numpy()
  )
  np.testing.assert_array_equal(
    other.bits_per_dim(images, seed=3).numpy(), want
  )


def _damage_first_weight(path, damaged):
  """Rewrites the `.keras` file at `path` with the first element of its
  first floating weight array replaced by `damaged` (as flipped bytes
  would): the archive's `model.weights.h5`, edited in place."""
  with zipfile.ZipFile(path) as archive:
    members = {name: archive.read(name) for name in archive.namelist()}
  weights_path = os.path.join(os.path.dirname(path), "model.weights.h5")
  with open(weights_path, "wb") as f:
    f.write(members["model.weights.h5"])
  found = []

  def visit(name, item):
    if isinstance(item, h5py.Dataset) and item.dtype.kind == "f" and item.size:
      found.append(name)

  with h5py.File(weights_path, "r+") as h5:
    h5.visititems(visit)
    data = h5[found[0]][()]
    data.flat[0] = damaged
    h5[found[0]][()] = data
  with open(weights_path, "rb") as f:
    members["model.weights.h5"] = f.read()
  with zipfile.ZipFile(path, "w") as archive:
    for name, content in members.items():
      archive.writestr(name, content)
  return found[0]


@pytest.mark.parametrize("damaged", [np.nan, np.inf])
def test_a_damaged_keras_file_is_refused_at_load(tmp_path, damaged):
  """Flipped bytes that make a weight NaN or infinite: the load names the
  layer and the variable instead of giving `log_prob` of NaN later."""
  model = lu_model_off_its_seed()
  path = str(tmp_path / "m.keras")
  model.save(path)
  keras.models.load_model(path)  # intact: loads
  _damage_first_weight(path, damaged)
  with pytest.raises(
    ValueError, match=r"not finite .* the saved file is damaged"
  ):
    keras.models.load_model(path)


def test_keras_file_restores_the_whole_model(tmp_path):
  model = lu_model_off_its_seed()
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert type(loaded) is tfe_keras.FlowModel
  assert loaded is not model and loaded.flow is not model.flow
  assert loaded.get_config() == model.get_config()
  assert loaded.num_bins == NUM_BINS and loaded.is_initialized()
  for v, w in zip(model.flow.variables, loaded.flow.variables):
    np.testing.assert_array_equal(w.numpy(), v.numpy(), err_msg=v.name)
  # The same dequantised points, the same log_prob: exactly.
  x = dequantization.dequantize(digits()[TEST], NUM_BINS, seed=[1, 2])
  np.testing.assert_array_equal(
    loaded.distribution.log_prob(x).numpy(),
    model.distribution.log_prob(x).numpy(),
  )
  np.testing.assert_array_equal(
    loaded.bits_per_dim(digits()[TEST], seed=3).numpy(),
    model.bits_per_dim(digits()[TEST], seed=3).numpy(),
  )
  assert loaded.optimizer.get_config() == model.optimizer.get_config()
  assert "WarmupSchedule" in str(loaded.optimizer.get_config())
  # A flow without a config cannot be saved this way: a clear error.
  chain = tfe_keras.FlowModel(
    tfb.Chain([model.flow]),
    num_bins=NUM_BINS,
    base_distribution=model.distribution.distribution,
  )
  with pytest.raises(ValueError, match="get_config"):
    chain.save(str(tmp_path / "chain.keras"))


def test_full_model_checkpoint_callback_writes_a_loadable_model():
  assert checkpoint_restores_the_trained_model("emerging")


def test_summary_lists_every_part_of_the_flow():
  model, _, _ = trained("emerging")
  step = [
    "actnorm (ActNorm)",
    "conv1x1 (Conv1x1)",
    "emerging_conv2d (EmergingConv2D)",
    "affine_coupling (AffineCoupling)",
  ]
  expected = (
    [f"level0_step0_{s}" for s in step]
    + ["level0_split_prior (ConditionalNormalPrior)"]
    + [f"level1_step0_{s}" for s in step]
    + ["level1_top_prior (LearnedNormalPrior)"]
  )
  assert [
    f"{layer.name} ({type(layer).__name__})" for layer in model.layers
  ] == expected
  sizes = part_sizes(model)
  assert [layer.count_params() for layer in model.layers] == sizes
  assert sum(sizes) == sum(int(np.prod(v.shape)) for v in model.flow.variables)
  lines = []
  # 80 columns: what rich renders when the output is not a terminal.
  model.summary(
    print_fn=lambda line, *args, **kwargs: lines.append(line),
    line_length=80,
    positions=[0.62, 0.75, 1.0],
  )
  rows = [
    re.sub(r"[^\w().,:? ]+", " ", line).split()
    for line in "\n".join(lines).splitlines()
  ]
  table = [
    (row[0], row[1], int(row[-1].replace(",", "")))
    for row in rows
    if len(row) == 4 and row[2] == "?"
  ]
  assert [f"{name} {kind}" for name, kind, _ in table] == expected
  assert [size for _, _, size in table] == sizes
  trainable = sum(int(np.prod(v.shape)) for v in model.flow.trainable_variables)
  assert f"Trainable params: {trainable:,} " in lines[-1]
  assert f"Non-trainable params: {sum(sizes) - trainable:,} " in lines[-1]


def _record_variables():
  """A variable creator scope and the list of variables it sees created."""
  created = []

  def record(next_creator, **kwargs):
    created.append(next_creator(**kwargs))
    return created[-1]

  return tf.variable_creator_scope(record), created


def _fit_moves_every_variable(make_flow_and_base):
  """Builds a flow and its FlowModel, fits it; checks every variable."""
  scope, created = _record_variables()
  with scope:
    flow, base = make_flow_and_base()
    model = tfe_keras.FlowModel(flow, num_bins=NUM_BINS, base_distribution=base)
  trainable = [v for v in created if v.trainable]
  assert trainable
  assert {id(v) for v in trainable} == {
    id(_underlying(w)) for w in model.trainable_weights
  }
  assert not model.is_initialized()
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  before = [v.numpy().copy() for v in trainable]
  images = digits()[TRAIN][:128]
  model.fit(
    tf.data.Dataset.from_tensor_slices(images).batch(32, drop_remainder=True),
    epochs=1,
    verbose=0,
  )
  assert model.is_initialized()
  for v, value in zip(trainable, before):
    assert np.any(v.numpy() != value), f"fit did not change {v.name}"
  assert model.sample(2, seed=1).shape == (2, 8, 8, 1)
  return model


@pytest.mark.skipif(not tfe_keras.KERAS_3, reason="Keras 3 layers")
def test_tfp_glow_with_lazily_built_networks_is_a_flow():
  def make():
    def network(shape):  # No Input: Keras builds it on the first call.
      return keras.Sequential(
        [
          keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
          keras.layers.Conv2D(
            2 * shape[-1], 3, padding="same", kernel_initializer="zeros"
          ),
        ]
      )

    glow = tfb.Glow(
      output_shape=(8, 8, 1),
      num_glow_blocks=1,
      num_steps_per_block=1,
      coupling_bijector_fn=network,
      seed=0,
    )
    return glow, tfd.Sample(
      tfd.Normal(0.0, 1.0), glow.inverse_event_shape((8, 8, 1))
    )

  model = _fit_moves_every_variable(make)
  assert [type(layer).__name__ for layer in model.layers] == [
    "ActivationNormalization",
    "Invert",
    "Invert",
  ]


def test_chain_is_a_flow_and_initialises_its_actnorm():
  def make():
    glow = flows.Glow(
      (8, 8, 1),
      num_levels=1,
      num_steps=1,
      mixing="lu",
      hidden_channels=8,
      seed=0,
    )
    chain = tfb.Chain(
      [tfb.Scale(tf.Variable(1.0)), tfb.Shift(tf.Variable(0.0)), glow]
    )
    assert chain.dtype is None
    return chain, glow.base_distribution()

  model = _fit_moves_every_variable(make)
  assert [layer.name for layer in model.layers][:3] == [
    "0_scale",
    "1_shift",
    "2_level0_step0_actnorm",
  ]


def test_sample_of_an_uninitialised_model_is_an_error():
  with pytest.raises(ValueError, match="not initialised"):
    make_model("1x1").sample(2)


def test_sample():
  model, _, _ = trained("emerging")
  images = model.sample(6, temperature=0.7, seed=4).numpy()
  assert images.shape == (6, 8, 8, 1) and images.dtype == np.int32
  assert images.min() >= 0 and images.max() <= NUM_BINS - 1
  np.testing.assert_array_equal(
    model.sample(6, temperature=0.7, seed=4).numpy(), images
  )
  # At temperature 0 every sample is the image of z = 0.
  modes = model.sample(3, temperature=0.0).numpy()
  assert np.all(modes == modes[:1])


def test_warmup_schedule():
  schedule = tfe_keras.WarmupSchedule(1e-3, 10)
  np.testing.assert_allclose(
    [float(schedule(s)) for s in (0, 4, 9, 10, 1000)],
    [1e-4, 5e-4, 1e-3, 1e-3, 1e-3],
    rtol=1e-6,
  )
  again = keras.optimizers.schedules.deserialize(
    keras.optimizers.schedules.serialize(schedule)
  )
  assert isinstance(again, tfe_keras.WarmupSchedule)
  assert again.get_config() == {"learning_rate": 1e-3, "warmup_steps": 10}
  assert float(tfe_keras.WarmupSchedule(0.5, 0)(3)) == 0.5
  with pytest.raises(ValueError, match="warmup_steps"):
    tfe_keras.WarmupSchedule(1e-3, -1)


@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_sample_refuses_non_finite_and_negative_temperatures(temperature):
  model, _, _ = trained("emerging")
  with pytest.raises(ValueError, match=r"`temperature` must be a finite"):
    model.sample(2, temperature=temperature, seed=1)


def test_every_sample_pixel_is_a_level():
  model, _, _ = trained("emerging")
  images = model.sample(8, temperature=1.0, seed=3).numpy()
  assert images.dtype == np.int32
  assert np.all((images >= 0) & (images < NUM_BINS))


@pytest.mark.parametrize("shape", [(2, 16, 16, 1), (2, 8, 8, 3), (8, 8, 1)])
def test_images_of_another_shape_name_both_shapes(shape):
  model, _, _ = trained("emerging")
  images = np.zeros(shape, np.int32)
  wanted = re.escape("event shape [8, 8, 1]; got shape " + str(list(shape)))
  for call in (
    model.bits_per_dim,
    lambda x: model.evaluate(x, batch_size=2, verbose=0),
    model.initialize,
  ):
    with pytest.raises(ValueError, match=wanted):
      call(images)


def test_labels_of_another_length_are_refused():
  glow = flows.Glow(
    (8, 8, 1), num_levels=1, num_steps=1, hidden_channels=8, num_classes=3
  )
  model = tfe_keras.FlowModel(glow, num_bins=NUM_BINS)
  images = np.zeros((4, 8, 8, 1), np.int32)
  with pytest.raises(ValueError, match=r"one class per image \(4 images"):
    model.bits_per_dim(images, labels=np.zeros([3], np.int32))
