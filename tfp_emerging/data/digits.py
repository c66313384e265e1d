"""scikit-learn's bundled 8x8 handwritten digits: `load(bit_depth)`.

1797 images with their 10 classes, no download. Each pixel counts the "on"
pixels of a 4x4 block of the original 32x32 binary bitmap (UCI
"optdigits"), so its value is an integer 0..16: 17 grey levels, `num_bins =
17`, images `[8, 8, 1]`, used as they are (bits/dim are those of a 17-level
image). Fixed split: a permutation with seed 0, the first `TRAIN_SIZE`
(1500) images for training and the remaining 297 for testing.
"""

from __future__ import annotations

import numpy as np

from tfp_emerging.data import dataset

__all__ = ["NAME", "TRAIN_SIZE", "load"]

NAME = "digits"
# Number of digits images used for training; the rest (297) are the test set.
TRAIN_SIZE = 1500


def load(bit_depth: int | None = None) -> dataset.ImageDataset:
  """The digits as an in-memory `ImageDataset` (`bit_depth` is ignored:
  17 levels need no reduction)."""
  from sklearn import datasets

  bunch = datasets.load_digits()  # images float64 [1797, 8, 8] in 0..16
  pixels = dataset.as_pixels(bunch.images, "scikit-learn digits", num_bins=17)
  labels = bunch.target.astype(np.int32)
  order = np.random.default_rng(dataset.SPLIT_SEED).permutation(pixels.shape[0])
  train, test = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
  return dataset.in_memory(
    NAME,
    "scikit-learn digits (sklearn.datasets.load_digits)",
    {
      "train": (pixels[train], labels[train]),
      "test": (pixels[test], labels[test]),
    },
    num_bins=17,
    num_classes=10,
    bit_depth=bit_depth,
  )
