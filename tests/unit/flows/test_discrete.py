"""`tfp_emerging.flows.discrete`: `DiscreteFlow`'s bits/dim against numpy.

The flow is a toy whose density is known in closed form: `x = mu + sigma
z`, `z` standard normal, on `[2, 2, 1]` images, so `log p(x)` is the sum of
`scipy.stats.norm.logpdf(x, mu, sigma)`; the bits/dim and the
importance-weighted bound are computed from their definitions in float64
(`-(log p - D log B) / (D log 2)`, scipy's `logsumexp`), never from the
code under test.
"""

import ast
import pathlib

import numpy as np
import pytest
from scipy import special
from scipy import stats
import tensorflow as tf
from tensorflow_probability import bijectors as tfb
from tensorflow_probability import distributions as tfd

import tfp_emerging
from tfp_emerging.flows import VariationalDequantizer
from tfp_emerging.flows import discrete
from tfp_emerging.flows.discrete import DiscreteFlow

NUM_BINS = 5
SHAPE = (2, 2, 1)
D = 4
MU = np.array([-0.2, 0.1, 0.0, 0.3]).reshape(SHAPE)
SIGMA = np.array([0.1, 0.2, 0.3, 0.15]).reshape(SHAPE)


def _toy(dequantizer=None, reshape=False):
  """`DiscreteFlow` of `x = mu + sigma z` (float64); with `reshape`, the
  latent is `[4]` and a `tfb.Reshape` makes the image, as in TFP's Glow."""
  shift = tf.Variable(MU, name="shift")
  flow = tfb.Chain([tfb.Shift(shift), tfb.Scale(SIGMA)])
  latent = SHAPE
  if reshape:
    flow = tfb.Chain([flow, tfb.Reshape(SHAPE, event_shape_in=[D])])
    latent = (D,)
  base = tfd.Sample(tfd.Normal(np.float64(0), np.float64(1)), latent)
  return DiscreteFlow(flow, NUM_BINS, base, dequantizer=dequantizer)


def _levels(num_images, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(0, NUM_BINS, (num_images, *SHAPE))


def _noise(shape, seed=1):
  return np.random.default_rng(seed).uniform(size=shape)


def _log_p(x):
  """`log p(x)` of the toy, summed over the image's axes (numpy)."""
  return stats.norm.logpdf(x, MU, SIGMA).sum((-3, -2, -1))


def _bits(log_p):
  return -(log_p - D * np.log(NUM_BINS)) / (D * np.log(2.0))


def test_bits_per_dim_of_one_draw_is_the_definition():
  levels, noise = _levels(6), _noise((6, *SHAPE))
  got = _toy().bits_per_dim(levels, noise).numpy()
  x = (levels + noise) / NUM_BINS - 0.5
  np.testing.assert_allclose(got, _bits(_log_p(x)), rtol=1e-12)
  assert got.shape == (6,)


def test_k_draws_are_the_importance_weighted_bound_by_logsumexp():
  levels, noise = _levels(3), _noise((3, 7, *SHAPE))
  got = _toy().bits_per_dim(levels, noise).numpy()
  x = (levels[:, None] + noise) / NUM_BINS - 0.5  # [3, 7, 2, 2, 1]
  log_mean = special.logsumexp(_log_p(x), axis=1) - np.log(7)
  np.testing.assert_allclose(got, _bits(log_mean), rtol=1e-12)
  # Tighter than the mean of the draws' single-draw bounds.
  assert np.all(got < _bits(_log_p(x)).mean(1))


def test_fresh_noise_is_seeded_and_k_draws_each():
  density, levels = _toy(), _levels(4)
  got = density.bits_per_dim(levels, seed=3, num_samples=2).numpy()
  # The noise: U[0, 1) [B K, H, W, C] drawn statelessly from [3, 0].
  noise = tf.random.stateless_uniform([8, *SHAPE], [3, 0], dtype=tf.float64)
  x = (levels[:, None] + noise.numpy().reshape(4, 2, *SHAPE)) / NUM_BINS
  log_mean = special.logsumexp(_log_p(x - 0.5), axis=1) - np.log(2)
  np.testing.assert_allclose(got, _bits(log_mean), rtol=1e-12)
  one = density.bits_per_dim(levels, seed=3).numpy()
  first = (levels + noise.numpy()[:4]) / NUM_BINS - 0.5
  np.testing.assert_allclose(one, _bits(_log_p(first)), rtol=1e-12)
  fresh = [density.bits_per_dim(levels).numpy() for _ in range(2)]
  assert not np.array_equal(fresh[0], fresh[1])


def test_variational_dequantisation_subtracts_log_q():
  """`q`'s draw `u` and `log q(u | k)` by its own inverse pass
  (`VariationalDequantizer.log_prob`), not the sampling pass."""
  q = VariationalDequantizer(
    SHAPE, NUM_BINS, hidden_channels=4, dtype=tf.float64, seed=0
  )
  for v in q.trainable_variables:  # away from the near-uniform start
    v.assign(
      tf.random.stateless_normal(v.shape, [1, 2], stddev=0.3, dtype=v.dtype)
    )
  density = _toy(dequantizer=q)
  levels, noise = _levels(5), _noise((5, *SHAPE))
  got = density.bits_per_dim(levels, noise).numpy()
  x, log_q = density.dequantize(levels, noise)
  u = (x.numpy() + 0.5) * NUM_BINS - levels
  assert np.all((u >= 0) & (u <= 1)) and np.std(u - noise) > 1e-2
  log_q = q.log_prob(u, tf.constant(levels, tf.float64)).numpy()
  np.testing.assert_allclose(got, _bits(_log_p(x.numpy()) - log_q), rtol=1e-6)
  assert {id(v) for v in q.variables} <= {id(v) for v in density.variables}


def test_a_reshaping_flow_takes_batches_of_unknown_size_in_chunks():
  """21 images, a batch size unknown to the trace: more than one chunk of
  `STATIC_CHUNK`, the last one padded; the same bits as the definition."""
  density = _toy(reshape=True)
  levels, noise = _levels(21), _noise((21, *SHAPE))
  spec = [tf.TensorSpec([None, *SHAPE], tf.float64)] * 2
  bits = tf.function(density.bits_per_dim, input_signature=spec)
  got = bits(tf.constant(levels, tf.float64), noise).numpy()
  assert discrete.STATIC_CHUNK < 21 and got.shape == (21,)
  x = (levels + noise) / NUM_BINS - 0.5
  np.testing.assert_allclose(got, _bits(_log_p(x)), rtol=1e-12)


def test_the_module_tracks_the_flows_variables():
  density = _toy()
  assert [v.name for v in density.trainable_variables] == ["shift:0"]
  assert density.image_shape == SHAPE and density.num_dims == D
  assert density.dtype == tf.float64 and density.num_classes is None


@pytest.mark.parametrize(
  "call, match",
  [
    (lambda d: d.bits_per_dim(_levels(2), _noise((2, 2, 2))), "noise"),
    (lambda d: d.bits_per_dim(_levels(2), _noise((2, *SHAPE)), seed=1), "seed"),
    (lambda d: d.bits_per_dim(_levels(2), labels=[0, 1]), "labels"),
    (
      lambda d: DiscreteFlow(d.flow, 1, d.distribution.distribution),
      "num_bins",
    ),
    (lambda d: DiscreteFlow("flow", 5), "bijector"),
    (lambda d: DiscreteFlow(tfb.Scale(2.0), 5), "base_distribution"),
    (
      lambda d: DiscreteFlow(tfb.Scale(2.0), 5, tfd.Normal(0.0, 1.0)),
      r"\[H, W, C\]",
    ),
    (
      lambda d: DiscreteFlow(
        d.flow,
        5,
        d.distribution.distribution,
        dequantizer=VariationalDequantizer((2, 2, 1), 7, dtype=tf.float64),
      ),
      "num_bins",
    ),
  ],
)
def test_refuses_what_it_cannot_score(call, match):
  with pytest.raises(ValueError, match=match):
    call(_toy())


def _imports(path):
  """The modules that the file at `path` imports (ast, not running it)."""
  tree = ast.parse(path.read_text(encoding="utf-8"))
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module:
      yield node.module
      for alias in node.names:
        yield f"{node.module}.{alias.name}"
    elif isinstance(node, ast.Import):
      yield from (alias.name for alias in node.names)


def test_needs_no_keras():
  """No module that `tfp_emerging.flows.discrete` reaches (through the
  package's own modules, not counting `tfp_emerging/__init__.py`) imports
  Keras (`tensorflow.keras`, `keras`, `tf_keras`, `tfp_emerging.keras`)."""
  root = pathlib.Path(tfp_emerging.__file__).parent
  seen, todo, found = set(), [root / "flows" / "discrete.py"], set()
  while todo:
    path = todo.pop()
    if path in seen:
      continue
    seen.add(path)
    for name in _imports(path):
      found.add(name)
      if name.startswith("tfp_emerging."):
        relative = pathlib.Path(*name.split(".")[1:])
        for candidate in (
          root / relative.with_suffix(".py"),
          root / relative / "__init__.py",
        ):
          if candidate.exists():
            todo.append(candidate)
  assert len(seen) > 5  # the walk follows the package's imports
  assert "tensorflow_probability.bijectors" in found
  assert not [
    name for name in found if {"keras", "tf_keras"} & set(name.split("."))
  ]
