"""Mixed precision: coupling networks in float16, the rest in float32.

Runs `mixed_precision_worker.py` in a fresh process, since the Keras global
policy is process-wide.
"""

import numpy as np
import pytest

from tests.testlib import workers


@pytest.fixture(scope="module")
def results():
  return workers.run_json_worker("mixed_precision_worker")


def test_only_the_coupling_networks_run_in_float16(results):
  assert results["policy"] == "mixed_float16"
  assert results["coupling_compute_dtypes"] == ["float16"]
  assert results["variable_dtypes"] == ["float32"]
  # Three convolutions per coupling, in the log_prob and in the sampling
  # graph; no float16 op anywhere else (solves, log-dets, priors, actnorm).
  assert results["half_conv2d"] == 3 * results["num_couplings"] * 2
  assert results["half_outside_couplings"] == []
  assert set(results["half_ops"]) <= {"Conv2D", "AddV2", "Relu", "Cast"}


def test_mixed_log_prob_is_float32_and_close_to_float32_model(results):
  assert results["log_prob_dtype"] == "float32"
  mixed = np.asarray(results["log_prob_mixed"])
  full = np.asarray(results["log_prob_float32"])
  assert np.any(mixed != full)  # the networks did run in float16
  np.testing.assert_allclose(mixed, full, rtol=1e-2, atol=0.05)
  assert results["round_trip_error"] < 1e-4  # exact inverse in float32


def test_first_log_prob_initialises_actnorm_under_mixed_float16(results):
  assert results["implicit_initialized"]
  assert results["actnorm_moved"] > 1e-3  # initialisation changed them
  assert results["implicit_actnorm_difference"] < 1e-5


def test_training_under_mixed_float16(results):
  assert results["optimizer"] == "LossScaleOptimizer"
  losses = results["losses"]
  assert np.all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 0.1
