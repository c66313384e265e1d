"""Using a trained run: `load_run`, `evaluate_run`, `sample_run`,
`export_run`.

Each restores the run's newest intact checkpoint (`load_run`), with a
warning for each corrupt one; `CorruptCheckpointError` when the run has
checkpoints but none can be restored. `sample_run` and `export_run` check
their `out` before anything is loaded or written; neither replaces a file
of a run directory other than the run's own samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import math
import os
import shutil
import tempfile
from typing import Any

from tfp_emerging import export
from tfp_emerging.data import png_folder
from tfp_emerging.keras import FlowModel
from tfp_emerging.training import checkpoints
from tfp_emerging.training import loop
from tfp_emerging.training import run_dir as run_dir_lib
from tfp_emerging.training import sample_grids
from tfp_emerging.training.config import ArgumentError
from tfp_emerging.training.config import RunConfig
from tfp_emerging.training.console import print_warning

__all__ = ["evaluate_run", "export_run", "load_run", "sample_run"]


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
    RunError: no run in `run_dir`.
    ArgumentError: no checkpoint in `run_dir` (naming `resume`).
    CorruptCheckpointError: checkpoints, but none can be restored.
  """
  config = run_dir_lib.read_config(run_dir)
  model = loop.build_model(config)
  state = checkpoints.RunState(
    model, run_dir, config.keep_checkpoints, config.model_identity()
  )
  path = checkpoints.restore(state, run_dir, warn)
  if not path:
    raise ArgumentError(
      "{path}: no checkpoint yet (no epoch finished); train it with "
      "{resume} first.",
      path=run_dir,
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
    ArgumentError: `num_samples` not an integer >= 1.
    tfp_emerging.data.DataError: the data cannot be loaded or changed shape.
  """
  if (
    isinstance(num_samples, bool)
    or not isinstance(num_samples, int)
    or (num_samples < 1)
  ):
    raise ArgumentError(
      "{num_samples} must be an integer >= 1; got {value!r} (evaluate_run's "
      "num_samples).",
      value=num_samples,
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
    ArgumentError: bad arguments, an `out` that is a folder or cannot be
      written (the message names the parameter, `ArgumentError.parameters`).
    RunError: a run without a checkpoint.
  """
  for name, value, low in (
    ("n", n, 1),
    ("columns", columns, 1),
    ("temperature", temperature, 0),
  ):
    if value is not None and not (math.isfinite(value) and value >= low):
      raise ArgumentError(
        "{" + name + "} must be >= {low}; got {value}.", low=low, value=value
      )
  if os.path.isdir(out):
    raise ArgumentError(
      "{out} {path}: is a folder; give the PNG file to write.", path=out
    )
  if _sample_out_in_run(run_dir, out):  # it writes the run directory
    with run_dir_lib.locked(run_dir):
      return _sample_run(run_dir, out, n, temperature, seed, columns, classes)
  return _sample_run(run_dir, out, n, temperature, seed, columns, classes)


# The files `sample` may write inside a run directory: its own `--run`'s.
_SAMPLE_FILES = (run_dir_lib.SAMPLES_FILE, run_dir_lib.DEMO_SAMPLES_FILE)


def _sample_out_in_run(run_dir, out):
  """Whether `sample_run`'s PNG `out` is a samples file of its own
  `run_dir` (`_SAMPLE_FILES`); `ArgumentError` if `out` is an existing
  file that is not a PNG image, or lies anywhere else inside a run
  directory (the run's config, metrics, checkpoints, another run's
  files)."""
  if os.path.exists(out):
    try:
      with open(out, "rb") as f:
        head = f.read(len(png_folder.PNG_SIGNATURE))
    except OSError as e:
      raise ArgumentError(
        "{out} {path}: cannot read it ({error}).", path=out, error=e
      ) from e
    if head != png_folder.PNG_SIGNATURE:
      raise ArgumentError(
        "{out} {path}: an existing file that is not a PNG image; nothing is "
        "replaced. Give a new file name (or a PNG file to replace).",
        path=out,
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
  raise ArgumentError(
    "{out} {path}: inside the run directory {holder}, whose files sample "
    "never replaces (inside its own {run} it writes only {files}); nothing "
    "was written. Write the grid outside the run directory.",
    path=out,
    holder=holder,
    files=" or ".join(_SAMPLE_FILES),
  )


def _sample_run(run_dir, out, n, temperature, seed, columns, classes):
  config, model, _, _ = load_run(run_dir)
  n = sample_grids.default_sample_count(model) if n is None else n
  temperature = (
    config.sample_temperature if temperature is None else temperature
  )
  # Bad `classes` or `columns`: sample_grid's ArgumentError, naming them.
  grid = sample_grids.sample_grid(
    model,
    n,
    temperature,
    seed=config.seed if seed is None else seed,
    columns=columns,
    classes=classes,
  )
  try:
    with run_dir_lib.writing(out, "the samples", output=True):
      os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    run_dir_lib.write_png(out, grid, "the samples", output=True)
  except OSError as e:
    raise ArgumentError(
      "{out} {path}: cannot write it ({error}).", path=out, error=e
    ) from e
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
    ArgumentError: `out` is a file, a folder holding something else, a
      SavedModel without `overwrite`, or inside a run directory.
    RunError: the run has no checkpoint.
    run_dir.DiskFull, run_dir.ReadOnlyRun: `out` cannot be written.
  """
  _check_export_out(out, overwrite)
  _, model, epoch, _ = load_run(run_dir)
  with run_dir_lib.writing(out, "the SavedModel", output=True):
    _write_beside(out, lambda path: export.export(model.discrete_flow, path))
  return epoch


def _check_export_out(out, overwrite):
  """`ArgumentError` unless `export_run` may write its SavedModel at `out`."""
  if os.path.exists(out) and not os.path.isdir(out):
    raise ArgumentError(
      "{out} {path}: is a file; give the SavedModel folder to write.",
      path=out,
    )
  holder = run_dir_lib.enclosing_run(out)
  if holder is not None:
    raise ArgumentError(
      "{out} {path}: inside the run directory {holder}; export never writes "
      "into a run directory. Choose a folder outside it.",
      path=out,
      holder=holder,
    )
  entries = sorted(os.listdir(out)) if os.path.isdir(out) else []
  if not entries:
    return
  if not _holds_saved_model(out):
    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
    raise ArgumentError(
      "{out} {path}: a folder that is not empty ({shown}) and holds no "
      "SavedModel; nothing is replaced. Choose a new or empty folder.",
      path=out,
      shown=shown,
    )
  if not overwrite:
    raise ArgumentError(
      "{out} {path}: already holds a SavedModel; pass {overwrite} to "
      "replace it, or choose another {out}.",
      path=out,
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
