"""`sample_grids`: how many samples a grid draws, of which classes, in which
rows; a stand-in model records what it was asked for (the real model's
class-conditional grids: tests/unit/training/test_conditional.py)."""

import numpy as np
import pytest

from tfp_emerging import training
from tfp_emerging.image_grid import image_grid
from tfp_emerging.training import sample_grids


class _Model:
  """What `sample_grid` reads of a `FlowModel`: `num_classes`, `num_bins`
  and `sample`, whose sample `i` is the image of the value `labels[i]`
  (`i` without labels), so that a grid shows what was drawn where."""

  def __init__(self, num_classes=None, num_bins=17):
    self.num_classes = num_classes
    self.num_bins = num_bins
    self.calls = []

  def sample(self, n, temperature, seed, labels=None):
    self.calls.append(dict(n=n, temperature=temperature, seed=seed))
    values = np.arange(n) if labels is None else np.asarray(labels)
    return np.broadcast_to(values[:, None, None, None], (n, 2, 2, 1))


def test_an_unconditional_grid_tiles_n_samples_columns_per_row():
  model = _Model()
  grid = sample_grids.sample_grid(model, 5, 0.7, seed=3, columns=2)
  assert model.calls == [dict(n=5, temperature=0.7, seed=3)]
  expected = image_grid(
    np.broadcast_to(np.arange(5)[:, None, None, None], (5, 2, 2, 1)),
    17,
    columns=2,
  )
  np.testing.assert_array_equal(grid, expected)


def test_a_conditional_grid_has_one_row_of_n_per_class_asked_for():
  model = _Model(num_classes=10)
  grid = sample_grids.sample_grid(model, 3, 1.0, seed=1, classes=[2, 5])
  rows = np.repeat([2, 5], 3)[:, None, None, None]
  expected = image_grid(np.broadcast_to(rows, (6, 2, 2, 1)), 17, columns=3)
  np.testing.assert_array_equal(grid, expected)
  every = sample_grids.sample_grid(model, 2, 1.0, seed=1)
  assert model.calls[-1]["n"] == 2 * 10 and every.shape == (
    image_grid(np.zeros([20, 2, 2, 1], int), 17, columns=2).shape
  )


@pytest.mark.parametrize(
  "num_classes, kwargs, message",
  [
    (None, dict(classes=[0]), "^classes: the model is not class-"),
    (10, dict(classes=[10]), r"^classes must lie in 0\.\.9; got 10"),
    (10, dict(classes=[]), r"^classes must lie in 0\.\.9"),
    (10, dict(columns=4), "^columns: .* columns must be 3, got 4"),
  ],
)
def test_sample_grid_names_the_argument_it_refuses(
  num_classes, kwargs, message
):
  model = _Model(num_classes)
  with pytest.raises(training.ArgumentError, match=message) as info:
    sample_grids.sample_grid(model, 3, 1.0, seed=1, **kwargs)
  # The command line spells the parameter as its flag (`--classes`).
  assert info.value.parameters == tuple(kwargs)
  assert info.value.spelled(lambda name: "--" + name).startswith(
    "--" + next(iter(kwargs))
  )
  assert model.calls == []  # refused before drawing anything


def test_sample_counts_of_unconditional_and_conditional_models():
  plain, conditional = _Model(), _Model(num_classes=10)
  assert sample_grids.default_sample_count(plain) == sample_grids.NUM_SAMPLES
  assert (
    sample_grids.default_sample_count(conditional)
    == sample_grids.SAMPLES_PER_CLASS
  )
  assert sample_grids.samples_per_grid(plain, 16) == 16
  assert sample_grids.samples_per_grid(conditional, 25) == 2
  assert sample_grids.samples_per_grid(conditional, 4) == 1
