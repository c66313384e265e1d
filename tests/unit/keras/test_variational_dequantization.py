"""`FlowModel(..., dequantizer=VariationalDequantizer(...))`: the bound on
a density whose discrete probability is known in closed form, trained
jointly through `fit`; the pipeline's batches against integer images;
saving; the run option and the command line."""

import json
import os

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib.digits_models import NUM_BINS as DIGIT_BINS
from tests.testlib.digits_models import TEST
from tests.testlib.digits_models import digits
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.data import pipeline
from tfp_emerging.flows import VariationalDequantizer
from tfp_emerging.flows import dequantization
from tfp_emerging.keras import FlowModel

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

tfb = tfp.bijectors
tfd = tfp.distributions
keras = tf.keras

# A factorised Gaussian per dimension, narrow against a bin and off-centre:
# the uniform bound is loose by a known gap (tests/unit/flows/
# test_importance_weighted.py derives both figures).
NUM_BINS = 17
LEVELS = np.array([3, 8, 8, 15]).reshape(2, 2, 1)
SIGMA = 0.4 / NUM_BINS
MU = (
  LEVELS + np.array([0.2, 0.5, 0.9, 0.35]).reshape(2, 2, 1)
) / NUM_BINS - 0.5
D = LEVELS.size


def _exact_bits():
  lo, hi = LEVELS / NUM_BINS - 0.5, (LEVELS + 1) / NUM_BINS - 0.5
  mass = stats.norm.cdf(hi, MU, SIGMA) - stats.norm.cdf(lo, MU, SIGMA)
  return -np.sum(np.log(mass)) / (D * np.log(2.0))


def _uniform_bits():
  width, centre = 1.0 / NUM_BINS, (LEVELS + 0.5) / NUM_BINS - 0.5
  nats = 0.5 * np.log(2 * np.pi * SIGMA**2) + (
    width**2 / 12 + (centre - MU) ** 2
  ) / (2 * SIGMA**2)
  return (np.sum(nats) + D * np.log(NUM_BINS)) / (D * np.log(2.0))


def _gaussian_model(dequantizer):
  flow = tfb.Chain(
    [tfb.Shift(MU.astype(np.float32)), tfb.Scale(np.float32(SIGMA))]
  )
  return FlowModel(
    flow,
    NUM_BINS,
    base_distribution=tfd.Sample(tfd.Normal(0.0, 1.0), [2, 2, 1]),
    dequantizer=dequantizer,
  )


def test_a_trained_q_closes_most_of_the_known_gap_and_stays_a_bound():
  exact, uniform = _exact_bits(), _uniform_bits()
  assert uniform - exact > 0.15
  model = _gaussian_model(VariationalDequantizer((2, 2, 1), NUM_BINS, seed=0))
  images = np.repeat(LEVELS[None], 512, 0)
  bits = model.bits_per_dim(np.repeat(LEVELS[None], 4096, 0), seed=1).numpy()
  error = bits.std() / np.sqrt(bits.size)
  assert bits.mean() > exact - 5 * error  # a bound for any q, trained or not
  # The flow has no variables: fit trains q alone, through the bound.
  model.compile(keras.optimizers.Adam(3e-3))
  model.fit(images, batch_size=128, epochs=60, verbose=0)
  bits = model.bits_per_dim(np.repeat(LEVELS[None], 4096, 0), seed=2).numpy()
  error = bits.std() / np.sqrt(bits.size)
  assert bits.mean() > exact - 5 * error
  assert bits.mean() - exact < 0.25 * (uniform - exact)
  # Importance weighting with q as the proposal tightens it further.
  weighted = model.bits_per_dim(
    np.repeat(LEVELS[None], 1024, 0), seed=3, num_samples=16
  ).numpy()
  assert exact - 5 * error < weighted.mean() < bits.mean()


def _reference_bits(model, images, u0):
  """The bound from the flow's `log_prob` and `q`'s inverse-pass density."""
  levels = tf.cast(images, tf.float32)
  q = model.dequantizer
  u, _ = q.sample_and_log_prob(u0, levels)
  x = (levels + u) / DIGIT_BINS - 0.5
  nats = (
    model.distribution.log_prob(x).numpy().astype(np.float64)
    - q.log_prob(tf.identity(u), levels).numpy()
  )
  return -(nats - 64 * np.log(DIGIT_BINS)) / (64 * np.log(2.0))


@pytest.fixture(scope="module")
def digits_model(digits_npz):
  dataset = data.load(digits_npz)
  config = training.RunConfig(
    dataset=digits_npz,
    dequantization="variational",
    num_steps=1,
    hidden_channels=8,
    epochs=1,
    batch_size=32,
    warmup_steps=4,
  )
  config = config.with_data(dataset)
  model = training.build_model(config)
  training.fit(model, dataset, config)
  return model, dataset, config


def test_the_model_is_the_bound_of_its_parts(digits_model):
  model, _, _ = digits_model
  assert isinstance(model.dequantizer, VariationalDequantizer)
  images = digits()[TEST][:16]
  u0 = dequantization.uniform_noise(images.shape, [7, 0])
  np.testing.assert_allclose(
    model.bits_per_dim(images, seed=7).numpy(),
    _reference_bits(model, images, u0),
    rtol=2e-5,
  )


def test_the_pipelines_batches_give_the_same_bits(digits_model):
  model, dataset, _ = digits_model
  batches = list(pipeline.test_batches(dataset, 10, seed=5))
  u0 = np.concatenate([b[pipeline.NOISE].numpy() for b in batches])
  k = np.concatenate([b[pipeline.LEVELS].numpy() for b in batches])
  weight = np.concatenate([b[pipeline.WEIGHT].numpy() for b in batches])
  expected = _reference_bits(model, k, u0)[weight > 0].mean()
  assert training.evaluate(model, dataset, 10, seed=5) == pytest.approx(
    expected, rel=1e-5
  )
  levels_only = pipeline.test_batches(dataset, 10, seed=5).map(
    lambda x: {pipeline.LEVELS: x[pipeline.LEVELS]}
  )
  with pytest.raises(ValueError, match="uniform noise"):
    model.evaluate(levels_only, verbose=0)


def test_fit_trains_q_and_its_variables_are_saved(digits_model, tmp_path):
  model, _, _ = digits_model
  fresh = VariationalDequantizer(
    (8, 8, 1), DIGIT_BINS, hidden_channels=4, seed=1
  )
  trained = {v.name: v.numpy() for v in model.dequantizer.trainable_variables}
  assert all(
    np.any(value != 0) for name, value in trained.items() if "output" in name
  ), "the zero last layers never moved"
  ids = {
    id(w.value if hasattr(w, "value") else w) for w in model.trainable_weights
  }
  assert all(id(v) in ids for v in model.dequantizer.trainable_variables)
  path = str(tmp_path / "m.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert isinstance(loaded.dequantizer, VariationalDequantizer)
  images = digits()[TEST][:8]
  np.testing.assert_allclose(
    loaded.bits_per_dim(images, seed=3).numpy(),
    model.bits_per_dim(images, seed=3).numpy(),
    rtol=1e-6,
  )
  assert fresh.num_bins == DIGIT_BINS
  with pytest.raises(ValueError, match="dequantizer"):
    FlowModel(model.flow, DIGIT_BINS, dequantizer=fresh.couplings[0])
  with pytest.raises(ValueError, match=r"dequantizer.*num_bins"):
    FlowModel(model.flow, 256, dequantizer=fresh)


def test_the_run_option_and_the_command_line(digits_npz, tmp_path, capsys):
  with pytest.raises(
    training.RunError,
    match="--dequantization must be one of uniform, variational",
  ):
    training.RunConfig(dequantization="learned")
  run = str(tmp_path / "run")
  assert (
    cli.main(
      [
        "train",
        "--dataset",
        digits_npz,
        "--out",
        run,
        "--epochs",
        "1",
        "--dequantization",
        "variational",
        "--num-levels",
        "1",
        "--num-steps",
        "1",
        "--hidden-channels",
        "8",
        "--batch-size",
        "32",
      ]
    )
    == 0
  )
  assert training.read_config(run).dequantization == "variational"
  capsys.readouterr()
  assert cli.main(["evaluate", "--run", run, "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  with open(os.path.join(run, "metrics.json"), encoding="utf-8") as f:
    last = json.load(f)["epochs"][-1]["test_bits_per_dim"]
  assert result["bits_per_dim"] == pytest.approx(last, rel=1e-6)
  _, model, _, _ = training.load_run(run)
  assert isinstance(model.dequantizer, VariationalDequantizer)
  assert (
    cli.main(["train", "--out", run, "--resume", "--dequantization", "uniform"])
    == 2
  )
  assert (
    "cannot change: --dequantization uniform (the run has variational)"
    in capsys.readouterr().err
  )
  train_help = (
    cli.build_parser()
    ._subparsers._group_actions[0]
    .choices["train"]
    .format_help()
  )
  assert "'variational'" in train_help and "(default uniform)" in train_help
