"""The `tfp-emerging` command line (also `python -m tfp_emerging`).

Subcommands:

* `train --dataset digits --mixing emerging --epochs N --out DIR [--resume]
  [--conditional [--no-condition-couplings]] [--preset NAME]
  [--strategy default|mirrored|multiworker|tpu] [--tensorboard LOGDIR]`:
  trains a Glow flow with `tfp_emerging.training.fit` (Keras `fit` over
  `tf.data`), writing `DIR/config.json`, `DIR/checkpoints/`,
  `DIR/metrics.json` and `DIR/samples.png` (see `tfp_emerging.training`).
  With `--resume`, `--epochs`, `--batch-size`, `--learning-rate` and
  `--warmup-steps` may change (recorded in `config.json`'s `changes`).
  `--conditional` trains a class-conditional Glow on the data's labels
  (digits, `.npz` files with labels, supervised tensorflow-datasets);
  `--preset` sets the paper's architecture (`tfp_emerging.presets`), the
  options given explicitly overriding it.
* `evaluate --run DIR [--json]`: test bits/dim of the run's latest checkpoint.
* `sample --run DIR --n 64 --temperature 0.7 --out grid.png [--classes
  0,3]`: a PNG grid of samples; for a class-conditional run one row per
  class (every class, or those of `--classes`), `--n` samples each.
* `demo [--mixing M] [--conditional] [--out runs/demo]`: train + evaluate
  + sample on the digits with the default options (`training.RunConfig`:
  about two minutes of CPU); with `--conditional`, a class-conditional flow
  and a grid with one row per digit. It replaces an earlier run in `--out`
  only if that folder is marked as a run directory (`.tfp-emerging-run`),
  only once the options, the data and the model have been checked, and
  deletes only the files a run writes.
* `export --run DIR --out SAVEDMODEL`: the run's latest checkpoint as a
  `tf.saved_model` with `log_prob` and `sample` signatures
  (`tfp_emerging.export`).
* `benchmark ...`: the arguments go to `tfp_emerging.benchmarks.main`.

`evaluate`, `sample`, `export` and `train --resume` restore the newest
intact checkpoint, warning about each corrupt one they skip.

Exit status: 0 on success (also when the test bits/dim ends above the
uniform model's: a warning, and `worse_than_uniform` in `metrics.json`); 1
when training diverged (NaN or infinite loss); 2 for bad arguments, data or
run directories (an `--out` that is a file, or a folder that is not a run
directory); 3 when the run's checkpoints exist but none can be restored
(corrupt or truncated files); 130 when interrupted. Errors are one message
on standard error, without a traceback.
"""

import argparse
import dataclasses
import importlib
import json
import os
import sys

from tfp_emerging import callbacks
from tfp_emerging import data as data_lib
from tfp_emerging import presets
from tfp_emerging import training

__all__ = ["build_parser", "main"]


# Options of `train` that define the run; `--resume` takes them from the run
# and accepts new values only for `training.RESUMABLE_OPTIONS`.
_RUN_OPTIONS = ("dataset", "data_dir", "splits", "bit_depth", "mixing",
                "num_levels", "num_steps", "hidden_channels", "kernel_size",
                "conditional", "condition_couplings", "preset",
                "batch_size", "learning_rate", "warmup_steps", "seed",
                "keep_checkpoints", "sample_temperature", "epochs")
# Dataset names that are not paths even if a file of that name exists here.
_NAMED_DATASETS = ("digits", "skimage-crops")
# The exit status of each error (see the module docstring).
_EXIT_STATUSES = ((training.TrainingDiverged, 1), (data_lib.DataError, 2),
                  (training.RunError, 2), (training.CorruptCheckpointError, 3))


def _mixings():
  from tfp_emerging import flows  # pylint: disable=g-import-not-at-top
  return tuple(flows.MIXINGS)


def _add_run_options(parser):
  """Options of a run, defaulting to `RunConfig`'s."""
  base = dataclasses.asdict(training.RunConfig())
  parser.add_argument(
      "--dataset", default=None,
      help=("'digits' (bundled, default), 'skimage-crops' (16x16 crops of "
            "scikit-image's bundled photos), a tensorflow-datasets name such "
            "as 'mnist' or 'cifar10' (needs the [datasets] extra), an .npz "
            "file or a folder of PNG images"))
  parser.add_argument("--data-dir", default=None,
                      help="tensorflow-datasets data folder")
  parser.add_argument(
      "--split", dest="splits", default=None, type=_split_names,
      metavar="TRAIN,TEST",
      help=("the source's split names for training and testing, e.g. "
            "'train,validation' or 'train[:90%%],train[90%%:]' (default: the "
            "source's own: train/test, or train/validation)"))
  parser.add_argument(
      "--bit-depth", type=int, default=None, choices=(8,),
      help="reduce 16-bit data to 8 bits (default: keep the data's depth)")
  parser.add_argument("--mixing", default=None, choices=_mixings(),
                      help=f"channel mixing (default {base['mixing']})")
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
      ("sample_temperature", float, "temperature of samples.png")):
    parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                        help=f"{text} (default {base[flag]})")
  parser.add_argument("--epochs", type=int, default=None,
                      help=f"total number of epochs (default {base['epochs']})")
  parser.add_argument(
      "--conditional", action="store_const", const=True, default=None,
      help=("a class-conditional flow on the data's labels ('digits', .npz "
            "files with labels, supervised tensorflow-datasets): priors and "
            "coupling networks depend on the class"))
  parser.add_argument(
      "--no-condition-couplings", dest="condition_couplings",
      action="store_const", const=False, default=None,
      help="with --conditional, condition only the priors on the class")
  parser.add_argument(
      "--preset", default=None, choices=tuple(presets.PRESETS),
      help=("the paper's architecture (CIFAR-10, 3 levels, 512 hidden "
            "channels, 8 or 32 steps per level; needs a GPU and "
            "tensorflow-datasets' cifar10); options given explicitly "
            "override it"))


def _class_ids(value):
  try:
    ids = [int(part) for part in value.split(",")]
  except ValueError:
    ids = None
  if not ids or min(ids) < 0:
    raise argparse.ArgumentTypeError(
        f"expected class ids >= 0 separated by commas (e.g. 0,3,7); got "
        f"{value!r}")
  return ids


def _split_names(value):
  names = [name.strip() for name in value.split(",")]
  if len(names) != 2 or not all(names):
    raise argparse.ArgumentTypeError(
        f"expected two split names TRAIN,TEST (e.g. train,validation); got "
        f"{value!r}")
  return names


def _add_training_options(parser):
  """Options of how `train` and `demo` run, not stored with the run."""
  from tfp_emerging import distribute  # pylint: disable=g-import-not-at-top
  parser.add_argument(
      "--strategy", default="default", choices=distribute.STRATEGIES,
      help=("tf.distribute strategy: 'mirrored' (all local GPUs), "
            "'multiworker' (every worker runs this command with its own "
            "TF_CONFIG), 'tpu' (the TPU VM's or TPU_NAME's TPU); Keras' fit "
            "splits each batch over the replicas (default: one device)"))
  parser.add_argument(
      "--tensorboard", default=None, metavar="LOGDIR",
      help=("write TensorBoard summaries to LOGDIR: train and test bits/dim "
            "and a grid of samples per epoch (needs the [tensorboard] "
            "extra); view with tensorboard --logdir LOGDIR"))


def build_parser():
  """The `argparse` parser of `tfp-emerging`."""
  parser = argparse.ArgumentParser(
      prog="tfp-emerging",
      description=("Train, evaluate and sample Glow flows with emerging, "
                   "periodic and 1x1 convolutions."))
  commands = parser.add_subparsers(dest="command", required=True)

  train = commands.add_parser("train", help="train a flow on images")
  _add_run_options(train)
  _add_training_options(train)
  train.add_argument("--out", required=True, help="the run directory")
  train.add_argument(
      "--resume", action="store_true",
      help=("continue the run in --out from its latest checkpoint up to "
            "--epochs; --batch-size, --learning-rate and --warmup-steps may "
            "change too (recorded in config.json), the other options come "
            "from its config.json"))

  evaluate = commands.add_parser("evaluate", help="test bits/dim of a run")
  evaluate.add_argument("--run", required=True, help="the run directory")
  evaluate.add_argument("--json", action="store_true",
                        help="print one JSON object")

  sample = commands.add_parser("sample", help="a PNG grid of samples")
  sample.add_argument("--run", required=True, help="the run directory")
  sample.add_argument(
      "--n", type=int, default=None,
      help=("number of samples (default 64); for a class-conditional run, "
            f"samples per class, one row each (default "
            f"{callbacks.SAMPLES_PER_CLASS})"))
  sample.add_argument(
      "--classes", type=_class_ids, default=None, metavar="K1,K2,...",
      help=("for a class-conditional run: the classes to draw, one row each "
            "(default: every class)"))
  sample.add_argument("--temperature", type=float, default=1.0,
                      help="standard deviation of the latent Gaussian")
  sample.add_argument("--columns", type=int, default=None,
                      help="images per row (default ceil(sqrt(n)))")
  sample.add_argument("--seed", type=int, default=None,
                      help="sampling seed (default: the run's seed)")
  sample.add_argument("--out", required=True, help="the PNG file to write")

  demo = commands.add_parser(
      "demo", help="train + evaluate + sample on the digits (a few minutes)")
  _add_run_options(demo)
  _add_training_options(demo)
  demo.add_argument(
      "--out", default=os.path.join("runs", "demo"),
      help=("the run directory: new, empty, or an earlier run directory of "
            "tfp-emerging, whose run is replaced"))

  export = commands.add_parser(
      "export", help="a SavedModel with log_prob and sample signatures")
  export.add_argument("--run", required=True, help="the run directory")
  export.add_argument("--out", required=True,
                      help="the SavedModel folder to write")

  commands.add_parser(
      "benchmark", add_help=False,
      help=("speed benchmarks: the remaining arguments go to "
            "tfp_emerging.benchmarks (see `tfp-emerging benchmark --help`)"))
  return parser


def _run_config(args):
  """A `RunConfig` from the parsed options and the subcommand's defaults."""
  values = dataclasses.asdict(training.RunConfig())
  given = _given_options(args)
  if given.get("preset") is not None:
    values.update(presets.options(given["preset"]))
  values.update(given)
  for name, low in (("num_levels", 1), ("num_steps", 1),
                    ("hidden_channels", 1), ("kernel_size", 1), ("epochs", 1),
                    ("batch_size", 1), ("keep_checkpoints", 1),
                    ("warmup_steps", 0), ("sample_temperature", 0)):
    if values[name] < low:
      raise training.RunError(
          f"--{name.replace('_', '-')} must be >= {low}; got {values[name]}.")
  if not values["learning_rate"] > 0:
    raise training.RunError(
        f"--learning-rate must be > 0; got {values['learning_rate']}.")
  if not values["condition_couplings"] and not values["conditional"]:
    raise training.RunError("--no-condition-couplings goes with "
                            "--conditional.")
  return training.RunConfig(**values)


def _given_options(args):
  """The run options given on the command line, dataset paths made absolute."""
  given = {name: getattr(args, name) for name in _RUN_OPTIONS
           if getattr(args, name) is not None}
  dataset = given.get("dataset")
  if (dataset is not None and dataset not in _NAMED_DATASETS and
      os.path.exists(dataset)):
    given["dataset"] = os.path.abspath(dataset)
  return given


def _option(name):
  return "--" + {"splits": "split"}.get(name, name).replace("_", "-")


def _train(args):
  if not args.resume:
    _train_and_report(_run_config(args), args.out, args)
    return 0
  stored = training.read_config(args.out)
  given = _given_options(args)
  changes = {name: given.pop(name) for name in training.RESUMABLE_OPTIONS
             if name in given}
  _run_config(args)  # checks the values given
  clashes = [f"{_option(name)} {value} (the run has "
             f"{getattr(stored, name)})" for name, value in given.items()
             if value != getattr(stored, name)]
  if clashes:
    raise training.RunError(
        f"{args.out}: --resume continues the stored run; these options "
        f"differ from its config.json and cannot change: "
        f"{', '.join(clashes)} (only "
        f"{', '.join(_option(n) for n in training.RESUMABLE_OPTIONS)} can).")
  _train_and_report(stored, args.out, args, resume=changes)
  return 0


def _train_and_report(config, run_dir, args, resume=None, replace=False):
  """Trains `config` in `run_dir`, or resumes the run there with the
  options in the dict `resume` changed; `replace` as in `training.train`."""
  from tfp_emerging import distribute  # pylint: disable=g-import-not-at-top
  try:
    strategy = distribute.make_strategy(args.strategy)
  except distribute.StrategyError as e:
    raise training.RunError(str(e)) from e
  try:
    if resume is not None:
      metrics = training.resume(run_dir, strategy=strategy,
                                tensorboard=args.tensorboard, **resume)
    else:
      metrics = training.train(config, run_dir, strategy=strategy,
                               tensorboard=args.tensorboard, replace=replace)
  except KeyboardInterrupt:
    print(f"\ninterrupted; every finished epoch is checkpointed. Continue "
          f"with: tfp-emerging train --out {run_dir} --resume", file=sys.stderr)
    raise
  if metrics:
    print(f"test bits/dim after epoch {metrics[-1]['epoch']}: "
          f"{metrics[-1]['test_bits_per_dim']:.4f}")
    _warn_if_worse_than_uniform(metrics[-1], run_dir)
  print(f"wrote {run_dir}/{{{training.CONFIG_FILE}, {training.METRICS_FILE}, "
        f"{training.SAMPLES_FILE}, {training.CHECKPOINT_DIR}/}}")
  return metrics


def _warn_if_worse_than_uniform(record, run_dir):
  """A last warning if the final epoch is flagged `worse_than_uniform`."""
  if record.get("worse_than_uniform"):
    callbacks.print_warning(
        f"the final test bits/dim {record['test_bits_per_dim']:.4f} is worse "
        f"than the uniform model's (\"worse_than_uniform\": true in "
        f"{os.path.join(run_dir, training.METRICS_FILE)}).")


def _evaluate(run_dir, as_json):
  config, model, epoch, path = training.load_run(run_dir)
  data = training.load_data(config)
  config.with_data(data)  # the same image shape and levels
  bpd = training.evaluate(model, data, config.batch_size, seed=config.seed,
                         labels=config.conditional)
  result = {
      "bits_per_dim": bpd,
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
  if as_json:
    print(json.dumps(result))
  else:
    print(f"test bits/dim: {bpd:.4f} ({config.dataset}, {config.mixing} "
          f"mixing, {result['num_examples']} test images, epoch {epoch})")
  return result


def _sample(run_dir, n, temperature, out, seed=None, columns=None,
            classes=None):
  """Writes a PNG grid of samples of the run; a class-conditional run's has
  one row per class (of `classes`, default every class), `n` each."""
  if n is not None and n < 1:
    raise training.RunError(f"--n must be >= 1; got {n}.")
  if columns is not None and columns < 1:
    raise training.RunError(f"--columns must be >= 1; got {columns}.")
  if temperature < 0:
    raise training.RunError(f"--temperature must be >= 0; got {temperature}.")
  if os.path.isdir(out):
    raise training.RunError(f"--out {out}: is a folder; give the PNG file to "
                            f"write.")
  config, model, _, _ = training.load_run(run_dir)
  n = callbacks.default_sample_count(model) if n is None else n
  try:
    grid = callbacks.sample_grid(model, n, temperature,
                                 seed=config.seed if seed is None else seed,
                                 columns=columns, classes=classes)
  except ValueError as e:  # its message begins with the option's name
    raise training.RunError(f"--{e}") from e
  try:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    callbacks.write_png(out, grid)
  except OSError as e:
    raise training.RunError(f"--out {out}: cannot write it ({e}).") from e
  if model.num_classes is None:
    print(f"wrote {n} samples at temperature {temperature} to {out}")
  else:
    rows = range(model.num_classes) if classes is None else classes
    print(f"wrote {n} samples per class at temperature {temperature} to "
          f"{out}, one row per class: {', '.join(map(str, rows))}")


def _demo(args):
  run_dir = args.out
  config = _run_config(args)
  kind = "class-conditional " if config.conditional else ""
  print(f"demo: {kind}{config.mixing} Glow (levels {config.num_levels}, "
        f"steps per level {config.num_steps}, {config.hidden_channels} hidden "
        f"channels) on {config.dataset}, {config.epochs} epochs -> {run_dir}")
  _train_and_report(config, run_dir, args, replace=True)
  _evaluate(run_dir, as_json=False)
  _sample(run_dir, None, config.sample_temperature,
          os.path.join(run_dir, callbacks.DEMO_SAMPLES_FILE))
  return 0


def _export(run_dir, out):
  from tfp_emerging import export  # pylint: disable=g-import-not-at-top
  if os.path.exists(out) and not os.path.isdir(out):
    raise training.RunError(f"--out {out}: is a file; give the SavedModel "
                            f"folder to write.")
  _, model, epoch, _ = training.load_run(run_dir)
  export.export(model, out)
  print(f"wrote a SavedModel of {run_dir} (epoch {epoch}) with signatures "
        f"log_prob and sample to {out}")


def _benchmark(args):
  try:
    benchmarks = importlib.import_module("tfp_emerging.benchmarks")
  except ModuleNotFoundError as e:
    if e.name != "tfp_emerging.benchmarks":
      raise
    raise training.RunError(
        "the benchmark subcommand needs the module tfp_emerging.benchmarks, "
        "which this installation does not have.") from e
  return benchmarks.main(args.args)


def main(argv=None):
  """Runs `tfp-emerging` with `argv` (default `sys.argv[1:]`).

  Returns:
    The exit status.
  """
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = build_parser()
  if argv[:1] == ["benchmark"]:
    # Everything after `benchmark` belongs to the benchmarks' own parser.
    args = argparse.Namespace(command="benchmark", args=argv[1:])
  else:
    args = parser.parse_args(argv)
  try:
    if args.command == "train":
      return _train(args)
    if args.command == "evaluate":
      _evaluate(args.run, args.json)
      return 0
    if args.command == "sample":
      _sample(args.run, args.n, args.temperature, args.out, seed=args.seed,
              columns=args.columns, classes=args.classes)
      return 0
    if args.command == "demo":
      return _demo(args)
    if args.command == "export":
      _export(args.run, args.out)
      return 0
    return _benchmark(args) or 0
  except tuple(kind for kind, _ in _EXIT_STATUSES) as e:
    print(f"tfp-emerging {args.command}: error: {e}", file=sys.stderr)
    return next(status for kind, status in _EXIT_STATUSES
                if isinstance(e, kind))
  except KeyboardInterrupt:
    return 130
