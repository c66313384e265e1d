"""Real interruptions: a training process killed with SIGKILL, once while it
writes a checkpoint and once inside an epoch, resumes with nothing lost; one
stopped by SIGINT or SIGTERM in the middle of an epoch, or killed after a
step checkpoint, resumes mid-epoch and ends with the weights of a run never
interrupted; a second writer of the run directory stops at once.

The processes pause at a named point injected by `tests/testlib/pausing_cli.py`
(the shipped code has no test hook): they print a line and wait there, and
the test kills them on reading that line, so the kill lands exactly there,
with no sleeps.
"""

import os
import signal
import subprocess
import threading

import numpy as np
import pytest

from tests.testlib import pausing_cli
from tests.testlib import runs
from tests.testlib import workers
from tests.testlib.runs import epoch_bits
from tests.testlib.runs import quiet
from tests.testlib.runs import read_json
from tfp_emerging import cli
from tfp_emerging import training

TINY = runs.TINY_LU_FLAGS
# The longest a process may take to reach its pause point.
TIMEOUT_S = 600


def _start(point, arguments):
  """`tfp-emerging train ...arguments` in a process that pauses at `point`."""
  return workers.start_python(
    ["-m", "tests.testlib.pausing_cli", point, "train", *arguments],
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
  )


def _stopped_at(point, arguments, number=signal.SIGKILL, while_paused=None):
  """Runs `tfp-emerging train ...arguments` until it pauses at `point`,
  calls `while_paused(pid)` if given, sends it the signal `number` there,
  and returns `(exit status, output)`."""
  process = _start(point, arguments)
  watchdog = threading.Timer(TIMEOUT_S, process.kill)
  watchdog.start()
  lines = []
  paused = False
  try:
    for line in process.stdout:
      lines.append(line)
      if line.strip() == f"{pausing_cli.PAUSED} {point}":
        paused = True
        if while_paused is not None:
          while_paused(process.pid)
        process.send_signal(number)
        if number == signal.SIGKILL:
          break
    lines.extend(process.stdout)
  finally:
    watchdog.cancel()
    process.stdout.close()
    process.wait()
  output = "".join(lines)
  assert paused, (
    f"the process ended ({process.returncode}) without pausing at "
    f"{point}:\n{output[-3000:]}"
  )
  return process.returncode, output


def _killed_at(point, arguments):
  """Runs `tfp-emerging train ...arguments` until it pauses at `point`,
  kills it with SIGKILL there, and returns its output."""
  status, output = _stopped_at(point, arguments)
  assert status == -9, output[-3000:]
  return output


def test_killed_training_resumes_as_if_never_interrupted(digits_npz, tmp_path):
  run = str(tmp_path / "run")
  folder = os.path.join(run, "checkpoints")
  arguments = ["--out", run, "--dataset", digits_npz, "--epochs", "3"] + TINY

  # 1. Killed while writing ckpt-2: its data files are in place, its index
  # not yet. The state file still names ckpt-1; epoch 1 is kept whole.
  _killed_at("checkpoint-write:2", arguments)
  files = sorted(os.listdir(folder))
  assert files == [
    ".ckpt-2.tmp.index",
    "checkpoint",
    "ckpt-1.data-00000-of-00001",
    "ckpt-1.index",
    "ckpt-2.data-00000-of-00001",
  ], files
  assert training.read_config(run).epochs == 3
  assert [r["epoch"] for r in read_json(run, "metrics.json")["epochs"]] == [1]

  # 2. Resumed, then killed at the start of epoch 3, inside `fit`. The
  # half-written ckpt-2 was no checkpoint (no warning about it); epoch 2 was
  # trained again and checkpointed, and the leftovers are gone.
  output = _killed_at("epoch-begin:3", ["--out", run, "--resume"])
  assert f"resumed from {folder}/ckpt-1 (epoch 1)" in output
  assert "corrupt" not in output and "Traceback" not in output
  assert sorted(os.listdir(folder)) == [
    "checkpoint",
    "ckpt-1.data-00000-of-00001",
    "ckpt-1.index",
    "ckpt-2.data-00000-of-00001",
    "ckpt-2.index",
  ]
  assert [r["epoch"] for r in read_json(run, "metrics.json")["epochs"]] == [
    1,
    2,
  ]

  # 3. Resumed to the end, here: the same numbers as a run that was never
  # interrupted (same batches, noise and optimizer state).
  warnings = []
  metrics = training.resume(run, log=quiet, verbose=0, warn=warnings.append)
  assert not any("corrupt" in w for w in warnings)
  config = training.read_config(run)
  assert config.changes == []
  reference = training.train(
    config, str(tmp_path / "reference"), log=quiet, verbose=0, warn=quiet
  )
  assert epoch_bits(metrics) == epoch_bits(reference)
  assert read_json(run, "metrics.json")["epochs"] == metrics
  _, resumed, epoch, _ = training.load_run(run)
  _, uninterrupted, _, _ = training.load_run(str(tmp_path / "reference"))
  assert epoch == 3
  for a, b in zip(resumed.trainable_weights, uninterrupted.trainable_weights):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert int(resumed.optimizer.iterations.numpy()) == 3 * 3


@pytest.fixture(scope="module")
def reference(digits_npz, tmp_path_factory):
  """A 2-epoch tiny run never interrupted (3 steps per epoch)."""
  run = str(tmp_path_factory.mktemp("reference") / "run")
  arguments = ["--out", run, "--dataset", digits_npz, "--epochs", "2"] + TINY
  assert cli.main(["train", *arguments]) == 0
  _, model, _, _ = training.load_run(run)
  return arguments, [np.asarray(v) for v in model.trainable_weights]


def _assert_resumes_to(run, reference_weights, expected_log):
  """Resumes `run` to its end in this process: it continues from the step
  checkpoint and ends with the reference weights, bit for bit."""
  logs = []
  metrics = training.resume(run, log=logs.append, verbose=0, warn=quiet)
  assert logs[0] == expected_log, logs
  assert [m["epoch"] for m in metrics] == [1, 2]
  _, model, epoch, path = training.load_run(run)
  assert epoch == 2 and path.endswith("ckpt-2")
  assert int(model.optimizer.iterations.numpy()) == 2 * 3
  for a, b in zip(model.trainable_weights, reference_weights):
    np.testing.assert_array_equal(np.asarray(a), b)
  return metrics


@pytest.mark.slow
@pytest.mark.parametrize(
  "number, status, word, epoch, step",
  [
    (signal.SIGINT, 130, "interrupted", 2, 1),
    (signal.SIGTERM, 143, "terminated", 1, 2),
  ],
)
def test_a_stop_mid_epoch_checkpoints_its_step_and_resumes_exactly(
  reference, tmp_path, number, status, word, epoch, step
):
  arguments, weights = reference
  run = str(tmp_path / "run")
  folder = os.path.join(run, "checkpoints")
  arguments = ["--out", run] + arguments[2:]
  code, output = _stopped_at(f"step-end:{epoch}:{step}", arguments, number)
  saved = os.path.join(folder, f"ckpt-{epoch - 1}-{step}")
  # The one-line message, the exit status of the signal, no traceback.
  assert code == status, output[-3000:]
  assert "Traceback" not in output
  assert (
    f"{word}; checkpointed at {saved}. Continue with: tfp-emerging train "
    f"--out {run} --resume"
  ) in output
  assert os.path.isfile(saved + ".index")
  assert not [f for f in os.listdir(folder) if f.startswith(".")]
  expected = (
    f"resumed from {saved} (epoch {epoch - 1}, step {step} of epoch {epoch})"
  )
  _assert_resumes_to(run, weights, expected)


@pytest.mark.slow
def test_killed_after_a_step_checkpoint_and_a_second_writer_is_refused(
  reference, tmp_path, capsys
):
  arguments, weights = reference
  run = str(tmp_path / "run")
  arguments = ["--out", run] + arguments[2:] + ["--checkpoint-every", "1"]
  refusals = []

  def second_writers(pid):
    # The paused process holds the run directory's lock: a second writer
    # (a scheduler's restart with --resume) stops at once, naming it, and
    # writes nothing.
    before = sorted(os.listdir(os.path.join(run, "checkpoints")))
    capsys.readouterr()
    refusals.append(cli.main(["train", "--out", run, "--resume"]))
    refusals.append(cli.main(["train", *arguments[:2], "--epochs", "1"]))
    refusals.append(capsys.readouterr().err)
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == before
    # A command that only reads the run does not need the lock.
    assert cli.main(["evaluate", "--run", run, "--json"]) == 0
    refusals.append(pid)

  code, _ = _stopped_at(
    "step-checkpoint:2:2", arguments, while_paused=second_writers
  )
  assert code == -9
  resume_status, new_status, message, pid = refusals
  # (A new run into a folder that already holds one is refused anyway.)
  assert resume_status == 4 and new_status == 2, message
  assert message.count(f"another process (pid {pid}:") == 1, message
  assert "already holds a run" in message
  assert "nothing was written" in message and "Traceback" not in message
  # SIGKILL released the lock: resuming works and continues mid-epoch.
  saved = os.path.join(run, "checkpoints", "ckpt-1-2")
  _assert_resumes_to(
    run, weights, f"resumed from {saved} (epoch 1, step 2 of epoch 2)"
  )


@pytest.fixture
def small_disk(tmp_path):
  """A 48 KiB tmpfs (room for two tiny checkpoints, not three); needs root
  (mount), else the test is skipped."""
  folder = tmp_path / "disk"
  folder.mkdir()
  mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(folder)],
    capture_output=True,
    check=False,
  )
  if mounted.returncode:
    pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr!r}")
  yield folder
  subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_resumes_once_freed(
  digits_npz, small_disk, capsys
):
  run = str(small_disk / "run")
  arguments = ["--out", run, "--dataset", digits_npz, "--epochs", "4"]
  arguments += TINY + ["--keep-checkpoints", "5"]
  assert cli.main(["train", *arguments]) == 5
  text = capsys.readouterr().err
  err = [line for line in text.splitlines() if "error" in line]
  assert len(err) == 1 and "Traceback" not in text, text
  assert err[0].startswith("tfp-emerging train: error: "), err
  assert "no space left on the device while writing" in err[0]
  assert f"{run}/" in err[0] and "--resume" in err[0]
  # No temporary file is left; the checkpoints on disk are complete and
  # metrics.json records exactly their epochs.
  folder = os.path.join(run, "checkpoints")
  leftovers = [
    name
    for where in (run, folder)
    for name in os.listdir(where)
    if name.startswith(".") and name != ".tfp-emerging-run"
  ]
  assert leftovers == []
  epochs = [r["epoch"] for r in read_json(run, "metrics.json")["epochs"]]
  _, _, epoch, _ = training.load_run(run)
  assert epochs and epochs == list(range(1, epoch + 1))
  # Space freed: --resume goes on to the end.
  subprocess.run(
    ["mount", "-o", "remount,size=4m", str(small_disk)], check=True
  )
  assert cli.main(["train", "--out", run, "--resume"]) == 0
  assert len(read_json(run, "metrics.json")["epochs"]) == 4


@pytest.mark.slow
def test_a_read_only_run_is_read_and_a_writer_says_so(
  reference, tmp_path, capsys
):
  arguments, _ = reference
  copy = tmp_path / "read-only"
  copy.mkdir()
  mounted = subprocess.run(
    ["mount", "--bind", "-o", "ro", arguments[1], str(copy)],
    capture_output=True,
    check=False,
  )
  if mounted.returncode:
    pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr!r}")
  try:
    capsys.readouterr()
    assert cli.main(["evaluate", "--run", str(copy)]) == 0
    out = tmp_path / "samples.png"
    assert cli.main(["sample", "--run", str(copy), "--out", str(out)]) == 0
    assert out.is_file()
    assert cli.main(["train", "--out", str(copy), "--resume"]) == 6
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0], err
    assert err[0].startswith("tfp-emerging train: error: "), err
  finally:
    subprocess.run(["umount", str(copy)], check=False)
