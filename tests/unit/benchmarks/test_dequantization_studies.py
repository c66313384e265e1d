"""Tests of the dequantisation studies (`benchmarks/importance_weighted.py`,
`benchmarks/variational_dequantization.py`): a one-epoch run of each through
the one training path, and their tables' arithmetic."""

import math

import pytest

from benchmarks import importance_weighted
from benchmarks import variational_dequantization

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow


def test_importance_weighted_run_never_rises_with_k(capsys):
  record = importance_weighted.run(seed=0, epochs=1, samples=[4])
  assert record["bits_per_dim_k4"] <= record["bits_per_dim_k1"]
  assert math.isfinite(record["bits_per_dim_k1"])
  capsys.readouterr()


def test_importance_weighted_table():
  records = [
    {"bits_per_dim_k1": 3.0, "bits_per_dim_k4": 2.9},
    {"bits_per_dim_k1": 3.2, "bits_per_dim_k4": 3.0},
  ]
  table = importance_weighted.summarize(records, [4])
  # K = 4: mean 2.95, std 0.0707; gains 0.1, 0.2: mean 0.15, std 0.0707.
  assert "| 4 | 2.9500 ± 0.0707 | 0.1500 ± 0.0707 | 2.9000, 3.0000 |" in table


def test_variational_study_runs_both_kinds_and_the_control(capsys):
  assert (
    variational_dequantization.main(
      [
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--samples",
        "2",
        "--control-hidden-channels",
        "16",
      ]
    )
    == 0
  )
  out = capsys.readouterr().out
  assert "| uniform | 62960 | 1 |" in out
  assert "| variational |" in out and "| uniform, couplings 16 wide |" in out


def test_variational_table_pairs_the_gain_by_seed():
  records = [
    {
      "seed": s,
      "dequantization": kind,
      "parameters": p,
      "bits_per_dim_k1": b,
      "bits_per_dim_k2": b - 0.01,
    }
    for s, kind, p, b in [
      (0, "uniform", 10, 2.5),
      (1, "uniform", 10, 2.7),
      (0, "variational", 20, 2.4),
      (1, "variational", 20, 2.5),
    ]
  ]
  table = variational_dequantization.summarize(records, 2)
  # Gains 0.1 and 0.2: mean 0.15, std (ddof 1) 0.0707.
  assert (
    "| variational | 20 | 1 | 2.4500 ± 0.0707 | 0.1500 ± 0.0707 | "
    "2.4000, 2.5000 |"
  ) in table
