"""Image data for the density models: integer pixels `[N, H, W, C]`.

Every loader returns an `ImageData`: a train and a test array of integer
pixels in `0 .. num_bins - 1` (uint8 unless `num_bins > 256`), shaped
`[N, H, W, C]`, split once and for all (no image is in both), and the
`num_bins` the model's dequantisation needs. `load(dataset, num_levels)`
dispatches on the name and checks that the images fit a flow with
`num_levels` squeezes (`H` and `W` divisible by `2**num_levels`).

Sources:

* `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1797 images, no
  download). Each pixel counts the "on" pixels of a 4x4 block of the original
  32x32 binary bitmap (UCI "optdigits"), so its value is an integer 0..16:
  17 grey levels, `num_bins = 17`, images `[8, 8, 1]`. The values are used as
  they are: no rescaling to 0..255, so bits/dim are those of a 17-level
  image. Fixed split: a permutation with seed 0, the first 1500 images for
  training and the remaining 297 for testing.
* a `.npz` file, read with `allow_pickle=False`: either arrays `train` and
  `test`, or one array `images` (or the file's only array) which is split with
  a fixed permutation (`TEST_FRACTION` of it, at least one image, for
  testing). Arrays are `[N, H, W]` (one channel) or `[N, H, W, C]` of integers
  `>= 0` (floats are accepted only when every value is a whole number). An
  optional scalar `num_bins` gives the number of grey levels; otherwise 256.
* a folder of PNG images (`*.png`, not recursive, 8-bit, all the same size and
  channel count), `num_bins = 256`, split like a single `.npz` array in the
  order of the sorted file names.
* any other name (`"mnist"`, `"cifar10"`, ...): `tensorflow_datasets.load`
  with the splits `train` and `test`, `num_bins = 256`; needs the optional
  extra `pip install "tfp_emerging[datasets]"` and either network access or a
  copy already in `data_dir`.

Bad data raises `DataError` (a `ValueError`) naming the file and the problem.
"""

import dataclasses
import os
import zipfile

import numpy as np
import tensorflow as tf

__all__ = [
    "DataError", "ImageData", "TEST_FRACTION", "check_image_size", "load",
    "load_digits", "load_npz", "load_png_folder", "load_tfds"
]

# Share of a single array (npz `images`, PNG folder) held out for testing.
TEST_FRACTION = 1 / 6
# Number of digits images used for training; the rest (297) are the test set.
DIGITS_TRAIN_SIZE = 1500
# Seed of the fixed train/test permutations.
SPLIT_SEED = 0


class DataError(ValueError):
  """Data that cannot be used: the message names the source and the problem."""


@dataclasses.dataclass(frozen=True)
class ImageData:
  """Integer images split into train and test.

  Attributes:
    name: the dataset as given on the command line (`"digits"`, a path, or a
      `tensorflow-datasets` name).
    train: integer array `[N_train, H, W, C]`, values in `0 .. num_bins - 1`.
    test: integer array `[N_test, H, W, C]`, same image shape.
    num_bins: number of grey levels per channel.
    source: where the images came from, for messages.
  """
  name: str
  train: np.ndarray
  test: np.ndarray
  num_bins: int
  source: str

  @property
  def image_shape(self):
    """`(H, W, C)` of every image."""
    return tuple(int(d) for d in self.train.shape[1:])


def _split(images, source, seed=SPLIT_SEED):
  """Fixed disjoint split of `images` into (train, test)."""
  n = images.shape[0]
  if n < 2:
    raise DataError(f"{source}: needs at least 2 images to make a train and a "
                    f"test split; got {n}.")
  num_test = max(1, int(round(n * TEST_FRACTION)))
  order = np.random.default_rng(seed).permutation(n)
  return images[order[num_test:]], images[order[:num_test]]


def _pixel_dtype(num_bins):
  return np.uint8 if num_bins <= 256 else np.int32


def _as_pixels(array, source, num_bins):
  """Checks and converts one array of images to integer pixels `[N, H, W, C]`.

  Args:
    array: the array as read.
    source: `"file: array 'name'"`, for messages.
    num_bins: the number of grey levels; every value must be below it.

  Returns:
    The array as `[N, H, W, C]` integers.

  Raises:
    DataError: wrong rank, empty, non-integer or out-of-range pixels.
  """
  array = np.asarray(array)
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4:
    raise DataError(
        f"{source}: expected images shaped [N, H, W] or [N, H, W, C]; got "
        f"rank {array.ndim}, shape {array.shape}.")
  if array.size == 0:
    raise DataError(f"{source}: no pixels (shape {array.shape}).")
  if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or
                                 np.issubdtype(array.dtype, np.floating)):
    raise DataError(f"{source}: pixels must be integers; got dtype "
                    f"{array.dtype}.")
  if np.issubdtype(array.dtype, np.floating):
    if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
      bad = array[~(np.isfinite(array) &
                    (array == np.round(array)))].ravel()[0].item()
      raise DataError(
          f"{source}: pixels must be integers (grey levels 0..{num_bins - 1}); "
          f"got non-integer values such as {bad!r} in a {array.dtype} array.")
  low, high = array.min(), array.max()
  if low < 0 or high > num_bins - 1:
    raise DataError(
        f"{source}: pixel values must lie in 0..{num_bins - 1} (num_bins="
        f"{num_bins}); got values from {low} to {high}.")
  return array.astype(_pixel_dtype(num_bins))


def check_image_size(image_shape, num_levels, source):
  """Raises `DataError` unless `H` and `W` are divisible by `2**num_levels`.

  Args:
    image_shape: `(H, W, C)`.
    num_levels: the flow's number of squeeze levels.
    source: the file or dataset, for the message.
  """
  factor = 2**num_levels
  height, width = image_shape[:2]
  if height % factor or width % factor:
    raise DataError(
        f"{source}: images are {height}x{width}, but a flow with num_levels="
        f"{num_levels} squeezes them {num_levels} times and needs height and "
        f"width divisible by 2**{num_levels} = {factor}. Use fewer levels or "
        f"crop/pad the images.")


def load_digits():
  """scikit-learn's 8x8 digits: 1500 train, 297 test, `num_bins = 17`."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  images = datasets.load_digits().images  # float64 [1797, 8, 8], 0..16
  pixels = _as_pixels(images, "scikit-learn digits", num_bins=17)
  order = np.random.default_rng(SPLIT_SEED).permutation(pixels.shape[0])
  return ImageData(
      name="digits",
      train=pixels[order[:DIGITS_TRAIN_SIZE]],
      test=pixels[order[DIGITS_TRAIN_SIZE:]],
      num_bins=17,
      source="scikit-learn digits (sklearn.datasets.load_digits)")


def load_npz(path, name=None):
  """Images from an `.npz` file (see the module docstring for its layout).

  Args:
    path: the file.
    name: the dataset name to record; defaults to `path`.

  Returns:
    An `ImageData`.

  Raises:
    DataError: missing or unreadable file, missing arrays, bad pixels,
      train and test of different image shapes.
  """
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise DataError(f"{path}: not a readable .npz file (not a zip archive as "
                    f"numpy.savez writes).")
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {key: archive[key] for key in archive.files}
  except ValueError as e:  # object arrays need pickle
    raise DataError(f"{path}: cannot read without pickle ({e}); save plain "
                    f"integer arrays with numpy.savez.") from e
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: not a readable .npz file ({e}).") from e
  num_bins = 256
  if "num_bins" in arrays:
    value = arrays.pop("num_bins")
    if (value.shape != () or not np.issubdtype(value.dtype, np.integer) or
        value < 2):
      raise DataError(f"{path}: array 'num_bins' must be an integer scalar >= "
                      f"2; got {value!r}.")
    num_bins = int(value)
  if "train" in arrays or "test" in arrays:
    missing = {"train", "test"} - set(arrays)
    if missing:
      raise DataError(f"{path}: has array '{({'train', 'test'} - missing).pop()}'"
                      f" but not '{missing.pop()}'; give both, or one array "
                      f"'images' to split.")
    train = _as_pixels(arrays["train"], f"{path}: array 'train'", num_bins)
    test = _as_pixels(arrays["test"], f"{path}: array 'test'", num_bins)
    if train.shape[1:] != test.shape[1:]:
      raise DataError(
          f"{path}: arrays 'train' and 'test' hold images of different sizes: "
          f"{train.shape[1:]} and {test.shape[1:]}.")
  else:
    if "images" in arrays:
      key = "images"
    elif len(arrays) == 1:
      key = next(iter(arrays))
    else:
      raise DataError(
          f"{path}: expected arrays 'train' and 'test', or one array 'images';"
          f" got {sorted(arrays) or 'no arrays'}.")
    pixels = _as_pixels(arrays[key], f"{path}: array '{key}'", num_bins)
    train, test = _split(pixels, f"{path}: array '{key}'")
  return ImageData(name=name or path, train=train, test=test,
                   num_bins=num_bins, source=path)


def load_png_folder(path, name=None):
  """8-bit PNG images from a folder, split with a fixed permutation.

  Args:
    path: the folder; every `*.png` in it (not in subfolders) is read.
    name: the dataset name to record; defaults to `path`.

  Returns:
    An `ImageData` with `num_bins = 256`.

  Raises:
    DataError: no PNG files, an unreadable PNG, images of different sizes or
      channel counts.
  """
  if not os.path.isdir(path):
    raise DataError(f"{path}: no such folder.")
  files = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
  if not files:
    raise DataError(f"{path}: no .png files in this folder.")
  images = []
  for f in files:
    file_path = os.path.join(path, f)
    try:
      with open(file_path, "rb") as stream:
        image = tf.io.decode_png(stream.read(), channels=0).numpy()
    except (OSError, tf.errors.OpError) as e:
      message = getattr(e, "message", None) or str(e)
      raise DataError(f"{file_path}: not a readable PNG image ({message}).") \
          from e
    if images and image.shape != images[0].shape:
      raise DataError(
          f"{file_path}: image is {image.shape[0]}x{image.shape[1]} with "
          f"{image.shape[2]} channel(s), but {os.path.join(path, files[0])} is "
          f"{images[0].shape[0]}x{images[0].shape[1]} with "
          f"{images[0].shape[2]} channel(s); all images must have the same "
          f"size and channels.")
    images.append(image)
  train, test = _split(np.stack(images), path)
  return ImageData(
      name=name or path, train=train, test=test, num_bins=256,
      source=f"{path} ({len(files)} PNG files such as "
      f"{os.path.join(path, files[0])})")


def load_tfds(name, data_dir=None, download=True):
  """A `tensorflow-datasets` image dataset's `train` and `test` splits.

  Args:
    name: the `tensorflow-datasets` name, e.g. `"mnist"` or `"cifar10"`.
    data_dir: optional folder holding (or to hold) the prepared data.
    download: whether `tensorflow-datasets` may download missing data.

  Returns:
    An `ImageData` with `num_bins = 256`.

  Raises:
    DataError: `tensorflow-datasets` is not installed, the data cannot be had,
      or it has no uint8 `image` feature.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError(
        f"--dataset {name}: needs the optional package tensorflow-datasets "
        f"(pip install \"tfp_emerging[datasets]\"), which is not installed. "
        f"Without it use --dataset digits, an .npz file or a folder of PNG "
        f"images.") from e
  try:
    splits = tfds.load(name, split=["train", "test"], batch_size=-1,
                       data_dir=data_dir, download=download)
    train, test = (tfds.as_numpy(s) for s in splits)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"--dataset {name}: tensorflow-datasets could not provide the 'train' "
        f"and 'test' splits ({type(e).__name__}: {e}). Without network access "
        f"prepare the data elsewhere and pass its folder as --data-dir.") \
        from e
  source = f"tensorflow-datasets '{name}'"
  for split, features in (("train", train), ("test", test)):
    if "image" not in features:
      raise DataError(f"{source}: split '{split}' has no 'image' feature; got "
                      f"{sorted(features)}.")
    if features["image"].dtype != np.uint8:
      raise DataError(f"{source}: split '{split}' images are "
                      f"{features['image'].dtype}, expected uint8.")
  return ImageData(
      name=name,
      train=_as_pixels(train["image"], f"{source}: split 'train'", 256),
      test=_as_pixels(test["image"], f"{source}: split 'test'", 256),
      num_bins=256,
      source=source)


def _is_path(dataset):
  return (os.path.exists(dataset) or os.sep in dataset or
          dataset.lower().endswith(".npz"))


def load(dataset, num_levels=None, data_dir=None, download=True):
  """Loads `dataset` and checks that it fits a flow with `num_levels` levels.

  Args:
    dataset: `"digits"`; a path to an `.npz` file or a folder of PNG images
      (anything that exists, contains a path separator or ends in `.npz`);
      otherwise a `tensorflow-datasets` name.
    num_levels: optional number of squeeze levels of the flow; if given, `H`
      and `W` must be divisible by `2**num_levels`.
    data_dir: `tensorflow-datasets` data folder.
    download: whether `tensorflow-datasets` may download.

  Returns:
    An `ImageData`.

  Raises:
    DataError: the data cannot be loaded or does not fit.
  """
  if dataset == "digits":
    data = load_digits()
  elif _is_path(dataset):
    if os.path.isdir(dataset):
      data = load_png_folder(dataset)
    else:
      data = load_npz(dataset)
  else:
    data = load_tfds(dataset, data_dir=data_dir, download=download)
  if num_levels is not None:
    check_image_size(data.image_shape, num_levels, data.source)
  return data
