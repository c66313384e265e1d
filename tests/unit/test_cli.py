"""Tests of the `tfp-emerging` command line: train, evaluate, sample, errors,
the folders it may touch, corrupt checkpoints and exit statuses; --version
and the defaults in --help; faults and bad inputs (issue 26): outputs that
are not a command's own, options that would make a run's record false,
config files that disagree with the checkpoints, damaged files, bad data, a
signal during start-up."""

import contextlib
import errno
import io
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import runs
from tests.testlib import workers
from tests.testlib.runs import epoch_bits
import tfp_emerging
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import export as export_lib
from tfp_emerging import training
from tfp_emerging.flows import VariationalDequantizer
from tfp_emerging.training import loop as training_loop

TINY = runs.TINY_FLAGS
TINY_LU = runs.TINY_LU_FLAGS

STARTUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(scope="module")
def trained_run(digits_npz, tmp_path_factory):
  """A run of one epoch trained through the command line."""
  run = str(tmp_path_factory.mktemp("runs") / "run")
  return runs.cli_tiny_run(digits_npz, run, "--mixing", "emerging")


@pytest.mark.slow
def test_train_writes_the_run(trained_run, digits_npz):
  assert sorted(os.listdir(trained_run)) == [
    ".tfp-emerging-run",
    "checkpoints",
    "config.json",
    "metrics.json",
    "samples.png",
  ]
  config = training.read_config(trained_run)
  assert config.dataset == digits_npz and config.epochs == 1
  assert (config.num_levels, config.num_steps, config.hidden_channels) == (
    1,
    1,
    8,
  )


@pytest.mark.slow
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


@pytest.mark.slow
def test_evaluate_samples_is_the_importance_weighted_evaluation(
  trained_run, digits_npz, capsys
):
  capsys.readouterr()
  run = trained_run
  assert cli.main(["evaluate", "--run", run, "--samples", "4", "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  _, model, _, _ = training.load_run(run)
  config = training.read_config(run)
  assert result["num_samples"] == 4
  assert result["bits_per_dim"] == pytest.approx(
    training.evaluate(
      model,
      data.load(digits_npz),
      config.batch_size,
      seed=config.seed,
      num_samples=4,
    ),
    rel=1e-6,
  )
  assert cli.main(["evaluate", "--run", run, "--samples", "4"]) == 0
  assert "importance-weighted over 4 draws" in capsys.readouterr().out
  assert cli.main(["evaluate", "--run", run, "--samples", "0"]) == 2
  assert "--samples must be an integer >= 1; got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_the_dequantization_option(digits_npz, tmp_path, capsys):
  with pytest.raises(
    training.RunError,
    match="--dequantization must be one of uniform, variational",
  ):
    training.RunConfig(dequantization="learned")
  run = str(tmp_path / "run")
  train = ["train", "--dataset", digits_npz, "--out", run, "--epochs", "1"]
  assert cli.main(train + ["--dequantization", "variational"] + TINY) == 0
  assert training.read_config(run).dequantization == "variational"
  capsys.readouterr()
  assert cli.main(["evaluate", "--run", run, "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    last = json.load(f)["epochs"][-1]["test_bits_per_dim"]
  assert result["bits_per_dim"] == pytest.approx(last, rel=1e-6)
  _, model, _, _ = training.load_run(run)
  assert isinstance(model.dequantizer, VariationalDequantizer)
  assert (
    cli.main(["train", "--out", run, "--resume", "--dequantization", "uniform"])
    == 2
  )
  assert (
    "cannot change: --dequantization uniform (the run has variational)"
    in capsys.readouterr().err
  )
  train_help = (
    cli.build_parser()
    ._subparsers._group_actions[0]
    .choices["train"]
    .format_help()
  )
  assert "'variational'" in train_help and "(default uniform)" in train_help


@pytest.mark.slow
def test_sample_writes_requested_grid(trained_run, tmp_path):
  out = str(tmp_path / "sub" / "grid.png")
  assert (
    cli.main(
      [
        "sample",
        "--run",
        trained_run,
        "--n",
        "6",
        "--columns",
        "3",
        "--temperature",
        "0.7",
        "--out",
        out,
      ]
    )
    == 0
  )
  # 2 rows x 3 columns of 8x8 tiles, 1-pixel borders, 4x zoom.
  assert runs.png_shape(out) == ((2 * 9 + 1) * 4, (3 * 9 + 1) * 4, 1)


@pytest.mark.slow
def test_resume_wiring_and_changed_options(trained_run, digits_npz, capsys):
  # (Resuming itself: tests/unit/training/test_run_training.py; here the
  # options.)
  capsys.readouterr()
  resume = ["train", "--out", trained_run, "--resume"]
  assert (
    cli.main(resume + runs.flags(mixing="qr", epochs=2, learning_rate=0.01))
    == 2
  )
  err = capsys.readouterr().err
  assert (
    "cannot change: --mixing qr (the run has emerging) (only --epochs, "
    "--batch-size, --learning-rate, --warmup-steps, --checkpoint-every "
    "can)" in err
  )
  assert training.read_config(trained_run).changes == []
  assert cli.main(resume + ["--batch-size", "0"]) == 2
  assert "--batch-size must be >= 1" in capsys.readouterr().err
  # Options equal to the stored ones are fine; the run is complete at epoch 1.
  assert (
    cli.main(
      resume + runs.flags(mixing="emerging", dataset=digits_npz, epochs=1)
    )
    == 0
  )
  out = capsys.readouterr().out
  assert "resumed from" in out and "(epoch 1)" in out
  assert training.read_config(trained_run).changes == []
  # The options that change neither the model nor the data may change.
  changed = dict(epochs=2, batch_size=16, learning_rate=0.0005, warmup_steps=2)
  assert cli.main(resume + runs.flags(**changed)) == 0
  out = capsys.readouterr().out
  # One line per epoch, ours (stdout is not a terminal, so none from Keras).
  assert len(re.findall(r"^epoch 2: train .* bits/dim, test ", out, re.M)) == 1
  assert not re.search(r"^[0-9]+/[0-9]+ ", out, re.M), out
  config = training.read_config(trained_run)
  assert (
    config.epochs,
    config.batch_size,
    config.learning_rate,
    config.warmup_steps,
  ) == (2, 16, 0.0005, 2)
  assert config.changes == [
    {"epoch": 2, "option": "epochs", "old": 1, "new": 2},
    {"epoch": 2, "option": "batch_size", "old": 32, "new": 16},
    {"epoch": 2, "option": "learning_rate", "old": 0.002, "new": 0.0005},
    {"epoch": 2, "option": "warmup_steps", "old": 4, "new": 2},
  ]
  with open(os.path.join(trained_run, "metrics.json"), encoding="utf-8") as f:
    assert [m["epoch"] for m in json.load(f)["epochs"]] == [1, 2]
  _, model, _, _ = training.load_run(trained_run)
  assert int(model.optimizer.iterations.numpy()) == 3 + 6
  # Without --epochs: the stored number (now 2), so nothing to train.
  assert cli.main(resume) == 0
  assert "(epoch 2)" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_needs_a_run(tmp_path, capsys):
  assert cli.main(["train", "--out", str(tmp_path / "none"), "--resume"]) == 2
  assert "no config.json" in capsys.readouterr().err


@pytest.mark.slow
def test_multiworker_needs_tf_keras_and_is_not_for_the_demo(
  tmp_path, capsys, monkeypatch
):
  # Under Keras 3, train --strategy multiworker starts itself again with
  # TF_USE_LEGACY_KERAS=1; if that still gives Keras 3, tf_keras is missing.
  monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
  out = str(tmp_path / "run")
  assert cli.main(["train", "--strategy", "multiworker", "--out", out]) == 2
  assert "needs tf_keras (pip install tf_keras)" in capsys.readouterr().err
  assert cli.main(["demo", "--strategy", "multiworker", "--out", out]) == 2
  assert "is for train" in capsys.readouterr().err
  assert not os.path.exists(out)


@pytest.mark.slow
def test_crops_by_name_with_tensorboard(tmp_path, capsys):
  run, logs = tmp_path / "run", tmp_path / "logs"
  assert (
    cli.main(
      [
        "train",
        "--dataset",
        "skimage-crops",
        "--out",
        str(run),
        "--epochs",
        "1",
        "--tensorboard",
        str(logs),
      ]
      + TINY
      + ["--batch-size", "500"]
    )
    == 0
  )
  assert "test bits/dim after epoch 1: " in capsys.readouterr().out
  config = training.read_config(str(run))
  assert config.dataset == "skimage-crops"  # a name, not a path
  assert (config.image_shape, config.num_bins) == ([16, 16, 3], 256)
  with open(run / "metrics.json", encoding="utf-8") as f:
    record = json.load(f)["epochs"][0]
  assert 0 < record["test_bits_per_dim"] < 2 * 8
  for split in ("train", "test"):
    assert os.listdir(logs / split)


@pytest.mark.slow
def test_tensorboard_missing_exits_2_saying_what_to_install(
  tmp_path, capsys, monkeypatch
):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
  assert (
    cli.main(
      [
        "train",
        "--out",
        str(tmp_path / "run"),
        "--tensorboard",
        str(tmp_path / "logs"),
      ]
      + TINY
    )
    == 2
  )
  err = capsys.readouterr().err
  assert "--tensorboard needs the package tensorboard" in err
  assert 'pip install "tfp_emerging[tensorboard]"' in err
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_split_names_reach_the_data(tmp_path, capsys):
  path = str(tmp_path / "named.npz")
  np.savez(
    path,
    fit=np.zeros((6, 4, 4), np.uint8),
    held_out=np.ones((2, 4, 4), np.uint8),
    num_bins=np.int64(2),
  )
  args = cli.build_parser().parse_args(
    ["train", "--out", "x", "--dataset", path, "--split", "fit,held_out"]
  )
  config = cli._run_config(args)
  assert config.splits == ["fit", "held_out"]
  loaded = training.load_data(config)
  assert loaded.num_examples == {"train": 6, "test": 2}
  assert loaded.split_names == {"train": "fit", "test": "held_out"}
  with pytest.raises(SystemExit):
    cli.main(["train", "--out", "x", "--split", "train"])
  assert "expected two split names TRAIN,TEST" in capsys.readouterr().err


@pytest.mark.slow
def test_train_refuses_an_existing_run(trained_run, capsys):
  assert cli.main(["train", "--out", trained_run, "--epochs", "1"]) == 2
  assert "already holds a run" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(
  "images, problem",
  [
    (np.zeros((4, 64)), "rank 2"),
    (np.full((4, 8, 8), 0.5), "non-integer"),
    (np.zeros((4, 12, 12)), "12x12, but a flow with num_levels=3"),
  ],
)
def test_bad_data_exits_2_naming_the_file(tmp_path, capsys, images, problem):
  path = str(tmp_path / "x.npz")
  np.savez(path, images=images)
  assert (
    cli.main(
      ["train", "--dataset", path, "--out", str(tmp_path / "run")]
      + TINY
      + ["--num-levels", "3"]
    )
    == 2
  )
  err = capsys.readouterr().err
  assert f"tfp-emerging train: error: {path}: " in err and problem in err
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize(
  "option, message",
  [
    (["--num-steps", "0"], "--num-steps must be >= 1; got 0"),
    (["--warmup-steps", "-1"], "--warmup-steps must be >= 0; got -1"),
    (["--learning-rate", "0"], "--learning-rate must be > 0; got 0.0"),
    # Checked by Glow; nothing is written for a run that cannot be built.
    (
      ["--kernel-size", "2"],
      "invalid model options: `kernel_size` must be odd",
    ),
    (
      ["--mixing", "periodic", "--num-levels", "2"],
      "invalid model options: `kernel_size` (3) must be at most",
    ),
  ],
)
def test_bad_option_values(tmp_path, capsys, option, message):
  run = tmp_path / "run"
  assert cli.main(["train", "--out", str(run)] + option) == 2
  assert message in capsys.readouterr().err
  assert not run.exists()


@pytest.mark.slow
def test_bad_mixing_and_sample_options(trained_run, tmp_path, capsys):
  with pytest.raises(SystemExit):
    cli.main(["train", "--out", str(tmp_path), "--mixing", "nonsense"])
  assert "invalid choice: 'nonsense'" in capsys.readouterr().err
  for option, message in (
    (["--n", "0"], "--n must be >= 1; got 0"),
    (["--columns", "0"], "--columns must be >= 1"),
    (["--temperature", "-1"], "--temperature must be"),
  ):
    assert (
      cli.main(
        ["sample", "--run", trained_run, "--out", str(tmp_path / "g.png")]
        + option
      )
      == 2
    )
    assert message in capsys.readouterr().err
  assert not (tmp_path / "g.png").exists()


@pytest.mark.slow
def test_evaluate_and_sample_need_a_run(tmp_path, capsys):
  assert cli.main(["evaluate", "--run", str(tmp_path)]) == 2
  assert "not a training run directory" in capsys.readouterr().err
  assert (
    cli.main(
      ["sample", "--run", str(tmp_path), "--out", str(tmp_path / "g.png")]
    )
    == 2
  )
  assert "not a training run directory" in capsys.readouterr().err


@pytest.mark.slow
def test_diverged_training_exits_1(monkeypatch, tmp_path, capsys):
  def diverge(config, run_dir, **options):
    del config, run_dir, options
    raise training.TrainingDiverged("training diverged in epoch 3: ...")

  monkeypatch.setattr(training, "train", diverge)
  assert cli.main(["train", "--out", str(tmp_path / "run")]) == 1
  assert "error: training diverged in epoch 3" in capsys.readouterr().err


def test_version(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--version"])
  assert exit_info.value.code == 0
  assert capsys.readouterr().out.strip() == (
    f"tfp-emerging {tfp_emerging.__version__}"
  )


def _subcommand(command):
  """The parser of the subcommand `command`."""
  parser = cli.build_parser()
  action = next(a for a in parser._actions if a.dest == "command")
  return action.choices[command]


@pytest.mark.parametrize(
  "command", ["train", "demo", "sample", "evaluate", "export"]
)
def test_every_option_shows_its_default(command):
  """Every option with a value says its default (or is required)."""
  for option in _subcommand(command)._actions:
    if option.dest in ("help", "run", "json", "resume") or option.required:
      continue
    assert "default" in (option.help or ""), (command, option.dest)


def test_sample_temperature_defaults_to_the_runs():
  text = " ".join(_subcommand("sample").format_help().split())
  assert re.search(r"--sample-temperature, 0\.7 unless set", text)
  assert (
    cli.build_parser()
    .parse_args(["sample", "--run", "r", "--out", "o.png"])
    .temperature
    is None
  )


@pytest.mark.slow
def test_benchmarks_are_not_a_subcommand(capsys):
  """Speed studies live in benchmarks/ (`python -m benchmarks.run`), outside
  the installed package; the CLI says so when asked for them."""
  with pytest.raises(SystemExit) as info:
    cli.main(["benchmark"])
  assert info.value.code == 2
  assert "invalid choice: 'benchmark'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs_train_evaluate_sample(
  digits_npz, tmp_path, capsys, monkeypatch
):
  run = tmp_path / "demo"
  assert (
    cli.main(
      ["demo", "--dataset", digits_npz, "--epochs", "1", "--out", str(run)]
      + TINY
    )
    == 0
  )
  out = capsys.readouterr().out
  assert "test bits/dim after epoch 1: " in out and "test bits/dim: " in out
  assert runs.png_shape(run / "samples_demo.png")[0] == (8 * 9 + 1) * 4
  assert training.read_config(str(run)).dataset == digits_npz
  # The user adds a file to the run directory. A demo that fails on its
  # options or data deletes nothing; one that gets as far as training
  # replaces the run's own files only.
  (run / "notes.txt").write_text("my notes")
  before = _snapshot(run)
  assert (
    cli.main(
      ["demo", "--dataset", str(tmp_path / "nope.npz"), "--out", str(run)]
    )
    == 2
  )
  assert cli.main(["demo", "--num-steps", "0", "--out", str(run)]) == 2
  assert _snapshot(run) == before
  monkeypatch.setattr(training_loop, "fit", _raise(KeyboardInterrupt))
  assert (
    cli.main(
      [
        "demo",
        "--dataset",
        digits_npz,
        "--epochs",
        "1",
        "--out",
        str(run),
        "--seed",
        "5",
      ]
      + TINY
    )
    == 130
  )
  assert sorted(os.listdir(run)) == [
    ".tfp-emerging-run",
    "config.json",
    "metrics.json",
    "notes.txt",
  ]
  assert (run / "notes.txt").read_text() == "my notes"
  assert training.read_config(str(run)).seed == 5
  capsys.readouterr()


def _snapshot(folder):
  """`{relative path: bytes}` of every file under `folder` (`None` for a
  folder), or `None` if `folder` does not exist."""
  if not os.path.exists(folder):
    return None
  found = {}
  for root, dirs, files in os.walk(folder):
    for name in dirs:
      found[os.path.relpath(os.path.join(root, name), folder)] = None
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        found[os.path.relpath(path, folder)] = f.read()
  return found


def _raise(error):
  """A stand-in for `training.fit` that fails as training would."""

  def fit(*args, **kwargs):
    del args, kwargs
    raise error

  return fit


def _user_folder(path, with_config):
  """A user's folder: sources, notes and (optionally) an app's config.json."""
  (path / "src").mkdir(parents=True)
  (path / "src" / "main.py").write_text("print('app')\n")
  (path / "notes.txt").write_text("notes\n")
  if with_config:
    (path / "config.json").write_text('{"name": "app"}\n')
  return path


# Every way `train` and `demo` can fail, as (name, --out below the user's
# folder, further arguments, exit status, message).
_FAILURES = [
  (
    "a user's config.json",
    "",
    [],
    2,
    "holds a config.json but is not marked as a run directory",
  ),
  # The example: a user's config.json, and data that are missing.
  (
    "a user's config.json, missing data",
    "",
    ["--dataset", "{tmp}/nope.npz"],
    2,
    "holds a config.json but is not marked as a run directory",
  ),
  (
    "a folder that is not a run",
    "src",
    [],
    2,
    "src: not empty (main.py) and not a run directory",
  ),
  ("--out is a file", "notes.txt", [], 2, "notes.txt: is a file, not a folder"),
  (
    "--out below a file",
    "notes.txt/run",
    [],
    2,
    "notes.txt is a file, not a folder",
  ),
  (
    "bad option",
    "run",
    ["--num-steps", "0"],
    2,
    "--num-steps must be >= 1; got 0",
  ),
  (
    "kernel larger than the latents",
    "run",
    ["--mixing", "periodic", "--kernel-size", "5"],
    2,
    "invalid model options: `kernel_size` (5) must be at most the last "
    "level's height and width (4)",
  ),
  (
    "missing data",
    "run",
    ["--dataset", "{tmp}/nope.npz"],
    2,
    "nope.npz: no such file.",
  ),
  (
    "bad data",
    "run",
    ["--dataset", "{tmp}/bad.npz"],
    2,
    "bad.npz: array 'images': expected images shaped",
  ),
  ("diverged", "run", ["diverge"], 1, "training diverged in epoch 2"),
  ("interrupted", "run", ["interrupt"], 130, None),
]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "demo"])
@pytest.mark.parametrize("failure", _FAILURES, ids=[f[0] for f in _FAILURES])
def test_user_folders_survive_every_failure(
  digits_npz, tmp_path, capsys, monkeypatch, command, failure
):
  _, below, arguments, status, message = failure
  user = _user_folder(tmp_path / "user", with_config=True)
  np.savez(tmp_path / "bad.npz", images=np.zeros((4, 64), np.uint8))
  if arguments[:1] == ["diverge"]:
    arguments = []
    monkeypatch.setattr(
      training_loop,
      "fit",
      _raise(training.TrainingDiverged("training diverged in epoch 2: ...")),
    )
  elif arguments[:1] == ["interrupt"]:
    arguments = []
    monkeypatch.setattr(training_loop, "fit", _raise(KeyboardInterrupt))
  arguments = [a.format(tmp=tmp_path) for a in arguments]
  before = _snapshot(user)
  out = os.path.join(user, below)
  assert (
    cli.main(
      [command, "--dataset", digits_npz, "--out", out] + TINY + arguments
    )
    == status
  )
  err = capsys.readouterr().err
  assert "Traceback" not in err
  if message is not None:
    assert f"tfp-emerging {command}: error: " in err and message in err, err
  after = _snapshot(user)
  ran = after.pop("run", "absent")
  run_files = {k: after.pop(k) for k in list(after) if k.startswith("run/")}
  assert after == before  # every file of the user's, byte for byte
  if status in (1, 130):  # it got as far as training: a marked run folder
    assert ran is None
    assert sorted(run_files) == [
      "run/.tfp-emerging-run",
      "run/config.json",
      "run/metrics.json",
    ]
  else:
    assert ran == "absent" and not run_files


@pytest.mark.slow
def test_sample_and_export_refuse_a_wrong_out(trained_run, tmp_path, capsys):
  folder = tmp_path / "folder"
  folder.mkdir()
  assert cli.main(["sample", "--run", trained_run, "--out", str(folder)]) == 2
  assert "is a folder; give the PNG file to write" in capsys.readouterr().err
  (tmp_path / "file").write_text("x")
  assert (
    cli.main(["export", "--run", trained_run, "--out", str(tmp_path / "file")])
    == 2
  )
  assert "is a file; give the SavedModel folder" in capsys.readouterr().err
  assert (
    cli.main(
      [
        "sample",
        "--run",
        trained_run,
        "--out",
        str(tmp_path / "file" / "g.png"),
      ]
    )
    == 2
  )
  assert "cannot write it" in capsys.readouterr().err
  assert (tmp_path / "file").read_text() == "x"


@pytest.fixture(scope="module")
def two_epoch_run(digits_npz, tmp_path_factory):
  """A run of two epochs (lu mixing: quick to export) and its stderr."""
  run = str(tmp_path_factory.mktemp("runs") / "run")
  err = io.StringIO()
  with contextlib.redirect_stderr(err):
    runs.cli_tiny_run(digits_npz, run, "--mixing", "lu", epochs=2)
  return run, err.getvalue()


@pytest.mark.slow
def test_worse_than_uniform_is_a_warning_and_a_flag(two_epoch_run):
  run, err = two_epoch_run
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    document = json.load(f)
  first, second = document["epochs"]
  # Epoch 1 ends inside the warm-up (step 3 of 4), epoch 2 after it, still
  # above log2(17) = 4.0875 bits/dim: exit status 0, a warning, a flag.
  assert first["worse_than_uniform"] is False
  assert second["worse_than_uniform"] is True
  assert second["test_bits_per_dim"] > np.log2(17)
  assert document["worse_than_uniform"] is True
  assert document["uniform_bits_per_dim"] == pytest.approx(np.log2(17))
  assert err.count("warning: ") == 2
  assert (
    f"warning: epoch 2: the test bits/dim "
    f"{second['test_bits_per_dim']:.4f} is above the uniform model's "
    f"4.0875 (log2 of 17 levels) after the warm-up (step 6 >= 4)"
  ) in err
  assert "warning: the final test bits/dim" in err


def _copy_run(run, folder):
  copy = str(folder / "run")
  shutil.copytree(run, copy)
  return copy


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _checkpoint(run, name, kind=None):
  """The path of checkpoint `name` of `run`, or of its file `kind`."""
  path = os.path.join(run, "checkpoints", name)
  return path if kind is None else f"{path}.{kind}"


_DATA = "data-00000-of-00001"


def _read_metrics(run):
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    return json.load(f)["epochs"]


def _exported_log_prob(folder, x):
  loaded = tf.saved_model.load(folder)
  return loaded.signatures["log_prob"](x=x)["log_prob"].numpy()


@pytest.fixture
def corrupt_ckpt_2(two_epoch_run, tmp_path):
  """`(original, run)`: `two_epoch_run` and a copy of it whose newest
  checkpoint (ckpt-2) has its data file cut in half."""
  original, _ = two_epoch_run
  run = _copy_run(original, tmp_path)
  _truncate(_checkpoint(run, "ckpt-2", _DATA))
  return original, run


@pytest.mark.slow
def test_every_command_falls_back_past_a_corrupt_checkpoint(
  corrupt_ckpt_2, tmp_path, capsys
):
  original, run = corrupt_ckpt_2
  # The reference: the same run with only its first checkpoint, stated.
  only_first = _copy_run(original, tmp_path / "first")
  for kind in ("index", _DATA):
    os.remove(_checkpoint(only_first, "ckpt-2", kind))
  capsys.readouterr()
  before = _snapshot(run)
  skipped = (
    f"warning: checkpoint {_checkpoint(run, 'ckpt-2')} is "
    f"corrupt or unreadable (IndexError: Read less bytes than "
    f"requested); skipping it."
  )
  restored = (
    f"warning: restored {_checkpoint(run, 'ckpt-1')} "
    f"(epoch 1), the newest intact checkpoint."
  )

  assert cli.main(["evaluate", "--run", run, "--json"]) == 0
  captured = capsys.readouterr()
  assert skipped in captured.err and restored in captured.err
  result = json.loads(captured.out)
  assert result["epoch"] == 1 and result["checkpoint"].endswith("ckpt-1")
  # Exactly the test bits/dim the run recorded after epoch 1.
  assert (
    result["bits_per_dim"] == _read_metrics(original)[0]["test_bits_per_dim"]
  )

  grids = {}
  for name, source in (
    ("fallback", run),
    ("first", only_first),
    ("second", original),
  ):
    grids[name] = str(tmp_path / f"{name}.png")
    assert (
      cli.main(["sample", "--run", source, "--n", "4", "--out", grids[name]])
      == 0
    )
    err = capsys.readouterr().err
    assert (skipped in err) == (name == "fallback")

  def read(name):
    with open(grids[name], "rb") as f:
      return f.read()

  assert read("fallback") == read("first") != read("second")

  exported = str(tmp_path / "exported")
  assert cli.main(["export", "--run", run, "--out", exported]) == 0
  captured = capsys.readouterr()
  assert skipped in captured.err and "(epoch 1)" in captured.out
  _, model, _, _ = training.load_run(only_first)
  x = tf.random.stateless_uniform([3, 8, 8, 1], [1, 2], -0.5, 0.5)
  np.testing.assert_array_equal(
    _exported_log_prob(exported, x), model.distribution.log_prob(x).numpy()
  )
  # Restoring wrote nothing into the run directory.
  assert _snapshot(run) == before

  # Resuming retrains epoch 2 from ckpt-1: the same numbers as before, and
  # an intact ckpt-2 again.
  assert cli.main(["train", "--out", run, "--resume"]) == 0
  captured = capsys.readouterr()
  assert skipped in captured.err
  assert f"resumed from {_checkpoint(run, 'ckpt-1')} (epoch 1)" in (
    captured.out
  )
  assert epoch_bits(_read_metrics(run)) == epoch_bits(_read_metrics(original))
  assert cli.main(["evaluate", "--run", run, "--json"]) == 0
  captured = capsys.readouterr()
  assert "warning" not in captured.err
  assert json.loads(captured.out)["epoch"] == 2


@pytest.mark.slow
def test_no_intact_checkpoint_exits_3_and_rewrites_nothing(
  corrupt_ckpt_2, tmp_path, capsys
):
  _, run = corrupt_ckpt_2
  with open(_checkpoint(run, "ckpt-1", "index"), "wb"):
    pass  # an empty index
  before = _snapshot(run)
  capsys.readouterr()
  for command in (
    ["evaluate", "--run", run],
    ["sample", "--run", run, "--out", str(tmp_path / "g.png")],
    ["export", "--run", run, "--out", str(tmp_path / "saved")],
    [
      "train",
      "--out",
      run,
      "--resume",
      "--epochs",
      "3",
      "--learning-rate",
      "0.0005",
    ],
  ):
    assert cli.main(command) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (
      f"tfp-emerging {command[0]}: error: {run}/checkpoints: no "
      f"checkpoint can be restored: ckpt-2 (IndexError: Read less bytes "
      f"than requested); ckpt-1 ("
    ) in err
    assert "Start a new run with another --out, or delete" in err
    assert _snapshot(run) == before  # config.json has no new `changes`
  assert not (tmp_path / "g.png").exists()
  assert not (tmp_path / "saved").exists()


@pytest.mark.slow
def test_a_missing_state_file_is_recovered_from_the_checkpoints(
  two_epoch_run, tmp_path, capsys
):
  original, _ = two_epoch_run
  run = _copy_run(original, tmp_path)
  os.remove(os.path.join(run, "checkpoints", "checkpoint"))
  capsys.readouterr()
  assert cli.main(["evaluate", "--run", run, "--json"]) == 0
  captured = capsys.readouterr()
  assert json.loads(captured.out)["epoch"] == 2
  assert (
    f"warning: the checkpoint state file {run}/checkpoints/checkpoint "
    f"is missing or unreadable; using the checkpoint files on disk "
    f"(ckpt-1, ckpt-2)."
  ) in captured.err
  # --resume continues from epoch 2, never from scratch.
  assert cli.main(["train", "--out", run, "--resume", "--epochs", "3"]) == 0
  captured = capsys.readouterr()
  assert f"resumed from {run}/checkpoints/ckpt-2 (epoch 2)" in captured.out
  metrics = _read_metrics(run)
  assert epoch_bits(metrics[:2]) == epoch_bits(_read_metrics(original))
  assert [m["epoch"] for m in metrics] == [1, 2, 3]
  folder = os.path.join(run, "checkpoints")
  assert tf.train.latest_checkpoint(folder) == os.path.join(folder, "ckpt-3")
  # No checkpoint at all, but metrics.json records finished epochs: an
  # error, not a silent restart from epoch 1.
  shutil.rmtree(folder)
  assert cli.main(["train", "--out", run, "--resume"]) == 3
  assert (
    "metrics.json records 3 finished epochs, but checkpoints/ holds no "
    "checkpoint of them"
  ) in capsys.readouterr().err


@pytest.mark.slow
def test_module_entry_point(monkeypatch, tmp_path, capsys):
  monkeypatch.setattr(
    sys, "argv", ["tfp_emerging", "evaluate", "--run", str(tmp_path)]
  )
  with pytest.raises(SystemExit) as info:
    runpy.run_module("tfp_emerging", run_name="__main__")
  assert info.value.code == 2
  assert "not a training run directory" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_sample_refuses_non_finite_temperatures(
  value, trained_run, tmp_path, capsys
):
  out = tmp_path / "g.png"
  command = ["sample", "--run", trained_run, "--out", str(out)]
  assert cli.main(command + ["--temperature", value]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--temperature must be >= 0; got " + value in err[0]
  assert not out.exists()
  train = ["train", "--out", str(tmp_path / "r"), "--sample-temperature"]
  assert cli.main(train + [value]) == 2
  assert f"--sample-temperature must be >= 0; got {value}" in (
    capsys.readouterr().err
  )
  assert not (tmp_path / "r").exists()


# ------------------------------------------- faults and bad inputs (issue 26)
# Outputs that are not a command's own, options that would make a run's
# record false, config files that disagree with the checkpoints, damaged
# files, bad data. A test that changes the finished run works on a copy.


@pytest.fixture(scope="module")
def finished_run(two_epoch_run):
  """The finished 2-epoch run of `two_epoch_run`, left as it is."""
  run, _ = two_epoch_run
  return run


def _one_error(capsys, command):
  """The one line on standard error, checked to be `command`'s error."""
  err = capsys.readouterr().err.strip().splitlines()
  err = [line for line in err if not line.startswith("warning: ")]
  assert len(err) == 1, err
  assert err[0].startswith(f"tfp-emerging {command}: error: "), err
  return err[0]


@pytest.mark.slow
def test_sample_never_replaces_what_is_not_its_own(
  finished_run, tmp_path, capsys
):
  before = _snapshot(finished_run)
  other = tmp_path / "other-run"  # another run directory
  other.mkdir()
  (other / ".tfp-emerging-run").write_text("{}")
  notes = tmp_path / "notes.txt"
  notes.write_text("mine")
  for out, says in (
    (os.path.join(finished_run, "config.json"), "not a PNG image"),
    (os.path.join(finished_run, "metrics.json"), "not a PNG image"),
    (os.path.join(finished_run, "checkpoints", "g.png"), "inside the run"),
    (os.path.join(finished_run, "grid.png"), "inside the run"),
    (str(other / "samples.png"), f"inside the run directory {other}"),
    (str(notes), "not a PNG image"),
  ):
    capsys.readouterr()
    assert cli.main(["sample", "--run", finished_run, "--out", out]) == 2
    assert says in _one_error(capsys, "sample"), out
  assert _snapshot(finished_run) == before
  assert notes.read_text() == "mine" and os.listdir(other) == [
    ".tfp-emerging-run"
  ]
  # Its own names: the run's samples, and any PNG outside run directories.
  own = os.path.join(finished_run, "samples.png")
  assert cli.main(["sample", "--run", finished_run, "--out", own]) == 0
  grid = tmp_path / "grid.png"
  for _ in range(2):  # a PNG it wrote may be replaced
    assert cli.main(["sample", "--run", finished_run, "--out", str(grid)]) == 0
  assert tf.io.decode_png(grid.read_bytes()).shape[-1] == 1


@pytest.mark.slow
def test_export_replaces_only_a_savedmodel_and_only_with_overwrite(
  finished_run, tmp_path, capsys
):
  before = _snapshot(finished_run)
  user = tmp_path / "user"
  user.mkdir()
  (user / "keep.txt").write_text("mine")
  for out, says in (
    (finished_run, "export never writes into a run directory"),
    (os.path.join(finished_run, "exported"), "inside the run directory"),
    (str(user), "holds no SavedModel"),
  ):
    capsys.readouterr()
    assert cli.main(["export", "--run", finished_run, "--out", out]) == 2
    assert says in _one_error(capsys, "export"), out
  assert _snapshot(finished_run) == before
  assert os.listdir(user) == ["keep.txt"]
  saved = str(tmp_path / "saved")
  command = ["export", "--run", finished_run, "--out", saved]
  assert cli.main(command) == 0
  first = _snapshot(saved)
  capsys.readouterr()
  assert cli.main(command) == 2
  assert "already holds a SavedModel; pass --overwrite" in _one_error(
    capsys, "export"
  )
  assert _snapshot(saved) == first
  assert cli.main(command + ["--overwrite"]) == 0
  assert "sample" in tf.saved_model.load(saved).signatures
  assert sorted(os.listdir(tmp_path)) == ["saved", "user"]  # nothing beside


def test_export_onto_a_full_disk_leaves_no_half_written_folder(
  finished_run, tmp_path, capsys, monkeypatch
):
  """The SavedModel writer fails with ENOSPC half-way (simulated: it has
  written a file); `--out` is left as it was, nothing is left beside it."""

  def full_disk(model, path):
    del model
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(export_lib, "export", full_disk)
  for existing in (False, True):
    out = tmp_path / "saved"
    if existing:  # an older SavedModel, replaced with --overwrite
      out.mkdir()
      (out / "saved_model.pb").write_bytes(b"old")
    command = ["export", "--run", finished_run, "--out", str(out)]
    capsys.readouterr()
    assert cli.main(command + ["--overwrite"] * existing) == 5
    line = _one_error(capsys, "export")
    assert f"{out}: no space left on the device while writing the " in line
    assert "--resume" not in line
    assert os.listdir(tmp_path) == (["saved"] if existing else [])
    if existing:
      assert (out / "saved_model.pb").read_bytes() == b"old"


def test_train_refuses_a_batch_larger_than_the_training_split(
  finished_run, digits_npz, tmp_path, capsys
):
  run = tmp_path / "run"
  command = ["train", "--dataset", digits_npz, "--out", str(run)] + TINY_LU
  assert cli.main(command + ["--batch-size", "97"]) == 2
  line = _one_error(capsys, "train")
  assert "--batch-size 97 is more than the 96 training images of " in line
  assert not run.exists()
  before = _snapshot(finished_run)
  resume = ["train", "--out", finished_run, "--resume", "--epochs", "3"]
  assert cli.main(resume + ["--batch-size", "97"]) == 2
  assert "--batch-size 97 is more than the 96 " in _one_error(capsys, "train")
  assert _snapshot(finished_run) == before


def test_tensorboard_at_a_file_exits_2_naming_it(digits_npz, tmp_path, capsys):
  logs = tmp_path / "logs"
  logs.write_text("mine")
  run = tmp_path / "run"
  for folder, says in (
    (logs, "is a file, not a folder"),
    (logs / "sub", f"{logs} is a file, not a folder"),
  ):
    command = ["train", "--dataset", digits_npz, "--out", str(run)] + TINY_LU
    assert cli.main(command + ["--tensorboard", str(folder)]) == 2
    line = _one_error(capsys, "train")
    assert f"--tensorboard {folder}: {says}" in line, line
  assert not run.exists() and logs.read_text() == "mine"


def test_resume_refuses_fewer_epochs_than_the_run_has_finished(
  finished_run, capsys
):
  before = _snapshot(finished_run)
  command = ["train", "--out", finished_run, "--resume", "--epochs", "1"]
  assert cli.main(command) == 2
  line = _one_error(capsys, "train")
  assert "--epochs 1, but the run has finished 2 epoch(s)" in line, line
  assert "give at least 2" in line
  assert _snapshot(finished_run) == before  # config.json still says 2


def test_a_png_with_broken_image_data_stops_before_training_naming_it(
  digits_npz, tmp_path, capsys
):
  folder, images = runs.digits_png_folder(digits_npz, tmp_path / "pngs")
  bad = folder / "17.png"
  bad.write_bytes(runs.png_with_broken_image_data(images[17]))
  run = tmp_path / "run"
  command = ["train", "--dataset", str(folder), "--out", str(run)] + TINY_LU
  assert cli.main(command + ["--batch-size", "8"]) == 2
  line = _one_error(capsys, "train")
  assert line.startswith(f"tfp-emerging train: error: {bad}: not a readable ")
  assert "image data cannot be decoded" in line, line
  assert not run.exists()  # no half-made run directory


@pytest.mark.slow
def test_an_edited_config_disagrees_with_intact_checkpoints(
  finished_run, tmp_path, capsys
):
  """config.json edited to another architecture, or to other `num_bins`:
  every command says that it and the (intact) checkpoints disagree, names
  the field, advises no deletion, and writes nothing."""
  grid, saved = tmp_path / "grid.png", tmp_path / "saved"
  for field, value, commands in (
    ("num_steps", 2, [["evaluate"], ["train", "--resume"]]),
    ("num_bins", 16, [["sample", "--out", str(grid)], ["export"]]),
  ):
    copy = tmp_path / field
    shutil.copytree(finished_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config[field] = value
    (copy / "config.json").write_text(json.dumps(config))
    before = _snapshot(copy)
    for command in commands:
      where = ["--out", str(copy)] if command[0] == "train" else []
      where += ["--run", str(copy)] if command[0] != "train" else []
      where += ["--out", str(saved)] if command[0] == "export" else []
      capsys.readouterr()
      assert cli.main(command + where) == 2, command
      line = _one_error(capsys, command[0])
      assert f"{copy}/config.json and the checkpoints disagree" in line, line
      assert f"{field} {value!r} in config.json" in line, line
      assert "corrupt" not in line and "delete " not in line, line
    assert _snapshot(copy) == before
  assert not grid.exists() and not saved.exists()


def _maps_tensorflow(pid):
  """Whether the process `pid` has loaded TensorFlow's library (it is
  importing TensorFlow: the start-up of the command line)."""
  with open(f"/proc/{pid}/maps", encoding="utf-8") as f:
    return "libtensorflow" in f.read()


@pytest.mark.slow
@pytest.mark.skipif(
  not os.path.exists("/proc/self/maps"), reason="needs /proc/PID/maps"
)
def test_a_signal_during_start_up_prints_one_line_and_exits(
  digits_npz, tmp_path
):
  """SIGINT and SIGTERM while `python -m tfp_emerging train` is still
  importing TensorFlow: the one-line message, status 130 or 143, nothing
  written (before: a 40-line traceback of the import, or silence)."""
  outs = {number: tmp_path / number.name for number in STARTUP_SIGNALS}
  processes = {
    number: workers.start_python(
      ["-m", "tfp_emerging", "train", "--out", str(out)]
      + ["--dataset", digits_npz]
      + TINY_LU,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
    )
    for number, out in outs.items()
  }
  try:
    for number, process in processes.items():
      deadline = time.monotonic() + 300
      while not _maps_tensorflow(process.pid):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
      process.send_signal(number)
    for number, process in processes.items():
      _, err = process.communicate(timeout=300)
      name = "terminated" if number == signal.SIGTERM else "interrupted"
      assert process.returncode == 128 + number, err[-3000:]
      assert "Traceback" not in err, err[-3000:]
      lines = [line for line in err.splitlines() if "tfp-emerging" in line]
      assert lines == [
        f"tfp-emerging train: {name} while starting; nothing was written."
      ], err[-3000:]
      assert not outs[number].exists()
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()
