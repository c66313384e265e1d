"""The paper's comparison of channel mixings, on data that ships with packages.

Hoogeboom et al. (2019) report that emerging and periodic convolutions give
better test bits/dim than Glow's 1x1 convolution (CIFAR-10, 8 steps per
level: 1x1 3.46, emerging 3.43; 4 steps: 3.56 vs 3.51; galaxy images: 1x1
2.03, periodic 1.98, emerging 1.98). This study trains the same Glow
(`tfp_emerging.flows.Glow`) with every mixing on

* `"digits"`: scikit-learn's 8x8 digits (17 grey levels, 1500 train, 297
  test; `tfp_emerging.data.load_digits`), and
* `"skimage-crops"`: random 16x16 RGB crops of scikit-image's bundled
  photographs, train and test from disjoint pixel bands
  (`tfp_emerging.natural_images.load_crops`),

with the same architecture, optimiser (Adam with a linear warm-up), batch
size, number of epochs, data order and evaluation noise for every mixing, and
several seeds (`seed` sets the initial weights and the order of the batches).
The mixings are `tfp_emerging.flows.MIXINGS` plus `"1x1-wide"`: Glow's 1x1
with coupling networks widened until its parameter count is as close as
possible to the emerging model's (emerging adds a `k x k` kernel per step),
so that a gain of emerging cannot be only its extra parameters.

Each (dataset, mixing) model is built and its training and evaluation steps
are traced once; every seed then starts from freshly initialised variables
(copied from a new `Glow(..., seed=seed)`), a reset optimiser and a new
ActNorm data-dependent initialisation, so tracing is paid once per model and
reported apart from the per-epoch wall-clock.

Test bits/dim: the mean over the test images of the dequantised bound, with
the dequantisation noise drawn statelessly from fixed seeds (the same noise
for every mixing). The training noise is fresh.

Outputs in `--out`: `runs.json` (the settings and one record per run, with
per-epoch metrics), `summary.md` (the table: mean +- standard deviation over
seeds, parameter counts, seconds per epoch, and the paired difference of each
mixing to the 1x1), and `comparison.png` (test bits/dim per mixing, and the
test curves).

Command line: `python -m tfp_emerging.compare [--quick] [--seeds N]
[--epochs N] [--datasets digits,skimage-crops] [--mixings ...] [--out DIR]`,
or `benchmarks/compare.py` with the same arguments.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import tensorflow as tf

from tfp_emerging import data as data_lib
from tfp_emerging import natural_images

__all__ = ["DATASETS", "MIXINGS", "SETTINGS", "QUICK_SETTINGS", "main",
           "matched_hidden_channels", "num_parameters", "run_study",
           "summarize"]

DATASETS = ("digits", "skimage-crops")
WIDE = "1x1-wide"
# The package's mixings and the parameter-matched wide 1x1 baseline.
MIXINGS = ("1x1", "lu", "qr", "emerging", "periodic", WIDE)

# Per dataset: the model, the optimisation and the data sizes of the full
# study, sized to finish in under an hour on 2 CPU cores.
SETTINGS = {
    "digits": dict(num_levels=1, num_steps=4, hidden_channels=32,
                   kernel_size=3, batch_size=64, learning_rate=1e-3,
                   warmup_steps=100, epochs=40),
    "skimage-crops": dict(num_levels=1, num_steps=4, hidden_channels=32,
                          kernel_size=3, batch_size=64, learning_rate=1e-3,
                          warmup_steps=100, epochs=12, num_train=4000,
                          num_test=1000),
}
# `--quick`: a tiny model and a few batches, for the test suite.
QUICK_SETTINGS = {
    "digits": dict(num_levels=1, num_steps=1, hidden_channels=8,
                   kernel_size=3, batch_size=32, learning_rate=1e-3,
                   warmup_steps=2, epochs=1, num_train=96, num_test=32),
    "skimage-crops": dict(num_levels=1, num_steps=1, hidden_channels=8,
                          kernel_size=3, batch_size=32, learning_rate=1e-3,
                          warmup_steps=2, epochs=1, num_train=96, num_test=32),
}
# Seed of the evaluation noise of test batch `i`: EVAL_SEED + i.
EVAL_SEED = 12345


def _modules():
  # Model code is imported on first use, so `--help` stays fast.
  from tfp_emerging import flows  # pylint: disable=g-import-not-at-top
  from tfp_emerging import keras as flow_keras  # pylint: disable=g-import-not-at-top
  return flows, flow_keras


def load_dataset(name, settings):
  """The `ImageData` of `name`, cut to `num_train`/`num_test` if given."""
  if name == "digits":
    data = data_lib.load_digits()
  elif name == "skimage-crops":
    data = natural_images.load_crops(
        num_train=settings.get("num_train", 4000),
        num_test=settings.get("num_test", 1000))
  else:
    raise ValueError(f"`dataset` must be one of {DATASETS}; got {name!r}.")
  data_lib.check_image_size(data.image_shape, settings["num_levels"],
                            data.source)
  num_train = settings.get("num_train", data.train.shape[0])
  num_test = settings.get("num_test", data.test.shape[0])
  return data_lib.ImageData(name=data.name, train=data.train[:num_train],
                            test=data.test[:num_test],
                            num_bins=data.num_bins, source=data.source)


def _build_flow(mixing, image_shape, settings, hidden_channels, seed):
  flows, _ = _modules()
  return flows.Glow(
      image_shape, settings["num_levels"], settings["num_steps"],
      mixing="1x1" if mixing == WIDE else mixing,
      hidden_channels=hidden_channels,
      kernel_size=settings["kernel_size"], seed=seed)


def num_parameters(flow):
  """Number of trainable scalars of `flow`."""
  return int(sum(np.prod(v.shape) for v in flow.trainable_variables))


def matched_hidden_channels(image_shape, settings):
  """The 1x1 coupling width whose parameter count is closest to emerging's.

  Widens the 1x1 model's `hidden_channels` one at a time from the study's
  width until its count passes the emerging model's, and keeps the closer of
  the last two widths.

  Returns:
    `(hidden_channels, wide_count, emerging_count)`.
  """
  width = settings["hidden_channels"]
  target = num_parameters(_build_flow("emerging", image_shape, settings,
                                      width, seed=0))
  best = (width, num_parameters(_build_flow("1x1", image_shape, settings,
                                            width, seed=0)))
  while best[1] < target:
    count = num_parameters(_build_flow("1x1", image_shape, settings,
                                       best[0] + 1, seed=0))
    if abs(count - target) > abs(best[1] - target):
      break
    best = (best[0] + 1, count)
  return best[0], best[1], target


def _test_bits_per_dim(model, images, batch_size):
  """Mean test bits/dim with the fixed evaluation noise."""
  total = 0.
  for i, start in enumerate(range(0, images.shape[0], batch_size)):
    batch = images[start:start + batch_size]
    bits = model.bits_per_dim(tf.constant(batch), seed=EVAL_SEED + i)
    total += float(np.sum(np.asarray(bits, np.float64)))
  return total / images.shape[0]


def _reset(model, fresh_flow, first_batch):
  """Fresh weights, a zeroed optimiser, ActNorm re-initialised on a batch."""
  for target, source in zip(model.flow.variables, fresh_flow.variables):
    if target.shape != source.shape:
      raise AssertionError(f"variable {target.name} {target.shape} does not "
                           f"match {source.name} {source.shape}.")
    target.assign(source)
  for v in model.optimizer.variables:
    v.assign(tf.zeros_like(v))
  model.initialize(tf.constant(first_batch), seed=EVAL_SEED)


def _train_model(data, mixing, settings, hidden_channels, seeds, log):
  """Trains one (dataset, mixing) model for every seed; one record per seed."""
  _, flow_keras = _modules()
  batch_size = settings["batch_size"]
  start = time.time()
  model = flow_keras.FlowModel(
      _build_flow(mixing, data.image_shape, settings, hidden_channels,
                  seed=seeds[0]), num_bins=data.num_bins)
  model.compile(optimizer=flow_keras.keras.optimizers.Adam(
      flow_keras.WarmupSchedule(settings["learning_rate"],
                                settings["warmup_steps"])))
  model.optimizer.build(model.trainable_weights)
  params = num_parameters(model.flow)
  # Trace the training and evaluation steps once, for a full and for the
  # last, partial batch of an epoch; every seed then resets the variables.
  model.initialize(tf.constant(data.train[:batch_size]), seed=EVAL_SEED)
  for images in (data.train, data.test):
    for size in {batch_size, images.shape[0] % batch_size} - {0}:
      if images is data.train:
        model.train_on_batch(tf.constant(images[:size]))
      else:
        _test_bits_per_dim(model, images[:size], batch_size)
  trace_seconds = time.time() - start
  log(f"  {data.name} {mixing}: {params} parameters, traced in "
      f"{trace_seconds:.1f} s")

  records = []
  num_train = data.train.shape[0]
  num_batches = int(math.ceil(num_train / batch_size))
  for seed in seeds:
    _reset(model, _build_flow(mixing, data.image_shape, settings,
                              hidden_channels, seed=seed),
           data.train[:batch_size])
    tf.random.set_seed(seed)
    epochs = []
    for epoch in range(1, settings["epochs"] + 1):
      epoch_start = time.time()
      order = np.random.default_rng([seed, epoch]).permutation(num_train)
      total = 0.
      for step in range(num_batches):
        batch = data.train[order[step * batch_size:(step + 1) * batch_size]]
        loss = model.train_on_batch(tf.constant(batch))
        total += float(np.ravel(loss)[0]) * batch.shape[0]
      seconds = time.time() - epoch_start
      test_bpd = _test_bits_per_dim(model, data.test, batch_size)
      epochs.append({"epoch": epoch, "train_bits_per_dim": total / num_train,
                     "test_bits_per_dim": test_bpd,
                     "train_seconds": round(seconds, 3)})
      log(f"    seed {seed} epoch {epoch}: train "
          f"{epochs[-1]['train_bits_per_dim']:.4f}, test {test_bpd:.4f} "
          f"bits/dim, {seconds:.1f} s")
      if not (math.isfinite(test_bpd) and
              math.isfinite(epochs[-1]["train_bits_per_dim"])):
        break
    records.append({
        "dataset": data.name, "mixing": mixing, "seed": seed,
        "hidden_channels": hidden_channels, "num_parameters": params,
        "epochs": len(epochs),
        "test_bits_per_dim": epochs[-1]["test_bits_per_dim"],
        "train_bits_per_dim": epochs[-1]["train_bits_per_dim"],
        "seconds_per_epoch": float(np.mean([e["train_seconds"]
                                            for e in epochs])),
        "trace_seconds": round(trace_seconds, 3),
        "history": epochs,
    })
  return records


def run_study(datasets, mixings, seeds, settings, log=print):
  """Trains every (dataset, mixing, seed); returns the list of run records."""
  records = []
  for name in datasets:
    config = settings[name]
    data = load_dataset(name, config)
    log(f"{name}: {data.train.shape[0]} train, {data.test.shape[0]} test "
        f"images {list(data.image_shape)}, {data.num_bins} levels; "
        f"{data.source}")
    wide, wide_count, emerging_count = matched_hidden_channels(
        data.image_shape, config)
    log(f"  wide 1x1: hidden_channels {wide} -> {wide_count} parameters "
        f"(emerging: {emerging_count})")
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
    runs = [r for r in records
            if r["dataset"] == dataset and r["mixing"] == mixing]
    bpd = np.array([r["test_bits_per_dim"] for r in runs])
    row = {
        "dataset": dataset, "mixing": mixing,
        "num_parameters": runs[0]["num_parameters"],
        "hidden_channels": runs[0]["hidden_channels"],
        "seeds": [r["seed"] for r in runs],
        "test_mean": float(np.mean(bpd)),
        "test_std": float(np.std(bpd, ddof=1)) if len(runs) > 1 else 0.,
        "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"]
                                            for r in runs])),
        "trace_seconds": runs[0]["trace_seconds"],
    }
    base = {r["seed"]: r["test_bits_per_dim"] for r in records
            if r["dataset"] == dataset and r["mixing"] == "1x1"}
    if mixing != "1x1" and all(r["seed"] in base for r in runs) and base:
      gaps = np.array([r["test_bits_per_dim"] - base[r["seed"]]
                       for r in runs])
      row["gap_mean"] = float(np.mean(gaps))
      row["gap_std"] = float(np.std(gaps, ddof=1)) if len(gaps) > 1 else 0.
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
    gap = (f"{row['gap_mean']:+.4f} +- {row['gap_std']:.4f}"
           if "gap_mean" in row else "")
    lines.append(
        f"| {row['dataset']} | {row['mixing']} | {row['hidden_channels']} | "
        f"{row['num_parameters']} | {row['test_mean']:.4f} +- "
        f"{row['test_std']:.4f} | {gap} | {row['seconds_per_epoch']:.2f} | "
        f"{row['trace_seconds']:.1f} |")
  return "\n".join(lines) + "\n"


def plot(records, rows, path):
  """Writes `comparison.png`: final test bits/dim and test curves per dataset."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  datasets = []
  for row in rows:
    if row["dataset"] not in datasets:
      datasets.append(row["dataset"])
  fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 3.6 * len(datasets)),
                           squeeze=False)
  for (bars, curves), dataset in zip(axes, datasets):
    mine = [row for row in rows if row["dataset"] == dataset]
    positions = np.arange(len(mine))
    means = np.array([row["test_mean"] for row in mine])
    stds = np.array([row["test_std"] for row in mine])
    bars.errorbar(positions, means, yerr=stds, fmt="o", capsize=4)
    for row, x in zip(mine, positions):
      seeds = [r["test_bits_per_dim"] for r in records
               if r["dataset"] == dataset and r["mixing"] == row["mixing"]]
      bars.plot([x] * len(seeds), seeds, ".", color="grey", alpha=0.6)
    bars.set_xticks(positions)
    bars.set_xticklabels([f"{row['mixing']}\n{row['num_parameters']}"
                          for row in mine], fontsize=8)
    bars.set_ylabel("test bits/dim")
    bars.set_title(f"{dataset}: final test bits/dim (mean +- std, dots: seeds)",
                   fontsize=9)
    for row in mine:
      histories = [r["history"] for r in records
                   if r["dataset"] == dataset and r["mixing"] == row["mixing"]]
      length = min(len(h) for h in histories)
      curve = np.mean([[e["test_bits_per_dim"] for e in h[:length]]
                       for h in histories], axis=0)
      curves.plot(np.arange(1, length + 1), curve, label=row["mixing"],
                  marker="." if length < 10 else None)
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
        f" got {value!r}.")
  return names


def build_parser():
  parser = argparse.ArgumentParser(
      prog="python -m tfp_emerging.compare",
      description=("Train every channel mixing on the same data, model and "
                   "schedule with several seeds; report test bits/dim."))
  parser.add_argument("--quick", action="store_true",
                      help="tiny models and data, for a smoke test")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds 0..N-1 (default 3, quick 2)")
  parser.add_argument("--epochs", type=int, default=None,
                      help="epochs for every dataset (default: per dataset)")
  parser.add_argument("--datasets", default=",".join(DATASETS),
                      type=lambda v: _names(v, DATASETS, "--datasets"),
                      help=f"comma-separated subset of {','.join(DATASETS)}")
  parser.add_argument("--mixings", default=",".join(MIXINGS),
                      type=lambda v: _names(v, MIXINGS, "--mixings"),
                      help=f"comma-separated subset of {','.join(MIXINGS)}")
  parser.add_argument("--out", default="benchmarks/results",
                      help="folder for runs.json, summary.md, comparison.png")
  return parser


def main(argv=None):
  """Runs the study; returns the summary rows."""
  args = build_parser().parse_args(argv)
  settings = {name: dict(config) for name, config in
              (QUICK_SETTINGS if args.quick else SETTINGS).items()}
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
  records = run_study(args.datasets, args.mixings, list(range(seeds)),
                      settings)
  rows = summarize(records)
  table = summary_table(rows)
  arguments = sys.argv[1:] if argv is None else list(argv)
  command = "python -m tfp_emerging.compare " + " ".join(arguments)
  total = time.time() - start
  with open(os.path.join(args.out, "runs.json"), "w", encoding="utf-8") as f:
    json.dump({
        "command": command.strip(),
        "arguments": arguments,
        "settings": {name: settings[name] for name in args.datasets},
        "seeds": list(range(seeds)),
        "total_seconds": round(total, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "tensorflow": tf.__version__},
        "summary": rows,
        "runs": records,
    }, f, indent=1)
  with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
    f.write(f"`{command.strip()}` ({total / 60:.1f} min in total)\n\n")
    f.write(table)
  plot(records, rows, os.path.join(args.out, "comparison.png"))
  print(table)
  print(f"total {total / 60:.1f} min; wrote {args.out}/runs.json, "
        f"summary.md, comparison.png")
  return rows


if __name__ == "__main__":
  main()
