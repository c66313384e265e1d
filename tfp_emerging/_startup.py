"""Signals while the command line starts, before `cli.main` handles them.

`tfp-emerging` (and `python -m tfp_emerging`) spends its first seconds
importing TensorFlow, before `cli.main` installs the handlers of
`tfp_emerging.training.stopping`. A Ctrl-C then would print the import's
traceback, a SIGTERM end the process without a word. Importing this module
(the package imports it before anything else) calls `install`, which, only
when the process is the command line (`is_command_line`), makes either
signal print the
command's one-line message and exit at once with its status (130 for
SIGINT, 143 for SIGTERM): nothing has been written yet. This module imports
only the standard library, so that it is in place within milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["install", "is_command_line"]

# The module `python -m` runs for the command line.
_PACKAGE = "tfp_emerging"


def is_command_line() -> bool:
  """Whether this process is `tfp-emerging` or `python -m tfp_emerging`."""
  argv = getattr(sys, "orig_argv", [])
  if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == _PACKAGE:
    return True
  return bool(sys.argv) and os.path.basename(sys.argv[0]) == "tfp-emerging"


def _stop(signal_number, frame):
  del frame
  name = "terminated" if signal_number == signal.SIGTERM else "interrupted"
  command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
  print(
    f"\ntfp-emerging{' ' + command if command else ''}: {name} while "
    f"starting; nothing was written.",
    file=sys.stderr,
    flush=True,
  )
  os._exit(128 + signal_number)  # no traceback, no clean-up to do


def install() -> None:
  """Handles SIGINT and SIGTERM as described above, if this process is the
  command line (in its main thread); else does nothing."""
  if (
    is_command_line() and threading.current_thread() is threading.main_thread()
  ):
    for number in (signal.SIGINT, signal.SIGTERM):
      signal.signal(number, _stop)


install()
