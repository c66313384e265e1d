"""Grids of a model's samples: the run directory's `samples.png`, the
command line's `sample` and TensorBoard's sample images.

`sample_grid` draws from a `FlowModel` and tiles the samples with
`tfp_emerging.image_grid.image_grid`; `default_sample_count` and
`samples_per_grid` say how many it draws per grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfp_emerging.image_grid import image_grid
from tfp_emerging.keras import FlowModel
from tfp_emerging.training.config import ArgumentError

__all__ = [
  "NUM_SAMPLES",
  "SAMPLES_PER_CLASS",
  "default_sample_count",
  "sample_grid",
  "samples_per_grid",
]

NUM_SAMPLES = 64
"""Samples in `samples.png` of an unconditional run."""
SAMPLES_PER_CLASS = 8
"""Samples per class (one row each) in a class-conditional run's
`samples.png`."""


def sample_grid(
  model: FlowModel,
  n: int,
  temperature: float,
  seed: int | None,
  columns: int | None = None,
  classes: Sequence[int] | None = None,
) -> np.ndarray:
  """Samples of the `FlowModel` `model` at `temperature`, tiled.

  Unconditional model: `n` samples, `columns` per row (default
  `ceil(sqrt(n))`). Class-conditional model: one row per class of
  `classes` (default every class, `0..K-1`), `n` samples of that class in
  the row; `columns` must then be `None` or `n`.

  Raises:
    ArgumentError: (a `ValueError`) `classes` for an unconditional model,
      class ids outside `0..K-1`, or a `columns` that breaks the rows of
      classes; the message begins with the argument's name, which the
      command line spells as its flag.
  """
  if model.num_classes is None:
    if classes is not None:
      raise ArgumentError(
        "{classes}: the model is not class-conditional (train "
        "it with --conditional)."
      )
    samples = model.sample(n, temperature=temperature, seed=seed)
    return image_grid(np.asarray(samples), model.num_bins, columns=columns)
  classes = list(range(model.num_classes) if classes is None else classes)
  wrong = [c for c in classes if not 0 <= c < model.num_classes]
  if wrong or not classes:
    raise ArgumentError(
      "{classes} must lie in 0..{last}; got {given}.",
      last=model.num_classes - 1,
      given=",".join(map(str, classes)),
    )
  if columns not in (None, n):
    raise ArgumentError(
      "{columns}: a class-conditional grid has one row per class of {n} "
      "samples; columns must be {n}, got {given}.",
      n=n,
      given=columns,
    )
  labels = np.repeat(np.asarray(classes, np.int32), n)
  samples = model.sample(
    len(labels), temperature=temperature, seed=seed, labels=labels
  )
  return image_grid(np.asarray(samples), model.num_bins, columns=n)


def default_sample_count(model: FlowModel) -> int:
  """`n` of a run's sample grid: `NUM_SAMPLES` for an unconditional model,
  `SAMPLES_PER_CLASS` per class for a class-conditional one."""
  return NUM_SAMPLES if model.num_classes is None else SAMPLES_PER_CLASS


def samples_per_grid(model: FlowModel, total: int) -> int:
  """`n` for `sample_grid` of about `total` images: `total` for an
  unconditional model, `total // K` (at least 1) per class for a
  class-conditional one."""
  if model.num_classes is None:
    return total
  return max(1, total // model.num_classes)
