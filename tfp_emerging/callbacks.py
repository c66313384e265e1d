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
* `Checkpointer`: an atomic `tf.train.CheckpointManager` checkpoint of the
  `RunState` (model, optimizer with its step counter, epoch, metrics so
  far), then `metrics.json` rewritten atomically from those metrics.
* `TensorBoardLogger`: the train and test bits/dim curves and a grid of
  samples per epoch, for TensorBoard (`tensorboard --logdir DIR`).

The run directory's files are written here only: `write_json`, `write_png`,
`write_samples` and `RunState`'s checkpoints.

Atomicity: a checkpoint is written under a temporary prefix (`ckpt-E_temp/`)
and renamed into place when complete (TensorFlow's `SaveV2` and
`MergeV2Checkpoints`, as in `Checkpoint.save`); only then is the state file
`checkpoints/checkpoint` (the one `tf.train.CheckpointManager` and
`tf.train.latest_checkpoint` read) rewritten, through a temporary file and a
rename. The latest checkpoint is therefore always complete. JSON and
PNG files are written to a temporary file in the same folder and renamed over
the old one (`os.replace`), so they are never seen half written. The metrics
travel inside the checkpoint, so a kill between the checkpoint and
`metrics.json` loses nothing: resuming rewrites `metrics.json` from the
checkpoint.
"""

import glob
import importlib
import json
import math
import os
import tempfile
import time

from google.protobuf import text_format
import numpy as np
import tensorflow as tf

__all__ = [
    "CHECKPOINT_DIR", "CONFIG_FILE", "Checkpointer", "EpochRecorder",
    "METRICS_FILE", "NaNGuard", "RunState", "SAMPLES_FILE",
    "TensorBoardLogger", "TensorBoardMissing", "TrainingDiverged",
    "image_grid", "sample_grid", "write_json", "write_png", "write_samples"
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
CHECKPOINT_DIR = "checkpoints"
# A run with at least this many epochs to go after its first checkpoint
# writes them all through a traced function: its one-off trace (a few
# seconds) costs about as much as this many eager writes of the demo's model.
TRACED_SAVE_EPOCHS = 8
# Samples in `samples.png` and in each epoch's TensorBoard grid.
NUM_SAMPLES = 64
NUM_TENSORBOARD_SAMPLES = 16

# `tensorflow.keras`: Keras 3, or tf_keras under TF_USE_LEGACY_KERAS=1.
keras = tf.keras


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class TensorBoardMissing(ImportError):
  """`--tensorboard` was asked for, but the `tensorboard` package is missing."""


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


def sample_grid(model, n, temperature, seed, columns=None):
  """`n` samples of the `FlowModel` `model` at `temperature`, tiled."""
  samples = model.sample(n, temperature=temperature, seed=seed)
  return image_grid(np.asarray(samples), model.num_bins, columns=columns)


def write_samples(run_dir, model, temperature, seed):
  """Writes `samples.png`: `NUM_SAMPLES` samples of `model`, 8 per row."""
  write_png(os.path.join(run_dir, SAMPLES_FILE),
            sample_grid(model, NUM_SAMPLES, temperature, seed))


class RunState:
  """The checkpointed state of a run: model, optimizer, epoch and metrics.

  `save(epoch, metrics)` writes `checkpoints/ckpt-<epoch>` and keeps the
  newest `keep_checkpoints`, in the layout of `tf.train.CheckpointManager`
  (`manager`, which `restore()` and `latest` read). The metrics (a list of
  per-epoch records) travel inside the checkpoint as a JSON string.

  Cost: an eager write reads the few hundred variables one by one (about
  0.5 s for the demo's model on 2 CPU cores); `save(..., traced=True)`
  writes through one `tf.function` instead, which takes milliseconds after
  a one-off trace of a few seconds (`Checkpointer` uses it for runs with
  `TRACED_SAVE_EPOCHS` or more epochs still to go).
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
    self.manager = self._read_manager()

  def _read_manager(self):
    return tf.train.CheckpointManager(self.checkpoint, self._directory,
                                      max_to_keep=self._keep,
                                      checkpoint_name="ckpt")

  @property
  def metrics(self):
    """The per-epoch records stored with the current state."""
    return json.loads(self._metrics.numpy().decode("utf-8"))

  @property
  def latest(self):
    """The path of the latest checkpoint, or `None`."""
    return self.manager.latest_checkpoint

  def restore(self):
    """Restores the latest checkpoint; returns its path or `None`."""
    path = self.manager.latest_checkpoint
    if path:
      self.checkpoint.restore(path).assert_consumed()
    return path

  def save(self, epoch, metrics, traced=False):
    """Checkpoints the state after `epoch` with `metrics`; returns the path.

    Writes `ckpt-<epoch>` (complete once its files are renamed into place;
    eagerly, or through the traced writer if `traced`), then the state file
    naming it the latest (a temporary file renamed over the old one), then
    deletes the checkpoints beyond the newest `keep`.
    """
    self.epoch.assign(epoch)
    self._metrics.assign(json.dumps(metrics))
    self.checkpoint.save_counter.assign_add(1)
    name = f"ckpt-{epoch}"
    os.makedirs(self._directory, exist_ok=True)
    write = self._traced_write if traced else self.checkpoint.write
    write(tf.constant(os.path.join(self._directory, name)))
    names = [os.path.basename(p) for p in self.manager.checkpoints]
    names = [n for n in names if n != name] + [name]
    now = time.time()
    state = tf.compat.v1.train.generate_checkpoint_state_proto(
        self._directory, name, all_model_checkpoint_paths=names[-self._keep:],
        all_model_checkpoint_timestamps=[now] * len(names[-self._keep:]),
        last_preserved_timestamp=now - 1)
    _write_atomic(os.path.join(self._directory, "checkpoint"),
                  text_format.MessageToString(state).encode("utf-8"))
    for old in names[:-self._keep]:
      for path in glob.glob(os.path.join(self._directory, old + ".*")):
        os.remove(path)
    self.manager = self._read_manager()
    return self.manager.latest_checkpoint


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

  def on_epoch_end(self, epoch, logs=None):
    del logs
    metrics = self._recorder.records
    if self._traced is None:  # decided once, at the first checkpoint
      epochs_to_go = self.params.get("epochs", 0) - (epoch + 1)
      self._traced = epochs_to_go >= TRACED_SAVE_EPOCHS
    path = self._state.save(epoch + 1, metrics, traced=self._traced)
    write_json(os.path.join(self._run_dir, METRICS_FILE), {"epochs": metrics})
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
    grid = sample_grid(self.model, NUM_TENSORBOARD_SAMPLES,
                       self._temperature, self._seed)
    with self._writers["test"].as_default():
      tf.summary.image("samples", grid[None], step=step)
    for writer in self._writers.values():
      writer.flush()

  def on_train_end(self, logs=None):
    del logs
    for writer in self._writers.values():
      writer.close()
