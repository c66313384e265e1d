"""`tfp_emerging.data.pipeline`: resumable training batches, evaluation batches
that count every test image once."""

import ast
import itertools
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib.runs import first_test_images
from tests.testlib.runs import tiny_config
from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.data import pipeline
from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE
from tfp_emerging.data.pipeline import WEIGHT


def _numbered_images(tmp_path, num_train, num_test):
  """An .npz whose image `i` holds `i` in its first two pixels (base 251)."""

  def images(first, count):
    array = np.zeros((count, 4, 4, 1), np.uint8)
    index = np.arange(first, first + count)
    array[:, 0, 0, 0], array[:, 0, 1, 0] = index // 251, index % 251
    return array

  path = str(tmp_path / "numbered.npz")
  np.savez(path, train=images(0, num_train), test=images(num_train, num_test))
  return data.load(path)


def _indices(images):
  return (images[:, 0, 0, 0].astype(int) * 251 + images[:, 0, 1, 0]).tolist()


def _epochs(dataset, steps, batch_size):
  """Per epoch: the image indices and the noise of each batch."""
  batches = [(x[LEVELS].numpy(), x[NOISE].numpy()) for x in dataset]
  per_epoch = [batches[i : i + steps] for i in range(0, len(batches), steps)]
  assert all(b[0].shape[0] == batch_size for b in batches)
  return [
    ([_indices(k) for k, _ in epoch], [u for _, u in epoch])
    for epoch in per_epoch
  ]


def test_batches_of_a_resumed_pipeline_continue_the_uninterrupted_ones(
  tmp_path, monkeypatch
):
  numbered = _numbered_images(tmp_path, 100, 10)
  monkeypatch.setattr(pipeline, "SHUFFLE_BUFFER_BYTES", 16 * 40)  # 40 images
  assert pipeline.window_size(numbered, 16, 100) == 40
  full, steps = pipeline.train_batches(
    numbered, 16, seed=3, first_epoch=1, last_epoch=3
  )
  assert steps == 6  # 100 // 16; the other 4 images wait for a later epoch
  tf.random.set_seed(99)  # TensorFlow's global seed plays no part
  later, _ = pipeline.train_batches(
    numbered, 16, seed=3, first_epoch=2, last_epoch=3
  )
  epochs = _epochs(full, steps, 16)
  resumed = _epochs(later, steps, 16)
  assert len(epochs) == 3 and len(resumed) == 2
  for (indices, noise), (again, again_noise) in zip(epochs[1:], resumed):
    assert indices == again
    for a, b in zip(noise, again_noise):
      np.testing.assert_array_equal(a, b)
  orders = [list(itertools.chain(*indices)) for indices, _ in epochs]
  for order in orders:
    assert len(set(order)) == 96 and set(order) <= set(range(100))
  assert orders[0] != orders[1] != orders[2]
  # Images are permuted within windows of 40 of the seed-reordered source:
  # each epoch's first 40 images are the same 40.
  assert set(orders[0][:40]) == set(orders[1][:40])
  other, _ = pipeline.train_batches(
    numbered, 16, seed=4, first_epoch=1, last_epoch=1
  )
  assert _epochs(other, steps, 16)[0][0] != epochs[0][0]
  # The data-dependent initialisation sees epoch 1's first batch.
  first = pipeline.first_images(numbered, 16, seed=3, epoch=1)
  assert _indices(first.numpy()) == epochs[0][0][0]


def test_evaluation_counts_every_test_image_once(digits_npz):
  digits = data.load(digits_npz)
  config = tiny_config(digits_npz).with_data(digits)
  model = training.build_model(config)
  model.initialize(first_test_images(digits_npz, 32), seed=0)
  batches = list(pipeline.test_batches(digits, 10, seed=5))
  assert len(batches) == 4  # 32 images: 3 full batches and one padded
  weights = np.concatenate([b[WEIGHT].numpy() for b in batches])
  np.testing.assert_array_equal(weights, [1.0] * 32 + [0.0] * 8)
  k = np.concatenate([b[LEVELS].numpy() for b in batches])
  u = np.concatenate([b[NOISE].numpy() for b in batches])
  # The test images, and their noise in [0, 1); padding: zeros, noise 1/2.
  np.testing.assert_array_equal(k[:32], first_test_images(digits_npz, 32))
  assert u.dtype == np.float32 and u.min() >= 0 and u.max() < 1
  np.testing.assert_array_equal(k[32:], 0)
  np.testing.assert_array_equal(u[32:], 0.5)
  # Image i's noise: U[0, 1) drawn statelessly from (seed, i), the seed
  # folded as the pipeline's docstring says.
  for i in (0, 17, 31):
    seed = tf.constant([5, 0], tf.int64)
    for key in (2, i):  # _TEST_NOISE, then the image's index
      seed = tf.random.experimental.stateless_fold_in(
        seed, tf.constant(key, tf.int64)
      )
    np.testing.assert_array_equal(
      u[i], tf.random.stateless_uniform([8, 8, 1], seed=seed).numpy()
    )
  # The noise of an image does not depend on the batching.
  single = next(iter(pipeline.test_batches(digits, 32, seed=5)))
  np.testing.assert_array_equal(single[NOISE].numpy(), u[:32])
  x = (k[:32] + u[:32]) / np.float32(17) - np.float32(0.5)
  # The mean over images, computed from the log-density directly.
  log_prob = model.distribution.log_prob(x).numpy().astype(np.float64)
  expected = np.mean(-(log_prob - 64 * np.log(17)) / (64 * np.log(2)))
  for batch_size in (10, 32):
    assert training.evaluate(model, digits, batch_size, seed=5) == (
      pytest.approx(expected, rel=1e-6)
    )
  assert training.evaluate(model, digits, 32, seed=6) != (
    training.evaluate(model, digits, 32, seed=5)
  )


def test_the_pipeline_draws_the_noise_and_leaves_dequantising_to_flows():
  """The pipeline emits levels and noise; it imports nothing of `flows`
  (`tfp_emerging.flows.DiscreteFlow` dequantises, once)."""
  tree = ast.parse(pathlib.Path(pipeline.__file__).read_text(encoding="utf-8"))
  imported = [
    node.module
    for node in ast.walk(tree)
    if isinstance(node, ast.ImportFrom) and node.module
  ] + [
    alias.name
    for node in ast.walk(tree)
    if isinstance(node, ast.Import)
    for alias in node.names
  ]
  assert "tfp_emerging.ops" in imported  # the check can see imports
  assert not [m for m in imported if m.startswith("tfp_emerging.flows")]


def test_batches_refuse_a_dtype_that_is_not_floating(digits_npz):
  digits = data.load(digits_npz)
  with pytest.raises(ValueError, match="dtype"):
    pipeline.test_batches(digits, 8, seed=0, dtype=tf.int32)
