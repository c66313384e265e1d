"""Every bijector configuration that goes through the test contract.

Variables are set to realistic trained magnitudes: off-centre taps of a few
tenths and log-diagonals spread over about +-0.5, far from the near-identity
initialisation, but with inverses that stay well conditioned on small images.
"""

import functools

import numpy as np
import tensorflow as tf

from tests import contract
from tfp_emerging import bijectors

COMMON_BAD_ARGUMENTS = (
    ({"channels": 0}, "channels"),
    ({"dtype": tf.int32}, "dtype"),
)
CONV_BAD_ARGUMENTS = COMMON_BAD_ARGUMENTS + (
    ({"kernel_size": 0}, "kernel_size"),
    ({"kernel_size": 2}, "kernel_size"),
    ({"dilation": 0}, "dilation"),
)


def trained(shape, scale, seed, dtype):
  return tf.constant(
      np.random.default_rng(seed).normal(0., scale, shape), dtype)


def _autoregressive(dtype, kernel_size, dilation, order, solver, channels=3,
                    **overrides):
  kwargs = dict(channels=channels, kernel_size=kernel_size, dilation=dilation,
                order=order, solver=solver, dtype=dtype)
  kwargs.update(overrides)
  layer = bijectors.AutoregressiveConv2D(**kwargs)
  m = (layer.kernel_size + 1) // 2
  if "kernel" not in overrides:
    layer.kernel.assign(trained(layer.kernel.shape, 0.25 / m, 11, layer.dtype))
    layer.log_diagonal.assign(trained([layer.channels], 0.4, 12, layer.dtype))
  return layer


def _emerging(dtype, kernel_size, dilation, solver, channels=3, **overrides):
  kwargs = dict(channels=channels, kernel_size=kernel_size, dilation=dilation,
                solver=solver, dtype=dtype)
  kwargs.update(overrides)
  layer = bijectors.EmergingConv2D(**kwargs)
  for seed, part in enumerate(layer.bijectors):
    m = (part.kernel_size + 1) // 2
    part.kernel.assign(trained(part.kernel.shape, 0.25 / m, 20 + seed,
                               layer.dtype))
    part.log_diagonal.assign(trained([part.channels], 0.4, 30 + seed,
                                     layer.dtype))
  return layer


def _check_masked(bijector, jacobian):
  """The dense Jacobian is triangular in the mask's order, within the mask."""
  from tests.bijectors import test_autoregressive_conv2d
  test_autoregressive_conv2d.assert_dependency_pattern(bijector, jacobian)


def _check_emerging(bijector, jacobian):
  from tests.bijectors import test_emerging_conv2d
  test_emerging_conv2d.assert_receptive_field(bijector, jacobian)


CASES = []
for k, d, order, solver in [(3, 1, "top_left", "wavefront"),
                            (5, 2, "bottom_right", "wavefront"),
                            (3, 2, "bottom_right", "raster"),
                            (5, 1, "top_left", "raster")]:
  CASES.append(contract.Case(
      name=f"autoregressive-k{k}-d{d}-{order}-{solver}",
      make=functools.partial(_autoregressive, kernel_size=k, dilation=d,
                             order=order, solver=solver),
      bad_arguments=CONV_BAD_ARGUMENTS + (
          ({"order": "sideways"}, "order"), ({"solver": "guess"}, "solver")),
      check_jacobian=_check_masked))
for k, d, solver in [(3, 1, "wavefront"), (5, 2, "wavefront"),
                     (3, 2, "raster"), (5, 1, "raster")]:
  CASES.append(contract.Case(
      name=f"emerging-k{k}-d{d}-{solver}",
      make=functools.partial(_emerging, kernel_size=k, dilation=d,
                             solver=solver),
      bad_arguments=CONV_BAD_ARGUMENTS,
      check_jacobian=_check_emerging))


def _actnorm(dtype, channels=3, **overrides):
  layer = bijectors.ActNorm(channels=channels, dtype=dtype, **overrides)
  if "bias" not in overrides:
    layer.bias.assign(trained([layer.channels], 0.5, 40, layer.dtype))
    layer.log_scale.assign(trained([layer.channels], 0.4, 41, layer.dtype))
  return layer


def _coupling(dtype, channels=3, kernel_size=3, **overrides):
  kwargs = dict(channels=channels, hidden_channels=4, kernel_size=kernel_size,
                dtype=dtype)
  kwargs.update(overrides)
  layer = bijectors.AffineCoupling(**kwargs)
  for seed, (key, weight) in enumerate(sorted(layer.weights.items())):
    if key not in overrides:
      weight.assign(trained(weight.shape, 0.3, 50 + seed, layer.dtype))
  return layer


CASES.append(contract.Case(
    name="actnorm", make=_actnorm, bad_arguments=COMMON_BAD_ARGUMENTS))
for k in (1, 3):
  CASES.append(contract.Case(
      name=f"affine-coupling-k{k}",
      make=functools.partial(_coupling, kernel_size=k),
      bad_arguments=COMMON_BAD_ARGUMENTS + (
          ({"channels": 1}, "channels"),
          ({"hidden_channels": 0}, "hidden_channels"),
          ({"kernel_size": 2}, "kernel_size"))))
