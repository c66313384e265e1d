"""Tiles of images: `tile` for any array of images, `image_grid` for integer
images. Numpy only: importing it imports neither TensorFlow nor Keras.

The run directory's `samples.png`, the command line's `sample`, TensorBoard's
sample images (`tfp_emerging.training.sample_grids`) and the notebooks all
tile images here.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["image_grid", "tile"]


def tile(
  images: npt.ArrayLike,
  columns: int | None = None,
  padding: int = 1,
  fill: float = 0,
) -> np.ndarray:
  """Tiles images into one array, row by row, `padding` pixels of `fill`
  between and around them.

  For integer pixels, floats (latents, kernels) alike; with `fill=np.nan`
  the gaps are drawn blank by matplotlib's `imshow`. Cost `O(N H W C)`.

  Args:
    images: array `[N, H, W, C]`.
    columns: images per row; default `ceil(sqrt(N))`.
    padding: pixels of `fill` between neighbouring images and at the border.
    fill: the value of those pixels.

  Returns:
    An array `[rows * (H + p) + p, columns * (W + p) + p, C]`,
    `rows = ceil(N / columns)`, `p = padding`, image `i` at row
    `i // columns`, column `i % columns`; of `images`' dtype, or float64
    when `fill` is NaN.

  Raises:
    ValueError: `images` is not 4-D, or `columns` or `padding` is negative.

  >>> tile(np.ones([3, 2, 2, 1]), columns=2)[..., 0]
  array([[0., 0., 0., 0., 0., 0., 0.],
         [0., 1., 1., 0., 1., 1., 0.],
         [0., 1., 1., 0., 1., 1., 0.],
         [0., 0., 0., 0., 0., 0., 0.],
         [0., 1., 1., 0., 0., 0., 0.],
         [0., 1., 1., 0., 0., 0., 0.],
         [0., 0., 0., 0., 0., 0., 0.]])
  """
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C]; got shape {images.shape}.")
  if columns is not None and columns < 1:
    raise ValueError(f"columns must be None or >= 1; got {columns}.")
  if padding < 0:
    raise ValueError(f"padding must be >= 0; got {padding}.")
  n, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  dtype = np.float64 if np.isnan(fill) else images.dtype
  grid = np.full(
    (
      rows * (height + padding) + padding,
      columns * (width + padding) + padding,
      channels,
    ),
    fill,
    dtype,
  )
  for i in range(n):
    top = padding + (i // columns) * (height + padding)
    left = padding + (i % columns) * (width + padding)
    grid[top : top + height, left : left + width] = images[i]
  return grid


def image_grid(
  images: npt.ArrayLike,
  num_bins: int,
  columns: int | None = None,
  scale: int | None = None,
  padding: int = 1,
) -> np.ndarray:
  """Tiles integer images into one uint8 grid image.

  Args:
    images: integer array `[N, H, W, C]` with values in `0 .. num_bins - 1`,
      `C` in {1, 3}.
    num_bins: grey levels; value `v` is shown as `round(255 v / (num_bins-1))`.
    columns: images per row; default `ceil(sqrt(N))`.
    scale: integer nearest-neighbour magnification; default
      `max(1, 32 // max(H, W))`, so that small images stay visible.
    padding: pixels of black border between tiles (before scaling).

  Returns:
    A uint8 array `[rows * (H + p) + p, columns * (W + p) + p, C] * scale`.
  """
  images = np.asarray(images)
  height, width = images.shape[1:3]
  scale = scale or max(1, 32 // max(height, width))
  pixels = (
    np.round(images.astype(np.float64) * 255.0 / (num_bins - 1))
    .clip(0, 255)
    .astype(np.uint8)
  )
  grid = tile(pixels, columns=columns, padding=padding)
  return grid.repeat(scale, axis=0).repeat(scale, axis=1)
