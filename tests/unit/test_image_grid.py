"""`image_grid.tile`, and `image_grid.image_grid` on top of it; numpy only."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfp_emerging import image_grid


def test_tile_places_image_i_at_row_i_div_columns():
  images = np.arange(5 * 2 * 3 * 1).reshape(5, 2, 3, 1)
  grid = image_grid.tile(images, columns=2, padding=1, fill=-1)
  # 3 rows of 2: height 3 * (2 + 1) + 1, width 2 * (3 + 1) + 1.
  assert grid.shape == (10, 9, 1) and grid.dtype == images.dtype
  for i in range(5):
    top, left = 1 + (i // 2) * 3, 1 + (i % 2) * 4
    np.testing.assert_array_equal(
      grid[top : top + 2, left : left + 3], images[i]
    )
  # Everything else is fill: the gaps, the border and the empty sixth tile.
  mask = np.ones(grid.shape, bool)
  for i in range(5):
    top, left = 1 + (i // 2) * 3, 1 + (i % 2) * 4
    mask[top : top + 2, left : left + 3] = False
  assert (grid[mask] == -1).all()


def test_tile_with_nan_fill_is_float_and_keeps_the_values():
  kernel = np.random.default_rng(0).normal(size=[3, 3, 2, 2])
  grid = image_grid.tile(kernel.reshape(9, 2, 2, 1), columns=3, fill=np.nan)
  assert grid.shape == (10, 10, 1) and grid.dtype == np.float64
  # Block (a, b) holds tap kernel[a, b].
  np.testing.assert_array_equal(grid[4:6, 7:9, 0], kernel[1, 2])
  assert np.isnan(grid).sum() == 100 - 9 * 4


def test_tile_default_columns_and_no_padding():
  grid = image_grid.tile(np.ones([5, 1, 1, 3], np.uint8), padding=0)
  assert grid.shape == (2, 3, 3)  # ceil(sqrt(5)) = 3 columns, 2 rows
  assert grid.sum() == 5 * 3


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(images=np.ones([2, 2, 2])), "images must be"),
    (dict(images=np.ones([2, 2, 2, 1]), columns=0), "columns must be"),
    (dict(images=np.ones([2, 2, 2, 1]), padding=-1), "padding must be"),
  ],
)
def test_tile_refuses_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    image_grid.tile(**kwargs)


def test_image_grid_scales_levels_to_uint8_and_magnifies():
  images = np.array([0, 16]).reshape(2, 1, 1, 1)
  grid = image_grid.image_grid(images, num_bins=17, columns=2, scale=2)
  assert grid.dtype == np.uint8 and grid.shape == (6, 10, 1)
  np.testing.assert_array_equal(
    grid[:, :, 0],
    np.array([[0, 0, 0, 0, 0], [0, 0, 0, 255, 0], [0, 0, 0, 0, 0]])
    .repeat(2, 0)
    .repeat(2, 1),
  )


def test_importing_image_grid_imports_neither_tensorflow_nor_keras():
  # The package's `__init__` imports every subpackage (it registers the
  # Keras classes); a stand-in package object runs `image_grid`'s own
  # imports alone.
  script = textwrap.dedent(
    """
    import importlib.util, sys, types
    spec = importlib.util.find_spec("tfp_emerging")
    package = types.ModuleType("tfp_emerging")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["tfp_emerging"] = package
    import tfp_emerging.image_grid
    heavy = ("tensorflow", "keras", "tensorflow_probability")
    print(sorted({m.split(".")[0] for m in sys.modules} & set(heavy)))
    """
  )
  result = subprocess.run(
    [sys.executable, "-c", script],
    capture_output=True,
    text=True,
    check=True,
  )
  assert result.stdout.strip() == "[]", result.stdout + result.stderr
