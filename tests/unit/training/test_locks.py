"""`tfp_emerging.training.locks`: one writer of a run directory at a time."""

import os
import subprocess
import sys

import pytest

from tests.testlib import workers
from tfp_emerging.training import locks

# Starts a Python that imports TensorFlow: left out of `make test-unit`.
pytestmark = pytest.mark.slow


def test_two_writers_into_one_empty_folder(tmp_path):
  run = tmp_path / "run"
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time; from tfp_emerging.training import locks; "
      f"cm = locks.locked({str(run)!r}); cm.__enter__(); print('held', "
      "flush=True); time.sleep(600)",
    ],
    stdout=subprocess.PIPE,
    text=True,
    cwd=workers.ROOT,
    env=dict(os.environ, PYTHONPATH=workers.ROOT, TF_CPP_MIN_LOG_LEVEL="2"),
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    with (
      pytest.raises(locks.RunLocked, match=f"pid {holder.pid}"),
      locks.locked(run),
    ):
      pass
    assert os.listdir(run) == [locks.LOCK_FILE]
  finally:
    holder.kill()
    holder.wait()
  # SIGKILL released it: the lock is free, and removed with the empty folder.
  with locks.locked(run):
    assert os.listdir(run) == [locks.LOCK_FILE]
  assert os.path.isdir(run) and os.listdir(run) == []
