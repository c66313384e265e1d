"""The paper's configurations (`tfp_emerging.presets`, `--preset`): their
architectures, each trained for one epoch at a tiny width, and the command
line on a mock of tensorflow-datasets' cifar10."""

import numpy as np
import pytest

from tfp_emerging import cli
from tfp_emerging import presets
from tfp_emerging import training
from tfp_emerging.data.tfds_mock import mock_tfds

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

# Narrow networks and two steps per level: the preset's levels, mixing,
# kernel, data and optimiser options stay.
TINY = [
  "--hidden-channels",
  "4",
  "--num-steps",
  "2",
  "--batch-size",
  "8",
  "--warmup-steps",
  "2",
  "--epochs",
  "1",
]


def test_the_paper_architectures():
  assert set(presets.PRESETS) == {
    f"cifar10-{m}" for m in ("1x1", "lu", "qr", "emerging", "periodic")
  } | {"cifar10-1x1-32", "cifar10-emerging-32"}
  for name, options in presets.PRESETS.items():
    assert options["dataset"] == "cifar10" and options["num_levels"] == 3
    assert options["hidden_channels"] == 512
    assert options["num_steps"] == (32 if name.endswith("-32") else 8)
    assert options["mixing"] == name.split("-")[1]
  assert presets.PAPER_BITS_PER_DIM["cifar10-1x1"] == 3.46
  assert presets.PAPER_BITS_PER_DIM["cifar10-emerging"] == 3.43
  text = presets.describe()
  assert "cifar10-emerging-32" in text and "3.34 bits/dim" in text
  assert "not reported" in text


def test_config_applies_overrides_last_and_records_the_preset():
  config = presets.config("cifar10-periodic", hidden_channels=8)
  assert (
    config.mixing,
    config.num_levels,
    config.num_steps,
    config.hidden_channels,
    config.preset,
  ) == ("periodic", 3, 8, 8, "cifar10-periodic")
  with pytest.raises(ValueError, match=r"unknown preset 'cifar9'.*cifar10-1x1"):
    presets.options("cifar9")


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
  """8 training and 4 test images of 32x32x3, 256 levels, as an .npz file."""
  rng = np.random.default_rng(0)
  path = str(tmp_path_factory.mktemp("data") / "tiny_cifar.npz")
  np.savez(
    path,
    train=rng.integers(0, 256, (8, 32, 32, 3), np.uint8),
    test=rng.integers(0, 256, (4, 32, 32, 3), np.uint8),
  )
  return path


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_preset_trains_at_a_tiny_size(name, tiny_cifar):
  # The preset's levels, mixing, kernel and optimiser; 2 channels wide, one
  # step per level, on 32x32x3 images, one epoch through the training path.
  config = presets.config(
    name,
    dataset=tiny_cifar,
    hidden_channels=2,
    num_steps=1,
    batch_size=4,
    warmup_steps=1,
    epochs=1,
  )
  data = training.load_data(config)
  config = config.with_data(data)
  model = training.build_model(config)
  assert (model.flow.mixing, model.flow.num_levels) == (
    presets.PRESETS[name]["mixing"],
    3,
  )
  records = training.fit(model, data, config)
  assert len(records) == 1
  assert np.isfinite(records[0]["test_bits_per_dim"])


def test_the_command_line_trains_a_preset_on_cifar10(tmp_path, capsys):
  run = str(tmp_path / "run")
  with mock_tfds("cifar10", {"train": 16, "test": 8}):
    assert (
      cli.main(["train", "--preset", "cifar10-1x1", "--out", run] + TINY) == 0
    )
  config = training.read_config(run)
  assert config.preset == "cifar10-1x1" and config.dataset == "cifar10"
  assert (
    config.mixing,
    config.num_levels,
    config.kernel_size,
    config.learning_rate,
  ) == ("1x1", 3, 3, 1e-3)
  assert (config.hidden_channels, config.num_steps) == (4, 2)
  assert config.image_shape == [32, 32, 3] and config.num_bins == 256
  assert "test bits/dim after epoch 1" in capsys.readouterr().out
  # The preset is part of the run: --resume cannot change it.
  assert (
    cli.main(["train", "--out", run, "--resume", "--preset", "cifar10-qr"]) == 2
  )
  assert "--preset cifar10-qr (the run has cifar10-1x1)" in (
    capsys.readouterr().err
  )
