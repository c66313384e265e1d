"""Image datasets for the density models, streamed through `tf.data`.

`load(dataset, ...)` is the one dataset dispatcher. It returns an
`ImageDataset`: the image shape, the number of grey levels (`num_bins`), the
exact number of train and test images, the number of classes (or `None`) and
`images(split)`, an unbatched `tf.data.Dataset` of integer pixels
`[H, W, C]` in `0 .. num_bins - 1` (uint8 when `num_bins <= 256`, uint16 up
to 65536), optionally with an int32 class label. Train and test never share
an image. Everything that can be checked without reading every pixel is
checked by `load`, so that bad data stops a command before any training;
bad data raises `DataError` (a `ValueError`) naming the file or dataset and
the problem.

Sources (`dataset`):

* `"digits"`: scikit-learn's bundled 8x8 handwritten digits (1797 images, no
  download), with their 10 classes. Each pixel counts the "on" pixels of a
  4x4 block of the original 32x32 binary bitmap (UCI "optdigits"), so its
  value is an integer 0..16: 17 grey levels, `num_bins = 17`, images
  `[8, 8, 1]`, used as they are (bits/dim are those of a 17-level image).
  Fixed split: a permutation with seed 0, the first 1500 images for training
  and the remaining 297 for testing.
* `"skimage-crops"`: 4000 train and 1000 test 16x16 RGB crops of the colour
  photographs bundled with scikit-image (`tfp_emerging.natural_images`:
  disjoint pixels between the splits), `num_bins = 256`, no labels.
* a `.npz` file, read with `allow_pickle=False`: arrays `train` and `test`
  (or the arrays named by `splits`), or one array `images` (or the file's
  only image array) split with a fixed permutation (`TEST_FRACTION` of it, at
  least one image, for testing). Images are `[N, H, W]` (one channel) or
  `[N, H, W, C]` integers `>= 0` (floats only when every value is whole).
  Optional scalars: `num_bins` (default 65536 for uint16 arrays, else 256)
  and `num_classes`. Optional labels: `labels` (with `images`) or
  `<split>_labels` (with each split's array, e.g. `train_labels` and
  `test_labels`): integer class ids `>= 0`, one per image; `num_classes`
  defaults to the largest id + 1.
* a folder of PNG images (`*.png`, not recursive; 1 to 16 bits, grey, grey
  with alpha, RGB, RGBA or palette; all of one size, channel count and bit
  depth), split like a single `.npz` array in the order of the sorted file
  names. Only the files' headers are read by `load` (signature, `IHDR`:
  width, height, bit depth, colour type; the chunks before the image data;
  the closing `IEND` chunk, which a truncated file lacks); the pixels are
  decoded in the pipeline's `map`. A file whose compressed pixel data is
  corrupt behind an intact header is found only when it is decoded.
* any other name (`"mnist"`, `"cifar10"`, `"imagenet_resized/64x64"`, ...):
  a `tensorflow-datasets` builder, read split by split from its prepared
  files (never a whole split in memory). Its `image` feature (or the first
  supervised key) must be a fixed-size uint8 (or uint16) image; a
  `ClassLabel` feature `label` (or the second supervised key) gives labels.
  The splits come from the builder's info: `train` and `test`, or `train`
  and `validation` when there is no test split (ImageNet); `splits`
  overrides them (any split name or slice tensorflow-datasets accepts, e.g.
  `("train[:90%]", "train[90%:]")`). Needs the optional extra
  `pip install "tfp_emerging[datasets]"` and either network access or the
  data already prepared in `data_dir`.

Bit depth: 16-bit PNGs and uint16 arrays keep every level
(`num_bins = 65536`, uint16 pixels). `bit_depth=8` reduces data with more
than 256 levels to 256: level `v` of `num_bins` becomes
`floor(v * 256 / num_bins)` (for 16 bits, the high byte `v >> 8`), so that
each 8-bit level stands for an equal number of source levels.
"""

import dataclasses
import os
import struct
import zipfile
import zlib

import numpy as np
import tensorflow as tf

from tfp_emerging import natural_images

__all__ = ["DataError", "ImageDataset", "SPLITS", "load"]

# The two splits every dataset has, in the order `splits` names them.
SPLITS = ("train", "test")
# Share of a single array (npz `images`, PNG folder) held out for testing.
TEST_FRACTION = 1 / 6
# Number of digits images used for training; the rest (297) are the test set.
DIGITS_TRAIN_SIZE = 1500
# Seed of the fixed train/test permutations.
SPLIT_SEED = 0
# The most grey levels a pixel may have: 16 bits, uint16 pixels.
MAX_BINS = 2**16

LABELLED_SOURCES = (
    "Labels come with 'digits', with .npz files holding a 'labels' array "
    "(next to 'images') or '<split>_labels' arrays (e.g. 'train_labels' and "
    "'test_labels'), and with tensorflow-datasets datasets that have a "
    "ClassLabel 'label' feature.")


class DataError(ValueError):
  """Data that cannot be used: the message names the source and the problem."""


def _pixel_dtype(num_bins):
  return np.uint8 if num_bins <= 256 else np.uint16


def _reduce_bins(pixels, source_bins, num_bins):
  """Pixels of `source_bins` levels as `num_bins` levels: `v * num_bins //
  source_bins` (equal-width bins), as uint8/uint16 for `num_bins`."""
  if source_bins == num_bins:
    return pixels
  reduced = tf.cast(pixels, tf.int32) * num_bins // source_bins
  return tf.cast(reduced, _pixel_dtype(num_bins))


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
  num_classes: object
  split_names: dict

  def images(self, split, labels=False, shuffle_seed=None):
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
    if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or
                                     not isinstance(shuffle_seed,
                                                    (int, np.integer))):
      raise ValueError(f"`shuffle_seed` must be None or an int; got "
                       f"{shuffle_seed!r}.")
    if shuffle_seed is not None:
      shuffle_seed = int(shuffle_seed)
    if labels and self.num_classes is None:
      raise DataError(f"{self.source}: has no class labels. "
                      f"{LABELLED_SOURCES}")
    elements = self._read(split, bool(labels), shuffle_seed)
    if self._source_bins == self.num_bins:
      return elements

    def reduce(image, *label):
      image = _reduce_bins(image, self._source_bins, self.num_bins)
      return (image, *label) if label else image

    return elements.map(reduce, num_parallel_calls=tf.data.AUTOTUNE)

  @property
  def _source_bins(self):
    """Grey levels of the pixels as read; `images` reduces them to
    `num_bins` when `load(..., bit_depth=8)` asked for fewer."""
    return self.num_bins

  def _read(self, split, labels, shuffle_seed):
    """The split's elements at `_source_bins` levels (see `images`)."""
    raise NotImplementedError(f"{type(self).__name__} cannot read images.")


@dataclasses.dataclass(frozen=True)
class _InMemoryDataset(ImageDataset):
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
        (pixels, classes) if labels else pixels)


def _in_memory(name, source, arrays, num_bins, num_classes=None,
               bit_depth=None, split_names=None):
  """An `_InMemoryDataset` of `arrays = {split: (pixels, labels)}`, reduced
  to 256 levels (in numpy, once) when `bit_depth` is 8."""
  if bit_depth == 8 and num_bins > 256:
    arrays = {
        split: (_reduce_bins(pixels, num_bins, 256).numpy(), classes)
        for split, (pixels, classes) in arrays.items()
    }
    num_bins = 256
  return _InMemoryDataset(
      name=name,
      source=source,
      image_shape=tuple(int(d) for d in arrays["train"][0].shape[1:]),
      num_bins=num_bins,
      num_examples={split: len(arrays[split][0]) for split in SPLITS},
      num_classes=num_classes,
      split_names=dict(split_names or zip(SPLITS, SPLITS)),
      arrays=arrays)


# ---------------------------------------------------------------- checks


def _split_order(n, source, seed=SPLIT_SEED):
  """Fixed disjoint (train, test) indices into `n` images."""
  if n < 2:
    raise DataError(f"{source}: needs at least 2 images to make a train and a "
                    f"test split; got {n}.")
  num_test = max(1, int(round(n * TEST_FRACTION)))
  order = np.random.default_rng(seed).permutation(n)
  return order[num_test:], order[:num_test]


def _as_pixels(array, source, num_bins):
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
        f"rank {array.ndim}, shape {array.shape}.")
  if array.size == 0:
    raise DataError(f"{source}: no pixels (shape {array.shape}).")
  if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or
                                 np.issubdtype(array.dtype, np.floating)):
    raise DataError(f"{source}: pixels must be integers; got dtype "
                    f"{array.dtype}.")
  if np.issubdtype(array.dtype, np.floating):
    whole = np.isfinite(array) & (array == np.round(array))
    if not np.all(whole):
      bad = array[~whole].ravel()[0].item()
      raise DataError(
          f"{source}: pixels must be integers (grey levels 0..{num_bins - 1}); "
          f"got non-integer values such as {bad!r} in a {array.dtype} array.")
  low, high = array.min(), array.max()
  if low < 0 or high > num_bins - 1:
    raise DataError(
        f"{source}: pixel values must lie in 0..{num_bins - 1} (num_bins="
        f"{num_bins}); got values from {low} to {high}. More levels need a "
        f"scalar 'num_bins' array (16-bit data: uint16 arrays).")
  return array.astype(_pixel_dtype(num_bins))


def _as_labels(array, num_images, source):
  """Checks one array of class ids (one per image); returns it as int32."""
  array = np.asarray(array)
  if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
    raise DataError(f"{source}: labels must be integer class ids; got dtype "
                    f"{array.dtype}.")
  if array.shape != (num_images,):
    raise DataError(f"{source}: expected one label per image, shape "
                    f"({num_images},); got shape {array.shape}.")
  if array.min() < 0 or array.max() >= 2**31:
    raise DataError(f"{source}: class ids must lie in 0..2**31 - 1; got "
                    f"values from {array.min()} to {array.max()}.")
  return array.astype(np.int32)


def _check_image_size(image_shape, num_levels, source):
  """Raises `DataError` unless `H` and `W` are divisible by `2**num_levels`."""
  factor = 2**num_levels
  height, width = image_shape[:2]
  if height % factor or width % factor:
    raise DataError(
        f"{source}: images are {height}x{width}, but a flow with num_levels="
        f"{num_levels} squeezes them {num_levels} times and needs height and "
        f"width divisible by 2**{num_levels} = {factor}. Use fewer levels or "
        f"crop/pad the images.")


def _fixed_splits(source, splits):
  if splits is not None and tuple(splits) != SPLITS:
    raise DataError(
        f"{source}: has fixed 'train' and 'test' splits; other splits "
        f"({', '.join(splits)}) apply only to tensorflow-datasets datasets and "
        f".npz files with arrays of those names.")


# ---------------------------------------------------------------- bundled


def _load_digits(bit_depth):
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  bunch = datasets.load_digits()  # images float64 [1797, 8, 8] in 0..16
  pixels = _as_pixels(bunch.images, "scikit-learn digits", num_bins=17)
  labels = bunch.target.astype(np.int32)
  order = np.random.default_rng(SPLIT_SEED).permutation(pixels.shape[0])
  train, test = order[:DIGITS_TRAIN_SIZE], order[DIGITS_TRAIN_SIZE:]
  return _in_memory(
      "digits", "scikit-learn digits (sklearn.datasets.load_digits)",
      {"train": (pixels[train], labels[train]),
       "test": (pixels[test], labels[test])},
      num_bins=17, num_classes=10, bit_depth=bit_depth)


def _load_crops(bit_depth):
  crops = natural_images.load_crops()
  return _in_memory(
      natural_images.NAME, crops.source,
      {"train": (crops.train, None), "test": (crops.test, None)},
      num_bins=256, bit_depth=bit_depth)


# ---------------------------------------------------------------- .npz


def _read_npz(path):
  """Every array of the `.npz` file `path`, read without pickle."""
  if not os.path.isfile(path):
    raise DataError(f"{path}: no such file.")
  if not zipfile.is_zipfile(path):
    raise DataError(f"{path}: not a readable .npz file (not a zip archive as "
                    f"numpy.savez writes).")
  try:
    with np.load(path, allow_pickle=False) as archive:
      return {key: archive[key] for key in archive.files}
  except ValueError as e:  # object arrays need pickle
    raise DataError(f"{path}: cannot read without pickle ({e}); save plain "
                    f"integer arrays with numpy.savez.") from e
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: not a readable .npz file ({e}).") from e


def _npz_scalar(arrays, key, path, minimum, maximum=None):
  """The optional integer scalar array `key` (removed from `arrays`)."""
  if key not in arrays:
    return None
  value = arrays.pop(key)
  if (value.shape != () or not np.issubdtype(value.dtype, np.integer) or
      value < minimum or (maximum is not None and value > maximum)):
    limits = f">= {minimum}" + ("" if maximum is None else
                                f" and <= {maximum}")
    raise DataError(f"{path}: array '{key}' must be an integer scalar "
                    f"{limits}; got {value!r}.")
  return int(value)


def _npz_default_bins(images, path):
  """256, or 65536 when every image array is uint16 (DataError if some are)."""
  wide = [key for key, array in images.items() if array.dtype == np.uint16]
  if not wide:
    return 256
  narrow = [key for key in images if key not in wide]
  if narrow:
    raise DataError(
        f"{path}: array '{wide[0]}' is uint16 (16-bit, 65536 levels) but "
        f"array '{narrow[0]}' is {images[narrow[0]].dtype}; store every image "
        f"array at one depth, or give a scalar 'num_bins' array.")
  return MAX_BINS


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
      raise DataError(f"{path}: has array '{({'train', 'test'} - missing).pop()}'"
                      f" but not '{missing.pop()}'; give both, or one array "
                      f"'images' to split.")
    splits = SPLITS
  if splits is not None:
    for key in splits:
      if key not in arrays:
        raise DataError(f"{path}: no array '{key}' for a split; the arrays are "
                        f"{sorted(arrays)}.")
    if "labels" in arrays:
      raise DataError(
          f"{path}: array 'labels' goes with a single 'images' array; label "
          f"the arrays '{splits[0]}' and '{splits[1]}' with "
          f"'{splits[0]}_labels' and '{splits[1]}_labels'.")
    label_keys = tuple(f"{key}_labels" for key in splits)
    present = [key in arrays for key in label_keys]
    if any(present) and not all(present):
      have, lack = label_keys if present[0] else label_keys[::-1]
      raise DataError(f"{path}: has array '{have}' but not '{lack}'; label "
                      f"both splits or neither.")
    return tuple(splits), label_keys if all(present) else (None, None), False
  candidates = sorted(set(arrays) - {"labels"})
  if "images" in arrays:
    key = "images"
  elif len(candidates) == 1:
    key = candidates[0]
  else:
    raise DataError(
        f"{path}: expected arrays 'train' and 'test', or one array 'images';"
        f" got {sorted(arrays) or 'no arrays'}.")
  labels = "labels" if "labels" in arrays else None
  return (key, key), (labels, labels), True


def _load_npz(path, splits, bit_depth):
  arrays = _read_npz(path)
  num_bins = _npz_scalar(arrays, "num_bins", path, minimum=2,
                         maximum=MAX_BINS)
  num_classes = _npz_scalar(arrays, "num_classes", path, minimum=1)
  image_keys, label_keys, split_one = _npz_layout(arrays, path, splits)
  if num_bins is None:
    num_bins = _npz_default_bins({key: arrays[key] for key in image_keys},
                                 path)
  columns = {}  # image array name -> (pixels, labels or None)
  for image_key, label_key in dict.fromkeys(zip(image_keys, label_keys)):
    pixels = _as_pixels(arrays[image_key], f"{path}: array '{image_key}'",
                        num_bins)
    columns[image_key] = (pixels, None if label_key is None else _as_labels(
        arrays[label_key], len(pixels), f"{path}: array '{label_key}'"))
  if split_one:
    pixels, labels = columns[image_keys[0]]
    orders = _split_order(len(pixels), f"{path}: array '{image_keys[0]}'")
    split_arrays = {
        split: (pixels[order], None if labels is None else labels[order])
        for split, order in zip(SPLITS, orders)
    }
  else:
    split_arrays = {
        split: columns[key] for split, key in zip(SPLITS, image_keys)
    }
    train, test = (split_arrays[split][0] for split in SPLITS)
    if train.shape[1:] != test.shape[1:]:
      raise DataError(
          f"{path}: arrays '{image_keys[0]}' and '{image_keys[1]}' hold images "
          f"of different sizes: {train.shape[1:]} and {test.shape[1:]}.")
  if label_keys[0] is not None:
    largest = max(int(classes.max()) for _, classes in split_arrays.values())
    if num_classes is None:
      num_classes = largest + 1
    elif largest >= num_classes:
      raise DataError(f"{path}: class id {largest} is not below "
                      f"'num_classes' = {num_classes}.")
  elif num_classes is not None:
    raise DataError(f"{path}: has 'num_classes' but no labels. "
                    f"{LABELLED_SOURCES}")
  return _in_memory(
      os.path.abspath(path), path, split_arrays, num_bins,
      num_classes=num_classes, bit_depth=bit_depth,
      split_names=None if split_one else dict(zip(SPLITS, image_keys)))


# ---------------------------------------------------------------- PNG folder

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The last 12 bytes of every complete PNG file: the empty IEND chunk.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Bit depths PNG allows for each colour type, and the channels that
# `tf.io.decode_png` gives it (a palette image with a tRNS chunk gives 4).
_PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8),
                   4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclasses.dataclass(frozen=True)
class _PngHeader:
  height: int
  width: int
  channels: int
  bit_depth: int


def _png_header(path):
  """Reads and checks a PNG file's header, not its pixels.

  Reads the signature, the `IHDR` chunk (checksum included), the chunk
  headers up to the first `IDAT` (a palette's `tRNS` adds an alpha channel)
  and the file's last 12 bytes (the `IEND` chunk, missing when the file is
  truncated). Cost: a few small reads, independent of the image size.

  Returns:
    A `_PngHeader`.

  Raises:
    DataError: the file cannot be read or is not a complete PNG image.
  """
  def unreadable(why):
    return DataError(f"{path}: not a readable PNG image ({why}).")

  try:
    with open(path, "rb") as stream:
      head = stream.read(33)
      if head[:8] != _PNG_SIGNATURE:
        raise unreadable("no PNG signature")
      if len(head) < 33 or head[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise unreadable("no IHDR chunk after the signature")
      if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise unreadable("the IHDR chunk's checksum does not match")
      width, height, bit_depth, colour = struct.unpack(">IIBB", head[16:26])
      if bit_depth not in _PNG_BIT_DEPTHS.get(colour, ()):
        raise unreadable(f"colour type {colour} with bit depth {bit_depth} "
                         f"is not a PNG format")
      if not width or not height:
        raise unreadable(f"its size is {height}x{width}")
      channels = _PNG_CHANNELS[colour]
      while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
          raise unreadable("the file ends before its image data")
        length, kind = struct.unpack(">I4s", chunk)
        if kind == b"IDAT":
          break
        if kind == b"tRNS" and colour == 3:
          channels = 4
        stream.seek(length + 4, os.SEEK_CUR)
      stream.seek(-len(_PNG_END), os.SEEK_END)
      if stream.read() != _PNG_END:
        raise unreadable("truncated: the file does not end with the IEND "
                         "chunk")
  except OSError as e:
    raise unreadable(e.strerror or e) from e
  return _PngHeader(height, width, channels, bit_depth)


@dataclasses.dataclass(frozen=True)
class _PngFolderDataset(ImageDataset):
  """PNG files decoded lazily: `read_file` and `decode_png` in a `map`.

  `files[split]` is the tuple of the split's file paths; `bits` the files'
  bit depth (decoded as uint16 when 16, else uint8).
  """
  files: dict = dataclasses.field(repr=False, compare=False)
  bits: int = 8

  @property
  def _source_bins(self):
    return MAX_BINS if self.bits == 16 else 256

  def _read(self, split, labels, shuffle_seed):
    del labels  # A PNG folder has none; `images` refused them.
    files = np.array(self.files[split])
    if shuffle_seed is not None:
      files = files[np.random.default_rng(shuffle_seed).permutation(
          len(files))]
    dtype = tf.uint16 if self.bits == 16 else tf.uint8

    def decode(path):
      image = tf.io.decode_png(tf.io.read_file(path),
                               channels=self.image_shape[2], dtype=dtype)
      return tf.ensure_shape(image, self.image_shape)

    return tf.data.Dataset.from_tensor_slices(files).map(
        decode, num_parallel_calls=tf.data.AUTOTUNE)


def _load_png_folder(path, splits, bit_depth):
  if not os.path.isdir(path):
    raise DataError(f"{path}: no such folder.")
  names = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
  if not names:
    raise DataError(f"{path}: no .png files in this folder.")
  files = [os.path.join(path, name) for name in names]
  source = f"{path} ({len(files)} PNG files such as {files[0]})"
  _fixed_splits(source, splits)
  first = _png_header(files[0])
  for file in files[1:]:
    header = _png_header(file)
    if (header.height, header.width, header.channels) != (
        first.height, first.width, first.channels):
      raise DataError(
          f"{file}: image is {header.height}x{header.width} with "
          f"{header.channels} channel(s), but {files[0]} is "
          f"{first.height}x{first.width} with {first.channels} channel(s); "
          f"all images must have the same size and channels.")
    if header.bit_depth != first.bit_depth:
      raise DataError(
          f"{file}: image is {header.bit_depth}-bit, but {files[0]} is "
          f"{first.bit_depth}-bit; all images must have the same bit depth "
          f"(convert them to one, e.g. all 8-bit or all 16-bit).")
  train, test = _split_order(len(files), path)
  return _PngFolderDataset(
      name=os.path.abspath(path),
      source=source,
      image_shape=(first.height, first.width, first.channels),
      num_bins=256 if bit_depth == 8 or first.bit_depth < 16 else MAX_BINS,
      num_examples={"train": len(train), "test": len(test)},
      num_classes=None,
      split_names=dict(zip(SPLITS, SPLITS)),
      files={"train": tuple(files[i] for i in train),
             "test": tuple(files[i] for i in test)},
      bits=first.bit_depth)


# ---------------------------------------------------------------- tfds


@dataclasses.dataclass(frozen=True)
class _TfdsDataset(ImageDataset):
  """A `tensorflow-datasets` builder's splits, read from its files.

  `image_key` and `label_key` name the features; `feature_bins` is the
  image feature's number of levels (256 for uint8, 65536 for uint16).
  """
  builder: object = dataclasses.field(repr=False, compare=False)
  image_key: str = "image"
  label_key: object = None
  feature_bins: int = 256

  @property
  def _source_bins(self):
    return self.feature_bins

  def _read(self, split, labels, shuffle_seed):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    examples = self.builder.as_dataset(
        split=self.split_names[split],
        shuffle_files=shuffle_seed is not None,
        # No auto-cache: a small split would otherwise be held in memory.
        read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed,
                                    try_autocache=False))

    def select(example):
      image = tf.ensure_shape(example[self.image_key], self.image_shape)
      if labels:
        return image, tf.cast(example[self.label_key], tf.int32)
      return image

    return examples.map(select, num_parallel_calls=tf.data.AUTOTUNE)


def _import_tfds(name):
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DataError(
        f"--dataset {name}: needs the optional package tensorflow-datasets "
        f"(pip install \"tfp_emerging[datasets]\"), which is not installed. "
        f"Without it use --dataset digits, skimage-crops, an .npz file or a "
        f"folder of PNG images.") from e
  return tfds


def _supervised_key(info, index, default):
  keys = info.supervised_keys
  if isinstance(keys, (tuple, list)) and isinstance(keys[index], str):
    return keys[index]
  return default


def _tfds_image(tfds, info, source):
  """`(key, image_shape, levels)` of the builder's image feature."""
  features = info.features
  key = _supervised_key(info, 0, "image")
  names = sorted(features.keys()) if hasattr(features, "keys") else []
  if key not in names:
    raise DataError(f"{source}: has no '{key}' feature; its features are "
                    f"{names}.")
  feature = features[key]
  if not isinstance(feature, tfds.features.Image):
    raise DataError(f"{source}: feature '{key}' is a "
                    f"{type(feature).__name__}, not an image "
                    f"(tfds.features.Image).")
  dtype = np.dtype(feature.np_dtype)
  if dtype not in (np.uint8, np.uint16):
    raise DataError(f"{source}: images are {dtype}, expected uint8 (or "
                    f"uint16 for 16-bit images).")
  shape = tuple(feature.shape)
  if len(shape) != 3 or any(d is None for d in shape):
    raise DataError(
        f"{source}: images have shape {shape}, not one fixed size [H, W, C]; "
        f"use a variant of fixed size (e.g. imagenet_resized/64x64) or resize "
        f"the images into an .npz file.")
  levels = 256 if dtype == np.uint8 else MAX_BINS
  return key, tuple(int(d) for d in shape), levels


def _tfds_labels(tfds, info):
  """`(key, num_classes)` of a ClassLabel label feature, else `(None, None)`."""
  key = _supervised_key(info, 1, "label")
  features = info.features
  if key in (features.keys() if hasattr(features, "keys") else ()):
    feature = features[key]
    if isinstance(feature, tfds.features.ClassLabel) and feature.num_classes:
      return key, int(feature.num_classes)
  return None, None


def _tfds_splits(info, splits, source):
  """`(split_names, num_examples)` from `splits` or the builder's info."""
  available = sorted(info.splits.keys())
  if splits is None:
    if not available:
      raise DataError(
          f"{source}: the builder's info lists no splits, so the train and "
          f"test splits cannot be determined; name them (splits=(TRAIN, "
          f"TEST), --split TRAIN,TEST).")
    tests = [name for name in ("test", "validation") if name in available]
    if "train" not in available or not tests:
      raise DataError(
          f"{source}: has the splits {available}, not 'train' and 'test' (or "
          f"'validation'); name the two to use (splits=(TRAIN, TEST), --split "
          f"TRAIN,TEST), e.g. train[:90%],train[90%:].")
    splits = ("train", tests[0])
  names = dict(zip(SPLITS, splits))
  counts = {}
  for split, name in names.items():
    try:
      counts[split] = int(info.splits[name].num_examples)
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(f"{source}: has no split '{name}' ({e}); its splits are "
                      f"{available}.") from e
    if not counts[split]:
      raise DataError(f"{source}: split '{name}' holds no examples.")
  return names, counts


def _load_tfds(name, data_dir, splits, bit_depth, download, num_levels):
  tfds = _import_tfds(name)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(
        f"--dataset {name}: not an existing file or folder, and "
        f"tensorflow-datasets has no such dataset ({type(e).__name__}: "
        f"{e}).") from e
  source = f"tensorflow-datasets '{name}'"
  # Everything the code of the builder says is checked before a download.
  image_key, image_shape, feature_bins = _tfds_image(tfds, builder.info,
                                                      source)
  if num_levels is not None:
    _check_image_size(image_shape, num_levels, source)
  label_key, num_classes = _tfds_labels(tfds, builder.info)
  if not builder.is_prepared():
    if not download:
      raise DataError(
          f"--dataset {name}: not prepared in {builder.data_dir}, and "
          f"downloading is off. Prepare the data there (or elsewhere, then "
          f"pass its folder as --data-dir).")
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f"--dataset {name}: tensorflow-datasets could not provide the data "
          f"({type(e).__name__}: {e}). Without network access prepare the "
          f"data elsewhere and pass its folder as --data-dir.") from e
  split_names, num_examples = _tfds_splits(builder.info, splits, source)
  return _TfdsDataset(
      name=name,
      source=source,
      image_shape=image_shape,
      num_bins=256 if bit_depth == 8 else feature_bins,
      num_examples=num_examples,
      num_classes=num_classes,
      split_names=split_names,
      builder=builder,
      image_key=image_key,
      label_key=label_key,
      feature_bins=feature_bins)


# ---------------------------------------------------------------- dispatcher


def _is_path(dataset):
  """Whether `dataset` names a file or folder rather than a tfds dataset
  (whose names may hold a "/": `imagenet_resized/64x64`)."""
  return (os.path.exists(dataset) or dataset.lower().endswith(".npz") or
          os.path.isabs(dataset) or dataset.startswith((".", "~")))


def _check_splits(splits):
  if (isinstance(splits, str) or len(splits) != 2 or
      not all(isinstance(s, str) and s for s in splits)):
    raise ValueError(f"`splits` must be a pair of split names (train, test); "
                     f"got {splits!r}.")
  if splits[0] == splits[1]:
    raise ValueError(f"`splits` names the split {splits[0]!r} for both "
                     f"training and testing.")
  return tuple(splits)


def load(dataset, num_levels=None, data_dir=None, splits=None, bit_depth=None,
         download=True):
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
      of an `.npz` file. By default from the source (see the module
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
    raise ValueError(f"`bit_depth` must be None (full depth) or 8; got "
                     f"{bit_depth!r}.")
  if splits is not None:
    splits = _check_splits(splits)
  if dataset in ("digits", natural_images.NAME):
    loader = _load_digits if dataset == "digits" else _load_crops
    _fixed_splits(dataset, splits)
    data = loader(bit_depth)
  elif _is_path(dataset):
    path = os.path.expanduser(dataset)
    if os.path.isdir(path):
      data = _load_png_folder(path, splits, bit_depth)
    else:
      data = _load_npz(path, splits, bit_depth)
  else:
    data = _load_tfds(dataset, data_dir, splits, bit_depth, download,
                      num_levels)
  if num_levels is not None:
    _check_image_size(data.image_shape, num_levels, data.source)
  return data
