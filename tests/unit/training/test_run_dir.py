"""`tfp_emerging.training.run_dir`: run directories refused with a reason,
atomic writes."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.runs import tiny_config
from tfp_emerging import training
from tfp_emerging.training import run_dir


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


def test_atomic_writes_leave_only_the_file(tmp_path):
  path = str(tmp_path / "m.json")
  run_dir.write_json(path, {"a": 1})
  run_dir.write_json(path, {"a": [1, 2]})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(TypeError):  # fails mid-way: the old file is untouched
    run_dir.write_json(path, {"a": object()})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  run_dir.write_png(str(tmp_path / "g.png"), np.full((3, 5, 3), 7, np.uint8))
  with open(tmp_path / "g.png", "rb") as f:
    assert tf.io.decode_png(f.read()).numpy().shape == (3, 5, 3)
  assert sorted(os.listdir(tmp_path)) == ["g.png", "m.json"]
