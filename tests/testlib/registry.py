"""Every bijector configuration that goes through the test contract.

Variables are set to realistic trained magnitudes: off-centre taps of a few
tenths and log-diagonals spread over about +-0.5, far from the near-identity
initialisation, but with inverses that stay well conditioned on small images.
"""

import functools

import numpy as np
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import structure
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
    np.random.default_rng(seed).normal(0.0, scale, shape), dtype
  )


def build(cls, arguments):
  """`cls` called with a maker's `arguments`, its `locals()` on entry: its
  parameters, named as `cls`'s, with those of `arguments["overrides"]` (a
  case's constructor overrides, e.g. a bad argument) put over the others."""
  arguments = dict(arguments)
  overrides = arguments.pop("overrides")
  return cls(**{**arguments, **overrides})


def autoregressive(
  dtype, kernel_size, dilation, order, solver, channels=3, **overrides
):
  layer = build(bijectors.AutoregressiveConv2D, locals())
  m = (layer.kernel_size + 1) // 2
  if "kernel" not in overrides:
    layer.kernel.assign(trained(layer.kernel.shape, 0.25 / m, 11, layer.dtype))
    layer.log_diagonal.assign(trained([layer.channels], 0.4, 12, layer.dtype))
  return layer


def emerging(dtype, kernel_size, dilation, solver, channels=3, **overrides):
  layer = build(bijectors.EmergingConv2D, locals())
  for seed, part in enumerate(layer.bijectors):
    m = (part.kernel_size + 1) // 2
    part.kernel.assign(
      trained(part.kernel.shape, 0.25 / m, 20 + seed, layer.dtype)
    )
    part.log_diagonal.assign(
      trained([part.channels], 0.4, 30 + seed, layer.dtype)
    )
  return layer


CASES = []
for k, d, order, solver in [
  (3, 1, "top_left", "auto"),
  (5, 2, "bottom_right", "wavefront"),
  (3, 2, "bottom_right", "raster"),
  (5, 1, "top_left", "raster"),
  (3, 2, "bottom_right", "fft"),
]:
  CASES.append(
    contract.Case(
      name=f"autoregressive-k{k}-d{d}-{order}-{solver}",
      make=functools.partial(
        autoregressive, kernel_size=k, dilation=d, order=order, solver=solver
      ),
      bad_arguments=CONV_BAD_ARGUMENTS
      + (({"order": "sideways"}, "order"), ({"solver": "guess"}, "solver")),
      check_jacobian=structure.assert_dependency_pattern,
    )
  )
for k, d, solver in [
  (3, 1, "auto"),
  (5, 2, "wavefront"),
  (3, 2, "raster"),
  (5, 1, "raster"),
  (3, 1, "fft"),
]:
  CASES.append(
    contract.Case(
      name=f"emerging-k{k}-d{d}-{solver}",
      make=functools.partial(
        emerging, kernel_size=k, dilation=d, solver=solver
      ),
      bad_arguments=CONV_BAD_ARGUMENTS,
      check_jacobian=structure.assert_receptive_field,
    )
  )


def actnorm(dtype, channels=3, **overrides):
  layer = build(bijectors.ActNorm, locals())
  if "bias" not in overrides:
    layer.bias.assign(trained([layer.channels], 0.5, 40, layer.dtype))
    layer.log_scale.assign(trained([layer.channels], 0.4, 41, layer.dtype))
    layer.initialized.assign(True)  # trained, so no data-dependent init
  return layer


def coupling(dtype, channels=3, kernel_size=3, hidden_channels=4, **overrides):
  layer = build(bijectors.AffineCoupling, locals())
  for seed, (key, weight) in enumerate(sorted(layer.weights.items())):
    if key not in overrides:
      weight.assign(trained(weight.shape, 0.3, 50 + seed, layer.dtype))
  return layer


def keras_coupling_network(channels, dtype, seed=60):
  """A Keras network `[N, H, W, C_a]` -> `[N, H, W, 2 C_b]`, any `H`, `W`."""
  keras = tf.keras
  c_a = channels // 2
  dtype = dtype.name

  def init(offset):
    return keras.initializers.RandomNormal(stddev=0.3, seed=seed + offset)

  return keras.Sequential(
    [
      keras.Input((None, None, c_a), dtype=dtype),
      keras.layers.Conv2D(
        4,
        3,
        padding="same",
        activation="relu",
        kernel_initializer=init(0),
        bias_initializer=init(1),
        dtype=dtype,
      ),
      keras.layers.Conv2D(
        2 * (channels - c_a),
        1,
        kernel_initializer=init(2),
        bias_initializer=init(3),
        dtype=dtype,
      ),
    ]
  )


def coupling_with_network(dtype, channels=3, network=None, **overrides):
  if network is None:
    network = keras_coupling_network(
      channels, dtype if dtype.is_floating else tf.float32
    )
  return build(bijectors.AffineCoupling, locals())


CASES.append(
  contract.Case(
    name="actnorm", make=actnorm, bad_arguments=COMMON_BAD_ARGUMENTS
  )
)
for k in (1, 3):
  CASES.append(
    contract.Case(
      name=f"affine-coupling-k{k}",
      make=functools.partial(coupling, kernel_size=k),
      bad_arguments=COMMON_BAD_ARGUMENTS
      + (
        ({"channels": 1}, "channels"),
        ({"hidden_channels": 0}, "hidden_channels"),
        ({"kernel_size": 2}, "kernel_size"),
      ),
    )
  )
CASES.append(
  contract.Case(
    name="affine-coupling-keras-network",
    make=coupling_with_network,
    bad_arguments=(
      ({"dtype": tf.int32}, "dtype"),
      ({"network": lambda x_a: x_a}, "network"),
      ({"hidden_bias": np.zeros([4])}, "network"),
    ),
  )
)


def rotation(channels, seed):
  q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=[channels] * 2))
  return q * np.sign(np.diag(r))


def periodic(dtype, kernel_size, forward_path, channels=3, **overrides):
  layer = build(bijectors.PeriodicConv2D, locals())
  if "kernel" not in overrides:
    # Taps of 0.3 / k around a scaled rotation: per-frequency condition
    # numbers about 5 on the contract's images.
    kernel = np.random.default_rng(40).normal(
      0.0, 0.3 / kernel_size, layer.kernel.shape
    )
    p = (kernel_size - 1) // 2
    kernel[p, p] += rotation(channels, 140) * np.exp(
      np.random.default_rng(240).normal(0.0, 0.4, channels)
    )
    layer.kernel.assign(tf.constant(kernel, layer.dtype))
  return layer


def conv1x1(dtype, parameterization, channels=3, **overrides):
  """Every parameterisation starts from the same trained-looking `W`."""
  matrix = (
    rotation(3, 50) * np.exp(np.random.default_rng(51).normal(0.0, 0.4, 3))
    + trained([3, 3], 0.2, 52, tf.float64).numpy()
  )
  if parameterization == "plain":
    matrix = tf.Variable(matrix, dtype=dtype if dtype.is_floating else None)
  return build(bijectors.Conv1x1, locals())


# Odd and even kernel sizes, heights and widths; both forward routes (the
# cost rule picks the spatial one for "auto" on these small images). Even k
# through the FFT: tests/unit/bijectors/test_periodic_conv2d.py.
for k, event_shape, path in [(3, (5, 6, 3), "fft"), (4, (4, 7, 3), "auto")]:
  CASES.append(
    contract.Case(
      name=f"periodic-k{k}-{'x'.join(map(str, event_shape[:2]))}-{path}",
      make=functools.partial(periodic, kernel_size=k, forward_path=path),
      event_shape=event_shape,
      bad_arguments=COMMON_BAD_ARGUMENTS
      + (
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"forward_path": "guess"}, "forward_path"),
        ({"dtype": tf.float16}, "dtype"),
        ({"kernel": np.ones([3, 3, 2, 3])}, "kernel"),
      ),
      check_jacobian=functools.partial(
        structure.assert_circulant_blocks, event_shape=event_shape
      ),
    )
  )
for parameterization in ("qr", "lu", "plain"):
  CASES.append(
    contract.Case(
      name=f"conv1x1-{parameterization}",
      make=functools.partial(conv1x1, parameterization=parameterization),
      event_shape=(4, 5, 3),
      bad_arguments=COMMON_BAD_ARGUMENTS
      + (
        ({"parameterization": "svd"}, "parameterization"),
        ({"dtype": tf.float16}, "dtype"),
        ({"matrix": np.ones([2, 2])}, "matrix"),
        (
          {"householder": np.ones([3, 3]), "parameterization": "lu"},
          "householder",
        ),
        ({"permutation": [0, 1, 2], "parameterization": "qr"}, "permutation"),
      ),
      check_jacobian=structure.assert_block_diagonal,
    )
  )


def cases_named(*names):
  """The registered cases called `names`, in the registry's order; a name
  that no case has (a case renamed) fails at once."""
  found = [case for case in CASES if case.name in names]
  missing = set(names) - {case.name for case in found}
  assert not missing, f"no registered case is called {sorted(missing)}"
  return found
