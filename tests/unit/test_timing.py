"""`timing.best_seconds`: the minimum over timed calls, after one untimed."""

import time

import pytest

from tfp_emerging import timing


class _Recorder:
  """Sleeps `delays[k]` on call k and returns something with `.numpy()`."""

  def __init__(self, delays):
    self.delays = list(delays)
    self.arguments = []

  def __call__(self, argument):
    self.arguments.append(argument)
    time.sleep(self.delays[len(self.arguments) - 1])
    return _Result()


class _Result:
  def numpy(self):
    return 0.0


def test_best_seconds_is_the_fastest_timed_call():
  # The first (tracing) call is slow and not counted; then 0.2, 0.05, 0.2 s.
  function = _Recorder([0.5, 0.2, 0.05, 0.2])
  seconds = timing.best_seconds(function, "x", repeats=3)
  assert function.arguments == ["x"] * 4
  assert 0.05 <= seconds < 0.15


@pytest.mark.parametrize("repeats", [0, 1.5, None])
def test_best_seconds_refuses_bad_repeats(repeats):
  with pytest.raises(ValueError, match="repeats must be"):
    timing.best_seconds(_Recorder([0.0]), "x", repeats)
