"""`VariationalDequantizer`, `q(u | k)`'s flow: the shared conditional
contract (round trips, log-det against the dense Jacobian's slogdet, eager
= tf.function = XLA, gradients), a density on the unit cube that integrates
to one, the new layer's closed form, configs and bad arguments; and a `q`
trained through `FlowModel.fit` against a bound known in closed form."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf
from tensorflow import keras
from tensorflow_probability import bijectors as tfb
from tensorflow_probability import distributions as tfd

from tests.testlib import contract
from tests.testlib import known_gap
from tfp_emerging.flows import VariationalDequantizer
from tfp_emerging.flows import variational_dequantization
from tfp_emerging.keras import FlowModel

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

NUM_BINS = 17


def _trained(image_shape, dtype, scale=0.3, seed=0, **kwargs):
  """A dequantizer with every variable drawn at a trained magnitude (the
  new layer's zero last layers would hide the networks from the checks)."""
  q = VariationalDequantizer(
    image_shape, NUM_BINS, dtype=dtype, seed=seed, **kwargs
  )
  rng = np.random.default_rng(seed)
  for v in q.trainable_variables:
    v.assign(rng.normal(0.0, scale, v.shape).astype(dtype.as_numpy_dtype))
  return q


def _levels(shape, seed):
  return tf.constant(
    np.random.default_rng(seed).integers(0, NUM_BINS, shape), tf.int32
  )


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_conditional_contract(dtype):
  q = _trained((4, 6, 1), dtype, num_steps=2, hidden_channels=4)
  conditions = [_levels([2, 4, 6, 1], seed) for seed in (1, 2)]
  contract.check_conditional(
    q, (4, 6, 1), tf.float64 if dtype == tf.float64 else dtype, conditions
  )


def test_conditional_modes_agree():
  q = _trained((4, 6, 2), tf.float32, num_steps=2, hidden_channels=4)
  contract.check_conditional_modes(
    q, (4, 6, 2), tf.float32, [_levels([2, 4, 6, 2], s) for s in (1, 2)]
  )


def test_batch_shapes_and_the_range():
  q = _trained((4, 4, 1), tf.float64, scale=0.1)
  noise = tf.random.stateless_uniform([3, 2, 4, 4, 1], [1, 2], dtype=tf.float64)
  images = _levels([3, 2, 4, 4, 1], 3)
  u, log_q = q.sample_and_log_prob(noise, images)
  assert u.shape == (3, 2, 4, 4, 1) and log_q.shape == (3, 2)
  assert np.all((u.numpy() > 0) & (u.numpy() < 1))
  # log q by the inverse pass, another path through the layer.
  np.testing.assert_allclose(
    q.log_prob(tf.identity(u), images).numpy(),
    log_q.numpy(),
    rtol=1e-9,
    atol=1e-9,
  )
  # A condition broadcast over the events' batch.
  u_b, _ = q.sample_and_log_prob(noise, images[:1])
  u_0, _ = q.sample_and_log_prob(noise[:1], images[:1])
  np.testing.assert_allclose(u_b.numpy()[0], u_0.numpy()[0], atol=1e-12)


def test_q_is_a_density_on_the_unit_cube():
  # E_{u ~ U[0,1)^D}[q(u | k)] = 1: q integrates to one over the cube
  # (Monte Carlo, D = 4; the logistic base, couplings and sigmoid together).
  q = _trained((2, 2, 1), tf.float64, scale=0.2)
  images = tf.fill([200000, 2, 2, 1], 5)
  u = tf.random.stateless_uniform([200000, 2, 2, 1], [4, 0], dtype=tf.float64)
  density = np.exp(q.log_prob(u, images).numpy())
  error = density.std() / np.sqrt(density.size)
  assert abs(density.mean() - 1.0) < 5 * error and error < 0.02
  assert density.std() > 0.1  # not the uniform density in disguise


def test_a_new_dequantizer_in_closed_form():
  # Zero last layers: each coupling scales its second half of the channels
  # by sigmoid(2) (AffineCoupling), the reversal swaps the halves, so two
  # steps give u = sigmoid(sigmoid(2) logit(u_0)); log q follows by hand.
  steps = 2
  q = VariationalDequantizer(
    (4, 4, 2), NUM_BINS, num_steps=steps, dtype=tf.float64, seed=0
  )
  u0 = np.random.default_rng(0).uniform(0.01, 0.99, (2, 4, 4, 2))
  u, log_q = q.sample_and_log_prob(u0, _levels([2, 4, 4, 2], 0))
  a = 1.0 / (1.0 + np.exp(-2.0))
  eps = np.log(u0) - np.log1p(-u0)
  expected = 1.0 / (1.0 + np.exp(-a * eps))
  np.testing.assert_allclose(u.numpy(), expected, rtol=1e-10)

  def log_logistic(t):
    return -t - 2 * np.log1p(np.exp(-t))

  log_density = (
    log_logistic(eps) - np.log(a) - np.log(expected) - np.log1p(-expected)
  )
  np.testing.assert_allclose(
    log_q.numpy(), log_density.sum((1, 2, 3)), rtol=1e-9
  )


def test_config_round_trip():
  q = VariationalDequantizer(
    (4, 6, 3),
    NUM_BINS,
    num_steps=2,
    hidden_channels=5,
    seed=3,
    dtype=tf.float64,
  )
  config = q.get_config()
  assert config["image_shape"] == [4, 6, 3] and config["dtype"] == "float64"
  again = VariationalDequantizer.from_config(config)
  assert again.image_shape == (4, 6, 3) and again.num_steps == 2
  assert [v.shape for v in again.trainable_variables] == [
    v.shape for v in q.trainable_variables
  ]


@pytest.mark.parametrize(
  "arguments, name",
  [
    ({"image_shape": (5, 4, 1)}, "image_shape"),
    ({"image_shape": (4, 4)}, "image_shape"),
    ({"num_bins": 1}, "num_bins"),
    ({"num_steps": 0}, "num_steps"),
    ({"hidden_channels": 0}, "hidden_channels"),
    ({"dtype": tf.int32}, "dtype"),
  ],
)
def test_bad_arguments(arguments, name):
  with pytest.raises(ValueError, match=name):
    VariationalDequantizer(**{"image_shape": (4, 4, 1), **arguments})


def test_bad_inputs():
  q = VariationalDequantizer((4, 4, 1), NUM_BINS)
  eps = tf.zeros([2, 4, 4, 1])
  with pytest.raises(ValueError, match="conditional_input"):
    q.forward(eps)
  with pytest.raises(ValueError, match="conditional_input"):
    q.forward(eps, conditional_input=tf.zeros([2, 4, 4, 3]))
  with pytest.raises(ValueError, match="conditional_input"):
    q.forward(eps, conditional_input=tf.zeros([2, 4, 4, 1], tf.bool))
  with pytest.raises(ValueError, match="events"):
    q.forward(tf.zeros([2, 6, 4, 1]), conditional_input=tf.zeros([2, 6, 4, 1]))


def test_logistic_log_prob_is_scipys():
  t = np.linspace(-30.0, 30.0, 101)
  np.testing.assert_allclose(
    variational_dequantization.logistic_log_prob(t).numpy(),
    stats.logistic.logpdf(t),
    rtol=1e-12,
    atol=1e-12,
  )


# Trained through `FlowModel.fit` on the density whose discrete probability
# is known in closed form (`tests.testlib.known_gap`): the uniform bound is
# loose by a known gap. Its four dimensions as one 2x2 image.
GAUSSIAN_LEVELS = known_gap.LEVELS.reshape(2, 2, 1)
MU = known_gap.MU.reshape(2, 2, 1)


def _gaussian_model(dequantizer):
  flow = tfb.Chain(
    [
      tfb.Shift(MU.astype(np.float32)),
      tfb.Scale(np.float32(known_gap.SIGMA)),
    ]
  )
  return FlowModel(
    flow,
    known_gap.NUM_BINS,
    base_distribution=tfd.Sample(tfd.Normal(0.0, 1.0), [2, 2, 1]),
    dequantizer=dequantizer,
  )


def test_a_trained_q_closes_most_of_the_known_gap_and_stays_a_bound():
  exact, uniform = known_gap.exact_bits(), known_gap.jensen_bits()
  assert uniform - exact > 0.15
  model = _gaussian_model(
    VariationalDequantizer((2, 2, 1), known_gap.NUM_BINS, seed=0)
  )
  images = np.repeat(GAUSSIAN_LEVELS[None], 512, 0)
  bits = model.bits_per_dim(
    np.repeat(GAUSSIAN_LEVELS[None], 4096, 0), seed=1
  ).numpy()
  error = bits.std() / np.sqrt(bits.size)
  assert bits.mean() > exact - 5 * error  # a bound for any q, trained or not
  # The flow has no variables: fit trains q alone, through the bound.
  model.compile(keras.optimizers.Adam(3e-3))
  model.fit(images, batch_size=128, epochs=60, verbose=0)
  bits = model.bits_per_dim(
    np.repeat(GAUSSIAN_LEVELS[None], 4096, 0), seed=2
  ).numpy()
  error = bits.std() / np.sqrt(bits.size)
  assert bits.mean() > exact - 5 * error
  assert bits.mean() - exact < 0.25 * (uniform - exact)
  # Importance weighting with q as the proposal tightens it further.
  weighted = model.bits_per_dim(
    np.repeat(GAUSSIAN_LEVELS[None], 1024, 0), seed=3, num_samples=16
  ).numpy()
  assert exact - 5 * error < weighted.mean() < bits.mean()
