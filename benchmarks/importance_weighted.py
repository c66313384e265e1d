"""Importance-weighted bits/dim on the digits: how much tighter K draws are.

For each seed, one model of the demo's architecture (`training.RunConfig`'s
defaults on scikit-learn's digits) trains for `--epochs` through the
package's one training path (`training.fit`); then the one evaluator,
`training.evaluate`, measures the test bits/dim of every test image with
K = 1 (the figure every epoch reports) and with each K of `--samples`
(`FlowModel.evaluate(..., num_samples=K)`, the importance-weighted bound
over K dequantisations, the first the K = 1 draw). The gap `bpd_1 - bpd_K`
is the part of the reported figure that is dequantisation slack, not model.
Means and standard deviations (ddof 1) are over the seeds.

Command line: `python -m benchmarks.importance_weighted [--seeds N]
[--epochs N] [--samples K ...]`; prints one JSON record per seed and a
Markdown table.
"""

import argparse
import json
import time

import numpy as np

from tfp_emerging import training


def trained_record(config, samples):
  """Trains a model of `config` through `training.fit`; a record of its
  parameters, training time and test bits/dim for K = 1 and each K of
  `samples` (`training.evaluate`). Both studies' one training step."""
  data = training.load_data(config)
  config = config.with_data(data)
  model = training.build_model(config)
  start = time.perf_counter()
  training.fit(model, data, config)
  record = {
    "parameters": int(model.count_params()),
    "train_seconds": round(time.perf_counter() - start, 1),
  }
  for k in sorted({1, *samples}):
    record[f"bits_per_dim_k{k}"] = training.evaluate(
      model, data, config.batch_size, config.seed, num_samples=k
    )
  return record


def spread(values):
  """`"mean ± std"` of `values` over the seeds, 4 decimals (the standard
  deviation with ddof 1; NaN for a single value)."""
  std = values.std(ddof=1) if len(values) > 1 else float("nan")
  return f"{values.mean():.4f} ± {std:.4f}"


def per_seed(values):
  """`values`, one per seed, as the table's last cell: `"a, b, c"`."""
  return ", ".join(f"{v:.4f}" for v in values)


def run(seed, epochs, samples):
  """Trains one model; its test bits/dim for K = 1 and each K, one record."""
  config = training.RunConfig(dataset="digits", epochs=epochs, seed=seed)
  record = {"seed": seed, "epochs": epochs, **trained_record(config, samples)}
  print(json.dumps(record), flush=True)
  return record


def summarize(records, samples):
  """The Markdown table: per K, the mean test bits/dim and the gain over
  K = 1, mean ± standard deviation over the seeds."""
  lines = [
    "| K | test bits/dim | below K = 1 | per seed |",
    "|---|---|---|---|",
  ]
  single = np.array([r["bits_per_dim_k1"] for r in records])
  for k in (1, *samples):
    bits = np.array([r[f"bits_per_dim_k{k}"] for r in records])
    gain = single - bits
    lines.append(
      f"| {k} | {spread(bits)} | {spread(gain)} | {per_seed(bits)} |"
    )
  return "\n".join(lines) + "\n"


def seeds_parser(doc, models, epochs):
  """The options both studies share: `--seeds` (`models`, as the help
  names them, seeds 0 .. N-1, default 3) and `--epochs` (default `epochs`);
  described by the first line of `doc`."""
  parser = argparse.ArgumentParser(description=doc.splitlines()[0])
  parser.add_argument(
    "--seeds",
    type=int,
    default=3,
    help=f"{models}, seeds 0 .. N-1 (default: %(default)s)",
  )
  parser.add_argument(
    "--epochs",
    type=int,
    default=epochs,
    help="training epochs per model (default: %(default)s)",
  )
  return parser


def main(argv=None):
  parser = seeds_parser(__doc__, "models", epochs=5)
  parser.add_argument(
    "--samples",
    type=int,
    nargs="+",
    default=[4, 16],
    help="the K above 1 to evaluate (default: %(default)s)",
  )
  args = parser.parse_args(argv)
  records = [run(seed, args.epochs, args.samples) for seed in range(args.seeds)]
  print(summarize(records, args.samples))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
