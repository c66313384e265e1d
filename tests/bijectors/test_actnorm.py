"""ActNorm beyond the shared contract: the map itself and data-dependent init."""

import numpy as np
import tensorflow as tf

from tests import contract
from tests.bijectors import registry
from tfp_emerging import bijectors


def test_forward_matches_numpy():
  layer = registry._actnorm(tf.float64)
  x = contract.random([2, 4, 5, 3], tf.float64).numpy()
  expected = (x + layer.bias.numpy()) * np.exp(layer.log_scale.numpy())
  np.testing.assert_allclose(layer.forward(x).numpy(), expected, rtol=1e-12)


def test_new_layer_is_identity_and_uninitialised():
  layer = bijectors.ActNorm(3)
  x = contract.random([2, 4, 4, 3], tf.float32)
  np.testing.assert_array_equal(layer.forward(x).numpy(), x.numpy())
  assert not bool(layer.initialized.numpy())
  assert len(layer.trainable_variables) == 2
  assert len(layer.variables) == 3


def test_data_dependent_initialisation_standardises_the_batch():
  layer = bijectors.ActNorm(3, dtype=tf.float64)
  scale = np.array([0.1, 2., 30.])
  loc = np.array([-5., 0.5, 7.])
  x = contract.random([8, 6, 6, 3], tf.float64).numpy() * scale + loc
  layer.initialize(x)
  assert bool(layer.initialized.numpy())
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0., atol=1e-9)
  np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1., rtol=1e-5)


def test_checkpoint_restores_the_initialised_state():
  layer = bijectors.ActNorm(2)
  x = contract.random([4, 3, 3, 2], tf.float32) * 3. + 1.
  layer.initialize(x)
  want = layer.forward(x).numpy()
  path = tf.train.Checkpoint(layer=layer).save(
      f"{tf.compat.v1.test.get_temp_dir()}/actnorm")
  fresh = bijectors.ActNorm(2)
  tf.train.Checkpoint(layer=fresh).restore(path).assert_consumed()
  assert bool(fresh.initialized.numpy())
  np.testing.assert_array_equal(fresh.forward(tf.identity(x)).numpy(), want)
