"""`python -m tfp_emerging`, pausing at a named point, for interruption tests.

    python -m tests.testlib.pausing_cli POINT train --out RUN ...

runs the CLI with `argv[2:]` and, on reaching `POINT`, prints
`PAUSED_AT POINT` and waits forever, so that a test can kill the process
exactly there (tests/integration/test_interruption.py). Points:

* `checkpoint-write:E`: while checkpoint `ckpt-E` is written, after its data
  files are in place and before its index is (the rename that makes it
  count);
* `epoch-begin:E`: at the start of epoch `E` (from 1), inside Keras' `fit`.
* `step-end:E:S`: at the end of step `S` of epoch `E`, before the
  `StepCheckpointer` looks for a stop; it waits for a SIGINT or SIGTERM
  (recorded by `tfp_emerging.training.stopping`) and then goes on, so that
  the stop lands exactly at that step;
* `step-checkpoint:E:S`: after the `StepCheckpointer` has handled step `S`
  of epoch `E` (with `--checkpoint-every` dividing `S`: written its step
  checkpoint).

The shipped code has no hook: the pause is injected here, into the
`os.replace` that `tfp_emerging.training.checkpoints` sees and into its
`Checkpointer` callback.
"""

import os
import sys
import threading
import time
import types

from tfp_emerging import cli
from tfp_emerging.training import callbacks
from tfp_emerging.training import checkpoints
from tfp_emerging.training import stopping

PAUSED = "PAUSED_AT"


def pause(point):
  print(f"{PAUSED} {point}", flush=True)
  threading.Event().wait()


def pause_at(point):
  """Installs the pause at `point` in this process."""
  kind, _, epoch = point.partition(":")
  if kind == "checkpoint-write":
    index = f".ckpt-{int(epoch)}.tmp.index"

    def replace(source, destination):
      if source.endswith(index):
        pause(point)
      os.replace(source, destination)

    checkpoints.os = types.SimpleNamespace(
      **{
        name: getattr(os, name)
        for name in dir(os)
        if not name.startswith("__") and name != "replace"
      },
      replace=replace,
    )
  elif kind == "epoch-begin":
    base = callbacks.Checkpointer.on_epoch_begin

    def on_epoch_begin(self, epoch_index, logs=None):
      if epoch_index + 1 == int(epoch):
        pause(point)
      base(self, epoch_index, logs)

    callbacks.Checkpointer.on_epoch_begin = on_epoch_begin
  elif kind in ("step-end", "step-checkpoint"):
    at = tuple(int(part) for part in epoch.split(":"))
    base = callbacks.StepCheckpointer.on_train_batch_end

    def on_train_batch_end(self, batch, logs=None):
      here = (self._epoch + 1, self._offset + batch + 1) == at
      if here and kind == "step-end":
        print(f"{PAUSED} {point}", flush=True)
        while stopping.requested() is None:
          time.sleep(0.01)
      base(self, batch, logs)
      if here:
        pause(point)

    callbacks.StepCheckpointer.on_train_batch_end = on_train_batch_end
  else:
    raise ValueError(f"unknown pause point {point!r}")


if __name__ == "__main__":
  pause_at(sys.argv[1])
  sys.exit(cli.main(sys.argv[2:]))
