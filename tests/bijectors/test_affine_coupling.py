"""AffineCoupling beyond the shared contract: the map and its dependencies."""

import numpy as np
import tensorflow as tf

from tests import contract
from tests.bijectors import registry
from tfp_emerging import bijectors


def _numpy_network(layer, x_a):
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
        out += padded[:, a:a + h, b:b + wd] @ kernel[a, b]
    return out

  g = np.maximum(conv(x_a, w["hidden_kernel"]) + w["hidden_bias"], 0.)
  g = np.maximum(conv(g, w["middle_kernel"]) + w["middle_bias"], 0.)
  out = conv(g, w["output_kernel"]) + w["output_bias"]
  return out[..., 0::2], 1. / (1. + np.exp(-(out[..., 1::2] + 2.)))


def test_forward_and_log_det_match_numpy():
  layer = registry._coupling(tf.float64, channels=5)
  x = contract.random([2, 4, 6, 5], tf.float64).numpy()
  shift, scale = _numpy_network(layer, x[..., :2])
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y[..., :2], x[..., :2], rtol=0)
  np.testing.assert_allclose(y[..., 2:], (x[..., 2:] + shift) * scale,
                             rtol=1e-10)
  fldj = layer.forward_log_det_jacobian(tf.identity(x), event_ndims=3)
  np.testing.assert_allclose(fldj.numpy(),
                             np.log(scale).sum(axis=(1, 2, 3)), rtol=1e-10)


def test_new_layer_scales_by_sigmoid_two():
  layer = bijectors.AffineCoupling(4, hidden_channels=8, seed=3)
  x = contract.random([2, 4, 4, 4], tf.float32).numpy()
  y = layer.forward(x).numpy()
  np.testing.assert_allclose(y[..., :2], x[..., :2], rtol=0)
  np.testing.assert_allclose(y[..., 2:], x[..., 2:] / (1. + np.exp(-2.)),
                             rtol=1e-6)
  assert len(layer.trainable_variables) == 6


def test_forward_then_log_det_runs_the_network_once():
  layer = registry._coupling(tf.float32, channels=4)
  x = contract.random([2, 4, 4, 4], tf.float32)
  graph = tf.function(
      lambda x: (layer.forward(x), layer.forward_log_det_jacobian(
          x, event_ndims=3))).get_concrete_function(x).graph
  convolutions = [op for op in graph.get_operations()
                  if op.type == "Conv2D"]
  assert len(convolutions) == 3, [op.name for op in convolutions]
