"""`tfp_emerging.training.console`: how much Keras prints during a run."""

import sys

import pytest

from tfp_emerging.training import console


@pytest.mark.parametrize(("terminal", "expected"), [(True, 1), (False, 0)])
def test_auto_is_a_progress_bar_only_on_a_terminal(
  monkeypatch, terminal, expected
):
  monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
  assert console.keras_verbosity("auto") == expected
  assert console.keras_verbosity(2) == 2


def test_another_verbosity_names_the_argument():
  with pytest.raises(ValueError, match="verbose must be an int or 'auto'"):
    console.keras_verbosity("loud")
