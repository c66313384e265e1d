"""Run by tests/integration/test_distribute.py in a fresh process: two
logical CPUs.

Logical devices must be configured before TensorFlow initialises its
devices, hence a process of its own. Prints one JSON line of results.

The uniform dequantisation noise is replaced by a fixed function of each
pixel's position in its image, so that a global batch gets the same noise
however it is split over replicas; everything else is `FlowModel`'s own.
"""

import contextlib
import dataclasses
import io
import json
import sys
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib.runs import DIGITS_1X1
from tests.testlib.runs import digits_glow
from tests.testlib.runs import first_examples
from tests.testlib.runs import flags
from tests.testlib.runs import quiet
from tfp_emerging import cli
from tfp_emerging import distribute
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training
from tfp_emerging.flows import dequantization
from tfp_emerging.flows import glow as glow_lib

# Before anything initialises TensorFlow's devices (the imports above do not).
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
  cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

NUM_BINS = 17
IMAGES, LABELS = first_examples(64)


def per_position_noise(shape, seed=None, dtype=tf.float32):
  """`u` in `(0.05, 0.95)` of `shape` `[N, ...]`, the same for every image."""
  del seed
  positions = tf.range(tf.reduce_prod(shape[1:]), dtype=dtype)
  u = 0.5 + 0.45 * tf.sin(0.7 * positions)
  return tf.broadcast_to(tf.reshape(u, shape[1:]), shape)


def dequantize_with_fixed_noise(images, num_bins):
  k = tf.cast(images, tf.float32)
  return (k + per_position_noise(tf.shape(k))) / num_bins - 0.5


dequantization.uniform_noise = per_position_noise


def build(strategy, num_classes=None):
  with strategy.scope():
    flow = digits_glow(
      num_classes=num_classes, condition_couplings=num_classes is not None
    )
    model = tfe_keras.FlowModel(flow, num_bins=NUM_BINS)
    model.compile(optimizer=tfe_keras.keras.optimizers.SGD(0.01, momentum=0.9))
  return model


class Recorder(tfe_keras.keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.losses = []

  def on_train_begin(self, logs=None):
    self.actnorm_bias = self.model.flow.actnorms[0].bias.numpy().tolist()

  def on_train_batch_end(self, batch, logs=None):
    self.losses.append(float(logs["loss"]))


def train(strategy, conditional=False):
  """Two epochs of `fit`; a class-conditional flow on `(images, labels)`."""
  model = build(strategy, num_classes=10 if conditional else None)
  recorder = Recorder()
  data = tf.data.Dataset.from_tensor_slices(
    (IMAGES, LABELS) if conditional else IMAGES
  ).batch(16)
  model.fit(data, epochs=2, verbose=0, callbacks=[recorder])
  return model, recorder


def values(model):
  return [v.numpy() for v in model.flow.variables]


def slots(model):
  return [v.numpy() for v in model.optimizer.variables]


def max_difference(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x, np.float64) - y))) for x, y in zip(a, b)
  )


def restored(strategy, path):
  model = build(strategy)
  with strategy.scope():
    model.optimizer.build(model.trainable_weights)
  tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore(
    path
  ).assert_consumed()
  return model


def implicit_initialisation(mirrored):
  """ActNorm's own initialisation under the mirrored strategy.

  Inside `strategy.run` an uninitialised flow raises (no replica initialises
  from its share); `fit` of a flow without `initialize` (a `tfb.Chain`)
  initialises it from the first global batch, by one `log_prob` outside the
  replicas.
  """
  with mirrored.scope():
    flow = digits_glow(num_levels=1, mixing="1x1")
    distribution = tfp.distributions.TransformedDistribution(
      flow.base_distribution(), flow
    )

  @tf.function
  def replica_log_prob(x):
    return mirrored.run(distribution.log_prob, args=(x,))

  first = dequantize_with_fixed_noise(IMAGES[:16], NUM_BINS)
  try:
    replica_log_prob(first)
    error = ""
  except tf.errors.InvalidArgumentError as e:
    error = e.message
  with mirrored.scope():
    chain = tfp.bijectors.Chain([flow])
    model = tfe_keras.FlowModel(
      chain, num_bins=NUM_BINS, base_distribution=flow.base_distribution()
    )
    model.compile(optimizer=tfe_keras.keras.optimizers.SGD(0.01))
  biases = []
  begin = tfe_keras.keras.callbacks.LambdaCallback(
    on_train_begin=lambda logs: biases.append(
      flow.actnorms[0].bias.numpy().tolist()
    )
  )
  model.fit(
    tf.data.Dataset.from_tensor_slices(IMAGES[:32]).batch(16),
    epochs=1,
    verbose=0,
    callbacks=[begin],
  )
  return {
    "replica_uninitialised_error": error,
    "chain_actnorm_bias_mirrored": biases[0],
    "chain_initialized": model.is_initialized(),
  }


def runs(mirrored, folder):
  """The command line's training runs under both strategies, crossed."""
  config = training.RunConfig(**DIGITS_1X1, epochs=1)
  one = training.train(config, folder + "/one", log=quiet, verbose=0)
  two = training.train(
    config, folder + "/two", log=quiet, verbose=0, strategy=mirrored
  )
  # Each run's second epoch under the other strategy.
  one_then_two = training.resume(
    folder + "/one", epochs=2, log=quiet, verbose=0, strategy=mirrored
  )
  two_then_one = training.resume(
    folder + "/two", epochs=2, log=quiet, verbose=0
  )
  # The command line's --strategy, with its strategy made by make_strategy:
  # the one MirroredStrategy of this process (two instances' collective ops
  # would clash in one process).
  asked = []

  def make_strategy(name):
    asked.append(name)
    return mirrored

  distribute.make_strategy = make_strategy
  with contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(
      ["train", "--out", folder + "/cli", "--strategy", "mirrored"]
      + flags(**DIGITS_1X1, epochs=1)
    )
  odd = dataclasses.replace(config, batch_size=255)
  try:
    training.train(
      odd, folder + "/odd", log=quiet, verbose=0, strategy=mirrored
    )
    odd_error = ""
  except training.RunError as e:
    odd_error = str(e)
  key = ("train_bits_per_dim", "test_bits_per_dim")
  return {
    "run_default": [[m[k] for k in key] for m in one],
    "run_mirrored": [[m[k] for k in key] for m in two],
    "run_default_then_mirrored": [[m[k] for k in key] for m in one_then_two],
    "run_mirrored_then_default": [[m[k] for k in key] for m in two_then_one],
    "cli_status": status,
    "cli_strategy": asked,
    "odd_batch_error": odd_error,
  }


def main():
  default = distribute.make_strategy("default")
  mirrored = distribute.make_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
  one, one_log = train(default)
  two, two_log = train(mirrored)
  first = dequantize_with_fixed_noise(IMAGES[:16], NUM_BINS)
  mean = tf.reduce_mean(glow_lib.squeeze(first), axis=[0, 1, 2]).numpy()
  half = tf.reduce_mean(glow_lib.squeeze(first[:8]), axis=[0, 1, 2]).numpy()

  folder = tempfile.mkdtemp()
  from_two = tf.train.Checkpoint(model=two, optimizer=two.optimizer).save(
    folder + "/mirrored"
  )
  from_one = tf.train.Checkpoint(model=one, optimizer=one.optimizer).save(
    folder + "/default"
  )
  one_again = restored(default, from_two)
  two_again = restored(mirrored, from_one)
  replica_values = [
    [r.numpy() for r in v.values] for v in two_again.flow.trainable_variables
  ]
  result = {
    "replicas": mirrored.num_replicas_in_sync,
    "losses_default": one_log.losses,
    "losses_mirrored": two_log.losses,
    "variables_difference": max_difference(values(one), values(two)),
    "actnorm_bias_mirrored": two_log.actnorm_bias,
    "actnorm_bias_default": one_log.actnorm_bias,
    "global_batch_mean": mean.tolist(),
    "replica_share_mean": half.tolist(),
    "mirrored_to_default": max_difference(values(one_again), values(two)),
    "mirrored_to_default_slots": max_difference(slots(one_again), slots(two)),
    "default_to_mirrored": max_difference(values(two_again), values(one)),
    "default_to_mirrored_replicas": max(
      max_difference(r, [v.numpy()] * len(r))
      for r, v in zip(replica_values, one.flow.trainable_variables)
    ),
    "restored_bits_mirrored_to_default": max_difference(
      [one_again.bits_per_dim(IMAGES[:8], seed=1)],
      [two.bits_per_dim(IMAGES[:8], seed=1)],
    ),
    "slots": len(slots(two)),
  }
  conditional_one, conditional_one_log = train(default, conditional=True)
  conditional_two, conditional_two_log = train(mirrored, conditional=True)
  result.update(
    {
      "conditional_losses_default": conditional_one_log.losses,
      "conditional_losses_mirrored": conditional_two_log.losses,
      "conditional_variables_difference": max_difference(
        values(conditional_one), values(conditional_two)
      ),
      "conditional_bits_difference": max_difference(
        [conditional_one.bits_per_dim(IMAGES[:8], labels=LABELS[:8], seed=1)],
        [conditional_two.bits_per_dim(IMAGES[:8], labels=LABELS[:8], seed=1)],
      ),
    }
  )
  result.update(implicit_initialisation(mirrored))
  result.update(runs(mirrored, folder))
  json.dump(result, sys.stdout)


if __name__ == "__main__":
  main()
