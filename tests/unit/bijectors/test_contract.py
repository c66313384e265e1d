"""Runs the whole test contract (tests/testlib/contract.py) on every
registered case."""

import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import registry

# float64 repeats float32's checks at twice the cost: `make test-unit` runs
# float32 only.
DTYPES = [tf.float32, pytest.param(tf.float64, marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=registry.CASES, ids=repr)
def case(request):
  return request.param


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("check", sorted(contract.CHECKS))
def test_contract(case, dtype, check):
  bijector = case.make(dtype)
  contract.CHECKS[check](bijector, case.event_shape, dtype)


@pytest.mark.slow
def test_gradients_compile(case):
  """In float32 only: XLA's float64 convolutions on CPU crawl."""
  contract.check_gradients_compile(
    case.make(tf.float32), case.event_shape, tf.float32
  )


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize("check", sorted(contract.INPUT_CHECKS))
def test_bad_input(case, dtype, check):
  contract.INPUT_CHECKS[check](case, case.make(dtype), dtype)


# The run-time shape checks depend on neither the dtype nor the kernel size,
# dilation or order, and tracing is slow: float32, and one case per layer and
# solver (dilated: the solvers reshape by the channel count). Traced with an
# unknown image size, PeriodicConv2D's "auto" route is the FFT.
UNKNOWN_SHAPE_CASES = registry.cases_named(
  "actnorm",
  "autoregressive-k5-d2-bottom_right-wavefront",
  "autoregressive-k3-d2-bottom_right-raster",
  "emerging-k5-d2-wavefront",
  "periodic-k3-5x6-fft",
  "conv1x1-qr",
  "affine-coupling-k3",
)


@pytest.mark.parametrize("shape_case", UNKNOWN_SHAPE_CASES, ids=repr)
def test_unknown_channels(shape_case):
  contract.check_unknown_channels(shape_case, None, tf.float32)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
def test_jacobian_structure(case, dtype):
  contract.check_jacobian_structure(case, case.make(dtype), dtype)


@pytest.mark.parametrize("check", sorted(contract.TFP_CHECKS))
def test_tfp_contract(case, check):
  """In float32 only: the dtype changes none of it, and tracing costs."""
  contract.TFP_CHECKS[check](
    case.make(tf.float32), case.event_shape, tf.float32
  )


# The affine layers, one case per layer and route: not the coupling, whose
# Jacobian depends on `x` (`check_constant_jacobian` checks that each says
# which it is) and for which TFP has no `mean()` or `mode()`; the
# sequential solvers once (sampling 2000 images through the raster solve
# costs most).
AFFINE_CASES = registry.cases_named(
  "actnorm",
  "autoregressive-k5-d2-bottom_right-wavefront",
  "emerging-k5-d2-wavefront",
  "periodic-k3-5x6-fft",
  "periodic-k4-4x7-auto",
  "conv1x1-qr",
  "conv1x1-lu",
  "conv1x1-plain",
)


@pytest.mark.parametrize("affine_case", AFFINE_CASES, ids=repr)
def test_mean_and_mode(affine_case):
  """In float64 only: the sampling is the cost, the dtype changes nothing."""
  contract.check_mean_and_mode(
    affine_case.make(tf.float64), affine_case.event_shape, tf.float64
  )
