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
  `tf.train.CheckpointManager`'s layout; its files are named, listed and
  removed by `tfp_emerging.training.checkpoint_files`.
* `metrics.json` (`METRICS_FILE`): `metrics_document`, rewritten after every
  checkpoint from the metrics stored in that checkpoint.
* `samples.png` (`SAMPLES_FILE`): a grid of samples from the final model.
* `.tfp-emerging-lock` (`LOCK_FILE`): the file a writer locks (`locked`,
  `tfp_emerging.training.locks`): one process at a time writes a run
  directory.

A multi-worker run has one run directory, written by the chief (worker 0)
only; every other worker trains into a private folder of its own
(`worker_folder`: a temporary folder, with a copy of the run to resume),
deleted when it ends, so that it neither takes the lock nor writes the run.

Faults: every command that writes a run directory holds its lock; a second
writer gets `RunLocked` at once, naming the holder's pid, and writes
nothing. A write that fails for want of space raises `DiskFull`, one on a
read-only folder `ReadOnlyRun`, each naming the path and what was written,
after removing its temporary file: what was complete before stays complete
(`tfp_emerging.training.atomic_writes`). `remove_debris` deletes what
killed writes left.

Atomicity: JSON and PNG files are written to a temporary file in the same
folder, synced and renamed over the old one (`write_json`, `write_png`), so
they are never seen half written. Checkpoints are removed each one's index
first, so that one never looks complete while half deleted.

The lock, the atomic writes and their faults are kept in modules of their
own; this module exports the names a command uses of them (`locked`,
`RunLocked`, `LOCK_FILE`, `DiskFull`, `ReadOnlyRun`, `write_json`,
`write_png`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
import dataclasses
import glob
import json
import math
import os
import shutil
import tempfile
from typing import Any

from tfp_emerging.keras import FlowModel
from tfp_emerging.training import config as config_lib
from tfp_emerging.training import sample_grids
from tfp_emerging.training.atomic_writes import DiskFull
from tfp_emerging.training.atomic_writes import ReadOnlyRun
from tfp_emerging.training.atomic_writes import write_json
from tfp_emerging.training.atomic_writes import write_png
from tfp_emerging.training.atomic_writes import writing
from tfp_emerging.training.checkpoint_files import checkpoint_files
from tfp_emerging.training.checkpoint_files import remove_checkpoint_files
from tfp_emerging.training.checkpoint_files import written_checkpoints
from tfp_emerging.training.locks import LOCK_FILE
from tfp_emerging.training.locks import RunLocked
from tfp_emerging.training.locks import locked

__all__ = [
  "CHECKPOINT_DIR",
  "CONFIG_FILE",
  "DEMO_SAMPLES_FILE",
  "LOCK_FILE",
  "METRICS_FILE",
  "RUN_FILES",
  "RUN_MARKER",
  "SAMPLES_FILE",
  "DiskFull",
  "ReadOnlyRun",
  "RunLocked",
  "check_new",
  "claim",
  "enclosing_run",
  "file_in_the_way",
  "is_marked_run",
  "locked",
  "metrics_document",
  "read_config",
  "recorded_epochs",
  "remove_debris",
  "remove_run_files",
  "worker_folder",
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


def enclosing_run(path: str | os.PathLike) -> str | None:
  """The run directory holding `path` (`path` itself or a folder above it,
  symbolic links resolved), or `None`. A run directory is a folder with the
  marker `RUN_MARKER` or a `CONFIG_FILE` (an older run has no marker)."""
  folder = os.path.realpath(path)
  while True:
    if is_marked_run(folder) or os.path.isfile(
      os.path.join(folder, CONFIG_FILE)
    ):
      return folder
    parent = os.path.dirname(folder)
    if parent == folder:
      return None
    folder = parent


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
  """Deletes the temporary files `atomic_writes.write_atomic` left for
  `names` in `folder` (a write killed half-way)."""
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


def write_samples(
  run_dir: str | os.PathLike,
  model: FlowModel,
  temperature: float,
  seed: int | None,
) -> None:
  """Writes `samples.png`: `sample_grids.NUM_SAMPLES` samples of `model`,
  8 per row (a class-conditional model: one row per class,
  `sample_grids.SAMPLES_PER_CLASS` each)."""
  write_png(
    os.path.join(run_dir, SAMPLES_FILE),
    sample_grids.sample_grid(
      model, sample_grids.default_sample_count(model), temperature, seed
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


def file_in_the_way(folder: str | os.PathLike) -> str | None:
  """The absolute path of what keeps `folder` from being a folder: `folder`
  itself or its nearest existing parent when that is not a folder; `None`
  when `folder` is a folder or can be created as one."""
  existing = os.path.abspath(folder)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  return None if os.path.isdir(existing) else existing


def check_new(run_dir: str | os.PathLike, replace: bool = False) -> None:
  """Raises `RunError` unless a new run may start in `run_dir` (see
  `train`); reads, never writes."""
  path = os.path.abspath(run_dir)
  blocking = file_in_the_way(path)
  if blocking is not None:
    where = "is a file" if blocking == path else f"{blocking} is a file"
    raise config_lib.RunError(
      f"{run_dir}: {where}, not a folder; choose another --out."
    )
  if not os.path.exists(path):
    return
  entries = sorted(set(os.listdir(path)) - {LOCK_FILE})
  holds_run = CONFIG_FILE in entries
  kept = written_checkpoints(os.path.join(path, CHECKPOINT_DIR))
  if not holds_run and not replace and (kept or METRICS_FILE in entries):
    what = ", ".join(kept[-3:]) + " in checkpoints/" if kept else METRICS_FILE
    raise config_lib.RunError(
      f"{run_dir}: holds a run ({what}) but no {CONFIG_FILE}; nothing in it "
      f"is replaced or deleted. Put its {CONFIG_FILE} back (from a copy) "
      f"and continue it with --resume, or choose a new --out."
    )
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
    with writing(run_dir, "the run directory's marker"):
      if replace and is_marked_run(run_dir):
        remove_run_files(run_dir)
      _mark(run_dir)
  except OSError as e:
    raise config_lib.RunError(
      f"{run_dir}: cannot write the run directory ({e})."
    ) from e


@contextlib.contextmanager
def worker_folder(
  run_dir: str | os.PathLike, resume: bool, worker: int
) -> Iterator[str]:
  """A private folder for worker `worker` (not the chief) of a multi-worker
  run in `run_dir`, deleted when the block ends.

  A new temporary folder; with `resume`, holding a copy of the run in
  `run_dir` (its marker, `config.json`, `metrics.json`, the state file and
  the complete checkpoints), which is only read. The chief writes nothing
  of the run before every worker has joined its first training step, so
  the copy is the run the chief resumes.

  Raises:
    RunError: with `resume`, `run_dir` holds no run (every worker must be
      given the chief's run directory, on storage they all read).
  """
  if resume and not os.path.isfile(os.path.join(run_dir, CONFIG_FILE)):
    raise config_lib.RunError(
      f"{run_dir}: no {CONFIG_FILE}; every worker of a multi-worker run "
      f"resumes from the chief's run directory: give all workers the same "
      f"--out, on storage that every worker can read."
    )
  private = tempfile.mkdtemp(prefix=f"tfp-emerging-worker{worker}-")
  try:
    if resume:
      for name in (RUN_MARKER, CONFIG_FILE, METRICS_FILE):
        if os.path.isfile(os.path.join(run_dir, name)):
          shutil.copy(os.path.join(run_dir, name), private)
      source = os.path.join(run_dir, CHECKPOINT_DIR)
      target = os.path.join(private, CHECKPOINT_DIR)
      os.makedirs(target)
      files = checkpoint_files(source)
      for name in written_checkpoints(source):
        for path in files[name]:
          shutil.copy(path, target)
      state = os.path.join(source, "checkpoint")
      if os.path.isfile(state):
        shutil.copy(state, target)
    yield private
  finally:
    shutil.rmtree(private, ignore_errors=True)


def remove_debris(run_dir: str | os.PathLike) -> list[str]:
  """Deletes what writes killed half-way left in `run_dir` (call it under
  `locked`): the temporary files of `atomic_writes.write_atomic`
  (`.NAME*.tmp`) and, in `checkpoints/`, those of checkpoint writes
  (`.ckpt-E.tmp*` files and `.ckpt-E.tmp_temp/` folders) and of the state
  file; returns their paths relative to `run_dir`, sorted. None of them is
  ever a checkpoint: a checkpoint is a `ckpt-E.index` with its data
  files."""
  run_dir = os.fspath(run_dir)
  folder = os.path.join(run_dir, CHECKPOINT_DIR)
  patterns = [
    os.path.join(glob.escape(run_dir), "." + glob.escape(name) + "*.tmp")
    for name in RUN_FILES + (RUN_MARKER,)
  ] + [
    os.path.join(glob.escape(folder), ".ckpt-*.tmp*"),
    os.path.join(glob.escape(folder), ".checkpoint*.tmp"),
  ]
  removed = []
  for pattern in patterns:
    for path in glob.glob(pattern):
      if os.path.isdir(path):
        shutil.rmtree(path)
      else:
        os.remove(path)
      removed.append(os.path.relpath(path, run_dir))
  return sorted(removed)
