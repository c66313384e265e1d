"""Fixtures shared by several test modules."""

import numpy as np
import pytest

from tests.testlib import runs


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory):
  """96 training and 32 test digits (17 grey levels, 10 classes) as an .npz
  file, written once for the session: arrays `train`, `test`,
  `train_labels`, `test_labels`, `num_bins`, `num_classes`."""
  train, train_labels = runs.first_examples(96)
  test, test_labels = runs.first_examples(32, "test")
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
