"""Tests of the `tfp-emerging` command line: train, evaluate, sample, errors."""

import json
import os
import runpy
import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging import cli
from tfp_emerging import training

TINY = ["--num-levels", "1", "--num-steps", "1", "--hidden-channels", "8",
        "--batch-size", "32", "--warmup-steps", "4"]


@pytest.fixture(scope="module")
def trained_run(digits_npz, tmp_path_factory):
  """A run of one epoch trained through the command line."""
  run = str(tmp_path_factory.mktemp("runs") / "run")
  assert cli.main(["train", "--dataset", digits_npz, "--mixing", "emerging",
                   "--epochs", "1", "--out", run] + TINY) == 0
  return run


def _png_shape(path):
  with open(path, "rb") as f:
    return tuple(tf.io.decode_png(f.read()).shape)


def test_train_writes_the_run(trained_run, digits_npz):
  assert sorted(os.listdir(trained_run)) == [
      "checkpoints", "config.json", "metrics.json", "samples.png"]
  config = training.read_config(trained_run)
  assert config.dataset == digits_npz and config.epochs == 1
  assert (config.num_levels, config.num_steps, config.hidden_channels) == (
      1, 1, 8)


def test_evaluate_json(trained_run, digits_npz, capsys):
  capsys.readouterr()
  assert cli.main(["evaluate", "--run", trained_run, "--json"]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  assert len(out) == 1
  result = json.loads(out[0])
  assert result["dataset"] == digits_npz and result["mixing"] == "emerging"
  assert result["num_examples"] == 32 and result["split"] == "test"
  assert result["epoch"] == 1 and result["checkpoint"].endswith("ckpt-1")
  assert np.isfinite(result["bits_per_dim"]) and result["bits_per_dim"] > 0
  # Exactly the training's own test evaluation: same checkpoint, same
  # (seeded) dequantisation noise.
  with open(os.path.join(trained_run, "metrics.json"), encoding="utf-8") as f:
    last = json.load(f)["epochs"][-1]["test_bits_per_dim"]
  assert result["bits_per_dim"] == last
  assert cli.main(["evaluate", "--run", trained_run]) == 0
  assert capsys.readouterr().out.startswith("test bits/dim: ")


def test_sample_writes_requested_grid(trained_run, tmp_path):
  out = str(tmp_path / "sub" / "grid.png")
  assert cli.main(["sample", "--run", trained_run, "--n", "6", "--columns",
                   "3", "--temperature", "0.7", "--out", out]) == 0
  # 2 rows x 3 columns of 8x8 tiles, 1-pixel borders, 4x zoom.
  assert _png_shape(out) == ((2 * 9 + 1) * 4, (3 * 9 + 1) * 4, 1)


def test_resume_wiring_and_changed_options(trained_run, digits_npz, capsys):
  # (Resuming itself is tested in test_training.py; here only the options.)
  capsys.readouterr()
  assert cli.main(["train", "--out", trained_run, "--resume", "--mixing", "qr",
                   "--epochs", "2"]) == 2
  assert "--mixing qr (the run has emerging)" in capsys.readouterr().err
  # Options equal to the stored ones are fine; the run is complete at epoch 1.
  assert cli.main(["train", "--out", trained_run, "--resume", "--mixing",
                   "emerging", "--dataset", digits_npz, "--epochs", "1"]) == 0
  out = capsys.readouterr().out
  assert "resumed from" in out and "(epoch 1)" in out
  with open(os.path.join(trained_run, "metrics.json"), encoding="utf-8") as f:
    assert [m["epoch"] for m in json.load(f)["epochs"]] == [1]
  # Without --epochs: the stored number (1), so again nothing to train.
  assert cli.main(["train", "--out", trained_run, "--resume"]) == 0
  assert "(epoch 1)" in capsys.readouterr().out


def test_resume_needs_a_run(tmp_path, capsys):
  assert cli.main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
  assert "no config.json" in capsys.readouterr().err


def test_train_refuses_an_existing_run(trained_run, capsys):
  assert cli.main(["train", "--out", trained_run, "--epochs", "1"]) == 2
  assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize("images, problem", [
    (np.zeros((4, 64)), "rank 2"),
    (np.full((4, 8, 8), 0.5), "non-integer"),
    (np.zeros((4, 12, 12)), "12x12, but a flow with num_levels=3"),
])
def test_bad_data_exits_2_naming_the_file(tmp_path, capsys, images, problem):
  path = str(tmp_path / "x.npz")
  np.savez(path, images=images)
  assert cli.main(["train", "--dataset", path, "--out", str(tmp_path / "run")]
                  + TINY + ["--num-levels", "3"]) == 2
  err = capsys.readouterr().err
  assert f"tfp-emerging train: error: {path}: " in err and problem in err
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("option, message", [
    (["--num-steps", "0"], "--num-steps must be >= 1; got 0"),
    (["--warmup-steps", "-1"], "--warmup-steps must be >= 0; got -1"),
    (["--learning-rate", "0"], "--learning-rate must be > 0; got 0.0"),
    # Checked by Glow; nothing is written for a run that cannot be built.
    (["--kernel-size", "2"], "invalid model options: `kernel_size` must be "
     "odd"),
    (["--mixing", "periodic", "--num-levels", "2"],
     "invalid model options: `kernel_size` (3) must be at most"),
])
def test_bad_option_values(tmp_path, capsys, option, message):
  run = tmp_path / "run"
  assert cli.main(["train", "--out", str(run)] + option) == 2
  assert message in capsys.readouterr().err
  assert not run.exists()


def test_bad_mixing_and_sample_options(trained_run, tmp_path, capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "--out", str(tmp_path), "--mixing", "nonsense"])
  assert "invalid choice: 'nonsense'" in capsys.readouterr().err
  for option, message in ((["--n", "0"], "--n must be >= 1; got 0"),
                          (["--columns", "0"], "--columns must be >= 1"),
                          (["--temperature", "-1"], "--temperature must be")):
    assert cli.main(["sample", "--run", trained_run, "--out",
                     str(tmp_path / "g.png")] + option) == 2
    assert message in capsys.readouterr().err
  assert not (tmp_path / "g.png").exists()


def test_evaluate_and_sample_need_a_run(tmp_path, capsys):
  assert cli.main(["evaluate", "--run", str(tmp_path)]) == 2
  assert "not a training run directory" in capsys.readouterr().err
  assert cli.main(["sample", "--run", str(tmp_path), "--out",
                   str(tmp_path / "g.png")]) == 2
  assert "not a training run directory" in capsys.readouterr().err


def test_diverged_training_exits_1(monkeypatch, tmp_path, capsys):
  def diverge(config, run_dir, **options):
    del config, run_dir, options
    raise training.TrainingDiverged("training diverged in epoch 3: ...")
  monkeypatch.setattr(training, "train", diverge)
  assert cli.main(["train", "--out", str(tmp_path / "run")]) == 1
  assert "error: training diverged in epoch 3" in capsys.readouterr().err


def test_benchmark_forwards_arguments_or_explains_its_absence(monkeypatch,
                                                               capsys):
  calls = []
  fake = types.ModuleType("tfp_emerging.benchmarks")
  fake.main = lambda argv: calls.append(argv) or 0
  monkeypatch.setitem(sys.modules, "tfp_emerging.benchmarks", fake)
  assert cli.main(["benchmark", "--quick", "--out", "x.json"]) == 0
  assert calls == [["--quick", "--out", "x.json"]]
  monkeypatch.setitem(sys.modules, "tfp_emerging.benchmarks", None)
  assert cli.main(["benchmark"]) == 2
  assert "needs the module tfp_emerging.benchmarks" in capsys.readouterr().err


def test_demo_runs_train_evaluate_sample(digits_npz, tmp_path, capsys):
  run = tmp_path / "demo"
  run.mkdir()
  (run / "config.json").write_text("{}")  # an old run: the demo replaces it
  assert cli.main(["demo", "--dataset", digits_npz, "--epochs", "1", "--out",
                   str(run)] + TINY) == 0
  out = capsys.readouterr().out
  assert "test bits/dim after epoch 1: " in out and "test bits/dim: " in out
  assert _png_shape(run / "samples_demo.png")[0] == (8 * 9 + 1) * 4
  assert training.read_config(str(run)).dataset == digits_npz
  (tmp_path / "other").mkdir()
  (tmp_path / "other" / "keep.txt").write_text("not a run")
  assert cli.main(["demo", "--out", str(tmp_path / "other")]) == 2
  assert "not empty and not a run" in capsys.readouterr().err
  assert (tmp_path / "other" / "keep.txt").exists()


def test_module_entry_point(monkeypatch, tmp_path, capsys):
  monkeypatch.setattr(sys, "argv", ["tfp_emerging", "evaluate", "--run",
                                    str(tmp_path)])
  with pytest.raises(SystemExit) as info:
    runpy.run_module("tfp_emerging", run_name="__main__")
  assert info.value.code == 2
  assert "not a training run directory" in capsys.readouterr().err
