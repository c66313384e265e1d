"""Tests of the `tfp-emerging` command line: train, evaluate, sample, errors."""

import json
import os
import re
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
  assert result["source_split"] == "test"
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
                   "--epochs", "2", "--learning-rate", "0.01"]) == 2
  err = capsys.readouterr().err
  assert "cannot change: --mixing qr (the run has emerging) (only --epochs, " \
         "--batch-size, --learning-rate, --warmup-steps can)" in err
  assert training.read_config(trained_run).changes == []
  assert cli.main(["train", "--out", trained_run, "--resume",
                   "--batch-size", "0"]) == 2
  assert "--batch-size must be >= 1" in capsys.readouterr().err
  # Options equal to the stored ones are fine; the run is complete at epoch 1.
  assert cli.main(["train", "--out", trained_run, "--resume", "--mixing",
                   "emerging", "--dataset", digits_npz, "--epochs", "1"]) == 0
  out = capsys.readouterr().out
  assert "resumed from" in out and "(epoch 1)" in out
  assert training.read_config(trained_run).changes == []
  # The options that change neither the model nor the data may change.
  assert cli.main(["train", "--out", trained_run, "--resume", "--epochs", "2",
                   "--batch-size", "16", "--learning-rate", "0.0005",
                   "--warmup-steps", "2"]) == 0
  out = capsys.readouterr().out
  # One line per epoch from Keras (stdout is not a terminal): 96 // 16 steps.
  assert len(re.findall(r"^6/6 - .*val_bits_per_dim: ", out, re.M)) == 1
  config = training.read_config(trained_run)
  assert (config.epochs, config.batch_size, config.learning_rate,
          config.warmup_steps) == (2, 16, 0.0005, 2)
  assert config.changes == [
      {"epoch": 2, "option": "epochs", "old": 1, "new": 2},
      {"epoch": 2, "option": "batch_size", "old": 32, "new": 16},
      {"epoch": 2, "option": "learning_rate", "old": 0.002, "new": 0.0005},
      {"epoch": 2, "option": "warmup_steps", "old": 4, "new": 2}]
  with open(os.path.join(trained_run, "metrics.json"), encoding="utf-8") as f:
    assert [m["epoch"] for m in json.load(f)["epochs"]] == [1, 2]
  _, model, _, _ = training.load_run(trained_run)
  assert int(model.optimizer.iterations.numpy()) == 3 + 6
  # Without --epochs: the stored number (now 2), so nothing to train.
  assert cli.main(["train", "--out", trained_run, "--resume"]) == 0
  assert "(epoch 2)" in capsys.readouterr().out


def test_resume_needs_a_run(tmp_path, capsys):
  assert cli.main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
  assert "no config.json" in capsys.readouterr().err


def test_crops_by_name_with_tensorboard(tmp_path, capsys):
  run, logs = tmp_path / "run", tmp_path / "logs"
  assert cli.main(["train", "--dataset", "skimage-crops", "--out", str(run),
                   "--epochs", "1", "--tensorboard", str(logs)] + TINY +
                  ["--batch-size", "500"]) == 0
  assert "test bits/dim after epoch 1: " in capsys.readouterr().out
  config = training.read_config(str(run))
  assert config.dataset == "skimage-crops"  # a name, not a path
  assert (config.image_shape, config.num_bins) == ([16, 16, 3], 256)
  with open(run / "metrics.json", encoding="utf-8") as f:
    record = json.load(f)["epochs"][0]
  assert 0 < record["test_bits_per_dim"] < 2 * 8
  for split in ("train", "test"):
    assert os.listdir(logs / split)


def test_tensorboard_missing_exits_2_saying_what_to_install(
    tmp_path, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
  assert cli.main(["train", "--out", str(tmp_path / "run"), "--tensorboard",
                   str(tmp_path / "logs")] + TINY) == 2
  err = capsys.readouterr().err
  assert "--tensorboard needs the package tensorboard" in err
  assert 'pip install "tfp_emerging[tensorboard]"' in err
  assert not (tmp_path / "run").exists()


def test_split_names_reach_the_data(tmp_path, capsys):
  path = str(tmp_path / "named.npz")
  np.savez(path, fit=np.zeros((6, 4, 4), np.uint8),
           held_out=np.ones((2, 4, 4), np.uint8), num_bins=np.int64(2))
  args = cli.build_parser().parse_args(
      ["train", "--out", "x", "--dataset", path, "--split", "fit,held_out"])
  config = cli._run_config(args)  # pylint: disable=protected-access
  assert config.splits == ["fit", "held_out"]
  loaded = training.load_data(config)
  assert loaded.num_examples == {"train": 6, "test": 2}
  assert loaded.split_names == {"train": "fit", "test": "held_out"}
  with pytest.raises(SystemExit):
    cli.main(["train", "--out", "x", "--split", "train"])
  assert "expected two split names TRAIN,TEST" in capsys.readouterr().err


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
