"""SIGINT and SIGTERM: a run stops at a step it has checkpointed.

Preemptible machines, Kubernetes and batch schedulers send SIGTERM (then,
after a grace period, SIGKILL); a user presses Ctrl-C (SIGINT). Both are
handled alike (`handled`): outside training, the signal raises `Interrupted`
at once (a `KeyboardInterrupt`); while training (`deferred`), it is only
recorded (`requested`), and the run's `callbacks.StepCheckpointer` stops at
the end of the current step, after checkpointing it, by raising
`Interrupted` itself. A second signal while one is pending raises at once.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import signal
import threading
from typing import Any

__all__ = ["Interrupted", "deferred", "handled", "requested", "take_request"]

# The signals handled: Ctrl-C and a scheduler's stop.
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
  """A run stopped by SIGINT or SIGTERM.

  Attributes:
    signal_number: the signal.
    saved: the path of the step checkpoint written on stopping, or `None`.
  """

  def __init__(self, signal_number: int, saved: str | None = None):
    super().__init__(signal.Signals(signal_number).name)
    self.signal_number = signal_number
    self.saved = saved


_state: dict[str, Any] = {"deferring": 0, "requested": None}


def _handle(signal_number, frame):
  del frame
  if _state["deferring"] and _state["requested"] is None:
    _state["requested"] = signal_number
    return
  raise Interrupted(signal_number)


@contextlib.contextmanager
def handled() -> Iterator[None]:
  """Handles SIGINT and SIGTERM as described above while the block runs
  (in the main thread; elsewhere Python's own handling stays)."""
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  previous = {number: signal.getsignal(number) for number in SIGNALS}
  for number in SIGNALS:
    signal.signal(number, _handle)
  try:
    yield
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
  """While the block runs, a first signal is recorded, not raised; one still
  pending when it ends is raised then."""
  _state["deferring"] += 1
  try:
    yield
  except BaseException:
    _state["deferring"] -= 1
    if not _state["deferring"]:
      _state["requested"] = None
    raise
  _state["deferring"] -= 1
  if not _state["deferring"]:
    number = take_request()
    if number is not None:
      raise Interrupted(number)  # it came after the last step


def requested() -> int | None:
  """The signal recorded while deferred, or `None`."""
  return _state["requested"]


def take_request() -> int | None:
  """`requested()`, cleared."""
  number, _state["requested"] = _state["requested"], None
  return number
