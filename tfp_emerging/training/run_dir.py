"""Every read and write of a run directory, each write atomic.

A run lives in one directory:

* `.tfp-emerging-run` (`RUN_MARKER`): the marker of a run directory, written
  when the run starts there (`claim`). A new run starts only in a folder
  that does not exist, is empty, or is marked and holds no run yet
  (`check_new`); `replace=True` (the demo) also replaces the run of a marked
  folder, deleting only the files a run writes (`remove_run_files`), and
  only once the options, the data and the model have been checked. A
  user's folder is never written into or deleted.
* `config.json` (`CONFIG_FILE`): the `RunConfig`, with `changes`, the options
  changed on `--resume`.
* `checkpoints/ckpt-E` (`CHECKPOINT_DIR`): a checkpoint after every finished
  epoch `E` (`tfp_emerging.training.checkpoints`), in
  `tf.train.CheckpointManager`'s layout.
* `metrics.json` (`METRICS_FILE`): `metrics_document`, rewritten after every
  checkpoint from the metrics stored in that checkpoint.
* `samples.png` (`SAMPLES_FILE`): a grid of samples from the final model.

Atomicity: JSON and PNG files are written to a temporary file in the same
folder, synced and renamed over the old one (`os.replace`), so they are
never seen half written. The checkpoint files' names are read here too
(`written_checkpoints`, `checkpoint_files`), and removed here
(`remove_checkpoint_files`), each checkpoint's index first so that it never
looks complete while half deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import glob
import json
import math
import os
import re
import shutil
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging import image_grid
from tfp_emerging.keras import FlowModel
from tfp_emerging.training import config as config_lib

__all__ = [
  "CHECKPOINT_DIR",
  "CONFIG_FILE",
  "DEMO_SAMPLES_FILE",
  "METRICS_FILE",
  "RUN_FILES",
  "RUN_MARKER",
  "SAMPLES_FILE",
  "check_new",
  "claim",
  "is_marked_run",
  "metrics_document",
  "read_config",
  "recorded_epochs",
  "remove_run_files",
  "write_config",
  "write_json",
  "write_metrics",
  "write_png",
  "write_samples",
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
DEMO_SAMPLES_FILE = "samples_demo.png"  # written by `tfp-emerging demo`
CHECKPOINT_DIR = "checkpoints"
# The marker of a run directory: written when a run starts in a folder, it
# is what allows `remove_run_files` to clear that folder.
RUN_MARKER = ".tfp-emerging-run"
# The files of a run directory besides the marker and `CHECKPOINT_DIR`.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SAMPLES_FILE, DEMO_SAMPLES_FILE)


def is_marked_run(run_dir: str | os.PathLike) -> bool:
  """Whether `run_dir` holds the marker of a run directory (`RUN_MARKER`)."""
  return os.path.isfile(os.path.join(run_dir, RUN_MARKER))


def _mark(run_dir):
  """Creates `run_dir` if needed and marks it as a run directory."""
  os.makedirs(run_dir, exist_ok=True)
  if not is_marked_run(run_dir):
    write_json(
      os.path.join(run_dir, RUN_MARKER),
      {
        "written_by": "tfp_emerging",
        "meaning": (
          "this folder is a training run of tfp-emerging; `tfp-"
          "emerging demo --out` may replace the run's files in it "
          "(and only those)"
        ),
      },
    )


def _remove_temporaries(folder, names):
  """Deletes the temporary files `write_atomic` left for `names` in
  `folder` (a write killed half-way)."""
  for name in names:
    for path in glob.glob(
      os.path.join(glob.escape(folder), "." + glob.escape(name) + "*.tmp")
    ):
      os.remove(path)


def remove_run_files(run_dir: str | os.PathLike) -> None:
  """Deletes the files a run wrote in the marked run directory `run_dir`.

  Deletes `RUN_FILES`, and in `checkpoints/` the checkpoints, the state file
  and the temporary files of interrupted writes (then `checkpoints/` itself
  if that leaves it empty). Everything else (the marker, a user's notes) is
  kept.

  Raises:
    ValueError: `run_dir` holds no `RUN_MARKER`.
  """
  if not is_marked_run(run_dir):
    raise ValueError(
      f"{run_dir}: not marked as a run directory "
      f"({RUN_MARKER}); nothing is deleted."
    )
  for name in RUN_FILES:
    path = os.path.join(run_dir, name)
    if os.path.isfile(path):
      os.remove(path)
  _remove_temporaries(run_dir, RUN_FILES)
  folder = os.path.join(run_dir, CHECKPOINT_DIR)
  if os.path.isdir(folder):
    remove_checkpoint_files(folder, keep=())
    state = os.path.join(folder, "checkpoint")
    if os.path.isfile(state):
      os.remove(state)
    _remove_temporaries(folder, ["checkpoint"])
    if not os.listdir(folder):
      os.rmdir(folder)


def write_json(path: str | os.PathLike, value: Any) -> None:
  """Writes `value` as JSON to `path` atomically (temporary file, rename)."""
  write_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def write_png(path: str | os.PathLike, image: tf.Tensor | np.ndarray) -> None:
  """Writes a uint8 `[H, W, C]` image as a PNG, atomically."""
  write_atomic(path, tf.io.encode_png(image).numpy())


def write_atomic(path, payload):
  """Writes bytes to a temporary file next to `path`, then renames it."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(
    dir=folder, prefix="." + os.path.basename(path), suffix=".tmp"
  )
  umask = os.umask(0)
  os.umask(umask)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's files are private (0600)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_samples(
  run_dir: str | os.PathLike,
  model: FlowModel,
  temperature: float,
  seed: int | None,
) -> None:
  """Writes `samples.png`: `NUM_SAMPLES` samples of `model`, 8 per row (a
  class-conditional model: one row per class, `SAMPLES_PER_CLASS` each)."""
  write_png(
    os.path.join(run_dir, SAMPLES_FILE),
    image_grid.sample_grid(
      model, image_grid.default_sample_count(model), temperature, seed
    ),
  )


def metrics_document(records: Sequence[dict], num_bins: int) -> dict[str, Any]:
  """The contents of `metrics.json` for the per-epoch `records`.

  `{"epochs": records, "uniform_bits_per_dim": log2(num_bins),
  "worse_than_uniform": the last record's flag (false if none)}`.
  """
  last = records[-1] if records else {}
  return {
    "epochs": list(records),
    "uniform_bits_per_dim": math.log2(num_bins),
    "worse_than_uniform": bool(last.get("worse_than_uniform", False)),
  }


def write_metrics(
  run_dir: str | os.PathLike, records: Sequence[dict], num_bins: int
) -> None:
  """Rewrites `metrics.json` from the per-epoch `records`."""
  write_json(
    os.path.join(run_dir, METRICS_FILE), metrics_document(records, num_bins)
  )


def recorded_epochs(run_dir: str | os.PathLike) -> int:
  """The number of finished epochs `metrics.json` records (0 if it is
  missing or unreadable)."""
  try:
    with open(os.path.join(run_dir, METRICS_FILE), encoding="utf-8") as f:
      return len(json.load(f)["epochs"])
  except (OSError, ValueError, KeyError, TypeError):
    return 0


def read_config(run_dir: str | os.PathLike) -> config_lib.RunConfig:
  """The `RunConfig` of a run, or `RunError` if `run_dir` holds none."""
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise config_lib.RunError(
      f"{run_dir}: no {CONFIG_FILE}; not a training run directory."
    )
  return config_lib.RunConfig.from_json(path)


def write_config(
  run_dir: str | os.PathLike, config: config_lib.RunConfig
) -> None:
  """Writes `config.json` from the `RunConfig` `config`."""
  write_json(os.path.join(run_dir, CONFIG_FILE), dataclasses.asdict(config))


def check_new(run_dir: str | os.PathLike, replace: bool = False) -> None:
  """Raises `RunError` unless a new run may start in `run_dir` (see
  `train`); reads, never writes."""
  path = os.path.abspath(run_dir)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = "is a file" if existing == path else f"{existing} is a file"
    raise config_lib.RunError(
      f"{run_dir}: {where}, not a folder; choose another --out."
    )
  if existing != path:
    return
  entries = sorted(os.listdir(path))
  holds_run = CONFIG_FILE in entries
  if not entries or (is_marked_run(path) and (replace or not holds_run)):
    return
  if is_marked_run(path):
    raise config_lib.RunError(
      f"{run_dir}: already holds a run ({CONFIG_FILE}); pass "
      f"--resume to continue it or choose a new --out."
    )
  if holds_run:
    raise config_lib.RunError(
      f"{run_dir}: holds a {CONFIG_FILE} but is not marked as a run "
      f"directory of tfp-emerging (no {RUN_MARKER}), so "
      f"nothing in it is replaced. Choose a new or empty --out (if it is a "
      f"run of an older tfp-emerging, continue it with tfp-emerging train "
      f"--out {run_dir} --resume, or delete it yourself)."
    )
  shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
  raise config_lib.RunError(
    f"{run_dir}: not empty ({shown}) and not a run directory; "
    f"choose a new or empty --out."
  )


def claim(run_dir: str | os.PathLike, replace: bool = False) -> None:
  """Marks `run_dir` as the new run's directory, first deleting the run
  files of the marked run there if `replace`."""
  check_new(run_dir, replace)
  try:
    if replace and is_marked_run(run_dir):
      remove_run_files(run_dir)
    _mark(run_dir)
  except OSError as e:
    raise config_lib.RunError(
      f"{run_dir}: cannot write the run directory ({e})."
    ) from e


_CHECKPOINT_NAME = re.compile(r"ckpt-([0-9]+)")


def epoch_of(name):
  """`E` of a checkpoint name `ckpt-E`, else `None`."""
  match = _CHECKPOINT_NAME.fullmatch(name)
  return int(match.group(1)) if match else None


def checkpoint_files(folder):
  """`{name: [paths]}` of every `ckpt-E.*` file in `folder`."""
  files = {}
  for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.*")):
    name = os.path.basename(path).split(".", 1)[0]
    if epoch_of(name) is not None:
      files.setdefault(name, []).append(path)
  return files


def written_checkpoints(folder):
  """The names of the checkpoints in `folder` whose index exists (written
  completely, see the module docstring), oldest epoch first."""
  names = [
    name
    for name, paths in checkpoint_files(folder).items()
    if os.path.join(folder, name + ".index") in paths
  ]
  return sorted(names, key=epoch_of)


def listed_checkpoints(folder):
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
  return [name for name in names if epoch_of(name) is not None]


def delete_checkpoint(paths):
  """Deletes one checkpoint's files, its index first (so that it never
  looks complete while half deleted)."""
  for path in sorted(paths, key=lambda p: not p.endswith(".index")):
    os.remove(path)


def remove_temporary_checkpoints(folder):
  """Deletes what interrupted checkpoint writes left in `folder`."""
  for path in glob.glob(os.path.join(glob.escape(folder), ".ckpt-*.tmp*")):
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


def remove_checkpoint_files(folder, keep):
  """Deletes every checkpoint in `folder` not named in `keep`, and the
  leftovers of interrupted writes."""
  for name, paths in checkpoint_files(folder).items():
    if name not in keep:
      delete_checkpoint(paths)
  remove_temporary_checkpoints(folder)
