"""Training runs in run directories: `train`, `resume`, `load_run`.

A run is the one training path (`tfp_emerging.training.fit`) with a run
directory (`tfp_emerging.training.run_dir`): the options, the data and the
model are checked before anything is written; a checkpoint follows every
finished epoch; `resume` continues from the newest intact checkpoint with
the same batches an uninterrupted run would have seen. The layout of a run
directory, the exit statuses of the command line and what happens on a
divergence or a corrupt checkpoint are described once, in the docs' page
"Run directories".

Resuming (`resume`, and `load_run` for evaluating, sampling, exporting)
restores the newest intact checkpoint, with a warning for each corrupt one,
before anything in the run directory is rewritten; a missing state file is
recovered from the `ckpt-*` files. `CorruptCheckpointError` when the run has
checkpoints (or `metrics.json` records finished epochs) but none can be
restored.

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
import math
import os
import shutil
import sys
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging import distribute
from tfp_emerging import export
from tfp_emerging.data import ImageDataset
from tfp_emerging.data import png_folder
from tfp_emerging.keras import FlowModel
from tfp_emerging.training import callbacks as callbacks_lib
from tfp_emerging.training import checkpoints
from tfp_emerging.training import loop
from tfp_emerging.training import run_dir as run_dir_lib
from tfp_emerging.training import sample_grids
from tfp_emerging.training import stopping
from tfp_emerging.training.config import RunConfig
from tfp_emerging.training.config import RunError

__all__ = [
  "evaluate_run",
  "export_run",
  "load_run",
  "print_warning",
  "resume",
  "sample_run",
  "start_line",
  "train",
]


def print_warning(message: str) -> None:
  """The default `warn`: `warning: message` on standard error."""
  print(f"warning: {message}", file=sys.stderr, flush=True)


def _log(message):
  print(message, flush=True)


def _keras_verbosity(verbose):
  """Keras' `verbose` for a run, whose `Checkpointer` logs one line per
  epoch: `"auto"` is a progress bar inside each epoch on a terminal, and
  nothing from Keras otherwise (so that a log file holds one line per
  epoch)."""
  if verbose != "auto":
    return verbose
  isatty = getattr(sys.stdout, "isatty", None)
  return 1 if isatty is not None and isatty() else 0


def _tensorboard_logger(folder, config):
  if folder is None:
    return None
  blocking = run_dir_lib.file_in_the_way(folder)
  if blocking is not None:
    same = blocking == os.path.abspath(folder)
    where = "is a file" if same else f"{blocking} is a file"
    raise RunError(
      f"--tensorboard {folder}: {where}, not a folder; give the folder to "
      f"write the summaries to."
    )
  try:
    return callbacks_lib.TensorBoardLogger(
      folder, config.sample_temperature, config.seed
    )
  except callbacks_lib.TensorBoardMissing as e:
    raise RunError(str(e)) from e


def _device(model):
  """Where the model trains, for the start line."""
  strategy = model.distribute_strategy
  replicas = strategy.num_replicas_in_sync
  devices = tf.config.list_logical_devices(
    "GPU"
  ) or tf.config.list_logical_devices("TPU")
  kind = devices[0].device_type if devices else "CPU"
  if replicas > 1:
    return f"{replicas} replicas ({type(strategy).__name__}, {kind})"
  return f"{len(devices)} {kind}" if devices else "CPU"


def start_line(
  config: RunConfig,
  data: ImageDataset,
  model: FlowModel,
  run_dir: str | os.PathLike,
  initial_epoch: int = 0,
) -> str:
  """The line a run prints when training starts: the dataset and its
  shapes, the model and its parameter count, the device and the run
  directory."""
  parameters = int(sum(np.prod(v.shape) for v in model.trainable_weights))
  kind = "class-conditional " if config.conditional else ""
  epochs = (
    f"epochs {initial_epoch + 1}..{config.epochs}"
    if initial_epoch
    else f"{config.epochs} epochs"
  )
  return (
    f"training {kind}Glow with {config.mixing} mixing "
    f"({config.num_levels} level(s) x {config.num_steps} steps, "
    f"{config.hidden_channels} "
    f"hidden channels, {parameters:,} parameters) on {data.name}: "
    f"{data.num_examples['train']} train / {data.num_examples['test']} "
    f"test images of {'x'.join(map(str, data.image_shape))}, "
    f"{data.num_bins} levels; batch {config.batch_size}, {epochs}, "
    f"on {_device(model)} -> {run_dir}"
  )


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
    raise RunError(
      f"--batch-size {config.batch_size} is more than the {train_images} "
      f"training images of {data.name}; give at most {train_images}."
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
      verbose=_keras_verbosity(verbose),
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
  log: Callable[[str], None] = _log,
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
  log: Callable[[str], None] = _log,
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
    raise RunError(
      f"{run_dir}: --epochs {run.config.epochs}, but the run has finished "
      f"{initial_epoch} epoch(s){running} ({restored}); --epochs is the "
      f"total number of epochs, so give at least {least}. Nothing was "
      f"changed."
    )
  if initial_step and "batch_size" in changed:
    raise RunError(
      f"{run_dir}: the run stopped at step {initial_step} of epoch "
      f"{initial_epoch + 1} ({restored}), whose batches are those of batch "
      f"size {stored.batch_size}: resume without --batch-size until that "
      f"epoch ends, then change it."
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


def load_run(
  run_dir: str | os.PathLike, warn: Callable[[str], None] = print_warning
) -> tuple[RunConfig, FlowModel, int, str]:
  """Rebuilds a run's model from its newest intact checkpoint.

  Args:
    run_dir: a run directory written by `train`.
    warn: `warn(message)` for each checkpoint that cannot be restored.

  Returns:
    `(config, model, epoch, checkpoint_path)`.

  Raises:
    RunError: no run or no checkpoint in `run_dir`.
    CorruptCheckpointError: checkpoints, but none can be restored.
  """
  config = run_dir_lib.read_config(run_dir)
  model = loop.build_model(config)
  state = checkpoints.RunState(
    model, run_dir, config.keep_checkpoints, config.model_identity()
  )
  path = checkpoints.restore(state, run_dir, warn)
  if not path:
    raise RunError(
      f"{run_dir}: no checkpoint yet (no epoch finished); train "
      f"it with --resume first."
    )
  return config, model, int(state.epoch.numpy()), path


def evaluate_run(
  run_dir: str | os.PathLike, num_samples: int = 1
) -> dict[str, Any]:
  """The test bits/dim of a run's newest intact checkpoint, with what it is.

  Args:
    run_dir: a run directory with a checkpoint.
    num_samples: dequantisation draws per test image; above 1, the
      importance-weighted bound over them (`loop.evaluate`).

  Returns:
    A dict: `bits_per_dim`, `num_samples`, `split`, `source_split`,
    `dataset`, `mixing`, `conditional`, `num_examples`, `num_bins`,
    `image_shape`, `epoch`, `checkpoint`.

  Raises:
    RunError, CorruptCheckpointError: as `load_run`.
    RunError: `num_samples` not an integer >= 1.
    tfp_emerging.data.DataError: the data cannot be loaded or changed shape.
  """
  if (
    isinstance(num_samples, bool)
    or not isinstance(num_samples, int)
    or (num_samples < 1)
  ):
    raise RunError(
      f"--samples must be an integer >= 1; got {num_samples!r} "
      f"(evaluate_run's num_samples)."
    )
  config, model, epoch, path = load_run(run_dir)
  data = loop.load_data(config)
  config.with_data(data)  # the same image shape and levels
  bits = loop.evaluate(
    model,
    data,
    config.batch_size,
    seed=config.seed,
    labels=config.conditional,
    num_samples=num_samples,
  )
  return {
    "bits_per_dim": bits,
    "num_samples": num_samples,
    "split": "test",
    "source_split": data.split_names["test"],
    "dataset": config.dataset,
    "mixing": config.mixing,
    "conditional": config.conditional,
    "num_examples": data.num_examples["test"],
    "num_bins": config.num_bins,
    "image_shape": config.image_shape,
    "epoch": epoch,
    "checkpoint": path,
  }


def sample_run(
  run_dir: str | os.PathLike,
  out: str | os.PathLike,
  n: int | None = None,
  temperature: float | None = None,
  seed: int | None = None,
  columns: int | None = None,
  classes: Sequence[int] | None = None,
) -> tuple[FlowModel, int, float]:
  """Writes a PNG grid of samples of a run's newest intact checkpoint.

  Args:
    run_dir: a run directory with a checkpoint.
    out: the PNG file to write (its folder is created).
    n: samples (default `sample_grids.NUM_SAMPLES`); for a class-conditional
      run, samples per class, one row each (default
      `sample_grids.SAMPLES_PER_CLASS`).
    temperature: default the run's `sample_temperature`.
    seed: default the run's seed.
    columns: images per row (default `ceil(sqrt(n))`).
    classes: for a class-conditional run, the classes to draw (default
      every class).

  Returns:
    `(model, n, temperature)`: the model sampled and the values used.

  Raises:
    RunError: bad arguments (naming the option), an `out` that is a folder
      or cannot be written, or a run without a checkpoint.
  """
  for name, value, low in (
    ("n", n, 1),
    ("columns", columns, 1),
    ("temperature", temperature, 0),
  ):
    if value is not None and not (math.isfinite(value) and value >= low):
      raise RunError(f"--{name} must be >= {low}; got {value}.")
  if os.path.isdir(out):
    raise RunError(f"--out {out}: is a folder; give the PNG file to write.")
  if _sample_out_in_run(run_dir, out):  # it writes the run directory
    with run_dir_lib.locked(run_dir):
      return _sample_run(run_dir, out, n, temperature, seed, columns, classes)
  return _sample_run(run_dir, out, n, temperature, seed, columns, classes)


# The files `sample` may write inside a run directory: its own `--run`'s.
_SAMPLE_FILES = (run_dir_lib.SAMPLES_FILE, run_dir_lib.DEMO_SAMPLES_FILE)


def _sample_out_in_run(run_dir, out):
  """Whether `sample_run`'s PNG `out` is a samples file of its own
  `run_dir` (`_SAMPLE_FILES`); `RunError` if `out` is an existing file that
  is not a PNG image, or lies anywhere else inside a run directory (the
  run's config, metrics, checkpoints, another run's files)."""
  if os.path.exists(out):
    try:
      with open(out, "rb") as f:
        head = f.read(len(png_folder.PNG_SIGNATURE))
    except OSError as e:
      raise RunError(f"--out {out}: cannot read it ({e}).") from e
    if head != png_folder.PNG_SIGNATURE:
      raise RunError(
        f"--out {out}: an existing file that is not a PNG image; nothing "
        f"is replaced. Give a new file name (or a PNG file to replace)."
      )
  holder = run_dir_lib.enclosing_run(out)
  if holder is None:
    return False
  own = os.path.realpath(run_dir)
  real = os.path.realpath(out)
  if (os.path.dirname(real), os.path.basename(real)) in (
    (own, name) for name in _SAMPLE_FILES
  ):
    return True
  raise RunError(
    f"--out {out}: inside the run directory {holder}, whose files sample "
    f"never replaces (inside its own --run it writes only "
    f"{' or '.join(_SAMPLE_FILES)}); nothing was written. Write the grid "
    f"outside the run directory."
  )


def _sample_run(run_dir, out, n, temperature, seed, columns, classes):
  config, model, _, _ = load_run(run_dir)
  n = sample_grids.default_sample_count(model) if n is None else n
  temperature = (
    config.sample_temperature if temperature is None else temperature
  )
  try:
    grid = sample_grids.sample_grid(
      model,
      n,
      temperature,
      seed=config.seed if seed is None else seed,
      columns=columns,
      classes=classes,
    )
  except ValueError as e:  # its message begins with the argument's name
    raise RunError(f"--{e}") from e
  try:
    with run_dir_lib.writing(out, "the samples", output=True):
      os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    run_dir_lib.write_png(out, grid, "the samples", output=True)
  except OSError as e:
    raise RunError(f"--out {out}: cannot write it ({e}).") from e
  return model, n, temperature


def export_run(
  run_dir: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False
) -> int:
  """Writes a run's newest intact checkpoint as a SavedModel at `out`
  (`tfp_emerging.export`); returns the epoch exported.

  `out` is a new or empty folder, or with `overwrite` one holding a
  SavedModel, never inside a run directory. The SavedModel is written into
  a temporary folder beside `out` and renamed to `out` once complete (an
  old SavedModel is renamed aside first, then deleted): a failed write
  (a full disk) leaves `out` as it was, without temporary folders.

  Raises:
    RunError: `out` is a file, a folder holding something else, a
      SavedModel without `overwrite`, or inside a run directory; the run
      has no checkpoint.
    run_dir.DiskFull, run_dir.ReadOnlyRun: `out` cannot be written.
  """
  _check_export_out(out, overwrite)
  _, model, epoch, _ = load_run(run_dir)
  with run_dir_lib.writing(out, "the SavedModel", output=True):
    _write_beside(out, lambda path: export.export(model.discrete_flow, path))
  return epoch


def _check_export_out(out, overwrite):
  """`RunError` unless `export_run` may write its SavedModel at `out`."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise RunError(
      f"--out {out}: is a file; give the SavedModel folder to write."
    )
  holder = run_dir_lib.enclosing_run(out)
  if holder is not None:
    raise RunError(
      f"--out {out}: inside the run directory {holder}; export never "
      f"writes into a run directory. Choose a folder outside it."
    )
  entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
  if not entries:
    return
  if not _holds_saved_model(out):
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise RunError(
      f"--out {out}: a folder that is not empty ({shown}) and holds no "
      f"SavedModel; nothing is replaced. Choose a new or empty folder."
    )
  if not overwrite:
    raise RunError(
      f"--out {out}: already holds a SavedModel; pass --overwrite to "
      f"replace it, or choose another --out."
    )


def _holds_saved_model(folder):
  return any(
    os.path.isfile(os.path.join(folder, name))
    for name in ("saved_model.pb", "saved_model.pbtxt")
  )


def _write_beside(out, write):
  """`write(path)` into a new temporary folder beside `out`, then that
  folder renamed to `out` (an existing non-empty `out` renamed aside first
  and deleted after); on any failure the temporary folder is deleted and
  `out` is left as it was."""
  out = os.path.abspath(out)
  parent, name = os.path.split(out)
  os.makedirs(parent, exist_ok=True)
  temporary = tempfile.mkdtemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
  try:
    write(temporary)
    old = None
    if os.path.isdir(out) and os.listdir(out):
      old = temporary + ".old"
      os.rename(out, old)
    os.replace(temporary, out)  # onto a missing or empty folder: atomic
  except BaseException:
    shutil.rmtree(temporary, ignore_errors=True)
    raise
  if old is not None:
    shutil.rmtree(old, ignore_errors=True)
