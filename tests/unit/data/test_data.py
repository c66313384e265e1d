"""Tests of `tfp_emerging.data`: every source, streamed, and every error."""

import os
import re
import struct
import sys
from typing import ClassVar
import zlib

import numpy as np
from PIL import Image
import pytest
from sklearn import datasets
import tensorflow as tf
import tensorflow_datasets as tfds

from tfp_emerging import data
from tfp_emerging.data.tfds_mock import mock_tfds


def _write_png(path, image, dtype=np.uint8):
  with open(path, "wb") as f:
    f.write(tf.io.encode_png(np.asarray(image, dtype)).numpy())


def _images(
  n=12, height=8, width=8, channels=1, high=256, seed=0, dtype=np.uint8
):
  return (
    np.random.default_rng(seed)
    .integers(0, high, size=(n, height, width, channels))
    .astype(dtype)
  )


def _collect(dataset, split, labels=False, shuffle_seed=None):
  """Every element of `dataset.images(...)` as numpy (images, labels)."""
  stream = dataset.images(split, labels=labels, shuffle_seed=shuffle_seed)
  count = dataset.num_examples[split]
  elements = stream.batch(count + 1).get_single_element()  # exactly `count`
  images = (elements[0] if labels else elements).numpy()
  assert images.shape[0] == count
  return (images, elements[1].numpy()) if labels else images


def _rows(array):
  return {a.tobytes() for a in array}


def _message(info):
  return str(info.value)


# ---------------------------------------------------------------- digits


def test_digits_are_the_bundled_17_level_images_with_labels_split_apart():
  d = data.load("digits", num_levels=2)
  assert d.num_bins == 17 and d.image_shape == (8, 8, 1)
  assert d.num_examples == {"train": 1500, "test": 297}
  assert d.num_classes == 10 and d.name == "digits"
  train, train_labels = _collect(d, "train", labels=True)
  test, test_labels = _collect(d, "test", labels=True)
  assert train.dtype == np.uint8 and train_labels.dtype == np.int32
  # Exactly scikit-learn's (image, class) pairs, each used once.
  reference = datasets.load_digits()
  expected = sorted(
    bytes(image.astype(np.uint8)) + bytes([label])
    for image, label in zip(reference.images, reference.target)
  )
  together = sorted(
    bytes(image) + bytes([label])
    for image, label in zip(
      np.concatenate([train, test]), np.concatenate([train_labels, test_labels])
    )
  )
  assert together == expected
  # Fixed: the same split every time; a seed reorders it.
  np.testing.assert_array_equal(_collect(data.load("digits"), "test"), test)
  shuffled = _collect(d, "test", shuffle_seed=1)
  assert not np.array_equal(shuffled, test)
  assert sorted(_rows(shuffled)) == sorted(_rows(test))
  np.testing.assert_array_equal(_collect(d, "test", shuffle_seed=1), shuffled)


def test_digits_too_small_for_four_levels_and_fixed_splits():
  with pytest.raises(data.DataError, match=r"8x8.*num_levels=4.*2\*\*4 = 16"):
    data.load("digits", num_levels=4)
  with pytest.raises(data.DataError, match="scikit-learn digits"):
    data.load("digits", num_levels=4)
  with pytest.raises(data.DataError, match="digits: has fixed 'train' and"):
    data.load("digits", splits=("train", "validation"))


def test_bad_arguments():
  d = data.load("digits")
  with pytest.raises(ValueError, match="`split` must be one of"):
    d.images("validation")
  with pytest.raises(ValueError, match="`shuffle_seed` must be None or an"):
    d.images("train", shuffle_seed=0.5)
  with pytest.raises(ValueError, match="`bit_depth` must be None"):
    data.load("digits", bit_depth=16)
  with pytest.raises(ValueError, match="`splits` must be a pair"):
    data.load("digits", splits="train,test")
  with pytest.raises(ValueError, match="'train' for both"):
    data.load("digits", splits=("train", "train"))


# ---------------------------------------------------------------- crops


def test_skimage_crops_is_a_dataset_by_name():
  d = data.load("skimage-crops", num_levels=3)
  assert d.name == "skimage-crops" and "scikit-image" in d.source
  assert d.image_shape == (16, 16, 3) and d.num_bins == 256
  assert d.num_examples == {"train": 4000, "test": 1000}
  assert d.num_classes is None
  crops = data.skimage_crops.load_crops(num_train=4000, num_test=1000)
  np.testing.assert_array_equal(_collect(d, "test"), crops.test)
  first = next(d.images("train").as_numpy_iterator())
  np.testing.assert_array_equal(first, crops.train[0])
  with pytest.raises(data.DataError, match=r"has no class labels.*'digits'"):
    d.images("train", labels=True)


# ---------------------------------------------------------------- .npz


def test_npz_single_array_is_split_into_disjoint_parts(tmp_path):
  path = str(tmp_path / "mine.npz")
  images = _images(n=12)
  np.savez(path, images=images)
  d = data.load(path, num_levels=3)
  assert d.num_bins == 256 and d.image_shape == (8, 8, 1)
  assert d.num_examples == {"train": 10, "test": 2} and d.num_classes is None
  assert d.name == path
  train, test = _collect(d, "train"), _collect(d, "test")
  assert not _rows(train) & _rows(test)
  assert _rows(train) | _rows(test) == _rows(images)
  with pytest.raises(data.DataError, match=f"^{path}: has no class labels"):
    d.images("test", labels=True)


def test_npz_relative_path_is_named_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  np.savez("rel.npz", images=_images(n=4))
  assert data.load("rel.npz").name == str(tmp_path / "rel.npz")


def test_npz_train_test_rank3_num_bins_and_whole_floats(tmp_path):
  path = str(tmp_path / "mine.npz")
  train = _images(n=5, high=4)[..., 0].astype(np.float32)  # [N, H, W] floats
  test = _images(n=3, high=4, seed=1)[..., 0]
  np.savez(path, train=train, test=test, num_bins=np.int64(4))
  d = data.load(path)
  assert d.num_bins == 4 and d.num_examples == {"train": 5, "test": 3}
  assert d.split_names == {"train": "train", "test": "test"}
  train_out = _collect(d, "train")
  assert train_out.shape == (5, 8, 8, 1) and train_out.dtype == np.uint8
  np.testing.assert_array_equal(train_out[..., 0], train)
  np.testing.assert_array_equal(_collect(d, "test")[..., 0], test)


def test_npz_only_array_any_name_and_large_num_bins(tmp_path):
  path = str(tmp_path / "mine.npz")
  np.savez(path, x=np.full((4, 4, 4, 2), 1000, np.int32), num_bins=1024)
  d = data.load(path, num_levels=2)
  assert d.num_bins == 1024
  assert d.images("train").element_spec.dtype == tf.uint16
  assert (_collect(d, "train") == 1000).all()
  # bit_depth=8: 1024 levels become 256 equal bins, 1000 -> 250.
  reduced = data.load(path, bit_depth=8)
  assert reduced.num_bins == 256
  assert (_collect(reduced, "test") == 250).all()


def test_npz_uint16_keeps_16_bits_or_reduces_on_request(tmp_path):
  path = str(tmp_path / "deep.npz")
  values = np.array([0, 1, 255, 256, 257, 4095, 65280, 65535], np.uint16)
  train = np.tile(values, (3, 8, 1))[..., None]  # [3, 8, 8, 1]
  np.savez(path, train=train, test=train[:1])
  d = data.load(path)
  assert d.num_bins == 65536
  out = _collect(d, "train")
  assert out.dtype == np.uint16
  np.testing.assert_array_equal(out, train)  # values under 257 are kept
  eight = data.load(path, bit_depth=8)
  assert eight.num_bins == 256
  out = _collect(eight, "train")
  assert out.dtype == np.uint8
  np.testing.assert_array_equal(
    out[0, 0, :, 0], [0, 0, 0, 1, 1, 15, 255, 255]
  )  # the high byte


def test_npz_images_with_labels_keep_their_pairs(tmp_path):
  path = str(tmp_path / "labelled.npz")
  images = _images(n=12)
  labels = np.arange(12) % 4 + 1  # classes 1..4: num_classes 5
  np.savez(path, images=images, labels=labels)
  d = data.load(path)
  assert d.num_classes == 5
  pairs = {image.tobytes(): label for image, label in zip(images, labels)}
  for split in data.SPLITS:
    split_images, split_labels = _collect(d, split, labels=True)
    assert split_labels.dtype == np.int32
    assert [pairs[i.tobytes()] for i in split_images] == list(split_labels)
    shuffled = _collect(d, split, labels=True, shuffle_seed=2)
    assert [pairs[i.tobytes()] for i in shuffled[0]] == list(shuffled[1])
  np.savez(path, images=images, labels=labels, num_classes=np.int64(7))
  assert data.load(path).num_classes == 7


def test_npz_split_labels_and_named_splits(tmp_path):
  path = str(tmp_path / "named.npz")
  train, valid = _images(n=5), _images(n=3, seed=1)
  np.savez(
    path,
    train=train,
    valid=valid,
    train_labels=np.arange(5),
    valid_labels=np.array([2, 0, 9]),
  )
  d = data.load(path, splits=("train", "valid"))
  assert d.split_names == {"train": "train", "test": "valid"}
  assert d.num_examples == {"train": 5, "test": 3} and d.num_classes == 10
  test_images, test_labels = _collect(d, "test", labels=True)
  np.testing.assert_array_equal(test_images, valid)
  np.testing.assert_array_equal(test_labels, [2, 0, 9])
  with pytest.raises(
    data.DataError,
    match=f"^{path}: no array 'test' for a "
    r"split; the arrays are \['train', 'train_labels'",
  ):
    data.load(path, splits=("train", "test"))


@pytest.mark.parametrize(
  "arrays, problem",
  [
    (dict(images=np.zeros((3, 64), np.uint8)), r"rank 2, shape \(3, 64\)"),
    (dict(images=np.zeros((3, 1, 8, 8, 1), np.uint8)), "rank 5"),
    (dict(images=np.full((3, 8, 8), 0.5)), "non-integer values such as 0.5"),
    (dict(images=np.full((3, 8, 8), np.nan)), "non-integer values such as nan"),
    (dict(images=np.zeros((3, 8, 8), bool)), "dtype bool"),
    (dict(images=np.full((3, 8, 8), "a")), "dtype <U1"),
    (dict(images=np.full((3, 8, 8), -1)), "0..255.*from -1 to -1"),
    (dict(images=np.full((3, 8, 8), 256)), "0..255.*from 256 to 256"),
    (dict(images=np.full((3, 8, 8), 4), num_bins=4), r"0..3 \(num_bins=4\)"),
    (dict(images=np.zeros((3, 8, 8)), num_bins=1.5), "'num_bins' must be"),
    (dict(images=np.zeros((3, 8, 8)), num_bins=70000), "<= 65536"),
    (dict(images=np.zeros((0, 8, 8))), "no pixels"),
    (dict(images=np.zeros((1, 8, 8))), "at least 2 images"),
    (dict(train=np.zeros((3, 8, 8))), "'train' but not 'test'"),
    (
      dict(a=np.zeros((3, 8, 8)), b=np.zeros((3, 8, 8))),
      r"arrays 'train' and 'test', or one array 'images'; got \['a', 'b'\]",
    ),
    (
      dict(train=np.zeros((3, 8, 8)), test=np.zeros((3, 16, 16))),
      "different sizes",
    ),
    (
      dict(train=np.zeros((3, 8, 8)), test=np.full((3, 8, 8), 0.25)),
      "array 'test': pixels must be integers",
    ),
    (dict(images=np.zeros((3, 12, 8))), r"12x8.*num_levels=3.*= 8"),
    (
      dict(
        train=np.zeros((3, 8, 8), np.uint16), test=np.zeros((3, 8, 8), np.uint8)
      ),
      "array 'train' is uint16 .* array 'test' is uint8",
    ),
    # Labels.
    (
      dict(images=np.zeros((3, 8, 8)), labels=np.zeros(2, int)),
      r"array 'labels': expected one label per image, shape \(3,\); got "
      r"shape \(2,\)",
    ),
    (
      dict(images=np.zeros((3, 8, 8)), labels=np.zeros((3, 1), int)),
      r"shape \(3, 1\)",
    ),
    (
      dict(images=np.zeros((3, 8, 8)), labels=np.zeros(3)),
      "labels must be integer class ids; got dtype float64",
    ),
    (
      dict(images=np.zeros((3, 8, 8)), labels=np.array([0, -1, 2])),
      "class ids must lie in 0..2\\*\\*31 - 1; got values from -1 to 2",
    ),
    (
      dict(
        images=np.zeros((3, 8, 8)), labels=np.array([0, 5, 2]), num_classes=3
      ),
      "class id 5 is not below 'num_classes' = 3",
    ),
    (
      dict(images=np.zeros((3, 8, 8)), num_classes=3),
      "has 'num_classes' but no labels",
    ),
    (
      dict(images=np.zeros((3, 8, 8)), labels=np.arange(3), num_classes=0),
      "'num_classes' must be an integer scalar >= 1",
    ),
    (
      dict(
        train=np.zeros((3, 8, 8)), test=np.zeros((3, 8, 8)), labels=np.arange(3)
      ),
      "array 'labels' goes with a single 'images' array.*'train_labels'",
    ),
    (
      dict(
        train=np.zeros((3, 8, 8)),
        test=np.zeros((3, 8, 8)),
        test_labels=np.arange(3),
      ),
      "has array 'test_labels' but not 'train_labels'",
    ),
  ],
)
def test_npz_bad_data_names_file_and_problem(tmp_path, arrays, problem):
  path = str(tmp_path / "bad.npz")
  np.savez(path, **arrays)
  with pytest.raises(data.DataError) as info:
    data.load(path, num_levels=3)
  message = _message(info)
  assert message.startswith(path), message
  assert re.search(problem, message), message


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
  path = str(tmp_path / "pickled.npz")
  np.savez(path, images=np.array([np.zeros((8, 8)), None], dtype=object))
  with pytest.raises(
    data.DataError, match=f"{path}: cannot read without pickle"
  ):
    data.load(path)


def test_npz_missing_and_unreadable_files(tmp_path):
  missing = str(tmp_path / "nothere.npz")
  with pytest.raises(data.DataError, match=f"{missing}: no such file"):
    data.load(missing)
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(
    data.DataError, match=f"{garbage}: not a readable .npz file"
  ):
    data.load(str(garbage))


# ---------------------------------------------------------------- PNG folder


def test_png_folder_rgb_split_decoded_lazily_and_shuffled_by_file(tmp_path):
  images = _images(n=6, channels=3)
  for i, image in enumerate(images):
    _write_png(tmp_path / f"img{i}.png", image)
  (tmp_path / "notes.txt").write_text("ignored")
  d = data.load(str(tmp_path), num_levels=3)
  assert d.num_bins == 256 and d.image_shape == (8, 8, 3)
  assert d.num_examples == {"train": 5, "test": 1} and d.num_classes is None
  train, test = _collect(d, "train"), _collect(d, "test")
  assert _rows(train) | _rows(test) == _rows(images)
  assert not _rows(train) & _rows(test)
  shuffled = _collect(d, "train", shuffle_seed=4)
  assert sorted(_rows(shuffled)) == sorted(_rows(train))
  assert not np.array_equal(shuffled, train)
  # The pixels are read when iterated, not by `load`: a file rewritten
  # after `load` gives its new pixels.
  test_file = next(
    f
    for f in os.listdir(tmp_path)
    if f.endswith(".png") and np.array_equal(images[int(f[3])], test[0])
  )
  _write_png(tmp_path / test_file, 255 - test[0])
  np.testing.assert_array_equal(_collect(d, "test")[0], 255 - test[0])
  with pytest.raises(data.DataError, match="has no class labels"):
    d.images("train", labels=True)
  with pytest.raises(data.DataError, match="has fixed 'train' and 'test'"):
    data.load(str(tmp_path), splits=("a", "b"))


def test_png_folder_of_16_bit_images_keeps_every_level(tmp_path):
  values = np.array([0, 1, 255, 256, 257, 4095, 65280, 65535], np.uint16)
  images = np.stack(
    [np.roll(np.tile(values, (8, 1)), i, axis=1) for i in range(4)]
  )[..., None]  # [4, 8, 8, 1]
  for i, image in enumerate(images):
    _write_png(tmp_path / f"{i}.png", image, np.uint16)
  d = data.load(str(tmp_path))
  assert d.num_bins == 65536 and d.image_shape == (8, 8, 1)
  train, test = _collect(d, "train"), _collect(d, "test")
  assert train.dtype == np.uint16
  assert _rows(np.concatenate([train, test])) == _rows(images)
  eight = data.load(str(tmp_path), bit_depth=8)
  assert eight.num_bins == 256
  reduced = _collect(eight, "train")
  assert reduced.dtype == np.uint8
  np.testing.assert_array_equal(reduced, train >> 8)


def test_png_folder_mixed_bit_depths_names_a_file_of_each(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  _write_png(tmp_path / "b.png", np.zeros((8, 8, 1)), np.uint16)
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path))
  message = _message(info)
  assert message.startswith(
    f"{tmp_path / 'b.png'}: image is 16-bit, but {tmp_path / 'a.png'} is 8-bit"
  ), message


def test_png_folder_palette_with_transparency_has_4_channels(tmp_path):
  rgb = _images(n=2, channels=3)
  for i, image in enumerate(rgb):
    palette = Image.fromarray(image).quantize(colors=8)
    palette.save(tmp_path / f"{i}.png", transparency=0)
  d = data.load(str(tmp_path))
  assert d.image_shape == (8, 8, 4)
  expected = tf.io.decode_png((tmp_path / "0.png").read_bytes()).numpy()
  assert _rows(np.concatenate([_collect(d, s) for s in data.SPLITS])) >= {
    expected.tobytes()
  }


def test_png_folder_of_1_bit_images_has_2_levels(tmp_path):
  # Black-and-white images (PIL's mode "1": 1-bit grey PNGs), which
  # `tf.io.decode_png` gives as 0 and 255, are modelled as 2 levels.
  bits = np.random.default_rng(0).integers(0, 2, (6, 8, 8)).astype(bool)
  for i, image in enumerate(bits):
    Image.fromarray(image).save(tmp_path / f"{i}.png")
  assert (tmp_path / "0.png").read_bytes()[24] == 1  # IHDR bit depth
  d = data.load(str(tmp_path))
  assert d.num_bins == 2 and d.image_shape == (8, 8, 1)
  pixels = np.concatenate([_collect(d, s) for s in data.SPLITS])
  assert _rows(pixels) == _rows(bits[..., None].astype(np.uint8))


def test_png_folder_broken_image_data_is_named_by_load(tmp_path):
  # Header, checksums and IEND intact; the compressed pixels are not.
  png = _complete_png()
  at = png.index(b"IDAT") + 4
  (length,) = struct.unpack(">I", png[at - 8 : at - 4])
  data_bytes = png[at : at + 2] + bytes(
    b ^ 0xFF for b in png[at + 2 : at + length]
  )
  crc = struct.pack(">I", zlib.crc32(b"IDAT" + data_bytes))
  broken = png[:at] + data_bytes + crc + png[at + length + 4 :]
  assert broken.endswith(png[-12:]) and len(broken) == len(png)
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  (tmp_path / "b.png").write_bytes(broken)
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path))
  message = _message(info)
  assert message.startswith(f"{tmp_path / 'b.png'}: not a readable PNG image")
  assert "image data cannot be decoded" in message, message
  assert "{{" not in message and "[Op:" not in message


def test_png_folder_mixed_sizes_names_the_odd_file(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  _write_png(tmp_path / "b.png", np.zeros((16, 8, 1)))
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path))
  message = _message(info)
  assert message.startswith(str(tmp_path / "b.png"))
  assert "16x8" in message and "a.png is 8x8" in message


def test_png_folder_mixed_channels_names_the_odd_file(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  _write_png(tmp_path / "b.png", np.zeros((8, 8, 3)))
  with pytest.raises(
    data.DataError, match=f"{tmp_path / 'b.png'}: image is 8x8 with 3 "
  ):
    data.load(str(tmp_path))


def _complete_png():
  return tf.io.encode_png(np.zeros((8, 8, 1), np.uint8)).numpy()


@pytest.mark.parametrize(
  "content, problem",
  [
    (b"\x89PNG garbage", "no PNG signature"),
    (_complete_png()[:20], "no IHDR chunk"),
    (
      _complete_png()[:29] + b"\x00\x00\x00\x00" + _complete_png()[33:],
      "checksum",
    ),
    (_complete_png()[:40], "ends before its image data"),
    (_complete_png()[:-12], "truncated: the file does not end with the IEND"),
    (None, "Is a directory"),
  ],
)
def test_png_folder_unreadable_file_is_named(tmp_path, content, problem):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  bad = tmp_path / "b.png"
  if content is None:
    bad.mkdir()
  else:
    bad.write_bytes(content)
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path))
  message = _message(info)
  assert message.startswith(f"{bad}: not a readable PNG image ("), message
  assert problem in message, message


def test_png_folder_empty_and_size_not_divisible(tmp_path):
  with pytest.raises(data.DataError, match=r"no \.png files in this folder"):
    data.load(str(tmp_path))
  for i in range(3):
    _write_png(tmp_path / f"{i}.png", np.zeros((8, 12, 1)))
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path), num_levels=3)
  assert f"such as {tmp_path / '0.png'}" in _message(info)
  assert "8x12" in _message(info) and "2**3 = 8" in _message(info)
  assert data.load(str(tmp_path), num_levels=2).image_shape == (8, 12, 1)


def test_path_that_does_not_exist(tmp_path):
  path = str(tmp_path / "missing_folder") + os.sep
  with pytest.raises(data.DataError, match="no such file"):
    data.load(path)


# ---------------------------------------------------------------- tfds


class TfpEmergingOddImages(tfds.core.GeneratorBasedBuilder):
  """A tensorflow-datasets builder whose images break one rule each."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS: ClassVar[list] = [
    tfds.core.BuilderConfig(name=name)
    for name in ("uint16", "float32", "tensor", "unlabelled", "renamed")
  ]

  def _info(self):
    image = {
      "uint16": tfds.features.Image(shape=(8, 8, 1), dtype=np.uint16),
      "float32": tfds.features.Image(shape=(8, 8, 1), dtype=np.float32),
      "tensor": tfds.features.Tensor(shape=(8, 8), dtype=np.uint8),
      "unlabelled": tfds.features.Image(shape=(8, 8, 3)),
      "renamed": tfds.features.Image(shape=(8, 8, 3)),
    }[self.builder_config.name]
    features = {"image": image}
    if self.builder_config.name == "renamed":
      features = {"pixels": features.pop("image")}
    if self.builder_config.name != "unlabelled":
      features["label"] = tfds.features.ClassLabel(num_classes=3)
    return tfds.core.DatasetInfo(
      builder=self, features=tfds.features.FeaturesDict(features)
    )

  def _split_generators(self, dl_manager):
    raise NotImplementedError("only ever mocked")

  def _generate_examples(self):
    raise NotImplementedError("only ever mocked")


def _tfds_reference(name, split, shuffle_seed=None):
  """The split's images and labels as tensorflow-datasets itself reads
  them (the same mocked builder)."""
  builder = tfds.builder(name)
  examples = builder.as_dataset(
    split=split,
    shuffle_files=shuffle_seed is not None,
    read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed),
  )
  examples = list(examples.as_numpy_iterator())
  return (
    np.stack([e["image"] for e in examples]),
    np.array([e["label"] for e in examples]),
  )


@pytest.mark.parametrize(
  "name, shape, test_split",
  [
    ("mnist", (28, 28, 1), "test"),
    ("cifar10", (32, 32, 3), "test"),
    ("imagenet_resized/32x32", (32, 32, 3), "validation"),
  ],
)
def test_tfds_real_builders_stream_their_splits(name, shape, test_split):
  with mock_tfds(name, {"train": 6, test_split: 4}):
    d = data.load(name, num_levels=2)
    assert d.name == name and d.source == f"tensorflow-datasets '{name}'"
    assert d.image_shape == shape and d.num_bins == 256
    assert d.num_examples == {"train": 6, "test": 4}
    assert d.split_names == {"train": "train", "test": test_split}
    assert d.num_classes == (1000 if "imagenet" in name else 10)
    images = d.images("train", labels=True)
    assert images.element_spec == (
      tf.TensorSpec(shape, tf.uint8),
      tf.TensorSpec((), tf.int32),
    )
    for split, source_split in d.split_names.items():
      expected = _tfds_reference(name, source_split)
      got = _collect(d, split, labels=True)
      np.testing.assert_array_equal(got[0], expected[0])
      np.testing.assert_array_equal(got[1], expected[1])
    shuffled = _collect(d, "train", labels=True, shuffle_seed=5)
    expected = _tfds_reference(name, "train", shuffle_seed=5)
    np.testing.assert_array_equal(shuffled[0], expected[0])
    assert not np.array_equal(shuffled[0], _collect(d, "train"))


def test_tfds_split_override_and_unknown_splits():
  name = "imagenet_resized/32x32"
  with mock_tfds(name, {"train": 12, "validation": 3}):
    d = data.load(name, splits=("train[:75%]", "train[75%:]"))
    assert d.num_examples == {"train": 9, "test": 3}
    assert d.split_names == {"train": "train[:75%]", "test": "train[75%:]"}
    assert len(_collect(d, "test")) == 3
    with pytest.raises(
      data.DataError,
      match=r"'imagenet_resized/32x32': has no split 'test' "
      r".*its splits are \['train', 'validation'\]",
    ):
      data.load(name, splits=("train", "test"))
  with (
    mock_tfds("mnist", {"train": 5}),
    pytest.raises(
      data.DataError,
      match=r"'mnist': has the splits \['train'\], not "
      r"'train' and 'test' .*--split",
    ),
  ):
    data.load("mnist")


def test_tfds_splits_that_cannot_be_determined():
  # Mocked from the code alone, the builder's info lists no splits.
  with (
    tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE),
    pytest.raises(
      data.DataError, match="'cifar10': the builder's info lists no splits"
    ),
  ):
    data.load("cifar10")


def test_tfds_16_bit_images_and_unlabelled_images():
  name = "tfp_emerging_odd_images/uint16"
  with mock_tfds(name, {"train": 4, "test": 2}, max_value=65535):
    d = data.load(name)
    assert d.num_bins == 65536 and d.num_classes == 3
    images = _collect(d, "train")
    assert images.dtype == np.uint16 and images.max() > 255
    np.testing.assert_array_equal(images, _tfds_reference(name, "train")[0])
    eight = data.load(name, bit_depth=8)
    assert eight.num_bins == 256
    np.testing.assert_array_equal(_collect(eight, "train"), images >> 8)
  name = "tfp_emerging_odd_images/unlabelled"
  with mock_tfds(name, {"train": 4, "test": 2}):
    d = data.load(name)
    assert d.num_classes is None and len(_collect(d, "test")) == 2
    with pytest.raises(
      data.DataError,
      match=r"odd_images/unlabelled': has no class labels\. "
      r"Labels come with 'digits', with \.npz files",
    ):
      d.images("train", labels=True)


@pytest.mark.parametrize(
  "name, problem",
  [
    ("tfp_emerging_odd_images/float32", "images are float32, expected uint8"),
    (
      "tfp_emerging_odd_images/tensor",
      "feature 'image' is a Tensor, not an image",
    ),
    (
      "tfp_emerging_odd_images/renamed",
      r"has no 'image' feature; its features are \['label', 'pixels'\]",
    ),
    ("imdb_reviews", "feature 'text' is a Text, not an image"),
    ("imagenet2012", r"images have shape \(None, None, 3\), not one fixed"),
    ("mnist", r"28x28.*num_levels=3"),
  ],
)
def test_tfds_bad_image_features_fail_before_any_download(
  tmp_path, name, problem
):
  # No mock, an empty data folder: only the builder's code is read.
  with pytest.raises(data.DataError) as info:
    data.load(name, num_levels=3, data_dir=str(tmp_path))
  assert _message(info).startswith(f"tensorflow-datasets '{name}': ")
  assert re.search(problem, _message(info)), _message(info)
  assert not os.listdir(tmp_path)


def test_tfds_data_not_prepared_or_not_downloadable(tmp_path, monkeypatch):
  with pytest.raises(
    data.DataError,
    match=r"--dataset mnist: not prepared in .*downloading is off.*--data-dir",
  ):
    data.load("mnist", data_dir=str(tmp_path), download=False)

  def no_network(self, *args, **kwargs):
    raise ConnectionError(f"cannot reach the server for {self.name}")

  monkeypatch.setattr(
    tfds.core.DatasetBuilder, "download_and_prepare", no_network
  )
  with pytest.raises(
    data.DataError,
    match=r"--dataset cifar10: tensorflow-datasets could not "
    r"provide.*ConnectionError.*--data-dir",
  ):
    data.load("cifar10", data_dir=str(tmp_path))


def test_tfds_unknown_name_and_missing_package(monkeypatch):
  with pytest.raises(
    data.DataError,
    match="--dataset no_such_set: not an existing file or "
    "folder, a bundled dataset or a tensorflow-datasets "
    "dataset",
  ):
    data.load("no_such_set")
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(data.DataError) as info:
    data.load("mnist", num_levels=2)
  assert "--dataset mnist" in _message(info)
  assert 'pip install "tfp_emerging[datasets]"' in _message(info)


def test_a_mistyped_dataset_lists_at_most_five_close_matches():
  with pytest.raises(data.DataError) as info:
    data.load("cifar1O")
  message = str(info.value)
  suggested = re.findall(r"'([\w-]+)'", message.split("Did you mean")[1])
  assert suggested[0] == "cifar10" and 1 <= len(suggested) <= 5
  assert len(message) < 400
  with pytest.raises(data.DataError, match="Did you mean 'digits'"):
    data.load("digts")


def test_a_broken_tensorflow_datasets_is_not_blamed_on_the_network(
  tmp_path, monkeypatch
):
  package = tmp_path / "tensorflow_datasets"
  package.mkdir()
  (package / "__init__.py").write_text(
    'raise ImportError(\'cannot import name "x" from "etils"\', '
    "name='etils')\n"
  )
  for name in [n for n in sys.modules if n.startswith("tensorflow_datasets")]:
    monkeypatch.delitem(sys.modules, name)
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(data.DataError) as info:
    data.load("mnist")
  assert "installed but does not import" in str(info.value)
  assert "network" not in str(info.value)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(data.DataError, match="which is not installed"):
    data.load("mnist")
