"""Real interruptions: a training process killed with SIGKILL, once while it
writes a checkpoint and once inside an epoch, resumes with nothing lost.

The processes pause at a named point injected by `tests/testlib/pausing_cli.py`
(the shipped code has no test hook): they print a line and wait there, and
the test kills them on reading that line, so the kill lands exactly there,
with no sleeps.
"""

import os
import subprocess
import sys
import threading

import numpy as np

from tests.testlib import pausing_cli
from tests.testlib import workers
from tests.testlib.runs import epoch_bits
from tests.testlib.runs import quiet
from tests.testlib.runs import read_json
from tfp_emerging import training

TINY = [
  "--num-levels",
  "1",
  "--num-steps",
  "1",
  "--hidden-channels",
  "8",
  "--batch-size",
  "32",
  "--warmup-steps",
  "4",
  "--mixing",
  "lu",
]
# The longest a process may take to reach its pause point.
TIMEOUT_S = 600


def _killed_at(point, arguments):
  """Runs `tfp-emerging train ...arguments` until it pauses at `point`,
  kills it with SIGKILL there, and returns its output."""
  env = dict(os.environ, PYTHONPATH=workers.ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.Popen(
    [sys.executable, "-m", "tests.testlib.pausing_cli", point, "train"]
    + arguments,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    env=env,
    cwd=workers.ROOT,
  )
  watchdog = threading.Timer(TIMEOUT_S, process.kill)
  watchdog.start()
  lines = []
  try:
    for line in process.stdout:
      lines.append(line)
      if line.strip() == f"{pausing_cli.PAUSED} {point}":
        process.kill()  # SIGKILL
        break
  finally:
    watchdog.cancel()
    process.stdout.close()
    process.wait()
  output = "".join(lines)
  assert process.returncode == -9 and lines[-1].strip().endswith(point), (
    f"the process ended ({process.returncode}) without pausing at "
    f"{point}:\n{output[-3000:]}"
  )
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
