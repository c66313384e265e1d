"""The paper's comparison of channel mixings, on data that ships with packages.

Hoogeboom et al. (2019) report that emerging and periodic convolutions give
better test bits/dim than Glow's 1x1 convolution (CIFAR-10, 8 steps per
level: 1x1 3.46, emerging 3.43; 4 steps: 3.56 vs 3.51; galaxy images: 1x1
2.03, periodic 1.98, emerging 1.98). This study trains the same Glow
(`tfp_emerging.flows.Glow`) with every mixing on

* `"digits"`: scikit-learn's 8x8 digits (17 grey levels, 1500 train, 297
  test), and
* `"skimage-crops"`: random 16x16 RGB crops of scikit-image's bundled
  photographs, train and test from disjoint pixel bands (4000 train, 1000
  test; `tfp_emerging.data.skimage_crops`),

both through `tfp_emerging.data.load`,

with the same architecture, optimiser (Adam with a linear warm-up), batch
size, number of epochs, data order and evaluation noise for every mixing, and
several seeds (`seed` sets the initial weights and the order of the batches).
The mixings are `tfp_emerging.flows.MIXINGS` plus `"1x1-wide"`: Glow's 1x1
with coupling networks widened until its parameter count is as close as
possible to the emerging model's (emerging adds a `k x k` kernel per step),
so that a gain of emerging cannot be only its extra parameters.

Every model trains through the package's one training path,
`tfp_emerging.training.fit` (Keras `fit` over `tf.data`, the command line's
path), built by `tfp_emerging.training.build_model`. Each (dataset, mixing)
model is built and its training and evaluation steps are traced once (one
step and one test batch through `fit`); every seed then starts from freshly
initialised variables (copied from a new model built with that seed), a
reset optimiser and a new ActNorm data-dependent initialisation, so tracing
is paid once per model and reported apart from the per-epoch wall-clock.

Test bits/dim: the mean over the test images of the dequantised bound
(`tfp_emerging.training.evaluate`'s), with each test image's dequantisation
noise drawn statelessly from `EVAL_SEED` and its index (the same noise for
every mixing and seed). The batches and the training noise are seeded by
the run's seed (`tfp_emerging.data.train_batches`).

Outputs in `--out`: `runs.json` (the settings and one record per run, with
per-epoch metrics), `summary.md` (the table: mean +- standard deviation over
seeds, parameter counts, seconds per epoch, and the paired difference of each
mixing to the 1x1), and `comparison.png` (test bits/dim per mixing, and the
test curves).

Command line: `python -m benchmarks.compare [--quick] [--seeds N]
[--epochs N] [--datasets digits,skimage-crops] [--mixings ...] [--out DIR]`.
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import numpy as np
import tensorflow as tf

from tfp_emerging import data as data_lib
from tfp_emerging import training
from tfp_emerging.training import callbacks

__all__ = [
  "DATASETS",
  "MIXINGS",
  "QUICK_SETTINGS",
  "SETTINGS",
  "STUDY_OPTIONS",
  "main",
  "matched_hidden_channels",
  "num_parameters",
  "run_config",
  "run_study",
  "summarize",
]

DATASETS = ("digits", "skimage-crops")
WIDE = "1x1-wide"
# The package's mixings and the parameter-matched wide 1x1 baseline.
MIXINGS = ("1x1", "lu", "qr", "emerging", "periodic", WIDE)

# The `RunConfig` options a study's setting holds, in the order recorded.
STUDY_OPTIONS = (
  "num_levels",
  "num_steps",
  "hidden_channels",
  "kernel_size",
  "batch_size",
  "learning_rate",
  "warmup_steps",
  "epochs",
)


def _settings(num_train=None, num_test=None, **options):
  """A dataset's setting: the `STUDY_OPTIONS` of `RunConfig(**options)`
  (`tfp-emerging train`'s defaults for those not given) and, where given,
  the study's share of the train and test images."""
  config = training.RunConfig(**options)
  sizes = dict(num_train=num_train, num_test=num_test)
  return {
    **{name: getattr(config, name) for name in STUDY_OPTIONS},
    **{name: size for name, size in sizes.items() if size is not None},
  }


# Per dataset: the model, the optimisation and the data sizes of the full
# study, sized to finish in under an hour on 2 CPU cores.
_STUDY = dict(num_steps=4, hidden_channels=32, learning_rate=1e-3)
SETTINGS = {
  "digits": _settings(**_STUDY),
  "skimage-crops": _settings(
    **_STUDY, epochs=12, num_train=4000, num_test=1000
  ),
}
# `--quick`: a tiny model for one epoch, for the test suite; enough steps
# (93) for every mixing to end below the uniform model's log2(17) = 4.09.
_QUICK = dict(num_steps=1, hidden_channels=8, warmup_steps=2, epochs=1)
QUICK_SETTINGS = {
  "digits": _settings(
    **_QUICK, batch_size=16, learning_rate=1e-2, num_train=1500, num_test=64
  ),
  "skimage-crops": _settings(
    **_QUICK, batch_size=32, learning_rate=1e-3, num_train=96, num_test=32
  ),
}
# Seed of the test images' dequantisation noise (the same for every run).
EVAL_SEED = 12345


def load_dataset(name, settings):
  """The `ImageDataset` of `name` (`tfp_emerging.data.load`), checked to fit
  the study's model."""
  if name not in DATASETS:
    raise ValueError(f"`dataset` must be one of {DATASETS}; got {name!r}.")
  return data_lib.load(name, num_levels=settings["num_levels"])


def _counts(data, settings):
  """`(num_train, num_test)`: the study's share of each split."""
  return tuple(
    min(
      settings.get(f"num_{split}", data.num_examples[split]),
      data.num_examples[split],
    )
    for split in ("train", "test")
  )


def run_config(name, mixing, settings, hidden_channels, seed, data=None):
  """The `training.RunConfig` of one model of the study (`1x1-wide` is the
  1x1 mixing at `hidden_channels`); with `data`, its data fields set."""
  options = {option: settings[option] for option in STUDY_OPTIONS}
  config = training.RunConfig(
    **{**options, "hidden_channels": hidden_channels},
    dataset=name,
    mixing="1x1" if mixing == WIDE else mixing,
    seed=seed,
  )
  return config if data is None else config.with_data(data)


def num_parameters(flow):
  """Number of trainable scalars of `flow`."""
  return int(sum(np.prod(v.shape) for v in flow.trainable_variables))


def _count_parameters(mixing, image_shape, settings, hidden_channels):
  config = dataclasses.replace(
    run_config("count", mixing, settings, hidden_channels, seed=0),
    image_shape=list(image_shape),
    num_bins=256,
  )
  return num_parameters(training.build_model(config).flow)


def matched_hidden_channels(image_shape, settings):
  """The 1x1 coupling width whose parameter count is closest to emerging's.

  Widens the 1x1 model's `hidden_channels` one at a time from the study's
  width until its count passes the emerging model's, and keeps the closer of
  the last two widths.

  Returns:
    `(hidden_channels, wide_count, emerging_count)`.
  """
  width = settings["hidden_channels"]
  target = _count_parameters("emerging", image_shape, settings, width)
  best = (width, _count_parameters("1x1", image_shape, settings, width))
  while best[1] < target:
    count = _count_parameters("1x1", image_shape, settings, best[0] + 1)
    if abs(count - target) > abs(best[1] - target):
      break
    best = (best[0] + 1, count)
  return best[0], best[1], target


def _reset(model, fresh):
  """Fresh weights (and uninitialised ActNorms) from the model `fresh`, and a
  zeroed optimiser (step counter included)."""
  for target, source in zip(model.flow.variables, fresh.flow.variables):
    if target.shape != source.shape:
      raise AssertionError(
        f"variable {target.name} {target.shape} does not "
        f"match {source.name} {source.shape}."
      )
    target.assign(source)
  for v in model.optimizer.variables:
    v.assign(tf.zeros_like(v))


def _train_model(data, mixing, settings, hidden_channels, seeds, log):
  """Trains one (dataset, mixing) model for every seed; one record per seed."""
  num_train, num_test = _counts(data, settings)
  first = run_config(
    data.name, mixing, settings, hidden_channels, seeds[0], data
  )
  start = time.time()
  model = training.build_model(first)
  params = num_parameters(model.flow)
  # Trace the training and evaluation steps once (one step and one test
  # batch through the one training path); every seed then resets the
  # variables.
  training.fit(
    model,
    data,
    dataclasses.replace(first, epochs=1),
    num_train=first.batch_size,
    num_test=first.batch_size,
    evaluation_seed=EVAL_SEED,
  )
  trace_seconds = time.time() - start
  log(
    f"  {data.name} {mixing}: {params} parameters, traced in "
    f"{trace_seconds:.1f} s"
  )

  records = []
  for seed in seeds:
    config = dataclasses.replace(first, seed=seed)
    _reset(model, training.build_model(config))
    recorder = callbacks.EpochRecorder()
    try:
      training.fit(
        model,
        data,
        config,
        recorder=recorder,
        num_train=num_train,
        num_test=num_test,
        evaluation_seed=EVAL_SEED,
      )
    except training.TrainingDiverged as e:
      log(f"    seed {seed}: {e}")
    epochs = recorder.records
    for epoch in epochs:
      log(
        f"    seed {seed} epoch {epoch['epoch']}: train "
        f"{epoch['train_bits_per_dim']:.4f}, test "
        f"{epoch['test_bits_per_dim']:.4f} bits/dim, "
        f"{epoch['train_seconds']:.1f} s"
      )
    records.append(
      {
        "dataset": data.name,
        "mixing": mixing,
        "seed": seed,
        "hidden_channels": hidden_channels,
        "num_parameters": params,
        "epochs": len(epochs),
        "test_bits_per_dim": epochs[-1]["test_bits_per_dim"],
        "train_bits_per_dim": epochs[-1]["train_bits_per_dim"],
        "seconds_per_epoch": float(
          np.mean([e["train_seconds"] for e in epochs])
        ),
        "trace_seconds": round(trace_seconds, 3),
        "history": epochs,
      }
    )
  return records


def run_study(datasets, mixings, seeds, settings, log=print):
  """Trains every (dataset, mixing, seed); returns the list of run records."""
  records = []
  for name in datasets:
    config = settings[name]
    data = load_dataset(name, config)
    num_train, num_test = _counts(data, config)
    log(
      f"{name}: {num_train} train, {num_test} test images "
      f"{list(data.image_shape)}, {data.num_bins} levels; {data.source}"
    )
    wide, wide_count, emerging_count = matched_hidden_channels(
      data.image_shape, config
    )
    log(
      f"  wide 1x1: hidden_channels {wide} -> {wide_count} parameters "
      f"(emerging: {emerging_count})"
    )
    for mixing in mixings:
      width = wide if mixing == WIDE else config["hidden_channels"]
      records.extend(_train_model(data, mixing, config, width, seeds, log))
  return records


def summarize(records):
  """Per (dataset, mixing): mean and std over seeds, and paired gaps to 1x1.

  Returns a list of dicts with `dataset`, `mixing`, `num_parameters`,
  `hidden_channels`, `seeds`, `test_mean`, `test_std` (sample std, ddof=1),
  `seconds_per_epoch`, and, where the 1x1 ran with the same seeds,
  `gap_mean`/`gap_std`: the per-seed `bpd(mixing) - bpd(1x1)`.
  """
  rows = []
  keys = []
  for r in records:
    if (r["dataset"], r["mixing"]) not in keys:
      keys.append((r["dataset"], r["mixing"]))
  for dataset, mixing in keys:
    runs = [
      r for r in records if r["dataset"] == dataset and r["mixing"] == mixing
    ]
    bpd = np.array([r["test_bits_per_dim"] for r in runs])
    row = {
      "dataset": dataset,
      "mixing": mixing,
      "num_parameters": runs[0]["num_parameters"],
      "hidden_channels": runs[0]["hidden_channels"],
      "seeds": [r["seed"] for r in runs],
      "test_mean": float(np.mean(bpd)),
      "test_std": float(np.std(bpd, ddof=1)) if len(runs) > 1 else 0.0,
      "seconds_per_epoch": float(
        np.mean([r["seconds_per_epoch"] for r in runs])
      ),
      "trace_seconds": runs[0]["trace_seconds"],
    }
    base = {
      r["seed"]: r["test_bits_per_dim"]
      for r in records
      if r["dataset"] == dataset and r["mixing"] == "1x1"
    }
    if mixing != "1x1" and all(r["seed"] in base for r in runs) and base:
      gaps = np.array([r["test_bits_per_dim"] - base[r["seed"]] for r in runs])
      row["gap_mean"] = float(np.mean(gaps))
      row["gap_std"] = float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.0
    rows.append(row)
  return rows


def summary_table(rows):
  """The summary as a Markdown table."""
  lines = [
    "| dataset | mixing | hidden | parameters | test bits/dim (mean +- std)"
    " | vs 1x1, paired (mean +- std) | s/epoch | trace s |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for row in rows:
    gap = (
      f"{row['gap_mean']:+.4f} +- {row['gap_std']:.4f}"
      if "gap_mean" in row
      else ""
    )
    lines.append(
      f"| {row['dataset']} | {row['mixing']} | {row['hidden_channels']} | "
      f"{row['num_parameters']} | {row['test_mean']:.4f} +- "
      f"{row['test_std']:.4f} | {gap} | {row['seconds_per_epoch']:.2f} | "
      f"{row['trace_seconds']:.1f} |"
    )
  return "\n".join(lines) + "\n"


def plot(records, rows, path):
  """Writes `comparison.png`: final test bits/dim and test curves per
  dataset."""
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  datasets = []
  for row in rows:
    if row["dataset"] not in datasets:
      datasets.append(row["dataset"])
  fig, axes = plt.subplots(
    len(datasets), 2, figsize=(11, 3.6 * len(datasets)), squeeze=False
  )
  for (bars, curves), dataset in zip(axes, datasets):
    mine = [row for row in rows if row["dataset"] == dataset]
    positions = np.arange(len(mine))
    means = np.array([row["test_mean"] for row in mine])
    stds = np.array([row["test_std"] for row in mine])
    bars.errorbar(positions, means, yerr=stds, fmt="o", capsize=4)
    for row, x in zip(mine, positions):
      seeds = [
        r["test_bits_per_dim"]
        for r in records
        if r["dataset"] == dataset and r["mixing"] == row["mixing"]
      ]
      bars.plot([x] * len(seeds), seeds, ".", color="grey", alpha=0.6)
    bars.set_xticks(positions)
    bars.set_xticklabels(
      [f"{row['mixing']}\n{row['num_parameters']}" for row in mine], fontsize=8
    )
    bars.set_ylabel("test bits/dim")
    bars.set_title(
      f"{dataset}: final test bits/dim (mean +- std, dots: seeds)", fontsize=9
    )
    for row in mine:
      histories = [
        r["history"]
        for r in records
        if r["dataset"] == dataset and r["mixing"] == row["mixing"]
      ]
      length = min(len(h) for h in histories)
      curve = np.mean(
        [[e["test_bits_per_dim"] for e in h[:length]] for h in histories],
        axis=0,
      )
      curves.plot(
        np.arange(1, length + 1),
        curve,
        label=row["mixing"],
        marker="." if length < 10 else None,
      )
    curves.set_xlabel("epoch")
    curves.set_ylabel("test bits/dim (mean over seeds)")
    curves.set_title(f"{dataset}: test curves", fontsize=9)
    curves.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _names(value, allowed, option):
  names = [v.strip() for v in value.split(",") if v.strip()]
  bad = [v for v in names if v not in allowed]
  if bad or not names:
    raise argparse.ArgumentTypeError(
      f"{option}: expected a comma-separated subset of {', '.join(allowed)};"
      f" got {value!r}."
    )
  return names


def build_parser():
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks.compare",
    description=(
      "Train every channel mixing on the same data, model and "
      "schedule with several seeds; report test bits/dim."
    ),
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="tiny models and data, for a smoke test",
  )
  parser.add_argument(
    "--seeds",
    type=int,
    default=None,
    help="number of seeds 0..N-1 (default 3, quick 2)",
  )
  parser.add_argument(
    "--epochs",
    type=int,
    default=None,
    help="epochs for every dataset (default: per dataset)",
  )
  parser.add_argument(
    "--datasets",
    default=",".join(DATASETS),
    type=lambda v: _names(v, DATASETS, "--datasets"),
    help=f"comma-separated subset of {','.join(DATASETS)}",
  )
  parser.add_argument(
    "--mixings",
    default=",".join(MIXINGS),
    type=lambda v: _names(v, MIXINGS, "--mixings"),
    help=f"comma-separated subset of {','.join(MIXINGS)}",
  )
  parser.add_argument(
    "--out",
    default="benchmarks/results",
    help="folder for runs.json, summary.md, comparison.png",
  )
  return parser


def main(argv=None):
  """Runs the study; returns the summary rows."""
  args = build_parser().parse_args(argv)
  settings = {
    name: dict(config)
    for name, config in (QUICK_SETTINGS if args.quick else SETTINGS).items()
  }
  seeds = args.seeds if args.seeds is not None else (2 if args.quick else 3)
  if seeds < 1:
    raise SystemExit("--seeds: must be at least 1.")
  if args.epochs is not None:
    if args.epochs < 1:
      raise SystemExit("--epochs: must be at least 1.")
    for config in settings.values():
      config["epochs"] = args.epochs
  os.makedirs(args.out, exist_ok=True)
  start = time.time()
  records = run_study(args.datasets, args.mixings, list(range(seeds)), settings)
  rows = summarize(records)
  table = summary_table(rows)
  arguments = sys.argv[1:] if argv is None else list(argv)
  command = "python -m benchmarks.compare " + " ".join(arguments)
  total = time.time() - start
  with open(os.path.join(args.out, "runs.json"), "w", encoding="utf-8") as f:
    json.dump(
      {
        "command": command.strip(),
        "arguments": arguments,
        "settings": {name: settings[name] for name in args.datasets},
        "seeds": list(range(seeds)),
        "total_seconds": round(total, 1),
        "machine": {
          "cpus": os.cpu_count(),
          "platform": platform.platform(),
          "tensorflow": tf.__version__,
        },
        "summary": rows,
        "runs": records,
      },
      f,
      indent=1,
    )
  with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
    f.write(f"`{command.strip()}` ({total / 60:.1f} min in total)\n\n")
    f.write(table)
  plot(records, rows, os.path.join(args.out, "comparison.png"))
  print(table)
  print(
    f"total {total / 60:.1f} min; wrote {args.out}/runs.json, "
    f"summary.md, comparison.png"
  )
  return rows


if __name__ == "__main__":
  main()
