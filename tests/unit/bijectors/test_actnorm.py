"""ActNorm beyond the shared contract: the map itself and data-dependent
initialisation."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tfp_emerging import bijectors

SCALE = np.array([0.1, 2.0, 30.0])
LOC = np.array([-5.0, 0.5, 7.0])


def spread(shape, dtype=tf.float64, seed=0):
  """Inputs far from standardised: per channel means LOC, scales SCALE."""
  return contract.random(shape, dtype, seed=seed).numpy() * SCALE + LOC


def numpy_initial_values(x):
  """Glow's data-dependent values, in numpy: `(-mean, -log(std + 1e-6))`."""
  axes = tuple(range(x.ndim - 1))
  return -x.mean(axis=axes), -np.log(x.std(axis=axes) + 1e-6)


def test_forward_matches_numpy():
  layer = registry.actnorm(tf.float64)
  x = contract.random([2, 4, 5, 3], tf.float64).numpy()
  expected = (x + layer.bias.numpy()) * np.exp(layer.log_scale.numpy())
  np.testing.assert_allclose(layer.forward(x).numpy(), expected, rtol=1e-12)


def test_new_layer_is_uninitialised_and_given_values_count_as_initialised():
  layer = bijectors.ActNorm(3)
  assert not bool(layer.initialized.numpy())
  assert len(layer.trainable_variables) == 2
  assert len(layer.variables) == 3
  given = bijectors.ActNorm(
    3, bias=tf.Variable([1.0, 2.0, 3.0]), log_scale=tf.Variable([0.0, 0.5, 1.0])
  )
  assert bool(given.initialized.numpy())
  x = contract.random([2, 4, 4, 3], tf.float32)
  expected = (x.numpy() + [1.0, 2.0, 3.0]) * np.exp([0.0, 0.5, 1.0])
  np.testing.assert_allclose(given.forward(x).numpy(), expected, rtol=1e-6)
  np.testing.assert_array_equal(given.bias.numpy(), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_first_forward_batch_initialises_the_layer(mode):
  """As TFP's tfb.Glow actnorm: the first batch sets the values, once."""
  layer = bijectors.ActNorm(3, dtype=tf.float64)

  def forward_and_log_det(x):
    return layer.forward(x), layer.forward_log_det_jacobian(x, event_ndims=3)

  run = {
    "eager": forward_and_log_det,
    "function": tf.function(forward_and_log_det),
    "xla": tf.function(forward_and_log_det, jit_compile=True),
  }[mode]
  x = spread([8, 6, 5, 3])
  y, log_det = run(tf.constant(x))
  assert bool(layer.initialized.numpy())
  bias, log_scale = numpy_initial_values(x)
  np.testing.assert_allclose(layer.bias.numpy(), bias, rtol=1e-9)
  np.testing.assert_allclose(layer.log_scale.numpy(), log_scale, rtol=1e-9)
  # The first batch is mapped with the new values (standardised), and so is
  # its log-det.
  np.testing.assert_allclose(
    y.numpy(), (x + bias) * np.exp(log_scale), rtol=1e-9
  )
  np.testing.assert_allclose(y.numpy().mean(axis=(0, 1, 2)), 0.0, atol=1e-9)
  np.testing.assert_allclose(
    log_det.numpy(), [6 * 5 * log_scale.sum()] * 8, rtol=1e-9
  )
  # Later batches use those values: no re-initialisation.
  other = spread([4, 6, 5, 3], seed=1) * 3.0
  y, _ = run(tf.constant(other))
  np.testing.assert_allclose(
    y.numpy(), (other + bias) * np.exp(log_scale), rtol=1e-9
  )
  np.testing.assert_allclose(layer.bias.numpy(), bias, rtol=1e-9)


def test_forward_log_det_alone_initialises_too():
  layer = bijectors.ActNorm(3, dtype=tf.float64)
  x = spread([4, 3, 3, 3])
  log_det = layer.forward_log_det_jacobian(x, event_ndims=3).numpy()
  assert bool(layer.initialized.numpy())
  np.testing.assert_allclose(
    log_det, 9 * numpy_initial_values(x)[1].sum(), rtol=1e-9
  )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_tf_function_argument_initialises_at_run_time(jit_compile):
  """A layer passed to a `tf.function` (old main: a `TypeError` reading the
  flag while tracing) reads its flag at run time: one trace serves an
  initialised layer, left as it is, and an uninitialised one, initialised
  from its batch."""
  forward = tf.function(
    lambda layer, x: layer.forward(x), jit_compile=jit_compile
  )
  trained = registry.actnorm(tf.float64)
  x = spread([8, 4, 4, 3])
  np.testing.assert_allclose(
    forward(trained, x).numpy(), trained.forward(x).numpy(), rtol=1e-12
  )
  fresh = bijectors.ActNorm(3, dtype=tf.float64)
  y = forward(fresh, x).numpy()
  assert forward.experimental_get_tracing_count() == 1
  assert bool(fresh.initialized.numpy())
  bias, log_scale = numpy_initial_values(x)
  np.testing.assert_allclose(fresh.bias.numpy(), bias, rtol=1e-10)
  np.testing.assert_allclose(fresh.log_scale.numpy(), log_scale, rtol=1e-10)
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-10)


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_inverse_of_an_uninitialised_layer_raises(mode):
  layer = bijectors.ActNorm(3)
  y = contract.random([2, 4, 4, 3], tf.float32)
  for method in (
    layer.inverse,
    lambda y: layer.inverse_log_det_jacobian(y, event_ndims=3),
  ):
    run = method if mode == "eager" else tf.function(method)
    with pytest.raises(
      tf.errors.InvalidArgumentError, match="is not initialised"
    ):
      run(y)
  assert not bool(layer.initialized.numpy())


def test_inverse_of_an_uninitialised_layer_is_nan_under_xla():
  """XLA drops assertions: the values are NaN instead, never silent."""
  layer = bijectors.ActNorm(3)
  y = contract.random([2, 4, 4, 3], tf.float32)
  x = tf.function(layer.inverse, jit_compile=True)(y).numpy()
  assert np.all(np.isnan(x))
  layer.initialize(y)
  x = tf.function(layer.inverse, jit_compile=True)(tf.identity(y)).numpy()
  assert np.all(np.isfinite(x))


def test_explicit_initialisation_standardises_and_reinitialises():
  layer = bijectors.ActNorm(3, dtype=tf.float64)
  x = spread([8, 6, 6, 3])
  layer.initialize(x)
  assert bool(layer.initialized.numpy())
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0.0, atol=1e-9)
  np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)
  other = spread([8, 6, 6, 3], seed=2) * 2.0
  layer.initialize(other)  # explicit: replaces the values
  np.testing.assert_allclose(
    layer.bias.numpy(), numpy_initial_values(other)[0], rtol=1e-9
  )


def test_replica_context_never_initialises_silently():
  """Inside strategy.run no layer initialises itself: it raises instead."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
  with strategy.scope():
    layer = bijectors.ActNorm(3)
  x = contract.random([2, 4, 4, 3], tf.float32)

  @tf.function
  def replica_forward(x):
    return strategy.run(layer.forward, args=(x,))

  with pytest.raises(
    tf.errors.InvalidArgumentError, match="is not initialised"
  ):
    replica_forward(x)
  assert not bool(layer.initialized.numpy())
  # Outside the replicas (the cross-replica context) it initialises.
  with strategy.scope():
    layer.forward(x)
  assert bool(layer.initialized.numpy())
  np.testing.assert_allclose(
    replica_forward(tf.identity(x)).numpy().std(axis=(0, 1, 2)), 1.0, rtol=1e-4
  )


def test_checkpoint_restores_the_initialised_state():
  layer = bijectors.ActNorm(2)
  x = contract.random([4, 3, 3, 2], tf.float32) * 3.0 + 1.0
  layer.initialize(x)
  want = layer.forward(x).numpy()
  path = tf.train.Checkpoint(layer=layer).save(
    f"{tf.compat.v1.test.get_temp_dir()}/actnorm"
  )
  fresh = bijectors.ActNorm(2)
  tf.train.Checkpoint(layer=fresh).restore(path).assert_consumed()
  assert bool(fresh.initialized.numpy())
  np.testing.assert_array_equal(fresh.forward(tf.identity(x)).numpy(), want)


@pytest.mark.parametrize("validate_args", [False, True])
@pytest.mark.parametrize("name", ["bias", "log_scale"])
def test_non_finite_parameter_values_are_refused_at_construction(
  name, validate_args
):
  values = dict(bias=np.zeros(3), log_scale=np.zeros(3))
  values[name] = np.array([0.0, np.nan, 0.0])
  with pytest.raises(ValueError, match=f"`{name}` must be finite"):
    bijectors.ActNorm(3, validate_args=validate_args, **values)


@pytest.mark.parametrize("name", ["bias", "log_scale"])
def test_variable_assigned_a_non_finite_value_fails_the_next_call(name):
  layer = registry.actnorm(tf.float64, validate_args=True)
  parameter_checks.assert_bad_assignment_fails(
    layer, getattr(layer, name), [0.0, np.inf, 0.0], name, [3, 4, 3]
  )


def test_make_trainable_builds_a_trainable_layer():
  """`tfp.experimental.util.make_trainable` creates `bias` and `log_scale`
  from their `shape_fn`s, and not the `initialized` flag (not preferred)."""
  layer = tfp.experimental.util.make_trainable(
    bijectors.ActNorm,
    batch_and_event_shape=[4, 5, 3],
    parameter_dtype=tf.float64,
    seed=[1, 2],
    channels=3,
    dtype=tf.float64,
  )
  assert [v.shape.as_list() for v in layer.trainable_variables] == [[3], [3]]
  x = contract.random([2, 4, 5, 3], tf.float64)
  with tf.GradientTape() as tape:
    y = layer.forward(x)
    log_det = layer.forward_log_det_jacobian(x, event_ndims=3)
    loss = tf.reduce_sum(y) + tf.reduce_sum(log_det)
  bias, log_scale = layer.bias.numpy(), layer.log_scale.numpy()
  np.testing.assert_allclose(
    y.numpy(), (x.numpy() + bias) * np.exp(log_scale), rtol=1e-12
  )
  np.testing.assert_allclose(
    log_det.numpy(), [20 * np.sum(log_scale)] * 2, rtol=1e-12
  )
  gradients = tape.gradient(loss, layer.trainable_variables)
  assert all(g is not None for g in gradients)
