"""PeriodicConv2D beyond the shared contract: references, shifts and
conditioning."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tests.testlib.structure import dense_reference
from tfp_emerging import bijectors
from tfp_emerging.ops import fourier

tfd = tfp.distributions


def numpy_forward(x, kernel):
  """Independent spatial circular convolution: a sum of rolled images."""
  k = kernel.shape[0]
  p = (k - 1) // 2
  y = np.zeros(x.shape[:-1] + (kernel.shape[-1],))
  for a, b in itertools.product(range(k), repeat=2):
    y += np.roll(x, (p - a, p - b), axis=(-3, -2)) @ kernel[a, b]
  return y


def layer(kernel_size, dtype=tf.float64, forward_path="auto", channels=3):
  return registry.periodic(dtype, kernel_size, forward_path, channels=channels)


SHAPES = [
  (1, 3, 3),
  (2, 2, 5),
  (2, 3, 3),
  (3, 5, 6),
  (3, 6, 5),
  (4, 4, 7),
  (4, 8, 4),
  (5, 5, 5),
  (5, 7, 9),
  (6, 6, 7),
]


@pytest.mark.parametrize("path", ["fft", "spatial"])
@pytest.mark.parametrize("k,height,width", SHAPES)
def test_forward_matches_spatial_reference(k, height, width, path):
  bijector = layer(k, forward_path=path)
  x = contract.random([2, height, width, 3], tf.float64)
  expected = numpy_forward(x.numpy(), bijector.kernel.numpy())
  np.testing.assert_allclose(bijector.forward(x).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("k,height,width", SHAPES)
def test_log_det_and_inverse_for_any_size(k, height, width):
  """Odd, even and non-square images, `k` up to `min(H, W)`, float64."""
  bijector = layer(k)
  kernel = bijector.kernel.numpy()
  dense = dense_reference(kernel, height, width)
  x = contract.random([height, width, 3], tf.float64)
  np.testing.assert_allclose(
    bijector.forward_log_det_jacobian(x, event_ndims=3).numpy(),
    np.linalg.slogdet(dense)[1],
    rtol=1e-10,
  )
  y = bijector.forward(x)
  np.testing.assert_allclose(
    bijector.inverse(tf.identity(y)).numpy().ravel(),
    np.linalg.solve(dense, y.numpy().ravel()),
    atol=1e-10,
  )


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
@pytest.mark.parametrize("k,height,width", [(3, 5, 6), (4, 4, 7)])
def test_fft_and_spatial_forward_agree_in_every_mode(k, height, width, dtype):
  fft, spatial = layer(k, dtype, "fft"), layer(k, dtype, "spatial")
  x = contract.random([2, height, width, 3], dtype)
  atol = 1e-5 if dtype == tf.float32 else 1e-12
  want = spatial.forward(x).numpy()
  for mode in (
    lambda f: f,
    tf.function,
    lambda f: tf.function(f, jit_compile=True),
  ):
    for bijector in (fft, spatial):
      got = mode(bijector.forward)(tf.identity(x))
      np.testing.assert_allclose(got.numpy(), want, atol=atol)


@pytest.mark.parametrize("path", ["fft", "spatial"])
@pytest.mark.parametrize("k,height,width", [(3, 4, 5), (4, 5, 4)])
def test_shift_equivariance_for_every_shift(k, height, width, path):
  bijector = layer(k, forward_path=path)
  x = contract.random([height, width, 3], tf.float64)
  y = bijector.forward(x)
  x_again = bijector.inverse(tf.identity(y))
  for shift in itertools.product(range(height), range(width)):
    rolled = tf.roll(x, shift, axis=[0, 1])
    np.testing.assert_allclose(
      bijector.forward(rolled).numpy(),
      np.roll(y.numpy(), shift, axis=(0, 1)),
      atol=1e-12,
    )
    np.testing.assert_allclose(
      bijector.inverse(tf.roll(y, shift, axis=[0, 1])).numpy(),
      np.roll(x_again.numpy(), shift, axis=(0, 1)),
      atol=1e-12,
    )


def nearly_singular(epsilon, channels=3, kernel_size=3, seed=0):
  """A kernel whose `G(u, 0)` has singular value `epsilon` for every `u`.

  `K[p, p] = I`, `K[p, p + 1] = -(1 - epsilon) v v^T` for a unit `v`:
  `G(u, v) = I - (1 - epsilon) e^{2 pi i v / W} v v^T`, so
  `log|det J| = H sum_v log|1 - (1 - epsilon) e^{2 pi i v / W}|`.
  """
  p = (kernel_size - 1) // 2
  v = np.random.default_rng(seed).normal(size=channels)
  v /= np.linalg.norm(v)
  kernel = np.zeros([kernel_size, kernel_size, channels, channels])
  kernel[p, p] = np.eye(channels)
  kernel[p, p + 1] = -(1 - epsilon) * np.outer(v, v)
  return kernel


@pytest.mark.parametrize("jit", [False, True], ids=["lu", "xla"])
@pytest.mark.parametrize(
  "dtype,epsilons",
  [
    (tf.float64, [1e-2, 1e-4, 1e-6, 1e-8]),
    (tf.float32, [1e-1, 1e-2, 1e-3]),
  ],
)
def test_nearly_singular_kernel(dtype, epsilons, jit):
  """Finite, correct log-det; inverse error within 10 cond(J) eps |y|.

  cond(J) = max sigma / min sigma over all frequencies = (2 - eps) / eps.
  Measured (`max|x - f^-1(f(x))| / (cond(J) eps_machine max|x|)`, the
  ratio this test bounds by 10) stays below 0.15 here and down to
  epsilon = 1e-12 (float64) or 1e-5 (float32). Without XLA the factorisation
  is `tf.linalg.lu`, under XLA `batched_inverse.gauss_jordan`.
  """
  height, width = 4, 6
  machine = np.finfo(dtype.as_numpy_dtype).eps
  x = contract.random([2, height, width, 3], dtype)
  kernel = tf.Variable(tf.zeros([3, 3, 3, 3], dtype))
  bijector = bijectors.PeriodicConv2D(3, 3, kernel=kernel, dtype=dtype)
  # Compiled once, run for every epsilon.
  log_det = tf.function(
    lambda x: bijector.forward_log_det_jacobian(x, event_ndims=3),
    jit_compile=jit,
  )
  inverse = tf.function(bijector.inverse, jit_compile=jit)
  for epsilon in epsilons:
    kernel.assign(nearly_singular(epsilon))
    v = np.arange(width)
    expected = height * np.sum(
      np.log(np.abs(1 - (1 - epsilon) * np.exp(2j * np.pi * v / width)))
    )
    assert np.all(np.isfinite(log_det(x).numpy()))
    # The log-det's absolute error is about (number of frequencies) x
    # machine eps / sigma_min relative to the smallest singular value.
    np.testing.assert_allclose(
      log_det(x).numpy(), expected, rtol=0, atol=100 * machine / epsilon
    )
    cond = (2 - epsilon) / epsilon
    sigma = np.linalg.svd(
      bijector.frequency_matrices(height, width).numpy(), compute_uv=False
    )
    np.testing.assert_allclose(sigma.max() / sigma.min(), cond, rtol=1e-3)
    y = tf.identity(bijector.forward(x))
    error = np.abs(inverse(y).numpy() - x.numpy()).max()
    assert error <= 10 * cond * machine * np.abs(x.numpy()).max(), (
      epsilon,
      error,
    )


def test_kernel_larger_than_the_image_raises():
  bijector = layer(4)
  for shape in ([3, 5, 3], [5, 3, 3]):
    for method in (bijector.forward, bijector.inverse):
      with pytest.raises(ValueError, match="kernel_size"):
        method(tf.zeros(shape, tf.float64))
    with pytest.raises(ValueError, match="kernel_size"):
      bijector.forward_log_det_jacobian(tf.zeros(shape, tf.float64), 3)
  # An image size unknown at trace time: a run-time assertion, whatever
  # validate_args is, before the FFTs' padding fails.
  spec = [tf.TensorSpec([None, None, None, 3], tf.float64)]
  loose = registry.periodic(tf.float64, 4, "auto")
  strict = registry.periodic(tf.float64, 4, "auto", validate_args=True)
  for method in (
    loose.forward,
    loose.inverse,
    strict.inverse,
    lambda z: loose.forward_log_det_jacobian(z, 3),
    lambda z: loose.inverse_log_det_jacobian(z, 3),
  ):
    with pytest.raises(
      tf.errors.InvalidArgumentError,
      match=r"`kernel_size` \(4\) must be at most",
    ):
      tf.function(method, input_signature=spec)(
        tf.zeros([1, 3, 5, 3], tf.float64)
      )


def test_image_size_is_fixed_only_at_call_time():
  bijector = layer(3, tf.float32)
  spec = [tf.TensorSpec([None, None, None, 3], tf.float32)]
  forward = tf.function(bijector.forward, input_signature=spec)
  inverse = tf.function(bijector.inverse, input_signature=spec)
  log_det = tf.function(
    lambda x: bijector.forward_log_det_jacobian(x, event_ndims=3),
    input_signature=spec,
  )
  for height, width in [(3, 3), (4, 7), (8, 5)]:
    x = contract.random([2, height, width, 3], tf.float32)
    np.testing.assert_allclose(
      forward(x).numpy(), bijector.forward(x).numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
      inverse(forward(x)).numpy(), x.numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
      log_det(x).numpy(),
      bijector.forward_log_det_jacobian(x, event_ndims=3).numpy(),
      rtol=1e-5,
    )


@pytest.mark.parametrize("jit", [False, True], ids=["lu", "xla"])
def test_log_prob_factorises_once(monkeypatch, jit):
  """`log_prob` = inverse + its log-det: one per-frequency factorisation.

  Counted while tracing: every factorisation goes through
  `fourier.inverse_and_log_abs_det` or, for a log-det alone,
  `fourier.log_abs_dets`. The forward does not factorise.
  """
  calls = []
  for name in ("inverse_and_log_abs_det", "log_abs_dets"):
    original = getattr(fourier, name)

    def counted(matrices, factorise=original, name=name):
      calls.append(name)
      return factorise(matrices)

    monkeypatch.setattr(fourier, name, counted)
  bijector = layer(3, tf.float32)
  dist = tfd.TransformedDistribution(
    tfd.Sample(tfd.Normal(0.0, 1.0), [5, 6, 3]), bijector
  )
  x = contract.random([2, 5, 6, 3], tf.float32)
  log_prob = tf.function(dist.log_prob, jit_compile=jit)(x)
  assert calls == ["inverse_and_log_abs_det"]
  expected = dist.distribution.log_prob(
    bijector.inverse(x)
  ) + bijector.inverse_log_det_jacobian(x, event_ndims=3)
  np.testing.assert_allclose(log_prob.numpy(), expected.numpy(), rtol=1e-5)
  calls.clear()
  tf.function(bijector.forward)(x)
  assert not calls
  tf.function(lambda x: bijector.forward_log_det_jacobian(x, 3))(x)
  assert calls == ["log_abs_dets"]


def test_default_initialisation():
  a = bijectors.PeriodicConv2D(4, 3, seed=3, dtype=tf.float64)
  b = bijectors.PeriodicConv2D(4, 3, seed=3, dtype=tf.float64)
  np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())
  centre = a.kernel.numpy()[1, 1]
  np.testing.assert_allclose(centre @ centre.T, np.eye(4), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(centre), 1.0, atol=1e-12)
  others = np.abs(a.kernel.numpy()).copy()
  others[1, 1] = 0
  assert 0 < others.max() < 0.2
  x = contract.random([6, 6, 4], tf.float64)
  assert abs(a.forward_log_det_jacobian(x, 3).numpy()) < 0.5
  assert [v.name for v in a.trainable_variables] == ["periodic_conv2d/kernel:0"]
  even = bijectors.PeriodicConv2D(2, 4, seed=1)
  assert even.kernel.shape == [4, 4, 2, 2]
  constant = bijectors.PeriodicConv2D(2, 1, kernel=np.eye(2)[None, None])
  assert not constant.trainable_variables


@pytest.mark.parametrize("validate_args", [False, True])
def test_non_finite_kernel_is_refused_at_construction(validate_args):
  kernel = np.zeros([3, 3, 2, 2])
  kernel[1, 1] = np.eye(2)
  kernel[0, 2, 1, 0] = -np.inf
  with pytest.raises(ValueError, match="`kernel` must be finite"):
    bijectors.PeriodicConv2D(
      2, kernel=kernel, dtype=tf.float64, validate_args=validate_args
    )


def test_kernel_variable_assigned_a_non_finite_value_fails_the_next_call():
  layer = registry.periodic(tf.float64, 3, "auto", validate_args=True)
  bad = layer.kernel.numpy()
  bad[2, 0, 1, 1] = np.nan
  parameter_checks.assert_bad_assignment_fails(
    layer, layer.kernel, bad, "kernel", [4, 5, 3]
  )


PERIODIC_CASES = [c for c in registry.CASES if c.name.startswith("periodic")]


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
@pytest.mark.parametrize("case", PERIODIC_CASES, ids=repr)
def test_frozen_layer_passes_the_contract(case, dtype):
  """Round trips, log-dets against the dense Jacobian, eager = graph = XLA."""
  frozen = case.make(dtype)._frozen()
  for check in (
    contract.check_round_trip,
    contract.check_log_det,
    contract.check_modes_agree,
  ):
    check(frozen, case.event_shape, dtype)


def test_frozen_layer_has_the_same_maps_and_factorises_once(monkeypatch):
  calls = []
  original = fourier.inverse_and_log_abs_det

  def counted(matrices):
    calls.append(matrices.shape)
    return original(matrices)

  bijector = layer(4)
  frozen = bijector._frozen()
  monkeypatch.setattr(fourier, "inverse_and_log_abs_det", counted)
  x = contract.random([2, 4, 7, 3], tf.float64)
  y = bijector.forward(x)
  want = [
    y,
    bijector.inverse(tf.identity(y)),
    bijector.forward_log_det_jacobian(x, 3),
    bijector.inverse_log_det_jacobian(tf.identity(y), 3),
  ]
  calls.clear()
  compiled_inverse = tf.function(frozen.inverse, jit_compile=True)
  for _ in range(2):
    got = [
      frozen.forward(x),
      frozen.inverse(tf.identity(y)),
      frozen.forward_log_det_jacobian(x, 3),
      frozen.inverse_log_det_jacobian(tf.identity(y), 3),
    ]
    for method, a, b in zip(contract.METHODS, got, want):
      np.testing.assert_allclose(
        a.numpy(), b.numpy(), atol=1e-13, err_msg=method
      )
    np.testing.assert_allclose(
      compiled_inverse(tf.identity(y)).numpy(), want[1].numpy(), atol=1e-13
    )
  # One factorisation for the size, shared by the inverse and the log-dets
  # and reused by the compiled graph, of the (H W + 2) / 2 independent
  # frequencies (self-conjugate: (0, 0) and (2, 0)), not the H (W // 2 + 1)
  # of the half spectrum.
  assert calls == [[(4 * 7 + 2) // 2, 3, 3]]
  # A size unknown at trace time: factorised in the graph, per call.
  spec = [tf.TensorSpec([None, None, None, 3], tf.float64)]
  dynamic = tf.function(frozen.inverse, input_signature=spec)
  np.testing.assert_allclose(
    dynamic(tf.identity(y)).numpy(), want[1].numpy(), atol=1e-13
  )
  # Frozen weights stay as they were when frozen.
  bijector.kernel.assign(bijector.kernel * 0.5)
  np.testing.assert_allclose(
    frozen.inverse(tf.identity(y)).numpy(), want[1].numpy(), atol=1e-13
  )
  np.testing.assert_allclose(frozen.forward(x).numpy(), y.numpy(), atol=1e-13)
  np.testing.assert_allclose(
    bijector._frozen().forward(x).numpy(),
    bijector.forward(x).numpy(),
    atol=1e-13,
  )
