"""The files of a run's checkpoints: their names, which are complete, and
their removal.

A checkpoint `ckpt-E` (after epoch `E`) or `ckpt-E-S` (after step `S` of
epoch `E + 1`) is a `ckpt-E.index` with its `ckpt-E.data-*` files, in
`tf.train.CheckpointManager`'s layout; it counts as written only when its
index exists (`tfp_emerging.training.checkpoints` renames the index into
place last). Deleting one deletes its index first (`delete_checkpoint`), so
that it never looks complete while half deleted. Interrupted writes leave
`.ckpt-E.tmp*` files and folders (`remove_temporary_checkpoints`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
import glob
import os
import re
import shutil

import tensorflow as tf

__all__ = [
  "checkpoint_files",
  "delete_checkpoint",
  "is_checkpoint_name",
  "listed_checkpoints",
  "position_of",
  "remove_checkpoint_files",
  "remove_temporary_checkpoints",
  "written_checkpoints",
]


# `ckpt-E` after epoch `E`; `ckpt-E-S` after step `S` of epoch `E + 1`.
_CHECKPOINT_NAME = re.compile(r"ckpt-([0-9]+)(?:-([0-9]+))?")


def is_checkpoint_name(name: str) -> bool:
  """Whether `name` is `ckpt-E` or `ckpt-E-S` (`E`, `S` decimal)."""
  return _CHECKPOINT_NAME.fullmatch(name) is not None


def position_of(name: str) -> tuple[int, int]:
  """`(E, S)` of a checkpoint name `ckpt-E` (`S = 0`) or `ckpt-E-S` (a step
  checkpoint: `S` steps into epoch `E + 1`); checkpoints sort by it.

  Raises:
    ValueError: `name` is not a checkpoint name (`is_checkpoint_name`).
  """
  match = _CHECKPOINT_NAME.fullmatch(name)
  if not match:
    raise ValueError(f"name must be ckpt-E or ckpt-E-S; got {name!r}.")
  return int(match.group(1)), int(match.group(2) or 0)


def checkpoint_files(folder: str) -> dict[str, list[str]]:
  """`{name: [paths]}` of every `ckpt-E.*` file in `folder`."""
  files: dict[str, list[str]] = {}
  for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.*")):
    name = os.path.basename(path).split(".", 1)[0]
    if is_checkpoint_name(name):
      files.setdefault(name, []).append(path)
  return files


def written_checkpoints(folder: str) -> list[str]:
  """The names of the checkpoints in `folder` whose index exists (written
  completely, see the module docstring), oldest epoch first."""
  names = [
    name
    for name, paths in checkpoint_files(folder).items()
    if os.path.join(folder, name + ".index") in paths
  ]
  return sorted(names, key=position_of)


def listed_checkpoints(folder: str) -> list[str] | None:
  """The checkpoint names in the state file `folder/checkpoint`, or `None`
  if it is missing or unreadable."""
  try:
    state = tf.train.get_checkpoint_state(folder)
  except (ValueError, UnicodeDecodeError):  # e.g. an empty state file
    return None
  if state is None:
    return None
  names = [os.path.basename(p) for p in state.all_model_checkpoint_paths]
  names.append(os.path.basename(state.model_checkpoint_path))
  return [name for name in names if is_checkpoint_name(name)]


def delete_checkpoint(paths: Iterable[str]) -> None:
  """Deletes one checkpoint's files, its index first (so that it never
  looks complete while half deleted)."""
  for path in sorted(paths, key=lambda p: not p.endswith(".index")):
    os.remove(path)


def remove_temporary_checkpoints(folder: str) -> None:
  """Deletes what interrupted checkpoint writes left in `folder`."""
  for path in glob.glob(os.path.join(glob.escape(folder), ".ckpt-*.tmp*")):
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


def remove_checkpoint_files(folder: str, keep: Collection[str]) -> None:
  """Deletes every checkpoint in `folder` not named in `keep`, and the
  leftovers of interrupted writes."""
  for name, paths in checkpoint_files(folder).items():
    if name not in keep:
      delete_checkpoint(paths)
  remove_temporary_checkpoints(folder)
