"""`tfp_emerging.training.run_training`: train and resume with a run
directory, the files of a run, the NaN guard, TensorBoard, a data file that
breaks during training."""

import glob
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.runs import EPOCH_RECORD_FIELDS
from tests.testlib.runs import digits_png_folder
from tests.testlib.runs import epoch_bits
from tests.testlib.runs import first_test_images
from tests.testlib.runs import flow_log_prob
from tests.testlib.runs import png_with_broken_image_data
from tests.testlib.runs import quiet
from tests.testlib.runs import read_json
from tests.testlib.runs import tiny_config
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import training

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow


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
      self.log_prob_at_start = flow_log_prob(self.model, self._probe)

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
  metrics = training.train(
    tiny_config(digits_npz, epochs=2),
    run,
    log=quiet,
    verbose=0,
    tensorboard=logs,
  )
  _, model, _, _ = training.load_run(run)
  return (
    run,
    logs,
    metrics,
    flow_log_prob(model, first_test_images(digits_npz, 8)),
  )


def test_train_writes_config_checkpoints_metrics_and_samples(
  uninterrupted, digits_npz
):
  run, _, metrics, _ = uninterrupted
  config = read_json(run, "config.json")
  assert config["dataset"] == digits_npz and config["num_bins"] == 17
  assert config["image_shape"] == [8, 8, 1] and config["mixing"] == "emerging"
  assert config["changes"] == []
  document = read_json(run, "metrics.json")
  stored = document["epochs"]
  assert stored == metrics and [m["epoch"] for m in stored] == [1, 2]
  for record in stored:
    assert set(record) == EPOCH_RECORD_FIELDS | {"worse_than_uniform"}
    assert 0 < record["train_bits_per_dim"] < 2 * np.log2(17)
    assert 0 < record["test_bits_per_dim"] < 2 * np.log2(17)
    assert (
      record["seconds"]
      >= record["train_seconds"] + record["test_seconds"] - 1e-3
    )
  for epoch in (1, 2):
    assert os.path.exists(
      os.path.join(run, "checkpoints", f"ckpt-{epoch}.index")
    )
  # No temporary files are left behind by the atomic writes.
  assert sorted(os.listdir(run)) == [
    ".tfp-emerging-run",
    "checkpoints",
    "config.json",
    "metrics.json",
    "samples.png",
  ]
  assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == [
    "checkpoint",
    "ckpt-1.data-00000-of-00001",
    "ckpt-1.index",
    "ckpt-2.data-00000-of-00001",
    "ckpt-2.index",
  ]
  with open(os.path.join(run, "samples.png"), "rb") as f:
    grid = tf.io.decode_png(f.read()).numpy()
  # 64 samples: 8 x 8 tiles of 8 x 8 pixels with 1-pixel borders, 4x zoom.
  assert grid.shape == ((8 * 9 + 1) * 4, (8 * 9 + 1) * 4, 1)
  assert grid.max() > 0


def test_epochs_worse_than_uniform_after_the_warm_up_are_flagged(uninterrupted):
  run, _, metrics, _ = uninterrupted
  document = read_json(run, "metrics.json")
  uniform = np.log2(17)
  assert document["uniform_bits_per_dim"] == pytest.approx(uniform, rel=1e-12)
  # 3 steps per epoch, a warm-up of 4 steps: epoch 1 ends inside it (step
  # 3), epoch 2 after it (step 6).
  for record, steps in zip(metrics, (3, 6)):
    assert record["worse_than_uniform"] == (
      steps >= 4 and record["test_bits_per_dim"] > uniform
    )
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
        record[f"{split}_bits_per_dim"], rel=1e-6
      )
    image = found[("test", "samples", record["epoch"])]
    # tf.summary.image stores [width, height, PNG]: 4 x 4 tiles of 8 x 8.
    width, height, png = tf.make_ndarray(image.tensor)
    assert int(width) == int(height) == (4 * 9 + 1) * 4
    assert tf.io.decode_png(png).shape[-1] == 1


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
  uninterrupted, digits_npz, tmp_path, capsys, monkeypatch
):
  _, _, expected, expected_log_prob = uninterrupted
  run = str(tmp_path / "run")
  probe = first_test_images(digits_npz, 8)
  interrupt = _AtBatch(epoch=2, batch=2, action=_interrupt, probe=probe)
  with pytest.raises(KeyboardInterrupt):
    training.train(
      tiny_config(digits_npz, epochs=2),
      run,
      log=quiet,
      verbose=0,
      callbacks=[interrupt],
    )
  # Epoch 1 finished and was checkpointed; the half epoch 2 left no trace.
  assert epoch_bits(read_json(run, "metrics.json")["epochs"]) == epoch_bits(
    expected[:1]
  )
  config, restored, epoch, path = training.load_run(run)
  assert epoch == 1 and path.endswith("ckpt-1") and config.num_bins == 17
  # The checkpoint restores the exact weights of the end of epoch 1.
  np.testing.assert_array_equal(
    flow_log_prob(restored, probe), interrupt.log_prob_at_start
  )

  # The resumed run, on a terminal: Keras' progress bar inside the epoch.
  monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
  logs = []
  metrics = training.resume(run, log=logs.append)
  out = capsys.readouterr().out
  assert "1/3" in out and "3/3" in out and "\r" in out
  assert logs[0] == f"resumed from {path} (epoch 1)"
  # Same batches, same noise, same optimizer state: the same numbers as the
  # run that was never interrupted.
  assert epoch_bits(metrics) == epoch_bits(expected)
  assert read_json(run, "metrics.json")["epochs"] == metrics
  _, restored, epoch, path = training.load_run(run)
  assert epoch == 2 and path.endswith("ckpt-2")
  np.testing.assert_array_equal(
    flow_log_prob(restored, probe), expected_log_prob
  )
  # The optimizer's step counter (which drives the warm-up) was restored too.
  assert int(restored.optimizer.iterations.numpy()) == 2 * 3
  # Nothing left to do: resuming at the same epoch count trains nothing.
  assert training.resume(run, log=quiet, verbose=0) == metrics
  assert read_json(run, "config.json")["changes"] == []


def _poison(model):
  for variable in model.trainable_variables:
    variable.assign(tf.fill(tf.shape(variable), np.nan))


def test_nan_guard_keeps_the_last_good_checkpoint_and_its_advice_works(
  digits_npz, tmp_path, capsys
):
  run = str(tmp_path / "run")
  with pytest.raises(training.TrainingDiverged) as info:
    training.train(
      tiny_config(digits_npz, epochs=2),
      run,
      log=quiet,
      verbose=0,
      callbacks=[_AtBatch(epoch=2, batch=2, action=_poison)],
    )
  message = str(info.value)
  assert message.startswith(
    "training diverged in epoch 2: the mean training loss of the epoch is "
    "nan. Nothing of this epoch was saved."
  )
  assert "ckpt-1 (epoch 1) is kept" in message
  assert [m["epoch"] for m in read_json(run, "metrics.json")["epochs"]] == [1]
  _, _, epoch, _ = training.load_run(run)
  assert epoch == 1
  # The advice is a command that works as written.
  command = re.search(
    r"tfp-emerging (train --out \S+ --resume "
    r"--learning-rate \S+) \(now 0.001\)",
    message,
  )
  assert command, message
  assert cli.main(command.group(1).split()) == 0
  assert "resumed from" in capsys.readouterr().out
  assert [m["epoch"] for m in read_json(run, "metrics.json")["epochs"]] == [
    1,
    2,
  ]
  assert read_json(run, "config.json")["changes"] == [
    {"epoch": 2, "option": "learning_rate", "old": 0.001, "new": 0.00025}
  ]


def test_tensorboard_without_the_package_says_what_to_install(
  digits_npz, tmp_path, monkeypatch
):
  monkeypatch.setitem(sys.modules, "tensorboard", None)  # import fails
  run = tmp_path / "run"
  with pytest.raises(
    training.RunError,
    match=r"--tensorboard needs the package tensorboard.*"
    r"pip install \"tfp_emerging\[tensorboard\]\"",
  ):
    training.train(
      tiny_config(digits_npz),
      str(run),
      log=quiet,
      tensorboard=str(tmp_path / "logs"),
    )
  assert not run.exists() and not (tmp_path / "logs").exists()


class _BreakFilesAtEpoch(tf.keras.callbacks.Callback):
  """Breaks the image data of every PNG file in `folder` when epoch
  `epoch` (from 1) begins."""

  def __init__(self, folder, images, epoch):
    super().__init__()
    self._folder, self._images, self._epoch = folder, images, epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch + 1 == self._epoch:
      for i, image in enumerate(self._images):
        path = self._folder / f"{i:02d}.png"
        path.write_bytes(png_with_broken_image_data(image))


def test_a_png_broken_during_training_is_named(digits_npz, tmp_path):
  """A file that breaks after `load` checked it (mid-run): the error names
  a broken file; the run directory keeps epoch 1, which --resume accepts."""
  folder, images = digits_png_folder(digits_npz, tmp_path / "pngs")
  run = str(tmp_path / "run")
  config = tiny_config(str(folder), mixing="lu", batch_size=8, epochs=2)
  with pytest.raises(data.DataError) as info:
    training.train(
      config,
      run,
      log=quiet,
      callbacks=[_BreakFilesAtEpoch(folder, images, epoch=2)],
    )
  message = str(info.value)
  assert message.startswith(f"{folder}{os.sep}"), message
  assert "image data cannot be decoded" in message, message
  assert os.listdir(os.path.join(run, "checkpoints")) and (
    training.read_config(run).epochs == 2
  )
