"""Variational against uniform dequantisation on the digits, per seed.

For each seed, two models of the demo's architecture (`training.RunConfig`'s
defaults on scikit-learn's digits) train for `--epochs` through the
package's one training path (`training.fit`), one with uniform noise and one
with `dequantization="variational"` (a `VariationalDequantizer` `q(u | k)`
trained jointly); the flows start from the same weights (same seed). The
one evaluator, `training.evaluate`, gives each model's test bits/dim, a
valid bound on `-log2 P(k) / D` for both (`E_q[-log p + log q]` for the
variational one), with `K = 1` and with the importance-weighted `K =
--samples`. Means and standard deviations (ddof 1) are over the seeds; the
gain is paired (uniform minus the model, per seed). `q` brings parameters
of its own: `--control-hidden-channels F` adds a uniform model with
couplings `F` wide (about as many parameters as the variational one), so
that the gain is not just that of a larger model.

Command line: `python -m benchmarks.variational_dequantization [--seeds N]
[--epochs N] [--samples K] [--control-hidden-channels F]`; prints one
JSON record per model and a Markdown table.
"""

import json

import numpy as np

from benchmarks import importance_weighted
from tfp_emerging import training

DEQUANTIZATIONS = ("uniform", "variational")


def run(seed, dequantization, epochs, samples, hidden_channels=None):
  """Trains one model; its test bits/dim for K = 1 and K = `samples`."""
  widths = (
    {} if hidden_channels is None else {"hidden_channels": hidden_channels}
  )
  config = training.RunConfig(
    dataset="digits",
    epochs=epochs,
    seed=seed,
    dequantization=dequantization,
    **widths,
  )
  kind = (
    dequantization
    if hidden_channels is None
    else (f"{dequantization}, couplings {hidden_channels} wide")
  )
  record = {
    "seed": seed,
    "dequantization": kind,
    "epochs": epochs,
    **importance_weighted.trained_record(config, [samples]),
  }
  print(json.dumps(record), flush=True)
  return record


def summarize(records, samples):
  """The Markdown table: per dequantisation and K, the mean test bits/dim
  over the seeds and the paired gain of the variational model."""
  spread = importance_weighted.spread
  kinds = list(dict.fromkeys(r["dequantization"] for r in records))
  by_kind = {
    kind: sorted(
      (r for r in records if r["dequantization"] == kind),
      key=lambda r: r["seed"],
    )
    for kind in kinds
  }
  lines = [
    "| dequantisation | parameters | K | test bits/dim | gain over "
    "uniform | per seed |",
    "|---|---|---|---|---|---|",
  ]
  for kind in kinds:
    for k in sorted({1, samples}):
      bits = np.array([r[f"bits_per_dim_k{k}"] for r in by_kind[kind]])
      uniform = np.array([r[f"bits_per_dim_k{k}"] for r in by_kind["uniform"]])
      gain = spread(uniform - bits) if kind != "uniform" else "-"
      lines.append(
        f"| {kind} | {by_kind[kind][0]['parameters']} | {k} | "
        f"{spread(bits)} | {gain} | "
        f"{importance_weighted.per_seed(bits)} |"
      )
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = importance_weighted.seeds_parser(
    __doc__, "models per kind", epochs=20
  )
  parser.add_argument(
    "--samples",
    type=int,
    default=16,
    help="the K of the importance-weighted figure (default: %(default)s)",
  )
  parser.add_argument(
    "--control-hidden-channels",
    type=int,
    default=None,
    help="also a uniform model with couplings this wide (default: none)",
  )
  args = parser.parse_args(argv)
  records = [
    run(seed, kind, args.epochs, args.samples)
    for seed in range(args.seeds)
    for kind in DEQUANTIZATIONS
  ]
  if args.control_hidden_channels is not None:
    records += [
      run(
        seed, "uniform", args.epochs, args.samples, args.control_hidden_channels
      )
      for seed in range(args.seeds)
    ]
  print(summarize(records, args.samples))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
