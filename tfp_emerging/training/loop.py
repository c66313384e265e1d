"""The one training path: `build_model`, `fit`, `evaluate` (no filesystem).

`fit(model, data, config)` is the one way this package trains: the command
line (`train`, `resume`), the comparison studies in `benchmarks/` and the
notebooks call it. It runs `FlowModel.fit` over the `tf.data` pipelines of
`tfp_emerging.data.train_batches` and `test_batches` (the evaluation at the
end of every epoch), with the callbacks given. `evaluate` is the one
evaluator (`FlowModel.evaluate` over `test_batches`), `build_model` the one
model builder, and the data come only through `tfp_emerging.data.load`
(`load_data`). Under a `tf.distribute` strategy (build the model in its
scope: `build_model(config, strategy)`), `FlowModel.fit` splits each global
batch over the replicas.

Bits/dim: the train bits/dim of an epoch is the mean loss of its images
(weights changing as it goes); the test bits/dim is the mean over every test
image, measured after the epoch, each image dequantised with noise drawn
statelessly from `(evaluation seed, index of the image)` (the evaluation
seed is the run's `seed`), so that it does not depend on the batch size or
the number of replicas.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import typing

import tensorflow as tf
from tensorflow import keras

from tfp_emerging import data as data_lib
from tfp_emerging import flows
from tfp_emerging.data import pipeline
from tfp_emerging.keras import FlowModel
from tfp_emerging.keras import WarmupSchedule
from tfp_emerging.ops import checks
from tfp_emerging.training import callbacks as callbacks_lib
from tfp_emerging.training.config import RunConfig
from tfp_emerging.training.config import RunError

__all__ = ["build_model", "evaluate", "fit", "load_data", "training_batch_size"]


def load_data(config: RunConfig) -> data_lib.ImageDataset:
  """The `ImageDataset` of the `RunConfig` `config`, through
  `tfp_emerging.data.load`."""
  return data_lib.load(
    config.dataset,
    num_levels=config.num_levels,
    data_dir=config.data_dir,
    splits=None if config.splits is None else tuple(config.splits),
    bit_depth=config.bit_depth,
  )


def build_model(
  config: RunConfig, strategy: tf.distribute.Strategy | None = None
) -> FlowModel:
  """The compiled `FlowModel` of `config` (its data fields must be set).

  Built in `strategy.scope()` if a `tf.distribute.Strategy` is given: then
  `fit` and `evaluate` distribute each batch over its replicas.
  """
  if config.image_shape is None or config.num_bins is None:
    raise ValueError(
      "build_model: `config` has no data fields (image_shape, num_bins); "
      "set them with `config.with_data(data)`."
    )
  image_shape, num_bins = tuple(config.image_shape), config.num_bins
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    try:
      flow = flows.Glow(
        image_shape=image_shape,
        num_levels=config.num_levels,
        num_steps=config.num_steps,
        mixing=config.mixing,
        hidden_channels=config.hidden_channels,
        kernel_size=config.kernel_size,
        num_classes=config.num_classes if config.conditional else None,
        condition_couplings=bool(
          config.conditional and config.condition_couplings
        ),
        seed=config.seed,
      )
      dequantizer = None
      if config.dequantization == "variational":
        dequantizer = flows.VariationalDequantizer(
          image_shape=image_shape,
          num_bins=num_bins,
          hidden_channels=max(1, config.hidden_channels // 2),
          seed=config.seed + 1,
        )
    except ValueError as e:  # names the argument and what it expected
      raise RunError(f"invalid model options: {e}") from e
    model = FlowModel(flow, num_bins=num_bins, dequantizer=dequantizer)
    schedule = WarmupSchedule(config.learning_rate, config.warmup_steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
  return model


def _progress_bar():
  """A Keras `ProgbarLogger` that Keras may call off the training thread."""
  bar = keras.callbacks.ProgbarLogger()
  # Keras dispatches the default progress bar's per-batch updates
  # asynchronously (no host sync per step); this one, listed explicitly so
  # that it prints before the checkpoint line, is the same logger.
  bar.async_safe = True
  return bar


def training_batch_size(
  config: RunConfig,
  data: data_lib.ImageDataset,
  model: FlowModel,
  num_examples: int | None = None,
) -> int:
  """The training batch: `config.batch_size`, at most the training split."""
  size = min(
    config.batch_size, pipeline.num_images(data, "train", num_examples)
  )
  replicas = model.distribute_strategy.num_replicas_in_sync
  if size % replicas:
    raise RunError(
      f"the batch size {size} must be divisible by the {replicas} "
      f"replicas of the strategy."
    )
  return size


def fit(
  model: FlowModel,
  data: data_lib.ImageDataset,
  config: RunConfig,
  initial_epoch: int = 0,
  callbacks: Sequence[keras.callbacks.Callback] = (),
  verbose: int = 0,
  initial_step: int = 0,
  recorder: callbacks_lib.EpochRecorder | None = None,
  advice: Callable[[], str] | None = None,
  num_train: int | None = None,
  num_test: int | None = None,
  evaluation_seed: int | None = None,
  labels: bool = False,
) -> list[dict]:
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
    initial_step: steps of epoch `initial_epoch + 1` already done (a
      restored step checkpoint's): that epoch trains on the rest of its
      batches, the same an uninterrupted run would (one `FlowModel.fit` of
      that epoch's remaining steps, then one of the later epochs). Its
      record's train bits/dim covers only those steps unless `recorder`
      carries the done ones (`EpochRecorder(initial_step=...)`).
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
  size = training_batch_size(config, data, model, num_train)
  if not model.is_initialized():
    first = pipeline.first_images(
      data,
      size,
      config.seed,
      initial_epoch + 1,
      num_examples=num_train,
      labels=labels,
    )
    images, classes = first if labels else (first, None)
    model.initialize(images, classes, seed=config.seed)

  def batches(first_epoch, last_epoch):
    return pipeline.train_batches(
      data,
      size,
      config.seed,
      first_epoch,
      last_epoch,
      dtype=model.distribution.dtype,
      num_examples=num_train,
      labels=labels,
    )

  test = pipeline.test_batches(
    data,
    size,
    config.seed if evaluation_seed is None else evaluation_seed,
    dtype=model.distribution.dtype,
    num_examples=num_test,
    labels=labels,
  )
  callbacks = [
    recorder,
    callbacks_lib.NaNGuard(advice),
    _progress_bar(),
    *callbacks,
  ]
  # What both `fit`s below share (the rest of a resumed epoch, the later
  # epochs).
  fit_options = dict(
    validation_data=test, verbose=verbose, shuffle=False, callbacks=callbacks
  )
  done = initial_epoch
  if initial_step:
    partial, steps = batches(done + 1, done + 1)
    if not 0 < initial_step < steps:
      raise RunError(
        f"initial_step must be in 1..{steps - 1} (the steps of an epoch at "
        f"batch size {size}); got {initial_step}."
      )
    model.fit(
      partial.skip(initial_step),
      epochs=done + 1,
      initial_epoch=done,
      steps_per_epoch=steps - initial_step,
      **fit_options,
    )
    done += 1
  if done < config.epochs:
    train, steps = batches(done + 1, config.epochs)
    model.fit(
      train,
      epochs=config.epochs,
      initial_epoch=done,
      steps_per_epoch=steps,
      **fit_options,
    )
  return recorder.records


def evaluate(
  model: FlowModel,
  data: data_lib.ImageDataset,
  batch_size: int,
  seed: int,
  num_examples: int | None = None,
  labels: bool = False,
  num_samples: int = 1,
) -> float:
  """Mean test bits/dim of `model` on every test image (`test_batches`).

  The same evaluation as the one at the end of each epoch of `fit` (with
  `seed` the run's seed: the same number as the epoch's
  `test_bits_per_dim`). With `num_samples = K > 1`, the importance-weighted
  bound over `K` dequantisations of each image (the first one the epoch's),
  never above the mean of their single-draw figures; `K` times the cost.
  """
  num_samples = checks.positive_int(num_samples, "num_samples")
  logs = model.evaluate(
    pipeline.test_batches(
      data,
      batch_size,
      seed,
      dtype=model.distribution.dtype,
      num_examples=num_examples,
      labels=labels,
      num_samples=num_samples,
    ),
    verbose=0,
    return_dict=True,
  )
  return float(typing.cast(dict, logs)["bits_per_dim"])
