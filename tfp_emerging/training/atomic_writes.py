"""Atomic writes of files, and what a failed write means.

Atomicity: `write_atomic` (and `write_json`, `write_png` on top of it)
writes to a temporary file `.NAME*.tmp` in the same folder, synced and
renamed over the old file (`os.replace`), so that a file is never seen half
written; a write that fails removes its temporary file, and one killed
half-way leaves it for `tfp_emerging.training.run_dir.remove_debris`.

Faults: a write that fails for want of space raises `DiskFull`, one on a
read-only folder `ReadOnlyRun` (`fault`, `writing`), each naming the path
and what was written: what was complete before stays complete. Both are
`RunError`s, which the command line reports with an exit status of their
own.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import errno
import json
import os
import tempfile
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging.training import config as config_lib

__all__ = [
  "DiskFull",
  "ReadOnlyRun",
  "fault",
  "write_atomic",
  "write_json",
  "write_png",
  "writing",
]


class DiskFull(config_lib.RunError):
  """A write into the run directory failed: no space left on the device."""


class ReadOnlyRun(config_lib.RunError):
  """A command that must write the run directory found it read-only."""


# `errno`s of a folder that cannot be written.
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def fault(
  error: BaseException,
  path: str | os.PathLike,
  what: str,
  output: bool = False,
) -> config_lib.RunError | None:
  """The `DiskFull` or `ReadOnlyRun` that a failed write of `what` to `path`
  means (an `OSError` with `ENOSPC`/`EDQUOT`, `EROFS`, `EACCES`, `EPERM`, or
  TensorFlow's `ResourceExhaustedError`/`PermissionDeniedError` of a
  checkpoint write), or `None` for any other error. `output`: `path` is a
  command's own output (`sample --out`, `export --out`), not a file of the
  run directory, and the advice says so."""
  if isinstance(error, OSError):
    code = error.errno
  elif isinstance(error, tf.errors.ResourceExhaustedError):
    code = errno.ENOSPC if "No space left" in str(error) else None
  elif isinstance(error, tf.errors.PermissionDeniedError):
    code = errno.EACCES
  else:
    code = None
  if code in (errno.ENOSPC, errno.EDQUOT):
    kept = (
      "nothing was replaced and no partial output is left. Free some "
      "space, then run this again."
      if output
      else "the last complete checkpoint and metrics.json are kept. Free "
      "some space, then continue with --resume."
    )
    return DiskFull(
      f"{path}: no space left on the device while writing {what}; {kept}"
    )
  if code in _READ_ONLY:
    advice = (
      "choose a writable --out."
      if output
      else "this command writes the run directory: copy the run to a "
      "writable folder, or run a command that only reads it (evaluate, "
      "sample or export with --out elsewhere)."
    )
    return ReadOnlyRun(f"{path}: read-only (cannot write {what}); {advice}")
  return None


@contextlib.contextmanager
def writing(
  path: str | os.PathLike, what: str, output: bool = False
) -> Iterator[None]:
  """Turns a failed write of `what` to `path` into `DiskFull` or
  `ReadOnlyRun` (see `fault`, also for `output`); other errors pass
  unchanged."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    error = fault(e, path, what, output)
    if error is None:
      raise
    raise error from e


def write_json(path: str | os.PathLike, value: Any) -> None:
  """Writes `value` as JSON to `path` atomically (temporary file, rename)."""
  write_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def write_png(
  path: str | os.PathLike,
  image: tf.Tensor | np.ndarray,
  what: str | None = None,
  output: bool = False,
) -> None:
  """Writes a uint8 `[H, W, C]` image as a PNG, atomically (`write_atomic`)."""
  write_atomic(path, tf.io.encode_png(image).numpy(), what, output)


def write_atomic(
  path: str | os.PathLike,
  payload: bytes,
  what: str | None = None,
  output: bool = False,
) -> None:
  """Writes bytes to a temporary file next to `path`, then renames it.

  `DiskFull` or `ReadOnlyRun` (naming `path` and `what`, default its file
  name; `output` as in `fault`) if the device is full or read-only; the
  temporary file is removed and `path` keeps its old contents."""
  with writing(path, what or os.path.basename(path), output):
    _write_atomic(path, payload)


def _write_atomic(path, payload):
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(
    dir=folder, prefix="." + os.path.basename(path), suffix=".tmp"
  )
  umask = os.umask(0)
  os.umask(umask)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's files are private (0600)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
