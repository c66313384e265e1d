"""The command line under faults and bad inputs (issue 26): outputs that
are not a command's own, options that would make a run's record false,
config files that disagree with the checkpoints, damaged files, bad data.

One finished 2-epoch run is shared by the module (`finished_run`); a test
that changes a run works on a copy of it.
"""

import errno
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import runs
from tests.testlib import workers
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import export as export_lib
from tfp_emerging import training

TINY = [*runs.TINY_FLAGS, "--mixing", "lu"]

STARTUP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(scope="module")
def finished_run(digits_npz, tmp_path_factory):
  """A finished run of 2 epochs trained through the command line."""
  run = str(tmp_path_factory.mktemp("runs") / "run")
  arguments = ["train", "--dataset", digits_npz, "--epochs", "2", "--out", run]
  assert cli.main(arguments + TINY) == 0
  return run


def _digest(folder):
  """`{relative path: sha256}` of every file under `folder`."""
  digests = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digests[os.path.relpath(path, folder)] = hashlib.sha256(
          f.read()
        ).hexdigest()
  return digests


def _one_error(capsys, command):
  """The one line on standard error, checked to be `command`'s error."""
  err = capsys.readouterr().err.strip().splitlines()
  err = [line for line in err if not line.startswith("warning: ")]
  assert len(err) == 1, err
  assert err[0].startswith(f"tfp-emerging {command}: error: "), err
  return err[0]


@pytest.mark.slow
def test_sample_never_replaces_what_is_not_its_own(
  finished_run, tmp_path, capsys
):
  before = _digest(finished_run)
  other = tmp_path / "other-run"  # another run directory
  other.mkdir()
  (other / ".tfp-emerging-run").write_text("{}")
  notes = tmp_path / "notes.txt"
  notes.write_text("mine")
  for out, says in (
    (os.path.join(finished_run, "config.json"), "not a PNG image"),
    (os.path.join(finished_run, "metrics.json"), "not a PNG image"),
    (os.path.join(finished_run, "checkpoints", "g.png"), "inside the run"),
    (os.path.join(finished_run, "grid.png"), "inside the run"),
    (str(other / "samples.png"), f"inside the run directory {other}"),
    (str(notes), "not a PNG image"),
  ):
    capsys.readouterr()
    assert cli.main(["sample", "--run", finished_run, "--out", out]) == 2
    assert says in _one_error(capsys, "sample"), out
  assert _digest(finished_run) == before
  assert notes.read_text() == "mine" and os.listdir(other) == [
    ".tfp-emerging-run"
  ]
  # Its own names: the run's samples, and any PNG outside run directories.
  own = os.path.join(finished_run, "samples.png")
  assert cli.main(["sample", "--run", finished_run, "--out", own]) == 0
  grid = tmp_path / "grid.png"
  for _ in range(2):  # a PNG it wrote may be replaced
    assert cli.main(["sample", "--run", finished_run, "--out", str(grid)]) == 0
  assert tf.io.decode_png(grid.read_bytes()).shape[-1] == 1


@pytest.mark.slow
def test_export_replaces_only_a_savedmodel_and_only_with_overwrite(
  finished_run, tmp_path, capsys
):
  before = _digest(finished_run)
  user = tmp_path / "user"
  user.mkdir()
  (user / "keep.txt").write_text("mine")
  for out, says in (
    (finished_run, "export never writes into a run directory"),
    (os.path.join(finished_run, "exported"), "inside the run directory"),
    (str(user), "holds no SavedModel"),
  ):
    capsys.readouterr()
    assert cli.main(["export", "--run", finished_run, "--out", out]) == 2
    assert says in _one_error(capsys, "export"), out
  assert _digest(finished_run) == before
  assert os.listdir(user) == ["keep.txt"]
  saved = str(tmp_path / "saved")
  command = ["export", "--run", finished_run, "--out", saved]
  assert cli.main(command) == 0
  first = _digest(saved)
  capsys.readouterr()
  assert cli.main(command) == 2
  assert "already holds a SavedModel; pass --overwrite" in _one_error(
    capsys, "export"
  )
  assert _digest(saved) == first
  assert cli.main(command + ["--overwrite"]) == 0
  assert "sample" in tf.saved_model.load(saved).signatures
  assert sorted(os.listdir(tmp_path)) == ["saved", "user"]  # nothing beside


def test_export_onto_a_full_disk_leaves_no_half_written_folder(
  finished_run, tmp_path, capsys, monkeypatch
):
  """The SavedModel writer fails with ENOSPC half-way (simulated: it has
  written a file); `--out` is left as it was, nothing is left beside it."""

  def full_disk(model, path):
    del model
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
      f.write(b"half")
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(export_lib, "export", full_disk)
  for existing in (False, True):
    out = tmp_path / "saved"
    if existing:  # an older SavedModel, replaced with --overwrite
      out.mkdir()
      (out / "saved_model.pb").write_bytes(b"old")
    command = ["export", "--run", finished_run, "--out", str(out)]
    capsys.readouterr()
    assert cli.main(command + ["--overwrite"] * existing) == 5
    line = _one_error(capsys, "export")
    assert f"{out}: no space left on the device while writing the " in line
    assert "--resume" not in line
    assert os.listdir(tmp_path) == (["saved"] if existing else [])
    if existing:
      assert (out / "saved_model.pb").read_bytes() == b"old"


def test_train_refuses_a_batch_larger_than_the_training_split(
  finished_run, digits_npz, tmp_path, capsys
):
  run = tmp_path / "run"
  command = ["train", "--dataset", digits_npz, "--out", str(run)] + TINY
  assert cli.main(command + ["--batch-size", "97"]) == 2
  line = _one_error(capsys, "train")
  assert "--batch-size 97 is more than the 96 training images of " in line
  assert not run.exists()
  before = _digest(finished_run)
  resume = ["train", "--out", finished_run, "--resume", "--epochs", "3"]
  assert cli.main(resume + ["--batch-size", "97"]) == 2
  assert "--batch-size 97 is more than the 96 " in _one_error(capsys, "train")
  assert _digest(finished_run) == before


def test_tensorboard_at_a_file_exits_2_naming_it(digits_npz, tmp_path, capsys):
  logs = tmp_path / "logs"
  logs.write_text("mine")
  run = tmp_path / "run"
  for folder, says in (
    (logs, "is a file, not a folder"),
    (logs / "sub", f"{logs} is a file, not a folder"),
  ):
    command = ["train", "--dataset", digits_npz, "--out", str(run)] + TINY
    assert cli.main(command + ["--tensorboard", str(folder)]) == 2
    line = _one_error(capsys, "train")
    assert f"--tensorboard {folder}: {says}" in line, line
  assert not run.exists() and logs.read_text() == "mine"


def test_resume_refuses_fewer_epochs_than_the_run_has_finished(
  finished_run, capsys
):
  before = _digest(finished_run)
  command = ["train", "--out", finished_run, "--resume", "--epochs", "1"]
  assert cli.main(command) == 2
  line = _one_error(capsys, "train")
  assert "--epochs 1, but the run has finished 2 epoch(s)" in line, line
  assert "give at least 2" in line
  assert _digest(finished_run) == before  # config.json still says 2


def _png_with_broken_image_data(image):
  """`image` as a PNG whose header, checksums and IEND chunk are intact but
  whose compressed image data is not (its bytes inverted past the zlib
  header, the IDAT checksum recomputed)."""
  png = tf.io.encode_png(image).numpy()
  at = png.index(b"IDAT") - 4
  (length,) = struct.unpack(">I", png[at : at + 4])
  data = png[at + 8 : at + 10] + bytes(
    b ^ 0xFF for b in png[at + 10 : at + 8 + length]
  )
  chunk = b"IDAT" + data
  return (
    png[:at]
    + struct.pack(">I", len(data))
    + chunk
    + struct.pack(">I", zlib.crc32(chunk))
    + png[at + 12 + length :]
  )


def _digits_pngs(digits_npz, tmp_path):
  """`(folder, images)`: 40 digits as 8-bit PNG files `00.png`..."""
  folder = tmp_path / "pngs"
  folder.mkdir()
  with np.load(digits_npz) as arrays:
    images = arrays["train"][:40].astype(np.uint8) * 15  # 0..240
  for i, image in enumerate(images):
    (folder / f"{i:02d}.png").write_bytes(tf.io.encode_png(image).numpy())
  return folder, images


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
        path.write_bytes(_png_with_broken_image_data(image))


@pytest.mark.slow
def test_a_png_broken_during_training_is_named(digits_npz, tmp_path):
  """A file that breaks after `load` checked it (mid-run): the error names
  a broken file; the run directory keeps epoch 1, which --resume accepts."""
  folder, images = _digits_pngs(digits_npz, tmp_path)
  run = str(tmp_path / "run")
  config = training.RunConfig(
    dataset=str(folder),
    mixing="lu",
    num_levels=1,
    num_steps=1,
    hidden_channels=8,
    batch_size=8,
    warmup_steps=4,
    epochs=2,
  )
  with pytest.raises(data.DataError) as info:
    training.train(
      config,
      run,
      log=lambda line: None,
      callbacks=[_BreakFilesAtEpoch(folder, images, epoch=2)],
    )
  message = str(info.value)
  assert message.startswith(f"{folder}{os.sep}"), message
  assert "image data cannot be decoded" in message, message
  assert os.listdir(os.path.join(run, "checkpoints")) and (
    training.read_config(run).epochs == 2
  )


def test_a_png_with_broken_image_data_stops_before_training_naming_it(
  digits_npz, tmp_path, capsys
):
  folder, images = _digits_pngs(digits_npz, tmp_path)
  bad = folder / "17.png"
  bad.write_bytes(_png_with_broken_image_data(images[17]))
  run = tmp_path / "run"
  command = ["train", "--dataset", str(folder), "--out", str(run)] + TINY
  assert cli.main(command + ["--batch-size", "8"]) == 2
  line = _one_error(capsys, "train")
  assert line.startswith(f"tfp-emerging train: error: {bad}: not a readable ")
  assert "image data cannot be decoded" in line, line
  assert not run.exists()  # no half-made run directory


@pytest.mark.slow
def test_an_edited_config_disagrees_with_intact_checkpoints(
  finished_run, tmp_path, capsys
):
  """config.json edited to another architecture, or to other `num_bins`:
  every command says that it and the (intact) checkpoints disagree, names
  the field, advises no deletion, and writes nothing."""
  grid, saved = tmp_path / "grid.png", tmp_path / "saved"
  for field, value, commands in (
    ("num_steps", 2, [["evaluate"], ["train", "--resume"]]),
    ("num_bins", 16, [["sample", "--out", str(grid)], ["export"]]),
  ):
    copy = tmp_path / field
    shutil.copytree(finished_run, copy)
    config = json.loads((copy / "config.json").read_text())
    config[field] = value
    (copy / "config.json").write_text(json.dumps(config))
    before = _digest(copy)
    for command in commands:
      where = ["--out", str(copy)] if command[0] == "train" else []
      where += ["--run", str(copy)] if command[0] != "train" else []
      where += ["--out", str(saved)] if command[0] == "export" else []
      capsys.readouterr()
      assert cli.main(command + where) == 2, command
      line = _one_error(capsys, command[0])
      assert f"{copy}/config.json and the checkpoints disagree" in line, line
      assert f"{field} {value!r} in config.json" in line, line
      assert "corrupt" not in line and "delete " not in line, line
    assert _digest(copy) == before
  assert not grid.exists() and not saved.exists()


def _maps_tensorflow(pid):
  """Whether the process `pid` has loaded TensorFlow's library (it is
  importing TensorFlow: the start-up of the command line)."""
  with open(f"/proc/{pid}/maps", encoding="utf-8") as f:
    return "libtensorflow" in f.read()


@pytest.mark.slow
@pytest.mark.skipif(
  not os.path.exists("/proc/self/maps"), reason="needs /proc/PID/maps"
)
def test_a_signal_during_start_up_prints_one_line_and_exits(
  digits_npz, tmp_path
):
  """SIGINT and SIGTERM while `python -m tfp_emerging train` is still
  importing TensorFlow: the one-line message, status 130 or 143, nothing
  written (before: a 40-line traceback of the import, or silence)."""
  env = dict(os.environ, PYTHONPATH=workers.ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  runs = {number: tmp_path / number.name for number in STARTUP_SIGNALS}
  processes = {
    number: subprocess.Popen(
      [sys.executable, "-m", "tfp_emerging", "train", "--out", str(run)]
      + ["--dataset", digits_npz]
      + TINY,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
      env=env,
      cwd=workers.ROOT,
    )
    for number, run in runs.items()
  }
  try:
    for number, process in processes.items():
      deadline = time.monotonic() + 300
      while not _maps_tensorflow(process.pid):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
      process.send_signal(number)
    for number, process in processes.items():
      _, err = process.communicate(timeout=300)
      name = "terminated" if number == signal.SIGTERM else "interrupted"
      assert process.returncode == 128 + number, err[-3000:]
      assert "Traceback" not in err, err[-3000:]
      lines = [line for line in err.splitlines() if "tfp-emerging" in line]
      assert lines == [
        f"tfp-emerging train: {name} while starting; nothing was written."
      ], err[-3000:]
      assert not runs[number].exists()
  finally:
    for process in processes.values():
      if process.poll() is None:
        process.kill()
        process.wait()
