"""Fixtures shared by several test modules."""

import numpy as np
import pytest

from tfp_emerging import data


def _first_examples(dataset, split, count):
  """The first `count` images and labels of `dataset.images(split)`."""
  images, labels = zip(
    *dataset.images(split, labels=True).take(count).as_numpy_iterator()
  )
  return np.stack(images), np.array(labels)


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
  """96 training and 32 test digits (17 grey levels, 10 classes) as an .npz
  file: arrays `train`, `test`, `train_labels`, `test_labels`, `num_bins`,
  `num_classes`."""
  digits = data.load("digits")
  train, train_labels = _first_examples(digits, "train", 96)
  test, test_labels = _first_examples(digits, "test", 32)
  path = str(tmp_path_factory.mktemp("data") / "digits_small.npz")
  np.savez(
    path,
    train=train,
    test=test,
    train_labels=train_labels,
    test_labels=test_labels,
    num_bins=np.int64(17),
    num_classes=np.int64(10),
  )
  return path
