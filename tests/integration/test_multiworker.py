"""`train --strategy multiworker`: two worker processes on loopback ports.

The documented command (docs/scaling.md), with a tiny digits model on CPU:
every worker gets its own `TF_CONFIG` (ports picked free at run time) and
the same `--out`, which only the chief (worker 0) writes. Five processes run
at once, then two more:

* run A, two workers through `tests/testlib/multiworker_worker.py` (the
  command line, recording Keras' per-step logs; under tf_keras, as the
  command line would restart itself in);
* run S, one process (the default strategy, Keras 3), the same options;
* run B, two workers of the plain command line (each starts itself again
  under tf_keras), worker 1 killed (SIGKILL) once epoch 1 is checkpointed;
  then both workers again with `--resume` (already under tf_keras).

About 96 s of CPU time in all (on 2 idle cores about a minute), most of
it the nine imports of TensorFlow (6.5 s each).
"""

import json
import os
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import runs
from tests.testlib import workers
from tfp_emerging import distribute

pytestmark = [pytest.mark.slow, pytest.mark.integration]

EPOCHS = 3
OPTIONS = runs.flags(
  **runs.DIGITS_1X1, learning_rate=0.01, seed=0, epochs=EPOCHS
)
# Seconds any one process may take before the test gives up on it.
PROCESS_TIMEOUT = 400


def free_ports(n):
  """`n` TCP ports free on the loopback interface now."""
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def start(command, log, **environment):
  """`command` (arguments after `python`) from the repository root, its
  output in `log.out` and `log.err`."""
  return workers.start_python(
    command,
    # TF_USE_LEGACY_KERAS only where `environment` sets it, never inherited.
    env=workers.child_environment(
      **{"TF_USE_LEGACY_KERAS": None, **environment}
    ),
    stdout=open(f"{log}.out", "w", encoding="utf-8"),
    stderr=open(f"{log}.err", "w", encoding="utf-8"),
  )


def cluster(n):
  """The `TF_CONFIG` of each of `n` workers on free loopback ports."""
  hosts = [f"127.0.0.1:{port}" for port in free_ports(n)]
  return [
    json.dumps(
      {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
    )
    for i in range(n)
  ]


def cli(*arguments):
  return ["-m", "tfp_emerging", "train", *arguments]


def recorded(record, *arguments):
  """`cli(*arguments)` through `multiworker_worker`, recording to `record`."""
  return [
    "-m",
    "tests.testlib.multiworker_worker",
    str(record),
    "train",
    *arguments,
  ]


def wait(process):
  try:
    return process.wait(timeout=PROCESS_TIMEOUT)
  except subprocess.TimeoutExpired:
    process.kill()
    raise


def read(path):
  with open(path, encoding="utf-8") as f:
    return f.read()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("multiworker")
  private = folder / "tmp"  # the workers' temporary folders
  private.mkdir()
  a_run, s_run, b_run = folder / "A", folder / "S", folder / "B"
  multi = ["--strategy", "multiworker", "--out"]
  started = time.monotonic()
  a = [
    start(
      recorded(folder / f"a{i}.json", *multi, str(a_run), *OPTIONS),
      folder / f"a{i}",
      TF_CONFIG=config,
      TF_USE_LEGACY_KERAS="1",
      TMPDIR=str(private),
    )
    for i, config in enumerate(cluster(2))
  ]
  b_configs = cluster(2)
  b = [
    start(
      cli(*multi, str(b_run), *OPTIONS),
      folder / f"b{i}",
      TF_CONFIG=config,
      TMPDIR=str(private),
    )
    for i, config in enumerate(b_configs)
  ]
  s = start(
    recorded(folder / "s.json", "--out", str(s_run), *OPTIONS), folder / "s"
  )
  first = b_run / "checkpoints" / "ckpt-1.index"
  while not first.exists() and b[0].poll() is None:
    time.sleep(0.02)
  b[1].send_signal(signal.SIGKILL)
  killed = time.monotonic()
  lost_status = wait(b[0])
  lost_seconds = time.monotonic() - killed
  wait(b[1])
  checkpoints_after_loss = sorted(os.listdir(b_run / "checkpoints"))
  statuses = {"a": [wait(p) for p in a], "s": wait(s)}
  resumed = [
    start(
      cli(*multi, str(b_run), "--resume"),
      folder / f"r{i}",
      TF_CONFIG=config,
      TF_USE_LEGACY_KERAS="1",  # spares the restart: 2 of 11 TF imports
      TMPDIR=str(private),
    )
    for i, config in enumerate(b_configs)
  ]
  statuses["resumed"] = [wait(p) for p in resumed]
  return {
    "folder": folder,
    "private": private,
    "A": a_run,
    "S": s_run,
    "B": b_run,
    "statuses": statuses,
    "lost_status": lost_status,
    "lost_seconds": lost_seconds,
    "lost_stderr": read(folder / "b0.err"),
    "checkpoints_after_loss": checkpoints_after_loss,
    "seconds": time.monotonic() - started,
  }


def checkpoint(run, prefix=""):
  """`{name: array}` of the last checkpoint of `run`, the tensors whose
  names start with `prefix`, less the metrics (they hold timings)."""
  reader = tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{EPOCHS}"))
  return {
    name: reader.get_tensor(name)
    for name in reader.get_variable_to_shape_map()
    if name.startswith(prefix) and not name.startswith("metrics/")
  }


def metrics(run):
  with open(run / "metrics.json", encoding="utf-8") as f:
    epochs = json.load(f)["epochs"]
  return [[e["train_bits_per_dim"], e["test_bits_per_dim"]] for e in epochs]


def test_two_workers_equal_one_process(runs):
  folder = runs["folder"]
  assert runs["statuses"]["a"] == [0, 0], read(folder / "a1.err")[-3000:]
  assert runs["statuses"]["s"] == 0, read(folder / "s.err")[-3000:]
  a0, a1, single = (
    json.loads(read(folder / f"{name}.json")) for name in ("a0", "a1", "s")
  )
  assert not a0["keras_3"] and single["keras_3"]
  # The true loss: each step's running mean equals the one process's (the
  # same number Keras 3 logs for one process), not twice it.
  steps = [[s["loss"], s["bits_per_dim"]] for s in a0["steps"]]
  assert len(steps) == EPOCHS * 5  # 1500 images, batches of 256
  np.testing.assert_allclose(
    steps, [[s["loss"], s["bits_per_dim"]] for s in single["steps"]], rtol=1e-5
  )
  assert a1["steps"] == a0["steps"]
  # Two workers all-reduce the sums of two half batches where one process
  # sums the whole batch: float32 rounding in another order (about 1e-7
  # relative per step), which Adam's normalised steps carry along.
  np.testing.assert_allclose(metrics(runs["A"]), metrics(runs["S"]), rtol=1e-5)
  # The flow's weights (tf_keras also checkpoints the metrics' state).
  two, one = (checkpoint(runs[r], "model/_given_flow/") for r in "AS")
  assert two.keys() == one.keys() and len(two) > 5
  difference = max(
    float(np.max(np.abs(two[k].astype(np.float64) - one[k]))) for k in two
  )
  assert difference < 1e-4  # 2.3e-5 measured
  # Training moved the weights far more than that.
  assert metrics(runs["S"])[-1][0] < metrics(runs["S"])[0][0] - 0.1
  # Only the chief wrote the run; the other worker's folder is gone.
  assert sorted(os.listdir(runs["A"])) == [
    ".tfp-emerging-run",
    "checkpoints",
    "config.json",
    "metrics.json",
    "samples.png",
  ]
  # Only the SIGKILLed worker's folder is left (nothing ran its cleanup).
  left = [n for n in os.listdir(runs["private"]) if n.startswith("tfp-")]
  assert len(left) == 1 and left[0].startswith("tfp-emerging-worker1-"), left
  assert "writes the run to" in read(folder / "a1.out")
  # Every per-worker draw is seeded: an unseeded initialisation is refused,
  # and fit's own initialisation gives every worker the same ActNorm.
  assert "`seed` must be given on several workers" in a0["initialize_unseeded"]
  assert a0["implicit_actnorm_bias"] == a1["implicit_actnorm_bias"]


def test_a_lost_worker_stops_the_other_with_one_line(runs):
  assert runs["lost_status"] == 7, runs["lost_stderr"][-3000:]
  last = runs["lost_stderr"].strip().splitlines()[-1]
  assert last.startswith(
    "tfp-emerging train: error: a worker of the multi-worker run was lost"
  ), last
  assert "--resume" in last
  assert runs["lost_seconds"] < distribute.COLLECTIVE_TIMEOUT_SECONDS
  # The kill came after the first checkpoint and before the last.
  assert "ckpt-1.index" in runs["checkpoints_after_loss"]
  assert f"ckpt-{EPOCHS}.index" not in runs["checkpoints_after_loss"]


def test_both_workers_resume_to_the_uninterrupted_run_bitwise(runs):
  folder = runs["folder"]
  assert runs["statuses"]["resumed"] == [0, 0], read(folder / "r1.err")[-3000:]
  assert "resumed from" in read(folder / "r0.out")
  assert metrics(runs["B"]) == metrics(runs["A"])
  # Every tensor: the weights, Adam's moments and step counter, the epoch.
  resumed, uninterrupted = checkpoint(runs["B"]), checkpoint(runs["A"])
  assert resumed.keys() == uninterrupted.keys()
  assert any("optimizer" in name for name in resumed)
  for name, value in uninterrupted.items():
    np.testing.assert_array_equal(resumed[name], value, err_msg=name)
