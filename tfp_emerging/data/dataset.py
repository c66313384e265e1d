"""`ImageDataset`, the checks every source applies, and in-memory data.

Every source of `tfp_emerging.data.load` returns an `ImageDataset` (a
subclass that reads its own way); the helpers here check and convert what a
source read (pixels, labels, image sizes, splits) and raise `DataError`
naming the source and the problem.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

__all__ = [
  "LABELLED_SOURCES",
  "MAX_BINS",
  "SPLITS",
  "DataError",
  "ImageDataset",
]

SPLITS = ("train", "test")
"""The two splits every dataset has, in the order `splits` names them."""
# Share of a single array (npz `images`, PNG folder) held out for testing.
TEST_FRACTION = 1 / 6
# Seed of the fixed train/test permutations.
SPLIT_SEED = 0
MAX_BINS = 2**16
"""The most grey levels a pixel may have: 16 bits, uint16 pixels."""

LABELLED_SOURCES = (
  "Labels come with 'digits', with .npz files holding a 'labels' array "
  "(next to 'images') or '<split>_labels' arrays (e.g. 'train_labels' and "
  "'test_labels'), and with tensorflow-datasets datasets that have a "
  "ClassLabel 'label' feature."
)
"""Which sources carry labels, as error messages about missing labels
say it."""


class DataError(ValueError):
  """Data that cannot be used: the message names the source and the problem."""


def pixel_dtype(num_bins):
  """uint8 for at most 256 levels, else uint16."""
  return np.uint8 if num_bins <= 256 else np.uint16


def reduce_bins(pixels, source_bins, num_bins):
  """Pixels of `source_bins` levels as `num_bins` levels: `v * num_bins //
  source_bins` (equal-width bins), as uint8/uint16 for `num_bins`."""
  if source_bins == num_bins:
    return pixels
  reduced = tf.cast(pixels, tf.int32) * num_bins // source_bins
  return tf.cast(reduced, pixel_dtype(num_bins))


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """Integer images in a train and a test split, streamed by `images`.

  Made by `load`; each kind of source is a subclass that reads its own way.

  Attributes:
    name: the dataset as given (`"digits"`, `"skimage-crops"`, a
      `tensorflow-datasets` name), or the absolute path of a file or folder.
    source: where the images come from, for messages.
    image_shape: `(H, W, C)`, Python ints.
    num_bins: grey levels per channel (17 for digits, 256 for 8-bit data,
      65536 for 16-bit data).
    num_examples: `{"train": int, "test": int}`, exact counts.
    num_classes: number of classes, or `None` when the data has no labels.
    split_names: `{"train": name, "test": name}`, each split's name in the
      source (e.g. `"validation"` for ImageNet's test split).
  """

  name: str
  source: str
  image_shape: tuple
  num_bins: int
  num_examples: dict
  num_classes: int | None
  split_names: dict

  def images(
    self, split: str, labels: bool = False, shuffle_seed: int | None = None
  ) -> tf.data.Dataset:
    """The images of one split, unbatched, read lazily.

    Args:
      split: `"train"` or `"test"`.
      labels: also give each image's class label.
      shuffle_seed: `None` for the fixed order; an int reorders the source
        by that seed where that is cheap (in-memory arrays: a permutation
        of all images; a PNG folder: of its files; tensorflow-datasets: of
        its files). Add a shuffle buffer on top for a full shuffle.

    Returns:
      A `tf.data.Dataset` whose elements are integer images `[H, W, C]`
      (uint8 when `num_bins <= 256`, else uint16) or, with `labels`,
      `(image, label)` with `label` an int32 scalar in
      `0 .. num_classes - 1`. Read and decoded as it is iterated: a
      tensorflow-datasets split or a PNG folder is never in memory whole.

    Raises:
      ValueError: `split` or `shuffle_seed` is not one of the above.
      DataError: `labels` is set but the data has no labels.
    """
    if split not in SPLITS:
      raise ValueError(f"`split` must be one of {SPLITS}; got {split!r}.")
    if shuffle_seed is not None and (
      isinstance(shuffle_seed, bool)
      or not isinstance(shuffle_seed, (int, np.integer))
    ):
      raise ValueError(
        f"`shuffle_seed` must be None or an int; got {shuffle_seed!r}."
      )
    if shuffle_seed is not None:
      shuffle_seed = int(shuffle_seed)
    if labels and self.num_classes is None:
      raise DataError(f"{self.source}: has no class labels. {LABELLED_SOURCES}")
    elements = self._read(split, bool(labels), shuffle_seed)
    if self._source_bins == self.num_bins:
      return elements

    def reduce(image, *label):
      image = reduce_bins(image, self._source_bins, self.num_bins)
      return (image, *label) if label else image

    return elements.map(reduce, num_parallel_calls=tf.data.AUTOTUNE)

  def check_files(self) -> None:
    """Checks again what `load` checked of the files read lazily; raises
    `DataError` naming a file that cannot be read now (changed after
    `load`). For a source held in memory (or read by tensorflow-datasets),
    nothing to check. Cost: a PNG folder's files are each read and decoded
    once."""

  @property
  def _source_bins(self):
    """Grey levels of the pixels as read; `images` reduces them to
    `num_bins` when `load(..., bit_depth=8)` asked for fewer."""
    return self.num_bins

  def _read(self, split, labels, shuffle_seed):
    """The split's elements at `_source_bins` levels (see `images`)."""
    raise NotImplementedError(f"{type(self).__name__} cannot read images.")


@dataclasses.dataclass(frozen=True)
class InMemoryDataset(ImageDataset):
  """Small data held as numpy arrays and served by `from_tensor_slices`.

  `arrays[split]` is `(pixels [N, H, W, C], labels [N] int32 or None)`.
  Cost of `images`: one copy of the split's arrays into tensors (of the
  permuted arrays when shuffled).
  """

  arrays: dict = dataclasses.field(repr=False, compare=False)

  def _read(self, split, labels, shuffle_seed):
    pixels, classes = self.arrays[split]
    if shuffle_seed is not None:
      order = np.random.default_rng(shuffle_seed).permutation(len(pixels))
      pixels = pixels[order]
      classes = None if classes is None else classes[order]
    return tf.data.Dataset.from_tensor_slices(
      (pixels, classes) if labels else pixels
    )


def in_memory(
  name,
  source,
  arrays,
  num_bins,
  num_classes=None,
  bit_depth=None,
  split_names=None,
):
  """An `InMemoryDataset` of `arrays = {split: (pixels, labels)}`, reduced
  to 256 levels (in numpy, once) when `bit_depth` is 8."""
  if bit_depth == 8 and num_bins > 256:
    arrays = {
      split: (reduce_bins(pixels, num_bins, 256).numpy(), classes)
      for split, (pixels, classes) in arrays.items()
    }
    num_bins = 256
  return InMemoryDataset(
    name=name,
    source=source,
    image_shape=tuple(int(d) for d in arrays["train"][0].shape[1:]),
    num_bins=num_bins,
    num_examples={split: len(arrays[split][0]) for split in SPLITS},
    num_classes=num_classes,
    split_names=dict(split_names or zip(SPLITS, SPLITS)),
    arrays=arrays,
  )


def split_order(n, source, seed=SPLIT_SEED):
  """Fixed disjoint (train, test) indices into `n` images."""
  if n < 2:
    raise DataError(
      f"{source}: needs at least 2 images to make a train and a "
      f"test split; got {n}."
    )
  num_test = max(1, round(n * TEST_FRACTION))
  order = np.random.default_rng(seed).permutation(n)
  return order[num_test:], order[:num_test]


def as_pixels(array, source, num_bins):
  """Checks and converts one array of images to integer pixels `[N, H, W, C]`.

  Args:
    array: the array as read.
    source: `"file: array 'name'"`, for messages.
    num_bins: the number of grey levels; every value must be below it.

  Returns:
    The array as `[N, H, W, C]` uint8 (`num_bins <= 256`) or uint16.

  Raises:
    DataError: wrong rank, empty, non-integer or out-of-range pixels.
  """
  array = np.asarray(array)
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4:
    raise DataError(
      f"{source}: expected images shaped [N, H, W] or [N, H, W, C]; got "
      f"rank {array.ndim}, shape {array.shape}."
    )
  if array.size == 0:
    raise DataError(f"{source}: no pixels (shape {array.shape}).")
  if array.dtype == bool or not (
    np.issubdtype(array.dtype, np.integer)
    or np.issubdtype(array.dtype, np.floating)
  ):
    raise DataError(
      f"{source}: pixels must be integers; got dtype {array.dtype}."
    )
  if np.issubdtype(array.dtype, np.floating):
    whole = np.isfinite(array) & (array == np.round(array))
    if not np.all(whole):
      bad = array[~whole].ravel()[0].item()
      raise DataError(
        f"{source}: pixels must be integers (grey levels 0..{num_bins - 1}); "
        f"got non-integer values such as {bad!r} in a {array.dtype} array."
      )
  low, high = array.min(), array.max()
  if low < 0 or high > num_bins - 1:
    raise DataError(
      f"{source}: pixel values must lie in 0..{num_bins - 1} (num_bins="
      f"{num_bins}); got values from {low} to {high}. More levels need a "
      f"scalar 'num_bins' array (16-bit data: uint16 arrays)."
    )
  return array.astype(pixel_dtype(num_bins))


def as_labels(array, num_images, source):
  """Checks one array of class ids (one per image); returns it as int32."""
  array = np.asarray(array)
  if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
    raise DataError(
      f"{source}: labels must be integer class ids; got dtype {array.dtype}."
    )
  if array.shape != (num_images,):
    raise DataError(
      f"{source}: expected one label per image, shape "
      f"({num_images},); got shape {array.shape}."
    )
  if array.min() < 0 or array.max() >= 2**31:
    raise DataError(
      f"{source}: class ids must lie in 0..2**31 - 1; got "
      f"values from {array.min()} to {array.max()}."
    )
  return array.astype(np.int32)


def check_image_size(image_shape, num_levels, source):
  """Raises `DataError` unless `H` and `W` are divisible by `2**num_levels`."""
  factor = 2**num_levels
  height, width = image_shape[:2]
  if height % factor or width % factor:
    raise DataError(
      f"{source}: images are {height}x{width}, but a flow with num_levels="
      f"{num_levels} squeezes them {num_levels} times and needs height and "
      f"width divisible by 2**{num_levels} = {factor}. Use fewer levels or "
      f"crop/pad the images."
    )


def fixed_splits(source, splits):
  if splits is not None and tuple(splits) != SPLITS:
    raise DataError(
      f"{source}: has fixed 'train' and 'test' splits; other splits "
      f"({', '.join(splits)}) apply only to tensorflow-datasets datasets and "
      f".npz files with arrays of those names."
    )
