"""FlowModel and WarmupSchedule: fit, evaluate, sample, save/load; edge
inputs (pixel levels, empty inputs, labels); flows written in either
direction; Keras habits (frozen layers, `sample_weight`, TFP's `tfb.Glow`,
`ReduceLROnPlateau` over the warm-up); variational dequantisation and
importance-weighted bits/dim against the flow's own `log_prob`.

The digits (8x8, 17 grey levels) models are tiny: one short fit per mixing,
shared by the tests through `tests.testlib.digits_models.trained`; the
same models under tf_keras: tests/integration/test_tf_keras.py. The tests
that train are marked slow; the edge-input ones that do not stay in
`make test-unit`.
"""

import os
import re
import warnings
import zipfile

import h5py
import numpy as np
import pytest
from scipy import special
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
from tests.testlib.digits_models import small_model
from tests.testlib.digits_models import tfp_glow_model
from tests.testlib.digits_models import trained
from tests.testlib.runs import first_examples
from tests.testlib.runs import tiny_config
from tfp_emerging import bijectors
from tfp_emerging import data
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training
from tfp_emerging.data import pipeline
from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE
from tfp_emerging.flows import VariationalDequantizer
from tfp_emerging.flows import dequantization
from tfp_emerging.ops import autoregressive

keras = tfe_keras.keras
tfb = tfp.bijectors
tfd = tfp.distributions


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_full_model_checkpoint_callback_writes_a_loadable_model():
  assert checkpoint_restores_the_trained_model("emerging")


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_sample_of_an_uninitialised_model_is_an_error():
  with pytest.raises(ValueError, match="not initialised"):
    make_model("1x1").sample(2)


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_sample_refuses_non_finite_and_negative_temperatures(temperature):
  model, _, _ = trained("emerging")
  with pytest.raises(ValueError, match=r"`temperature` must be a finite"):
    model.sample(2, temperature=temperature, seed=1)


@pytest.mark.slow
def test_every_sample_pixel_is_a_level():
  model, _, _ = trained("emerging")
  images = model.sample(8, temperature=1.0, seed=3).numpy()
  assert images.dtype == np.int32
  assert np.all((images >= 0) & (images < NUM_BINS))


@pytest.mark.slow
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


@pytest.mark.slow
def test_labels_of_another_length_are_refused():
  glow = flows.Glow(
    (8, 8, 1), num_levels=1, num_steps=1, hidden_channels=8, num_classes=3
  )
  model = tfe_keras.FlowModel(glow, num_bins=NUM_BINS)
  images = np.zeros((4, 8, 8, 1), np.int32)
  with pytest.raises(ValueError, match=r"one class per image \(4 images"):
    model.bits_per_dim(images, labels=np.zeros([3], np.int32))


# Edge inputs: pixel levels, empty inputs, labels.

RANGE = r"images must be whole numbers in \[0, 17\) \(num_bins=17"
LABEL_DTYPE = r"`labels` must be integer class ids \(an integer dtype"


@pytest.fixture(scope="module")
def first_digits():
  """The first 64 training digits of `data.load("digits")`."""
  return first_examples(64)[0]


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["divided", "times15", "minus_half"])
def test_images_not_levels_are_refused_before_training(first_digits, scale):
  images = {
    "divided": first_digits / 16.0,
    "times15": first_digits.astype(np.int32) * 15,
    "minus_half": first_digits - 0.5,
  }[scale]
  model = small_model()
  with pytest.raises(ValueError, match=RANGE):
    model.fit(images, epochs=1, verbose=0)


@pytest.mark.slow
def test_the_traced_steps_check_every_batch(first_digits):
  """An initialised model checks inside its compiled train and test steps
  (the first batch is fine, a later one is not)."""
  model = small_model()
  model.initialize(first_digits)
  bad = np.concatenate([first_digits[:32], first_digits[32:] * 2])
  batches = tf.data.Dataset.from_tensor_slices(bad).batch(32)
  with pytest.raises(ValueError, match=RANGE + r".*got values from 0 to 32"):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match="FlowModel.evaluate: " + RANGE):
    model.evaluate(batches, verbose=0)
  with pytest.raises(
    ValueError,
    match="FlowModel.bits_per_dim: " + RANGE + ".*not all whole numbers",
  ):
    model.bits_per_dim(first_digits + 0.25, seed=1)
  with pytest.raises(ValueError, match="FlowModel.initialize: " + RANGE):
    model.initialize(first_digits - 1.0)


@pytest.mark.slow
def test_levels_of_any_dtype_are_accepted(first_digits):
  model = small_model()
  for images in (
    first_digits,
    first_digits.astype(np.int64),
    first_digits.astype(np.float32),
    tf.constant(first_digits, tf.float64),
  ):
    model.fit(images, epochs=1, verbose=0, batch_size=32)
    assert model.bits_per_dim(images, seed=0).shape == (64,)


def test_a_batch_of_no_images_gives_no_bits(first_digits):
  model = small_model()
  assert model.bits_per_dim(first_digits[:0]).shape == (0,)
  assert model.distribution.log_prob(tf.zeros([0, 8, 8, 1])).shape == (0,)
  assert not model.is_initialized()  # nothing to initialise from
  with pytest.raises(ValueError, match="holds no images"):
    model.flow.initialize(tf.zeros([0, 8, 8, 1]))
  model.initialize(first_digits, seed=0)
  assert model.bits_per_dim(first_digits[:0], seed=1).shape == (0,)


@pytest.mark.parametrize("initialized", [False, True])
def test_fit_on_an_empty_dataset_names_it(first_digits, initialized):
  model = small_model()
  if initialized:
    model.initialize(first_digits, seed=0)
  empty = tf.data.Dataset.from_tensor_slices(first_digits[:0]).batch(8)
  with pytest.raises(ValueError, match=r"FlowModel\.fit: the dataset holds no"):
    model.fit(empty, epochs=1, verbose=0)
  # Of unknown size: found empty when its first batch is drawn.
  filtered = tf.data.Dataset.from_tensor_slices(first_digits).filter(
    lambda image: tf.reduce_max(image) > 100
  )
  if not initialized:
    with pytest.raises(ValueError, match="the dataset holds no batches"):
      model.fit(filtered.batch(8), epochs=1, verbose=0)
  with pytest.raises(ValueError, match="the image array holds no"):
    model.fit(first_digits[:0], epochs=1, verbose=0)
  with pytest.raises(ValueError, match=r"FlowModel\.evaluate: the dataset"):
    model.evaluate(empty, verbose=0)


def test_string_labels_name_labels_and_the_integer_dtype(first_digits):
  model = small_model(num_classes=10)
  names = np.array(["zero"] * len(first_digits))
  with pytest.raises(ValueError, match="FlowModel.fit: " + LABEL_DTYPE):
    model.fit(first_digits, names, epochs=1, verbose=0)
  batches = tf.data.Dataset.from_tensor_slices((first_digits, names)).batch(32)
  with pytest.raises(ValueError, match="FlowModel.fit: " + LABEL_DTYPE):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match="FlowModel.evaluate: " + LABEL_DTYPE):
    model.evaluate(first_digits, names, verbose=0)
  with pytest.raises(ValueError, match="bits_per_dim: " + LABEL_DTYPE):
    model.bits_per_dim(first_digits, labels=names)
  with pytest.raises(ValueError, match="initialize: " + LABEL_DTYPE):
    model.initialize(first_digits, labels=names)


def test_an_unconditional_model_refuses_labels_as_documented(first_digits):
  model = small_model()
  labels = np.zeros(len(first_digits), np.int32)
  refused = "FlowModel.{}: this FlowModel's flow is not class-conditional"
  batches = tf.data.Dataset.from_tensor_slices((first_digits, labels)).batch(32)
  with pytest.raises(ValueError, match=refused.format("fit")):
    model.fit(batches, epochs=1, verbose=0)
  with pytest.raises(ValueError, match=refused.format("fit")):
    model.fit(first_digits, labels, epochs=1, verbose=0)
  assert not model.is_initialized()  # refused before any work
  with pytest.raises(ValueError, match=refused.format("evaluate")):
    model.evaluate(batches, verbose=0)


@pytest.mark.slow
def test_sample_zero_is_an_empty_batch(first_digits):
  model = small_model()
  model.fit(first_digits, epochs=1, verbose=0)
  empty = model.sample(0)
  assert empty.shape == (0, 8, 8, 1) and empty.dtype == tf.int32
  with pytest.raises(ValueError, match="`n` must be an integer >= 0"):
    model.sample(-1)


# Directions: a flow written either way trains without a solve.


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("way", ["density_argument", "sampling_direction"])
def test_either_direction_trains_without_a_solve_and_initialises_actnorm(
  first_digits, way, monkeypatch
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
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  model.fit(first_digits, epochs=2, verbose=0, batch_size=32)
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_h5_and_configless_saves_are_refused_leaving_no_file(
  tmp_path, first_digits
):
  model = small_model()
  model.fit(first_digits, epochs=1, verbose=0)
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


# Keras habits: frozen layers, sample_weight, TFP's tfb.Glow, the warm-up
# under ReduceLROnPlateau.

D = 64  # 8 x 8 x 1


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
def test_a_frozen_model_fits_without_update_and_reports_its_metrics(
  first_digits,
):
  model = small_model()
  model.initialize(first_digits, seed=0)
  for layer in model.layers:
    layer.trainable = False
  assert not model.trainable_weights
  before = [v.numpy().copy() for v in model.weights]
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = model.fit(first_digits, epochs=1, batch_size=32, verbose=0)
  assert any("no trainable weights" in str(w.message) for w in caught)
  assert np.isfinite(history.history["loss"][0])
  assert history.history["loss"] == history.history["bits_per_dim"]
  for old, new in zip(before, model.weights):
    np.testing.assert_array_equal(old, new.numpy())


@pytest.mark.slow
def test_sample_weight_weighs_fit_and_evaluate(first_digits):
  """Against a hand-weighted mean of per-image bits/dim from
  `distribution.log_prob`; ActNorm is initialised first, so that the
  training step (SGD) is the only change to the weights."""
  images = first_digits[:16]
  dequantized, x = _dequantized(images)
  weights = np.array([0, 1, 2, 3] * 4, np.float32)
  model = small_model(keras.optimizers.SGD(0.05))
  model.initialize(images, seed=0)
  bits = _hand_bits(model, x).numpy()
  weighted = np.sum(weights * bits) / np.sum(weights)
  assert abs(weighted - bits.mean()) > 1e-3  # the weights matter
  # The same weighted batch, evaluated and then fitted on.
  batch = dict(x=dequantized, sample_weight=weights, verbose=0)
  logs = model.evaluate(**batch, batch_size=8, return_dict=True)
  np.testing.assert_allclose(logs["bits_per_dim"], weighted, rtol=1e-5)

  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    hand = _hand_bits(model, x)
    loss = tf.reduce_sum(weights * hand) / np.sum(weights)
  gradients = tape.gradient(loss, variables)
  expected = [
    v.numpy() - 0.05 * g.numpy() for v, g in zip(variables, gradients)
  ]
  history = model.fit(**batch, batch_size=16, epochs=1, shuffle=False)
  np.testing.assert_allclose(history.history["loss"][0], weighted, rtol=1e-5)
  for want, v in zip(expected, variables):
    np.testing.assert_allclose(v.numpy(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_tfp_glow_trains_on_a_smaller_last_batch(first_digits):
  """TFP's `tfb.Glow` cannot trace a batch of unknown size (its `Reshape`
  concatenates int32 and int64 shapes); batches of 8, 8 and 5 images, whose
  size the traced steps do not know, train and evaluate, with the bits/dim
  of `distribution.log_prob` on the whole batch."""
  model = tfp_glow_model()
  model.compile(optimizer="adam")
  images = tf.data.Dataset.from_tensor_slices(first_digits[:21]).batch(8)
  assert images.element_spec.shape[0] is None
  history = model.fit(images, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][0])
  batch, x = _dequantized(first_digits[:21])
  dequantized = tf.data.Dataset.from_tensor_slices(batch).batch(8)
  logs = model.evaluate(dequantized, verbose=0, return_dict=True)
  expected = np.mean(_hand_bits(model, x).numpy())
  np.testing.assert_allclose(logs["bits_per_dim"], expected, rtol=1e-5)
  # bits_per_dim traces a batch of unknown size from its second shape on.
  assert model.bits_per_dim(first_digits[:5], seed=0).shape == (5,)
  assert model.bits_per_dim(first_digits[:7], seed=0).shape == (7,)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float64])
def test_tfp_glow_takes_numpy_images(first_digits, dtype):
  model = tfp_glow_model()
  model.compile(optimizer="adam")
  images = first_digits.astype(dtype)
  model.fit(images, epochs=1, verbose=0, batch_size=32)
  assert np.isfinite(model.evaluate(images, verbose=0)[0])
  assert model.bits_per_dim(images, seed=0).shape == (64,)
  assert model.sample(3, seed=0).shape == (3, 8, 8, 1)


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
def test_reduce_lr_on_plateau_lowers_the_warm_up_schedule(
  first_digits, tmp_path
):
  """Keras' own callback lowers the rate that SGD uses, through the warm-up
  (10 steps, 4 per epoch): a plateau after epoch 2 halves the rest of the
  warm-up and the peak; the optimizer's checkpoints keep their layout."""
  batch, x = _dequantized(first_digits)
  schedule = tfe_keras.WarmupSchedule(0.01, 10)
  model = small_model(keras.optimizers.SGD(schedule))
  model.initialize(first_digits, seed=0)
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


# Variational dequantisation (`dequantizer=VariationalDequantizer(...)`) and
# importance-weighted bits/dim (`num_samples=K`), on tiny run models of the
# digits file `digits_npz`.


@pytest.fixture(scope="module")
def small_digits(digits_npz):
  return data.load(digits_npz)


@pytest.fixture(scope="module")
def variational_model(digits_npz, small_digits):
  """A tiny run model with variational dequantisation, fitted one epoch."""
  config = tiny_config(digits_npz, dequantization="variational").with_data(
    small_digits
  )
  model = training.build_model(config)
  training.fit(model, small_digits, config)
  return model


@pytest.fixture(scope="module")
def uniform_model(digits_npz, small_digits):
  """A tiny run model (uniform dequantisation), initialised, not trained."""
  model = training.build_model(tiny_config(digits_npz).with_data(small_digits))
  model.initialize(digits()[:64], seed=0)
  return model


def _variational_reference_bits(model, images, u0):
  """The bound from the flow's `log_prob` and `q`'s inverse-pass density."""
  levels = tf.cast(images, tf.float32)
  q = model.dequantizer
  u, _ = q.sample_and_log_prob(u0, levels)
  x = (levels + u) / NUM_BINS - 0.5
  nats = (
    model.distribution.log_prob(x).numpy().astype(np.float64)
    - q.log_prob(tf.identity(u), levels).numpy()
  )
  return -(nats - D * np.log(NUM_BINS)) / (D * np.log(2.0))


@pytest.mark.slow
def test_the_model_is_the_bound_of_its_parts(variational_model):
  model = variational_model
  assert isinstance(model.dequantizer, VariationalDequantizer)
  images = digits()[TEST][:16]
  u0 = dequantization.uniform_noise(images.shape, [7, 0])
  np.testing.assert_allclose(
    model.bits_per_dim(images, seed=7).numpy(),
    _variational_reference_bits(model, images, u0),
    rtol=2e-5,
  )


@pytest.mark.slow
def test_the_pipelines_batches_give_the_same_bits(
  variational_model, small_digits
):
  model, dataset = variational_model, small_digits
  batches = list(pipeline.test_batches(dataset, 10, seed=5))
  u0 = np.concatenate([b[pipeline.NOISE].numpy() for b in batches])
  k = np.concatenate([b[pipeline.LEVELS].numpy() for b in batches])
  weight = np.concatenate([b[pipeline.WEIGHT].numpy() for b in batches])
  expected = _variational_reference_bits(model, k, u0)[weight > 0].mean()
  assert training.evaluate(model, dataset, 10, seed=5) == pytest.approx(
    expected, rel=1e-5
  )
  levels_only = pipeline.test_batches(dataset, 10, seed=5).map(
    lambda x: {pipeline.LEVELS: x[pipeline.LEVELS]}
  )
  with pytest.raises(ValueError, match="uniform noise"):
    model.evaluate(levels_only, verbose=0)


@pytest.mark.slow
def test_fit_trains_q_and_its_variables_are_saved(variational_model, tmp_path):
  model = variational_model
  fresh = VariationalDequantizer((8, 8, 1), NUM_BINS, hidden_channels=4, seed=1)
  trained = {v.name: v.numpy() for v in model.dequantizer.trainable_variables}
  assert all(
    np.any(value != 0) for name, value in trained.items() if "output" in name
  ), "the zero last layers never moved"
  ids = {
    id(w.value if hasattr(w, "value") else w) for w in model.trainable_weights
  }
  assert all(id(v) in ids for v in model.dequantizer.trainable_variables)
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded.dequantizer, VariationalDequantizer)
  images = digits()[TEST][:8]
  np.testing.assert_allclose(
    loaded.bits_per_dim(images, seed=3).numpy(),
    model.bits_per_dim(images, seed=3).numpy(),
    rtol=1e-6,
  )
  assert fresh.num_bins == NUM_BINS
  with pytest.raises(ValueError, match="dequantizer"):
    tfe_keras.FlowModel(model.flow, NUM_BINS, dequantizer=fresh.couplings[0])
  with pytest.raises(ValueError, match=r"dequantizer.*num_bins"):
    tfe_keras.FlowModel(model.flow, 256, dequantizer=fresh)


def _importance_weighted_reference_bits(model, x):
  """Importance-weighted bits/dim of draws `x` `[B, K, 8, 8, 1]`, from the
  flow's own `log_prob` of the draws averaged with scipy's logsumexp."""
  b, k = x.shape[:2]
  log_prob = (
    model.distribution.log_prob(tf.reshape(x, [b * k, 8, 8, 1]))
    .numpy()
    .astype(np.float64)
  )
  log_mean = special.logsumexp(log_prob.reshape(b, k), axis=1) - np.log(k)
  return -(log_mean - D * np.log(NUM_BINS)) / (D * np.log(2.0))


@pytest.mark.slow
def test_evaluation_batches_carry_k_draws_the_first_the_usual_one(
  small_digits,
):
  one = next(iter(pipeline.test_batches(small_digits, 32, seed=5)))
  four = next(
    iter(pipeline.test_batches(small_digits, 32, seed=5, num_samples=4))
  )
  u1, u4 = one[pipeline.NOISE].numpy(), four[pipeline.NOISE].numpy()
  assert u4.shape == (32, 4, 8, 8, 1)
  assert four[pipeline.LEVELS].shape == (32, 8, 8, 1)
  np.testing.assert_array_equal(u4[:, 0], u1)
  np.testing.assert_array_equal(
    four[pipeline.LEVELS].numpy(), one[pipeline.LEVELS].numpy()
  )
  assert len({u4[0, j].tobytes() for j in range(4)}) == 4  # distinct noise


@pytest.mark.slow
def test_evaluate_with_k_draws_is_the_logsumexp_of_the_draws(
  uniform_model, small_digits
):
  model, dataset = uniform_model, small_digits
  batches = list(pipeline.test_batches(dataset, 10, seed=5, num_samples=8))
  k = np.concatenate([b[pipeline.LEVELS].numpy() for b in batches])
  u = np.concatenate([b[pipeline.NOISE].numpy() for b in batches])
  weight = np.concatenate([b[pipeline.WEIGHT].numpy() for b in batches])
  x = ((k[:, None] + u) / np.float32(NUM_BINS) - np.float32(0.5)).astype(
    np.float32
  )
  reference = _importance_weighted_reference_bits(model, x)[weight > 0]
  got = training.evaluate(model, dataset, 10, seed=5, num_samples=8)
  assert got == pytest.approx(reference.mean(), rel=1e-5)
  single = training.evaluate(model, dataset, 10, seed=5)
  # Per image never above the mean of its draws' single-draw figures; here,
  # over 32 images, below the single-draw figure of the first draws too.
  per_draw = np.stack(
    [
      _importance_weighted_reference_bits(model, x[:, j : j + 1])
      for j in range(8)
    ],
    1,
  )[weight > 0]
  assert np.all(reference <= per_draw.mean(1) + 1e-9)
  assert got < single
  # The single-draw evaluation is unchanged after a K-draw one.
  assert training.evaluate(model, dataset, 10, seed=5) == single


@pytest.mark.slow
def test_bits_per_dim_with_k_draws_of_integer_images(uniform_model):
  model = uniform_model
  images = digits()[TEST][:16]
  got = model.bits_per_dim(images, seed=3, num_samples=5).numpy()
  x = (
    dequantization.dequantize(
      np.repeat(images, 5, axis=0), NUM_BINS, seed=[3, 0]
    )
    .numpy()
    .reshape(16, 5, 8, 8, 1)
  )
  np.testing.assert_allclose(
    got, _importance_weighted_reference_bits(model, x), rtol=1e-5
  )
  np.testing.assert_array_equal(
    model.bits_per_dim(images, seed=3, num_samples=1).numpy(),
    model.bits_per_dim(images, seed=3).numpy(),
  )
  # Keras' evaluate on integer images: K fresh draws each, then back to one.
  loss, bits = model.evaluate(images, batch_size=8, num_samples=5, verbose=0)
  assert loss == bits and abs(bits - got.mean()) < 0.05
  with pytest.raises(ValueError, match="num_samples"):
    model.evaluate(images, num_samples=0, verbose=0)
  with pytest.raises(ValueError, match="num_samples"):
    model.bits_per_dim(images, num_samples=2.5)
