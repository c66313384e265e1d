"""The `tf.data` input pipeline of training and evaluation.

`train_batches` and `test_batches` turn an `ImageDataset` into the batches
`FlowModel.fit` and `FlowModel.evaluate` read: the integer pixel levels and
the uniform noise that dequantises them, in a dict `{LEVELS: k, NOISE: u}`
(with `WEIGHT` for evaluation), paired with the labels for a
class-conditional model. The model dequantises (`x = (k + u) / B - 1/2`,
or variationally from `u`: `tfp_emerging.flows.DiscreteFlow`); the pipeline
only draws the noise.

Batches. Epoch `E`'s training images are the split, reordered once at the
source by `seed` (`ImageDataset.images(shuffle_seed=seed)`), then permuted
within consecutive windows of `SHUFFLE_BUFFER_BYTES` worth of images (the
whole split when it is smaller: a full permutation per epoch), each window's
permutation drawn statelessly from `(seed, E, window)`; then cut into full
batches (`drop_remainder`: one batch shape, traced once; the fewer than
`batch_size` images left at the end of an epoch are not seen in that epoch)
and prefetched. The order depends on nothing else (not on TensorFlow's
global seed): an interrupted and resumed run sees the same batches as an
uninterrupted one.

Evaluation: every test image once, each with noise drawn
statelessly from `(evaluation seed, index of the image)`, so that the test
bits/dim does not depend on the batch size or the number of replicas. The
last test batch is padded to a full batch with images of weight 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging.data import dataset as dataset_lib
from tfp_emerging.ops import checks

__all__ = [
  "LEVELS",
  "NOISE",
  "SHUFFLE_BUFFER_BYTES",
  "WEIGHT",
  "first_images",
  "test_batches",
  "train_batches",
  "window_size",
]

SHUFFLE_BUFFER_BYTES = 2**26
"""The most bytes of images a training epoch permutes at once (all of a
smaller training split: a full permutation per epoch)."""

LEVELS = "levels"
"""Key of a batch `x` given as a dict: the integer images `k` `[B, H, W,
C]` (the data's dtype), the pixel levels in `0..num_bins-1`."""
NOISE = "noise"
"""Key of a batch `x` given as a dict: the uniform noise `u` in `[0, 1)`
that dequantises `LEVELS`, `[B, H, W, C]` (or `K` draws each, `[B, K, H,
W, C]`), float, seeded per image by this pipeline; a model with
variational dequantisation draws its noise from it."""
WEIGHT = "weight"
"""Optional key of a batch `x` given as a dict: each image's weight `[B]`
in the evaluation's mean (0 for padding)."""


def num_images(data, split, num_examples=None):
  """The images of `split` used: all, or at most `num_examples`."""
  total = data.num_examples[split]
  return total if num_examples is None else min(num_examples, total)


def _split(data, split, labels, num_examples, shuffle_seed=None):
  images = data.images(split, labels=labels, shuffle_seed=shuffle_seed)
  return images if num_examples is None else images.take(num_examples)


def _stream_seed(seed, *keys):
  """A stateless seed `[2]` for one use: `seed` with each key folded in."""
  stream = tf.stack([tf.constant(seed, tf.int64), tf.constant(0, tf.int64)])
  for key in keys:
    stream = tf.random.experimental.stateless_fold_in(
      stream, tf.cast(key, tf.int64)
    )
  return stream


# The keys that keep the random streams of `train_batches` and
# `test_batches` apart.
_PERMUTATION, _TRAIN_NOISE, _TEST_NOISE = 0, 1, 2


def window_size(
  data: dataset_lib.ImageDataset, batch_size: int, count: int
) -> int:
  """Images permuted together: `SHUFFLE_BUFFER_BYTES` of them (at least one
  batch), at most the `count` training images."""
  pixel_bytes = 1 if data.num_bins <= 256 else 2
  image_bytes = pixel_bytes * int(np.prod(data.image_shape))
  return max(
    1, min(count, max(batch_size, SHUFFLE_BUFFER_BYTES // image_bytes))
  )


def _windows(data, batch_size, seed, num_examples, labels):
  """`(windows, count)`: the training split, reordered at the source by
  `seed`, in windows of `window_size` images; `count` training images."""
  count = num_images(data, "train", num_examples)
  windows = _split(data, "train", labels, num_examples, shuffle_seed=seed)
  return windows.batch(window_size(data, batch_size, count)), count


def _epoch_images(windows, seed, epoch):
  """Epoch `epoch`'s training elements (unbatched): each window permuted by
  `argsort` of uniform keys drawn from `(seed, epoch, window)`."""

  def permute(index, window):
    size = tf.shape(tf.nest.flatten(window)[0])[0]
    keys = tf.random.stateless_uniform(
      [size], seed=_stream_seed(seed, epoch, _PERMUTATION, index)
    )
    order = tf.argsort(keys)
    return tf.nest.map_structure(lambda t: tf.gather(t, order), window)

  return windows.enumerate().map(permute).unbatch()


def _with_noise(dtype, labels, seed_of, weight=None, num_samples=1):
  """`map` function: element `(index, image or (image, label))` to
  `{LEVELS: image, NOISE: u}` (with `WEIGHT: weight` if given), paired with
  the label if `labels`; `u ~ U[0, 1)` of the image's shape and `dtype`,
  drawn statelessly from `seed_of(index)`. With `num_samples = K > 1`, `u`
  holds `K` draws `[K, H, W, C]`: the first from `seed_of(index)`, draw `j`
  from that seed with `j` folded in."""
  dtype = checks.float_dtype(dtype)

  def draw(image, index, j):
    seed = seed_of(index)
    if j:
      seed = tf.random.experimental.stateless_fold_in(seed, j)
    return tf.random.stateless_uniform(tf.shape(image), seed=seed, dtype=dtype)

  def with_noise(index, element):
    image, label = element if labels else (element, None)
    if num_samples == 1:
      noise = draw(image, index, 0)
    else:
      noise = tf.stack([draw(image, index, j) for j in range(num_samples)])
    x = {LEVELS: image, NOISE: noise}
    if weight is not None:
      x[WEIGHT] = tf.constant(weight, tf.float32)
    return (x, label) if labels else x

  return with_noise


def train_batches(
  data: dataset_lib.ImageDataset,
  batch_size: int,
  seed: int,
  first_epoch: int,
  last_epoch: int,
  dtype: tf.dtypes.DType = tf.float32,
  num_examples: int | None = None,
  labels: bool = False,
) -> tuple[tf.data.Dataset, int]:
  """The training batches of epochs `first_epoch .. last_epoch` (from 1).

  Epoch `E` is the training split (reordered at the source by `seed`) with
  each window of `window_size(data, batch_size, N)` consecutive images
  permuted by `argsort` of uniform keys drawn statelessly from `(seed, E,
  window)`, in `N // batch_size` full batches; the image at position `p` of
  epoch `E` gets its uniform noise drawn statelessly from `(seed, E, p)`.
  Nothing else (not TensorFlow's global seed) changes the batches, so a
  pipeline started at a later `first_epoch` (a resumed run) continues the
  batches of an uninterrupted one exactly. Cost per epoch: reading the split
  once, `O(N log window)` for the permutations and `O(N H W C)` for the
  noise, in the `tf.data` threads; memory: about two windows.

  Args:
    data: a `tfp_emerging.data.ImageDataset`.
    batch_size: images per batch (the global batch).
    seed: the run's seed.
    first_epoch: the first epoch of the pipeline (the one after a restored
      checkpoint's).
    last_epoch: the last epoch.
    dtype: the noise's floating dtype (the model's).
    num_examples: use only the first `num_examples` training images.
    labels: batches carry the labels (for conditional models).

  Returns:
    `(dataset, steps_per_epoch)`: batches `{"levels": k, "noise": u}` (or
    `({"levels": k, "noise": u}, labels)`), `k` the integer images
    `[batch_size, H, W, C]` (the data's dtype), `u` their noise of that
    shape, `dtype`, in `[0, 1)`; exactly `steps_per_epoch` per epoch,
    prefetched.

  Raises:
    ValueError: `dtype` is not floating.
  """
  windows, count = _windows(data, batch_size, seed, num_examples, labels)
  steps = count // batch_size

  def epoch_batches(epoch):
    noise = _with_noise(
      dtype,
      labels,
      lambda position: _stream_seed(seed, epoch, _TRAIN_NOISE, position),
    )
    return (
      _epoch_images(windows, seed, epoch)
      .enumerate()
      .map(noise, num_parallel_calls=tf.data.AUTOTUNE)
      .batch(batch_size, drop_remainder=True)
    )

  epochs = tf.data.Dataset.range(first_epoch, last_epoch + 1)
  dataset = epochs.flat_map(epoch_batches).apply(
    tf.data.experimental.assert_cardinality(
      steps * max(0, last_epoch - first_epoch + 1)
    )
  )
  return dataset.prefetch(tf.data.AUTOTUNE), steps


def first_images(
  data: dataset_lib.ImageDataset,
  batch_size: int,
  seed: int,
  epoch: int,
  num_examples: int | None = None,
  labels: bool = False,
) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
  """The integer images of the first batch of `train_batches`' epoch
  `epoch`, for the data-dependent initialisation; with `labels`, the pair
  `(images, labels)`."""
  windows, _ = _windows(data, batch_size, seed, num_examples, labels)
  return next(iter(_epoch_images(windows, seed, epoch).batch(batch_size)))


def test_batches(
  data: dataset_lib.ImageDataset,
  batch_size: int,
  seed: int,
  dtype: tf.dtypes.DType = tf.float32,
  num_examples: int | None = None,
  labels: bool = False,
  num_samples: int = 1,
) -> tf.data.Dataset:
  """The evaluation batches of the test split, with reproducible noise.

  Image `i` (in the split's fixed order) gets its uniform noise drawn
  statelessly from `(seed, i)`, independent of the batching and of the
  number of replicas; with `num_samples = K > 1`, `K` draws (the first the
  same as with `K = 1`), for `FlowModel.evaluate`'s importance-weighted
  bits/dim. The last batch is padded to `batch_size` with zero images of
  weight 0 (noise 1/2), so every batch has one shape and
  `FlowModel.evaluate` counts every test image exactly once.

  Returns:
    A dataset of batches `{"levels": k, "noise": u, "weight": weights}` (or
    that and the labels, paired): `k` the integer images `[batch_size, H,
    W, C]` (the data's dtype), `u` in `[0, 1)` `[batch_size, H, W, C]`
    (`[batch_size, K, H, W, C]` with `num_samples = K > 1`) of `dtype`,
    `weights` `[batch_size]` float32 (1 for an image, 0 for padding),
    prefetched.

  Raises:
    ValueError: `dtype` is not floating.
  """
  count = num_images(data, "test", num_examples)
  images = (
    _split(data, "test", labels, num_examples)
    .enumerate()
    .map(
      _with_noise(
        dtype,
        labels,
        lambda index: _stream_seed(seed, _TEST_NOISE, index),
        weight=1.0,
        num_samples=num_samples,
      ),
      num_parallel_calls=tf.data.AUTOTUNE,
    )
  )
  padding = (-count) % batch_size
  if padding:
    spec = images.element_spec[0] if labels else images.element_spec
    draws = [] if num_samples == 1 else [num_samples]
    blank: Any = {
      LEVELS: tf.zeros(data.image_shape, spec[LEVELS].dtype),
      NOISE: tf.fill(draws + list(data.image_shape), tf.constant(0.5, dtype)),
      WEIGHT: tf.constant(0.0, tf.float32),
    }
    if labels:
      blank = (blank, tf.constant(0, tf.int32))
    images = images.concatenate(
      tf.data.Dataset.from_tensors(blank).repeat(padding)
    )
  return images.batch(batch_size, drop_remainder=True).prefetch(
    tf.data.AUTOTUNE
  )
