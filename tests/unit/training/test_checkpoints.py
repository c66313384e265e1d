"""`tfp_emerging.training.checkpoints`: a checkpoint holds every variable."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.runs import first_test_images
from tests.testlib.runs import flow_log_prob
from tests.testlib.runs import tiny_config
from tfp_emerging import training
from tfp_emerging.training import checkpoints
from tfp_emerging.training import run_dir


@pytest.mark.parametrize(
  "mixing, traced",
  [
    ("1x1", False),
    ("lu", True),
    ("qr", False),
    ("emerging", True),
    ("periodic", False),
  ],
)
def test_checkpoint_holds_every_variable_of_every_mixing(
  digits_npz, tmp_path, mixing, traced
):
  run = str(tmp_path / "run")
  config = tiny_config(
    digits_npz, mixing=mixing, num_bins=17, image_shape=[8, 8, 1]
  )
  os.makedirs(run)
  run_dir.write_json(
    os.path.join(run, "config.json"), dataclasses.asdict(config)
  )
  model = training.build_model(config)
  state = checkpoints.RunState(model, run, keep_checkpoints=1)
  probe = first_test_images(digits_npz, 4)
  model.initialize(tf.constant(probe))
  # Move every variable away from its seeded initial value, which a rebuilt
  # model would reproduce without any checkpoint.
  rng = np.random.default_rng(1)
  for variable in model.flow.trainable_variables:
    variable.assign_add(
      0.01
      * rng.standard_normal(variable.shape).astype(
        variable.dtype.as_numpy_dtype
      )
    )
  state.save(1, [], traced=traced)
  # The second save replaces the first (one kept): files and state file.
  state.save(2, [{"epoch": 2}], traced=traced)
  folder = os.path.join(run, "checkpoints")
  files = sorted(os.listdir(folder))  # checkpoint, ckpt-2.data-*, .index
  assert files[0] == "checkpoint" and "ckpt-2.index" in files
  assert all(f.startswith("ckpt-2.") for f in files[1:]), files
  assert tf.train.latest_checkpoint(folder) == os.path.join(folder, "ckpt-2")
  _, restored, epoch, _ = training.load_run(run)
  assert epoch == 2
  np.testing.assert_array_equal(
    flow_log_prob(restored, probe), flow_log_prob(model, probe)
  )


def test_a_checkpoint_of_another_model_is_a_mismatch_not_corrupt(
  digits_npz, tmp_path
):
  """Without a stored identity (`RunState` without one), a checkpoint that
  fails only by not fitting the model (another architecture) raises
  `ConfigMismatch`, which advises no deletion, not `CorruptCheckpointError`."""
  run = str(tmp_path / "run")
  config = tiny_config(digits_npz, num_bins=17, image_shape=[8, 8, 1])
  checkpoints.RunState(training.build_model(config), run, 1).save(1, [])
  other = dataclasses.replace(config, num_steps=2)
  state = checkpoints.RunState(training.build_model(other), run, 1)
  warnings = []
  with pytest.raises(checkpoints.ConfigMismatch) as info:
    state.restore(warnings.append)
  message = str(info.value)
  assert "config.json and the checkpoints in " in message, message
  assert "disagree" in message and "intact" in message, message
  assert "delete " not in message and "corrupt" not in message, message
  assert warnings and "does not fit the model" in warnings[0], warnings
