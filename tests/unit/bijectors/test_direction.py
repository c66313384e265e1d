"""`sampling_direction` and `density_pass_inverses`: the layers in TFP's
direction, checked against the layers' own directions."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging import bijectors
from tfp_emerging import flows

tfb = tfp.bijectors
tfd = tfp.distributions


def _layers():
  return [
    bijectors.ActNorm(2, bias=[0.1, -0.2], log_scale=[0.3, 0.1]),
    bijectors.EmergingConv2D(2, seed=3),
    bijectors.Conv1x1(2, seed=4),
  ]


def test_sampling_direction_swaps_forward_and_inverse():
  layer = bijectors.EmergingConv2D(2, seed=1)
  turned = bijectors.sampling_direction(layer)
  x = tf.random.stateless_normal([3, 4, 4, 2], seed=[1, 2])
  np.testing.assert_allclose(turned.inverse(x), layer.forward(x), atol=1e-6)
  z = tf.identity(layer.forward(x))
  np.testing.assert_allclose(turned.forward(z), layer.inverse(z), atol=1e-4)
  np.testing.assert_allclose(
    turned.inverse_log_det_jacobian(x, event_ndims=3),
    layer.forward_log_det_jacobian(x, event_ndims=3),
    atol=1e-5,
  )


def test_log_prob_in_tfp_direction_is_the_change_of_variables():
  """`TransformedDistribution(base, sampling_direction(chain))` has the
  density `p(x) = N(f(x)) |det df/dx|` of the layers' forward `f`, computed
  here directly (independent of TFP's Invert)."""
  chain = tfb.Chain(_layers())
  base = tfd.Sample(tfd.Normal(0.0, 1.0), [4, 4, 2])
  image = tfd.TransformedDistribution(base, bijectors.sampling_direction(chain))
  x = tf.random.stateless_normal([5, 4, 4, 2], seed=[3, 4])
  expected = base.log_prob(chain.forward(x)) + chain.forward_log_det_jacobian(
    x, event_ndims=3
  )
  np.testing.assert_allclose(image.log_prob(x), expected, rtol=1e-5)


def test_density_pass_inverses_names_layers_run_backwards():
  layers = _layers()
  assert bijectors.density_pass_inverses(tfb.Chain(layers)) == layers
  assert not bijectors.density_pass_inverses(
    bijectors.sampling_direction(tfb.Chain(layers))
  )
  assert not bijectors.density_pass_inverses(
    tfb.Chain([bijectors.sampling_direction(layer) for layer in layers])
  )
  # TFP's own bijectors are taken as they come.
  assert not bijectors.density_pass_inverses(tfb.Chain([tfb.Shift(1.0)]))
  glow = flows.Glow(
    image_shape=(4, 4, 1), num_levels=1, num_steps=1, hidden_channels=4
  )
  assert not bijectors.density_pass_inverses(glow)
  assert bijectors.density_pass_inverses(tfb.Invert(glow)) == [glow]


def test_sampling_direction_refuses_what_is_no_bijector():
  with pytest.raises(ValueError, match="`bijector` must be a TFP bijector"):
    bijectors.sampling_direction(lambda x: x)
