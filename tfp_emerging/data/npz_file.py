"""`.npz` files of integer images (and optional labels): `load(path, ...)`.

Read with `allow_pickle=False`: arrays `train` and `test` (or the arrays
named by `splits`), or one array `images` (or the file's only image array)
split with a fixed permutation (`dataset.TEST_FRACTION` of it, at least one
image, for testing). Images are `[N, H, W]` (one channel) or `[N, H, W, C]`
integers `>= 0` (floats only when every value is whole). Optional scalars:
`num_bins` (default 65536 for uint16 arrays, else 256) and `num_classes`.
Optional labels: `labels` (with `images`) or `<split>_labels` (with each
split's array, e.g. `train_labels` and `test_labels`): integer class ids
`>= 0`, one per image; `num_classes` defaults to the largest id + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import zipfile

import numpy as np

from tfp_emerging.data import dataset

__all__ = ["load"]


def _read_npz(path):
  """Every array of the `.npz` file `path`, read without pickle."""
  if not os.path.isfile(path):
    raise dataset.DataError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise dataset.DataError(
      f"{path}: not a readable .npz file (not a zip archive as "
      f"numpy.savez writes)."
    )
  try:
    with np.load(path, allow_pickle=False) as archive:
      return {key: archive[key] for key in archive.files}
  except ValueError as e:  # object arrays need pickle
    raise dataset.DataError(
      f"{path}: cannot read without pickle ({e}); save plain "
      f"integer arrays with numpy.savez."
    ) from e
  except Exception as e:
    raise dataset.DataError(f"{path}: not a readable .npz file ({e}).") from e


def _npz_scalar(arrays, key, path, minimum, maximum=None):
  """The optional integer scalar array `key` (removed from `arrays`)."""
  if key not in arrays:
    return None
  value = arrays.pop(key)
  if (
    value.shape != ()
    or not np.issubdtype(value.dtype, np.integer)
    or value < minimum
    or (maximum is not None and value > maximum)
  ):
    limits = f">= {minimum}" + ("" if maximum is None else f" and <= {maximum}")
    raise dataset.DataError(
      f"{path}: array '{key}' must be an integer scalar "
      f"{limits}; got {value!r}."
    )
  return int(value)


def _npz_default_bins(images, path):
  """256, or 65536 when every image array is uint16 (dataset.DataError if
  some are)."""
  wide = [key for key, array in images.items() if array.dtype == np.uint16]
  if not wide:
    return 256
  narrow = [key for key in images if key not in wide]
  if narrow:
    raise dataset.DataError(
      f"{path}: array '{wide[0]}' is uint16 (16-bit, 65536 levels) but "
      f"array '{narrow[0]}' is {images[narrow[0]].dtype}; store every image "
      f"array at one depth, or give a scalar 'num_bins' array."
    )
  return dataset.MAX_BINS


def _npz_layout(arrays, path, splits):
  """Which arrays hold the images and labels of each split.

  Returns:
    `(image_keys, label_keys, split)`: the array names of the train and test
    images and of their labels (`None` when unlabelled), and whether one
    array is to be split in two (the keys then name it twice).
  """
  if splits is None and ({"train", "test"} & set(arrays)):
    missing = {"train", "test"} - set(arrays)
    if missing:
      raise dataset.DataError(
        f"{path}: has array '{({'train', 'test'} - missing).pop()}'"
        f" but not '{missing.pop()}'; give both, or one array "
        f"'images' to split."
      )
    splits = dataset.SPLITS
  if splits is not None:
    for key in splits:
      if key not in arrays:
        raise dataset.DataError(
          f"{path}: no array '{key}' for a split; the arrays are "
          f"{sorted(arrays)}."
        )
    if "labels" in arrays:
      raise dataset.DataError(
        f"{path}: array 'labels' goes with a single 'images' array; label "
        f"the arrays '{splits[0]}' and '{splits[1]}' with "
        f"'{splits[0]}_labels' and '{splits[1]}_labels'."
      )
    label_keys = tuple(f"{key}_labels" for key in splits)
    present = [key in arrays for key in label_keys]
    if any(present) and not all(present):
      have, lack = label_keys if present[0] else label_keys[::-1]
      raise dataset.DataError(
        f"{path}: has array '{have}' but not '{lack}'; label "
        f"both splits or neither."
      )
    return tuple(splits), label_keys if all(present) else (None, None), False
  candidates = sorted(set(arrays) - {"labels"})
  if "images" in arrays:
    key = "images"
  elif len(candidates) == 1:
    key = candidates[0]
  else:
    raise dataset.DataError(
      f"{path}: expected arrays 'train' and 'test', or one array 'images';"
      f" got {sorted(arrays) or 'no arrays'}."
    )
  labels = "labels" if "labels" in arrays else None
  return (key, key), (labels, labels), True


def load(
  path: str | os.PathLike,
  splits: Sequence[str] | None = None,
  bit_depth: int | None = None,
) -> dataset.ImageDataset:
  """The `.npz` file `path` as an in-memory `ImageDataset`; `DataError` if
  it cannot be read or its arrays do not fit (see the module docstring)."""
  arrays = _read_npz(path)
  num_bins = _npz_scalar(
    arrays, "num_bins", path, minimum=2, maximum=dataset.MAX_BINS
  )
  num_classes = _npz_scalar(arrays, "num_classes", path, minimum=1)
  image_keys, label_keys, split_one = _npz_layout(arrays, path, splits)
  if num_bins is None:
    num_bins = _npz_default_bins({key: arrays[key] for key in image_keys}, path)
  columns = {}  # image array name -> (pixels, labels or None)
  for image_key, label_key in dict.fromkeys(zip(image_keys, label_keys)):
    pixels = dataset.as_pixels(
      arrays[image_key], f"{path}: array '{image_key}'", num_bins
    )
    columns[image_key] = (
      pixels,
      None
      if label_key is None
      else dataset.as_labels(
        arrays[label_key], len(pixels), f"{path}: array '{label_key}'"
      ),
    )
  if split_one:
    pixels, labels = columns[image_keys[0]]
    orders = dataset.split_order(
      len(pixels), f"{path}: array '{image_keys[0]}'"
    )
    split_arrays = {
      split: (pixels[order], None if labels is None else labels[order])
      for split, order in zip(dataset.SPLITS, orders)
    }
  else:
    split_arrays = {
      split: columns[key] for split, key in zip(dataset.SPLITS, image_keys)
    }
    train, test = (split_arrays[split][0] for split in dataset.SPLITS)
    if train.shape[1:] != test.shape[1:]:
      raise dataset.DataError(
        f"{path}: arrays '{image_keys[0]}' and '{image_keys[1]}' hold images "
        f"of different sizes: {train.shape[1:]} and {test.shape[1:]}."
      )
  if label_keys[0] is not None:
    largest = max(
      int(classes.max())
      for _, classes in split_arrays.values()
      if classes is not None
    )
    if num_classes is None:
      num_classes = largest + 1
    elif largest >= num_classes:
      raise dataset.DataError(
        f"{path}: class id {largest} is not below "
        f"'num_classes' = {num_classes}."
      )
  elif num_classes is not None:
    raise dataset.DataError(
      f"{path}: has 'num_classes' but no labels. {dataset.LABELLED_SOURCES}"
    )
  return dataset.in_memory(
    os.path.abspath(path),
    path,
    split_arrays,
    num_bins,
    num_classes=num_classes,
    bit_depth=bit_depth,
    split_names=None if split_one else dict(zip(dataset.SPLITS, image_keys)),
  )
