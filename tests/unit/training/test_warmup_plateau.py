"""`keras.callbacks.ReduceLROnPlateau` on the training path, whose optimizer
always runs the `WarmupSchedule` (issue 23 point 5)."""

import pytest

from tests.testlib.runs import tiny_config
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training


@pytest.mark.slow
def test_reduce_lr_on_plateau_lowers_the_training_paths_rate(digits_npz):
  # 3 steps per epoch; the 4-step warm-up ends in epoch 2.
  config = tiny_config(digits_npz, epochs=3)
  data = training.load_data(config)
  config = config.with_data(data)
  model = training.build_model(config)
  # No epoch beats the first by 1e6 bits/dim: the rate halves after epoch
  # 2 and stays (cooldown) in epoch 3.
  plateau = tfe_keras.keras.callbacks.ReduceLROnPlateau(
    monitor="loss", factor=0.5, patience=1, min_delta=1e6, cooldown=5
  )
  records = training.fit(model, data, config, callbacks=[plateau])
  assert len(records) == 3
  assert int(model.optimizer.iterations) == 9
  assert float(model.optimizer.learning_rate) == pytest.approx(
    config.learning_rate / 2, rel=1e-6
  )
