"""`tensorflow-datasets` builders, read split by split from prepared files.

Never a whole split in memory. The builder's `image` feature (or the first
supervised key) must be a fixed-size uint8 (or uint16) image; a
`ClassLabel` feature `label` (or the second supervised key) gives labels.
The splits come from the builder's info: `train` and `test`, or `train` and
`validation` when there is no test split (ImageNet); `splits` overrides them
(any split name or slice tensorflow-datasets accepts, e.g.
`("train[:90%]", "train[90%:]")`). Needs the optional extra
`pip install "tfp_emerging[datasets]"` and either network access or the data
already prepared in `data_dir`.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import difflib
import os
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging.data import dataset

__all__ = ["load"]


@dataclasses.dataclass(frozen=True)
class _TfdsDataset(dataset.ImageDataset):
  """A `tensorflow-datasets` builder's splits, read from its files.

  `image_key` and `label_key` name the features; `feature_bins` is the
  image feature's number of levels (256 for uint8, 65536 for uint16).
  """

  builder: Any = dataclasses.field(repr=False, compare=False)
  image_key: str = "image"
  label_key: object = None
  feature_bins: int = 256

  @property
  def _source_bins(self):
    return self.feature_bins

  def _read(self, split, labels, shuffle_seed):
    import tensorflow_datasets as tfds

    examples = self.builder.as_dataset(
      split=self.split_names[split],
      shuffle_files=shuffle_seed is not None,
      # No auto-cache: a small split would otherwise be held in memory.
      read_config=tfds.ReadConfig(
        shuffle_seed=shuffle_seed, try_autocache=False
      ),
    )

    def select(example):
      image = tf.ensure_shape(example[self.image_key], self.image_shape)
      if labels:
        return image, tf.cast(example[self.label_key], tf.int32)
      return image

    return examples.map(select, num_parallel_calls=tf.data.AUTOTUNE)


def _import_tfds(name):
  """`tensorflow_datasets`, imported only when a builder is asked for (an
  optional dependency); `DataError` saying whether it is missing or broken."""
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    if e.name == "tensorflow_datasets":
      raise dataset.DataError(
        f"--dataset {name}: needs the optional package tensorflow-datasets "
        f'(pip install "tfp_emerging[datasets]"), which is not '
        f"installed. Without it use --dataset digits, skimage-crops, an "
        f".npz file or a folder of PNG images."
      ) from e
    raise _broken_install(name, e) from e
  except Exception as e:
    raise _broken_install(name, e) from e
  return tfds


def _broken_install(name, error):
  return dataset.DataError(
    f"--dataset {name}: tensorflow-datasets is installed but does not "
    f"import ({type(error).__name__}: {error}); reinstall it (pip install "
    f"--force-reinstall tensorflow-datasets) or use --dataset digits, "
    f"skimage-crops, an .npz file or a folder of PNG images."
  )


# The most close matches a mistyped dataset name lists.
MAX_SUGGESTIONS = 5


def _check_known(tfds, name, bundled):
  """`DataError` unless `name`'s builder (the part before any `/`) is one
  tensorflow-datasets knows, listing at most `MAX_SUGGESTIONS` close matches
  among its builders and the `bundled` names."""
  if ":" in name:  # a community namespace: only its registry knows
    return
  builder_name = name.split("/")[0]
  known = tfds.list_builders()
  if builder_name in known:
    return
  matches = difflib.get_close_matches(
    builder_name, list(known) + list(bundled), n=MAX_SUGGESTIONS, cutoff=0.6
  )
  hint = (
    f"Did you mean {', '.join(repr(m) for m in matches)}?"
    if matches
    else "Give 'digits', 'skimage-crops', an .npz file, a folder of PNG "
    "images, or a tensorflow-datasets name such as 'mnist'."
  )
  raise dataset.DataError(
    f"--dataset {name}: not an existing file or folder, a bundled dataset "
    f"or a tensorflow-datasets dataset. {hint}"
  )


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
    raise dataset.DataError(
      f"{source}: has no '{key}' feature; its features are {names}."
    )
  feature = features[key]
  if not isinstance(feature, tfds.features.Image):
    raise dataset.DataError(
      f"{source}: feature '{key}' is a "
      f"{type(feature).__name__}, not an image "
      f"(tfds.features.Image)."
    )
  dtype = np.dtype(feature.np_dtype)
  if dtype not in (np.uint8, np.uint16):
    raise dataset.DataError(
      f"{source}: images are {dtype}, expected uint8 (or "
      f"uint16 for 16-bit images)."
    )
  shape = tuple(feature.shape)
  if len(shape) != 3 or any(d is None for d in shape):
    raise dataset.DataError(
      f"{source}: images have shape {shape}, not one fixed size [H, W, C]; "
      f"use a variant of fixed size (e.g. imagenet_resized/64x64) or resize "
      f"the images into an .npz file."
    )
  levels = 256 if dtype == np.uint8 else dataset.MAX_BINS
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
      raise dataset.DataError(
        f"{source}: the builder's info lists no splits, so the train and "
        f"test splits cannot be determined; name them (splits=(TRAIN, "
        f"TEST), --split TRAIN,TEST)."
      )
    tests = [name for name in ("test", "validation") if name in available]
    if "train" not in available or not tests:
      raise dataset.DataError(
        f"{source}: has the splits {available}, not 'train' and 'test' (or "
        f"'validation'); name the two to use (splits=(TRAIN, TEST), --split "
        f"TRAIN,TEST), e.g. train[:90%],train[90%:]."
      )
    splits = ("train", tests[0])
  names = dict(zip(dataset.SPLITS, splits))
  counts = {}
  for split, name in names.items():
    try:
      counts[split] = int(info.splits[name].num_examples)
    except Exception as e:
      raise dataset.DataError(
        f"{source}: has no split '{name}' ({e}); its splits are {available}."
      ) from e
    if not counts[split]:
      raise dataset.DataError(f"{source}: split '{name}' holds no examples.")
  return names, counts


def load(
  name: str,
  data_dir: str | os.PathLike | None = None,
  splits: Sequence[str] | None = None,
  bit_depth: int | None = None,
  download: bool = True,
  num_levels: int | None = None,
  bundled: Sequence[str] = (),
) -> dataset.ImageDataset:
  """The builder `name` as an `ImageDataset` (see the module docstring);
  everything its code states is checked before any download. A name that
  is no builder raises `DataError` listing close matches among the
  builders and the `bundled` dataset names."""
  tfds = _import_tfds(name)
  _check_known(tfds, name, bundled)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:
    raise dataset.DataError(
      f"--dataset {name}: not an existing file or folder, and "
      f"tensorflow-datasets has no such dataset ({type(e).__name__}: "
      f"{e})."
    ) from e
  source = f"tensorflow-datasets '{name}'"
  # Everything the code of the builder says is checked before a download.
  image_key, image_shape, feature_bins = _tfds_image(tfds, builder.info, source)
  if num_levels is not None:
    dataset.check_image_size(image_shape, num_levels, source)
  label_key, num_classes = _tfds_labels(tfds, builder.info)
  if not builder.is_prepared():
    if not download:
      raise dataset.DataError(
        f"--dataset {name}: not prepared in {builder.data_dir}, and "
        f"downloading is off. Prepare the data there (or elsewhere, then "
        f"pass its folder as --data-dir)."
      )
    try:
      builder.download_and_prepare()
    except Exception as e:
      raise dataset.DataError(
        f"--dataset {name}: tensorflow-datasets could not provide the data "
        f"({type(e).__name__}: {e}). Without network access prepare the "
        f"data elsewhere and pass its folder as --data-dir."
      ) from e
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
    feature_bins=feature_bins,
  )
