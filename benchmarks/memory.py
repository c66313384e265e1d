"""Peak resident memory while the input pipeline streams a large dataset.

Usage: python -m benchmarks.memory [--dataset NAME] [--num-examples N]
       [--test-split NAME] [--test-examples N] [--batch-size B]
       [--train-steps S] [--json]

Runs the real tensorflow-datasets builder NAME (default
`imagenet_resized/64x64`) on N generated examples in its `train` split
(default 200,000: about 2.5 GB as uint8 at 64x64x3) and a small test split
(`validation`, ImageNet's), with no download
(`tfp_emerging/data/tfds_mock.py`: `tfds.testing.mock_data` with the split
metadata a prepared copy has). The images go through
`tfp_emerging.data.load` and `images("train")`, batched by B and
prefetched, for one full epoch.

Reported: the peak resident set size (`ru_maxrss`) just before
`data.load` (the baseline, after TensorFlow has run a tiny pipeline of the
same ops, so that its one-time allocations fall before it) and after the
epoch, their difference, and the data's size. A pipeline that held the split in
memory would grow by at least the data's size.

`--train-steps S` measures a short training run reading from the same
dataset instead of a bare epoch: S steps of the one training path
(`tfp_emerging.training.fit`, see `_short_training_run`), e.g.
`python -m benchmarks.memory --train-steps 50`.
"""

import argparse
import json
import resource
import sys
import time


def peak_rss_bytes():
  """The process's peak resident set size so far (Linux: KiB -> bytes)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _warm_up(tf, batch_size):
  """Runs a tiny pipeline of the measured ops once (from_generator, map,
  batch, prefetch), so that kernels and thread pools exist before the
  baseline."""
  tiny = tf.data.Dataset.from_generator(
    lambda: (tf.zeros((8, 8, 3), tf.uint8) for _ in range(2 * batch_size)),
    output_signature=tf.TensorSpec((8, 8, 3), tf.uint8),
  )
  tiny = tiny.map(tf.identity, num_parallel_calls=tf.data.AUTOTUNE)
  for _ in tiny.batch(batch_size).prefetch(tf.data.AUTOTUNE):
    pass


def _short_training_run(dataset, steps, batch_size):
  """`steps` training steps of the one training path on `dataset`.

  `tfp_emerging.training.fit` (what `tfp-emerging train` runs:
  `FlowModel.fit` over `data.train_batches` of the whole training split,
  stopped after `steps` steps, then the evaluation of the whole test split)
  on a small Glow (2 levels, 1 step per level, couplings 8 wide), so that
  the memory measured is the input pipeline's and the training loop's, not
  the model's. The pipeline permutes windows of
  `data.SHUFFLE_BUFFER_BYTES` (64 MiB) of images.

  Returns:
    The number of training images trained on.
  """
  import tensorflow as tf

  from tfp_emerging import training

  class StopAfter(tf.keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      if batch + 1 >= steps:
        self.model.stop_training = True

  config = training.RunConfig(
    dataset=dataset.name,
    num_levels=2,
    num_steps=1,
    hidden_channels=8,
    batch_size=batch_size,
    epochs=1,
    warmup_steps=10,
  ).with_data(dataset)
  model = training.build_model(config)
  records = training.fit(model, dataset, config, callbacks=[StopAfter()])
  if len(records) != 1 or int(model.optimizer.iterations.numpy()) != steps:
    raise RuntimeError(
      f"expected {steps} steps of one epoch; got "
      f"{int(model.optimizer.iterations.numpy())} steps, "
      f"{records}"
    )
  return steps * batch_size


def measure(
  dataset="imagenet_resized/64x64",
  num_examples=200000,
  test_split="validation",
  test_examples=1000,
  batch_size=64,
  train_steps=0,
):
  """Streams one epoch (or a short training run) and returns the record."""
  import numpy as np
  import tensorflow as tf

  from tfp_emerging import data
  from tfp_emerging.data.tfds_mock import mock_tfds

  _warm_up(tf, batch_size)
  with mock_tfds(dataset, {"train": num_examples, test_split: test_examples}):
    baseline = peak_rss_bytes()
    start = time.time()
    images = data.load(dataset)
    if train_steps:
      seen = _short_training_run(images, train_steps, batch_size)
    else:
      seen = 0
      stream = (
        images.images("train").batch(batch_size).prefetch(tf.data.AUTOTUNE)
      )
      for batch in stream:
        seen += int(batch.shape[0])
    seconds = time.time() - start
  peak = peak_rss_bytes()
  pixel_bytes = 1 if images.num_bins <= 256 else 2
  return {
    "dataset": dataset,
    "num_examples": num_examples,
    "image_shape": list(images.image_shape),
    "data_bytes": num_examples * int(np.prod(images.image_shape)) * pixel_bytes,
    "batch_size": batch_size,
    "train_steps": train_steps,
    "images_seen": seen,
    "baseline_rss_bytes": baseline,
    "peak_rss_bytes": peak,
    "growth_bytes": peak - baseline,
    "seconds": round(seconds, 1),
  }


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dataset", default="imagenet_resized/64x64")
  parser.add_argument("--num-examples", type=int, default=200000)
  parser.add_argument(
    "--test-split",
    default="validation",
    help="the name of the dataset's test split",
  )
  parser.add_argument("--test-examples", type=int, default=1000)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument(
    "--train-steps",
    type=int,
    default=0,
    help="measure this many training steps of the one "
    "training path instead of a bare epoch",
  )
  parser.add_argument(
    "--json", action="store_true", help="print one JSON record"
  )
  args = parser.parse_args(argv)
  record = measure(
    args.dataset,
    args.num_examples,
    args.test_split,
    args.test_examples,
    args.batch_size,
    args.train_steps,
  )
  if args.json:
    print(json.dumps(record))
  else:
    mib = 2.0**20
    print(
      f"{record['dataset']}: {record['images_seen']} of "
      f"{record['num_examples']} images {record['image_shape']} "
      f"({record['data_bytes'] / mib:.0f} MiB) in {record['seconds']} s, "
      f"batch {record['batch_size']}"
    )
    print(
      f"peak RSS before loading: {record['baseline_rss_bytes'] / mib:.0f}"
      f" MiB; after the epoch: {record['peak_rss_bytes'] / mib:.0f} MiB; "
      f"growth {record['growth_bytes'] / mib:.0f} MiB"
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
