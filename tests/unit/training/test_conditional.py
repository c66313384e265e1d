"""Class-conditional flows end to end: `FlowModel` with labels (fit, evaluate,
bits/dim, sample, save, export), a coupling network of the user's trained
by `fit`, labels routed through a `tfb.Chain`, and the command line
(`--conditional`, `sample --classes`, `demo --conditional`)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import runs
from tfp_emerging import cli
from tfp_emerging import training
from tfp_emerging.data.tfds_mock import mock_tfds
from tfp_emerging.flows import Glow
from tfp_emerging.keras import FlowModel
from tfp_emerging.keras import keras
from tfp_emerging.training import run_dir
from tfp_emerging.training import sample_grids

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

tfb = tfp.bijectors

NUM_CLASSES = 10
TINY = runs.TINY_FLAGS


@pytest.fixture(scope="module")
def digits():
  """512 training digits with their labels, and 64 test ones."""
  return runs.first_examples(512), runs.first_examples(64, "test")


def _conditional_model(seed=0, learning_rate=5e-3, **options):
  glow = Glow(
    image_shape=(8, 8, 1),
    num_levels=1,
    num_steps=2,
    hidden_channels=16,
    mixing="lu",
    num_classes=NUM_CLASSES,
    seed=seed,
    **options,
  )
  model = FlowModel(glow, num_bins=17)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate))
  return model


@pytest.fixture(scope="module")
def trained(digits):
  """A conditional model fit for 12 epochs on `(images, labels)` batches."""
  (images, labels), _ = digits
  model = _conditional_model(condition_couplings=True)
  batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(32)
  history = model.fit(batches, epochs=12, verbose=0)
  return model, history.history["loss"]


def test_fit_on_images_and_labels_learns(trained):
  model, losses = trained
  assert model.num_classes == NUM_CLASSES and model.is_initialized()
  assert losses[-1] < losses[0] - 0.3, losses


def test_labels_change_the_density_and_evaluate_takes_them(trained, digits):
  model, _ = trained
  _, (images, labels) = digits
  right = model.bits_per_dim(images, labels=labels, seed=3).numpy()
  wrong = model.bits_per_dim(
    images, labels=(labels + 1) % NUM_CLASSES, seed=3
  ).numpy()
  # Trained on its class, an image costs fewer bits than under another's.
  # (3.48 against 3.58 bits/dim when written.)
  assert right.mean() < wrong.mean() - 0.04, (right.mean(), wrong.mean())
  one_hot = model.bits_per_dim(
    images, labels=np.eye(NUM_CLASSES)[labels], seed=3
  ).numpy()
  np.testing.assert_allclose(one_hot, right, rtol=1e-5)
  logs = model.evaluate(
    tf.data.Dataset.from_tensor_slices((images, labels)).batch(16),
    verbose=0,
    return_dict=True,
  )
  # evaluate uses fresh noise: close to, not equal to, the seeded figure.
  assert abs(logs["bits_per_dim"] - right.mean()) < 0.05


def test_labels_must_be_given_exactly_to_conditional_models(trained, digits):
  model, _ = trained
  _, (images, labels) = digits
  with pytest.raises(ValueError, match=r"class-conditional.*labels"):
    model.bits_per_dim(images)
  with pytest.raises(ValueError, match="class-conditional"):
    model.sample(4)
  with pytest.raises(ValueError, match="class-conditional"):
    model.evaluate(
      tf.data.Dataset.from_tensor_slices(images).batch(16), verbose=0
    )
  with pytest.raises(ValueError, match="one class per image"):
    model.sample(4, labels=[1, 2])
  with pytest.raises(ValueError, match=r"0\.\.9"):
    model.sample(2, labels=[1, 12])
  plain = FlowModel(
    Glow(
      image_shape=(8, 8, 1),
      num_levels=1,
      num_steps=1,
      hidden_channels=4,
      mixing="lu",
      seed=0,
    ),
    num_bins=17,
  )
  plain.initialize(images)
  with pytest.raises(ValueError, match="not class-conditional"):
    plain.bits_per_dim(images, labels=labels)
  with pytest.raises(ValueError, match="not class-conditional"):
    plain.sample(2, labels=3)
  with pytest.raises(ValueError, match="class-conditional"):
    sample_grids.sample_grid(plain, 2, 1.0, seed=1, classes=[0])


def test_sample_draws_the_class_asked_for_reproducibly(trained):
  model, _ = trained
  sevens = model.sample(5, temperature=0.7, seed=4, labels=7).numpy()
  assert sevens.shape == (5, 8, 8, 1) and sevens.dtype == np.int32
  assert sevens.min() >= 0 and sevens.max() <= 16
  np.testing.assert_array_equal(
    sevens, model.sample(5, temperature=0.7, seed=4, labels=[7] * 5)
  )
  # The same latents under another label are other images.
  ones = model.sample(5, temperature=0.7, seed=4, labels=1).numpy()
  assert np.abs(ones - sevens).sum() > 0
  grid = sample_grids.sample_grid(model, 3, 0.7, seed=1, classes=[2, 5])
  # One row per class, 3 samples each: 2 rows x 3 columns of 8x8 tiles.
  assert grid.shape == ((2 * 9 + 1) * 4, (3 * 9 + 1) * 4, 1)
  with pytest.raises(ValueError, match=r"0\.\.9"):
    sample_grids.sample_grid(model, 3, 0.7, seed=1, classes=[10])


def test_labels_go_through_a_chain_by_name(trained, digits):
  model, _ = trained
  _, (images, labels) = digits
  chain = tfb.Chain([tfb.Shift(0.0), model.flow])
  chained = FlowModel(
    chain, num_bins=17, base_distribution=model.flow.base_distribution()
  )
  assert chained.num_classes == NUM_CLASSES
  np.testing.assert_allclose(
    chained.bits_per_dim(images, labels=labels, seed=3),
    model.bits_per_dim(images, labels=labels, seed=3),
    rtol=1e-5,
  )
  np.testing.assert_array_equal(
    chained.sample(3, seed=2, labels=4), model.sample(3, seed=2, labels=4)
  )


def test_keras_file_and_export_keep_the_conditioning(trained, digits, tmp_path):
  model, _ = trained
  _, (images, labels) = digits
  expected = model.bits_per_dim(images, labels=labels, seed=3).numpy()
  path = str(tmp_path / "conditional.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.num_classes == NUM_CLASSES
  np.testing.assert_allclose(
    loaded.bits_per_dim(images, labels=labels, seed=3), expected, rtol=1e-6
  )

  folder = str(tmp_path / "exported")
  model.export(folder, verbose=False)
  served = tf.saved_model.load(folder)
  assert int(served.num_classes) == NUM_CLASSES
  x = tf.cast(images, tf.float32) / 17.0 - 0.5
  log_prob = served.signatures["log_prob"](x=x, labels=tf.constant(labels))[
    "log_prob"
  ]
  np.testing.assert_allclose(
    log_prob,
    model.distribution.log_prob(
      x, bijector_kwargs={"conditional_input": labels}
    ),
    rtol=1e-5,
  )
  drawn = served.signatures["sample"](
    labels=tf.constant([3, 3, 8]),
    temperature=tf.constant(0.7),
    seed=tf.constant([1, 2]),
  )
  assert drawn["images"].shape == (3, 8, 8, 1)
  with pytest.raises(ValueError, match="images and labels"):
    model.export(
      str(tmp_path / "other"),
      verbose=False,
      input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)],
    )


class _BiasedNetwork(keras.layers.Layer):
  """A coupling network of the documented signature: a 3x3 convolution of
  `x_a` plus, for a conditional flow, a per-class bias."""

  def __init__(self, input_shape, output_channels, name=None):
    super().__init__(name=name)
    self.conv = keras.layers.Conv2D(
      output_channels, 3, padding="same", kernel_initializer="zeros"
    )
    self.embed = keras.layers.Dense(
      output_channels, use_bias=False, kernel_initializer="zeros"
    )

  def call(self, x_a, conditional_input=None):
    out = self.conv(x_a)
    if conditional_input is not None:
      out += self.embed(conditional_input)[:, None, None, :]
    return out


@pytest.mark.parametrize(
  "num_classes", [None, NUM_CLASSES], ids=["unconditional", "conditional"]
)
def test_fit_trains_every_variable_of_a_custom_coupling_network(
  num_classes, digits
):
  (images, labels), _ = digits
  glow = Glow(
    image_shape=(8, 8, 1),
    num_levels=1,
    num_steps=2,
    mixing="lu",
    num_classes=num_classes,
    condition_couplings=num_classes is not None,
    coupling_network_fn=_BiasedNetwork,
    seed=1,
  )
  model = FlowModel(glow, num_bins=17)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  networks = [
    v
    for v in model.trainable_weights
    if "conv2d" in v.path or "dense" in v.path
  ]
  # 2 steps: a convolution (kernel, bias) each, and a class embedding each
  # when conditional.
  assert len(networks) == (6 if num_classes else 4), [
    v.path for v in model.trainable_weights
  ]
  before = [np.array(v) for v in networks]
  batches = (
    tf.data.Dataset.from_tensor_slices((images, labels))
    if num_classes
    else tf.data.Dataset.from_tensor_slices(images)
  )
  model.fit(batches.batch(64), epochs=1, verbose=0)
  moved = [not np.allclose(np.array(v), b) for v, b in zip(networks, before)]
  assert all(moved), [v.path for v, m in zip(networks, moved) if not m]


# The command line.


def _tiny(command, *switches, **options):
  """The exit code of `tfp-emerging <command>` with the `TINY` flow's
  flags, `switches` (e.g. `"--conditional"`) and `options` as flags."""
  return cli.main([command, *switches, *runs.flags(**options), *TINY])


@pytest.fixture(scope="module")
def conditional_run(digits_npz, tmp_path_factory):
  run = str(tmp_path_factory.mktemp("runs") / "conditional")
  return runs.cli_tiny_run(digits_npz, run, "--conditional")


def test_conditional_run_has_rows_per_class(conditional_run, tmp_path, capsys):
  config = training.read_config(conditional_run)
  assert config.conditional and config.condition_couplings
  assert config.num_classes == NUM_CLASSES
  tile = 9 * 4  # 8x8 tiles, 1-pixel borders, 4x zoom
  rows, columns = NUM_CLASSES, sample_grids.SAMPLES_PER_CLASS
  assert runs.png_shape(os.path.join(conditional_run, "samples.png")) == (
    rows * tile + 4,
    columns * tile + 4,
    1,
  )
  out = str(tmp_path / "two.png")
  capsys.readouterr()
  assert (
    cli.main(
      ["sample", *runs.flags(run=conditional_run, classes="3,7", n=5, out=out)]
    )
    == 0
  )
  assert "one row per class: 3, 7" in capsys.readouterr().out
  assert runs.png_shape(out) == (2 * tile + 4, 5 * tile + 4, 1)
  assert cli.main(["evaluate", "--run", conditional_run, "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["conditional"] is True
  with open(
    os.path.join(conditional_run, "metrics.json"), encoding="utf-8"
  ) as f:
    assert (
      result["bits_per_dim"] == json.load(f)["epochs"][-1]["test_bits_per_dim"]
    )


def test_conditional_command_line_errors(
  conditional_run, digits_npz, tmp_path, capsys
):
  unlabelled = str(tmp_path / "unlabelled.npz")
  with np.load(digits_npz) as arrays:
    np.savez(
      unlabelled,
      train=arrays["train"],
      test=arrays["test"],
      num_bins=arrays["num_bins"],
    )
  capsys.readouterr()
  assert (
    _tiny("train", "--conditional", dataset=unlabelled, out=str(tmp_path / "a"))
    == 2
  )
  err = capsys.readouterr().err
  assert "unlabelled.npz: has no class labels" in err and "labels" in err
  assert not os.path.exists(tmp_path / "a")
  assert (
    _tiny(
      "train",
      "--no-condition-couplings",
      dataset=digits_npz,
      out=str(tmp_path / "b"),
    )
    == 2
  )
  assert "--no-condition-couplings goes with --conditional" in (
    capsys.readouterr().err
  )
  out = str(tmp_path / "grid.png")
  assert (
    cli.main(
      ["sample", "--run", conditional_run, "--classes", "10", "--out", out]
    )
    == 2
  )
  assert "--classes must lie in 0..9" in capsys.readouterr().err
  assert (
    cli.main(
      ["sample", "--run", conditional_run, "--columns", "3", "--out", out]
    )
    == 2
  )
  assert "one row per class" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(
      ["sample", "--run", conditional_run, "--classes", "a,b", "--out", out]
    )
  # --conditional cannot be switched on when resuming an unconditional run.
  plain = runs.cli_tiny_run(digits_npz, str(tmp_path / "plain"))
  capsys.readouterr()
  assert (
    cli.main(
      ["train", "--out", plain, "--resume", "--conditional", "--epochs", "2"]
    )
    == 2
  )
  assert "--conditional True (the run has False)" in capsys.readouterr().err
  assert (
    cli.main(["sample", "--run", plain, "--classes", "1", "--out", out]) == 2
  )
  assert "not class-conditional" in capsys.readouterr().err


def test_conditional_runs_resume_and_keep_only_prior_conditioning(
  digits_npz, tmp_path
):
  run = runs.cli_tiny_run(
    digits_npz,
    str(tmp_path / "priors"),
    "--conditional",
    "--no-condition-couplings",
  )
  assert cli.main(["train", "--out", run, "--resume", "--epochs", "2"]) == 0
  config, model, epoch, _ = training.load_run(run)
  assert epoch == 2 and not config.condition_couplings
  assert model.flow.num_classes == NUM_CLASSES
  assert not model.flow.condition_couplings


def test_demo_conditional_grid_has_a_row_per_digit(
  digits_npz, tmp_path, capsys
):
  run = runs.cli_tiny_run(
    digits_npz, str(tmp_path / "demo"), "--conditional", command="demo"
  )
  out = capsys.readouterr().out
  assert "demo: class-conditional emerging Glow" in out
  assert "one row per class: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in out
  tile = 9 * 4
  assert runs.png_shape(os.path.join(run, run_dir.DEMO_SAMPLES_FILE)) == (
    NUM_CLASSES * tile + 4,
    sample_grids.SAMPLES_PER_CLASS * tile + 4,
    1,
  )


def test_conditional_on_a_supervised_tensorflow_dataset(tmp_path, capsys):
  run = str(tmp_path / "mnist")
  with mock_tfds("mnist", {"train": 64, "test": 32}):
    runs.cli_tiny_run("mnist", run, "--conditional")
  config = training.read_config(run)
  assert config.num_classes == 10 and config.image_shape == [28, 28, 1]
  assert "test bits/dim after epoch 1" in capsys.readouterr().out
