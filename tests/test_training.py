"""Tests of `tfp_emerging.training` and its callbacks: the one training path,
run files, resume, the NaN guard, TensorBoard."""

import dataclasses
import glob
import json
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging import callbacks
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.keras import DEQUANTIZED
from tfp_emerging.keras import WEIGHT

# A tiny flow on a small slice of the real digits (96 train, 32 test images,
# batch 32: 3 steps per epoch): seconds per epoch.
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
  x = (tf.cast(images, tf.float32) + 0.5) / model.num_bins - 0.5
  return model.distribution.log_prob(x).numpy()


def _test_images(path, count):
  return np.stack(list(data.load(path).images("test").take(count)
                       .as_numpy_iterator()))


def _bits(metrics):
  """The per-epoch records without their timings."""
  return [(m["epoch"], m["train_bits_per_dim"], m["test_bits_per_dim"])
          for m in metrics]


def _read_json(*path):
  with open(os.path.join(*path), encoding="utf-8") as f:
    return json.load(f)


class _AtBatch(tf.keras.callbacks.Callback):
  """Calls `action(model)` before training batch `batch` of epoch `epoch`
  (both from 1), and records the probe's log-prob at that epoch's start."""

  def __init__(self, epoch, batch, action, probe=None):
    super().__init__()
    self._epoch, self._batch, self._action = epoch, batch, action
    self._probe = probe
    self._current = None
    self.log_prob_at_start = None

  def on_epoch_begin(self, epoch, logs=None):
    self._current = epoch + 1
    if self._current == self._epoch and self._probe is not None:
      self.log_prob_at_start = _log_prob(self.model, self._probe)

  def on_train_batch_begin(self, batch, logs=None):
    if self._current == self._epoch and batch + 1 == self._batch:
      self._action(self.model)


def _interrupt(model):
  del model
  raise KeyboardInterrupt


@pytest.fixture(scope="module")
def uninterrupted(digits_npz, tmp_path_factory):
  """Two epochs trained in one go, with TensorBoard summaries."""
  folder = tmp_path_factory.mktemp("runs")
  run, logs = str(folder / "run"), str(folder / "tensorboard")
  metrics = training.train(_config(digits_npz, epochs=2), run, log=_quiet,
                           verbose=0, tensorboard=logs)
  _, model, _, _ = training.load_run(run)
  return run, logs, metrics, _log_prob(model, _test_images(digits_npz, 8))


def test_train_writes_config_checkpoints_metrics_and_samples(uninterrupted,
                                                             digits_npz):
  run, _, metrics, _ = uninterrupted
  config = _read_json(run, "config.json")
  assert config["dataset"] == digits_npz and config["num_bins"] == 17
  assert config["image_shape"] == [8, 8, 1] and config["mixing"] == "emerging"
  assert config["changes"] == []
  document = _read_json(run, "metrics.json")
  stored = document["epochs"]
  assert stored == metrics and [m["epoch"] for m in stored] == [1, 2]
  for record in stored:
    assert set(record) == {"epoch", "train_bits_per_dim", "test_bits_per_dim",
                           "seconds", "train_seconds", "test_seconds",
                           "worse_than_uniform"}
    assert 0 < record["train_bits_per_dim"] < 2 * np.log2(17)
    assert 0 < record["test_bits_per_dim"] < 2 * np.log2(17)
    assert record["seconds"] >= record["train_seconds"] + record[
        "test_seconds"] - 1e-3
  for epoch in (1, 2):
    assert os.path.exists(os.path.join(run, "checkpoints",
                                       f"ckpt-{epoch}.index"))
  # No temporary files are left behind by the atomic writes.
  assert sorted(os.listdir(run)) == [".tfp-emerging-run", "checkpoints",
                                     "config.json", "metrics.json",
                                     "samples.png"]
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
      "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index",
      "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
  with open(os.path.join(run, "samples.png"), "rb") as f:
    grid = tf.io.decode_png(f.read()).numpy()
  # 64 samples: 8 x 8 tiles of 8 x 8 pixels with 1-pixel borders, 4x zoom.
  assert grid.shape == ((8 * 9 + 1) * 4, (8 * 9 + 1) * 4, 1)
  assert grid.max() > 0


def test_epochs_worse_than_uniform_after_the_warm_up_are_flagged(
    uninterrupted):
  run, _, metrics, _ = uninterrupted
  document = _read_json(run, "metrics.json")
  uniform = np.log2(17)
  assert document["uniform_bits_per_dim"] == pytest.approx(uniform, rel=1e-12)
  # 3 steps per epoch, a warm-up of 4 steps: epoch 1 ends inside it (step
  # 3), epoch 2 after it (step 6).
  for record, steps in zip(metrics, (3, 6)):
    assert record["worse_than_uniform"] == (
        steps >= 4 and record["test_bits_per_dim"] > uniform)
  # This tiny run is still worse than uniform after epoch 2 (so both
  # branches are seen here); the top-level flag is the last epoch's.
  assert [r["worse_than_uniform"] for r in metrics] == [False, True]
  assert metrics[0]["test_bits_per_dim"] > uniform
  assert document["worse_than_uniform"] is True


def test_tensorboard_gets_both_curves_and_a_sample_grid(uninterrupted):
  run, logs, metrics, _ = uninterrupted
  del run
  found = {}
  for split in ("train", "test"):
    for path in glob.glob(os.path.join(logs, split, "events.out.tfevents.*")):
      for event in tf.compat.v1.train.summary_iterator(path):
        for value in event.summary.value:
          found[(split, value.tag, event.step)] = value
  for record in metrics:
    for split in ("train", "test"):
      value = found[(split, "bits_per_dim", record["epoch"])]
      assert tf.make_ndarray(value.tensor) == pytest.approx(
          record[f"{split}_bits_per_dim"], rel=1e-6)
    image = found[("test", "samples", record["epoch"])]
    # tf.summary.image stores [width, height, PNG]: 4 x 4 tiles of 8 x 8.
    width, height, png = tf.make_ndarray(image.tensor)
    assert int(width) == int(height) == (4 * 9 + 1) * 4
    assert tf.io.decode_png(png).shape[-1] == 1


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
    uninterrupted, digits_npz, tmp_path, capsys, monkeypatch):
  _, _, expected, expected_log_prob = uninterrupted
  run = str(tmp_path / "run")
  probe = _test_images(digits_npz, 8)
  interrupt = _AtBatch(epoch=2, batch=2, action=_interrupt, probe=probe)
  with pytest.raises(KeyboardInterrupt):
    training.train(_config(digits_npz, epochs=2), run, log=_quiet, verbose=0,
                   callbacks=[interrupt])
  # Epoch 1 finished and was checkpointed; the half epoch 2 left no trace.
  assert _bits(_read_json(run, "metrics.json")["epochs"]) == _bits(
      expected[:1])
  config, restored, epoch, path = training.load_run(run)
  assert epoch == 1 and path.endswith("ckpt-1") and config.num_bins == 17
  # The checkpoint restores the exact weights of the end of epoch 1.
  np.testing.assert_array_equal(_log_prob(restored, probe),
                                interrupt.log_prob_at_start)

  # The resumed run, on a terminal: Keras' progress bar inside the epoch.
  monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
  logs = []
  metrics = training.resume(run, log=logs.append)
  out = capsys.readouterr().out
  assert "1/3" in out and "3/3" in out and "\r" in out
  assert logs[0] == f"resumed from {path} (epoch 1)"
  # Same batches, same noise, same optimizer state: the same numbers as the
  # run that was never interrupted.
  assert _bits(metrics) == _bits(expected)
  assert _read_json(run, "metrics.json")["epochs"] == metrics
  _, restored, epoch, path = training.load_run(run)
  assert epoch == 2 and path.endswith("ckpt-2")
  np.testing.assert_array_equal(_log_prob(restored, probe), expected_log_prob)
  # The optimizer's step counter (which drives the warm-up) was restored too.
  assert int(restored.optimizer.iterations.numpy()) == 2 * 3
  # Nothing left to do: resuming at the same epoch count trains nothing.
  assert training.resume(run, log=_quiet, verbose=0) == metrics
  assert _read_json(run, "config.json")["changes"] == []


def _numbered_images(tmp_path, num_train, num_test):
  """An .npz whose image `i` holds `i` in its first two pixels (base 251)."""
  def images(first, count):
    array = np.zeros((count, 4, 4, 1), np.uint8)
    index = np.arange(first, first + count)
    array[:, 0, 0, 0], array[:, 0, 1, 0] = index // 251, index % 251
    return array
  path = str(tmp_path / "numbered.npz")
  np.savez(path, train=images(0, num_train),
           test=images(num_train, num_test))
  return data.load(path)


def _indices(images):
  return (images[:, 0, 0, 0].astype(int) * 251 + images[:, 0, 1, 0]).tolist()


def _epochs(dataset, steps, batch_size):
  """Per epoch: the image indices and the noise of each batch."""
  batches = [(np.floor((x[DEQUANTIZED].numpy() + 0.5) * 256).astype(int),
              x[DEQUANTIZED].numpy()) for x in dataset]
  per_epoch = [batches[i:i + steps] for i in range(0, len(batches), steps)]
  assert all(b[0].shape[0] == batch_size for b in batches)
  return [([_indices(k) for k, _ in epoch], [u for _, u in epoch])
          for epoch in per_epoch]


def test_batches_of_a_resumed_pipeline_continue_the_uninterrupted_ones(
    tmp_path, monkeypatch):
  numbered = _numbered_images(tmp_path, 100, 10)
  monkeypatch.setattr(training, "SHUFFLE_BUFFER_BYTES", 16 * 40)  # 40 images
  assert training.window_size(numbered, 16, 100) == 40
  full, steps = training.train_batches(numbered, 16, seed=3, first_epoch=1,
                                       last_epoch=3)
  assert steps == 6  # 100 // 16; the other 4 images wait for a later epoch
  tf.random.set_seed(99)  # TensorFlow's global seed plays no part
  later, _ = training.train_batches(numbered, 16, seed=3, first_epoch=2,
                                    last_epoch=3)
  epochs = _epochs(full, steps, 16)
  resumed = _epochs(later, steps, 16)
  assert len(epochs) == 3 and len(resumed) == 2
  for (indices, noise), (again, again_noise) in zip(epochs[1:], resumed):
    assert indices == again
    for a, b in zip(noise, again_noise):
      np.testing.assert_array_equal(a, b)
  orders = [sum(indices, []) for indices, _ in epochs]
  for order in orders:
    assert len(set(order)) == 96 and set(order) <= set(range(100))
  assert orders[0] != orders[1] != orders[2]
  # Images are permuted within windows of 40 of the seed-reordered source:
  # each epoch's first 40 images are the same 40.
  assert set(orders[0][:40]) == set(orders[1][:40])
  other, _ = training.train_batches(numbered, 16, seed=4, first_epoch=1,
                                    last_epoch=1)
  assert _epochs(other, steps, 16)[0][0] != epochs[0][0]
  # The data-dependent initialisation sees epoch 1's first batch.
  first = training.first_images(numbered, 16, seed=3, epoch=1)
  assert _indices(first.numpy()) == epochs[0][0][0]


def test_evaluation_counts_every_test_image_once(digits_npz):
  digits = data.load(digits_npz)
  config = _config(digits_npz).with_data(digits)
  model = training.build_model(config)
  model.initialize(_test_images(digits_npz, 32), seed=0)
  batches = list(training.test_batches(digits, 10, seed=5))
  assert len(batches) == 4  # 32 images: 3 full batches and one padded
  weights = np.concatenate([b[WEIGHT].numpy() for b in batches])
  np.testing.assert_array_equal(weights, [1.] * 32 + [0.] * 8)
  x = np.concatenate([b[DEQUANTIZED].numpy() for b in batches])[:32]
  # Dequantised images: the test images plus noise in [0, 1) / 17.
  np.testing.assert_array_equal(np.floor((x + 0.5) * 17),
                                _test_images(digits_npz, 32))
  # The noise of an image does not depend on the batching.
  single = next(iter(training.test_batches(digits, 32, seed=5)))
  np.testing.assert_array_equal(single[DEQUANTIZED].numpy(), x)
  # The mean over images, computed from the log-density directly.
  log_prob = model.distribution.log_prob(x).numpy().astype(np.float64)
  expected = np.mean(-(log_prob - 64 * np.log(17)) / (64 * np.log(2)))
  for batch_size in (10, 32):
    assert training.evaluate(model, digits, batch_size, seed=5) == (
        pytest.approx(expected, rel=1e-6))
  assert training.evaluate(model, digits, 32, seed=6) != (
      training.evaluate(model, digits, 32, seed=5))


@pytest.mark.parametrize("mixing, traced", [
    ("1x1", False), ("lu", True), ("qr", False), ("emerging", True),
    ("periodic", False)])
def test_checkpoint_holds_every_variable_of_every_mixing(digits_npz, tmp_path,
                                                         mixing, traced):
  run = str(tmp_path / "run")
  config = _config(digits_npz, mixing=mixing, num_bins=17,
                   image_shape=[8, 8, 1])
  os.makedirs(run)
  callbacks.write_json(os.path.join(run, "config.json"),
                       dataclasses.asdict(config))
  model = training.build_model(config)
  state = callbacks.RunState(model, run, keep_checkpoints=1)
  probe = _test_images(digits_npz, 4)
  model.initialize(tf.constant(probe))
  # Move every variable away from its seeded initial value, which a rebuilt
  # model would reproduce without any checkpoint.
  rng = np.random.default_rng(1)
  for variable in model.flow.trainable_variables:
    variable.assign_add(0.01 * rng.standard_normal(variable.shape).astype(
        variable.dtype.as_numpy_dtype))
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
  np.testing.assert_array_equal(_log_prob(restored, probe),
                                _log_prob(model, probe))


def _poison(model):
  for variable in model.trainable_variables:
    variable.assign(tf.fill(tf.shape(variable), np.nan))


def test_nan_guard_keeps_the_last_good_checkpoint_and_its_advice_works(
    digits_npz, tmp_path, capsys):
  run = str(tmp_path / "run")
  with pytest.raises(training.TrainingDiverged) as info:
    training.train(_config(digits_npz, epochs=2), run, log=_quiet, verbose=0,
                   callbacks=[_AtBatch(epoch=2, batch=2, action=_poison)])
  message = str(info.value)
  assert message.startswith(
      "training diverged in epoch 2: the mean training loss of the epoch is "
      "nan. Nothing of this epoch was saved.")
  assert "ckpt-1 (epoch 1) is kept" in message
  assert [m["epoch"] for m in _read_json(run, "metrics.json")["epochs"]] == [1]
  _, _, epoch, _ = training.load_run(run)
  assert epoch == 1
  # The advice is a command that works as written.
  command = re.search(r"tfp-emerging (train --out \S+ --resume "
                      r"--learning-rate \S+) \(now 0.001\)", message)
  assert command, message
  assert cli.main(command.group(1).split()) == 0
  assert "resumed from" in capsys.readouterr().out
  assert [m["epoch"] for m in _read_json(run, "metrics.json")["epochs"]] == [
      1, 2]
  assert _read_json(run, "config.json")["changes"] == [
      {"epoch": 2, "option": "learning_rate", "old": 0.001, "new": 0.00025}]


def test_tensorboard_without_the_package_says_what_to_install(
    digits_npz, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
  run = tmp_path / "run"
  with pytest.raises(training.RunError,
                     match=r"--tensorboard needs the package tensorboard.*"
                     r"pip install \"tfp_emerging\[tensorboard\]\""):
    training.train(_config(digits_npz), str(run), log=_quiet,
                   tensorboard=str(tmp_path / "logs"))
  assert not run.exists() and not (tmp_path / "logs").exists()


def test_callbacks_leave_the_batches_to_keras():
  # Keras calls per-batch hooks from a thread, without waiting for each
  # step, only when no callback overrides them (or says it is safe).
  for cls in (callbacks.EpochRecorder, callbacks.NaNGuard,
              callbacks.UniformCheck, callbacks.Checkpointer,
              callbacks.TensorBoardLogger):
    for hook in ("on_batch_end", "on_train_batch_end"):
      assert hook not in vars(cls), (cls, hook)


def test_run_directory_errors(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  with pytest.raises(training.RunError, match="no config.json"):
    training.resume(run)
  with pytest.raises(training.RunError, match="not a training run"):
    training.load_run(run)
  os.makedirs(run)
  callbacks.write_json(os.path.join(run, "config.json"),
                       dataclasses.asdict(_config(
                           digits_npz, num_bins=17, image_shape=[8, 8, 1])))
  with pytest.raises(training.RunError,
                     match="holds a config.json but is not marked as a run "
                     "directory of tfp-emerging"):
    training.train(_config(digits_npz), run)
  callbacks.claim_run_dir(run)
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
  grid = callbacks.image_grid(images, num_bins=17, columns=2, scale=1)
  expected = np.zeros((7, 7, 1), np.uint8)
  expected[1:3, 1:3] = 255
  expected[4, 2] = 128  # round(8 * 255 / 16) = 127.5 -> 128
  np.testing.assert_array_equal(grid, expected)
  zoomed = callbacks.image_grid(images, num_bins=17)  # 2x2 tiles: 16x zoom
  assert zoomed.shape == (7 * 16, 7 * 16, 1)
  np.testing.assert_array_equal(zoomed[::16, ::16], grid)


def test_atomic_writes_leave_only_the_file(tmp_path):
  path = str(tmp_path / "m.json")
  callbacks.write_json(path, {"a": 1})
  callbacks.write_json(path, {"a": [1, 2]})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  with pytest.raises(TypeError):  # fails mid-way: the old file is untouched
    callbacks.write_json(path, {"a": object()})
  with open(path, encoding="utf-8") as f:
    assert json.load(f) == {"a": [1, 2]}
  callbacks.write_png(str(tmp_path / "g.png"), np.full((3, 5, 3), 7, np.uint8))
  with open(tmp_path / "g.png", "rb") as f:
    assert tf.io.decode_png(f.read()).numpy().shape == (3, 5, 3)
  assert sorted(os.listdir(tmp_path)) == ["g.png", "m.json"]
