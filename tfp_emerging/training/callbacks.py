"""The Keras callbacks of a training run, called at the end of each epoch.

`tfp_emerging.training.fit` trains with `FlowModel.fit`; what a run promises
happens in these callbacks (Keras calls them in list order), each reading
Keras' epoch logs (no per-batch host synchronisation):

* `EpochRecorder`: the epoch's record, `{"epoch", "train_bits_per_dim",
  "test_bits_per_dim", "seconds", "train_seconds", "test_seconds"}`. Keras'
  `History` keeps the logs but not the time of training and of evaluation
  apart, and starts empty on every `fit`, while a resumed run's records
  continue those restored from its checkpoint.
* `NaNGuard`: a NaN or infinite train or test bits/dim raises
  `TrainingDiverged` from `on_epoch_end`, before any later callback runs:
  nothing of that epoch is saved, so the last good checkpoint stays the
  latest. Keras' `TerminateOnNaN` looks at the training loss of each batch
  only (a host synchronisation per step, the test loss unchecked) and stops
  `fit` quietly, so a script cannot tell a diverged run from a finished one.
* `UniformCheck`: flags (`"worse_than_uniform"` in the record) and warns
  about an epoch that ends after the warm-up with a test bits/dim above the
  uniform model's, `log2(num_bins)`. Keras has no such check.
* `Checkpointer`: a checkpoint of the `RunState` (model, optimizer with its
  step counter, epoch, metrics so far), then `metrics.json` rewritten
  atomically from those metrics, and the epoch's one log line. Keras'
  `ModelCheckpoint` writes the model (and optimizer) in place, not
  atomically, without the epoch and metrics, and cannot fall back past a
  corrupt file on restore (`tfp_emerging.training.checkpoints`).
* `StepCheckpointer`: a step checkpoint every `checkpoint_every` steps
  inside an epoch, and on SIGINT or SIGTERM (`stopping`) one at the step
  where the signal came, then the stop. Keras' `BackupAndRestore` saves
  mid-epoch too, but not atomically, and cannot fall back past a corrupt
  file.
* `TensorBoardLogger`: the train and test bits/dim curves in one chart and a
  grid of samples per epoch, for TensorBoard (`tensorboard --logdir DIR`).
  Keras' `TensorBoard` writes its own scalar names per split (no sample
  images) and steps that restart on resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import importlib
import math
import os
import time

import tensorflow as tf
from tensorflow import keras

from tfp_emerging.training import checkpoints
from tfp_emerging.training import run_dir as run_dir_lib
from tfp_emerging.training import sample_grids
from tfp_emerging.training import stopping

__all__ = [
  "Checkpointer",
  "EpochRecorder",
  "NaNGuard",
  "StepCheckpointer",
  "TensorBoardLogger",
  "TensorBoardMissing",
  "TrainingDiverged",
  "UniformCheck",
  "require_tensorboard",
]

# A run with at least this many epochs to go after its first checkpoint
# writes them all through a traced function: its one-off trace (a few
# seconds) costs about as much as this many eager writes of the demo's model.
TRACED_SAVE_EPOCHS = 8
# Samples in each epoch's TensorBoard grid.
NUM_TENSORBOARD_SAMPLES = 16

# `tensorflow.keras`: Keras 3, or tf_keras under TF_USE_LEGACY_KERAS=1.


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class TensorBoardMissing(ImportError):
  """`--tensorboard` was asked for, but the `tensorboard` package is missing."""


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

  def __init__(
    self,
    records: Iterable[dict] = (),
    initial_step: int = 0,
    initial_bits: float = 0.0,
  ):
    super().__init__()
    self.records = list(records)
    self._start: float | None = None
    self._test_start: float | None = None
    self._test_end: float | None = None
    # A resumed step checkpoint's steps into the first epoch, and their
    # mean training bits/dim: folded into that epoch's train figure.
    self._carry = (initial_step, initial_bits)

  def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
    del epoch, logs
    self._start = time.perf_counter()
    self._test_start = self._test_end = None

  def on_test_begin(self, logs: dict | None = None) -> None:
    del logs
    if self._start is not None:  # the evaluation inside `fit`
      self._test_start = time.perf_counter()

  def on_test_end(self, logs: dict | None = None) -> None:
    del logs
    if self._test_start is not None:
      self._test_end = time.perf_counter()

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
    logs = logs or {}
    now = time.perf_counter()
    start = now if self._start is None else self._start
    test_start = self._test_start or now
    self.records.append(
      {
        "epoch": epoch + 1,
        "train_bits_per_dim": self._train_bits(logs),
        "test_bits_per_dim": float(logs.get("val_bits_per_dim", math.nan)),
        "seconds": round(now - start, 3),
        "train_seconds": round(test_start - start, 3),
        "test_seconds": round((self._test_end or test_start) - test_start, 3),
      }
    )
    self._start = None

  def _train_bits(self, logs):
    """The epoch's mean training bits/dim: Keras' mean of this `fit`'s
    steps, weighted with the steps carried from a step checkpoint (every
    batch is full, so a per-step weight is a per-image one)."""
    bits = float(logs.get("bits_per_dim", math.nan))
    carried, carried_bits = self._carry
    self._carry = (0, 0.0)
    if not carried:
      return bits
    steps = self.params.get("steps") or 0
    return (carried * carried_bits + steps * bits) / (carried + steps)


class NaNGuard(keras.callbacks.Callback):
  """Raises `TrainingDiverged` at the end of an epoch whose bits/dim are not
  finite.

  A NaN or infinite loss in any batch makes the epoch's running mean NaN or
  infinite, so the epoch's logs show it without a look at every batch. The
  exception leaves `fit` from `on_epoch_end` before the callbacks after this
  one run: nothing of the epoch is checkpointed.

  Args:
    advice: `advice()` returns what to say about the kept checkpoint and
      what to do next (a string), or `None` for a generic hint.
  """

  def __init__(self, advice: Callable[[], str] | None = None):
    super().__init__()
    self._advice = advice

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
    logs = logs or {}
    for key, what in (
      ("bits_per_dim", "the mean training loss"),
      ("val_bits_per_dim", "the test bits/dim"),
    ):
      value = logs.get(key)
      if value is not None and not math.isfinite(float(value)):
        advice = (
          self._advice()
          if self._advice is not None
          else "Lower the learning rate or lengthen the warm-up."
        )
        raise TrainingDiverged(
          f"training diverged in epoch {epoch + 1}: {what} of the epoch "
          f"is {float(value)}. Nothing of this epoch was saved. {advice}"
        )


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

  def __init__(
    self,
    recorder: EpochRecorder,
    warmup_steps: int,
    warn: Callable[[str], None],
  ):
    super().__init__()
    self._recorder = recorder
    self._warmup_steps = warmup_steps
    self._warn = warn

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
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
        f"rate or lengthen the warm-up."
      )


class Checkpointer(keras.callbacks.Callback):
  """After every epoch: a checkpoint of `state`, then `metrics.json`.

  Args:
    state: the run's `RunState`.
    recorder: the `EpochRecorder` whose records (all epochs so far) go into
      the checkpoint and `metrics.json`; it must come before this callback.
    run_dir: the run directory.
    log: `log(message)` for the line naming each checkpoint.
  """

  def __init__(
    self,
    state: checkpoints.RunState,
    recorder: EpochRecorder,
    run_dir: str | os.PathLike,
    log: Callable[[str], None],
  ):
    super().__init__()
    self._state = state
    self._recorder = recorder
    self._run_dir = run_dir
    self._log = log
    self._traced: bool | None = None

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
    del logs
    metrics = self._recorder.records
    if self._traced is None:  # decided once, at the first checkpoint
      epochs_to_go = self.params.get("epochs", 0) - (epoch + 1)
      self._traced = bool(epochs_to_go >= TRACED_SAVE_EPOCHS)
    path = self._state.save(epoch + 1, metrics, traced=self._traced)
    run_dir_lib.write_metrics(
      self._run_dir, metrics, self._state.model.num_bins
    )
    record = metrics[-1]
    self._log(
      f"epoch {record['epoch']}: train "
      f"{record['train_bits_per_dim']:.4f} bits/dim, test "
      f"{record['test_bits_per_dim']:.4f} bits/dim "
      f"({record['train_seconds']:.1f} s + "
      f"{record['test_seconds']:.1f} s test) -> {path}"
    )


class StepCheckpointer(keras.callbacks.Callback):
  """Step checkpoints inside an epoch, and the stop on SIGINT or SIGTERM.

  After step `S` of an epoch (`S` counted from the epoch's start, also in
  an epoch resumed from a step checkpoint), when `S` is a multiple of
  `every` or a stop was requested (`stopping.requested`), and the epoch has
  steps to go: `state.save(E, metrics, step=S, step_bits=mean)`, the step
  checkpoint `ckpt-E-S` (`E` finished epochs, `mean` the epoch's mean
  training bits/dim so far). On a requested stop it then raises
  `stopping.Interrupted` naming that checkpoint. A stop requested in the
  epoch's last step or its evaluation is raised at the epoch's end, after
  its checkpoint (list this callback after the `Checkpointer`). The running
  mean is read from Keras' logs only at a save.

  Args:
    state: the run's `RunState`, restored (its `step` and `step_bits` are
      the first epoch's steps done before this `fit`).
    recorder: the run's `EpochRecorder` (the finished epochs' records).
    every: steps between step checkpoints, or `None` for none (only on a
      stop).
    log: `log(message)` for the line naming each step checkpoint.
  """

  def __init__(
    self,
    state: checkpoints.RunState,
    recorder: EpochRecorder,
    every: int | None,
    log: Callable[[str], None],
  ):
    super().__init__()
    self._state = state
    self._recorder = recorder
    self._every = every
    self._log = log
    self._carry = (int(state.step.numpy()), float(state.step_bits.numpy()))
    self._epoch = 0
    self._offset = 0

  def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
    del logs
    self._epoch = epoch
    self._offset, self._offset_bits = self._carry
    self._carry = (0, 0.0)

  def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
    step = self._offset + batch + 1
    last = self._offset + (self.params.get("steps") or 0)
    stop = stopping.requested()
    every = self._every and step % self._every == 0
    if step >= last or not (stop or every):
      return
    done = batch + 1  # the steps of this `fit` in this epoch
    bits = float((logs or {}).get("bits_per_dim", math.nan))
    mean = (self._offset * self._offset_bits + done * bits) / step
    path = self._state.save(
      self._epoch, self._recorder.records, step=step, step_bits=mean
    )
    self._log(f"epoch {self._epoch + 1}, step {step}: -> {path}")
    if stop:
      stopping.take_request()
      raise stopping.Interrupted(stop, saved=path)

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
    del epoch, logs
    stop = stopping.take_request()
    if stop:
      raise stopping.Interrupted(stop, saved=self._state.latest)


def require_tensorboard() -> None:
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
      'installed: pip install "tfp_emerging[tensorboard]" (or pip '
      "install tensorboard)."
    ) from e


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

  def __init__(self, log_dir: str | os.PathLike, temperature: float, seed: int):
    super().__init__()
    require_tensorboard()
    self._writers = {
      split: tf.summary.create_file_writer(os.path.join(log_dir, split))
      for split in ("train", "test")
    }
    self._temperature = temperature
    self._seed = seed

  def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
    logs = logs or {}
    step = epoch + 1
    for split, key in (("train", "bits_per_dim"), ("test", "val_bits_per_dim")):
      if key in logs:
        with self._writers[split].as_default():
          tf.summary.scalar("bits_per_dim", float(logs[key]), step=step)
    grid = sample_grids.sample_grid(
      self.model,
      sample_grids.samples_per_grid(self.model, NUM_TENSORBOARD_SAMPLES),
      self._temperature,
      self._seed,
    )
    with self._writers["test"].as_default():
      tf.summary.image("samples", grid[None], step=step)
    for writer in self._writers.values():
      writer.flush()

  def on_train_end(self, logs: dict | None = None) -> None:
    del logs  # a run resumed mid-epoch calls `fit` twice: flush, not close
    for writer in self._writers.values():
      writer.flush()
