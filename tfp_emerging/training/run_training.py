"""Training a run in a run directory: `train`, `resume`.

A run is the one training path (`tfp_emerging.training.fit`) with a run
directory (`tfp_emerging.training.run_dir`): the options, the data and the
model are checked before anything is written; a checkpoint follows every
finished epoch; `resume` continues from the newest intact checkpoint with
the same batches an uninterrupted run would have seen. The layout of a run
directory, the exit statuses of the command line and what happens on a
divergence or a corrupt checkpoint are described once, in the docs' page
"Run directories". Using a trained run (evaluating, sampling, exporting) is
`tfp_emerging.training.trained_runs`; what a run prints,
`tfp_emerging.training.console`.

Resuming restores the newest intact checkpoint, with a warning for each
corrupt one, before anything in the run directory is rewritten; a missing
state file is recovered from the `ckpt-*` files. `CorruptCheckpointError`
when the run has checkpoints (or `metrics.json` records finished epochs)
but none can be restored.

Divergence: a NaN or infinite train or test bits/dim in an epoch stops
training with `TrainingDiverged` before anything of that epoch is saved, so
the last good checkpoint stays the latest; the message says how to resume
from it with a lower learning rate. An epoch that ends after the warm-up
with a test bits/dim above the uniform model's (`log2(num_bins)`) is
flagged `worse_than_uniform` and warned about, and training goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import contextlib
import dataclasses
import os
from typing import Any

import tensorflow as tf

from tfp_emerging import distribute
from tfp_emerging.training import callbacks as callbacks_lib
from tfp_emerging.training import checkpoints
from tfp_emerging.training import loop
from tfp_emerging.training import run_dir as run_dir_lib
from tfp_emerging.training import stopping
from tfp_emerging.training.config import ArgumentError
from tfp_emerging.training.config import RunConfig
from tfp_emerging.training.config import RunError
from tfp_emerging.training.console import keras_verbosity
from tfp_emerging.training.console import print_line
from tfp_emerging.training.console import print_warning
from tfp_emerging.training.console import start_line

__all__ = ["resume", "train"]


def _tensorboard_logger(folder, config):
  if folder is None:
    return None
  blocking = run_dir_lib.file_in_the_way(folder)
  if blocking is not None:
    same = blocking == os.path.abspath(folder)
    where = "is a file" if same else f"{blocking} is a file"
    raise ArgumentError(
      "{tensorboard} {folder}: {where}, not a folder; give the folder to "
      "write the summaries to.",
      folder=folder,
      where=where,
    )
  try:
    return callbacks_lib.TensorBoardLogger(
      folder, config.sample_temperature, config.seed
    )
  except callbacks_lib.TensorBoardMissing as e:
    raise RunError(str(e)) from e


@dataclasses.dataclass
class _Prepared:
  """A run's config with the data's fields, its data, model and logger:
  everything that can fail on the options, made before the first write."""

  config: object
  data: object
  model: object
  logger: object


def _prepare(config, strategy, tensorboard):
  data = loop.load_data(config)
  config = config.with_data(data)
  train_images = data.num_examples["train"]
  # (Training would otherwise use a smaller batch than config.json says.)
  if config.batch_size > train_images:
    raise ArgumentError(
      "{batch_size} {value} is more than the {images} training images of "
      "{data}; give at most {images}.",
      value=config.batch_size,
      images=train_images,
      data=data.name,
    )
  model = loop.build_model(config, strategy)
  loop.training_batch_size(config, data, model)
  return _Prepared(
    config, data, model, _tensorboard_logger(tensorboard, config)
  )


def _divergence_advice(state, run_dir, config):
  def advice():
    last = state.latest
    kept = (
      f"The last good checkpoint {last} (epoch "
      f"{int(state.epoch.numpy())}) is kept"
      if last
      else "No epoch had finished, so there is no checkpoint yet"
    )
    return (
      f"{kept}. Resume with a lower learning rate, e.g. tfp-emerging "
      f"train --out {run_dir} --resume --learning-rate "
      f"{config.learning_rate / 4:g} (now {config.learning_rate:g}), "
      f"and/or a longer warm-up, --warmup-steps "
      f"{max(100, 4 * config.warmup_steps)} (now "
      f"{config.warmup_steps})."
    )

  return advice


def _remove_debris(run_dir, warn):
  """`run_dir.remove_debris`, saying what was removed."""
  removed = run_dir_lib.remove_debris(run_dir)
  if removed:
    warn(
      f"removed what interrupted writes left in {run_dir} (never "
      f"checkpoints): {', '.join(removed)}."
    )


def _fit_in(run, state, run_dir, log, verbose, extra_callbacks, warn):
  """Trains the prepared `run` from `state`'s epoch (and step) in `run_dir`:
  writes `config.json` and `metrics.json`, trains with a checkpoint per
  epoch (and step checkpoints, `StepCheckpointer`), then writes
  `samples.png`; returns the metrics. SIGINT and SIGTERM stop training at
  a checkpointed step (`stopping`)."""
  config, model = run.config, run.model
  initial_epoch = int(state.epoch.numpy())
  initial_step = int(state.step.numpy())
  run_dir_lib.write_config(run_dir, config)
  recorder = callbacks_lib.EpochRecorder(
    state.metrics, initial_step, float(state.step_bits.numpy())
  )
  run_dir_lib.write_metrics(run_dir, recorder.records, config.num_bins)
  run_callbacks = [
    callbacks_lib.UniformCheck(recorder, config.warmup_steps, warn),
    callbacks_lib.Checkpointer(state, recorder, run_dir, log),
    callbacks_lib.StepCheckpointer(
      state, recorder, config.checkpoint_every, log
    ),
  ]
  if run.logger is not None:
    run_callbacks.append(run.logger)
  if initial_epoch < config.epochs:
    log(start_line(config, run.data, model, run_dir, initial_epoch))
  with stopping.deferred(), _naming_bad_files(run.data):
    metrics = loop.fit(
      model,
      run.data,
      config,
      initial_epoch=initial_epoch,
      initial_step=initial_step,
      callbacks=run_callbacks + list(extra_callbacks),
      verbose=keras_verbosity(verbose),
      recorder=recorder,
      advice=_divergence_advice(state, run_dir, config),
      labels=config.conditional,
    )
  run_dir_lib.write_samples(
    run_dir, model, config.sample_temperature, config.seed
  )
  return metrics


@contextlib.contextmanager
def _naming_bad_files(data):
  """Turns an `InvalidArgumentError` inside the block (what a file that
  cannot be decoded gives while training reads the data) into the
  `DataError` naming the file, if one of `data`'s files cannot be read now
  (`ImageDataset.check_files`: it changed after `load` checked it); other
  errors pass unchanged."""
  try:
    yield
  except tf.errors.InvalidArgumentError:
    data.check_files()
    raise


def train(
  config: RunConfig,
  run_dir: str | os.PathLike,
  log: Callable[[str], None] = print_line,
  strategy: tf.distribute.Strategy | None = None,
  verbose: int | str = "auto",
  tensorboard: str | os.PathLike | None = None,
  callbacks: Sequence[tf.keras.callbacks.Callback] = (),
  warn: Callable[[str], None] = print_warning,
  replace: bool = False,
) -> list[dict]:
  """Trains a new run in `run_dir` for `config.epochs` epochs.

  Args:
    config: a `RunConfig`; its `num_bins` and `image_shape` are set from the
      data.
    run_dir: the run directory: a folder that does not exist yet (it is
      created), an empty folder, or a marked run directory without a run
      (`run_dir.check_new`); it is marked as a run directory.
    log: `log(message)` for progress lines: the start line, then one line
      per epoch.
    strategy: optional `tf.distribute.Strategy` (`tfp_emerging.distribute.
      make_strategy`); the model and optimizer are built in its scope and
      `FlowModel.fit` splits each batch over its replicas. Default:
      TensorFlow's default. On several workers (`MultiWorkerMirroredStrategy`)
      every worker calls `train` with the same arguments; only the chief
      writes `run_dir` (the others train in a temporary folder,
      `run_dir.worker_folder`, without `tensorboard`).
    verbose: Keras' `verbose`; `"auto"`: a progress bar inside each epoch
      when standard output is a terminal, else nothing from Keras (the
      epoch's line comes from `log`).
    tensorboard: optional folder for TensorBoard summaries
      (`callbacks.TensorBoardLogger`).
    callbacks: further Keras callbacks for `fit`.
    warn: `warn(message)` for warnings (epochs worse than uniform).
    replace: a marked run directory's run may be replaced: its run files
      are deleted once the options, the data and the model are checked.

  Returns:
    The run's metrics: a list of per-epoch dicts, as in `metrics.json`.

  Raises:
    RunError: `run_dir` already holds a run (without `replace`), is a file,
      or is a folder that is not empty and not a run directory;
      `tensorboard` without the tensorboard package.
    ArgumentError: `tensorboard` is a file, or `config.batch_size` exceeds
      the training images (naming the parameter, as every
      `ArgumentError`).
    tfp_emerging.data.DataError: the data cannot be loaded or does not fit.
    TrainingDiverged: a NaN or infinite loss; the latest checkpoint is the
      last good epoch.
  """
  if not distribute.is_chief(strategy):
    with _worker_folder(run_dir, strategy, log, resume=False) as private:
      return _train(config, private, log, strategy, verbose, callbacks, warn)
  return _train(
    config,
    run_dir,
    log,
    strategy,
    verbose,
    callbacks,
    warn,
    tensorboard,
    replace,
  )


def _worker_folder(run_dir, strategy, log, resume):
  """`run_dir.worker_folder` of this worker of a multi-worker run, logged."""
  worker = distribute.worker_index(strategy)
  folder = run_dir_lib.worker_folder(run_dir, resume, worker)
  log(
    f"worker {worker}: the chief (worker 0) writes the run to {run_dir}; "
    f"this worker trains with it and keeps its own files in a temporary "
    f"folder, deleted at the end."
  )
  return folder


def _train(
  config,
  run_dir,
  log,
  strategy,
  verbose,
  callbacks,
  warn,
  tensorboard=None,
  replace=False,
):
  run_dir_lib.check_new(run_dir, replace)
  with stopping.handled(), run_dir_lib.locked(run_dir):
    run_dir_lib.check_new(run_dir, replace)  # now that no one else writes
    run = _prepare(config, strategy, tensorboard)
    _remove_debris(run_dir, warn)
    run_dir_lib.claim(run_dir, replace)
    state = checkpoints.RunState(
      run.model,
      run_dir,
      run.config.keep_checkpoints,
      run.config.model_identity(),
    )
    return _fit_in(run, state, run_dir, log, verbose, callbacks, warn)


def resume(
  run_dir: str | os.PathLike,
  log: Callable[[str], None] = print_line,
  strategy: tf.distribute.Strategy | None = None,
  verbose: int | str = "auto",
  tensorboard: str | os.PathLike | None = None,
  callbacks: Sequence[tf.keras.callbacks.Callback] = (),
  warn: Callable[[str], None] = print_warning,
  **options: Any,
) -> list[dict]:
  """Continues the run in `run_dir` from its latest checkpoint.

  `options` are run options (`RunConfig` fields) given again: those of
  `RESUMABLE_OPTIONS` (`epochs`, `batch_size`, `learning_rate`,
  `warmup_steps`) may change, as they change neither the model nor the
  data; any other must equal the stored value (`RunConfig.resumed`). Each
  change is appended to the config's `changes` with the first epoch it
  applies to. The warm-up counts the optimizer's restored step counter. The
  newest intact checkpoint is restored (a warning through `warn` for each
  corrupt one) before anything in `run_dir` is rewritten.

  Args:
    run_dir: a run directory with a `config.json`.
    log: as in `train`.
    strategy: as in `train` (every worker of a multi-worker run reads the
      run from `run_dir`, which only the chief writes); it need not be the
      one that wrote the checkpoints.
    verbose: as in `train`.
    tensorboard: as in `train`.
    callbacks: as in `train`.
    warn: as in `train`.
    **options: e.g. `epochs=` (the new total), `batch_size=`,
      `learning_rate=`, `warmup_steps=` (from the start of the run).

  Returns:
    The run's metrics, all epochs (restored and new).

  Raises:
    RunError: `run_dir` holds no run, or an option that cannot change
      differs from the stored one.
    ArgumentError: `epochs` below the epochs the run has done, a
      `batch_size` change in the middle of an epoch, or as in `train`.
    CorruptCheckpointError: the run has checkpoints, or `metrics.json`
      records finished epochs, but no checkpoint can be restored.
    tfp_emerging.data.DataError: the data cannot be loaded or changed shape.
    TrainingDiverged: as in `train`.
  """
  if not distribute.is_chief(strategy):
    with _worker_folder(run_dir, strategy, log, resume=True) as private:
      return _resume(
        private, log, strategy, verbose, None, callbacks, warn, options
      )
  return _resume(
    run_dir, log, strategy, verbose, tensorboard, callbacks, warn, options
  )


def _resume(
  run_dir, log, strategy, verbose, tensorboard, callbacks, warn, options
):
  run_dir_lib.read_config(run_dir)  # a run, before the lock creates a file
  with stopping.handled(), run_dir_lib.locked(run_dir):
    return _resume_locked(
      run_dir, log, strategy, verbose, tensorboard, callbacks, warn, options
    )


def _resume_locked(
  run_dir, log, strategy, verbose, tensorboard, callbacks, warn, options
):
  stored = run_dir_lib.read_config(run_dir)
  try:
    config, changed = stored.resumed(
      {name: value for name, value in options.items() if value is not None}
    )
  except ArgumentError as e:
    raise ArgumentError(
      "{run_dir}: " + e.template, run_dir=run_dir, **e.values
    ) from e
  except RunError as e:
    raise RunError(f"{run_dir}: {e}") from e
  run = _prepare(config, strategy, tensorboard)
  _remove_debris(run_dir, warn)
  state = checkpoints.RunState(
    run.model,
    run_dir,
    run.config.keep_checkpoints,
    run.config.model_identity(),
  )
  # Nothing in the run directory is rewritten before this has succeeded.
  restored = checkpoints.restore(state, run_dir, warn)
  initial_epoch = int(state.epoch.numpy())
  initial_step = int(state.step.numpy())
  least = initial_epoch + (1 if initial_step else 0)
  if run.config.epochs < least:
    running = f" and is in epoch {least}" if initial_step else ""
    raise ArgumentError(
      "{run_dir}: {epochs} {value}, but the run has finished {finished} "
      "epoch(s){running} ({restored}); {epochs} is the total number of "
      "epochs, so give at least {least}. Nothing was changed.",
      run_dir=run_dir,
      value=run.config.epochs,
      finished=initial_epoch,
      running=running,
      restored=restored,
      least=least,
    )
  if initial_step and "batch_size" in changed:
    raise ArgumentError(
      "{run_dir}: the run stopped at step {step} of epoch {epoch} "
      "({restored}), whose batches are those of batch size {stored}: resume "
      "without {batch_size} until that epoch ends, then change it.",
      run_dir=run_dir,
      step=initial_step,
      epoch=initial_epoch + 1,
      restored=restored,
      stored=stored.batch_size,
    )
  if restored:
    at = (
      f", step {initial_step} of epoch {initial_epoch + 1}"
      if initial_step
      else ""
    )
    log(f"resumed from {restored} (epoch {initial_epoch}{at})")
  run.config.changes = list(stored.changes) + [
    {
      "epoch": initial_epoch + 1,
      "option": name,
      "old": getattr(stored, name),
      "new": value,
    }
    for name, value in changed.items()
  ]
  return _fit_in(run, state, run_dir, log, verbose, callbacks, warn)
