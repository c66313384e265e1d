"""One process of tests/integration/test_multiworker.py: the command line
with Keras' per-step logs recorded.

    python -m tests.testlib.multiworker_worker RECORD train ARGS...

runs `tfp_emerging.cli.main(["train", ARGS...])` (a worker of a multi-worker
run when `TF_CONFIG` names several, else one process) with a callback that
records the logs of every training step, then writes `RECORD`, a JSON
object: `status` (the exit status, also this process's), `steps` (the
per-step logs), `keras_3`. On several workers it then checks the seeded
initialisation: `initialize_unseeded` (the error of `FlowModel.initialize`
without a seed) and `implicit_actnorm_bias` (the first ActNorm's bias after
`FlowModel.fit`'s own initialisation, to compare across workers).

Run it under `TF_USE_LEGACY_KERAS=1` for a multi-worker run: the command
line would otherwise start itself again without this wrapper.
"""

import json
import sys

import tensorflow as tf

from tests.testlib.runs import digits_glow
from tests.testlib.runs import first_examples
from tfp_emerging import cli
from tfp_emerging import distribute
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training

RECORD = sys.argv[1]
record = {"steps": [], "keras_3": tfe_keras.KERAS_3}
strategies = []


class StepLogs(tfe_keras.keras.callbacks.Callback):
  def on_train_batch_end(self, batch, logs=None):
    record["steps"].append({k: float(v) for k, v in logs.items()})


def with_step_logs(function):
  def recorded(*args, **kwargs):
    return function(*args, callbacks=[StepLogs()], **kwargs)

  return recorded


def kept(make_strategy):
  def made(*args, **kwargs):
    strategies.append(make_strategy(*args, **kwargs))
    return strategies[-1]

  return made


def initialisation(strategy):
  """`FlowModel.initialize` without a seed, and `fit`'s own, on this
  worker."""
  with strategy.scope():
    flow = digits_glow(num_levels=1, mixing="1x1", hidden_channels=4)
    model = tfe_keras.FlowModel(flow, num_bins=17)
    model.compile(optimizer=tfe_keras.keras.optimizers.SGD(0.01))
  images, _ = first_examples(32)
  try:
    model.initialize(images)
    refused = ""
  except ValueError as e:
    refused = str(e)
  biases = []
  begin = tfe_keras.keras.callbacks.LambdaCallback(
    on_train_begin=lambda logs: biases.append(
      flow.actnorms[0].bias.numpy().tolist()
    )
  )
  model.fit(
    tf.data.Dataset.from_tensor_slices(images).batch(16),
    epochs=1,
    verbose=0,
    callbacks=[begin],
  )
  return {"initialize_unseeded": refused, "implicit_actnorm_bias": biases[0]}


training.train = with_step_logs(training.train)
training.resume = with_step_logs(training.resume)
distribute.make_strategy = kept(distribute.make_strategy)
record["status"] = cli.main(sys.argv[2:])
if record["status"] == 0 and distribute.is_multi_worker(strategies[0]):
  record.update(initialisation(strategies[0]))
with open(RECORD, "w", encoding="utf-8") as f:
  json.dump(record, f)
sys.exit(record["status"])
