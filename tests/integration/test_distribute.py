"""tf.distribute: FlowModel.fit on two logical CPUs equals one device.

The two-replica run happens in a fresh process (`distribute_worker.py`),
since logical devices must be set before TensorFlow initialises; it trains
the same tiny Glow with momentum SGD (which, unlike Adam, would show a
wrongly scaled gradient) under the default strategy and under
`MirroredStrategy`, and checkpoints each to restore under the other.
"""

import numpy as np
import pytest

from tests.testlib import workers
from tfp_emerging import distribute


@pytest.fixture(scope="module")
def results():
  return workers.run_json_worker("distribute_worker")


def test_mirrored_fit_gives_the_losses_of_one_device(results):
  assert results["replicas"] == 2
  assert len(results["losses_mirrored"]) == 8  # 2 epochs of 4 batches
  np.testing.assert_allclose(
    results["losses_mirrored"], results["losses_default"], rtol=2e-6
  )
  # Training moved the loss, so equal losses mean equal updates.
  assert results["losses_default"][-1] < results["losses_default"][0] - 0.1
  assert results["variables_difference"] < 1e-5


def test_mirrored_fit_of_a_class_conditional_flow(results):
  # (images, labels) batches: each replica gets its images' own labels.
  assert len(results["conditional_losses_mirrored"]) == 8
  np.testing.assert_allclose(
    results["conditional_losses_mirrored"],
    results["conditional_losses_default"],
    rtol=2e-6,
  )
  losses = results["conditional_losses_default"]
  assert losses[-1] < losses[0] - 0.1
  assert results["conditional_variables_difference"] < 1e-5
  assert results["conditional_bits_difference"] < 1e-5


def test_actnorm_initialises_from_the_global_batch(results):
  # The first ActNorm's bias is minus the per-channel mean of its input,
  # the squeezed first global batch (16 images), not one replica's 8.
  expected = -np.asarray(results["global_batch_mean"])
  np.testing.assert_allclose(
    results["actnorm_bias_mirrored"], expected, rtol=1e-6
  )
  np.testing.assert_allclose(
    results["actnorm_bias_default"], expected, rtol=1e-6
  )
  assert np.abs(expected + np.asarray(results["replica_share_mean"])).max() > (
    1e-3
  )


def test_no_replica_initialises_actnorm_alone(results):
  # Inside strategy.run, an uninitialised flow raises instead of letting
  # each replica initialise from its share of the batch.
  assert "is not initialised" in results["replica_uninitialised_error"]
  # fit of a flow without `initialize` (a tfb.Chain) initialises it from the
  # first global batch, outside the replicas.
  assert results["chain_initialized"]
  np.testing.assert_allclose(
    results["chain_actnorm_bias_mirrored"],
    -np.asarray(results["global_batch_mean"]),
    rtol=1e-6,
  )


def test_checkpoints_restore_across_strategies(results):
  assert results["slots"] > 0  # momentum slots travel too
  assert results["mirrored_to_default"] == 0.0
  assert results["mirrored_to_default_slots"] == 0.0
  assert results["default_to_mirrored"] == 0.0
  assert results["default_to_mirrored_replicas"] == 0.0  # every replica
  assert results["restored_bits_mirrored_to_default"] == 0.0


def test_make_strategy_names_and_errors(monkeypatch):
  assert distribute.make_strategy("default").num_replicas_in_sync == 1
  with pytest.raises(ValueError, match="must be one of"):
    distribute.make_strategy("gpu")
  with pytest.raises(ValueError, match="`devices` is for the 'mirrored'"):
    distribute.make_strategy("default", devices=["/cpu:0"])
  monkeypatch.delenv("TPU_NAME", raising=False)
  with pytest.raises(distribute.StrategyError, match="found no TPU"):
    distribute.make_strategy("tpu")
  monkeypatch.setenv("TF_CONFIG", "{not json")
  with pytest.raises(distribute.StrategyError, match="not valid JSON"):
    distribute.make_strategy("multiworker")
  monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
  with pytest.raises(distribute.StrategyError, match="'task'"):
    distribute.make_strategy("multiworker")


def test_command_line_runs_split_batches_and_resume_across_strategies(results):
  assert results["cli_status"] == 0
  assert results["cli_strategy"] == ["mirrored"]  # from --strategy mirrored
  np.testing.assert_allclose(
    results["run_mirrored"], results["run_default"], rtol=1e-5
  )
  # Epoch 1 under one strategy, epoch 2 under the other: the same numbers.
  np.testing.assert_allclose(
    results["run_default_then_mirrored"],
    results["run_mirrored_then_default"],
    rtol=1e-5,
  )
  assert len(results["run_default_then_mirrored"]) == 2
  assert "divisible by the 2 replicas" in results["odd_batch_error"]
