"""Fixtures shared by several test modules."""

import numpy as np
import pytest

from tfp_emerging import data


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
  """96 training and 32 test digits (17 grey levels) as an .npz file."""
  digits = data.load_digits()
  path = str(tmp_path_factory.mktemp("data") / "digits_small.npz")
  np.savez(path, train=digits.train[:96], test=digits.test[:32],
           num_bins=np.int64(17))
  return path
