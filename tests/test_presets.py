"""The paper's configurations (`tfp_emerging.presets`, `--preset`): their
architectures, and each trained for one epoch at a tiny width on a mock of
tensorflow-datasets' cifar10 through the command line."""

import pytest

from tests.tfds_mock import mock_tfds
from tfp_emerging import cli
from tfp_emerging import presets
from tfp_emerging import training
from tfp_emerging.flows import Glow

# Narrow networks and two steps per level: the preset's levels, mixing,
# kernel, data and optimiser options stay.
TINY = ["--hidden-channels", "4", "--num-steps", "2", "--batch-size", "8",
        "--warmup-steps", "2", "--epochs", "1"]


def test_the_paper_architectures():
  assert set(presets.PRESETS) == {
      f"cifar10-{m}" for m in ("1x1", "lu", "qr", "emerging", "periodic")} | {
          "cifar10-1x1-32", "cifar10-emerging-32"}
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
  assert (config.mixing, config.num_levels, config.num_steps,
          config.hidden_channels, config.preset) == (
              "periodic", 3, 8, 8, "cifar10-periodic")
  with pytest.raises(ValueError, match="unknown preset 'cifar9'.*cifar10-1x1"):
    presets.options("cifar9")


def test_a_32_step_preset_builds_32_steps_per_level():
  config = presets.config("cifar10-emerging-32", hidden_channels=2)
  glow = Glow(image_shape=(32, 32, 3), num_levels=config.num_levels,
              num_steps=config.num_steps, mixing=config.mixing,
              hidden_channels=config.hidden_channels, seed=0)
  # Each step: ActNorm, QR 1x1, emerging k x k, affine coupling.
  assert [len(level) for level in glow.steps] == [4 * 32] * 3


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_preset_trains_at_a_tiny_size(name, tmp_path, capsys):
  run = str(tmp_path / name)
  with mock_tfds("cifar10", {"train": 16, "test": 8}):
    assert cli.main(["train", "--preset", name, "--out", run] + TINY) == 0
  config = training.read_config(run)
  preset = presets.PRESETS[name]
  assert config.preset == name and config.dataset == "cifar10"
  assert (config.mixing, config.num_levels, config.kernel_size,
          config.learning_rate) == (preset["mixing"], 3, 3, 1e-3)
  assert (config.hidden_channels, config.num_steps) == (4, 2)
  assert config.image_shape == [32, 32, 3] and config.num_bins == 256
  assert "test bits/dim after epoch 1" in capsys.readouterr().out


def test_a_preset_cannot_be_changed_on_resume(tmp_path, capsys):
  run = str(tmp_path / "run")
  with mock_tfds("cifar10", {"train": 16, "test": 8}):
    assert cli.main(["train", "--preset", "cifar10-1x1", "--out", run] +
                    TINY) == 0
    capsys.readouterr()
    assert cli.main(["train", "--out", run, "--resume", "--preset",
                     "cifar10-qr"]) == 2
  assert "--preset cifar10-qr (the run has cifar10-1x1)" in (
      capsys.readouterr().err)
