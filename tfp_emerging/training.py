"""Training runs of `FlowModel`: epochs, checkpoints, metrics, samples.

A run lives in one directory:

* `config.json`: everything needed to rebuild the model and reload the data
  (written once, atomically, before the first epoch).
* `checkpoints/ckpt-E`: a `tf.train.CheckpointManager` checkpoint after every
  finished epoch `E` (the newest `keep_checkpoints` are kept). It holds the
  model, the optimizer (with its step counter, which drives the warm-up), the
  epoch counter and the metrics so far.
* `metrics.json`: `{"epochs": [{"epoch", "train_bits_per_dim",
  "test_bits_per_dim", "seconds"}, ...]}`, rewritten atomically after every
  checkpoint from the metrics stored in that checkpoint (`seconds`: the
  epoch's wall time, training and test evaluation).
* `samples.png`: a grid of samples from the final model.

Atomicity: `Checkpoint.save` writes the variables under a temporary prefix
(`ckpt-E_temp/`) and renames them into place when complete; only then does
`CheckpointManager` rewrite its state file `checkpoints/checkpoint`, and it
does so with `atomic_write_string_to_file` (write a temporary file, rename).
`latest_checkpoint` therefore always names a complete checkpoint: a run killed
at any moment resumes (`resume`) from its last finished epoch. JSON and
PNG files are written to a temporary file in the same folder and renamed over
the old one (`os.replace`), so they are never seen half written. The metrics
travel inside the checkpoint, so a kill between the checkpoint and
`metrics.json` loses nothing: resuming rewrites `metrics.json` from the
checkpoint.

The order of the training images in epoch `E` is a permutation seeded by
`(seed, E)`, so an interrupted and resumed run sees the same batches as an
uninterrupted one. Every batch is full: the fewer than `batch_size` images
left at the end of an epoch's permutation wait for a later epoch. The train
bits/dim of an epoch is the mean loss of its batches (weights changing as it
goes); the test bits/dim is measured on the whole test set after the epoch,
with dequantisation noise seeded by `seed`.

Divergence: after every batch the loss is checked; a NaN or infinite loss (or
test bits/dim) stops training with `TrainingDiverged` before anything is
saved, so the last good checkpoint stays the latest.
"""

import dataclasses
import json
import math
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfp_emerging import data as data_lib

__all__ = [
    "RunConfig", "RunError", "TrainingDiverged", "evaluate_bits_per_dim",
    "image_grid", "load_data", "load_run", "read_config", "resume",
    "sample_grid", "train", "write_json", "write_png"
]

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
SAMPLES_FILE = "samples.png"
CHECKPOINT_DIR = "checkpoints"


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


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
    dataset: `"digits"`, a `tensorflow-datasets` name, or an absolute path to
      an `.npz` file or a PNG folder (see `tfp_emerging.data.load`).
    mixing: the channel mixing of every flow step, one of
      `tfp_emerging.flows.MIXINGS`.
    num_levels: squeeze levels of the Glow flow.
    num_steps: flow steps (actnorm, mixing, coupling) per level.
    hidden_channels: width of the coupling networks.
    kernel_size: kernel size of the mixing convolutions.
    epochs: total number of epochs of the run.
    batch_size: training and evaluation batch size.
    learning_rate: Adam's peak learning rate.
    warmup_steps: steps of the linear learning-rate warm-up.
    seed: seed of the initial weights, the data order and the samples.
    keep_checkpoints: how many of the newest per-epoch checkpoints to keep.
    sample_temperature: temperature of `samples.png`.
    data_dir: `tensorflow-datasets` data folder, or `None`.
    num_bins: grey levels per channel (set from the data).
    image_shape: `[H, W, C]` (set from the data).
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
  num_bins: int = None
  image_shape: list = None

  @classmethod
  def from_json(cls, path):
    """Reads a `config.json`, raising `RunError` on a malformed file."""
    try:
      with open(path, encoding="utf-8") as f:
        values = json.load(f)
      return cls(**values)
    except (OSError, ValueError, TypeError) as e:
      raise RunError(f"{path}: not a readable run configuration ({e}).") from e


def write_json(path, value):
  """Writes `value` as JSON to `path` atomically (temporary file, rename)."""
  _write_atomic(path, (json.dumps(value, indent=2) + "\n").encode("utf-8"))


def _write_atomic(path, payload):
  """Writes bytes to a temporary file next to `path`, then renames it."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path),
                             suffix=".tmp")
  umask = os.umask(0)
  os.umask(umask)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(payload)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's files are private (0600)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def image_grid(images, num_bins, columns=None, scale=None, padding=1):
  """Tiles integer images into one uint8 grid image.

  Args:
    images: integer array `[N, H, W, C]` with values in `0 .. num_bins - 1`,
      `C` in {1, 3}.
    num_bins: grey levels; value `v` is shown as `round(255 v / (num_bins-1))`.
    columns: images per row; default `ceil(sqrt(N))`.
    scale: integer nearest-neighbour magnification; default
      `max(1, 32 // max(H, W))`, so that small images stay visible.
    padding: pixels of black border between tiles (before scaling).

  Returns:
    A uint8 array `[rows * (H + p) + p, columns * (W + p) + p, C] * scale`.
  """
  images = np.asarray(images)
  n, height, width, channels = images.shape
  columns = columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / columns))
  scale = scale or max(1, 32 // max(height, width))
  pixels = np.round(images.astype(np.float64) * 255. /
                    (num_bins - 1)).clip(0, 255).astype(np.uint8)
  grid = np.zeros((rows * (height + padding) + padding,
                   columns * (width + padding) + padding, channels), np.uint8)
  for i in range(n):
    top = padding + (i // columns) * (height + padding)
    left = padding + (i % columns) * (width + padding)
    grid[top:top + height, left:left + width] = pixels[i]
  return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def write_png(path, image):
  """Writes a uint8 `[H, W, C]` image as a PNG, atomically."""
  _write_atomic(path, tf.io.encode_png(image).numpy())


def _flow_modules():
  # Imported here so that data loading and argument parsing work (and fail
  # with their own messages) without building any model code.
  from tfp_emerging import flows  # pylint: disable=g-import-not-at-top
  from tfp_emerging import keras as flow_keras  # pylint: disable=g-import-not-at-top
  return flows, flow_keras


def build_model(config):
  """The compiled `FlowModel` of `config` (its data fields must be set)."""
  flows, flow_keras = _flow_modules()
  try:
    flow = flows.Glow(
        image_shape=tuple(config.image_shape),
        num_levels=config.num_levels,
        num_steps=config.num_steps,
        mixing=config.mixing,
        hidden_channels=config.hidden_channels,
        kernel_size=config.kernel_size,
        seed=config.seed)
  except ValueError as e:  # names the argument and what it expected
    raise RunError(f"invalid model options: {e}") from e
  model = flow_keras.FlowModel(flow, num_bins=config.num_bins)
  schedule = flow_keras.WarmupSchedule(config.learning_rate,
                                       config.warmup_steps)
  model.compile(optimizer=flow_keras.keras.optimizers.Adam(schedule))
  return model


class _State:
  """The model, optimizer, epoch counter and metrics of one checkpoint."""

  def __init__(self, model, run_dir, keep_checkpoints):
    self.model = model
    # Keras builds the optimizer's slots lazily; build them now so that a
    # restore fills them (Adam's moments and step counter) instead of
    # dropping them.
    model.optimizer.build(model.trainable_weights)
    self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    self._metrics = tf.Variable("[]", dtype=tf.string, trainable=False,
                                name="metrics")
    self.checkpoint = tf.train.Checkpoint(
        model=model, optimizer=model.optimizer, epoch=self.epoch,
        metrics=self._metrics)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(run_dir, CHECKPOINT_DIR),
        max_to_keep=keep_checkpoints, checkpoint_name="ckpt")

  @property
  def metrics(self):
    return json.loads(self._metrics.numpy().decode("utf-8"))

  def restore(self):
    """Restores the latest checkpoint; returns its path or `None`."""
    path = self.manager.latest_checkpoint
    if path:
      self.checkpoint.restore(path).assert_consumed()
    return path

  def save(self, epoch, metrics):
    self.epoch.assign(epoch)
    self._metrics.assign(json.dumps(metrics))
    return self.manager.save(checkpoint_number=epoch)


def evaluate_bits_per_dim(model, images, batch_size, seed=None):
  """Mean bits/dim of `images`, one dequantisation draw per image.

  Every batch has `batch_size` images (the last is padded with copies of its
  first image, which are not counted), so the evaluation is traced once.
  With an int `seed` the noise of batch `i` is drawn statelessly from
  `seed + i`, so the result is reproducible; otherwise it is fresh.
  """
  total = 0.
  for i, start in enumerate(range(0, images.shape[0], batch_size)):
    batch = images[start:start + batch_size]
    count = batch.shape[0]
    if count < batch_size:
      batch = np.concatenate([batch, np.repeat(batch[:1], batch_size - count,
                                               axis=0)])
    bpd = model.bits_per_dim(tf.constant(batch),
                             seed=None if seed is None else seed + i)
    total += float(np.sum(np.asarray(bpd, np.float64)[:count]))
  return total / images.shape[0]


def sample_grid(model, num_bins, n, temperature, seed, columns=None):
  """`n` samples of `model` at `temperature`, tiled by `image_grid`."""
  samples = model.sample(n, temperature=temperature, seed=seed)
  return image_grid(np.asarray(samples), num_bins, columns=columns)


def _log(message):
  print(message, flush=True)


def train(config, run_dir, on_batch=None, log=_log, strategy=None):
  """Trains a new run in `run_dir` for `config.epochs` epochs.

  Args:
    config: a `RunConfig`; its `num_bins` and `image_shape` are set from the
      data.
    run_dir: the run directory; created if missing; must not hold a run.
    on_batch: optional `on_batch(epoch, step, model)` called before every
      training batch (`epoch` counts from 1, `step` from 0 within the epoch);
      a hook for tests and instrumentation.
    log: `log(message)` for progress lines.
    strategy: optional `tf.distribute.Strategy` (`tfp_emerging.distribute.
      make_strategy`); the model and optimizer are built in its scope and each
      batch is split into equal consecutive shares, one per replica, so the
      numbers equal those of one device. Default: TensorFlow's default.

  Returns:
    The run's metrics: a list of per-epoch dicts, as in `metrics.json`.

  Raises:
    RunError: `run_dir` already holds a run.
    tfp_emerging.data.DataError: the data cannot be loaded or does not fit.
    TrainingDiverged: a NaN or infinite loss; the latest checkpoint is the
      last good epoch.
  """
  if os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
    raise RunError(f"{run_dir}: already holds a run ({CONFIG_FILE}); pass "
                   f"--resume to continue it or choose a new --out.")
  return _fit(config, run_dir, False, on_batch, log, strategy)


def resume(run_dir, epochs=None, on_batch=None, log=_log, strategy=None):
  """Continues the run in `run_dir` from its latest checkpoint.

  Args:
    run_dir: a run directory with a `config.json`.
    epochs: the new total number of epochs; default the stored one.
    on_batch: as in `train`.
    log: as in `train`.
    strategy: as in `train`; need not be the one that wrote the checkpoints.

  Returns:
    The run's metrics, all epochs (restored and new).

  Raises:
    RunError: `run_dir` holds no run.
    tfp_emerging.data.DataError: the data cannot be loaded or changed shape.
    TrainingDiverged: as in `train`.
  """
  config = read_config(run_dir)
  if epochs is not None:
    config.epochs = epochs
  return _fit(config, run_dir, True, on_batch, log, strategy)


def read_config(run_dir):
  """The `RunConfig` of a run, or `RunError` if `run_dir` holds none."""
  path = os.path.join(run_dir, CONFIG_FILE)
  if not os.path.exists(path):
    raise RunError(f"{run_dir}: no {CONFIG_FILE}; not a training run "
                   f"directory.")
  return RunConfig.from_json(path)


def load_data(config):
  """The run's data, checked against the stored image shape if there is one."""
  data = data_lib.load(config.dataset, num_levels=config.num_levels,
                       data_dir=config.data_dir)
  if (config.image_shape is not None and
      list(data.image_shape) != list(config.image_shape)):
    raise data_lib.DataError(
        f"{data.source}: images are now {list(data.image_shape)}, but the run "
        f"was trained on {config.image_shape}.")
  return data


def _split_over_replicas(strategy, batch):
  """`batch` for one replica; else its equal consecutive shares, one each."""
  replicas = strategy.num_replicas_in_sync
  if replicas == 1:
    return batch
  share = batch.shape[0] // replicas

  def replica_share(context):
    start = context.replica_id_in_sync_group * share
    return batch[start:start + share]

  return strategy.experimental_distribute_values_from_function(replica_share)


def _fit(config, run_dir, resuming, on_batch, log, strategy=None):
  """The training loop of `train` and `resume`."""
  strategy = strategy or tf.distribute.get_strategy()
  data = load_data(config)
  config.num_bins = data.num_bins
  config.image_shape = list(data.image_shape)
  batch_size = min(config.batch_size, data.train.shape[0])
  if batch_size % strategy.num_replicas_in_sync:
    raise RunError(
        f"the batch size {batch_size} must be divisible by the "
        f"{strategy.num_replicas_in_sync} replicas of the strategy.")
  tf.random.set_seed(config.seed)
  with strategy.scope():
    model = build_model(config)  # before any file: bad options leave no run
  os.makedirs(run_dir, exist_ok=True)
  write_json(os.path.join(run_dir, CONFIG_FILE), dataclasses.asdict(config))
  with strategy.scope():
    state = _State(model, run_dir, config.keep_checkpoints)
  restored = state.restore() if resuming else None
  if restored:
    log(f"resumed from {restored} (epoch {int(state.epoch.numpy())})")
  else:
    model.initialize(tf.constant(data.train[:config.batch_size * 4]))
  metrics = state.metrics
  write_json(os.path.join(run_dir, METRICS_FILE), {"epochs": metrics})

  train_images = data.train
  # Full batches only (the last partial one of each epoch's permutation is
  # dropped): one batch shape, so the training step is traced once.
  num_batches = train_images.shape[0] // batch_size
  for epoch in range(int(state.epoch.numpy()) + 1, config.epochs + 1):
    start_time = time.time()
    order = np.random.default_rng([config.seed, epoch]).permutation(
        train_images.shape[0])
    losses = []
    for step in range(num_batches):
      if on_batch is not None:
        on_batch(epoch, step, model)
      batch = train_images[order[step * batch_size:(step + 1) * batch_size]]
      loss = model.train_on_batch(
          _split_over_replicas(strategy, tf.constant(batch)))
      loss = float(np.asarray(loss if np.ndim(loss) == 0 else loss[0]))
      if not math.isfinite(loss):
        _diverged(state, epoch, f"the training loss became {loss} at batch "
                  f"{step + 1} of {num_batches}", config)
      losses.append(loss)
    train_bpd = float(np.mean(losses))
    test_bpd = evaluate_bits_per_dim(model, data.test, config.batch_size,
                                     seed=config.seed)
    if not math.isfinite(test_bpd):
      _diverged(state, epoch, f"the test bits/dim became {test_bpd}", config)
    metrics.append({
        "epoch": epoch,
        "train_bits_per_dim": train_bpd,
        "test_bits_per_dim": test_bpd,
        "seconds": round(time.time() - start_time, 3),
    })
    path = state.save(epoch, metrics)
    write_json(os.path.join(run_dir, METRICS_FILE), {"epochs": metrics})
    log(f"epoch {epoch}/{config.epochs}: train {train_bpd:.4f} bits/dim, "
        f"test {test_bpd:.4f} bits/dim ({metrics[-1]['seconds']:.1f} s) -> "
        f"{path}")

  grid = sample_grid(model, config.num_bins, 64, config.sample_temperature,
                     seed=config.seed)
  write_png(os.path.join(run_dir, SAMPLES_FILE), grid)
  return metrics


def _diverged(state, epoch, what, config):
  last = state.manager.latest_checkpoint
  kept = (f"the last good checkpoint {last} (epoch "
          f"{int(state.epoch.numpy())}) is kept" if last else
          "no checkpoint had been written yet")
  raise TrainingDiverged(
      f"training diverged in epoch {epoch}: {what}. Nothing of this epoch was "
      f"saved; {kept}. Lower --learning-rate (now {config.learning_rate}) or "
      f"lengthen --warmup-steps (now {config.warmup_steps}).")


def load_run(run_dir):
  """Rebuilds a run's model from its latest checkpoint.

  Args:
    run_dir: a run directory written by `train`.

  Returns:
    `(config, model, epoch, checkpoint_path)`.

  Raises:
    RunError: no run or no checkpoint in `run_dir`.
  """
  config = read_config(run_dir)
  model = build_model(config)
  state = _State(model, run_dir, config.keep_checkpoints)
  path = state.restore()
  if not path:
    raise RunError(f"{run_dir}: no checkpoint yet (no epoch finished); train "
                   f"it with --resume first.")
  return config, model, int(state.epoch.numpy()), path
