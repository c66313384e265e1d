"""What a run prints: progress lines, warnings, the start line, and how much
Keras prints.

Every function of a run that prints takes `log` and `warn` callables; these
are their defaults (`print_line`, `print_warning`), with the start line a
run logs first and the Keras `verbose` a run passes to `fit`.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import tensorflow as tf

from tfp_emerging.data import ImageDataset
from tfp_emerging.keras import FlowModel
from tfp_emerging.training.config import RunConfig

__all__ = ["keras_verbosity", "print_line", "print_warning", "start_line"]


def print_warning(message: str) -> None:
  """The default `warn`: `warning: message` on standard error."""
  print(f"warning: {message}", file=sys.stderr, flush=True)


def print_line(message: str) -> None:
  """The default `log`: `message` on standard output, flushed."""
  print(message, flush=True)


def keras_verbosity(verbose: int | str) -> int:
  """Keras' `verbose` for a run, whose `Checkpointer` logs one line per
  epoch: `"auto"` is a progress bar inside each epoch on a terminal, and
  nothing from Keras otherwise (so that a log file holds one line per
  epoch); an int is returned as it is."""
  if isinstance(verbose, int):
    return verbose
  if verbose != "auto":
    raise ValueError(f"verbose must be an int or 'auto'; got {verbose!r}.")
  isatty = getattr(sys.stdout, "isatty", None)
  return 1 if isatty is not None and isatty() else 0


def _device(model):
  """Where the model trains, for the start line."""
  strategy = model.distribute_strategy
  replicas = strategy.num_replicas_in_sync
  devices = tf.config.list_logical_devices(
    "GPU"
  ) or tf.config.list_logical_devices("TPU")
  kind = devices[0].device_type if devices else "CPU"
  if replicas > 1:
    return f"{replicas} replicas ({type(strategy).__name__}, {kind})"
  return f"{len(devices)} {kind}" if devices else "CPU"


def start_line(
  config: RunConfig,
  data: ImageDataset,
  model: FlowModel,
  run_dir: str | os.PathLike,
  initial_epoch: int = 0,
) -> str:
  """The line a run prints when training starts: the dataset and its
  shapes, the model and its parameter count, the device and the run
  directory."""
  parameters = int(sum(np.prod(v.shape) for v in model.trainable_weights))
  kind = "class-conditional " if config.conditional else ""
  epochs = (
    f"epochs {initial_epoch + 1}..{config.epochs}"
    if initial_epoch
    else f"{config.epochs} epochs"
  )
  return (
    f"training {kind}Glow with {config.mixing} mixing "
    f"({config.num_levels} level(s) x {config.num_steps} steps, "
    f"{config.hidden_channels} "
    f"hidden channels, {parameters:,} parameters) on {data.name}: "
    f"{data.num_examples['train']} train / {data.num_examples['test']} "
    f"test images of {'x'.join(map(str, data.image_shape))}, "
    f"{data.num_bins} levels; batch {config.batch_size}, {epochs}, "
    f"on {_device(model)} -> {run_dir}"
  )
