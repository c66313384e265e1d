"""Class-conditional Glow on the digits: bits/dim and whether samples show
the class asked for.

Three models of the demo's architecture (`training.RunConfig`'s defaults:
emerging mixing, one level of 8 steps, couplings 64 wide) train on
scikit-learn's digits with the same budget (epochs, batch size, learning
rate and warm-up, data order and noise) through the package's one training
path, `tfp_emerging.training.fit`, for each seed:

* `unconditional`: the plain flow;
* `conditional`: `--conditional`, priors and coupling networks conditioned
  on the class (`Glow(num_classes=10, condition_couplings=True)`);
* `priors-only`: `--conditional --no-condition-couplings`, the Glow paper's
  class-conditional prior alone.

Measured per model: the test bits/dim (`training.evaluate`, every test
image, seeded noise), and, for the conditional ones, the accuracy of a
classifier on `SAMPLES_PER_CLASS` samples per class at temperature 0.7: the
fraction it labels as the class that was asked for. The classifier is
scikit-learn's logistic regression trained on the real training digits
(pixels / 16); its accuracy on the real test digits is reported as its
ceiling. Means and standard deviations (ddof 1) are over the seeds.

Outputs in `--out`: `conditional.json` (settings, one record per run) and
`conditional.md` (the table). Command line: `python -m benchmarks.conditional
[--seeds N] [--epochs N] [--variants ...] [--quick] [--out DIR]`.
"""

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import numpy as np

from tfp_emerging import training

__all__ = [
  "QUICK",
  "VARIANTS",
  "classifier",
  "main",
  "run_config",
  "sample_accuracy",
  "summarize",
]

VARIANTS = {
  "unconditional": dict(conditional=False),
  "conditional": dict(conditional=True, condition_couplings=True),
  "priors-only": dict(conditional=True, condition_couplings=False),
}
TEMPERATURE = 0.7
SAMPLES_PER_CLASS = 100
# The model of `--quick`: one narrow step, and its samples per class.
QUICK = dict(num_steps=1, hidden_channels=8)
QUICK_SAMPLES_PER_CLASS = 10


def _samples_per_class(quick):
  return QUICK_SAMPLES_PER_CLASS if quick else SAMPLES_PER_CLASS


def run_config(variant, seed, epochs, **overrides):
  """The `RunConfig` of one model: the demo's options, `epochs`, `seed` (and
  `overrides`, for `--quick`)."""
  return training.RunConfig(
    dataset="digits", epochs=epochs, seed=seed, **VARIANTS[variant], **overrides
  )


def _split(data, name):
  """`(pixels [N, 64] float, labels [N])` of a split of the digits."""
  images, labels = zip(*data.images(name, labels=True).as_numpy_iterator())
  pixels = np.stack(images).reshape(len(images), -1).astype(np.float64)
  return pixels / (data.num_bins - 1), np.array(labels)


def classifier(data):
  """Logistic regression on the real training digits, and its accuracy on
  the real test digits."""
  from sklearn.linear_model import LogisticRegression

  model = LogisticRegression(max_iter=2000)
  model.fit(*_split(data, "train"))
  test_pixels, test_labels = _split(data, "test")
  return model, float(np.mean(model.predict(test_pixels) == test_labels))


def sample_accuracy(model, judge, num_bins, seed, per_class=SAMPLES_PER_CLASS):
  """The fraction of class-conditional samples (`per_class` per class,
  temperature 0.7) that `judge` labels as the class asked for."""
  asked = np.repeat(np.arange(model.num_classes), per_class)
  images = model.sample(
    len(asked), temperature=TEMPERATURE, seed=seed, labels=asked
  ).numpy()
  pixels = images.reshape(len(asked), -1).astype(np.float64) / (num_bins - 1)
  return float(np.mean(judge.predict(pixels) == asked))


def run(variant, seed, epochs, judge, quick=False):
  """Trains one model and measures it; one record. `quick`: a one-step flow
  on 128 training and test images, 10 samples per class."""
  config = run_config(variant, seed, epochs, **(QUICK if quick else {}))
  num_examples = 128 if quick else None
  data = training.load_data(config)
  config = config.with_data(data)
  model = training.build_model(config)
  start = time.perf_counter()
  training.fit(
    model,
    data,
    config,
    labels=config.conditional,
    num_train=num_examples,
    num_test=num_examples,
  )
  seconds = time.perf_counter() - start
  record = {
    "variant": variant,
    "seed": seed,
    "epochs": epochs,
    "test_bits_per_dim": training.evaluate(
      model,
      data,
      config.batch_size,
      config.seed,
      num_examples=num_examples,
      labels=config.conditional,
    ),
    "sample_accuracy": (
      sample_accuracy(
        model, judge, data.num_bins, seed, per_class=_samples_per_class(quick)
      )
      if config.conditional
      else None
    ),
    "train_seconds": seconds,
  }
  print(json.dumps(record), flush=True)
  return record


def _mean_std(values):
  values = np.asarray(values, np.float64)
  std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
  return float(values.mean()), std


def summarize(records, judge_accuracy):
  """The Markdown table: per variant, test bits/dim and sample accuracy."""
  lines = [
    "| model | test bits/dim | accuracy on samples (T = 0.7) | per seed |",
    "|---|---|---|---|",
  ]
  for variant in VARIANTS:
    rows = [r for r in records if r["variant"] == variant]
    if not rows:
      continue
    bits = _mean_std([r["test_bits_per_dim"] for r in rows])
    accuracies = [
      r["sample_accuracy"] for r in rows if r["sample_accuracy"] is not None
    ]
    accuracy = "-"
    if accuracies:
      mean, std = _mean_std(accuracies)
      accuracy = f"{100 * mean:.1f} ± {100 * std:.1f} %"
    seeds = ", ".join(
      f"{r['test_bits_per_dim']:.4f}"
      + (
        ""
        if r["sample_accuracy"] is None
        else f" / {100 * r['sample_accuracy']:.1f} %"
      )
      for r in rows
    )
    lines.append(
      f"| {variant} | {bits[0]:.4f} ± {bits[1]:.4f} | {accuracy} | {seeds} |"
    )
  lines.append("")
  lines.append(
    f"Classifier (logistic regression on the real training "
    f"digits): {100 * judge_accuracy:.1f} % on the real test "
    f"digits. Mean ± standard deviation over seeds."
  )
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=80)
  parser.add_argument(
    "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS)
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help=(
      "1 seed, 1 epoch of a one-step flow on 128 images: checks that "
      "the script runs"
    ),
  )
  parser.add_argument(
    "--out",
    default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"),
  )
  args = parser.parse_args(argv)
  seeds, epochs = (1, 1) if args.quick else (args.seeds, args.epochs)
  data = training.load_data(training.RunConfig(dataset="digits"))
  judge, judge_accuracy = classifier(data)
  start = time.perf_counter()
  records = [
    run(variant, seed, epochs, judge, args.quick)
    for seed in range(seeds)
    for variant in args.variants
  ]
  table = summarize(records, judge_accuracy)
  print(table)
  os.makedirs(args.out, exist_ok=True)
  with open(
    os.path.join(args.out, "conditional.json"), "w", encoding="utf-8"
  ) as f:
    json.dump(
      {
        "command": "python -m benchmarks.conditional "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "settings": dataclasses.asdict(
          run_config("conditional", 0, epochs, **(QUICK if args.quick else {}))
        ),
        "temperature": TEMPERATURE,
        "samples_per_class": _samples_per_class(args.quick),
        "classifier_test_accuracy": judge_accuracy,
        "wall_seconds": time.perf_counter() - start,
        "load_average": os.getloadavg(),
        "machine": platform.platform(),
        "records": records,
      },
      f,
      indent=2,
    )
  with open(
    os.path.join(args.out, "conditional.md"), "w", encoding="utf-8"
  ) as f:
    f.write(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
