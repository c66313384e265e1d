"""`FlowModel.evaluate(..., num_samples=K)`, `bits_per_dim(num_samples=K)`,
`training.evaluate(num_samples=K)` and `evaluate --samples K`, against the
flow's own `log_prob` of the same draws, averaged with scipy's logsumexp."""

import json

import numpy as np
import pytest
from scipy import special
import tensorflow as tf

from tests.testlib.digits_models import NUM_BINS
from tests.testlib.digits_models import TEST
from tests.testlib.digits_models import digits
from tests.testlib.runs import tiny_config
from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.data import pipeline
from tfp_emerging.flows import dequantization

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

D = 64


def _reference_bits(model, x):
  """Importance-weighted bits/dim of draws `x` `[B, K, 8, 8, 1]`."""
  b, k = x.shape[:2]
  log_prob = (
    model.distribution.log_prob(tf.reshape(x, [b * k, 8, 8, 1]))
    .numpy()
    .astype(np.float64)
  )
  log_mean = special.logsumexp(log_prob.reshape(b, k), axis=1) - np.log(k)
  return -(log_mean - D * np.log(NUM_BINS)) / (D * np.log(2.0))


@pytest.fixture(scope="module")
def digits_model(digits_npz):
  dataset = data.load(digits_npz)
  model = training.build_model(tiny_config(digits_npz).with_data(dataset))
  model.initialize(digits()[:64], seed=0)
  return model, dataset


def _dequantized(batches):
  """The pipeline's batches' draws dequantised by hand, `x = (k + u) / B -
  1/2` `[N, K, 8, 8, 1]`, and their weights `[N]`."""
  k = np.concatenate([b[pipeline.LEVELS].numpy() for b in batches])
  u = np.concatenate([b[pipeline.NOISE].numpy() for b in batches])
  weight = np.concatenate([b[pipeline.WEIGHT].numpy() for b in batches])
  x = (k[:, None] + u) / np.float32(NUM_BINS) - np.float32(0.5)
  return x.astype(np.float32), weight


def test_evaluation_batches_carry_k_draws_the_first_the_usual_one(digits_model):
  _, dataset = digits_model
  one = next(iter(pipeline.test_batches(dataset, 32, seed=5)))
  four = next(iter(pipeline.test_batches(dataset, 32, seed=5, num_samples=4)))
  u1, u4 = one[pipeline.NOISE].numpy(), four[pipeline.NOISE].numpy()
  assert u4.shape == (32, 4, 8, 8, 1)
  assert four[pipeline.LEVELS].shape == (32, 8, 8, 1)
  np.testing.assert_array_equal(u4[:, 0], u1)
  np.testing.assert_array_equal(
    four[pipeline.LEVELS].numpy(), one[pipeline.LEVELS].numpy()
  )
  assert len({u4[0, j].tobytes() for j in range(4)}) == 4  # distinct noise


def test_evaluate_with_k_draws_is_the_logsumexp_of_the_draws(digits_model):
  model, dataset = digits_model
  batches = list(pipeline.test_batches(dataset, 10, seed=5, num_samples=8))
  x, weight = _dequantized(batches)
  expected = _reference_bits(model, x)[weight > 0].mean()
  got = training.evaluate(model, dataset, 10, seed=5, num_samples=8)
  assert got == pytest.approx(expected, rel=1e-5)
  single = training.evaluate(model, dataset, 10, seed=5)
  # Per image never above the mean of its draws' single-draw figures; here,
  # over 32 images, below the single-draw figure of the first draws too.
  per_draw = np.stack(
    [_reference_bits(model, x[:, j : j + 1]) for j in range(8)], 1
  )[weight > 0]
  assert np.all(
    _reference_bits(model, x)[weight > 0] <= per_draw.mean(1) + 1e-9
  )
  assert got < single
  # The single-draw evaluation is unchanged after a K-draw one.
  assert training.evaluate(model, dataset, 10, seed=5) == single


def test_bits_per_dim_with_k_draws_of_integer_images(digits_model):
  model, _ = digits_model
  images = digits()[TEST][:16]
  got = model.bits_per_dim(images, seed=3, num_samples=5).numpy()
  x = (
    dequantization.dequantize(
      np.repeat(images, 5, axis=0), NUM_BINS, seed=[3, 0]
    )
    .numpy()
    .reshape(16, 5, 8, 8, 1)
  )
  np.testing.assert_allclose(got, _reference_bits(model, x), rtol=1e-5)
  np.testing.assert_array_equal(
    model.bits_per_dim(images, seed=3, num_samples=1).numpy(),
    model.bits_per_dim(images, seed=3).numpy(),
  )
  # Keras' evaluate on integer images: K fresh draws each, then back to one.
  loss, bits = model.evaluate(images, batch_size=8, num_samples=5, verbose=0)
  assert loss == bits and abs(bits - got.mean()) < 0.05
  with pytest.raises(ValueError, match="num_samples"):
    model.evaluate(images, num_samples=0, verbose=0)
  with pytest.raises(ValueError, match="num_samples"):
    model.bits_per_dim(images, num_samples=2.5)


def test_cli_evaluate_samples(digits_npz, tmp_path, capsys):
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
  capsys.readouterr()
  assert cli.main(["evaluate", "--run", run, "--samples", "4", "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  _, model, _, _ = training.load_run(run)
  config = training.read_config(run)
  assert result["num_samples"] == 4
  assert result["bits_per_dim"] == pytest.approx(
    training.evaluate(
      model,
      data.load(digits_npz),
      config.batch_size,
      seed=config.seed,
      num_samples=4,
    ),
    rel=1e-6,
  )
  assert cli.main(["evaluate", "--run", run, "--samples", "4"]) == 0
  assert "importance-weighted over 4 draws" in capsys.readouterr().out
  assert cli.main(["evaluate", "--run", run, "--samples", "0"]) == 2
  assert "--samples must be an integer >= 1; got 0" in capsys.readouterr().err
