"""Tiny training runs on the digits, shared by the training, CLI and
interruption tests, and the digits as a folder of PNG files."""

import json
import os
import struct
import zlib

import numpy as np
import tensorflow as tf

from tfp_emerging import data
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


def first_test_images(path, count):
  """The first `count` test images of the dataset at `path`."""
  return np.stack(
    list(data.load(path).images("test").take(count).as_numpy_iterator())
  )


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
