"""Keras callbacks of a training run, and every write into its run directory.

`tfp_emerging.training.fit` trains with `FlowModel.fit`; what a run promises
happens in these callbacks, at the end of each epoch (Keras calls them in
list order):

* `EpochRecorder`: the epoch's record, `{"epoch", "train_bits_per_dim",
  "test_bits_per_dim", "seconds", "train_seconds", "test_seconds"}`, from
  Keras' epoch logs (no per-batch host synchronisation).
* `NaNGuard`: a NaN or infinite train or test bits/dim raises
  `TrainingDiverged` from `on_epoch_end`, before any later callback runs:
  nothing of that epoch is saved, so the last good checkpoint stays the
  latest.
* `UniformCheck`: flags (`"worse_than_uniform"` in the record) and warns
  about an epoch that ends after the warm-up with a test bits/dim above the
  uniform model's, `log2(num_bins)`.
* `Checkpointer`: a checkpoint of the `RunState` (model, optimizer with its
  step counter, epoch, metrics so far), then `metrics.json` rewritten
  atomically from those metrics.
* `TensorBoardLogger`: the train and test bits/dim curves and a grid of
  samples per epoch, for TensorBoard (`tensorboard --logdir DIR`).

The run directory's files are written here only: `claim_run_dir` (the
marker `RUN_MARKER`), `remove_run_files`, `write_json`, `write_png`,
`write_samples` and `RunState`'s checkpoints.

Ownership: a run directory holds the marker file `.tfp-emerging-run`,
written when the run starts in it (`claim_run_dir`). Only a folder with that
marker is ever cleared (`remove_run_files`), and then only of the files a run
writes (`RUN_FILES`, `checkpoints/`'s checkpoint files and the temporary
files of interrupted writes); anything else in it is left alone.

Atomicity: `RunState.save` writes checkpoint `ckpt-E` under a temporary
prefix (`.ckpt-E.tmp.index` and `.data-*`, with TensorFlow's `SaveV2` and
`MergeV2Checkpoints`, eagerly or through a traced `tf.function` that has
returned when they are complete), deletes an older `ckpt-E` if there is one
(index first), renames the data files to `ckpt-E.data-*` and then, last,
the index to `ckpt-E.index` (`os.replace`, atomic). A checkpoint counts as
written only when its `.index` exists, which is only once all of it is in
place: a process killed at any moment leaves complete checkpoints and
temporary files (deleted by the next `save`), never a half-written
`ckpt-E`. Only then is the state file `checkpoints/checkpoint` (read by
`tf.train.latest_checkpoint` and `tf.train.CheckpointManager`) rewritten,
through a temporary file and a rename, and the checkpoints beyond the newest
`keep_checkpoints` deleted (each one's index first); the state file only
names checkpoints for TensorFlow's readers, `restore` does not depend on it.
Checkpoint files are not synced to disk (`fsync`): after a power cut a
renamed checkpoint may be incomplete on disk, which `restore` detects and
skips. JSON and PNG
files are written to a temporary file in the same folder and renamed over
the old one (`os.replace`), so they are never seen half written. The metrics
travel inside the checkpoint, so a kill between the checkpoint and
`metrics.json` loses nothing: resuming rewrites `metrics.json` from the
checkpoint.

Restoring (`RunState.restore`) tries the checkpoints on disk and in the
state file, newest epoch first, and takes the first one that restores
completely; each one that does not (a truncated or corrupted file: sizes and
per-tensor checksums are verified) is named in a warning. A missing or
unreadable state file is thereby recovered from the `ckpt-*` files. If none
restores, `CorruptCheckpointError`. Restoring writes nothing.

Testing: `TFP_EMERGING_TEST_PAUSE=<point>` in the environment makes the
process print `TFP_EMERGING_TEST_PAUSE: paused at <point>` and then wait
forever at that point, for tests that kill a training process there:
`checkpoint-write:E` (in `RunState.save` of epoch `E`, its data files renamed
into place but not its index) and `epoch-begin:E` (at the start of epoch
`E`, inside `fit`).
"""

import glob
import importlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time

from google.protobuf import text_format
import numpy as np
import tensorflow as tf

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "Checkpointer", "CorruptCheckpointError",
    "DEMO_SAMPLES_FILE", "EpochRecorder", "METRICS_FILE", "NaNGuard",
    "RUN_FILES", "RUN_MARKER", "RunState", "SAMPLES_FILE",
    "TensorBoardLogger", "TensorBoardMissing", "TrainingDiverged",
    "UniformCheck", "claim_run_dir", "image_grid", "is_marked_run",
    "metrics_document", "print_warning", "remove_run_files", "sample_grid",
    "write_json", "write_png", "write_samples"
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
# The environment variable of the test hook (see the module docstring).
PAUSE_ENV = "TFP_EMERGING_TEST_PAUSE"
# A run with at least this many epochs to go after its first checkpoint
# writes them all through a traced function: its one-off trace (a few
# seconds) costs about as much as this many eager writes of the demo's model.
TRACED_SAVE_EPOCHS = 8
# Samples in `samples.png` and in each epoch's TensorBoard grid.
NUM_SAMPLES = 64
NUM_TENSORBOARD_SAMPLES = 16
# Samples per class (one row each) in a class-conditional run's samples.png.
SAMPLES_PER_CLASS = 8

# `tensorflow.keras`: Keras 3, or tf_keras under TF_USE_LEGACY_KERAS=1.
keras = tf.keras


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class TensorBoardMissing(ImportError):
  """`--tensorboard` was asked for, but the `tensorboard` package is missing."""


class CorruptCheckpointError(RuntimeError):
  """A run has checkpoints, but none of them can be restored."""


def _pause_for_tests(point):
  """The test hook: waits forever at `point` if `PAUSE_ENV` names it."""
  if os.environ.get(PAUSE_ENV) == point:
    print(f"{PAUSE_ENV}: paused at {point}", flush=True)
    threading.Event().wait()


def is_marked_run(run_dir):
  """Whether `run_dir` holds the marker of a run directory (`RUN_MARKER`)."""
  return os.path.isfile(os.path.join(run_dir, RUN_MARKER))


def claim_run_dir(run_dir):
  """Creates `run_dir` if needed and marks it as a run directory."""
  os.makedirs(run_dir, exist_ok=True)
  if not is_marked_run(run_dir):
    write_json(os.path.join(run_dir, RUN_MARKER), {
        "written_by": "tfp_emerging",
        "meaning": ("this folder is a training run of tfp-emerging; `tfp-"
                    "emerging demo --out` may replace the run's files in it "
                    "(and only those)")})


def _remove_temporaries(folder, names):
  """Deletes the temporary files `_write_atomic` left for `names` in
  `folder` (a write killed half-way)."""
  for name in names:
    for path in glob.glob(os.path.join(glob.escape(folder),
                                       "." + glob.escape(name) + "*.tmp")):
      os.remove(path)


def remove_run_files(run_dir):
  """Deletes the files a run wrote in the marked run directory `run_dir`.

  Deletes `RUN_FILES`, and in `checkpoints/` the checkpoints, the state file
  and the temporary files of interrupted writes (then `checkpoints/` itself
  if that leaves it empty). Everything else (the marker, a user's notes) is
  kept.

  Raises:
    ValueError: `run_dir` holds no `RUN_MARKER`.
  """
  if not is_marked_run(run_dir):
    raise ValueError(f"{run_dir}: not marked as a run directory "
                     f"({RUN_MARKER}); nothing is deleted.")
  for name in RUN_FILES:
    path = os.path.join(run_dir, name)
    if os.path.isfile(path):
      os.remove(path)
  _remove_temporaries(run_dir, RUN_FILES)
  folder = os.path.join(run_dir, CHECKPOINT_DIR)
  if os.path.isdir(folder):
    _remove_checkpoint_files(folder, keep=())
    state = os.path.join(folder, "checkpoint")
    if os.path.isfile(state):
      os.remove(state)
    _remove_temporaries(folder, ["checkpoint"])
    if not os.listdir(folder):
      os.rmdir(folder)


def write_json(path, value):
  """Writes `value` as JSON to `path` atomically (temporary file, rename)."""
  _write_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def write_png(path, image):
  """Writes a uint8 `[H, W, C]` image as a PNG, atomically."""
  _write_atomic(path, tf.io.encode_png(image).numpy())


def _write_atomic(path, payload):
  """Writes bytes to a temporary file next to `path`, then renames it."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path),
                             suffix=".tmp")
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


def image_grid(images, num_bins, columns=None, scale=None, padding=1):
  """Tiles integer images into one uint8 grid image.

  Args:
    images: integer array `[N, H, W, C]` with values in `0 .. num_bins - 1`,
      `C` in {1, 3}.
    num_bins: grey levels; value `v` is shown as `round(255 v / (num_bins-1))`.
    columns: images per row; default `ceil(sqrt(N))`.
    scale: integer nearest-neighbour magnification; default
      `max(1, 32 // max(H, W))`, so that small images stay visible.
    padding: pixels of black border between tiles (before scaling).

  Returns:
    A uint8 array `[rows * (H + p) + p, columns * (W + p) + p, C] * scale`.
  """
  images = np.asarray(images)
  n, height, width, channels = images.shape
  columns = columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / columns))
  scale = scale or max(1, 32 // max(height, width))
  pixels = np.round(images.astype(np.float64) * 255. /
                    (num_bins - 1)).clip(0, 255).astype(np.uint8)
  grid = np.zeros((rows * (height + padding) + padding,
                   columns * (width + padding) + padding, channels), np.uint8)
  for i in range(n):
    top = padding + (i // columns) * (height + padding)
    left = padding + (i % columns) * (width + padding)
    grid[top:top + height, left:left + width] = pixels[i]
  return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def sample_grid(model, n, temperature, seed, columns=None, classes=None):
  """Samples of the `FlowModel` `model` at `temperature`, tiled.

  Unconditional model: `n` samples, `columns` per row (default
  `ceil(sqrt(n))`). Class-conditional model: one row per class of
  `classes` (default every class, `0..K-1`), `n` samples of that class in
  the row; `columns` must then be `None` or `n`.

  Raises:
    ValueError: `classes` for an unconditional model, class ids outside
      `0..K-1`, or a `columns` that breaks the rows of classes; the message
      begins with the argument's name (the command line puts `--` before
      it).
  """
  if model.num_classes is None:
    if classes is not None:
      raise ValueError("classes: the model is not class-conditional (train "
                       "it with --conditional).")
    samples = model.sample(n, temperature=temperature, seed=seed)
    return image_grid(np.asarray(samples), model.num_bins, columns=columns)
  classes = list(range(model.num_classes) if classes is None else classes)
  wrong = [c for c in classes if not 0 <= c < model.num_classes]
  if wrong or not classes:
    raise ValueError(f"classes must lie in 0..{model.num_classes - 1}; got "
                     f"{','.join(map(str, classes))}.")
  if columns not in (None, n):
    raise ValueError(f"columns: a class-conditional grid has one row per "
                     f"class of {n} samples; columns must be {n}, got "
                     f"{columns}.")
  labels = np.repeat(np.asarray(classes, np.int32), n)
  samples = model.sample(len(labels), temperature=temperature, seed=seed,
                         labels=labels)
  return image_grid(np.asarray(samples), model.num_bins, columns=n)


def default_sample_count(model):
  """`n` of a run's sample grid: `NUM_SAMPLES` for an unconditional model,
  `SAMPLES_PER_CLASS` per class for a class-conditional one."""
  return NUM_SAMPLES if model.num_classes is None else SAMPLES_PER_CLASS


def samples_per_grid(model, total):
  """`n` for `sample_grid` of about `total` images: `total` for an
  unconditional model, `total // K` (at least 1) per class for a
  class-conditional one."""
  if model.num_classes is None:
    return total
  return max(1, total // model.num_classes)


def write_samples(run_dir, model, temperature, seed):
  """Writes `samples.png`: `NUM_SAMPLES` samples of `model`, 8 per row (a
  class-conditional model: one row per class, `SAMPLES_PER_CLASS` each)."""
  write_png(os.path.join(run_dir, SAMPLES_FILE),
            sample_grid(model, default_sample_count(model), temperature,
                        seed))


def print_warning(message):
  """The default `warn`: `warning: message` on standard error."""
  print(f"warning: {message}", file=sys.stderr, flush=True)


_CHECKPOINT_NAME = re.compile(r"ckpt-([0-9]+)")
# What a failed restore raises: TensorFlow's read errors (`DataLossError`,
# `NotFoundError`...), `IndexError` (a truncated file), `ValueError`, and
# `AssertionError` from `assert_consumed` (a checkpoint of another model).
_RESTORE_ERRORS = (tf.errors.OpError, IndexError, ValueError, AssertionError,
                   OSError)


def _epoch_of(name):
  """`E` of a checkpoint name `ckpt-E`, else `None`."""
  match = _CHECKPOINT_NAME.fullmatch(name)
  return int(match.group(1)) if match else None


def _files_by_checkpoint(folder):
  """`{name: [paths]}` of every `ckpt-E.*` file in `folder`."""
  files = {}
  for path in glob.glob(os.path.join(glob.escape(folder), "ckpt-*.*")):
    name = os.path.basename(path).split(".", 1)[0]
    if _epoch_of(name) is not None:
      files.setdefault(name, []).append(path)
  return files


def _written_checkpoints(folder):
  """The names of the checkpoints in `folder` whose index exists (written
  completely, see the module docstring), oldest epoch first."""
  names = [name for name, paths in _files_by_checkpoint(folder).items()
           if os.path.join(folder, name + ".index") in paths]
  return sorted(names, key=_epoch_of)


def _listed_checkpoints(folder):
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
  return [name for name in names if _epoch_of(name) is not None]


def _delete_checkpoint(paths):
  """Deletes one checkpoint's files, its index first (so that it never
  looks complete while half deleted)."""
  for path in sorted(paths, key=lambda p: not p.endswith(".index")):
    os.remove(path)


def _remove_temporary_checkpoints(folder):
  """Deletes what interrupted checkpoint writes left in `folder`."""
  for path in glob.glob(os.path.join(glob.escape(folder), ".ckpt-*.tmp*")):
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)


def _remove_checkpoint_files(folder, keep):
  """Deletes every checkpoint in `folder` not named in `keep`, and the
  leftovers of interrupted writes."""
  for name, paths in _files_by_checkpoint(folder).items():
    if name not in keep:
      _delete_checkpoint(paths)
  _remove_temporary_checkpoints(folder)


def _reason(error):
  """`Type: first line of the message`, at most about 200 characters."""
  lines = str(error).strip().splitlines() or [""]
  text = lines[0] if len(lines[0]) <= 200 else lines[0][:200] + "..."
  return f"{type(error).__name__}: {text}"


class RunState:
  """The checkpointed state of a run: model, optimizer, epoch and metrics.

  `save(epoch, metrics)` writes `checkpoints/ckpt-<epoch>` atomically (see
  the module docstring), rewrites the state file `checkpoints/checkpoint` in
  the layout of `tf.train.CheckpointManager` and keeps the newest
  `keep_checkpoints`. `restore()` restores the newest checkpoint that is
  intact, falling back past corrupt ones. The metrics (a list of per-epoch
  records) travel inside the checkpoint as a JSON string.

  Cost: an eager write reads the few hundred variables one by one (about
  0.5 s for the demo's model on 2 CPU cores); `save(..., traced=True)`
  writes through one `tf.function` instead, which takes milliseconds after
  a one-off trace of a few seconds (`Checkpointer` uses it for runs with
  `TRACED_SAVE_EPOCHS` or more epochs still to go). A restore reads each
  checkpoint it tries once.
  """

  def __init__(self, model, run_dir, keep_checkpoints):
    self.model = model
    self._directory = os.path.abspath(os.path.join(run_dir, CHECKPOINT_DIR))
    self._keep = keep_checkpoints
    # Keras builds the optimizer's slots lazily; build them now (in the
    # model's strategy scope) so that a restore fills them (Adam's moments
    # and step counter) instead of dropping them.
    with model.distribute_strategy.scope():
      model.optimizer.build(model.trainable_weights)
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False,
                               name="epoch")
      self._metrics = tf.Variable("[]", dtype=tf.string, trainable=False,
                                  name="metrics")
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, epoch=self.epoch,
        metrics=self._metrics)
    self.checkpoint.save_counter.assign(0)  # created now: saved every time
    self._traced_write = tf.function(self.checkpoint.write, autograph=False)
    self._latest = None

  @property
  def metrics(self):
    """The per-epoch records stored with the current state."""
    return json.loads(self._metrics.numpy().decode("utf-8"))

  @property
  def latest(self):
    """The path of the checkpoint last restored or saved, or `None`."""
    return self._latest

  def restore(self, warn=print_warning):
    """Restores the newest intact checkpoint; returns its path or `None`.

    The candidates are the checkpoints written completely (their `.index`
    exists) and those the state file names, newest epoch first; the first
    that restores completely (`assert_consumed`) is taken. Writes nothing.

    Args:
      warn: `warn(message)` for each checkpoint that cannot be restored, for
        a missing or unreadable state file, and for a fallback.

    Returns:
      The restored checkpoint's path, or `None` if the run has none.

    Raises:
      CorruptCheckpointError: there are checkpoints, but none restores.
    """
    folder = self._directory
    listed = _listed_checkpoints(folder)
    written = _written_checkpoints(folder)
    candidates = sorted(set(written) | set(listed or ()), key=_epoch_of,
                        reverse=True)
    if not candidates:
      return None
    if listed is None:
      warn(f"the checkpoint state file {os.path.join(folder, 'checkpoint')} "
           f"is missing or unreadable; using the checkpoint files on disk "
           f"({', '.join(written)}).")
    failed = []
    for name in candidates:
      path = os.path.join(folder, name)
      try:
        self.checkpoint.restore(path).assert_consumed()
      except _RESTORE_ERRORS as e:
        failed.append(f"{name} ({_reason(e)})")
        warn(f"checkpoint {path} is corrupt or unreadable ({_reason(e)}); "
             f"skipping it.")
        continue
      if failed:
        warn(f"restored {path} (epoch {int(self.epoch.numpy())}), the newest "
             f"intact checkpoint.")
      self._latest = path
      return path
    raise CorruptCheckpointError(
        f"{folder}: no checkpoint can be restored: {'; '.join(failed)}.")

  def save(self, epoch, metrics, traced=False):
    """Checkpoints the state after `epoch` with `metrics`; returns the path.

    Writes `ckpt-<epoch>` under a temporary prefix (eagerly, or through the
    traced writer if `traced`), renames its data files and then its index
    into place, rewrites the state file naming it the latest (a temporary
    file renamed over the old one), then deletes the checkpoints beyond the
    newest `keep`, any newer than `epoch` (superseded: this run continued
    from an older one) and the leftovers of interrupted writes.
    """
    self.epoch.assign(epoch)
    self._metrics.assign(json.dumps(metrics))
    self.checkpoint.save_counter.assign_add(1)
    folder = self._directory
    name = f"ckpt-{epoch}"
    final = os.path.join(folder, name)
    temporary = os.path.join(folder, f".{name}.tmp")
    os.makedirs(folder, exist_ok=True)
    _remove_temporary_checkpoints(folder)
    write = self._traced_write if traced else self.checkpoint.write
    write(tf.constant(temporary))
    # A checkpoint of the same epoch (written before a fallback) goes first.
    _delete_checkpoint(_files_by_checkpoint(folder).get(name, []))
    for path in glob.glob(glob.escape(temporary) + ".data-*"):
      os.replace(path, final + path[len(temporary):])
    _pause_for_tests(f"checkpoint-write:{epoch}")
    os.replace(temporary + ".index", final + ".index")  # now it counts
    names = [n for n in _written_checkpoints(folder) if _epoch_of(n) < epoch]
    kept = (names + [name])[-self._keep:]
    now = time.time()
    state = tf.compat.v1.train.generate_checkpoint_state_proto(
        folder, name, all_model_checkpoint_paths=kept,
        all_model_checkpoint_timestamps=[now] * len(kept),
        last_preserved_timestamp=now - 1)
    _write_atomic(os.path.join(folder, "checkpoint"),
                  text_format.MessageToString(state).encode("utf-8"))
    _remove_checkpoint_files(folder, keep=kept)
    self._latest = final
    return final


class EpochRecorder(keras.callbacks.Callback):
  """Keeps one record per finished epoch, read from Keras' epoch logs.

  Each record is `{"epoch", "train_bits_per_dim", "test_bits_per_dim",
  "seconds", "train_seconds", "test_seconds"}`: `epoch` counts from 1; train
  is the epoch's running per-image mean loss (`bits_per_dim` in the logs),
  test is `val_bits_per_dim` (the evaluation at the end of the epoch);
  `train_seconds` runs from the epoch's start to the start of its
  evaluation, `test_seconds` is the evaluation, `seconds` both (the
  epoch's wall time up to this callback).

  Attributes:
    records: the records so far: `records` as given (e.g. restored from a
      checkpoint), then one per epoch of this `fit`.
  """

  def __init__(self, records=()):
    super().__init__()
    self.records = list(records)
    self._start = self._test_start = self._test_end = None

  def on_epoch_begin(self, epoch, logs=None):
    del epoch, logs
    self._start = time.perf_counter()
    self._test_start = self._test_end = None

  def on_test_begin(self, logs=None):
    del logs
    if self._start is not None:  # the evaluation inside `fit`
      self._test_start = time.perf_counter()

  def on_test_end(self, logs=None):
    del logs
    if self._test_start is not None:
      self._test_end = time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    now = time.perf_counter()
    test_start = self._test_start or now
    self.records.append({
        "epoch": epoch + 1,
        "train_bits_per_dim": float(logs.get("bits_per_dim", math.nan)),
        "test_bits_per_dim": float(logs.get("val_bits_per_dim", math.nan)),
        "seconds": round(now - self._start, 3),
        "train_seconds": round(test_start - self._start, 3),
        "test_seconds": round((self._test_end or test_start) - test_start, 3),
    })
    self._start = None


class NaNGuard(keras.callbacks.Callback):
  """Raises `TrainingDiverged` at the end of an epoch whose bits/dim are not finite.

  A NaN or infinite loss in any batch makes the epoch's running mean NaN or
  infinite, so the epoch's logs show it without a look at every batch. The
  exception leaves `fit` from `on_epoch_end` before the callbacks after this
  one run: nothing of the epoch is checkpointed.

  Args:
    advice: `advice()` returns what to say about the kept checkpoint and
      what to do next (a string), or `None` for a generic hint.
  """

  def __init__(self, advice=None):
    super().__init__()
    self._advice = advice

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    for key, what in (("bits_per_dim", "the mean training loss"),
                      ("val_bits_per_dim", "the test bits/dim")):
      value = logs.get(key)
      if value is not None and not math.isfinite(float(value)):
        advice = (self._advice() if self._advice is not None else
                  "Lower the learning rate or lengthen the warm-up.")
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}: {what} of the epoch "
            f"is {float(value)}. Nothing of this epoch was saved. {advice}")


def metrics_document(records, num_bins):
  """The contents of `metrics.json` for the per-epoch `records`.

  `{"epochs": records, "uniform_bits_per_dim": log2(num_bins),
  "worse_than_uniform": the last record's flag (false if none)}`.
  """
  last = records[-1] if records else {}
  return {"epochs": list(records),
          "uniform_bits_per_dim": math.log2(num_bins),
          "worse_than_uniform": bool(last.get("worse_than_uniform", False))}


class UniformCheck(keras.callbacks.Callback):
  """Flags epochs that end after the warm-up worse than the uniform model.

  The uniform model gives each of the `num_bins` levels of every pixel the
  same probability: `log2(num_bins)` bits/dim, the least any trained model
  should beat. An epoch ends after the warm-up when the optimizer's step
  counter at its end is at least `warmup_steps`. Its record (the last of
  `recorder`, which must come before this callback) gets
  `"worse_than_uniform"`: true when the epoch ends after the warm-up with a
  test bits/dim above `log2(num_bins)`, else false; a true one is also
  announced through `warn`. Training goes on: this is a warning, not an
  error.

  Args:
    recorder: the run's `EpochRecorder`.
    warmup_steps: the warm-up's length in optimizer steps.
    warn: `warn(message)`.
  """

  def __init__(self, recorder, warmup_steps, warn=print_warning):
    super().__init__()
    self._recorder = recorder
    self._warmup_steps = warmup_steps
    self._warn = warn

  def on_epoch_end(self, epoch, logs=None):
    del logs
    record = self._recorder.records[-1]
    num_bins = self.model.num_bins
    uniform = math.log2(num_bins)
    steps = int(self.model.optimizer.iterations.numpy())
    test = record["test_bits_per_dim"]
    worse = steps >= self._warmup_steps and test > uniform
    record["worse_than_uniform"] = bool(worse)
    if worse:
      self._warn(
          f"epoch {epoch + 1}: the test bits/dim {test:.4f} is above the "
          f"uniform model's {uniform:.4f} (log2 of {num_bins} levels) after "
          f"the warm-up (step {steps} >= {self._warmup_steps}): the model "
          f"is worse than guessing every pixel uniformly. Lower the learning "
          f"rate or lengthen the warm-up.")


class Checkpointer(keras.callbacks.Callback):
  """After every epoch: a checkpoint of `state`, then `metrics.json`.

  Args:
    state: the run's `RunState`.
    recorder: the `EpochRecorder` whose records (all epochs so far) go into
      the checkpoint and `metrics.json`; it must come before this callback.
    run_dir: the run directory.
    log: `log(message)` for the line naming each checkpoint.
  """

  def __init__(self, state, recorder, run_dir, log):
    super().__init__()
    self._state = state
    self._recorder = recorder
    self._run_dir = run_dir
    self._log = log
    self._traced = None

  def on_epoch_begin(self, epoch, logs=None):
    del logs
    _pause_for_tests(f"epoch-begin:{epoch + 1}")

  def on_epoch_end(self, epoch, logs=None):
    del logs
    metrics = self._recorder.records
    if self._traced is None:  # decided once, at the first checkpoint
      epochs_to_go = self.params.get("epochs", 0) - (epoch + 1)
      self._traced = epochs_to_go >= TRACED_SAVE_EPOCHS
    path = self._state.save(epoch + 1, metrics, traced=self._traced)
    write_json(os.path.join(self._run_dir, METRICS_FILE),
               metrics_document(metrics, self._state.model.num_bins))
    record = metrics[-1]
    self._log(f"epoch {record['epoch']}: train "
              f"{record['train_bits_per_dim']:.4f} bits/dim, test "
              f"{record['test_bits_per_dim']:.4f} bits/dim "
              f"({record['train_seconds']:.1f} s + "
              f"{record['test_seconds']:.1f} s test) -> {path}")


def require_tensorboard():
  """Raises `TensorBoardMissing` unless the `tensorboard` package imports.

  TensorFlow writes event files itself, but `tf.summary.scalar` and
  `tf.summary.image` come from the `tensorboard` package (and reading the
  files needs it anyway).
  """
  try:
    importlib.import_module("tensorboard")
  except ImportError as e:
    raise TensorBoardMissing(
        "--tensorboard needs the package tensorboard, which is not "
        "installed: pip install \"tfp_emerging[tensorboard]\" (or pip "
        "install tensorboard).") from e


class TensorBoardLogger(keras.callbacks.Callback):
  """Writes TensorBoard summaries after every epoch.

  `log_dir/train` and `log_dir/test` get the scalar `bits_per_dim` (so that
  TensorBoard draws both curves in one chart), and `log_dir/test` the image
  `samples`: a grid of `NUM_TENSORBOARD_SAMPLES` samples at `temperature`
  (a class-conditional model: one row per class, `samples_per_grid`)
  (the same latents every epoch, from `seed`). The step is the epoch number
  (from 1), so a resumed run continues the curves.

  Raises:
    TensorBoardMissing: on construction, without the `tensorboard` package.
  """

  def __init__(self, log_dir, temperature, seed):
    super().__init__()
    require_tensorboard()
    self._writers = {split: tf.summary.create_file_writer(
        os.path.join(log_dir, split)) for split in ("train", "test")}
    self._temperature = temperature
    self._seed = seed

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    step = epoch + 1
    for split, key in (("train", "bits_per_dim"),
                       ("test", "val_bits_per_dim")):
      if key in logs:
        with self._writers[split].as_default():
          tf.summary.scalar("bits_per_dim", float(logs[key]), step=step)
    grid = sample_grid(
        self.model, samples_per_grid(self.model, NUM_TENSORBOARD_SAMPLES),
        self._temperature, self._seed)
    with self._writers["test"].as_default():
      tf.summary.image("samples", grid[None], step=step)
    for writer in self._writers.values():
      writer.flush()

  def on_train_end(self, logs=None):
    del logs
    for writer in self._writers.values():
      writer.close()
