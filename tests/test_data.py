"""Tests of `tfp_emerging.data`: the bundled digits, user data, every error."""

import os
import re
import sys
import types

import numpy as np
import pytest
import tensorflow as tf
from sklearn import datasets

from tfp_emerging import data


def _write_png(path, image):
  with open(path, "wb") as f:
    f.write(tf.io.encode_png(np.asarray(image, np.uint8)).numpy())


def _images(n=12, height=8, width=8, channels=1, high=256, seed=0):
  return np.random.default_rng(seed).integers(
      0, high, size=(n, height, width, channels)).astype(np.uint8)


def _rows(array):
  return {a.tobytes() for a in array}


# ---------------------------------------------------------------- digits


def test_digits_are_the_bundled_17_level_images_split_without_overlap():
  d = data.load("digits", num_levels=2)
  assert d.num_bins == 17 and d.image_shape == (8, 8, 1)
  assert d.train.shape == (1500, 8, 8, 1) and d.test.shape == (297, 8, 8, 1)
  assert d.train.dtype == np.uint8
  # Exactly scikit-learn's images, each used once: the split is a partition.
  reference = datasets.load_digits().images.astype(np.uint8)[..., None]
  together = np.concatenate([d.train, d.test])
  assert sorted(map(bytes, together.reshape(1797, -1))) == sorted(
      map(bytes, reference.reshape(1797, -1)))
  assert together.min() == 0 and together.max() == 16
  # Fixed: the same split every time.
  again = data.load_digits()
  np.testing.assert_array_equal(again.test, d.test)


def test_digits_too_small_for_four_levels():
  with pytest.raises(data.DataError, match=r"8x8.*num_levels=4.*2\*\*4 = 16"):
    data.load("digits", num_levels=4)
  with pytest.raises(data.DataError, match="scikit-learn digits"):
    data.load("digits", num_levels=4)


# ---------------------------------------------------------------- .npz


def test_npz_single_array_is_split_into_disjoint_parts(tmp_path):
  path = str(tmp_path / "mine.npz")
  images = _images(n=12)
  np.savez(path, images=images)
  d = data.load(path, num_levels=3)
  assert d.num_bins == 256 and d.image_shape == (8, 8, 1)
  assert d.train.shape[0] == 10 and d.test.shape[0] == 2
  assert not _rows(d.train) & _rows(d.test)
  assert _rows(d.train) | _rows(d.test) == _rows(images)


def test_npz_train_test_rank3_num_bins_and_whole_floats(tmp_path):
  path = str(tmp_path / "mine.npz")
  train = _images(n=5, high=4)[..., 0].astype(np.float32)  # [N, H, W] floats
  test = _images(n=3, high=4, seed=1)[..., 0]
  np.savez(path, train=train, test=test, num_bins=np.int64(4))
  d = data.load(path)
  assert d.num_bins == 4
  assert d.train.shape == (5, 8, 8, 1) and d.train.dtype == np.uint8
  np.testing.assert_array_equal(d.train[..., 0], train)
  np.testing.assert_array_equal(d.test[..., 0], test)


def test_npz_only_array_any_name_and_large_num_bins(tmp_path):
  path = str(tmp_path / "mine.npz")
  np.savez(path, x=np.full((4, 4, 4, 2), 1000, np.int32), num_bins=1024)
  d = data.load(path, num_levels=2)
  assert d.num_bins == 1024 and d.train.dtype == np.int32


@pytest.mark.parametrize("arrays, problem", [
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
    (dict(images=np.zeros((0, 8, 8))), "no pixels"),
    (dict(images=np.zeros((1, 8, 8))), "at least 2 images"),
    (dict(train=np.zeros((3, 8, 8))), "'train' but not 'test'"),
    (dict(a=np.zeros((3, 8, 8)), b=np.zeros((3, 8, 8))),
     r"arrays 'train' and 'test', or one array 'images'; got \['a', 'b'\]"),
    (dict(train=np.zeros((3, 8, 8)), test=np.zeros((3, 16, 16))),
     "different sizes"),
    (dict(train=np.zeros((3, 8, 8)), test=np.full((3, 8, 8), 0.25)),
     "array 'test': pixels must be integers"),
    (dict(images=np.zeros((3, 12, 8))), r"12x8.*num_levels=3.*= 8"),
])
def test_npz_bad_data_names_file_and_problem(tmp_path, arrays, problem):
  path = str(tmp_path / "bad.npz")
  np.savez(path, **arrays)
  with pytest.raises(data.DataError) as info:
    data.load(path, num_levels=3)
  message = str(info.value)
  assert message.startswith(path), message
  assert re.search(problem, message), message


def test_npz_object_array_is_refused_without_unpickling(tmp_path):
  path = str(tmp_path / "pickled.npz")
  np.savez(path, images=np.array([np.zeros((8, 8)), None], dtype=object))
  with pytest.raises(data.DataError, match=f"{path}: cannot read without "
                     "pickle"):
    data.load(path)


def test_npz_missing_and_unreadable_files(tmp_path):
  missing = str(tmp_path / "nothere.npz")
  with pytest.raises(data.DataError, match=f"{missing}: no such file"):
    data.load(missing)
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(data.DataError,
                     match=f"{garbage}: not a readable .npz file"):
    data.load(str(garbage))


# ---------------------------------------------------------------- PNG folder


def test_png_folder_grey_and_rgb(tmp_path):
  images = _images(n=6, channels=3)
  for i, image in enumerate(images):
    _write_png(tmp_path / f"img{i}.png", image)
  (tmp_path / "notes.txt").write_text("ignored")
  d = data.load(str(tmp_path), num_levels=3)
  assert d.num_bins == 256 and d.image_shape == (8, 8, 3)
  assert d.train.shape[0] + d.test.shape[0] == 6 and d.test.shape[0] == 1
  assert _rows(d.train) | _rows(d.test) == _rows(images)
  assert not _rows(d.train) & _rows(d.test)


def test_png_folder_mixed_sizes_names_the_odd_file(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  _write_png(tmp_path / "b.png", np.zeros((16, 8, 1)))
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path))
  message = str(info.value)
  assert message.startswith(str(tmp_path / "b.png"))
  assert "16x8" in message and "a.png is 8x8" in message


def test_png_folder_mixed_channels_names_the_odd_file(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  _write_png(tmp_path / "b.png", np.zeros((8, 8, 3)))
  with pytest.raises(data.DataError,
                     match=f"{tmp_path / 'b.png'}: image is 8x8 with 3 "):
    data.load(str(tmp_path))


def test_png_folder_corrupt_file(tmp_path):
  _write_png(tmp_path / "a.png", np.zeros((8, 8, 1)))
  (tmp_path / "b.png").write_bytes(b"\x89PNG garbage")
  with pytest.raises(data.DataError,
                     match=f"{tmp_path / 'b.png'}: not a readable PNG image"):
    data.load(str(tmp_path))


def test_png_folder_empty_and_size_not_divisible(tmp_path):
  with pytest.raises(data.DataError, match="no .png files in this folder"):
    data.load(str(tmp_path))
  for i in range(3):
    _write_png(tmp_path / f"{i}.png", np.zeros((8, 12, 1)))
  with pytest.raises(data.DataError) as info:
    data.load(str(tmp_path), num_levels=3)
  assert f"such as {tmp_path / '0.png'}" in str(info.value)
  assert "8x12" in str(info.value) and "2**3 = 8" in str(info.value)
  assert data.load(str(tmp_path), num_levels=2).image_shape == (8, 12, 1)


def test_path_that_does_not_exist(tmp_path):
  path = str(tmp_path / "missing_folder") + os.sep
  with pytest.raises(data.DataError, match="no such file"):
    data.load(path)


# ---------------------------------------------------------------- tfds


def test_tfds_missing_package_gives_install_hint(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(data.DataError) as info:
    data.load("mnist", num_levels=2)
  assert "--dataset mnist" in str(info.value)
  assert 'pip install "tfp_emerging[datasets]"' in str(info.value)


def _fake_tfds(load):
  module = types.ModuleType("tensorflow_datasets")
  module.load = load
  module.as_numpy = lambda split: {k: np.asarray(v) for k, v in split.items()}
  return module


def test_tfds_data_that_cannot_be_had(monkeypatch):
  def load(name, **kwargs):
    raise ConnectionError(f"cannot reach the server for {name}")
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(load))
  with pytest.raises(data.DataError,
                     match="--dataset cifar10: tensorflow-datasets could not "
                     "provide.*ConnectionError.*--data-dir"):
    data.load("cifar10")


def test_tfds_splits_become_pixels(monkeypatch):
  calls = []

  def load(name, split, batch_size, data_dir, download):
    calls.append((name, split, batch_size, data_dir, download))
    return [{"image": _images(n=4, height=28, width=28), "label": np.arange(4)},
            {"image": _images(n=2, height=28, width=28, seed=1)}]
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(load))
  d = data.load("mnist", num_levels=2, data_dir="/some/dir", download=False)
  assert calls == [("mnist", ["train", "test"], -1, "/some/dir", False)]
  assert d.num_bins == 256 and d.image_shape == (28, 28, 1)
  assert d.train.shape[0] == 4 and d.test.shape[0] == 2
  with pytest.raises(data.DataError,
                     match="tensorflow-datasets 'mnist'.*28x28.*num_levels=3"):
    data.load("mnist", num_levels=3)


def test_tfds_without_uint8_images(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(
      lambda name, **kw: [{"text": np.zeros(3)}, {"text": np.zeros(3)}]))
  with pytest.raises(data.DataError, match="split 'train' has no 'image'"):
    data.load("imdb_reviews")
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds(
      lambda name, **kw: [{"image": np.zeros((2, 8, 8, 1), np.float32)}] * 2))
  with pytest.raises(data.DataError, match="images are float32, expected"):
    data.load("floaty")
