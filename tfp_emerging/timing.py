"""Wall-clock timing of a TensorFlow function, as the notebooks report it."""

from collections.abc import Callable
import time
from typing import Any

__all__ = ["best_seconds"]


def best_seconds(
  function: Callable[[Any], Any], argument: Any, repeats: int
) -> float:
  """The fastest of `repeats` timed calls `function(argument)`, in seconds.

  One untimed call first traces a `tf.function` (and warms up); each timed
  call ends with `.numpy()` on the result, so the time includes the device's
  work, not just its dispatch. The minimum is the run least disturbed by
  other work on the machine. Cost: `repeats + 1` calls.

  Raises:
    ValueError: `repeats` is not an int >= 1.
  """
  if not isinstance(repeats, int) or repeats < 1:
    raise ValueError(f"repeats must be an int >= 1; got {repeats!r}.")
  function(argument)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    function(argument).numpy()
    times.append(time.perf_counter() - start)
  return min(times)
