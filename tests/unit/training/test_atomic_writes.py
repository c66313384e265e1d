"""`tfp_emerging.training.atomic_writes`: a file is replaced whole or not at
all, and a full disk is named."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.training import atomic_writes


def test_atomic_writes_leave_only_the_file(tmp_path):
  path = str(tmp_path / "m.json")
  atomic_writes.write_json(path, {"a": 1})
  atomic_writes.write_json(path, {"a": [1, 2]})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(TypeError):  # fails mid-way: the old file is untouched
    atomic_writes.write_json(path, {"a": object()})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  atomic_writes.write_png(
    str(tmp_path / "g.png"), np.full((3, 5, 3), 7, np.uint8)
  )
  with open(tmp_path / "g.png", "rb") as f:
    assert tf.io.decode_png(f.read()).numpy().shape == (3, 5, 3)
  assert sorted(os.listdir(tmp_path)) == ["g.png", "m.json"]


def test_a_full_disk_in_write_atomic_keeps_the_old_file(tmp_path, monkeypatch):
  path = str(tmp_path / "metrics.json")
  atomic_writes.write_json(path, {"old": 1})

  def full(fd):  # a full disk reported when the data is synced
    raise OSError(28, "No space left on device")

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(
    atomic_writes.DiskFull, match=r"metrics\.json: no space left"
  ):
    atomic_writes.write_json(path, {"new": 2})
  monkeypatch.undo()
  assert os.listdir(tmp_path) == ["metrics.json"]
  with open(path) as f:
    assert json.load(f) == {"old": 1}
