"""Runs the whole test contract (tests/contract.py) on every registered case."""

import pytest
import tensorflow as tf

from tests import contract
from tests.bijectors import registry

DTYPES = [tf.float32, tf.float64]


@pytest.fixture(scope="module", params=registry.CASES, ids=repr)
def case(request):
  return request.param


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("check", sorted(contract.CHECKS))
def test_contract(case, dtype, check):
  bijector = case.make(dtype)
  contract.CHECKS[check](bijector, case.event_shape, dtype)


def test_gradients_compile(case):
  """In float32 only: XLA's float64 convolutions on CPU crawl."""
  contract.check_gradients_compile(case.make(tf.float32), case.event_shape,
                                   tf.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_bad_input(case, dtype):
  contract.check_bad_input(case, case.make(dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_jacobian_structure(case, dtype):
  contract.check_jacobian_structure(case, case.make(dtype), dtype)
