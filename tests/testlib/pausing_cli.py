"""`python -m tfp_emerging`, pausing at a named point, for interruption tests.

    python -m tests.testlib.pausing_cli POINT train --out RUN ...

runs the CLI with `argv[2:]` and, on reaching `POINT`, prints
`PAUSED_AT POINT` and waits forever, so that a test can kill the process
exactly there (tests/integration/test_interruption.py). Points:

* `checkpoint-write:E`: while checkpoint `ckpt-E` is written, after its data
  files are in place and before its index is (the rename that makes it
  count);
* `epoch-begin:E`: at the start of epoch `E` (from 1), inside Keras' `fit`.

The shipped code has no hook: the pause is injected here, into the
`os.replace` that `tfp_emerging.training.checkpoints` sees and into its
`Checkpointer` callback.
"""

import os
import sys
import threading
import types

from tfp_emerging import cli
from tfp_emerging.training import callbacks
from tfp_emerging.training import checkpoints

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
  else:
    raise ValueError(f"unknown pause point {point!r}")


if __name__ == "__main__":
  pause_at(sys.argv[1])
  sys.exit(cli.main(sys.argv[2:]))
