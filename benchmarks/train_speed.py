"""Speed of the one training path against a bare `tf.function` training step.

Usage: python -m benchmarks.train_speed [--epochs N] [--quick] [--json]
       [--out FILE]

In one process, on the demo's configuration (`training.RunConfig()`: the
digits, 8 steps of emerging mixing, couplings 64 wide, batch 64: 23 steps per
epoch):

* the path: `tfp_emerging.training.train`, what `tfp-emerging train` runs:
  `FlowModel.fit` over `data.train_batches`, with every callback of a
  run (epoch record, NaN guard, Keras' one-line-per-epoch progress bar,
  checkpoint and `metrics.json` after every epoch) and the evaluation of the
  test set at the end of each epoch;
* the bare loop: a Python `for` over the same epoch's batches (the same
  `data.train_batches` pipeline) calling one `tf.function` that computes
  the mean bits/dim, its gradients and Adam's update for a second model of
  the same configuration; no Keras `fit`, no callbacks, no host sync until
  the end of the epoch.

They take turns epoch by epoch (the bare epoch `E` runs at the end of the
path's epoch `E`, after its checkpoint), so that both see the same load.
The first epoch of each (tracing) is left out; the figures are medians over
the others. With the default 10 epochs the run writes its checkpoints
through the traced writer (`callbacks.TRACED_SAVE_EPOCHS`), as the demo's
40 epochs do; its trace falls in the first epoch.

Reported, per epoch:

* `path_seconds`: from the start of the path's epoch to the end of its last
  callback (checkpoint and `metrics.json` written), minus its end-of-epoch
  evaluation;
* `path_test_seconds`: that evaluation (all 297 test digits), apart;
* `bare_seconds`: the bare loop over the same batches;
* `ratio = path_seconds / bare_seconds` (the target: at most 1.1), and
  `fit_ratio`, the same for the path's epoch up to its evaluation (Keras'
  loop without the end-of-epoch callbacks).
"""

import argparse
import dataclasses
import json
import os
import statistics
import tempfile
import time

import tensorflow as tf

from tfp_emerging import data as data_lib
from tfp_emerging import training
from tfp_emerging.keras import LEVELS
from tfp_emerging.keras import NOISE


class _BareLoop:
  """One epoch of bare training steps over `train_batches`' batches."""

  def __init__(self, config, data):
    self.model = training.build_model(config)
    # Every epoch's batches, read through one iterator as `fit` does.
    batches, self._steps = data_lib.train_batches(
      data,
      config.batch_size,
      config.seed,
      1,
      config.epochs,
      dtype=self.model.distribution.dtype,
    )
    self._batches = iter(batches)
    self.model.initialize(
      data_lib.first_images(data, config.batch_size, config.seed, 1),
      seed=config.seed,
    )
    variables = self.model.trainable_weights
    optimizer = self.model.optimizer
    optimizer.build(variables)
    density = self.model.discrete_flow

    def step(batch):
      with tf.GradientTape() as tape:
        bits = density.bits_per_dim(batch[LEVELS], batch[NOISE])
        loss = tf.reduce_mean(bits)
      optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
      return loss

    self._step = tf.function(step, jit_compile=self.model.jit_compile)

  def epoch(self):
    """Trains over the next epoch's batches; returns the wall seconds."""
    start = time.perf_counter()
    loss = None
    for _ in range(self._steps):
      loss = self._step(next(self._batches))
    float(loss)  # waits for the last step
    return time.perf_counter() - start


class _Turns(tf.keras.callbacks.Callback):
  """The path's last callback: stamps the end of each epoch's callbacks,
  then runs the bare loop over the same epoch's batches."""

  def __init__(self, bare):
    super().__init__()
    self._bare = bare
    self.starts, self.ends, self.bare_seconds = [], [], []

  def on_epoch_begin(self, epoch, logs=None):
    del epoch, logs
    self.starts.append(time.perf_counter())

  def on_epoch_end(self, epoch, logs=None):
    self.ends.append(time.perf_counter())
    del epoch, logs
    self.bare_seconds.append(self._bare.epoch())


def measure(epochs=10, quick=False):
  """Runs both for `epochs` epochs; returns the record."""
  config = training.RunConfig(epochs=epochs)
  if quick:  # a tiny model, for a smoke test of this script
    config = dataclasses.replace(config, num_steps=1, hidden_channels=8)
  data = data_lib.load(config.dataset, num_levels=config.num_levels)
  bare = _BareLoop(config.with_data(data), data)
  turns = _Turns(bare)
  with tempfile.TemporaryDirectory() as run_dir:
    metrics = training.train(
      config,
      os.path.join(run_dir, "run"),
      log=lambda message: None,
      verbose=2,
      callbacks=[turns],
    )
  path = [
    end - start - record["test_seconds"]
    for start, end, record in zip(turns.starts, turns.ends, metrics)
  ]
  ratios = [p / b for p, b in zip(path, turns.bare_seconds)]
  fit_ratios = [
    m["train_seconds"] / b for m, b in zip(metrics, turns.bare_seconds)
  ]
  later = slice(1, None)  # epoch 1 traces
  return {
    "config": dataclasses.asdict(config.with_data(data)),
    "steps_per_epoch": data.num_examples["train"] // config.batch_size,
    "path_seconds": path,
    "path_test_seconds": [m["test_seconds"] for m in metrics],
    # From the epoch's start to its evaluation: Keras' loop alone.
    "path_fit_seconds": [m["train_seconds"] for m in metrics],
    "bare_seconds": turns.bare_seconds,
    "median_path_seconds": statistics.median(path[later]),
    "median_bare_seconds": statistics.median(turns.bare_seconds[later]),
    "median_path_test_seconds": statistics.median(
      [m["test_seconds"] for m in metrics][later]
    ),
    "ratio": statistics.median(ratios[later]),
    "ratios": ratios,
    # Keras' loop alone (the epoch up to its evaluation) over the bare one.
    "fit_ratio": statistics.median(fit_ratios[later]),
    "load_average": os.getloadavg(),
    "cpus": os.cpu_count(),
    "tensorflow": tf.__version__,
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument(
    "--epochs",
    type=int,
    default=10,
    help="epochs of each (the first is left out)",
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="a tiny model, to check that the script runs",
  )
  parser.add_argument(
    "--json", action="store_true", help="print one JSON record"
  )
  parser.add_argument("--out", default=None, help="also write the record")
  args = parser.parse_args(argv)
  if args.epochs < 2:
    parser.error("--epochs: at least 2 (the first traces)")
  record = measure(args.epochs, args.quick)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(record, f, indent=1)
  if args.json:
    print(json.dumps(record))
  else:
    print(
      f"{record['steps_per_epoch']} steps per epoch; medians over epochs "
      f"2..{args.epochs}:"
    )
    print(
      f"  command-line path: {record['median_path_seconds']:.3f} s per "
      f"epoch (+ {record['median_path_test_seconds']:.3f} s test "
      f"evaluation, not counted)"
    )
    print(f"  bare tf.function loop: {record['median_bare_seconds']:.3f} s")
    print(
      f"  ratio path / bare: {record['ratio']:.3f} (per epoch: "
      f"{', '.join(f'{r:.3f}' for r in record['ratios'][1:])}); load "
      f"average {record['load_average'][0]:.2f}"
    )
    print(
      f"  Keras' loop alone (up to the evaluation) / bare: "
      f"{record['fit_ratio']:.3f}"
    )
  return record


if __name__ == "__main__":
  main()
