"""Small natural colour images that ship with scikit-image: random crops.

`load_crops()` cuts deterministic random `size x size` RGB crops (16x16 by
default) out of the colour photographs bundled in the scikit-image wheel
(`SOURCES`: astronaut, chelsea the cat, coffee, rocket, the Hubble deep
field, an immunohistochemistry slide and the left motorcycle stereo view; no
download, no network): uint8 pixels `[N, size, size, 3]`, 256 levels. With
the defaults (`NUM_TRAIN` and `NUM_TEST` crops of 16x16) they are the
dataset `"skimage-crops"` of `tfp_emerging.data.load` (`load`), which is
how training reads them.

No overlap between train and test. Every source image is cut into vertical
bands `band_width` pixels wide; bands alternate train, train, ..., test
(every `test_every`-th band is a test band, the others train bands). A crop
lies inside one band, so every train crop is made of train-band pixels and
every test crop of test-band pixels: no pixel of a test crop is in any train
crop. Interleaving the bands (rather than holding out whole images or one
side of each image) keeps the test set's content distribution the same as
the training set's. Crops inside a band may overlap each other (random
positions), which only matters within one split.

Cost: decoding the seven bundled images (about 0.5 s) and `O(N size^2)` for
the crops; the positions come from `numpy.random.default_rng(seed)`.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

import numpy as np

from tfp_emerging.data import dataset

__all__ = [
  "NAME",
  "NUM_TEST",
  "NUM_TRAIN",
  "SOURCES",
  "CropBoxes",
  "Crops",
  "crop_boxes",
  "load",
  "load_crops",
  "source_images",
]

# The name of the default crops as a dataset of `tfp_emerging.data.load`.
NAME = "skimage-crops"
# The default numbers of train and test crops.
NUM_TRAIN = 4000
NUM_TEST = 1000

# The scikit-image loaders of the bundled RGB photographs used as sources.
SOURCES = (
  "astronaut",
  "chelsea",
  "coffee",
  "rocket",
  "hubble_deep_field",
  "immunohistochemistry",
  "motorcycle_left",
)


def source_images() -> list[np.ndarray]:
  """The bundled photographs, in `SOURCES` order, as uint8 `[H, W, 3]`."""
  from skimage import data as skdata

  images = []
  for name in SOURCES:
    if name == "motorcycle_left":
      image = skdata.stereo_motorcycle()[0]
    else:
      image = getattr(skdata, name)()
    images.append(np.ascontiguousarray(image[..., :3], dtype=np.uint8))
  return images


@dataclasses.dataclass(frozen=True)
class CropBoxes:
  """Where the crops of one split come from.

  Attributes:
    image: int array `[N]`, the index into `SOURCES` of each crop's image.
    top: int array `[N]`, the crop's first row.
    left: int array `[N]`, the crop's first column.
    size: the crops' height and width.
  """

  image: np.ndarray
  top: np.ndarray
  left: np.ndarray
  size: int


def crop_boxes(
  shapes: Sequence[tuple[int, int]],
  num_crops: int,
  size: int,
  band_width: int,
  test_every: int,
  test: bool,
  seed: int,
) -> CropBoxes:
  """Random crop positions inside the train (or test) bands of each image.

  Args:
    shapes: `(H, W)` of each source image.
    num_crops: how many crops to draw, spread over the images in proportion
      to their number of valid positions.
    size: crop height and width.
    band_width: width of the vertical bands, at least `size`.
    test_every: band `b` is a test band iff `b % test_every ==
      test_every - 1`.
    test: whether to draw from the test bands (else the train bands).
    seed: seed of `numpy.random.default_rng`.

  Returns:
    A `CropBoxes`.

  Raises:
    ValueError: `band_width < size`, `test_every < 2`, or no image has a band
      of the split.
  """
  if band_width < size:
    raise ValueError(
      f"`band_width` must be at least the crop size {size}; got {band_width}."
    )
  if test_every < 2:
    raise ValueError(f"`test_every` must be at least 2; got {test_every}.")
  # Every valid (image, top, band left edge, offset) position, counted so
  # that positions are drawn uniformly over all bands of the split.
  slots = []  # (image, band's first column, columns of valid lefts, rows)
  for index, (height, width) in enumerate(shapes):
    for band in range(width // band_width):
      if (band % test_every == test_every - 1) != test:
        continue
      slots.append(
        (index, band * band_width, band_width - size + 1, height - size + 1)
      )
  if not slots:
    raise ValueError("no band of the requested split fits in any image.")
  counts = np.array([cols * rows for _, _, cols, rows in slots], np.float64)
  rng = np.random.default_rng(seed)
  chosen = rng.choice(len(slots), size=num_crops, p=counts / counts.sum())
  image = np.array([slots[c][0] for c in chosen], np.int64)
  left = np.array(
    [slots[c][1] + rng.integers(slots[c][2]) for c in chosen], np.int64
  )
  top = np.array([rng.integers(slots[c][3]) for c in chosen], np.int64)
  return CropBoxes(image=image, top=top, left=left, size=size)


@dataclasses.dataclass(frozen=True)
class Crops:
  """The crops of both splits and where they come from.

  Attributes:
    train: uint8 array `[num_train, size, size, 3]`.
    test: uint8 array `[num_test, size, size, 3]`.
    train_boxes: the `CropBoxes` of `train`.
    test_boxes: the `CropBoxes` of `test`.
    source: a description of the crops, for messages.
  """

  train: np.ndarray
  test: np.ndarray
  train_boxes: CropBoxes
  test_boxes: CropBoxes
  source: str


def _cut(images, boxes):
  size = boxes.size
  return np.stack(
    [
      images[i][top : top + size, left : left + size]
      for i, top, left in zip(boxes.image, boxes.top, boxes.left)
    ]
  )


def load_crops(
  num_train: int = NUM_TRAIN,
  num_test: int = NUM_TEST,
  size: int = 16,
  band_width: int = 48,
  test_every: int = 4,
  seed: int = 0,
) -> Crops:
  """Random RGB crops of scikit-image's photographs, train and test disjoint.

  Args:
    num_train: number of training crops.
    num_test: number of test crops.
    size: crop height and width (16: `[16, 16, 3]` images).
    band_width: width of the vertical bands that alternate between the
      splits (see the module docstring).
    test_every: every `test_every`-th band is a test band (4: a quarter of
      each image's columns are test pixels).
    seed: seed of the crop positions (test positions use `seed + 1`).

  Returns:
    A `Crops` of uint8 pixels (256 levels).
  """
  images = source_images()
  shapes = [image.shape[:2] for image in images]
  train_boxes = crop_boxes(
    shapes, num_train, size, band_width, test_every, test=False, seed=seed
  )
  test_boxes = crop_boxes(
    shapes, num_test, size, band_width, test_every, test=True, seed=seed + 1
  )
  return Crops(
    train=_cut(images, train_boxes),
    test=_cut(images, test_boxes),
    train_boxes=train_boxes,
    test_boxes=test_boxes,
    source=(
      f"{size}x{size} random crops of scikit-image's bundled photos "
      f"({', '.join(SOURCES)}); every {test_every}th {band_width}-px "
      f"vertical band is test-only"
    ),
  )


def load(bit_depth: int | None = None) -> dataset.ImageDataset:
  """The dataset `"skimage-crops"`: `load_crops()`'s default crops as an
  in-memory `ImageDataset` of 256 levels, without labels."""
  crops = load_crops()
  return dataset.in_memory(
    NAME,
    crops.source,
    {"train": (crops.train, None), "test": (crops.test, None)},
    num_bins=256,
    bit_depth=bit_depth,
  )
