"""Smoke tests of the training path's benchmarks: `benchmarks/train_speed.py`
and the short training run of `benchmarks/memory.py`."""

import math

import pytest

from benchmarks import memory
from benchmarks import train_speed
from tfp_emerging import data

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow


def test_speed_script_times_both_loops_over_the_same_epochs():
  record = train_speed.measure(epochs=2, quick=True)
  assert record["steps_per_epoch"] == 1500 // 64
  assert record["config"]["num_steps"] == 1
  for key in (
    "path_seconds",
    "path_fit_seconds",
    "path_test_seconds",
    "bare_seconds",
    "ratios",
  ):
    assert len(record[key]) == 2 and all(v > 0 for v in record[key]), key
  # The path's epoch excludes its evaluation, which is reported apart.
  for path, fit in zip(record["path_seconds"], record["path_fit_seconds"]):
    assert path >= fit
  assert (
    math.isfinite(record["ratio"]) and record["ratio"] == (record["ratios"][1])
  )


def test_memory_scripts_short_run_trains_the_steps_asked_for():
  # On the digits, not the 200,000 mock images of the real measurement.
  assert (
    memory._short_training_run(
      data.load("digits"),
      steps=3,
      batch_size=16,
    )
    == 48
  )
