"""`tfp_emerging.training.checkpoint_files`: checkpoint names, the ones that
are complete, and their removal, index first."""

import os

import pytest
import tensorflow as tf

from tfp_emerging.training import checkpoint_files


def _touch(folder, *names):
  for name in names:
    (folder / name).write_text(name)


@pytest.mark.parametrize(
  "name, position",
  [
    ("ckpt-3", (3, 0)),
    ("ckpt-3-40", (3, 40)),
    ("ckpt-12", (12, 0)),
    ("ckpt-", None),
    ("ckpt-3.index", None),
    (".ckpt-3.tmp", None),
    ("ckpt-a", None),
  ],
)
def test_position_of_a_name_and_names_that_are_none(name, position):
  assert checkpoint_files.is_checkpoint_name(name) == (position is not None)
  if position is None:
    with pytest.raises(ValueError, match="name must be ckpt-E or ckpt-E-S"):
      checkpoint_files.position_of(name)
  else:
    assert checkpoint_files.position_of(name) == position


def test_written_checkpoints_are_those_with_an_index_in_order(tmp_path):
  _touch(
    tmp_path,
    "ckpt-10.index",
    "ckpt-10.data-00000-of-00001",
    "ckpt-2.index",
    "ckpt-2-5.index",
    "ckpt-3.data-00000-of-00001",  # no index: not written completely
    ".ckpt-4.tmp.index",  # an interrupted write
    "ckpt-x.index",
    "checkpoint",
  )
  assert checkpoint_files.written_checkpoints(str(tmp_path)) == [
    "ckpt-2",
    "ckpt-2-5",
    "ckpt-10",
  ]
  files = checkpoint_files.checkpoint_files(str(tmp_path))
  assert sorted(files) == ["ckpt-10", "ckpt-2", "ckpt-2-5", "ckpt-3"]
  assert sorted(os.path.basename(p) for p in files["ckpt-10"]) == [
    "ckpt-10.data-00000-of-00001",
    "ckpt-10.index",
  ]


def test_removal_keeps_what_is_asked_and_deletes_an_index_first(
  tmp_path, monkeypatch
):
  _touch(
    tmp_path,
    "ckpt-1.data-00000-of-00001",
    "ckpt-1.index",
    "ckpt-2.index",
    "ckpt-2.data-00000-of-00001",
    ".ckpt-3.tmp.index",
    "checkpoint",
  )
  (tmp_path / ".ckpt-3.tmp_temp").mkdir()
  _touch(tmp_path / ".ckpt-3.tmp_temp", "part.tempstate1")
  removed = []
  remove = os.remove

  def recording_remove(path):
    removed.append(os.path.basename(path))
    remove(path)

  monkeypatch.setattr(os, "remove", recording_remove)
  checkpoint_files.delete_checkpoint(
    [
      str(tmp_path / "ckpt-1.data-00000-of-00001"),
      str(tmp_path / "ckpt-1.index"),
    ]
  )
  assert removed == ["ckpt-1.index", "ckpt-1.data-00000-of-00001"]
  _touch(tmp_path, "ckpt-1.data-00000-of-00001", "ckpt-1.index")
  checkpoint_files.remove_checkpoint_files(str(tmp_path), keep=["ckpt-2"])
  assert sorted(os.listdir(tmp_path)) == [
    "checkpoint",
    "ckpt-2.data-00000-of-00001",
    "ckpt-2.index",
  ]


def test_listed_checkpoints_reads_the_state_file(tmp_path):
  folder = str(tmp_path)
  assert checkpoint_files.listed_checkpoints(folder) is None  # missing
  (tmp_path / "checkpoint").write_text("")
  assert checkpoint_files.listed_checkpoints(folder) is None  # unreadable
  state = tf.compat.v1.train.generate_checkpoint_state_proto(
    folder, "ckpt-3", all_model_checkpoint_paths=["ckpt-2", "ckpt-3"]
  )
  (tmp_path / "checkpoint").write_text(str(state))
  listed = checkpoint_files.listed_checkpoints(folder)
  assert sorted(set(listed)) == ["ckpt-2", "ckpt-3"]
