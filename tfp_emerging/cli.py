"""The `tfp-emerging` command line (also `python -m tfp_emerging`).

Subcommands: `train` (a new run, or `--resume`), `evaluate`, `sample`,
`demo`, `export`; `tfp-emerging SUBCOMMAND --help` lists each one's options
with their defaults, and the docs' "Command line" page shows them at work.
The options are declared in `tfp_emerging.cli_parser`; this module only
turns them into a `RunConfig` (or the arguments of
`tfp_emerging.training.evaluate_run`, `sample_run`, `export_run`), calls
the library, which checks them, and reports; the run directories, their
files and the exit statuses are described in the docs' "Run directories"
page.

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

from collections.abc import Sequence
import json
import os
import signal
import sys

from tfp_emerging import cli_parser
from tfp_emerging import data as data_lib
from tfp_emerging import distribute
from tfp_emerging import presets
from tfp_emerging import training
from tfp_emerging.cli_parser import build_parser
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


def _run_config(args):
  """The `RunConfig` of the options given, over the preset's if one is
  named, over `RunConfig`'s defaults."""
  given = cli_parser.given_options(args)
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
        training.resume(run_dir, **how, **cli_parser.given_options(args))
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
