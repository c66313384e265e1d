"""Tests of `tfp_emerging.training`: run files, save/load, resume, NaN guard."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging import data
from tfp_emerging import training

# A tiny flow on a small slice of the real digits: seconds per epoch.
TINY = dict(num_levels=1, num_steps=1, hidden_channels=8, batch_size=32,
            learning_rate=1e-3, warmup_steps=4, keep_checkpoints=5)


def _config(dataset, **overrides):
  values = dict(TINY, dataset=dataset, epochs=1)
  values.update(overrides)
  return training.RunConfig(**values)


def _quiet(message):
  del message


def _log_prob(model, images):
  """Deterministic: the flow's log-density at fixed dequantised points."""
  x = (tf.cast(images, tf.float32) + 0.5) / model.num_bins
  return model.distribution.log_prob(x).numpy()


def test_train_writes_config_checkpoint_metrics_and_samples(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  metrics = training.train(_config(digits_npz), run, log=_quiet)

  with open(os.path.join(run, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  assert config["dataset"] == digits_npz and config["num_bins"] == 17
  assert config["image_shape"] == [8, 8, 1] and config["mixing"] == "emerging"
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    stored = json.load(f)["epochs"]
  assert stored == metrics and [m["epoch"] for m in stored] == [1]
  for key in ("train_bits_per_dim", "test_bits_per_dim"):
    assert np.isfinite(stored[0][key]) and stored[0][key] > 0
  assert os.path.exists(os.path.join(run, "checkpoints", "ckpt-1.index"))
  # No temporary files are left behind by the atomic writes.
  assert sorted(os.listdir(run)) == ["checkpoints", "config.json",
                                     "metrics.json", "samples.png"]
  with open(os.path.join(run, "samples.png"), "rb") as f:
    grid = tf.io.decode_png(f.read()).numpy()
  # 64 samples: 8 x 8 tiles of 8 x 8 pixels with 1-pixel borders, 4x zoom.
  assert grid.shape == ((8 * 9 + 1) * 4, (8 * 9 + 1) * 4, 1)
  assert grid.max() > 0


def test_save_load_and_resume_after_interruption(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  seen = {}

  def interrupt_in_epoch_2(epoch, step, model):
    if epoch == 2 and step == 0:
      seen["log_prob_epoch_1"] = _log_prob(model, probe)
    if epoch == 2 and step == 1:
      raise KeyboardInterrupt

  probe = data.load_npz(digits_npz).test[:8]
  with pytest.raises(KeyboardInterrupt):
    training.train(_config(digits_npz, epochs=2), run,
                   on_batch=interrupt_in_epoch_2, log=_quiet)
  # Epoch 1 finished and was checkpointed; the half epoch 2 left no trace.
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    epoch_1 = json.load(f)["epochs"]
  assert [m["epoch"] for m in epoch_1] == [1]
  config, restored, epoch, path = training.load_run(run)
  assert epoch == 1 and path.endswith("ckpt-1")
  assert config.num_bins == 17
  # The checkpoint restores the exact weights of the end of epoch 1.
  np.testing.assert_array_equal(_log_prob(restored, probe),
                                seen["log_prob_epoch_1"])

  logs = []
  metrics = training.resume(run, epochs=2, log=logs.append,
                            on_batch=lambda e, s, model: seen.update(
                                resumed=model))
  assert logs[0].startswith("resumed from") and "(epoch 1)" in logs[0]
  assert [m["epoch"] for m in metrics] == [1, 2]
  assert metrics[0] == epoch_1[0]
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    assert json.load(f)["epochs"] == metrics
  _, restored, epoch, path = training.load_run(run)
  assert epoch == 2 and path.endswith("ckpt-2")
  final = _log_prob(seen["resumed"], probe)
  assert not np.array_equal(final, seen["log_prob_epoch_1"])
  np.testing.assert_array_equal(_log_prob(restored, probe), final)
  # The optimizer's step counter (which drives the warm-up) was restored too.
  assert int(restored.optimizer.iterations.numpy()) == 2 * 3

  # Nothing left to do: resuming at the same epoch count trains nothing.
  assert training.resume(run, log=_quiet) == metrics


@pytest.mark.parametrize("mixing", ["1x1", "lu", "qr", "emerging",
                                    "periodic"])
def test_checkpoint_holds_every_variable_of_every_mixing(digits_npz, tmp_path,
                                                         mixing):
  run = str(tmp_path / "run")
  config = _config(digits_npz, mixing=mixing, num_bins=17,
                   image_shape=[8, 8, 1])
  os.makedirs(run)
  training.write_json(os.path.join(run, "config.json"),
                      dataclasses.asdict(config))
  model = training.build_model(config)
  state = training._State(model, run, keep_checkpoints=1)  # pylint: disable=protected-access
  probe = data.load_npz(digits_npz).test[:4]
  model.initialize(tf.constant(probe))
  # Move every variable away from its seeded initial value, which a rebuilt
  # model would reproduce without any checkpoint.
  rng = np.random.default_rng(1)
  for variable in model.flow.trainable_variables:
    variable.assign_add(0.01 * rng.standard_normal(variable.shape).astype(
        variable.dtype.as_numpy_dtype))
  state.save(1, [])
  _, restored, epoch, _ = training.load_run(run)
  assert epoch == 1
  np.testing.assert_array_equal(_log_prob(restored, probe),
                                _log_prob(model, probe))


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(
    digits_npz, tmp_path):
  run = str(tmp_path / "run")

  def poison_in_epoch_2(epoch, step, model):
    if epoch == 2 and step == 1:
      for variable in model.trainable_variables:
        variable.assign(tf.fill(tf.shape(variable), np.nan))

  with pytest.raises(training.TrainingDiverged) as info:
    training.train(_config(digits_npz, epochs=3), run,
                   on_batch=poison_in_epoch_2, log=_quiet)
  message = str(info.value)
  assert "training diverged in epoch 2" in message
  assert "loss became nan at batch 2 of 3" in message
  assert "ckpt-1 (epoch 1) is kept" in message and "--learning-rate" in message
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    assert [m["epoch"] for m in json.load(f)["epochs"]] == [1]
  config, model, epoch, _ = training.load_run(run)
  assert epoch == 1
  assert np.isfinite(training.evaluate_bits_per_dim(
      model, data.load_npz(config.dataset).test, 32))


def test_run_directory_errors(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  with pytest.raises(training.RunError, match="no config.json"):
    training.resume(run)
  with pytest.raises(training.RunError, match="not a training run"):
    training.load_run(run)
  os.makedirs(run)
  training.write_json(os.path.join(run, "config.json"),
                      dataclasses.asdict(_config(
                          digits_npz, num_bins=17, image_shape=[8, 8, 1])))
  with pytest.raises(training.RunError, match="already holds a run"):
    training.train(_config(digits_npz), run)
  with pytest.raises(training.RunError, match="no checkpoint yet"):
    training.load_run(run)
  with open(os.path.join(run, "config.json"), "w", encoding="utf-8") as f:
    f.write("{broken")
  with pytest.raises(training.RunError, match="not a readable run config"):
    training.load_run(run)


def test_image_grid_layout_levels_and_zoom():
  images = np.zeros((3, 2, 2, 1), np.uint8)
  images[0] = 16
  images[2, 0, 1] = 8
  grid = training.image_grid(images, num_bins=17, columns=2, scale=1)
  expected = np.zeros((7, 7, 1), np.uint8)
  expected[1:3, 1:3] = 255
  expected[4, 2] = 128  # round(8 * 255 / 16) = 127.5 -> 128
  np.testing.assert_array_equal(grid, expected)
  zoomed = training.image_grid(images, num_bins=17)  # 2x2 tiles: 16x zoom
  assert zoomed.shape == (7 * 16, 7 * 16, 1)
  np.testing.assert_array_equal(zoomed[::16, ::16], grid)


def test_atomic_writes_leave_only_the_file(tmp_path):
  path = str(tmp_path / "m.json")
  training.write_json(path, {"a": 1})
  training.write_json(path, {"a": [1, 2]})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(TypeError):  # fails mid-way: the old file is untouched
    training.write_json(path, {"a": object()})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  training.write_png(str(tmp_path / "g.png"), np.full((3, 5, 3), 7, np.uint8))
  with open(tmp_path / "g.png", "rb") as f:
    assert tf.io.decode_png(f.read()).numpy().shape == (3, 5, 3)
  assert sorted(os.listdir(tmp_path)) == ["g.png", "m.json"]
