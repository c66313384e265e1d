"""AffineCoupling beyond the shared contract: the map and its dependencies."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tfp_emerging import bijectors

keras = tf.keras


def _numpy_network(layer, x_a, condition=None):
  """The documented network, with scipy-free numpy convolutions."""
  w = {key: value.numpy() for key, value in layer.weights.items()}

  def conv(x, kernel):
    k = kernel.shape[0]
    r = k // 2
    padded = np.pad(x, [(0, 0), (r, r), (r, r), (0, 0)])
    h, wd = x.shape[1], x.shape[2]
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for a in range(k):
      for b in range(k):
        out += padded[:, a : a + h, b : b + wd] @ kernel[a, b]
    return out

  pre = conv(x_a, w["hidden_kernel"]) + w["hidden_bias"]
  if condition is not None:
    pre += (condition @ w["condition_kernel"])[:, None, None, :]
  g = np.maximum(pre, 0.0)
  g = np.maximum(conv(g, w["middle_kernel"]) + w["middle_bias"], 0.0)
  out = conv(g, w["output_kernel"]) + w["output_bias"]
  return out[..., 0::2], 1.0 / (1.0 + np.exp(-(out[..., 1::2] + 2.0)))


def test_forward_and_log_det_match_numpy():
  layer = registry.coupling(tf.float64, channels=5)
  x = contract.random([2, 4, 6, 5], tf.float64).numpy()
  shift, scale = _numpy_network(layer, x[..., :2])
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y[..., :2], x[..., :2], rtol=0)
  np.testing.assert_allclose(
    y[..., 2:], (x[..., 2:] + shift) * scale, rtol=1e-10
  )
  fldj = layer.forward_log_det_jacobian(tf.identity(x), event_ndims=3)
  np.testing.assert_allclose(
    fldj.numpy(), np.log(scale).sum(axis=(1, 2, 3)), rtol=1e-10
  )


def test_new_layer_scales_by_sigmoid_two():
  layer = bijectors.AffineCoupling(4, hidden_channels=8, seed=3)
  x = contract.random([2, 4, 4, 4], tf.float32).numpy()
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y[..., :2], x[..., :2], rtol=0)
  np.testing.assert_allclose(
    y[..., 2:], x[..., 2:] / (1.0 + np.exp(-2.0)), rtol=1e-6
  )
  assert len(layer.trainable_variables) == 6


def test_forward_then_log_det_runs_the_network_once():
  layer = registry.coupling(tf.float32, channels=4)
  x = contract.random([2, 4, 4, 4], tf.float32)
  graph = (
    tf.function(
      lambda x: (
        layer.forward(x),
        layer.forward_log_det_jacobian(x, event_ndims=3),
      )
    )
    .get_concrete_function(x)
    .graph
  )
  convolutions = [op for op in graph.get_operations() if op.type == "Conv2D"]
  assert len(convolutions) == 3, [op.name for op in convolutions]


def test_conditional_forward_and_log_det_match_numpy():
  layer = registry.coupling(tf.float64, channels=5, conditional_size=3)
  x = contract.random([2, 4, 6, 5], tf.float64).numpy()
  c = contract.random([2, 3], tf.float64, seed=1).numpy()
  shift, scale = _numpy_network(layer, x[..., :2], c)
  y = layer.forward(x, conditional_input=c).numpy()
  np.testing.assert_allclose(y[..., :2], x[..., :2], rtol=0)
  np.testing.assert_allclose(
    y[..., 2:], (x[..., 2:] + shift) * scale, rtol=1e-10
  )
  fldj = layer.forward_log_det_jacobian(
    tf.identity(x), event_ndims=3, conditional_input=c
  )
  np.testing.assert_allclose(
    fldj.numpy(), np.log(scale).sum(axis=(1, 2, 3)), rtol=1e-10
  )


def test_conditional_contract():
  """Round trips, dense-Jacobian log-dets, cache, gradients, XLA per
  condition; the last condition, one vector, serves the whole batch."""
  layer = registry.coupling(tf.float64, channels=3, conditional_size=2)
  conditions = [contract.random([2, 2], tf.float64, seed=s) for s in (1, 2)]
  contract.check_conditional(
    layer, (4, 5, 3), tf.float64, conditions + [np.array([0.5, -1.0])]
  )
  contract.check_conditional_modes(layer, (4, 5, 3), tf.float64, conditions)


def test_new_conditional_layer_is_the_unconditional_one():
  conditional = bijectors.AffineCoupling(
    4, hidden_channels=8, seed=3, conditional_size=2
  )
  plain = bijectors.AffineCoupling(4, hidden_channels=8, seed=3)
  for key, weight in plain.weights.items():
    weight.assign(registry.trained(weight.shape, 0.3, 7, tf.float32))
    conditional.weights[key].assign(weight)
  assert len(conditional.trainable_variables) == 7
  x = contract.random([2, 4, 4, 4], tf.float32)
  np.testing.assert_allclose(
    conditional.forward(x, conditional_input=[[1.0, 0.0], [0.0, 1.0]]),
    plain.forward(x),
    rtol=1e-6,
  )


def test_keras_network_with_the_default_weights_is_the_default_layer():
  """`network` replaces the network: the documented one, written in Keras
  with the default layer's weights, gives the same map and log-det."""
  default = registry.coupling(tf.float64, channels=4, kernel_size=3)
  w = default.weights
  network = keras.Sequential(
    [
      keras.Input((None, None, 2), dtype="float64"),
      keras.layers.Conv2D(
        4, 3, padding="same", activation="relu", dtype="float64"
      ),
      keras.layers.Conv2D(4, 1, activation="relu", dtype="float64"),
      keras.layers.Conv2D(4, 3, padding="same", dtype="float64"),
    ]
  )
  network.set_weights(
    [
      w[key].numpy()
      for key in (
        "hidden_kernel",
        "hidden_bias",
        "middle_kernel",
        "middle_bias",
        "output_kernel",
        "output_bias",
      )
    ]
  )
  custom = bijectors.AffineCoupling(4, network=network, dtype=tf.float64)
  assert custom.weights == {} and custom.network is network
  assert {id(v) for v in custom.trainable_variables} == {
    id(getattr(v, "value", v)) for v in network.weights
  }
  x = contract.random([2, 4, 6, 4], tf.float64)
  np.testing.assert_allclose(custom.forward(x), default.forward(x), rtol=1e-12)
  np.testing.assert_allclose(
    custom.inverse_log_det_jacobian(x, event_ndims=3),
    default.inverse_log_det_jacobian(x, event_ndims=3),
    rtol=1e-12,
  )


def test_any_callable_network_with_its_variables():
  kernel = tf.Variable(registry.trained([1, 1, 1, 2], 0.5, 3, tf.float32))

  def network(x_a):
    return tf.nn.convolution(x_a, kernel)

  layer = bijectors.AffineCoupling(
    2, network=network, network_variables=[kernel]
  )
  assert layer.trainable_variables == (kernel,)
  x = contract.random([3, 2, 2, 2], tf.float32).numpy()
  out = x[..., :1] * kernel.numpy()[0, 0]
  expected = (x[..., 1:] + out[..., :1]) / (1.0 + np.exp(-(out[..., 1:] + 2.0)))
  np.testing.assert_allclose(
    layer.forward(x).numpy()[..., 1:], expected, rtol=1e-6
  )


def test_bad_networks_and_conditions():
  built = registry.keras_coupling_network(4, tf.float32)
  unbuilt = keras.Sequential([keras.layers.Conv2D(4, 1)])
  for kwargs, message in [
    (dict(network=unbuilt), "build it first"),
    (dict(network=lambda x_a: x_a), "Keras layer or a `tf.Module`"),
    (dict(network=built, hidden_bias=np.zeros([4])), "either `network`"),
    (dict(network_variables=[tf.Variable(1.0)]), "needs `network`"),
    (dict(network=built, network_variables=[1.0]), "network_variables"),
    (dict(conditional_size=0), "conditional_size"),
    (dict(condition_kernel=np.zeros([2, 4])), "conditional_size"),
  ]:
    with pytest.raises(ValueError, match=message):
      bijectors.AffineCoupling(4, hidden_channels=4, **kwargs)
  wrong = bijectors.AffineCoupling(5, network=built)  # 4 outputs, not 6.
  with pytest.raises(ValueError, match="network"):
    wrong.forward(tf.zeros([2, 3, 3, 5]))
  x = tf.zeros([2, 3, 3, 4])
  plain = bijectors.AffineCoupling(4, hidden_channels=4)
  conditional = bijectors.AffineCoupling(
    4, hidden_channels=4, conditional_size=2
  )
  for call, message in [
    (
      lambda: plain.forward(x, conditional_input=tf.zeros([2, 2])),
      "unconditional",
    ),
    (lambda: conditional.forward(x), "is conditional"),
    (lambda: conditional.inverse(x), "is conditional"),
    (
      lambda: conditional.forward(x, conditional_input=tf.zeros([2, 3])),
      r"\[\.\.\., 2\]",
    ),
    (lambda: conditional.forward(x, conditional_input=[0, 1]), "floating"),
    (
      lambda: conditional.forward(x, conditional_input=tf.zeros([3, 2])),
      "broadcast",
    ),
  ]:
    with pytest.raises(ValueError, match=message):
      call()


@pytest.mark.parametrize("validate_args", [False, True])
@pytest.mark.parametrize(
  "name", ["hidden_kernel", "middle_bias", "output_bias"]
)
def test_non_finite_weight_values_are_refused_at_construction(
  name, validate_args
):
  shapes = dict(hidden_kernel=[3, 3, 2, 4], middle_bias=[4], output_bias=[4])
  bad = np.zeros(shapes[name])
  bad.flat[-1] = np.nan
  with pytest.raises(ValueError, match=f"`{name}` must be finite"):
    bijectors.AffineCoupling(4, 4, validate_args=validate_args, **{name: bad})


@pytest.mark.parametrize("name", ["hidden_kernel", "output_bias"])
def test_weight_variable_assigned_a_non_finite_value_fails_the_next_call(name):
  layer = registry.coupling(tf.float64, validate_args=True)
  variable = layer.weights[name]
  bad = variable.numpy()
  bad.flat[0] = np.inf
  parameter_checks.assert_bad_assignment_fails(
    layer, variable, bad, name, [4, 3, 3]
  )
