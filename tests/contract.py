"""The test contract every bijector of the package must pass.

A `Case` names one configured bijector. `tests/bijectors/registry.py` lists
them all; `tests/bijectors/test_contract.py` runs every check below on every
case, in float32 and float64. A new layer joins by adding cases there.

References are independent of the code under test: log-determinants come from
`numpy.linalg.slogdet` of the dense Jacobian (`tf.GradientTape.batch_jacobian`)
and round trips from applying both directions. TFP caches `forward`/`inverse`
pairs, so every second direction is given `tf.identity(...)` of the first's
output: without it `inverse(forward(x))` just returns the cached `x`.
"""

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors
tfd = tfp.distributions

# Round trip: max |x - f^-1(f(x))|.
ROUND_TRIP_ATOL = {tf.float32: 1e-4, tf.float64: 1e-9}
# Log-det against slogdet of the dense Jacobian.
LOG_DET_RTOL = {tf.float32: 1e-4, tf.float64: 1e-8}
# Eager vs tf.function vs XLA: the same ops, reassociated at most.
MODES_RTOL = {tf.float32: 1e-5, tf.float64: 1e-12}


@dataclasses.dataclass(frozen=True)
class Case:
  """One bijector configuration under test.

  Attributes:
    name: test id.
    make: `make(dtype, **overrides) -> Bijector` with variables set to
      realistic trained magnitudes (not the near-identity initialisation);
      `overrides` are constructor arguments, used by the bad-argument checks.
    event_shape: `[H, W, C]` of the events.
    bad_arguments: constructor overrides each of which must raise a
      `ValueError` whose message contains the given argument name:
      `[({"kernel_size": 0}, "kernel_size"), ...]`.
    check_jacobian: optional `check_jacobian(bijector, jacobian)` on the dense
      `[D, D]` Jacobian of `forward` (row = output, column = input; pixels in
      raster order, channels fastest), for layer-specific structure.
  """
  name: str
  make: Callable[..., tfb.Bijector]
  event_shape: Sequence[int] = (5, 7, 3)
  bad_arguments: Sequence = ()
  check_jacobian: Optional[Callable] = None

  def __repr__(self):
    return self.name


def random(shape, dtype, seed=0):
  return tf.random.stateless_normal(shape, seed=[seed, 7], dtype=dtype)


def dense_jacobian(fn, x):
  """`[N, D, D]` Jacobian of `fn` at `x` of shape `[N, H, W, C]`."""
  x = tf.identity(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(tf.identity(x))
  jac = tape.batch_jacobian(y, x)
  n, d = x.shape[0], int(np.prod(x.shape[1:]))
  return jac.numpy().reshape(n, d, d)


def slogdet(jacobian):
  sign, logdet = np.linalg.slogdet(jacobian.astype(np.float64))
  assert np.all(sign != 0), "dense Jacobian is singular"
  return logdet


def check_round_trip(bijector, event_shape, dtype):
  atol = ROUND_TRIP_ATOL[dtype]
  x = random([2, *event_shape], dtype, seed=1)
  x_again = bijector.inverse(tf.identity(bijector.forward(x)))
  np.testing.assert_allclose(x_again.numpy(), x.numpy(), rtol=0, atol=atol)
  y = random([2, *event_shape], dtype, seed=2)
  y_again = bijector.forward(tf.identity(bijector.inverse(y)))
  np.testing.assert_allclose(y_again.numpy(), y.numpy(), rtol=0, atol=atol)


def check_log_det(bijector, event_shape, dtype):
  rtol = LOG_DET_RTOL[dtype]
  x = random([2, *event_shape], dtype, seed=3)
  expected = slogdet(dense_jacobian(bijector.forward, x))
  fldj = bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=3)
  np.testing.assert_allclose(fldj.numpy(), expected, rtol=rtol, atol=rtol)
  y = tf.identity(bijector.forward(x))
  ildj = bijector.inverse_log_det_jacobian(y, event_ndims=3)
  np.testing.assert_allclose(ildj.numpy(), -fldj.numpy(), rtol=rtol, atol=rtol)
  # ... and the inverse's own dense Jacobian.
  y = random([2, *event_shape], dtype, seed=4)
  expected = slogdet(dense_jacobian(bijector.inverse, y))
  ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3)
  np.testing.assert_allclose(ildj.numpy(), expected, rtol=rtol, atol=rtol)


def check_modes_agree(bijector, event_shape, dtype):
  """Eager, `tf.function` and `tf.function(jit_compile=True)` agree."""
  rtol = MODES_RTOL[dtype]
  x = random([2, *event_shape], dtype, seed=5)
  y = tf.identity(bijector.forward(x))

  def run(x, y):
    return (bijector.forward(tf.identity(x)), bijector.inverse(tf.identity(y)),
            bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=3),
            bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3))

  eager = run(x, y)
  for compiled in (tf.function(run), tf.function(run, jit_compile=True)):
    for want, got in zip(eager, compiled(x, y)):
      np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=rtol,
                                 atol=rtol)


def _base(event_shape, dtype):
  return tfd.Sample(tfd.Normal(tf.constant(0., dtype), 1.), event_shape)


def check_gradients(bijector, event_shape, dtype):
  """Gradients of `log_prob` reach every trainable variable, finite."""
  variables = bijector.trainable_variables
  assert variables, "the bijector has no trainable variables"
  x = random([3, *event_shape], dtype, seed=6)
  for flow in (bijector, tfb.Invert(bijector)):
    dist = tfd.TransformedDistribution(_base(event_shape, dtype), flow)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(dist.log_prob(tf.identity(x)))
    grads = tape.gradient(loss, variables)
    for v, g in zip(variables, grads):
      assert g is not None, f"no gradient reaches {v.name}"
      assert np.all(np.isfinite(tf.convert_to_tensor(g).numpy())), v.name
      assert np.any(tf.convert_to_tensor(g).numpy() != 0), (
          f"zero gradient for {v.name}")


def check_gradients_compile(bijector, event_shape, dtype):
  """Gradients through both directions compile with XLA and equal eager.

  `log_prob` of `TransformedDistribution(base, b)` differentiates `b`'s
  inverse and its log-det, that of `TransformedDistribution(base, Invert(b))`
  its forward (the sampling direction of `b`'s inverse). Both lists of
  gradients come from one `tf.function(jit_compile=True)`, which must compile
  (an op without an XLA kernel raises there, no fallback) and match eager.
  """
  base = _base(event_shape, dtype)
  dists = [tfd.TransformedDistribution(base, flow)
           for flow in (bijector, tfb.Invert(bijector))]
  variables = bijector.trainable_variables
  x = random([2, *event_shape], dtype, seed=10)

  def gradients(x):
    result = []
    for dist in dists:
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(tf.identity(x)))
      result.append(tape.gradient(loss, variables))
    return result

  try:
    compiled = tf.function(gradients, jit_compile=True)(x)
  except tf.errors.InvalidArgumentError as e:
    raise AssertionError(
        f"the gradients do not compile with XLA: {e.message[:500]}") from e
  for direction, want, got in zip(("bijector", "Invert(bijector)"),
                                  gradients(x), compiled):
    for v, w, g in zip(variables, want, got):
      np.testing.assert_allclose(
          tf.convert_to_tensor(g).numpy(), tf.convert_to_tensor(w).numpy(),
          rtol=1e-4, atol=1e-4, err_msg=f"{direction}: {v.name}")


def check_batch_shapes(bijector, event_shape, dtype):
  for batch in ([], [2], [2, 3]):
    x = random(batch + list(event_shape), dtype, seed=8)
    y = bijector.forward(x)
    assert y.shape == x.shape
    assert bijector.inverse(tf.identity(y)).shape == x.shape
    assert bijector.forward_log_det_jacobian(
        x, event_ndims=3).shape == batch
    assert bijector.inverse_log_det_jacobian(
        tf.identity(y), event_ndims=3).shape == batch


def check_transformed_distribution(bijector, event_shape, dtype):
  """In a `tfb.Chain` inside a `TransformedDistribution`: change of variables.

  log p(x) must equal log N(z) - log|det J_f(z)| with z = f^-1(x) and the
  log-determinant from the dense Jacobian of the whole chain.
  """
  rtol = LOG_DET_RTOL[dtype]
  chain = tfb.Chain([tfb.Shift(tf.constant(0.25, dtype)), bijector,
                     tfb.Scale(tf.constant(1.5, dtype))])
  base = _base(event_shape, dtype)
  dist = tfd.TransformedDistribution(base, chain)
  x = dist.sample(2, seed=(1, 2))
  assert x.shape == [2, *event_shape]
  log_prob = dist.log_prob(tf.identity(x)).numpy()
  z = chain.inverse(tf.identity(x))
  expected = (base.log_prob(z).numpy() -
              slogdet(dense_jacobian(chain.forward, z)))
  np.testing.assert_allclose(log_prob, expected, rtol=rtol, atol=rtol)


def check_bad_input(case, bijector, dtype):
  """Bad events and constructor arguments raise clear errors."""
  h, w, c = case.event_shape
  bad_events = [
      (tf.zeros([w, c], dtype), "rank"),
      (tf.zeros([h, w, c + 1], dtype), "channels"),
      (tf.zeros([h, w, c], tf.float16 if dtype != tf.float16 else tf.float32),
       "dtype"),
  ]
  for event, message in bad_events:
    for method in (bijector.forward, bijector.inverse):
      try:
        method(event)
      except ValueError as e:
        assert message in str(e), (message, str(e))
      except TypeError as e:  # TFP's own dtype check may come first.
        assert message == "dtype", str(e)
      else:
        raise AssertionError(f"{method.__name__} accepted a bad {message}")
  for overrides, argument in case.bad_arguments:
    try:
      case.make(**{"dtype": dtype, **overrides})
    except ValueError as e:
      assert argument in str(e), (argument, str(e))
    else:
      raise AssertionError(f"constructor accepted {overrides}")
  strict = case.make(dtype, validate_args=True)
  bad = np.zeros([h, w, c], dtype.as_numpy_dtype)
  bad[0, 0, 0] = np.nan
  for method in (strict.forward, strict.inverse):
    try:
      method(tf.constant(bad))
    except (tf.errors.InvalidArgumentError, ValueError) as e:
      assert "finite" in str(e), str(e)
    else:
      raise AssertionError("validate_args=True accepted a NaN")


def check_jacobian_structure(case, bijector, dtype):
  if case.check_jacobian is None:
    return
  x = random([1, *case.event_shape], dtype, seed=9)
  case.check_jacobian(bijector, dense_jacobian(bijector.forward, x)[0])


CHECKS = {
    "round_trip": check_round_trip,
    "log_det": check_log_det,
    "modes_agree": check_modes_agree,
    "gradients": check_gradients,
    "batch_shapes": check_batch_shapes,
    "transformed_distribution": check_transformed_distribution,
}
