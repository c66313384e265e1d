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
import dataclasses
import json
import os
import signal
import sys

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


# Options of `train` that define the run; `--resume` takes them from the run
# and accepts new values only for `training.RESUMABLE_OPTIONS`.
_RUN_OPTIONS = (
  "dataset",
  "data_dir",
  "splits",
  "bit_depth",
  "mixing",
  "num_levels",
  "num_steps",
  "hidden_channels",
  "kernel_size",
  "conditional",
  "condition_couplings",
  "dequantization",
  "preset",
  "batch_size",
  "learning_rate",
  "warmup_steps",
  "seed",
  "keep_checkpoints",
  "checkpoint_every",
  "sample_temperature",
  "epochs",
)
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


def _add_run_options(parser):
  """Options of a run, defaulting to `RunConfig`'s."""
  base = dataclasses.asdict(training.RunConfig())
  parser.add_argument(
    "--dataset",
    default=None,
    help=(
      "'digits' (bundled, default), 'skimage-crops' (16x16 crops of "
      "scikit-image's bundled photos), a tensorflow-datasets name such "
      "as 'mnist' or 'cifar10' (needs the [datasets] extra), an .npz "
      "file or a folder of PNG images"
    ),
  )
  parser.add_argument(
    "--data-dir",
    default=None,
    help="tensorflow-datasets data folder (default: its own, "
    "~/tensorflow_datasets)",
  )
  parser.add_argument(
    "--split",
    dest="splits",
    default=None,
    type=_split_names,
    metavar="TRAIN,TEST",
    help=(
      "the source's split names for training and testing, e.g. "
      "'train,validation' or 'train[:90%%],train[90%%:]' (default: the "
      "source's own: train/test, or train/validation)"
    ),
  )
  parser.add_argument(
    "--bit-depth",
    type=int,
    default=None,
    choices=(8,),
    help="reduce 16-bit data to 8 bits (default: keep the data's depth)",
  )
  parser.add_argument(
    "--mixing",
    default=None,
    choices=flows.MIXINGS,
    help=f"channel mixing (default {base['mixing']})",
  )
  for flag, kind, text in (
    ("num_levels", int, "squeeze levels"),
    ("num_steps", int, "flow steps per level"),
    ("hidden_channels", int, "width of the coupling networks"),
    ("kernel_size", int, "kernel size of the mixing convolutions"),
    ("batch_size", int, "batch size"),
    ("learning_rate", float, "Adam's peak learning rate"),
    ("warmup_steps", int, "steps of the linear learning-rate warm-up"),
    ("seed", int, "seed of the weights, data order and samples"),
    ("keep_checkpoints", int, "newest per-epoch checkpoints to keep"),
    (
      "checkpoint_every",
      int,
      "steps between step checkpoints inside an epoch (SIGINT and "
      "SIGTERM checkpoint their step anyway)",
    ),
    ("sample_temperature", float, "temperature of samples.png"),
  ):
    parser.add_argument(
      "--" + flag.replace("_", "-"),
      type=kind,
      default=None,
      help=f"{text} (default {base[flag]})",
    )
  parser.add_argument(
    "--epochs",
    type=int,
    default=None,
    help=f"total number of epochs (default {base['epochs']})",
  )
  parser.add_argument(
    "--conditional",
    action="store_const",
    const=True,
    default=None,
    help=(
      "a class-conditional flow on the data's labels ('digits', .npz "
      "files with labels, supervised tensorflow-datasets): priors and "
      "coupling networks depend on the class (default: off)"
    ),
  )
  parser.add_argument(
    "--no-condition-couplings",
    dest="condition_couplings",
    action="store_const",
    const=False,
    default=None,
    help=(
      "with --conditional, condition only the priors on the class "
      "(default: the couplings too)"
    ),
  )
  parser.add_argument(
    "--dequantization",
    default=None,
    choices=flows.DEQUANTIZATIONS,
    help=(
      "'uniform' noise, or 'variational': a conditional flow q(u|k) "
      "learns the noise jointly with the model (Flow++), the bits/dim "
      "a valid bound (default uniform)"
    ),
  )
  parser.add_argument(
    "--preset",
    default=None,
    choices=tuple(presets.PRESETS),
    help=(
      "the paper's architecture (CIFAR-10, 3 levels, 512 hidden "
      "channels, 8 or 32 steps per level; needs a GPU and "
      "tensorflow-datasets' cifar10); options given explicitly "
      "override it (default: none)"
    ),
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


def _add_training_options(parser):
  """Options of how `train` and `demo` run, not stored with the run."""
  parser.add_argument(
    "--strategy",
    default="default",
    choices=distribute.STRATEGIES,
    help=(
      "tf.distribute strategy: 'mirrored' (all local GPUs), "
      "'multiworker' (every worker runs this command with its own "
      "TF_CONFIG and the same --out, which worker 0 writes; it runs "
      "under tf_keras, TF_USE_LEGACY_KERAS=1, as Keras 3's fit fails on "
      "several workers), 'tpu' (the TPU VM's or TPU_NAME's TPU); Keras' "
      "fit splits each batch over the replicas (default: one device)"
    ),
  )
  parser.add_argument(
    "--tensorboard",
    default=None,
    metavar="LOGDIR",
    help=(
      "write TensorBoard summaries to LOGDIR: train and test bits/dim "
      "and a grid of samples per epoch (needs the [tensorboard] "
      "extra); view with tensorboard --logdir LOGDIR (default: none)"
    ),
  )


def build_parser() -> argparse.ArgumentParser:
  """The `argparse` parser of `tfp-emerging`."""
  defaults = training.RunConfig()
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

  train = commands.add_parser("train", help="train a flow on images")
  _add_run_options(train)
  _add_training_options(train)
  train.add_argument("--out", required=True, help="the run directory")
  train.add_argument(
    "--resume",
    action="store_true",
    help=(
      "continue the run in --out from its latest checkpoint up to "
      "--epochs; --batch-size, --learning-rate and --warmup-steps may "
      "change too (recorded in config.json), the other options come "
      "from its config.json"
    ),
  )

  evaluate = commands.add_parser("evaluate", help="test bits/dim of a run")
  evaluate.add_argument("--run", required=True, help="the run directory")
  evaluate.add_argument(
    "--json", action="store_true", help="print one JSON object"
  )
  evaluate.add_argument(
    "--samples",
    type=int,
    default=1,
    metavar="K",
    help=(
      "dequantisation draws per test image; above 1, the "
      "importance-weighted bound over the K draws (tighter, K times "
      "the cost) (default: %(default)s)"
    ),
  )

  sample = commands.add_parser("sample", help="a PNG grid of samples")
  sample.add_argument("--run", required=True, help="the run directory")
  sample.add_argument(
    "--n",
    type=int,
    default=None,
    help=(
      f"number of samples (default {image_grid.NUM_SAMPLES}); for a "
      f"class-conditional run, samples per class, one row each "
      f"(default {image_grid.SAMPLES_PER_CLASS})"
    ),
  )
  sample.add_argument(
    "--classes",
    type=_class_ids,
    default=None,
    metavar="K1,K2,...",
    help=(
      "for a class-conditional run: the classes to draw, one row each "
      "(default: every class)"
    ),
  )
  sample.add_argument(
    "--temperature",
    type=float,
    default=None,
    help=(
      f"standard deviation of the latent Gaussian (default: the run's "
      f"--sample-temperature, {defaults.sample_temperature} unless set)"
    ),
  )
  sample.add_argument(
    "--columns",
    type=int,
    default=None,
    help="images per row (default ceil(sqrt(n)))",
  )
  sample.add_argument(
    "--seed",
    type=int,
    default=None,
    help="sampling seed (default: the run's seed)",
  )
  sample.add_argument("--out", required=True, help="the PNG file to write")

  demo = commands.add_parser(
    "demo", help="train + evaluate + sample on the digits (a few minutes)"
  )
  _add_run_options(demo)
  _add_training_options(demo)
  demo.add_argument(
    "--out",
    default=os.path.join("runs", "demo"),
    help=(
      "the run directory: new, empty, or an earlier run directory of "
      "tfp-emerging, whose run is replaced (default runs/demo)"
    ),
  )

  export = commands.add_parser(
    "export", help="a SavedModel with log_prob and sample signatures"
  )
  export.add_argument("--run", required=True, help="the run directory")
  export.add_argument(
    "--out",
    required=True,
    help=(
      "the SavedModel folder to write: new or empty, outside every run "
      "directory"
    ),
  )
  export.add_argument(
    "--overwrite",
    action="store_true",
    help=(
      "replace the SavedModel already in --out, never anything else "
      "(default: refuse an --out that holds one)"
    ),
  )
  return parser


def _given_options(args):
  """The run options given on the command line."""
  return {
    name: getattr(args, name)
    for name in _RUN_OPTIONS
    if getattr(args, name) is not None
  }


def _run_config(args):
  """The `RunConfig` of the options given, over the preset's if one is
  named, over `RunConfig`'s defaults."""
  given = _given_options(args)
  if given.get("preset") is not None:
    return presets.config(given.pop("preset"), **given)
  return training.RunConfig(**given)


def _train(args):
  if args.resume:
    _train_and_report(None, args.out, args, resume=_given_options(args))
  else:
    _train_and_report(_run_config(args), args.out, args)
  return 0


def _train_and_report(config, run_dir, args, resume=None, replace=False):
  """Trains `config` in `run_dir`, or resumes the run there with the
  options in the dict `resume` given again; `replace` as in
  `training.train`."""
  strategy = distribute.make_strategy(args.strategy)
  try:
    with distribute.worker_faults(strategy):
      metrics = _run_training(config, run_dir, args, strategy, resume, replace)
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


def _run_training(config, run_dir, args, strategy, resume, replace):
  """`training.resume` with the options in the dict `resume`, or (`resume`
  `None`) `training.train` of `config`."""
  if resume is not None:
    return training.resume(
      run_dir, strategy=strategy, tensorboard=args.tensorboard, **resume
    )
  return training.train(
    config,
    run_dir,
    strategy=strategy,
    tensorboard=args.tensorboard,
    replace=replace,
  )


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
    _train_and_report(config, run_dir, args, replace=True)
    _evaluate(run_dir, as_json=False)
    _sample(run_dir, os.path.join(run_dir, run_dir_lib.DEMO_SAMPLES_FILE))
  return 0


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
    return _train(args)
  if args.command == "evaluate":
    _evaluate(args.run, args.json, args.samples)
  elif args.command == "sample":
    _sample(
      args.run,
      args.out,
      n=args.n,
      temperature=args.temperature,
      seed=args.seed,
      columns=args.columns,
      classes=args.classes,
    )
  elif args.command == "demo":
    return _demo(args)
  else:
    _export(args.run, args.out, args.overwrite)
  return 0
