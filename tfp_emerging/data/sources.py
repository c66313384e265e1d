"""`load`, the one dataset dispatcher: a name or path to an `ImageDataset`.

`"digits"` and `"skimage-crops"` are the bundled datasets
(`tfp_emerging.data.digits`, `tfp_emerging.data.skimage_crops`); a path is an
`.npz` file (`npz_file`) or a folder of PNG images (`png_folder`); any other
name is a `tensorflow-datasets` builder (`tfds_builder`). Everything that can
be checked without reading every pixel is checked here, so that bad data
stops a command before any training.
"""

from __future__ import annotations

from collections.abc import Sequence
import os

from tfp_emerging.data import dataset as dataset_lib
from tfp_emerging.data import digits
from tfp_emerging.data import npz_file
from tfp_emerging.data import png_folder
from tfp_emerging.data import skimage_crops
from tfp_emerging.data import tfds_builder

__all__ = ["BUNDLED", "is_path", "load"]

BUNDLED = {digits.NAME: digits.load, skimage_crops.NAME: skimage_crops.load}
"""The bundled datasets by name, each with its loader: never paths, even
if a file of that name exists in the working folder."""


def is_path(dataset: str) -> bool:
  """Whether `dataset` names a file or folder rather than a bundled or
  tensorflow-datasets dataset (whose names may hold a "/":
  `imagenet_resized/64x64`)."""
  if dataset in BUNDLED:
    return False
  return (
    os.path.exists(dataset)
    or dataset.lower().endswith(".npz")
    or os.path.isabs(dataset)
    or dataset.startswith((".", "~"))
  )


def _check_splits(splits):
  if (
    isinstance(splits, str)
    or len(splits) != 2
    or not all(isinstance(s, str) and s for s in splits)
  ):
    raise ValueError(
      f"`splits` must be a pair of split names (train, test); got {splits!r}."
    )
  if splits[0] == splits[1]:
    raise ValueError(
      f"`splits` names the split {splits[0]!r} for both training and testing."
    )
  return tuple(splits)


def load(
  dataset: str,
  num_levels: int | None = None,
  data_dir: str | os.PathLike | None = None,
  splits: Sequence[str] | None = None,
  bit_depth: int | None = None,
  download: bool = True,
) -> dataset_lib.ImageDataset:
  """The dataset `dataset`, checked to fit a flow with `num_levels` levels.

  Args:
    dataset: `"digits"`, `"skimage-crops"`, a path to an `.npz` file or a
      folder of PNG images (anything that exists, ends in `.npz`, is
      absolute or starts with `.` or `~`), or else a `tensorflow-datasets`
      name (`"mnist"`, `"imagenet_resized/64x64"`).
    num_levels: optional number of squeeze levels of the flow; if given, `H`
      and `W` must be divisible by `2**num_levels`.
    data_dir: `tensorflow-datasets` data folder.
    splits: optional `(train_split, test_split)` names in the source: of a
      `tensorflow-datasets` builder (slices allowed), or of the image arrays
      of an `.npz` file. By default from the source (see the package
      docstring). The bundled datasets and PNG folders have fixed splits.
    bit_depth: `None` keeps the full depth (16-bit PNGs and uint16 arrays:
      `num_bins = 65536`); 8 reduces data of more than 256 levels to 256.
    download: whether `tensorflow-datasets` may download and prepare data.

  Returns:
    An `ImageDataset`.

  Raises:
    ValueError: `splits` or `bit_depth` is not one of the above.
    DataError: the data cannot be loaded or does not fit.
  """
  if bit_depth not in (None, 8):
    raise ValueError(
      f"`bit_depth` must be None (full depth) or 8; got {bit_depth!r}."
    )
  if splits is not None:
    splits = _check_splits(splits)
  if dataset in BUNDLED:
    dataset_lib.fixed_splits(dataset, splits)
    data = BUNDLED[dataset](bit_depth)
  elif is_path(dataset):
    path = os.path.expanduser(dataset)
    if os.path.isdir(path):
      data = png_folder.load(path, splits, bit_depth)
    else:
      data = npz_file.load(path, splits, bit_depth)
  else:
    data = tfds_builder.load(
      dataset,
      data_dir,
      splits,
      bit_depth,
      download,
      num_levels,
      bundled=tuple(BUNDLED),
    )
  if num_levels is not None:
    dataset_lib.check_image_size(data.image_shape, num_levels, data.source)
  return data
