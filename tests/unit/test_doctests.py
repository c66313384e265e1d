"""The `>>>` examples of every docstring of the package run and print what
they show.

One test per module of `tfp_emerging` (found with `pkgutil.walk_packages`),
each running `doctest` over the objects defined in that module.
"""

import doctest
import importlib
import pkgutil

import pytest

import tfp_emerging
from tfp_emerging import bijectors

# `__main__` runs the command line when imported.
MODULES = sorted(
  name
  for _, name, _ in pkgutil.walk_packages(
    tfp_emerging.__path__, "tfp_emerging."
  )
  if not name.endswith(".__main__")
)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
  module = importlib.import_module(name)
  failed, _ = doctest.testmod(module, optionflags=FLAGS, report=False)
  assert failed == 0, f"{failed} docstring example(s) of {name} failed (above)"


@pytest.mark.parametrize(
  "layer",
  [
    bijectors.EmergingConv2D,
    bijectors.PeriodicConv2D,
    bijectors.AutoregressiveConv2D,
    bijectors.Conv1x1,
  ],
)
def test_the_main_bijectors_have_examples(layer):
  tests = doctest.DocTestFinder(recurse=False).find(layer)
  assert sum(len(test.examples) for test in tests) >= 3, layer.__name__


def test_a_wrong_example_fails():
  """The runner is not vacuous: a docstring whose output differs fails."""

  def wrong():
    """>>> 1 + 1
    3
    """

  runner = doctest.DocTestRunner(optionflags=FLAGS)
  for test in doctest.DocTestFinder().find(wrong, "wrong", globs={}):
    runner.run(test, out=lambda _: None)
  assert runner.summarize(verbose=False).failed == 1
