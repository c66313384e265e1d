"""Property-based tests of every bijector, in the spirit of TFP's
`bijector_properties_test`: hypothesis draws the configuration.

Over random event shapes (`H` and `W` from 1), channel counts, kernel sizes
(odd, and even for `PeriodicConv2D`), dilations, orders, solvers, forward
routes, parameterisations, batch shapes and dtypes, with the variables drawn
at realistic magnitudes but well conditioned (`_diagonally_dominant`), each
bijector must:

* round-trip both ways (`tf.identity` keeps TFP's cache out of it);
* have `forward_log_det_jacobian` equal to the `slogdet` of the dense
  `batch_jacobian` of a float64 twin (the same values in float64);
* have `inverse_log_det_jacobian` equal to minus the forward's at the
  preimage, from `x` and from `y`;
* reject each bad constructor argument with a `ValueError` naming it;
* keep TFP's bijector contract (`assert_tfp_contract`, `test_tfp_contract`):
  bijectivity through TFP's cache, `is_constant_jacobian` exactly when the
  log-det's gradient with respect to `x` is zero, variables those of
  `parameters` (given as arrays or as `tf.Variable`s, drawn), each reached
  by a gradient and shared by copies, `copy()` and `type(b)(**b.parameters)`
  the same bijector, composite tensor packing and `tf.function` arguments,
  `tf.vectorized_map` equal to the batched call.

`make test` runs `DEFAULT_EXAMPLES` examples per layer configuration (one per
Glow mixing and per layer for the contract, ten per constructor),
derandomised (the same every run) and without an example database.
`TFP_EMERGING_HYPOTHESIS_EXAMPLES=N` runs `N` random examples per test
instead (failures print a `@reproduce_failure` blob), e.g.
`TFP_EMERGING_HYPOTHESIS_EXAMPLES=200 pytest
tests/unit/bijectors/test_properties.py`.
"""

from collections.abc import Callable, Sequence
import dataclasses
import functools
import os
import re
import tempfile

import hypothesis
from hypothesis import configuration
from hypothesis import strategies as st
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import contract
from tests.testlib import mutants
from tests.testlib import registry
from tfp_emerging import bijectors
from tfp_emerging import flows
from tfp_emerging.bijectors import autoregressive_conv2d
from tfp_emerging.bijectors import conv1x1 as conv1x1_module
from tfp_emerging.bijectors import periodic_conv2d
from tfp_emerging.ops import autoregressive as autoregressive_ops

# Hypothesis caches what it reads from the sources under its home directory,
# `.hypothesis/` in the working directory by default: not in the repository.
configuration.set_hypothesis_home_dir(
  os.path.join(tempfile.gettempdir(), "tfp_emerging_hypothesis")
)
EXAMPLES = int(os.environ.get("TFP_EMERGING_HYPOTHESIS_EXAMPLES", "0"))
DEFAULT_EXAMPLES = 2
SETTINGS = hypothesis.settings(
  max_examples=EXAMPLES or DEFAULT_EXAMPLES,
  derandomize=not EXAMPLES,
  database=None,
  deadline=None,
  print_blob=True,
  suppress_health_check=[
    hypothesis.HealthCheck.too_slow,
    hypothesis.HealthCheck.filter_too_much,
    hypothesis.HealthCheck.data_too_large,
  ],
)
# A Glow example costs seconds (the dense Jacobian of a whole flow); a bad
# argument fails in the constructor.
GLOW_SETTINGS = hypothesis.settings(SETTINGS, max_examples=EXAMPLES or 1)
# The contract's checks trace functions (`tf.function`, XLA,
# `tf.vectorized_map`): one example per family.
TFP_CONTRACT_SETTINGS = hypothesis.settings(
  SETTINGS, max_examples=EXAMPLES or 1
)
BAD_ARGUMENT_SETTINGS = hypothesis.settings(
  SETTINGS, max_examples=EXAMPLES or 5 * DEFAULT_EXAMPLES
)

DTYPES = st.sampled_from([tf.float32, tf.float64])
BATCH_SHAPES = st.lists(st.integers(1, 2), max_size=2)
SIDES = st.integers(1, 5)
CHANNELS = st.integers(1, 4)
SEEDS = st.integers(0, 2**32 - 1)

# Round trip: max |x - f^-1(f(x))| <= ROUND_TRIP_TOL max(1, max |x|).
ROUND_TRIP_TOL = {tf.float32: 1e-4, tf.float64: 1e-10}
# Log-dets: rtol, and an atol per dimension of the event (rounding errors of
# sums over H W C terms).
LOG_DET_RTOL = {tf.float32: 1e-4, tf.float64: 1e-9}
LOG_DET_ATOL_PER_DIM = {tf.float32: 1e-5, tf.float64: 1e-11}


@dataclasses.dataclass
class Drawn:
  """A drawn bijector: `make(dtype)` builds it with the drawn values."""

  make: Callable[[tf.DType], object]
  event_shape: Sequence[int]
  batch_shape: Sequence[int]
  dtype: tf.DType
  seed: int


def _orthogonal(rng, n):
  """A Haar-random orthogonal `n x n` matrix (determinant +-1)."""
  q, r = np.linalg.qr(rng.normal(size=[n, n]))
  return q * np.sign(np.diag(r))


def _spectral_norms(taps):
  """`||T||_2` of each `[C, C]` matrix of `taps` `[..., C, C]`."""
  return np.linalg.norm(taps, ord=2, axis=(-2, -1))


def _diagonally_dominant(taps, smallest, ratio):
  """`taps` (random) scaled so their spectral norms sum to `ratio * smallest`.

  A convolution whose centre tap has smallest singular value `smallest` and
  whose other taps have norms summing to `r smallest`, `r < 1`, is invertible
  with `cond <= cond(centre) (1 + r) / (1 - r)` (Young's inequality), for
  every image size: the periodic convolution's `G(u, v)` and the triangular
  solves of the masked ones are both well conditioned.
  """
  total = _spectral_norms(taps).sum()
  return taps * (ratio * smallest / total) if total > 0 else taps


@dataclasses.dataclass
class _Common:
  """What every layer family draws first: a generator seeded by `seed`, the
  shapes and dtype of its `Drawn`, and whether its parameters are given as
  `tf.Variable`s (else as arrays)."""

  rng: np.random.Generator
  event_shape: list
  batch_shape: list
  dtype: tf.DType
  seed: int
  variables: bool

  @property
  def channels(self):
    return self.event_shape[-1]

  def parameter(self, dtype, value):
    """`value` in `dtype`, in a new `tf.Variable` if drawn so."""
    value = _as(dtype, value)
    return tf.Variable(value) if self.variables else value

  def drawn(self, make):
    return Drawn(
      make, self.event_shape, self.batch_shape, self.dtype, self.seed
    )


@st.composite
def _common(draw, channels=CHANNELS):
  seed = draw(SEEDS)
  event = [draw(SIDES), draw(SIDES), draw(channels)]
  return _Common(
    np.random.default_rng(seed),
    event,
    draw(BATCH_SHAPES),
    draw(DTYPES),
    seed,
    draw(st.booleans()),
  )


def _as(dtype, value):
  return np.asarray(value).astype(dtype.as_numpy_dtype)


@st.composite
def actnorm(draw):
  common = draw(_common())
  c = common.channels
  bias = common.rng.normal(0.0, 1.0, c)
  log_scale = common.rng.uniform(-1.0, 1.0, c)
  return common.drawn(
    lambda dt: bijectors.ActNorm(
      c,
      bias=common.parameter(dt, bias),
      log_scale=common.parameter(dt, log_scale),
      dtype=dt,
    )
  )


def _masked_values(rng, channels, kernel_size, order, ratio):
  """`(kernel, log_diagonal)` of a diagonally dominant masked convolution."""
  m = (kernel_size + 1) // 2
  log_diagonal = rng.uniform(-1.0, 1.0, channels)
  kernel = rng.normal(size=[m, m, channels, channels])
  centre = m - 1 if order == "top_left" else 0
  triangle = np.triu if order == "top_left" else np.tril
  kernel[centre, centre] = triangle(
    kernel[centre, centre], 1 if order == "top_left" else -1
  )
  # The bound tanh keeps the diagonal within 0.2% of exp(log_diagonal).
  smallest = np.exp(log_diagonal.min()) * 0.99
  return _diagonally_dominant(kernel, smallest, ratio), log_diagonal


@st.composite
def _masked_layers(draw, orders, solver):
  """`(common, make_part)`: `make_part(dt, i)` is the masked convolution of
  `orders[i]` with its drawn values (kernel size and dilation shared)."""
  common = draw(_common())
  c = common.channels
  kernel_size = draw(st.sampled_from([1, 3, 5]))
  dilation = draw(st.integers(1, 3))
  parts = [
    _masked_values(common.rng, c, kernel_size, order, draw(st.floats(0.0, 0.9)))
    for order in orders
  ]

  def make_part(dt, i):
    kernel, log_diagonal = parts[i]
    return bijectors.AutoregressiveConv2D(
      c,
      kernel_size,
      order=orders[i],
      dilation=dilation,
      solver=solver,
      kernel=common.parameter(dt, kernel),
      log_diagonal=common.parameter(dt, log_diagonal),
      dtype=dt,
    )

  return common, make_part


@st.composite
def autoregressive(draw, order, solver):
  common, make_part = draw(_masked_layers((order,), solver))
  return common.drawn(lambda dt: make_part(dt, 0))


@st.composite
def emerging(draw, solver):
  common, make_part = draw(_masked_layers(("top_left", "bottom_right"), solver))

  def make(dt):
    first, second = make_part(dt, 0), make_part(dt, 1)
    return bijectors.EmergingConv2D(
      common.channels,
      first.kernel_size,
      first.dilation,
      solver=solver,
      first=first,
      second=second,
      dtype=dt,
    )

  return common.drawn(make)


@st.composite
def periodic(draw, forward_path):
  common = draw(_common())
  rng = common.rng
  h, w, c = common.event_shape
  kernel_size = draw(st.integers(1, min(h, w)))
  p = (kernel_size - 1) // 2
  kernel = rng.normal(size=[kernel_size, kernel_size, c, c])
  kernel[p, p] = 0.0
  singular_values = np.exp(rng.uniform(-1.0, 1.0, c))
  kernel = _diagonally_dominant(
    kernel, singular_values.min(), draw(st.floats(0.0, 0.9))
  )
  kernel[p, p] = _orthogonal(rng, c) * singular_values
  return common.drawn(
    lambda dt: bijectors.PeriodicConv2D(
      c,
      kernel_size,
      kernel=common.parameter(dt, kernel),
      forward_path=forward_path,
      dtype=dt,
    )
  )


@st.composite
def conv1x1(draw, parameterization):
  common = draw(_common())
  rng, c = common.rng, common.channels
  singular_values = np.exp(rng.uniform(-1.0, 1.0, c))
  perturbation = _diagonally_dominant(
    rng.normal(size=[c, c]), singular_values.min(), draw(st.floats(0.0, 0.9))
  )
  matrix = _orthogonal(rng, c) * singular_values + perturbation
  return common.drawn(
    lambda dt: bijectors.Conv1x1(
      c, parameterization, matrix=common.parameter(dt, matrix), dtype=dt
    )
  )


@st.composite
def affine_coupling(draw):
  common = draw(_common(channels=st.integers(2, 4)))
  c = common.channels
  hidden = draw(st.integers(1, 4))
  kernel_size = draw(st.sampled_from([1, 3]))
  scale = draw(st.floats(0.05, 0.3))
  # The values are drawn; their shapes are those of a default coupling's.
  default = bijectors.AffineCoupling(c, hidden, kernel_size)
  weights = {
    key: common.rng.normal(0.0, scale, tuple(weight.shape))
    for key, weight in default.weights.items()
  }
  # Positive biases keep units of both hidden layers active at some pixels:
  # the log-det then varies with `x`, as it does in a trained coupling (a
  # dead network's is constant, which the coupling does not declare).
  for key in ("hidden_bias", "middle_bias"):
    weights[key] = np.abs(weights[key]) + scale
  return common.drawn(
    lambda dt: bijectors.AffineCoupling(
      c,
      hidden,
      kernel_size,
      dtype=dt,
      **{key: common.parameter(dt, value) for key, value in weights.items()},
    )
  )


@st.composite
def glow(draw, mixing):
  """One level, one step, on `[2a, 2b, C]` images; every variable moved."""
  seed = draw(SEEDS)
  rng = np.random.default_rng(seed)
  event = [
    2 * draw(st.integers(1, 2)),
    2 * draw(st.integers(1, 2)),
    draw(st.integers(1, 2)),
  ]
  kernel_size = 1 if mixing == "periodic" else draw(st.sampled_from([1, 3]))
  batch, dtype = draw(BATCH_SHAPES), draw(DTYPES)
  values = []

  def make(dt):
    """The first flow made moves its variables; later ones copy them (the
    default initial values depend on the dtype)."""
    flow = flows.Glow(
      event,
      num_levels=1,
      num_steps=1,
      mixing=mixing,
      hidden_channels=2,
      kernel_size=kernel_size,
      seed=seed,
      dtype=dt,
    )
    if not values:
      for v in flow.trainable_variables:
        v.assign_add(_as(dt, rng.normal(0.0, 0.1, v.shape)))
      for actnorm in flow.actnorms:  # Its values are set: no data init.
        actnorm.initialized.assign(True)
      values.extend(v.numpy() for v in flow.variables)
    for v, value in zip(flow.variables, values):
      v.assign(value.astype(v.dtype.as_numpy_dtype))
    return flow

  return Drawn(make, event, batch, dtype, seed)


def assert_bijector_properties(drawn):
  dtype = drawn.dtype
  layer = drawn.make(dtype)
  twin = drawn.make(tf.float64)
  rng = np.random.default_rng(drawn.seed + 1)
  shape = [*drawn.batch_shape, *drawn.event_shape]
  x = tf.constant(_as(dtype, rng.normal(size=shape)))
  y = tf.constant(_as(dtype, rng.normal(size=shape)))

  def assert_round_trip(want, got, label):
    tol = ROUND_TRIP_TOL[dtype] * max(1.0, np.abs(want.numpy()).max())
    np.testing.assert_allclose(
      got.numpy(), want.numpy(), rtol=0, atol=tol, err_msg=label
    )

  forward_x = layer.forward(x)
  assert forward_x.shape == x.shape
  assert_round_trip(
    x, layer.inverse(tf.identity(forward_x)), "round trip x -> f -> f^-1"
  )
  inverse_y = layer.inverse(y)
  assert inverse_y.shape == y.shape
  assert_round_trip(
    y, layer.forward(tf.identity(inverse_y)), "round trip y -> f^-1 -> f"
  )

  dim = int(np.prod(drawn.event_shape))
  rtol = LOG_DET_RTOL[dtype]
  atol = LOG_DET_ATOL_PER_DIM[dtype] * dim

  def assert_log_det(got, want, label):
    assert got.shape == drawn.batch_shape, (label, got.shape)
    np.testing.assert_allclose(
      np.reshape(got, [-1]),
      np.reshape(want, [-1]),
      rtol=rtol,
      atol=atol,
      err_msg=label,
    )

  fldj = layer.forward_log_det_jacobian(tf.identity(x), event_ndims=3)
  images = tf.reshape(tf.cast(x, tf.float64), [-1, *drawn.event_shape])
  assert_log_det(
    fldj,
    contract.slogdet(contract.dense_jacobian(twin.forward, images)),
    "fldj(x) against slogdet of the float64 twin's J_f(x)",
  )
  ildj = layer.inverse_log_det_jacobian(tf.identity(forward_x), event_ndims=3)
  assert_log_det(ildj, -fldj.numpy(), "ildj(f(x)) against -fldj(x)")
  ildj = layer.inverse_log_det_jacobian(tf.identity(y), event_ndims=3)
  fldj = layer.forward_log_det_jacobian(tf.identity(inverse_y), event_ndims=3)
  assert_log_det(ildj, -fldj.numpy(), "ildj(y) against -fldj(f^-1(y))")


def assert_tfp_contract(drawn):
  """TFP's bijector contract, on the drawn bijector.

  Bijectivity through TFP's cache: `inverse(forward(x))` is `x` itself, and
  `forward(inverse(y))` is `y` (the round trips above go around the
  cache). Then the contract's checks (`tests/testlib/contract.py`), on
  batches of the drawn event shape: `is_constant_jacobian` exactly when the
  log-dets' gradients with respect to `x` are zero; the variables those of
  `parameters`, shared by copies, each reached by a gradient; `copy()` and
  `type(b)(**b.parameters)` the same bijector; composite tensor packing and
  `tf.function` arguments; `tf.vectorized_map` equal to the batched call.
  """
  dtype = drawn.dtype
  layer = drawn.make(dtype)
  rng = np.random.default_rng(drawn.seed + 2)
  shape = [*drawn.batch_shape, *drawn.event_shape]
  x = tf.constant(_as(dtype, rng.normal(size=shape)))
  y = tf.constant(_as(dtype, rng.normal(size=shape)))
  assert layer.inverse(layer.forward(x)) is x, "cached: f^-1(f(x)) is not x"
  assert layer.forward(layer.inverse(y)) is y, "cached: f(f^-1(y)) is not y"
  for check in (
    contract.check_constant_jacobian,
    contract.check_variables,
    contract.check_reconstruction,
    # Without XLA: each compilation costs, and every registered bijector
    # compiles as an argument in tests/unit/bijectors/test_contract.py.
    functools.partial(contract.check_composite_tensor, xla=False),
    contract.check_vectorized_map,
  ):
    check(layer, drawn.event_shape, dtype)


FAMILIES = {
  "actnorm": actnorm(),
  "affine_coupling": affine_coupling(),
  **{
    f"autoregressive-{order}-{solver}": autoregressive(order, solver)
    for order in autoregressive_conv2d.ORDERS
    for solver in autoregressive_ops.SOLVERS
  },
  **{
    f"emerging-{solver}": emerging(solver)
    for solver in autoregressive_ops.SOLVERS
  },
  **{
    f"periodic-{path}": periodic(path) for path in periodic_conv2d.FORWARD_PATHS
  },
  **{f"conv1x1-{p}": conv1x1(p) for p in conv1x1_module.PARAMETERIZATIONS},
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@SETTINGS
@hypothesis.given(data=st.data())
def test_bijector_properties(family, data):
  assert_bijector_properties(data.draw(FAMILIES[family], label=family))


@pytest.mark.parametrize("family", sorted(FAMILIES))
@TFP_CONTRACT_SETTINGS
@hypothesis.given(data=st.data())
def test_tfp_contract(family, data):
  assert_tfp_contract(data.draw(FAMILIES[family], label=family))


@pytest.mark.parametrize("mixing", flows.MIXINGS)
@GLOW_SETTINGS
@hypothesis.given(data=st.data())
def test_glow_properties(mixing, data):
  assert_bijector_properties(data.draw(glow(mixing), label=mixing))


# The properties are not vacuous: each fails on a broken layer (defects of
# tests/testlib/mutants.py). "ildj(y) against -fldj(f^-1(y))" checks
# the identity of "ildj(f(x)) against -fldj(x)" at other points.
BROKEN = [
  (mutants.WrongInverse, "round trip x -> f -> f^-1"),
  (mutants.BoundedRange, "round trip y -> f^-1 -> f"),
  (mutants.ForgetsConstant, "fldj(x) against slogdet"),
  (mutants.InconsistentInverseLogDet, "ildj(f(x)) against -fldj(x)"),
]


@pytest.mark.parametrize(
  "defect,label", BROKEN, ids=[defect.__name__ for defect, _ in BROKEN]
)
def test_properties_catch_a_broken_layer(defect, label):
  drawn = Drawn(
    lambda dt: mutants.mutate(registry.actnorm(dt), defect),
    event_shape=[3, 4, 3],
    batch_shape=[2],
    dtype=tf.float64,
    seed=0,
  )
  with pytest.raises(AssertionError, match=re.escape(label)):
    assert_bijector_properties(drawn)


# Bad constructor arguments: `(argument, bad value)` strategies.

NOT_POSITIVE_INTS = st.one_of(
  st.integers(max_value=0),
  st.floats(allow_nan=True),
  st.booleans(),
  st.text(max_size=3),
  st.none(),
  st.just([1]),
)
EVEN_SIZES = st.integers(1, 10).map(lambda k: 2 * k)
NOT_FLOAT_DTYPES = st.sampled_from(
  [
    tf.int32,
    tf.int64,
    tf.bool,
    tf.string,
    tf.complex64,
    np.int16,
    "int8",
    "complex128",
    "no_such_dtype",
    None,
    object,
  ]
)
NOT_FFT_DTYPES = st.one_of(
  NOT_FLOAT_DTYPES, st.sampled_from([tf.float16, tf.bfloat16])
)


def _not_one_of(allowed):
  return st.one_of(
    st.text(max_size=12), st.integers(), st.none(), st.floats()
  ).filter(lambda v: v not in allowed)


def _wrong_shapes(shape):
  """Arrays of any shape but `shape`."""
  return (
    st.lists(st.integers(1, 4), max_size=4)
    .filter(lambda s: s != list(shape))
    .map(np.ones)
  )


def _bad(**strategies):
  """One `(argument, bad value)` of the given `argument=strategy`s."""
  return st.one_of(
    *(
      st.tuples(st.just(argument), values)
      for argument, values in strategies.items()
    )
  )


@st.composite
def actnorm_arguments(draw):
  c = draw(CHANNELS)
  return (
    bijectors.ActNorm,
    dict(channels=c),
    draw(
      _bad(
        channels=NOT_POSITIVE_INTS,
        dtype=NOT_FLOAT_DTYPES,
        bias=_wrong_shapes([c]),
        log_scale=_wrong_shapes([c]),
      )
    ),
  )


# What both masked layers refuse alike.
MASKED_BAD_ARGUMENTS = dict(
  channels=NOT_POSITIVE_INTS,
  kernel_size=st.one_of(NOT_POSITIVE_INTS, EVEN_SIZES),
  dilation=NOT_POSITIVE_INTS,
  solver=_not_one_of(autoregressive_ops.SOLVERS),
  dtype=NOT_FLOAT_DTYPES,
)


@st.composite
def autoregressive_arguments(draw):
  c, k = draw(CHANNELS), draw(st.sampled_from([1, 3, 5]))
  m = (k + 1) // 2
  return (
    bijectors.AutoregressiveConv2D,
    dict(channels=c, kernel_size=k),
    draw(
      _bad(
        **MASKED_BAD_ARGUMENTS,
        order=_not_one_of(autoregressive_conv2d.ORDERS),
        kernel=_wrong_shapes([m, m, c, c]),
        log_diagonal=_wrong_shapes([c]),
      )
    ),
  )


@st.composite
def emerging_arguments(draw):
  c, k = draw(CHANNELS), draw(st.sampled_from([1, 3, 5]))
  wrong_part = st.one_of(
    st.none().map(lambda _: bijectors.Conv1x1(c)),
    st.integers(1, 3)
    .filter(lambda d: d != 1)
    .map(lambda d: bijectors.AutoregressiveConv2D(c, k, dilation=d)),
    st.just(object()),
  )
  return (
    bijectors.EmergingConv2D,
    dict(channels=c, kernel_size=k),
    draw(_bad(**MASKED_BAD_ARGUMENTS, first=wrong_part, second=wrong_part)),
  )


@st.composite
def periodic_arguments(draw):
  c, k = draw(CHANNELS), draw(st.integers(1, 4))
  return (
    bijectors.PeriodicConv2D,
    dict(channels=c, kernel_size=k),
    draw(
      _bad(
        channels=NOT_POSITIVE_INTS,
        kernel_size=NOT_POSITIVE_INTS,
        forward_path=_not_one_of(periodic_conv2d.FORWARD_PATHS),
        dtype=NOT_FFT_DTYPES,
        kernel=_wrong_shapes([k, k, c, c]),
      )
    ),
  )


@st.composite
def conv1x1_arguments(draw):
  c = draw(CHANNELS)
  p = draw(st.sampled_from(conv1x1_module.PARAMETERIZATIONS))
  # The factor arguments that parameterisation `p` does not take.
  unused = [
    f
    for f in conv1x1_module._FACTOR_ARGUMENTS
    if f not in conv1x1_module.FACTORS[p]
  ]
  bad = dict(
    channels=NOT_POSITIVE_INTS,
    parameterization=_not_one_of(conv1x1_module.PARAMETERIZATIONS),
    dtype=NOT_FFT_DTYPES,
    matrix=_wrong_shapes([c, c]),
  )
  bad.update({f: st.just(np.eye(c)) for f in unused})
  return (
    bijectors.Conv1x1,
    dict(channels=c, parameterization=p),
    draw(_bad(**bad)),
  )


@st.composite
def affine_coupling_arguments(draw):
  c, k = draw(st.integers(2, 4)), draw(st.sampled_from([1, 3]))
  return (
    bijectors.AffineCoupling,
    dict(channels=c, hidden_channels=2, kernel_size=k),
    draw(
      _bad(
        channels=st.one_of(NOT_POSITIVE_INTS, st.just(1)),
        hidden_channels=NOT_POSITIVE_INTS,
        kernel_size=st.one_of(NOT_POSITIVE_INTS, EVEN_SIZES),
        dtype=NOT_FLOAT_DTYPES,
        compute_dtype=NOT_FLOAT_DTYPES.filter(lambda d: d is not None),
        hidden_kernel=_wrong_shapes([k, k, c // 2, 2]),
        output_bias=_wrong_shapes([2 * (c - c // 2)]),
      )
    ),
  )


@st.composite
def glow_arguments(draw):
  mixing = draw(st.sampled_from(flows.MIXINGS))
  valid = dict(
    image_shape=(4, 4, 1),
    num_levels=1,
    num_steps=1,
    mixing=mixing,
    hidden_channels=2,
    kernel_size=1 if mixing == "periodic" else 3,
  )
  not_sizes = st.one_of(NOT_POSITIVE_INTS, st.sampled_from([2.5, 4.0, "4"]))
  odd_sides = st.integers(0, 4).map(lambda i: 2 * i + 1)
  image_shapes = st.one_of(
    st.tuples(st.one_of(not_sizes, odd_sides), st.just(4), st.just(1)),
    st.tuples(st.just(4), st.just(4), not_sizes),
    st.lists(st.integers(1, 8), max_size=4).filter(lambda s: len(s) != 3),
    st.none(),
  )
  return (
    flows.Glow,
    valid,
    draw(
      _bad(
        image_shape=image_shapes,
        num_levels=NOT_POSITIVE_INTS,
        num_steps=NOT_POSITIVE_INTS,
        mixing=_not_one_of(flows.MIXINGS),
        hidden_channels=NOT_POSITIVE_INTS,
        kernel_size=st.one_of(NOT_POSITIVE_INTS, EVEN_SIZES),
        dtype=NOT_FLOAT_DTYPES,
      )
    ),
  )


ARGUMENTS = {
  "actnorm": actnorm_arguments(),
  "autoregressive": autoregressive_arguments(),
  "emerging": emerging_arguments(),
  "periodic": periodic_arguments(),
  "conv1x1": conv1x1_arguments(),
  "affine_coupling": affine_coupling_arguments(),
  "glow": glow_arguments(),
}


@pytest.mark.parametrize("family", sorted(ARGUMENTS))
@BAD_ARGUMENT_SETTINGS
@hypothesis.given(data=st.data())
def test_bad_arguments_raise_value_errors_naming_them(family, data):
  cls, valid, (argument, value) = data.draw(ARGUMENTS[family], label=family)
  with pytest.raises(ValueError, match=argument):
    cls(**{**valid, argument: value})


# Bad arguments the long runs found accepted (or raising a TypeError).
@pytest.mark.parametrize(
  "cls,valid,argument,value",
  [
    (
      bijectors.AffineCoupling,
      dict(channels=2),
      "compute_dtype",
      "no_such_dtype",
    ),
    (
      flows.Glow,
      dict(image_shape=(4, 4, 1), num_levels=1, num_steps=1),
      "image_shape",
      (2.5, 4, 1),
    ),
    (
      flows.Glow,
      dict(image_shape=(4, 4, 1), num_levels=1, num_steps=1),
      "image_shape",
      ("4", "4", "1"),
    ),
  ],
  ids=["coupling-compute_dtype", "glow-float-side", "glow-string-sides"],
)
def test_bad_arguments_found_by_long_runs(cls, valid, argument, value):
  with pytest.raises(ValueError, match=argument):
    cls(**{**valid, argument: value})


# Parameter properties (TFP's `_parameter_properties`): every layer holds one
# bijector (batch shape `[]`); each parameter's declared event rank is its
# rank, its `shape_fn` gives its shape from the outputs' (where that shape
# determines it), and what TFP must not transform or create says so.

# Shapes that depend on `kernel_size` or `hidden_channels`, which the
# outputs' shape does not give: `shape_fn` raises `NotImplementedError`.
NO_SHAPE_FN = {
  "kernel",
  "hidden_kernel",
  "hidden_bias",
  "middle_kernel",
  "middle_bias",
  "output_kernel",
  "condition_kernel",
  "network_variables",
}
# Fixed or discrete values: no constraining bijector, not preferred.
NOT_TRANSFORMABLE = {"sign", "permutation", "initialized", "network_variables"}
# Not what `tfp.experimental.util.make_trainable` creates: the fixed values,
# and the Conv1x1 factors that exclude the default "qr" ones.
NOT_PREFERRED = NOT_TRANSFORMABLE | {"matrix", "lower"}


def _static_shape(value):
  return list(tf.TensorShape(getattr(value, "shape", np.shape(value))))


def assert_parameter_properties(layer, event_shape):
  assert layer.experimental_batch_shape() == []
  assert list(layer.experimental_batch_shape_tensor()) == []
  properties = layer.parameter_properties()
  for name, value in layer.parameters.items():
    if isinstance(
      value, (tf.Variable, tf.Tensor, np.ndarray, tfp.bijectors.Bijector)
    ):
      assert name in properties, f"`{name}` is not declared"
  for name, properties_of in properties.items():
    value = layer.parameters.get(name)
    if value is None:
      continue
    if not properties_of.is_tensor:  # A part: transforms the same events.
      assert (
        value.experimental_batch_shape(x_event_ndims=properties_of.event_ndims)
        == []
      ), name
      continue
    assert properties_of.is_preferred == (name not in NOT_PREFERRED), name
    if name not in NOT_TRANSFORMABLE:
      assert isinstance(
        properties_of.default_constraining_bijector_fn(), tfp.bijectors.Bijector
      ), name
    else:
      with pytest.raises(NotImplementedError):
        properties_of.default_constraining_bijector_fn()
    if name in NO_SHAPE_FN:
      with pytest.raises(NotImplementedError):
        properties_of.shape_fn(event_shape)
    else:
      assert list(properties_of.shape_fn(event_shape)) == _static_shape(
        value
      ), name
      assert list(properties_of.shape_fn([2, 1, *event_shape])) == [
        2,
        1,
        *_static_shape(value),
      ], name
    if properties_of.event_ndims is None:  # No batch semantics.
      assert name == "network_variables", name
      continue
    assert len(_static_shape(value)) == properties_of.event_ndims, name


def assert_slicing_keeps_the_maps(layer, event_shape, dtype):
  """`layer[...]`, TFP's batch slicing, is the same bijector."""
  x = contract.random([2, *event_shape], dtype)
  sliced = layer[...]
  assert sliced.experimental_batch_shape() == []
  np.testing.assert_allclose(
    sliced.forward(tf.identity(x)).numpy(), layer.forward(x).numpy()
  )
  np.testing.assert_allclose(
    sliced.forward_log_det_jacobian(x, event_ndims=3).numpy(),
    layer.forward_log_det_jacobian(x, event_ndims=3).numpy(),
  )


@pytest.mark.parametrize("family", sorted(FAMILIES))
@SETTINGS
@hypothesis.given(data=st.data())
def test_parameter_properties(family, data):
  drawn = data.draw(FAMILIES[family], label=family)
  layer = drawn.make(drawn.dtype)
  assert_parameter_properties(layer, drawn.event_shape)
  assert_slicing_keeps_the_maps(layer, drawn.event_shape, drawn.dtype)


def test_parameter_properties_of_variables():
  """The default layers, whose parameters are variables (the registry's)."""
  for case in registry.CASES:
    assert_parameter_properties(case.make(tf.float32), case.event_shape)


def _valid(shape, permutation=False):
  if permutation:
    return np.arange(shape[-1], dtype=np.int32)
  return (
    np.ones(shape)
    if len(shape) == 1
    else np.broadcast_to(np.eye(shape[-1]), shape)
  )


# `(cls, arguments, parameter, shape)`: a batch of valid values `[2, *shape]`
# of each parameter is refused with a message naming it and `shape`.
BATCHED_PARAMETERS = [
  (bijectors.ActNorm, dict(channels=3), "bias", [3]),
  (bijectors.ActNorm, dict(channels=3), "log_scale", [3]),
  (bijectors.AutoregressiveConv2D, dict(channels=3), "kernel", [2, 2, 3, 3]),
  (bijectors.AutoregressiveConv2D, dict(channels=3), "log_diagonal", [3]),
  (bijectors.PeriodicConv2D, dict(channels=3), "kernel", [3, 3, 3, 3]),
  *(
    (bijectors.Conv1x1, dict(channels=3, parameterization=p), factor, shape)
    for p, factor, shape in [
      ("plain", "matrix", [3, 3]),
      ("qr", "matrix", [3, 3]),
      ("qr", "householder", [3, 3]),
      ("qr", "upper", [3, 3]),
      ("qr", "log_abs_s", [3]),
      ("qr", "sign", [3]),
      ("lu", "lower", [3, 3]),
      ("lu", "permutation", [3]),
    ]
  ),
  *(
    (bijectors.AffineCoupling, dict(channels=4, hidden_channels=2), w, shape)
    for w, shape in [
      ("hidden_kernel", [3, 3, 2, 2]),
      ("hidden_bias", [2]),
      ("output_bias", [4]),
    ]
  ),
]


@pytest.mark.parametrize(
  "cls,arguments,parameter,shape",
  BATCHED_PARAMETERS,
  ids=[
    f"{c.__name__}-{a.get('parameterization', '')}-{p}"
    for c, a, p, _ in BATCHED_PARAMETERS
  ],
)
def test_batched_parameters_are_refused_naming_them(
  cls, arguments, parameter, shape
):
  value = np.stack([_valid(shape, parameter == "permutation")] * 2)
  message = (
    f"`{parameter}` must have shape {shape}; got {[2, *shape]}: a batch [2]"
    " of parameters, but batches of bijectors are not supported"
  )
  with pytest.raises(ValueError, match=re.escape(message)):
    cls(**arguments, **{parameter: value})
