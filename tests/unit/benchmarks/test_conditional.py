"""Tests of the class-conditional study (`benchmarks/conditional.py`): the
`--quick` run through the one training path, its records and table."""

import json
import math
import os

import pytest

from benchmarks import conditional

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow


def test_quick_study_writes_records_and_table(tmp_path):
  out = str(tmp_path)
  assert (
    conditional.main(
      ["--quick", "--variants", "unconditional", "conditional", "--out", out]
    )
    == 0
  )
  with open(os.path.join(out, "conditional.json"), encoding="utf-8") as f:
    runs = json.load(f)
  assert runs["classifier_test_accuracy"] > 0.9  # on the real test digits
  by_variant = {r["variant"]: r for r in runs["records"]}
  assert set(by_variant) == {"unconditional", "conditional"}
  for record in by_variant.values():
    assert math.isfinite(record["test_bits_per_dim"]) and record["epochs"] == 1
  assert by_variant["unconditional"]["sample_accuracy"] is None
  assert 0 <= by_variant["conditional"]["sample_accuracy"] <= 1
  assert runs["settings"]["dataset"] == "digits"
  with open(os.path.join(out, "conditional.md"), encoding="utf-8") as f:
    table = f.read()
  assert "| conditional |" in table and "| unconditional |" in table


def test_summary_gives_mean_and_sample_std_over_seeds():
  records = [
    {
      "variant": "conditional",
      "seed": s,
      "test_bits_per_dim": b,
      "sample_accuracy": a,
    }
    for s, (b, a) in enumerate([(2.0, 0.8), (2.2, 1.0)])
  ]
  table = conditional.summarize(records, 0.97)
  # mean 2.1, std (ddof 1) 0.1414; accuracy 90.0 ± 14.1 %.
  assert "| conditional | 2.1000 ± 0.1414 | 90.0 ± 14.1 % |" in table
  assert "97.0 % on the real test digits" in table
