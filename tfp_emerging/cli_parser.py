"""The options of the `tfp-emerging` command line, declared once as data.

`build_parser` builds the `argparse` parser of every subcommand from the
tables here: the run options (`RunConfig` fields, spelled
`tfp_emerging.training.config.flag`, their types and defaults those of
`RunConfig`), the options of how a run trains, and each subcommand's own.
`tfp_emerging.cli` runs the parsed commands.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import tfp_emerging
from tfp_emerging import distribute
from tfp_emerging import flows
from tfp_emerging import presets
from tfp_emerging import training
from tfp_emerging.training import config
from tfp_emerging.training import sample_grids

__all__ = ["build_parser", "given_options"]


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
        f"number of samples (default {sample_grids.NUM_SAMPLES}); for a "
        f"class-conditional run, samples per class, one row each (default "
        f"{sample_grids.SAMPLES_PER_CLASS})",
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


def given_options(args: argparse.Namespace) -> dict[str, Any]:
  """The run options given on the command line: `{field: value}` of those
  of `args` (parsed by `build_parser`) that are not `None`."""
  return {
    name: getattr(args, name)
    for name, *_ in _RUN_OPTIONS
    if getattr(args, name) is not None
  }
