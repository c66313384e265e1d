"""`tfp_emerging.image_grid`: the layout, grey levels and zoom of a grid."""

import numpy as np

from tfp_emerging import image_grid


def test_image_grid_layout_levels_and_zoom():
  images = np.zeros((3, 2, 2, 1), np.uint8)
  images[0] = 16
  images[2, 0, 1] = 8
  grid = image_grid.image_grid(images, num_bins=17, columns=2, scale=1)
  expected = np.zeros((7, 7, 1), np.uint8)
  expected[1:3, 1:3] = 255
  expected[4, 2] = 128  # round(8 * 255 / 16) = 127.5 -> 128
  np.testing.assert_array_equal(grid, expected)
  zoomed = image_grid.image_grid(images, num_bins=17)  # 2x2 tiles: 16x zoom
  assert zoomed.shape == (7 * 16, 7 * 16, 1)
  np.testing.assert_array_equal(zoomed[::16, ::16], grid)
