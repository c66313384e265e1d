"""The lock of a run directory: one process at a time writes it.

Every command that writes a run directory holds its lock (`locked`, an
exclusive `fcntl.flock` on `LOCK_FILE`, released by the kernel when the
process ends, so a killed process never leaves a stale lock); a second
writer gets `RunLocked` at once, naming the holder's pid, and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import fcntl
import os
import sys

from tfp_emerging.training import config as config_lib
from tfp_emerging.training.atomic_writes import writing

__all__ = ["LOCK_FILE", "RunLocked", "locked"]

# The file a writer of the run directory locks (`locked`).
LOCK_FILE = ".tfp-emerging-lock"


class RunLocked(config_lib.RunError):
  """Another process holds the run directory's lock (it writes the run)."""


# The locks this process holds: `{real path: [file descriptor, depth]}`.
_held: dict[str, list[int]] = {}


@contextlib.contextmanager
def locked(run_dir: str | os.PathLike) -> Iterator[None]:
  """Holds the exclusive lock of the run directory `run_dir` (created if
  missing) while the block runs.

  An `fcntl.flock` on `run_dir/LOCK_FILE`, which then holds this process's
  pid and command line; the kernel releases it when the process ends
  (even by SIGKILL). Re-entrant in one process. When the block ends the lock
  file is deleted, and the folder too if this created it and it is empty (a
  command that failed before writing leaves nothing).

  Raises:
    RunLocked: another process holds the lock (the message names its pid).
    ReadOnlyRun, DiskFull: the lock file cannot be created.
  """
  path = os.path.realpath(run_dir)
  if path in _held:
    _held[path][1] += 1
    try:
      yield
    finally:
      _held[path][1] -= 1
    return
  lock_path = os.path.join(path, LOCK_FILE)
  created = not os.path.exists(path)
  fd = _lock(run_dir, lock_path)
  with contextlib.suppress(OSError):  # the pid is only for the message
    os.pwrite(fd, f"{os.getpid()} {' '.join(sys.argv)}\n".encode(), 0)
  _held[path] = [fd, 1]
  try:
    yield
  finally:
    del _held[path]
    with contextlib.suppress(OSError):
      os.remove(lock_path)  # while locked: see `_lock`
      if created and not os.listdir(path):
        os.rmdir(path)
    os.close(fd)  # releases the lock


def _lock(run_dir, lock_path):
  """A descriptor of `lock_path` (created if missing) holding its
  exclusive `flock`. The holder deletes the file before it lets go, so a
  lock won on a file that was deleted meanwhile is let go and taken again
  on the new one."""
  while True:
    try:
      with writing(lock_path, "the run directory's lock file"):
        os.makedirs(os.path.dirname(lock_path), exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    except (FileExistsError, NotADirectoryError) as e:
      raise config_lib.RunError(
        f"{run_dir}: not a folder ({e}); choose another --out."
      ) from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
      os.close(fd)
      pid, _, command = holder.partition(" ")
      raise RunLocked(
        f"{run_dir}: another process (pid {pid or 'unknown'}: {command}) "
        f"is writing this run directory; nothing was written. Wait for it "
        f"to end (or stop it: kill {pid or 'PID'}), then run this again."
      ) from None
    try:
      same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
    except FileNotFoundError:
      same = False
    if same:
      return fd
    os.close(fd)
