"""`tfp_emerging.training.run_dir`: run directories refused with a reason,
debris of killed writes removed, worker folders."""

import dataclasses
import os

import pytest

from tests.testlib.runs import tiny_config
from tfp_emerging import training
from tfp_emerging.training import checkpoint_files
from tfp_emerging.training import run_dir

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow


def test_run_directory_errors(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  with pytest.raises(training.RunError, match=r"no config\.json"):
    training.resume(run)
  with pytest.raises(training.RunError, match="not a training run"):
    training.load_run(run)
  os.makedirs(run)
  run_dir.write_json(
    os.path.join(run, "config.json"),
    dataclasses.asdict(
      tiny_config(digits_npz, num_bins=17, image_shape=[8, 8, 1])
    ),
  )
  with pytest.raises(
    training.RunError,
    match=r"holds a config\.json but is not marked as a run "
    "directory of tfp-emerging",
  ):
    training.train(tiny_config(digits_npz), run)
  run_dir.write_json(os.path.join(run, run_dir.RUN_MARKER), {})
  with pytest.raises(training.RunError, match="already holds a run"):
    training.train(tiny_config(digits_npz), run)
  with pytest.raises(training.RunError, match="no checkpoint yet"):
    training.load_run(run)
  with open(os.path.join(run, "config.json"), "w", encoding="utf-8") as f:
    f.write("{broken")
  with pytest.raises(training.RunError, match="not a readable run config"):
    training.load_run(run)


def test_debris_of_killed_writes_is_removed_and_named(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  training.train(
    tiny_config(digits_npz), run, log=lambda m: None, verbose=0, warn=print
  )
  folder = os.path.join(run, "checkpoints")
  # What SIGKILLs inside writes leave: a checkpoint's temporary prefix with
  # TensorFlow's `_temp` folder of 0-byte `tempstate` files, a state file's
  # and a JSON file's temporary files.
  os.makedirs(os.path.join(folder, ".ckpt-2.tmp_temp"))
  open(os.path.join(folder, ".ckpt-2.tmp_temp", "part.tempstate1"), "w").close()
  open(os.path.join(folder, ".ckpt-2.tmp.index"), "w").close()
  open(os.path.join(folder, ".checkpointab12.tmp"), "w").close()
  open(os.path.join(run, ".metrics.jsonx9.tmp"), "w").close()
  assert checkpoint_files.written_checkpoints(folder) == ["ckpt-1"]
  warnings = []
  training.resume(
    run, epochs=2, log=lambda m: None, verbose=0, warn=warnings.append
  )
  removed = [w for w in warnings if w.startswith("removed what interrupted")]
  assert len(removed) == 1, warnings
  for name in (
    ".metrics.jsonx9.tmp",
    "checkpoints/.checkpointab12.tmp",
    "checkpoints/.ckpt-2.tmp.index",
    "checkpoints/.ckpt-2.tmp_temp",
  ):
    assert name in removed[0]
  assert not [f for f in os.listdir(folder) if f.startswith(".")]
  assert checkpoint_files.written_checkpoints(folder) == ["ckpt-1", "ckpt-2"]


def test_a_run_without_its_config_is_never_trained_over(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  training.train(
    tiny_config(digits_npz), run, log=lambda m: None, verbose=0, warn=print
  )
  os.remove(os.path.join(run, "config.json"))
  before = sorted(os.listdir(os.path.join(run, "checkpoints")))
  with open(os.path.join(run, "metrics.json")) as f:
    metrics = f.read()
  with pytest.raises(training.RunError, match=r"no config\.json; nothing in"):
    training.train(tiny_config(digits_npz), run, log=lambda m: None)
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == before
  with open(os.path.join(run, "metrics.json")) as f:
    assert f.read() == metrics


def test_worker_folder_copies_the_run_read_only_and_is_deleted(tmp_path):
  """A multi-worker run's other workers read the chief's run (a copy of its
  complete checkpoints) and write a private folder that goes at the end."""
  run = tmp_path / "run"
  folder = run / run_dir.CHECKPOINT_DIR
  folder.mkdir(parents=True)
  for name in (run_dir.RUN_MARKER, run_dir.CONFIG_FILE, run_dir.METRICS_FILE):
    (run / name).write_text(name)
  (folder / "checkpoint").write_text("state")
  for name in ("ckpt-1.index", "ckpt-1.data-00000-of-00001"):
    (folder / name).write_text(name)
  (folder / "ckpt-2.data-00000-of-00001").write_text("no index: not written")
  (folder / ".ckpt-2.tmp.index").write_text("debris")
  before = sorted(p.relative_to(run) for p in run.rglob("*"))
  with run_dir.worker_folder(run, resume=True, worker=1) as private:
    assert os.path.basename(private).startswith("tfp-emerging-worker1-")
    assert not private.startswith(str(run))
    copied = sorted(
      os.path.relpath(os.path.join(d, f), private)
      for d, _, files in os.walk(private)
      for f in files
    )
    assert copied == sorted(
      [
        run_dir.RUN_MARKER,
        run_dir.CONFIG_FILE,
        run_dir.METRICS_FILE,
        "checkpoints/checkpoint",
        "checkpoints/ckpt-1.data-00000-of-00001",
        "checkpoints/ckpt-1.index",
      ]
    )
  assert not os.path.exists(private)
  assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
  with run_dir.worker_folder(run, resume=False, worker=1) as private:
    assert os.listdir(private) == []
  assert not os.path.exists(private)
  elsewhere = run_dir.worker_folder(tmp_path / "none", resume=True, worker=1)
  with pytest.raises(training.RunError, match="the same --out"), elsewhere:
    pass
