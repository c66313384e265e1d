"""Tiny training runs on the digits, shared by the training, CLI,
interruption and distribution tests and their workers; the digits
themselves (`first_examples`, the tests' one source of them), also as a
folder of PNG files."""

import json
import os
import struct
import zlib

import numpy as np
import tensorflow as tf

from tfp_emerging import cli
from tfp_emerging import data
from tfp_emerging import flows
from tfp_emerging import training

# A tiny flow on a small slice of the real digits (96 train, 32 test images,
# batch 32: 3 steps per epoch): seconds per epoch.
TINY = dict(
  num_levels=1,
  num_steps=1,
  hidden_channels=8,
  batch_size=32,
  learning_rate=1e-3,
  warmup_steps=4,
  keep_checkpoints=5,
)


# A small flow on all the digits (1500 training images) in batches of 256:
# the runs of the distribution and multi-worker tests.
DIGITS_1X1 = dict(
  dataset="digits",
  mixing="1x1",
  num_levels=1,
  num_steps=1,
  hidden_channels=8,
  batch_size=256,
  warmup_steps=1,
)


# The fields of one epoch's record of `tfp_emerging.training.callbacks` (a
# run's metrics.json adds `worse_than_uniform`).
EPOCH_RECORD_FIELDS = {
  "epoch",
  "train_bits_per_dim",
  "test_bits_per_dim",
  "seconds",
  "train_seconds",
  "test_seconds",
}


def flags(**options):
  """Command-line flags for `options`: `flags(num_levels=1)` is
  `["--num-levels", "1"]`."""
  return [
    part
    for name, value in options.items()
    for part in (f"--{name.replace('_', '-')}", str(value))
  ]


# The `TINY` flow's architecture as `tfp-emerging train` flags (the
# learning rate and checkpoints kept left at the command line's defaults).
TINY_FLAGS = flags(
  num_levels=1, num_steps=1, hidden_channels=8, batch_size=32, warmup_steps=4
)
# The same with LU mixing (quick to export).
TINY_LU_FLAGS = [*TINY_FLAGS, "--mixing", "lu"]


def tiny_config(dataset, **overrides):
  """A `RunConfig` of the `TINY` flow on `dataset`, one epoch."""
  values = dict(TINY, dataset=dataset, epochs=1)
  values.update(overrides)
  return training.RunConfig(**values)


def quiet(message):
  """A `log` that prints nothing."""
  del message


def epoch_bits(metrics):
  """The per-epoch records without their timings."""
  return [
    (m["epoch"], m["train_bits_per_dim"], m["test_bits_per_dim"])
    for m in metrics
  ]


def read_json(*path):
  with open(os.path.join(*path), encoding="utf-8") as f:
    return json.load(f)


def flow_log_prob(model, images):
  """Deterministic: the flow's log-density at fixed dequantised points (the
  centre of each pixel's bin)."""
  x = (tf.cast(images, tf.float32) + 0.5) / model.num_bins - 0.5
  return model.distribution.log_prob(x).numpy()


def first_examples(count, split="train", dataset="digits"):
  """The first `count` images and labels of `split` of `dataset` (a name or
  a path, as `tfp_emerging.data.load` takes it; the bundled digits by
  default): numpy `[count, H, W, C]` images and int32 `[count]` labels."""
  images, labels = zip(
    *data.load(dataset)
    .images(split, labels=True)
    .take(count)
    .as_numpy_iterator()
  )
  return np.stack(images), np.array(labels, np.int32)


def first_test_images(path, count):
  """The first `count` test images of the dataset at `path`."""
  images, _ = first_examples(count, "test", path)
  return images


def digits_glow(**options):
  """A `flows.Glow` for the 8x8x1 digits: two levels of one emerging step,
  8 hidden channels, seed 0, unless `options` (Glow's arguments) say
  otherwise."""
  glow_options = dict(
    num_levels=2, num_steps=1, mixing="emerging", hidden_channels=8, seed=0
  )
  glow_options.update(options)
  return flows.Glow((8, 8, 1), **glow_options)


def cli_tiny_run(dataset, out, *options, epochs=1, command="train"):
  """`tfp-emerging <command>` (`train` or `demo`) of the `TINY` flow on
  `dataset` into `out` for `epochs`, in process (checked to exit 0),
  `options` (flags) added; returns `out`."""
  where = ["--dataset", dataset, "--epochs", str(epochs), "--out", out]
  assert cli.main([command, *where, *TINY_FLAGS, *options]) == 0
  return out


def png_shape(path):
  """The `(height, width, channels)` of the PNG image at `path`."""
  with open(path, "rb") as f:
    return tuple(tf.io.decode_png(f.read()).shape)


def digits_png_folder(digits_npz, folder):
  """`(folder, images)`: the first 40 training digits of `digits_npz` as
  8-bit PNG files `00.png`... written to the new folder `folder`."""
  folder.mkdir()
  with np.load(digits_npz) as arrays:
    images = arrays["train"][:40].astype(np.uint8) * 15  # 0..240
  for i, image in enumerate(images):
    (folder / f"{i:02d}.png").write_bytes(tf.io.encode_png(image).numpy())
  return folder, images


def png_with_broken_image_data(image):
  """`image` as a PNG whose header, checksums and IEND chunk are intact but
  whose compressed image data is not (its bytes inverted past the zlib
  header, the IDAT checksum recomputed)."""
  png = tf.io.encode_png(image).numpy()
  at = png.index(b"IDAT") - 4
  (length,) = struct.unpack(">I", png[at : at + 4])
  broken = png[at + 8 : at + 10] + bytes(
    b ^ 0xFF for b in png[at + 10 : at + 8 + length]
  )
  chunk = b"IDAT" + broken
  return (
    png[:at]
    + struct.pack(">I", len(broken))
    + chunk
    + struct.pack(">I", zlib.crc32(chunk))
    + png[at + 12 + length :]
  )
