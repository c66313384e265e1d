"""XLA: Glow's log_prob, sampling and a full training step under jit_compile.

TPUs run only XLA programs, and Keras compiles `fit`'s step with XLA by
default on GPUs and TPUs. Here, on CPU, for every mixing, the same step
(log_prob of a batch, loss, gradients, a momentum SGD update of every
trainable variable, then samples from the updated flow) runs once eagerly and
once as a `tf.function(jit_compile=True)`, on two identical models, and must
give the same numbers.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import digits_models
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

keras = tfe_keras.keras


def make_model(mixing):
  """A tiny FlowModel with every variable moved off its initial value (two
  levels, one for periodic mixing: `digits_models.glow`)."""
  glow = digits_models.glow(mixing, hidden_channels=8, seed=3)
  glow.initialize(tf.random.stateless_uniform([16, 8, 8, 1], [1, 2]) - 0.5)
  rng = np.random.default_rng(0)
  for v in glow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0.0, 0.05, v.shape), v.dtype))
  model = tfe_keras.FlowModel(glow, num_bins=17)
  model.compile(optimizer=keras.optimizers.SGD(1e-3, momentum=0.9))
  model.optimizer.build(model.trainable_weights)
  return model


def make_step(model):
  """`step(x, z) -> (log_prob(x), loss, gradients, samples after update)`."""
  flow = model.flow

  def step(x, z):
    with tf.GradientTape() as tape:
      log_prob = model.distribution.log_prob(x)
      loss = -tf.reduce_mean(log_prob)
    variables = model.trainable_weights
    gradients = tape.gradient(loss, variables)
    model.optimizer.apply_gradients(zip(gradients, variables))
    return log_prob, loss, gradients, flow.forward(z)

  return step


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_jit_compiled_step_matches_plain_step(mixing):
  x = tf.random.stateless_uniform([4, 8, 8, 1], [5, 6]) - 0.5
  z = tf.random.stateless_normal([3, 8, 8, 1], [7, 8])
  plain, compiled = make_model(mixing), make_model(mixing)
  expected = make_step(plain)(x, z)  # eagerly: no XLA
  # With jit_compile=True an op without an XLA kernel raises, not falls back.
  step = tf.function(make_step(compiled), jit_compile=True)
  log_prob, loss, gradients, samples = step(x, z)
  np.testing.assert_allclose(log_prob, expected[0], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(loss, expected[1], rtol=1e-5)
  assert len(gradients) == len(expected[2]) == len(plain.trainable_weights)
  for g, e in zip(gradients, expected[2]):
    assert np.any(e.numpy() != 0.0)
    np.testing.assert_allclose(g, e, rtol=1e-3, atol=1e-5)
  for v, e in zip(
    compiled.flow.trainable_variables, plain.flow.trainable_variables
  ):
    np.testing.assert_allclose(v.numpy(), e.numpy(), rtol=1e-5, atol=1e-6)
  assert np.abs(expected[3]).max() < 10.0
  np.testing.assert_allclose(samples, expected[3], rtol=1e-4, atol=1e-4)


def test_sample_based_loss_trains_under_xla_as_eagerly():
  """Reverse KL, `E_q[log q(x) - log p(x)]` on samples `x = glow(z)`.

  The gradient runs through `Glow.forward`, i.e. through every emerging
  convolution's inverse (its triangular solves). Three SGD steps eagerly and
  as one `tf.function(jit_compile=True)` step, on two identical flows: the
  same losses and the same weights.
  """
  target = tfp.distributions.Normal(0.3, 0.7)

  def make_glow():
    glow = digits_models.glow(num_levels=1, hidden_channels=4, seed=5)
    glow.initialize(tf.random.stateless_uniform([8, 8, 8, 1], [3, 4]) - 0.5)
    return glow

  def make_step(glow):
    base = glow.base_distribution()

    def step(z):
      with tf.GradientTape() as tape:
        x = glow.forward(z)
        log_q = base.log_prob(z) - glow.forward_log_det_jacobian(
          z, event_ndims=3
        )
        loss = tf.reduce_mean(
          log_q - tf.reduce_sum(target.log_prob(x), axis=[1, 2, 3])
        )
      variables = glow.trainable_variables
      for v, g in zip(variables, tape.gradient(loss, variables)):
        v.assign_sub(2e-3 * g)
      return loss

    return step

  plain, compiled = make_glow(), make_glow()
  initial = [v.numpy() for v in plain.trainable_variables]
  eager_step = make_step(plain)
  xla_step = tf.function(make_step(compiled), jit_compile=True)
  losses = []
  for i in range(3):
    z = tf.random.stateless_normal([4, 8, 8, 1], [9, i])
    losses.append((eager_step(z).numpy(), xla_step(z).numpy()))
  eager, xla = np.array(losses).T
  np.testing.assert_allclose(xla, eager, rtol=1e-4)
  assert eager[-1] < eager[0]
  for v, e, start in zip(
    compiled.trainable_variables, plain.trainable_variables, initial
  ):
    np.testing.assert_allclose(v.numpy(), e.numpy(), rtol=1e-4, atol=1e-5)
    if "emerging" in e.name:  # the solves' kernels were trained
      assert np.abs(e.numpy() - start).max() > 1e-4, e.name
