"""The `tfp-emerging` command line (also `python -m tfp_emerging`).

Subcommands: `train` (a new run, or `--resume`), `evaluate`, `sample`,
`demo`, `export`; `tfp-emerging SUBCOMMAND --help` lists each one's options
with their defaults, and the docs' "Command line" page shows them at work.
This module only turns arguments into a `RunConfig` (or the arguments of
`tfp_emerging.training.evaluate_run`, `sample_run`, `export_run`) and calls
the library, which checks them; the run directories, their files and the
exit statuses are described in the docs' "Run directories" page.

Exit status: 0 on success (also when the test bits/dim ends above the
uniform model's: a warning, and `worse_than_uniform` in `metrics.json`); 1
when training diverged (NaN or infinite loss); 2 for bad arguments, data or
run directories; 3 when the run's checkpoints exist but none can be
restored; 4 when another process writes the run directory (its lock); 5
when the disk is full; 6 when a command must write a read-only run
directory; 7 when a worker of a multi-worker run was lost; 130 when
interrupted (SIGINT), 143 when terminated (SIGTERM).
Errors are one message on standard error, without a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import os
import signal
import sys
from typing import Any

import tfp_emerging
from tfp_emerging import data as data_lib
from tfp_emerging import distribute
from tfp_emerging import flows
from tfp_emerging import image_grid
from tfp_emerging import presets
from tfp_emerging import training
from tfp_emerging.training import config
from tfp_emerging.training import console
from tfp_emerging.training import run_dir as run_dir_lib
from tfp_emerging.training import stopping

__all__ = ["build_parser", "main"]


# The exit status of each error (see the module docstring).
_EXIT_STATUSES = (
  (run_dir_lib.RunLocked, 4),
  (run_dir_lib.DiskFull, 5),
  (run_dir_lib.ReadOnlyRun, 6),
  (distribute.WorkerLost, 7),
  (training.TrainingDiverged, 1),
  (data_lib.DataError, 2),
  (training.RunError, 2),
  (distribute.StrategyError, 2),
  (training.CorruptCheckpointError, 3),
)


def _class_ids(value):
  try:
    ids = [int(part) for part in value.split(",")]
  except ValueError:
    ids = None
  if not ids or min(ids) < 0:
    raise argparse.ArgumentTypeError(
      f"expected class ids >= 0 separated by commas (e.g. 0,3,7); got {value!r}"
    )
  return ids


def _split_names(value):
  names = [name.strip() for name in value.split(",")]
  if len(names) != 2 or not all(names):
    raise argparse.ArgumentTypeError(
      f"expected two split names TRAIN,TEST (e.g. train,validation); got "
      f"{value!r}"
    )
  return names


# The options of `train` and `demo` that define the run, in the order of
# `--help`: `(field, help[, argparse keywords])` of `RunConfig` fields, the
# flag `config.flag(field)`; beyond the keywords, `dest=field`,
# `default=None` and the type of the field's default, and `{default}` in the
# help is that default. `--resume` takes them from the run and accepts new
# values only for `training.RESUMABLE_OPTIONS`.
_RUN_OPTIONS: tuple[tuple[Any, ...], ...] = (
  (
    "dataset",
    "'digits' (bundled, default), 'skimage-crops' (16x16 crops of "
    "scikit-image's bundled photos), a tensorflow-datasets name such as "
    "'mnist' or 'cifar10' (needs the [datasets] extra), an .npz file or a "
    "folder of PNG images",
  ),
  (
    "data_dir",
    "tensorflow-datasets data folder (default: its own, ~/tensorflow_datasets)",
  ),
  (
    "splits",
    "the source's split names for training and testing, e.g. "
    "'train,validation' or 'train[:90%%],train[90%%:]' (default: the "
    "source's own: train/test, or train/validation)",
    {"type": _split_names, "metavar": "TRAIN,TEST"},
  ),
  (
    "bit_depth",
    "reduce 16-bit data to 8 bits (default: keep the data's depth)",
    {"type": int, "choices": (8,)},
  ),
  ("mixing", "channel mixing (default {default})", {"choices": flows.MIXINGS}),
  ("num_levels", "squeeze levels (default {default})"),
  ("num_steps", "flow steps per level (default {default})"),
  ("hidden_channels", "width of the coupling networks (default {default})"),
  ("kernel_size", "kernel size of the mixing convolutions (default {default})"),
  ("batch_size", "batch size (default {default})"),
  ("learning_rate", "Adam's peak learning rate (default {default})"),
  (
    "warmup_steps",
    "steps of the linear learning-rate warm-up (default {default})",
  ),
  ("seed", "seed of the weights, data order and samples (default {default})"),
  (
    "keep_checkpoints",
    "newest per-epoch checkpoints to keep (default {default})",
  ),
  (
    "checkpoint_every",
    "steps between step checkpoints inside an epoch (SIGINT and SIGTERM "
    "checkpoint their step anyway) (default {default})",
    {"type": int},
  ),
  ("sample_temperature", "temperature of samples.png (default {default})"),
  ("epochs", "total number of epochs (default {default})"),
  (
    "conditional",
    "a class-conditional flow on the data's labels ('digits', .npz files "
    "with labels, supervised tensorflow-datasets): priors and coupling "
    "networks depend on the class (default: off)",
    {"action": "store_const", "const": True},
  ),
  (
    "condition_couplings",
    "with --conditional, condition only the priors on the class (default: "
    "the couplings too)",
    {"action": "store_const", "const": False},
  ),
  (
    "dequantization",
    "'uniform' noise, or 'variational': a conditional flow q(u|k) learns "
    "the noise jointly with the model (Flow++), the bits/dim a valid bound "
    "(default uniform)",
    {"choices": flows.DEQUANTIZATIONS},
  ),
  (
    "preset",
    "the paper's architecture (CIFAR-10, 3 levels, 512 hidden channels, 8 "
    "or 32 steps per level; needs a GPU and tensorflow-datasets' cifar10); "
    "options given explicitly override it (default: none)",
    {"choices": tuple(presets.PRESETS)},
  ),
)
# Options of how `train` and `demo` run, not stored with the run: `(flag,
# help, argparse keywords)`, as the options of `_COMMANDS`.
_TRAINING_OPTIONS: tuple[tuple[Any, ...], ...] = (
  (
    "--strategy",
    "tf.distribute strategy: 'mirrored' (all local GPUs), 'multiworker' "
    "(every worker runs this command with its own TF_CONFIG and the same "
    "--out, which worker 0 writes; it runs under tf_keras, "
    "TF_USE_LEGACY_KERAS=1, as Keras 3's fit fails on several workers), "
    "'tpu' (the TPU VM's or TPU_NAME's TPU); Keras' fit splits each batch "
    "over the replicas (default: one device)",
    {"default": "default", "choices": distribute.STRATEGIES},
  ),
  (
    "--tensorboard",
    "write TensorBoard summaries to LOGDIR: train and test bits/dim and a "
    "grid of samples per epoch (needs the [tensorboard] extra); view with "
    "tensorboard --logdir LOGDIR (default: none)",
    {"metavar": "LOGDIR"},
  ),
)
_RUN = ("--run", "the run directory", {"required": True})
# Each subcommand: `(help, whether it trains, its options)`; the options of
# one that trains follow the run options and the training options.
_COMMANDS: dict[str, tuple[str, bool, tuple[tuple[Any, ...], ...]]] = {
  "train": (
    "train a flow on images",
    True,
    (
      ("--out", "the run directory", {"required": True}),
      (
        "--resume",
        "continue the run in --out from its latest checkpoint up to "
        "--epochs; --batch-size, --learning-rate and --warmup-steps may "
        "change too (recorded in config.json), the other options come from "
        "its config.json",
        {"action": "store_true"},
      ),
    ),
  ),
  "evaluate": (
    "test bits/dim of a run",
    False,
    (
      _RUN,
      ("--json", "print one JSON object", {"action": "store_true"}),
      (
        "--samples",
        "dequantisation draws per test image; above 1, the "
        "importance-weighted bound over the K draws (tighter, K times the "
        "cost) (default: %(default)s)",
        {"type": int, "default": 1, "metavar": "K"},
      ),
    ),
  ),
  "sample": (
    "a PNG grid of samples",
    False,
    (
      _RUN,
      (
        "--n",
        f"number of samples (default {image_grid.NUM_SAMPLES}); for a "
        f"class-conditional run, samples per class, one row each (default "
        f"{image_grid.SAMPLES_PER_CLASS})",
        {"type": int},
      ),
      (
        "--classes",
        "for a class-conditional run: the classes to draw, one row each "
        "(default: every class)",
        {"type": _class_ids, "metavar": "K1,K2,..."},
      ),
      (
        "--temperature",
        "standard deviation of the latent Gaussian (default: the run's "
        f"--sample-temperature, {training.RunConfig.sample_temperature} "
        "unless set)",
        {"type": float},
      ),
      ("--columns", "images per row (default ceil(sqrt(n)))", {"type": int}),
      ("--seed", "sampling seed (default: the run's seed)", {"type": int}),
      ("--out", "the PNG file to write", {"required": True}),
    ),
  ),
  "demo": (
    "train + evaluate + sample on the digits (a few minutes)",
    True,
    (
      (
        "--out",
        "the run directory: new, empty, or an earlier run directory of "
        "tfp-emerging, whose run is replaced (default runs/demo)",
        {"default": os.path.join("runs", "demo")},
      ),
    ),
  ),
  "export": (
    "a SavedModel with log_prob and sample signatures",
    False,
    (
      _RUN,
      (
        "--out",
        "the SavedModel folder to write: new or empty, outside every run "
        "directory",
        {"required": True},
      ),
      (
        "--overwrite",
        "replace the SavedModel already in --out, never anything else "
        "(default: refuse an --out that holds one)",
        {"action": "store_true"},
      ),
    ),
  ),
}


def _run_option(field, text, keywords=None):
  """The `(flag, help, keywords)` of a row of `_RUN_OPTIONS`."""
  default = getattr(training.RunConfig, field)
  keywords = {"dest": field, "default": None, **(keywords or {})}
  if default is not None and "action" not in keywords:
    keywords.setdefault("type", type(default))
  return config.flag(field), text.format(default=default), keywords


def build_parser() -> argparse.ArgumentParser:
  """The `argparse` parser of `tfp-emerging`."""
  parser = argparse.ArgumentParser(
    prog="tfp-emerging",
    description=(
      "Train, evaluate and sample Glow flows with emerging, "
      "periodic and 1x1 convolutions."
    ),
  )
  parser.add_argument(
    "--version",
    action="version",
    version=f"tfp-emerging {tfp_emerging.__version__}",
  )
  commands = parser.add_subparsers(dest="command", required=True)
  for name, (text, trains, options) in _COMMANDS.items():
    command = commands.add_parser(name, help=text)
    if trains:
      run = tuple(_run_option(*row) for row in _RUN_OPTIONS)
      options = run + _TRAINING_OPTIONS + options
    for flag, help_text, keywords in options:
      command.add_argument(flag, help=help_text, **keywords)
  return parser


def _given_options(args):
  """The run options given on the command line."""
  return {
    name: getattr(args, name)
    for name, *_ in _RUN_OPTIONS
    if getattr(args, name) is not None
  }


def _run_config(args):
  """The `RunConfig` of the options given, over the preset's if one is
  named, over `RunConfig`'s defaults."""
  given = _given_options(args)
  if given.get("preset") is not None:
    return presets.config(given.pop("preset"), **given)
  return training.RunConfig(**given)


def _train_and_report(run_dir, args, config=None, replace=False):
  """Trains `config` in `run_dir` (`replace` as in `training.train`), or
  with `config` `None` resumes the run there with the run options of
  `args`."""
  strategy = distribute.make_strategy(args.strategy)
  how = {"strategy": strategy, "tensorboard": args.tensorboard}
  try:
    with distribute.worker_faults(strategy):
      metrics = (
        training.resume(run_dir, **how, **_given_options(args))
        if config is None
        else training.train(config, run_dir, **how, replace=replace)
      )
  except KeyboardInterrupt as e:
    saved = getattr(e, "saved", None)
    kept = (
      f"checkpointed at {saved}"
      if saved
      else "every finished epoch is checkpointed"
    )
    print(
      f"\n{_interruption(e)}; {kept}. Continue with: tfp-emerging train "
      f"--out {run_dir} --resume",
      file=sys.stderr,
    )
    raise _ReportedInterruption(_interruption(e)) from e
  if not distribute.is_chief(strategy):
    print(f"the chief (worker 0) wrote the run to {run_dir}")
    return metrics
  if metrics:
    print(
      f"test bits/dim after epoch {metrics[-1]['epoch']}: "
      f"{metrics[-1]['test_bits_per_dim']:.4f}"
    )
    if metrics[-1].get("worse_than_uniform"):
      console.print_warning(
        f"the final test bits/dim {metrics[-1]['test_bits_per_dim']:.4f} is "
        f'worse than the uniform model\'s ("worse_than_uniform": true in '
        f"{os.path.join(run_dir, run_dir_lib.METRICS_FILE)})."
      )
  print(
    f"wrote {run_dir}/{{{run_dir_lib.CONFIG_FILE}, "
    f"{run_dir_lib.METRICS_FILE}, {run_dir_lib.SAMPLES_FILE}, "
    f"{run_dir_lib.CHECKPOINT_DIR}/}}"
  )
  return metrics


def _evaluate(run_dir, as_json, num_samples=1):
  result = training.evaluate_run(run_dir, num_samples=num_samples)
  if as_json:
    print(json.dumps(result))
  else:
    bound = (
      ""
      if num_samples == 1
      else f", importance-weighted over {num_samples} draws"
    )
    print(
      f"test bits/dim: {result['bits_per_dim']:.4f} ({result['dataset']}, "
      f"{result['mixing']} mixing, {result['num_examples']} test images, "
      f"epoch {result['epoch']}{bound})"
    )
  return result


def _sample(run_dir, out, **options):
  model, n, temperature = training.sample_run(run_dir, out, **options)
  if model.num_classes is None:
    print(f"wrote {n} samples at temperature {temperature} to {out}")
  else:
    classes = options.get("classes")
    rows = range(model.num_classes) if classes is None else classes
    print(
      f"wrote {n} samples per class at temperature {temperature} to "
      f"{out}, one row per class: {', '.join(map(str, rows))}"
    )


def _demo(args):
  run_dir = args.out
  config = _run_config(args)
  kind = "class-conditional " if config.conditional else ""
  print(
    f"demo: {kind}{config.mixing} Glow (levels {config.num_levels}, "
    f"steps per level {config.num_steps}, {config.hidden_channels} hidden "
    f"channels) on {config.dataset}, {config.epochs} epochs -> {run_dir}"
  )
  run_dir_lib.check_new(run_dir, replace=True)
  with run_dir_lib.locked(run_dir):  # from training to the last sample
    _train_and_report(run_dir, args, config, replace=True)
    _evaluate(run_dir, as_json=False)
    _sample(run_dir, os.path.join(run_dir, run_dir_lib.DEMO_SAMPLES_FILE))


def _export(run_dir, out, overwrite):
  epoch = training.export_run(run_dir, out, overwrite)
  print(
    f"wrote a SavedModel of {run_dir} (epoch {epoch}) with signatures "
    f"log_prob and sample to {out}"
  )


def _interruption(error):
  """`interrupted` (SIGINT, Ctrl-C) or `terminated` (SIGTERM)."""
  if isinstance(error, _ReportedInterruption):
    return error.kind
  number = getattr(error, "signal_number", signal.SIGINT)
  return "terminated" if number == signal.SIGTERM else "interrupted"


class _ReportedInterruption(KeyboardInterrupt):
  """An interruption whose message a command has printed already."""

  def __init__(self, kind: str):
    super().__init__(kind)
    self.kind = kind


def main(argv: Sequence[str] | None = None) -> int:
  """Runs `tfp-emerging` with `argv` (default `sys.argv[1:]`).

  Returns:
    The exit status.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  args = build_parser().parse_args(argv)
  strategy = getattr(args, "strategy", "default")
  if args.command == "demo" and strategy == "multiworker":
    print(
      "tfp-emerging demo: error: --strategy multiworker is for train (the "
      "demo evaluates and samples in one process).",
      file=sys.stderr,
    )
    return 2
  if distribute.needs_legacy_keras(strategy):
    if os.environ.get("TF_USE_LEGACY_KERAS") == "1":  # tf_keras is missing
      print(
        f"tfp-emerging {args.command}: error: --strategy multiworker needs "
        f"tf_keras (pip install tf_keras).",
        file=sys.stderr,
      )
      return 2
    # Keras 3's fit fails on several workers (tensorflow/tensorflow#72388):
    # the run starts again in a fresh process, the same one to the signals
    # and the exit status, under tf_keras.
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(
      sys.executable,
      [sys.executable, "-m", "tfp_emerging", *argv],
      dict(os.environ, TF_USE_LEGACY_KERAS="1"),
    )
  try:
    with stopping.handled():
      return _run(args)
  except tuple(kind for kind, _ in _EXIT_STATUSES) as e:
    print(f"tfp-emerging {args.command}: error: {_message(e)}", file=sys.stderr)
    return next(
      status for kind, status in _EXIT_STATUSES if isinstance(e, kind)
    )
  except KeyboardInterrupt as e:
    if not isinstance(e, _ReportedInterruption):
      print(
        f"\ntfp-emerging {args.command}: {_interruption(e)}", file=sys.stderr
      )
    return 143 if _interruption(e) == "terminated" else 130


def _message(error):
  """The message of `error` for the command line: an `ArgumentError`'s
  with each parameter spelled as its flag (`config.flag`)."""
  if isinstance(error, training.ArgumentError):
    return error.spelled(config.flag)
  return str(error)


def _run(args):
  """Runs the parsed command; returns the exit status."""
  if args.command == "train":
    _train_and_report(
      args.out, args, None if args.resume else _run_config(args)
    )
  elif args.command == "evaluate":
    _evaluate(args.run, args.json, args.samples)
  elif args.command == "sample":
    options = ("n", "temperature", "seed", "columns", "classes")
    _sample(args.run, args.out, **{name: vars(args)[name] for name in options})
  elif args.command == "demo":
    _demo(args)
  else:
    _export(args.run, args.out, args.overwrite)
  return 0
