"""The checkpointed state of a run (`RunState`), written atomically.

`RunState` holds a run's model, optimizer (with its step counter, which
drives the warm-up), epoch and metrics in one `tf.train.Checkpoint`.

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
skips. The metrics travel inside the checkpoint, so a kill between the
checkpoint and `metrics.json` loses nothing: resuming rewrites
`metrics.json` from the checkpoint.

Restoring (`RunState.restore`) tries the checkpoints on disk and in the
state file, newest epoch first, and takes the first one that restores
completely; each one that does not (a truncated or corrupted file: sizes and
per-tensor checksums are verified) is named in a warning. A missing or
unreadable state file is thereby recovered from the `ckpt-*` files. If none
restores, `CorruptCheckpointError`. Restoring writes nothing.

Identity: every checkpoint also stores the fields of the run's config that
define its model (`RunConfig.model_identity`: architecture, `num_bins`,
image shape, classes). Restoring compares them with the config first, and a
config that differs (an edited `config.json`) raises `ConfigMismatch`,
naming each field, instead of calling intact checkpoints corrupt; so does a
restore where every checkpoint fails only by not fitting the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import glob
import json
import os
import time
from typing import Any

from google.protobuf import text_format
import tensorflow as tf

from tfp_emerging.keras import FlowModel
from tfp_emerging.training import atomic_writes
from tfp_emerging.training import checkpoint_files
from tfp_emerging.training import config as config_lib
from tfp_emerging.training import run_dir as run_dir_lib

__all__ = ["ConfigMismatch", "CorruptCheckpointError", "RunState", "restore"]


class CorruptCheckpointError(RuntimeError):
  """A run has checkpoints, but none of them can be restored."""


class ConfigMismatch(config_lib.RunError):
  """The run's `config.json` describes another model than its checkpoints
  hold (it was edited after they were written); they are intact."""


# What a failed restore raises: TensorFlow's read errors (`DataLossError`,
# `NotFoundError`...), `IndexError` (a truncated file), `ValueError`, and
# `AssertionError` from `assert_consumed` (a checkpoint of another model).
_RESTORE_ERRORS = (
  tf.errors.OpError,
  IndexError,
  ValueError,
  AssertionError,
  OSError,
)


_MISMATCH_ADVICE = (
  "The checkpoints are intact and nothing was restored, rewritten or "
  "deleted: put back the config.json values they were trained with, or "
  "start a new run with another --out."
)


def _is_misfit(error):
  """Whether a failed restore says the checkpoint holds another model
  (variables unmatched or of other shapes), not that it is damaged."""
  return isinstance(error, AssertionError) or (
    isinstance(error, ValueError) and "shape" in str(error)
  )


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
  `callbacks.TRACED_SAVE_EPOCHS` or more epochs still to go). A restore reads
  each checkpoint it tries once.
  """

  def __init__(
    self,
    model: FlowModel,
    run_dir: str | os.PathLike,
    keep_checkpoints: int,
    identity: Mapping[str, Any] | None = None,
  ):
    """`identity`: what defines the model (`RunConfig.model_identity`),
    stored in every checkpoint and compared on restore (`ConfigMismatch`);
    `None` stores and checks nothing."""
    self.model = model
    self._directory = os.path.abspath(
      os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)
    )
    self._keep = keep_checkpoints
    # Keras builds the optimizer's slots lazily; build them now (in the
    # model's strategy scope) so that a restore fills them (Adam's moments
    # and step counter) instead of dropping them.
    with model.distribute_strategy.scope():
      model.optimizer.build(model.trainable_weights)
      self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
      # A step checkpoint's steps into epoch `epoch + 1`, and the mean
      # training bits/dim of those steps (0 after a finished epoch).
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
      self.step_bits = tf.Variable(
        0.0, dtype=tf.float64, trainable=False, name="step_bits"
      )
    # Outside the scope: `MultiWorkerMirroredStrategy` cannot broadcast the
    # initial value of a string variable to the other workers; every worker
    # sets it (`save`) from the same records, and `restore` reads it.
    self._metrics = tf.Variable(
      "[]", dtype=tf.string, trainable=False, name="metrics"
    )
    self._wanted = dict(identity or {})
    self._identity = tf.Variable(  # outside the strategy: a plain string
      json.dumps(self._wanted, sort_keys=True),
      dtype=tf.string,
      trainable=False,
      name="identity",
    )
    self.checkpoint = tf.train.Checkpoint(
      model=model,
      optimizer=model.optimizer,
      epoch=self.epoch,
      step=self.step,
      step_bits=self.step_bits,
      metrics=self._metrics,
      identity=self._identity,
    )
    self.checkpoint.save_counter.assign(0)  # created now: saved every time
    self._traced_write = tf.function(self.checkpoint.write, autograph=False)
    self._latest: str | None = None

  @property
  def metrics(self) -> list[dict]:
    """The per-epoch records stored with the current state."""
    return json.loads(self._metrics.numpy().decode("utf-8"))

  @property
  def latest(self) -> str | None:
    """The path of the checkpoint last restored or saved, or `None`."""
    return self._latest

  def restore(self, warn: Callable[[str], None]) -> str | None:
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
      ConfigMismatch: a checkpoint stores another model identity than this
        state's, or every checkpoint fails only by not fitting the model
        (unmatched variables, other shapes): `config.json` was edited.
    """
    folder = self._directory
    listed = checkpoint_files.listed_checkpoints(folder)
    written = checkpoint_files.written_checkpoints(folder)
    candidates = sorted(
      set(written) | set(listed or ()),
      key=checkpoint_files.position_of,
      reverse=True,
    )
    if not candidates:
      return None
    if listed is None:
      warn(
        f"the checkpoint state file {os.path.join(folder, 'checkpoint')} "
        f"is missing or unreadable; using the checkpoint files on disk "
        f"({', '.join(written)})."
      )
    failed = []
    misfits = []
    for name in candidates:
      path = os.path.join(folder, name)
      self._check_identity(path)
      try:
        self.checkpoint.restore(path).assert_consumed()
      except _RESTORE_ERRORS as e:
        failed.append(f"{name} ({_reason(e)})")
        misfits.append(_is_misfit(e))
        what = (
          "does not fit the model config.json describes"
          if misfits[-1]
          else "is corrupt or unreadable"
        )
        warn(f"checkpoint {path} {what} ({_reason(e)}); skipping it.")
        continue
      if failed:
        warn(
          f"restored {path} (epoch {int(self.epoch.numpy())}), the newest "
          f"intact checkpoint."
        )
      self._latest = path
      return path
    if all(misfits):
      raise ConfigMismatch(
        f"{self._config_path()} and the checkpoints in {folder} disagree: "
        f"no checkpoint fits the model config.json describes "
        f"({failed[0]}). {_MISMATCH_ADVICE}"
      )
    raise CorruptCheckpointError(
      f"{folder}: no checkpoint can be restored: {'; '.join(failed)}."
    )

  def _config_path(self):
    return os.path.join(
      os.path.dirname(self._directory), run_dir_lib.CONFIG_FILE
    )

  def _check_identity(self, path):
    """`ConfigMismatch` if the checkpoint `path` stores an identity that
    differs from this state's; nothing if either is empty or the checkpoint
    cannot be read (restoring it then says why)."""
    if not self._wanted:
      return
    try:
      reader = tf.train.load_checkpoint(path)
      stored = json.loads(
        reader.get_tensor("identity/.ATTRIBUTES/VARIABLE_VALUE").decode()
      )
    except (tf.errors.OpError, ValueError, KeyError, OSError):
      return
    if not isinstance(stored, dict) or not stored:
      return
    differ = [
      f"{name} {self._wanted.get(name)!r} in config.json, "
      f"{stored.get(name)!r} in the checkpoints"
      for name in sorted(set(stored) | set(self._wanted))
      if stored.get(name) != self._wanted.get(name)
    ]
    if differ:
      raise ConfigMismatch(
        f"{self._config_path()} and the checkpoints disagree "
        f"({'; '.join(differ)}; checkpoint {os.path.basename(path)}): "
        f"config.json was changed after they were written. "
        f"{_MISMATCH_ADVICE}"
      )

  def save(
    self,
    epoch: int,
    metrics: list[dict],
    traced: bool = False,
    step: int = 0,
    step_bits: float = 0.0,
  ) -> str:
    """Checkpoints the state after `epoch` with `metrics`; returns the path.

    With `step > 0`, a step checkpoint `ckpt-<epoch>-<step>`: `step` steps
    into epoch `epoch + 1`, whose mean training bits/dim so far is
    `step_bits`. Writes the checkpoint under a temporary prefix (eagerly, or
    through the traced writer if `traced`), renames its data files and then
    its index into place, rewrites the state file naming it the latest (a
    temporary file renamed over the old one), then deletes the epoch
    checkpoints beyond the newest `keep`, every other step checkpoint, any
    checkpoint newer than this one (superseded: this run continued from an
    older one) and the leftovers of interrupted writes.

    Raises:
      atomic_writes.DiskFull, atomic_writes.ReadOnlyRun: the device is full or
        read-only; the temporary files are removed, the checkpoints written
        before are kept.
    """
    folder = self._directory
    name = f"ckpt-{epoch}" + (f"-{step}" if step else "")
    with atomic_writes.writing(os.path.join(folder, name), "a checkpoint"):
      try:
        return self._save(folder, name, epoch, metrics, traced, step, step_bits)
      except BaseException:
        if os.path.isdir(folder):
          checkpoint_files.remove_temporary_checkpoints(folder)
        raise

  def _save(self, folder, name, epoch, metrics, traced, step, step_bits):
    self.epoch.assign(epoch)
    self.step.assign(step)
    self.step_bits.assign(step_bits)
    self._metrics.assign(json.dumps(metrics))
    self.checkpoint.save_counter.assign_add(1)
    final = os.path.join(folder, name)
    temporary = os.path.join(folder, f".{name}.tmp")
    os.makedirs(folder, exist_ok=True)
    checkpoint_files.remove_temporary_checkpoints(folder)
    write = self._traced_write if traced else self.checkpoint.write
    write(tf.constant(temporary))
    # A checkpoint of the same epoch (written before a fallback) goes first.
    checkpoint_files.delete_checkpoint(
      checkpoint_files.checkpoint_files(folder).get(name, [])
    )
    for path in glob.glob(glob.escape(temporary) + ".data-*"):
      os.replace(path, final + path[len(temporary) :])
    os.replace(temporary + ".index", final + ".index")  # now it counts
    position = checkpoint_files.position_of(name)
    names = [
      n
      for n in checkpoint_files.written_checkpoints(folder)
      if checkpoint_files.position_of(n) < position
      and checkpoint_files.position_of(n)[1] == 0
    ]
    kept = (names + [name])[-self._keep :]
    now = time.time()
    state = tf.compat.v1.train.generate_checkpoint_state_proto(
      folder,
      name,
      all_model_checkpoint_paths=kept,
      all_model_checkpoint_timestamps=[now] * len(kept),
      last_preserved_timestamp=now - 1,
    )
    atomic_writes.write_atomic(
      os.path.join(folder, "checkpoint"),
      text_format.MessageToString(state).encode("utf-8"),
      "the checkpoint state file",
    )
    checkpoint_files.remove_checkpoint_files(folder, keep=kept)
    self._latest = final
    return final


def restore(
  state: RunState, run_dir: str | os.PathLike, warn: Callable[[str], None]
) -> str | None:
  """`state.restore(warn)`, with advice added to a `CorruptCheckpointError`;
  also that error if the run has no checkpoint but `metrics.json` records
  finished epochs (so that nothing trains over them silently)."""
  advice = (
    f"Start a new run with another --out, or delete "
    f"{os.path.join(run_dir, run_dir_lib.CHECKPOINT_DIR)} and "
    f"{os.path.join(run_dir, run_dir_lib.METRICS_FILE)} to train "
    f"this one again from epoch 1 (--resume)."
  )
  try:
    path = state.restore(warn)
  except CorruptCheckpointError as e:
    raise CorruptCheckpointError(f"{e} {advice}") from e
  recorded = run_dir_lib.recorded_epochs(run_dir)
  if path is None and recorded:
    raise CorruptCheckpointError(
      f"{run_dir}: {run_dir_lib.METRICS_FILE} records {recorded} finished "
      f"epochs, but {run_dir_lib.CHECKPOINT_DIR}/ holds no checkpoint of "
      f"them. {advice}"
    )
  return path
