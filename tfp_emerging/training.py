"""Training runs of `FlowModel`: the one training path, and run directories.

`fit(model, data, config)` is the one way this package trains: the command
line (`train`, `resume`), the comparison study (`benchmarks/compare.py`) and
the notebooks call it. It runs `FlowModel.fit` over the `tf.data` pipelines
of `train_batches` and `test_batches` (the evaluation at the end of every
epoch), with the callbacks of `tfp_emerging.callbacks`. `evaluate` is the one
evaluator (`FlowModel.evaluate` over `test_batches`), `build_model` the one
model builder, and the data come only through `tfp_emerging.data.load`.

Batches. Epoch `E`'s training images are the split, reordered once at the
source by `seed` (`ImageDataset.images(shuffle_seed=seed)`), then permuted
within consecutive windows of `SHUFFLE_BUFFER_BYTES` worth of images (the
whole split when it is smaller: a full permutation per epoch), each window's
permutation drawn statelessly from `(seed, E, window)`; then cut into full
batches (`drop_remainder`: one batch shape, traced once; the fewer than
`batch_size` images left at the end of an epoch are not seen in that epoch)
and prefetched. The order depends on nothing else (not on TensorFlow's
global seed): an interrupted and resumed run sees the same batches as an
uninterrupted one, and `initial_epoch` comes from the restored checkpoint. Under a `tf.distribute` strategy (build the model in its scope:
`build_model(config, strategy)`), `FlowModel.fit` splits each global batch
over the replicas.

Bits/dim (`metrics.json`): the train bits/dim of an epoch is the mean loss
of its images (weights changing as it goes); the test bits/dim is the mean
over every test image, measured after the epoch, each image dequantised with
noise drawn statelessly from `(evaluation seed, index of the image)` (the
evaluation seed is the run's `seed`), so that it does not depend on the batch
size or the number of replicas. The last test batch is padded to a full
batch with images of weight 0, so every image counts exactly once.

A run lives in one directory (written by `tfp_emerging.callbacks`):

* `.tfp-emerging-run`: the marker of a run directory, written when the run
  starts there. A new run starts only in a folder that does not exist, is
  empty, or is marked and holds no run yet; `train(..., replace=True)` (the
  demo) also replaces the run of a marked folder, deleting only the files a
  run writes, and only once the options, the data and the model have been
  checked. A user's folder is never written into or deleted.
* `config.json`: everything needed to rebuild the model and reload the data,
  and `changes`, the options changed on `--resume`.
* `checkpoints/ckpt-E`: a checkpoint after every finished epoch `E` (the
  newest `keep_checkpoints` are kept), in `tf.train.CheckpointManager`'s
  layout: the model, the optimizer (with its step counter, which drives the
  warm-up), the epoch and the metrics so far. Written atomically; restoring
  falls back to the newest intact one (see `tfp_emerging.callbacks`).
* `metrics.json`: `{"epochs": [{"epoch", "train_bits_per_dim",
  "test_bits_per_dim", "seconds", "train_seconds", "test_seconds",
  "worse_than_uniform"}, ...], "uniform_bits_per_dim",
  "worse_than_uniform"}`, rewritten atomically after every checkpoint from
  the metrics stored in that checkpoint.
* `samples.png`: a grid of samples from the final model.

Resuming (`resume`, and `load_run` for evaluating, sampling, exporting)
restores the newest intact checkpoint, with a warning for each corrupt one,
before anything in the run directory is rewritten; a missing state file is
recovered from the `ckpt-*` files. `CorruptCheckpointError` when the run has
checkpoints (or `metrics.json` records finished epochs) but none can be
restored.

Divergence: a NaN or infinite train or test bits/dim in an epoch stops
training with `TrainingDiverged` before anything of that epoch is saved, so
the last good checkpoint stays the latest; the message says how to resume
from it with a lower learning rate. An epoch that ends after the warm-up
with a test bits/dim above the uniform model's (`log2(num_bins)`) is
flagged `worse_than_uniform` and warned about, and training goes on
(`callbacks.UniformCheck`).
"""

import dataclasses
import json
import os
import sys

import numpy as np
import tensorflow as tf

from tfp_emerging import callbacks as callbacks_lib
from tfp_emerging import data as data_lib
from tfp_emerging.flows import dequantization

__all__ = [
    "CorruptCheckpointError", "RESUMABLE_OPTIONS", "RunConfig", "RunError",
    "SHUFFLE_BUFFER_BYTES", "TrainingDiverged", "build_model", "evaluate",
    "first_images", "fit", "load_data",
    "load_run", "read_config", "resume", "test_batches", "train",
    "train_batches", "window_size"
]

CONFIG_FILE = callbacks_lib.CONFIG_FILE
METRICS_FILE = callbacks_lib.METRICS_FILE
SAMPLES_FILE = callbacks_lib.SAMPLES_FILE
CHECKPOINT_DIR = callbacks_lib.CHECKPOINT_DIR
TrainingDiverged = callbacks_lib.TrainingDiverged
CorruptCheckpointError = callbacks_lib.CorruptCheckpointError

# The most bytes of images a training epoch permutes at once (all of a
# smaller training split: a full permutation per epoch).
SHUFFLE_BUFFER_BYTES = 2**26
# The options `--resume` may change: they change neither the model nor the
# data.
RESUMABLE_OPTIONS = ("epochs", "batch_size", "learning_rate", "warmup_steps")


class RunError(ValueError):
  """A run directory that cannot be used (missing, not a run, already one)."""


@dataclasses.dataclass
class RunConfig:
  """Everything that defines a run; stored as `config.json`.

  The defaults are `make demo`'s run: sized for the 8x8 digits, about two
  minutes of CPU. One level (8x8x1 squeezed to 4x4x4) keeps every mixing
  usable there: the periodic convolution's 3x3 kernel must fit the last
  level's 4x4. Larger images want more levels and wider couplings.

  Attributes:
    dataset: `"digits"`, `"skimage-crops"`, a `tensorflow-datasets` name, or
      an absolute path to an `.npz` file or a PNG folder (see
      `tfp_emerging.data.load`).
    mixing: the channel mixing of every flow step, one of
      `tfp_emerging.flows.MIXINGS`.
    num_levels: squeeze levels of the Glow flow.
    num_steps: flow steps (actnorm, mixing, coupling) per level.
    hidden_channels: width of the coupling networks.
    kernel_size: kernel size of the mixing convolutions.
    epochs: total number of epochs of the run.
    batch_size: training and evaluation batch size (the global batch under
      a distribution strategy).
    learning_rate: Adam's peak learning rate.
    warmup_steps: steps of the linear learning-rate warm-up.
    seed: seed of the initial weights, the data order, the evaluation noise
      and the samples.
    keep_checkpoints: how many of the newest per-epoch checkpoints to keep.
    sample_temperature: temperature of `samples.png`.
    data_dir: `tensorflow-datasets` data folder, or `None`.
    splits: `[train, test]` split names of the source, or `None` for the
      source's own (`tfp_emerging.data.load`'s `splits`).
    bit_depth: `None` (keep the data's depth) or 8 (reduce 16-bit data).
    conditional: a class-conditional Glow on the data's labels (its priors
      depend on the class; `Glow(num_classes=...)`).
    condition_couplings: with `conditional`, the coupling networks depend on
      the class too.
    preset: the name of the `tfp_emerging.presets` preset the options came
      from, or `None`.
    num_bins: grey levels per channel (set from the data).
    image_shape: `[H, W, C]` (set from the data).
    num_classes: the data's number of classes for a conditional run (set
      from the data), else `None`.
    changes: the options changed when the run was resumed: a list of
      `{"epoch": first epoch trained with the new value, "option", "old",
      "new"}`.
  """
  dataset: str = "digits"
  mixing: str = "emerging"
  num_levels: int = 1
  num_steps: int = 8
  hidden_channels: int = 64
  kernel_size: int = 3
  epochs: int = 40
  batch_size: int = 64
  learning_rate: float = 2e-3
  warmup_steps: int = 100
  seed: int = 0
  keep_checkpoints: int = 3
  sample_temperature: float = 0.7
  data_dir: str = None
  splits: list = None
  bit_depth: int = None
  conditional: bool = False
  condition_couplings: bool = True
  preset: str = None
  num_bins: int = None
  image_shape: list = None
  num_classes: int = None
  changes: list = dataclasses.field(default_factory=list)

  @classmethod
  def from_json(cls, path):
    """Reads a `config.json`, raising `RunError` on a malformed file."""
    try:
      with open(path, encoding="utf-8") as f:
        values = json.load(f)
      return cls(**values)
    except (OSError, ValueError, TypeError) as e:
      raise RunError(f"{path}: not a readable run configuration ({e}).") from e

  def with_data(self, data):
    """This config with `num_bins`, `image_shape` (and, if `conditional`,
    `num_classes`) of `data` (an `ImageDataset`); `DataError` if they differ
    from values already set, or if a conditional run's data has no labels."""
    shape = [int(d) for d in data.image_shape]
    num_classes = None
    if self.conditional:
      if data.num_classes is None:
        raise data_lib.DataError(
            f"{data.source}: has no class labels, which a conditional run "
            f"needs (--conditional). {data_lib.LABELLED_SOURCES}")
      num_classes = int(data.num_classes)
    for name, value in (("image_shape", shape), ("num_bins", data.num_bins),
                        ("num_classes", num_classes)):
      stored = getattr(self, name)
      if stored is not None and stored != value:
        raise data_lib.DataError(
            f"{data.source}: {name} is now {value}, but the run was trained "
            f"with {stored}.")
    return dataclasses.replace(self, num_bins=data.num_bins, image_shape=shape,
                               num_classes=num_classes)


def _flow_modules():
  # Imported here so that data loading and argument parsing work (and fail
  # with their own messages) without building any model code.
  from tfp_emerging import flows  # pylint: disable=g-import-not-at-top
  from tfp_emerging import keras as flow_keras  # pylint: disable=g-import-not-at-top
  return flows, flow_keras


def build_model(config, strategy=None):
  """The compiled `FlowModel` of `config` (its data fields must be set).

  Built in `strategy.scope()` if a `tf.distribute.Strategy` is given: then
  `fit` and `evaluate` distribute each batch over its replicas.
  """
  flows, flow_keras = _flow_modules()
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    try:
      flow = flows.Glow(
          image_shape=tuple(config.image_shape),
          num_levels=config.num_levels,
          num_steps=config.num_steps,
          mixing=config.mixing,
          hidden_channels=config.hidden_channels,
          kernel_size=config.kernel_size,
          num_classes=config.num_classes if config.conditional else None,
          condition_couplings=bool(config.conditional and
                                   config.condition_couplings),
          seed=config.seed)
    except ValueError as e:  # names the argument and what it expected
      raise RunError(f"invalid model options: {e}") from e
    model = flow_keras.FlowModel(flow, num_bins=config.num_bins)
    schedule = flow_keras.WarmupSchedule(config.learning_rate,
                                         config.warmup_steps)
    model.compile(optimizer=flow_keras.keras.optimizers.Adam(schedule))
  return model


def _count(data, split, num_examples):
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
        stream, tf.cast(key, tf.int64))
  return stream


# The keys that keep the random streams of `train_batches` and
# `test_batches` apart.
_PERMUTATION, _TRAIN_NOISE, _TEST_NOISE = 0, 1, 2


def window_size(data, batch_size, count):
  """Images permuted together: `SHUFFLE_BUFFER_BYTES` of them (at least one
  batch), at most the `count` training images."""
  pixel_bytes = 1 if data.num_bins <= 256 else 2
  image_bytes = pixel_bytes * int(np.prod(data.image_shape))
  return max(1, min(count, max(batch_size,
                               SHUFFLE_BUFFER_BYTES // image_bytes)))


def _windows(data, batch_size, seed, num_examples, labels):
  """`(windows, count)`: the training split, reordered at the source by
  `seed`, in windows of `window_size` images; `count` training images."""
  count = _count(data, "train", num_examples)
  windows = _split(data, "train", labels, num_examples, shuffle_seed=seed)
  return windows.batch(window_size(data, batch_size, count)), count


def _epoch_images(windows, seed, epoch):
  """Epoch `epoch`'s training elements (unbatched): each window permuted by
  `argsort` of uniform keys drawn from `(seed, epoch, window)`."""

  def permute(index, window):
    size = tf.shape(tf.nest.flatten(window)[0])[0]
    keys = tf.random.stateless_uniform(
        [size], seed=_stream_seed(seed, epoch, _PERMUTATION, index))
    order = tf.argsort(keys)
    return tf.nest.map_structure(lambda t: tf.gather(t, order), window)

  return windows.enumerate().map(permute).unbatch()


def _dequantized(data, dtype, labels, seed_of, weight=None):
  """`map` function: element `(index, image or (image, label))` to
  `{DEQUANTIZED: x}` (with `WEIGHT: weight` if given), paired with the label
  if `labels`; `x` is dequantised with noise from `seed_of(index)`."""
  from tfp_emerging import keras as flow_keras  # pylint: disable=g-import-not-at-top

  def dequantize(index, element):
    image, label = element if labels else (element, None)
    x = {flow_keras.DEQUANTIZED: dequantization.dequantize(
        image, data.num_bins, seed=seed_of(index), dtype=dtype)}
    if weight is not None:
      x[flow_keras.WEIGHT] = tf.constant(weight, tf.float32)
    return (x, label) if labels else x

  return dequantize


def train_batches(data, batch_size, seed, first_epoch, last_epoch,
                  dtype=tf.float32, num_examples=None, labels=False):
  """The training batches of epochs `first_epoch .. last_epoch` (from 1).

  Epoch `E` is the training split (reordered at the source by `seed`) with
  each window of `window_size(data, batch_size, N)` consecutive images
  permuted by `argsort` of uniform keys drawn statelessly from `(seed, E,
  window)`, in `N // batch_size` full batches; the image at position `p` of
  epoch `E` is dequantised with noise drawn statelessly from `(seed, E, p)`.
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
    dtype: the dequantised images' dtype (the model's).
    num_examples: use only the first `num_examples` training images.
    labels: batches carry the labels (for conditional models).

  Returns:
    `(dataset, steps_per_epoch)`: batches `{"dequantized": x}` (or
    `({"dequantized": x}, labels)`), `x` `[batch_size, H, W, C]` of `dtype` in
    `[-0.5, 0.5)`, exactly `steps_per_epoch` per epoch, prefetched.
  """
  windows, count = _windows(data, batch_size, seed, num_examples, labels)
  steps = count // batch_size

  def epoch_batches(epoch):
    noise = _dequantized(
        data, dtype, labels,
        lambda position: _stream_seed(seed, epoch, _TRAIN_NOISE, position))
    return _epoch_images(windows, seed, epoch).enumerate().map(
        noise, num_parallel_calls=tf.data.AUTOTUNE).batch(
            batch_size, drop_remainder=True)

  epochs = tf.data.Dataset.range(first_epoch, last_epoch + 1)
  dataset = epochs.flat_map(epoch_batches).apply(
      tf.data.experimental.assert_cardinality(
          steps * max(0, last_epoch - first_epoch + 1)))
  return dataset.prefetch(tf.data.AUTOTUNE), steps


def first_images(data, batch_size, seed, epoch, num_examples=None,
                 labels=False):
  """The integer images of the first batch of `train_batches`' epoch
  `epoch`, for the data-dependent initialisation; with `labels`, the pair
  `(images, labels)`."""
  windows, _ = _windows(data, batch_size, seed, num_examples, labels)
  return next(iter(_epoch_images(windows, seed, epoch).batch(batch_size)))


def test_batches(data, batch_size, seed, dtype=tf.float32, num_examples=None,
                 labels=False):
  """The evaluation batches of the test split, dequantised reproducibly.

  Image `i` (in the split's fixed order) is dequantised with noise drawn
  statelessly from `(seed, i)`, independent of the batching and of the
  number of replicas. The last batch is padded to `batch_size` with zero
  images of weight 0, so every batch has one shape and `FlowModel.evaluate`
  counts every test image exactly once.

  Returns:
    A dataset of batches `{"dequantized": x, "weight": weights}` (or that
    and the labels, paired): `x` `[batch_size, H, W, C]` of `dtype`,
    `weights` `[batch_size]` float32 (1 for an image, 0 for padding),
    prefetched.
  """
  from tfp_emerging import keras as flow_keras  # pylint: disable=g-import-not-at-top
  count = _count(data, "test", num_examples)
  images = _split(data, "test", labels, num_examples).enumerate().map(
      _dequantized(data, dtype, labels,
                   lambda index: _stream_seed(seed, _TEST_NOISE, index),
                   weight=1.), num_parallel_calls=tf.data.AUTOTUNE)
  padding = (-count) % batch_size
  if padding:
    blank = {flow_keras.DEQUANTIZED: tf.zeros(data.image_shape, dtype),
             flow_keras.WEIGHT: tf.constant(0., tf.float32)}
    if labels:
      blank = (blank, tf.constant(0, tf.int32))
    images = images.concatenate(
        tf.data.Dataset.from_tensors(blank).repeat(padding))
  return images.batch(batch_size, drop_remainder=True).prefetch(
      tf.data.AUTOTUNE)


def _progress_bar():
  """A Keras `ProgbarLogger` that Keras may call off the training thread."""
  bar = callbacks_lib.keras.callbacks.ProgbarLogger()
  # Keras dispatches the default progress bar's per-batch updates
  # asynchronously (no host sync per step); this one, listed explicitly so
  # that it prints before the checkpoint line, is the same logger.
  bar.async_safe = True
  return bar


def _batch_size(config, data, model, num_examples=None):
  """The training batch: `config.batch_size`, at most the training split."""
  size = min(config.batch_size, _count(data, "train", num_examples))
  replicas = model.distribute_strategy.num_replicas_in_sync
  if size % replicas:
    raise RunError(
        f"the batch size {size} must be divisible by the {replicas} "
        f"replicas of the strategy.")
  return size


def fit(model, data, config, initial_epoch=0, callbacks=(), verbose=0,
        recorder=None, advice=None, num_train=None, num_test=None,
        evaluation_seed=None, labels=False):
  """Trains `model` on `data` from `initial_epoch` to `config.epochs`.

  The one training path: `FlowModel.fit` over `train_batches` (with
  `steps_per_epoch`, `initial_epoch`) and, at the end of every epoch,
  `FlowModel.evaluate` over `test_batches`. An uninitialised model first
  gets its data-dependent initialisation from the first batch. No per-step
  host synchronisation: the callbacks read the epoch's logs.

  Args:
    model: a compiled `FlowModel` (`build_model`); under a distribution
      strategy, built in its scope.
    data: a `tfp_emerging.data.ImageDataset`.
    config: a `RunConfig` (`epochs`, `batch_size`, `seed` are used).
    initial_epoch: epochs already done (a restored checkpoint's).
    callbacks: further Keras callbacks, called after the built-in
      `EpochRecorder`, `NaNGuard` and progress bar.
    verbose: Keras' `verbose`: 0 silent, 1 a progress bar inside each epoch,
      2 one line per epoch.
    recorder: the `callbacks.EpochRecorder` to use (e.g. holding restored
      records); default a new one.
    advice: `NaNGuard`'s `advice`.
    num_train: use only the first `num_train` training images.
    num_test: use only the first `num_test` test images.
    evaluation_seed: the test noise's seed; default `config.seed`.
    labels: feed `(images, labels)` (for conditional models).

  Returns:
    The `recorder`'s records: one dict per epoch (see
    `callbacks.EpochRecorder`).

  Raises:
    RunError: a batch size not divisible by the replicas.
    TrainingDiverged: an epoch's train or test bits/dim is not finite.
  """
  recorder = recorder if recorder is not None else callbacks_lib.EpochRecorder()
  if initial_epoch >= config.epochs:
    return recorder.records
  batch_size = _batch_size(config, data, model, num_train)
  if not model.is_initialized():
    first = first_images(data, batch_size, config.seed, initial_epoch + 1,
                         num_examples=num_train, labels=labels)
    images, classes = first if labels else (first, None)
    model.initialize(images, classes, seed=config.seed)
  train, steps = train_batches(data, batch_size, config.seed,
                               initial_epoch + 1, config.epochs,
                               dtype=model.distribution.dtype,
                               num_examples=num_train, labels=labels)
  test = test_batches(
      data, batch_size,
      config.seed if evaluation_seed is None else evaluation_seed,
      dtype=model.distribution.dtype, num_examples=num_test, labels=labels)
  model.fit(train, epochs=config.epochs, initial_epoch=initial_epoch,
            steps_per_epoch=steps, validation_data=test, verbose=verbose,
            shuffle=False,
            callbacks=[recorder, callbacks_lib.NaNGuard(advice),
                       _progress_bar(), *callbacks])
  return recorder.records


def evaluate(model, data, batch_size, seed, num_examples=None, labels=False):
  """Mean test bits/dim of `model` on every test image (`test_batches`).

  The same evaluation as the one at the end of each epoch of `fit` (with
  `seed` the run's seed: the same number as the epoch's
  `test_bits_per_dim`).
  """
  logs = model.evaluate(
      test_batches(data, batch_size, seed, dtype=model.distribution.dtype,
                   num_examples=num_examples, labels=labels),
      verbose=0, return_dict=True)
  return float(logs["bits_per_dim"])


def _log(message):
  print(message, flush=True)


def _verbosity(verbose):
  """Keras' `verbose` for `"auto"`: a progress bar on a terminal, else one
  line per epoch."""
  if verbose != "auto":
    return verbose
  isatty = getattr(sys.stdout, "isatty", None)
  return 1 if isatty is not None and isatty() else 2


def train(config, run_dir, log=_log, strategy=None, verbose="auto",
          tensorboard=None, callbacks=(), warn=callbacks_lib.print_warning,
          replace=False):
  """Trains a new run in `run_dir` for `config.epochs` epochs.

  Args:
    config: a `RunConfig`; its `num_bins` and `image_shape` are set from the
      data.
    run_dir: the run directory: a folder that does not exist yet (it is
      created), an empty folder, or a marked run directory without a run
      (see the module docstring); it is marked as a run directory.
    log: `log(message)` for progress lines.
    strategy: optional `tf.distribute.Strategy` (`tfp_emerging.distribute.
      make_strategy`); the model and optimizer are built in its scope and
      `FlowModel.fit` splits each batch over its replicas. Default:
      TensorFlow's default.
    verbose: Keras' `verbose`; `"auto"`: a progress bar inside each epoch
      when standard output is a terminal, else one line per epoch.
    tensorboard: optional folder for TensorBoard summaries
      (`callbacks.TensorBoardLogger`).
    callbacks: further Keras callbacks for `fit`.
    warn: `warn(message)` for warnings (epochs worse than uniform).
    replace: a marked run directory's run may be replaced: its run files
      are deleted once the options, the data and the model are checked.

  Returns:
    The run's metrics: a list of per-epoch dicts, as in `metrics.json`.

  Raises:
    RunError: `run_dir` already holds a run (without `replace`), is a file,
      or is a folder that is not empty and not a run directory;
      `tensorboard` without the tensorboard package.
    tfp_emerging.data.DataError: the data cannot be loaded or does not fit.
    TrainingDiverged: a NaN or infinite loss; the latest checkpoint is the
      last good epoch.
  """
  _check_new_run_dir(run_dir, replace)
  return _run(config, run_dir, None, log, strategy, verbose, tensorboard,
              callbacks, warn=warn, replace=replace)


def _check_new_run_dir(run_dir, replace):
  """Raises `RunError` unless a new run may start in `run_dir` (see
  `train`); reads, never writes."""
  path = os.path.abspath(run_dir)
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    where = "is a file" if existing == path else f"{existing} is a file"
    raise RunError(f"{run_dir}: {where}, not a folder; choose another --out.")
  if existing != path:
    return
  entries = sorted(os.listdir(path))
  holds_run = CONFIG_FILE in entries
  if not entries or (callbacks_lib.is_marked_run(path) and
                     (replace or not holds_run)):
    return
  if callbacks_lib.is_marked_run(path):
    raise RunError(f"{run_dir}: already holds a run ({CONFIG_FILE}); pass "
                   f"--resume to continue it or choose a new --out.")
  if holds_run:
    raise RunError(
        f"{run_dir}: holds a {CONFIG_FILE} but is not marked as a run "
        f"directory of tfp-emerging (no {callbacks_lib.RUN_MARKER}), so "
        f"nothing in it is replaced. Choose a new or empty --out (if it is a "
        f"run of an older tfp-emerging, continue it with tfp-emerging train "
        f"--out {run_dir} --resume, or delete it yourself).")
  shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
  raise RunError(f"{run_dir}: not empty ({shown}) and not a run directory; "
                 f"choose a new or empty --out.")


def _claim_run_dir(run_dir, replace):
  """Marks `run_dir` as the new run's directory, first deleting the run
  files of the marked run there if `replace`."""
  _check_new_run_dir(run_dir, replace)
  try:
    if replace and callbacks_lib.is_marked_run(run_dir):
      callbacks_lib.remove_run_files(run_dir)
    callbacks_lib.claim_run_dir(run_dir)
  except OSError as e:
    raise RunError(f"{run_dir}: cannot write the run directory ({e}).") from e


def resume(run_dir, epochs=None, batch_size=None, learning_rate=None,
           warmup_steps=None, log=_log, strategy=None, verbose="auto",
           tensorboard=None, callbacks=(), warn=callbacks_lib.print_warning):
  """Continues the run in `run_dir` from its latest checkpoint.

  `epochs`, `batch_size`, `learning_rate` and `warmup_steps` (the
  `RESUMABLE_OPTIONS`; `None` keeps the stored value) may change: they change
  neither the model nor the data. Each change is appended to the config's
  `changes` with the first epoch it applies to. The warm-up counts the
  optimizer's restored step counter. The newest intact checkpoint is
  restored (a warning through `warn` for each corrupt one) before anything
  in `run_dir` is rewritten.

  Args:
    run_dir: a run directory with a `config.json`.
    epochs: the new total number of epochs.
    batch_size: the new batch size.
    learning_rate: the new peak learning rate.
    warmup_steps: the new length of the warm-up, in steps from the start of
      the run.
    log: as in `train`.
    strategy: as in `train`; it need not be the one that wrote the
      checkpoints.
    verbose: as in `train`.
    tensorboard: as in `train`.
    callbacks: as in `train`.
    warn: as in `train`.

  Returns:
    The run's metrics, all epochs (restored and new).

  Raises:
    RunError: `run_dir` holds no run.
    CorruptCheckpointError: the run has checkpoints, or `metrics.json`
      records finished epochs, but no checkpoint can be restored.
    tfp_emerging.data.DataError: the data cannot be loaded or changed shape.
    TrainingDiverged: as in `train`.
  """
  config = read_config(run_dir)
  changed = {name: value for name, value in (
      ("epochs", epochs), ("batch_size", batch_size),
      ("learning_rate", learning_rate), ("warmup_steps", warmup_steps))
             if value is not None and value != getattr(config, name)}
  return _run(config, run_dir, changed, log, strategy, verbose, tensorboard,
              callbacks, warn=warn)


def read_config(run_dir):
  """The `RunConfig` of a run, or `RunError` if `run_dir` holds none."""
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise RunError(f"{run_dir}: no {CONFIG_FILE}; not a training run "
                   f"directory.")
  return RunConfig.from_json(path)


def load_data(config):
  """The run's `ImageDataset`, through `tfp_emerging.data.load`."""
  return data_lib.load(config.dataset, num_levels=config.num_levels,
                       data_dir=config.data_dir,
                       splits=None if config.splits is None else tuple(
                           config.splits),
                       bit_depth=config.bit_depth)


def _tensorboard_logger(folder, config):
  if folder is None:
    return None
  try:
    return callbacks_lib.TensorBoardLogger(folder, config.sample_temperature,
                                           config.seed)
  except callbacks_lib.TensorBoardMissing as e:
    raise RunError(str(e)) from e


def _restore(state, run_dir, warn):
  """`state.restore(warn)`, with advice added to a `CorruptCheckpointError`;
  also that error if the run has no checkpoint but `metrics.json` records
  finished epochs (so that nothing trains over them silently)."""
  advice = (f"Start a new run with another --out, or delete "
            f"{os.path.join(run_dir, CHECKPOINT_DIR)} and "
            f"{os.path.join(run_dir, METRICS_FILE)} to train this one again "
            f"from epoch 1 (--resume).")
  try:
    path = state.restore(warn)
  except CorruptCheckpointError as e:
    raise CorruptCheckpointError(f"{e} {advice}") from e
  if path is None:
    try:
      with open(os.path.join(run_dir, METRICS_FILE), encoding="utf-8") as f:
        recorded = len(json.load(f)["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
      recorded = 0
    if recorded:
      raise CorruptCheckpointError(
          f"{run_dir}: {METRICS_FILE} records {recorded} finished epochs, "
          f"but {CHECKPOINT_DIR}/ holds no checkpoint of them. {advice}")
  return path


def _run(config, run_dir, changed, log, strategy, verbose, tensorboard,
         extra_callbacks, warn=callbacks_lib.print_warning, replace=False):
  """`train` (`changed is None`) or `resume` (`changed`: the new options)."""
  resuming = changed is not None
  data = load_data(config)
  stored = config = config.with_data(data)
  if resuming:
    config = dataclasses.replace(config, **changed)
  # Everything that can fail on the options comes before the first write.
  model = build_model(config, strategy)
  _batch_size(config, data, model)
  logger = _tensorboard_logger(tensorboard, config)
  if not resuming:
    _claim_run_dir(run_dir, replace)
  state = callbacks_lib.RunState(model, run_dir, config.keep_checkpoints)
  # Nothing in the run directory is rewritten before this has succeeded.
  restored = _restore(state, run_dir, warn) if resuming else None
  initial_epoch = int(state.epoch.numpy())
  if restored:
    log(f"resumed from {restored} (epoch {initial_epoch})")
  if resuming:
    config.changes = list(stored.changes) + [
        {"epoch": initial_epoch + 1, "option": name,
         "old": getattr(stored, name), "new": value}
        for name, value in changed.items()]
  callbacks_lib.write_json(os.path.join(run_dir, CONFIG_FILE),
                           dataclasses.asdict(config))
  recorder = callbacks_lib.EpochRecorder(state.metrics)
  callbacks_lib.write_json(
      os.path.join(run_dir, METRICS_FILE),
      callbacks_lib.metrics_document(recorder.records, config.num_bins))

  def advice():
    last = state.latest
    kept = (f"The last good checkpoint {last} (epoch "
            f"{int(state.epoch.numpy())}) is kept" if last else
            "No epoch had finished, so there is no checkpoint yet")
    return (f"{kept}. Resume with a lower learning rate, e.g. tfp-emerging "
            f"train --out {run_dir} --resume --learning-rate "
            f"{config.learning_rate / 4:g} (now {config.learning_rate:g}), "
            f"and/or a longer warm-up, --warmup-steps "
            f"{max(100, 4 * config.warmup_steps)} (now "
            f"{config.warmup_steps}).")

  run_callbacks = [
      callbacks_lib.UniformCheck(recorder, config.warmup_steps, warn),
      callbacks_lib.Checkpointer(state, recorder, run_dir, log)]
  if logger is not None:
    run_callbacks.append(logger)
  metrics = fit(model, data, config, initial_epoch=initial_epoch,
                callbacks=run_callbacks + list(extra_callbacks),
                verbose=_verbosity(verbose), recorder=recorder,
                advice=advice, labels=config.conditional)
  callbacks_lib.write_samples(run_dir, model, config.sample_temperature,
                              config.seed)
  return metrics


def load_run(run_dir, warn=callbacks_lib.print_warning):
  """Rebuilds a run's model from its newest intact checkpoint.

  Args:
    run_dir: a run directory written by `train`.
    warn: `warn(message)` for each checkpoint that cannot be restored.

  Returns:
    `(config, model, epoch, checkpoint_path)`.

  Raises:
    RunError: no run or no checkpoint in `run_dir`.
    CorruptCheckpointError: checkpoints, but none can be restored.
  """
  config = read_config(run_dir)
  model = build_model(config)
  state = callbacks_lib.RunState(model, run_dir, config.keep_checkpoints)
  path = _restore(state, run_dir, warn)
  if not path:
    raise RunError(f"{run_dir}: no checkpoint yet (no epoch finished); train "
                   f"it with --resume first.")
  return config, model, int(state.epoch.numpy()), path
