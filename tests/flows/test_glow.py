"""Glow: change of variables against a dense Jacobian, structure, directions."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests import contract
from tfp_emerging import bijectors
from tfp_emerging import flows

tfd = tfp.distributions

# Ops that solve a linear system or iterate: allowed only when sampling.
SOLVE_OPS = {"MatrixTriangularSolve", "MatrixSolve", "MatrixInverse",
             "BatchMatrixTriangularSolve", "While", "StatelessWhile"}


def small_glow(mixing, dtype=tf.float64, seed=1, **overrides):
  """A tiny Glow with variables moved off their initial values.

  4x4x2 images and two levels, except `periodic`, whose kernel needs the
  last level to be at least 3x3: 6x6x1 and one level there.
  """
  shape, levels = ((6, 6, 1), 1) if mixing == "periodic" else ((4, 4, 2), 2)
  kwargs = dict(image_shape=shape, num_levels=levels, num_steps=1,
                mixing=mixing, hidden_channels=8, seed=seed, dtype=dtype)
  kwargs.update(overrides)
  glow = flows.Glow(**kwargs)
  glow.initialize(contract.random([8, *shape], glow.dtype, seed=10) * 0.3)
  rng = np.random.default_rng(seed)
  for v in glow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0., 0.1, v.shape), glow.dtype))
  return glow


def standard_normal_log_prob(z):
  z = z.reshape(z.shape[0], -1)
  return -0.5 * np.sum(z ** 2, axis=1) - 0.5 * z.shape[1] * np.log(2 * np.pi)


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_log_prob_matches_dense_jacobian(mixing):
  glow = small_glow(mixing)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = contract.random([1, *glow.image_shape], tf.float64, seed=11) * 0.3
  log_prob = dist.log_prob(tf.identity(x)).numpy()
  z = glow.inverse(tf.identity(x)).numpy()
  jacobian = contract.dense_jacobian(glow.inverse, x)
  expected = standard_normal_log_prob(z) + contract.slogdet(jacobian)
  np.testing.assert_allclose(log_prob, expected, rtol=1e-10)
  # The sampling direction's own log-det: minus the density direction's at
  # the image it maps to; and, where it is cheap (no solver loops to
  # differentiate), from its own dense Jacobian.
  z = tf.constant(z)
  fldj = glow.forward_log_det_jacobian(z, event_ndims=3).numpy()
  x_again = tf.identity(glow.forward(z))
  np.testing.assert_allclose(
      fldj, -glow.inverse_log_det_jacobian(x_again, event_ndims=3).numpy(),
      rtol=1e-10)
  if mixing in ("1x1", "lu"):
    np.testing.assert_allclose(
        fldj, contract.slogdet(contract.dense_jacobian(glow.forward, z)),
        rtol=1e-10)


@pytest.mark.parametrize("mixing", ["emerging", "periodic"])
def test_round_trip_and_batch_shapes(mixing):
  glow = small_glow(mixing)
  for batch in ([], [3], [2, 2]):
    x = contract.random(batch + list(glow.image_shape), tf.float64, seed=12)
    z = glow.inverse(x)
    assert z.shape == x.shape
    assert glow.inverse_log_det_jacobian(x, event_ndims=3).shape == batch
    np.testing.assert_allclose(glow.forward(tf.identity(z)).numpy(),
                               x.numpy(), atol=1e-9)


def test_structure_and_variables():
  glow = flows.Glow((8, 8, 3), num_levels=3, num_steps=2, mixing="emerging",
                    hidden_channels=5, seed=0)
  channels = [[layer.channels for layer in layers] for layers in glow.steps]
  # Squeezed channels per level: 12, then half of 12 times 4, and so on.
  assert [c[0] for c in channels] == [12, 24, 48]
  kinds = [type(layer).__name__ for layer in glow.steps[0]]
  assert kinds == ["ActNorm", "Conv1x1", "EmergingConv2D",
                   "AffineCoupling"] * 2
  assert [type(p).__name__ for p in glow.priors] == [
      "ConditionalNormalPrior", "ConditionalNormalPrior",
      "LearnedNormalPrior"]
  # Non-trainable state: 6 ActNorm `initialized` flags and the fixed signs
  # of the 6 QR 1x1 convolutions.
  assert len(glow.variables) == len(glow.trainable_variables) + 6 + 6
  assert not glow.is_initialized()
  glow.initialize(tf.random.uniform([4, 8, 8, 3]) - 0.5)
  assert glow.is_initialized()


def test_new_flow_latent_is_standardised_by_initialisation():
  """After the data-dependent init, the latent of the init batch is ~N(0, 1)."""
  glow = flows.Glow((8, 8, 1), num_levels=2, num_steps=1, mixing="lu",
                    hidden_channels=4, seed=0)
  x = contract.random([64, 8, 8, 1], tf.float32, seed=3) * 0.2 + 0.1
  glow.initialize(x)
  z = glow.inverse(x).numpy()
  assert abs(z.mean()) < 0.1
  assert 0.8 < z.std() < 1.2


def test_bad_arguments():
  for kwargs, name in [
      (dict(image_shape=(6, 8, 1), num_levels=2), "image_shape"),
      (dict(image_shape=(8, 8), num_levels=1), "image_shape"),
      (dict(mixing="svd"), "mixing"),
      (dict(num_levels=0), "num_levels"),
      (dict(num_steps=0), "num_steps"),
      (dict(hidden_channels=0), "hidden_channels"),
      (dict(kernel_size=2), "kernel_size"),
      (dict(mixing="periodic", kernel_size=5), "kernel_size")]:
    arguments = dict(image_shape=(8, 8, 1), num_levels=1, num_steps=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
      flows.Glow(**arguments)


def test_custom_mixing_callable():
  made = []

  def mixing(channels, seed, dtype):
    made.append(channels)
    return bijectors.Conv1x1(channels, "lu", seed=seed, dtype=dtype)

  glow = flows.Glow((4, 4, 1), num_levels=2, num_steps=1, mixing=mixing,
                    hidden_channels=3, seed=0)
  assert made == [4, 8]
  assert type(glow.steps[1][1]) is bijectors.Conv1x1


def _op_types(concrete_function):
  graph_def = concrete_function.graph.as_graph_def()
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types.update(node.op for node in function.node_def)
  return types


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_log_prob_runs_convolutions_and_sampling_runs_solves(mixing):
  """The density path holds no per-pixel solve or loop; sampling solves.

  (Without XLA and with static sizes the wavefront's steps are unrolled, so
  the sampling path need not hold a loop.)
  """
  glow = small_glow(mixing, dtype=tf.float32)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  log_prob = tf.function(dist.log_prob).get_concrete_function(x)
  density = _op_types(log_prob)
  sampling = _op_types(tf.function(glow.forward).get_concrete_function(x))
  assert not density & SOLVE_OPS - {"MatrixTriangularSolve"}, density
  # The only triangular solves there form the QR 1x1's Q from its
  # Householder vectors (compact WY): C x C, never over the pixels.
  for op in log_prob.graph.get_operations():
    if op.type == "MatrixTriangularSolve":
      assert op.inputs[1].shape.rank == 2, op.inputs[1].shape
  assert "Conv2D" in density
  assert "MatrixTriangularSolve" in sampling
  if mixing == "periodic":
    assert "IRFFT2D" in sampling


def test_log_prob_evaluates_the_flow_once():
  """`inverse` caches its log-det: log_prob runs each network once."""
  glow = small_glow("lu", dtype=tf.float32)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  graph = tf.function(dist.log_prob).get_concrete_function(x).graph
  convolutions = sum(op.type == "Conv2D" for op in graph.get_operations())
  # 2 couplings x 3 convolutions + 1 split prior convolution.
  assert convolutions == 7


def test_squeeze_moves_each_2x2_block_into_channels():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  y = flows.glow.squeeze(tf.constant(x)).numpy()
  assert y.shape == (2, 2, 3, 12)
  for i, j, a, b, c in np.ndindex(2, 3, 2, 2, 3):
    assert y[1, i, j, (2 * a + b) * 3 + c] == x[1, 2 * i + a, 2 * j + b, c]
  np.testing.assert_array_equal(flows.glow.unsqueeze(tf.constant(y)), x)


def test_contract_gradients_and_bad_input():
  """Two checks of the shared contract on the whole flow (the others, XLA
  included, pass too but cost minutes: the dense Jacobian tests above cover
  the log-det)."""
  case = contract.Case(
      name="glow-emerging",
      make=lambda dtype, mixing="emerging", **overrides: small_glow(
          mixing, dtype, seed=3, **overrides),
      event_shape=(4, 4, 2),
      bad_arguments=(({"mixing": "svd"}, "mixing"),
                     ({"image_shape": (6, 4, 2)}, "image_shape"),
                     ({"dtype": tf.int32}, "dtype")))
  glow = case.make(tf.float32)
  contract.check_gradients(glow, case.event_shape, tf.float32)
  contract.check_bad_input(case, glow, tf.float32)
