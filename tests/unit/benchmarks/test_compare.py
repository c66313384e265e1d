"""Tests of the mixing comparison (`benchmarks/compare.py`): the `--quick`
study through the one training path, records, matching."""

import json
import math
import os

import numpy as np
import pytest

from benchmarks import compare
from tests.testlib.runs import EPOCH_RECORD_FIELDS
from tfp_emerging import training
from tfp_emerging.flows import Glow

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

QUICK_DIGITS = compare.QUICK_SETTINGS["digits"]


def _count(flow):
  return sum(v.numpy().size for v in flow.trainable_variables)


def _glow(
  mixing, hidden_channels, image_shape=(8, 8, 1), settings=None, seed=0
):
  settings = settings or QUICK_DIGITS
  return Glow(
    image_shape,
    settings["num_levels"],
    settings["num_steps"],
    mixing=mixing,
    hidden_channels=hidden_channels,
    kernel_size=settings["kernel_size"],
    seed=seed,
  )


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("compare"))
  rows = compare.main(
    [
      "--quick",
      "--seeds",
      "2",
      "--datasets",
      "digits",
      "--mixings",
      "1x1,emerging,1x1-wide",
      "--out",
      out,
    ]
  )
  with open(os.path.join(out, "runs.json"), encoding="utf-8") as f:
    return out, rows, json.load(f)


def test_quick_study_writes_every_run(quick_study):
  _, _, runs = quick_study
  records = runs["runs"]
  assert [(r["mixing"], r["seed"]) for r in records] == [
    ("1x1", 0),
    ("1x1", 1),
    ("emerging", 0),
    ("emerging", 1),
    ("1x1-wide", 0),
    ("1x1-wide", 1),
  ]
  for r in records:
    assert r["dataset"] == "digits"
    assert r["epochs"] == QUICK_DIGITS["epochs"] == len(r["history"])
    # Trained: better than the uniform model of 17 levels.
    assert 0.0 < r["test_bits_per_dim"] < math.log2(17)
    assert math.isfinite(r["train_bits_per_dim"])
    assert r["seconds_per_epoch"] > 0 and r["trace_seconds"] > 0
    assert r["num_parameters"] > 0
    for epoch in r["history"]:  # the one training path's epoch records
      assert set(epoch) == EPOCH_RECORD_FIELDS
  assert runs["seeds"] == [0, 1]
  assert runs["settings"]["digits"] == QUICK_DIGITS
  assert runs["arguments"][:1] == ["--quick"]


def test_seeds_give_different_models(quick_study):
  _, _, runs = quick_study
  by_seed = [
    r["test_bits_per_dim"] for r in runs["runs"] if r["mixing"] == "emerging"
  ]
  assert by_seed[0] != by_seed[1]


def test_summary_rows_mean_std_and_paired_gap(quick_study):
  _, rows, runs = quick_study
  assert [row["mixing"] for row in rows] == ["1x1", "emerging", "1x1-wide"]
  for row in rows:
    values = [
      r["test_bits_per_dim"]
      for r in runs["runs"]
      if r["mixing"] == row["mixing"]
    ]
    assert row["test_mean"] == pytest.approx(sum(values) / 2)
    assert row["test_std"] == pytest.approx(
      abs(values[0] - values[1]) / math.sqrt(2)
    )
  base = [r["test_bits_per_dim"] for r in runs["runs"] if r["mixing"] == "1x1"]
  emerging = [
    r["test_bits_per_dim"] for r in runs["runs"] if r["mixing"] == "emerging"
  ]
  assert "gap_mean" not in rows[0]
  assert rows[1]["gap_mean"] == pytest.approx(
    np.mean(np.subtract(emerging, base))
  )
  assert runs["summary"] == rows


def test_outputs_table_and_plot(quick_study):
  out, _, _ = quick_study
  with open(os.path.join(out, "summary.md"), encoding="utf-8") as f:
    table = f.read()
  assert "| digits | emerging |" in table and "| digits | 1x1-wide |" in table
  with open(os.path.join(out, "comparison.png"), "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_wide_baseline_matches_emerging_parameter_count(quick_study):
  _, _, runs = quick_study
  records = {r["mixing"]: r for r in runs["runs"]}
  width = records["1x1-wide"]["hidden_channels"]
  emerging = _count(_glow("emerging", QUICK_DIGITS["hidden_channels"]))
  assert records["emerging"]["num_parameters"] == emerging
  assert records["1x1"]["num_parameters"] == _count(
    _glow("1x1", QUICK_DIGITS["hidden_channels"])
  )
  assert records["1x1"]["num_parameters"] < emerging
  assert width > QUICK_DIGITS["hidden_channels"]
  assert records["1x1-wide"]["num_parameters"] == _count(_glow("1x1", width))
  # Counts grow with the width, so the best width beats its two neighbours.
  gaps = [
    abs(_count(_glow("1x1", w)) - emerging)
    for w in (width - 1, width, width + 1)
  ]
  assert gaps[1] <= gaps[0] and gaps[1] <= gaps[2]


def test_matched_width_on_colour_crops():
  settings = compare.QUICK_SETTINGS["skimage-crops"]
  width, count, target = compare.matched_hidden_channels((16, 16, 3), settings)
  assert target == _count(
    _glow("emerging", settings["hidden_channels"], (16, 16, 3), settings)
  )
  assert count == _count(_glow("1x1", width, (16, 16, 3), settings))
  gaps = [
    abs(_count(_glow("1x1", w, (16, 16, 3), settings)) - target)
    for w in (width - 1, width, width + 1)
  ]
  assert gaps[1] <= gaps[0] and gaps[1] <= gaps[2]


def test_reset_restores_a_fresh_seeded_model():
  digits = compare.load_dataset("digits", QUICK_DIGITS)

  def config(seed):
    return compare.run_config(
      "digits", "emerging", QUICK_DIGITS, 8, seed, digits
    )

  model = training.build_model(config(1))
  training.fit(model, digits, config(1), num_train=16, num_test=16)
  assert int(model.optimizer.iterations.numpy()) == 1 and (
    model.is_initialized()
  )
  compare._reset(model, training.build_model(config(5)))
  fresh = Glow(
    (8, 8, 1), 1, 1, mixing="emerging", hidden_channels=8, kernel_size=3, seed=5
  )
  assert len(model.flow.variables) == len(fresh.variables)
  for got, want in zip(model.flow.variables, fresh.variables):
    np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=got.name)
  assert not model.is_initialized()  # fit initialises ActNorm again
  assert all(not np.any(v.numpy()) for v in model.optimizer.variables)


@pytest.mark.parametrize(
  "argv",
  [
    ["--datasets", "mnist"],
    ["--mixings", "1x1,conv"],
    ["--datasets", ""],
  ],
)
def test_bad_arguments_exit(argv, tmp_path):
  with pytest.raises(SystemExit):
    compare.main(argv + ["--out", str(tmp_path)])
