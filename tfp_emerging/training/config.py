"""`RunConfig`: everything that defines a training run, checked on creation.

A `RunConfig` is stored as a run's `config.json`. It checks its own values
in `__post_init__` (so a config from the command line, from code or from a
`config.json` is checked the same way) and raises `RunError` naming the
option and what was expected. `RESUMABLE_OPTIONS` is the one list of the
options a resumed run may change; `resumed` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import functools
import json
import math
import numbers
import os
import string
from typing import Any

from tfp_emerging.data import dataset as dataset_lib
from tfp_emerging.data import sources
from tfp_emerging.flows import glow
from tfp_emerging.flows import variational_dequantization

__all__ = [
  "MODEL_OPTIONS",
  "RESUMABLE_OPTIONS",
  "ArgumentError",
  "RunConfig",
  "RunError",
  "flag",
]

RESUMABLE_OPTIONS = (
  "epochs",
  "batch_size",
  "learning_rate",
  "warmup_steps",
  "checkpoint_every",
)
"""The options `--resume` may change: they change neither the model nor
the data."""

# The fields that define the model a checkpoint holds (its variables'
# shapes, or how its density reads pixels: `num_bins`); stored in every
# checkpoint (`RunConfig.model_identity`) and checked against config.json
# on restore.
MODEL_OPTIONS = (
  "mixing",
  "num_levels",
  "num_steps",
  "hidden_channels",
  "kernel_size",
  "conditional",
  "condition_couplings",
  "dequantization",
  "num_bins",
  "image_shape",
  "num_classes",
)

# The least value of each integer option (and of the sample temperature).
_MINIMA = (
  ("num_levels", 1),
  ("num_steps", 1),
  ("hidden_channels", 1),
  ("kernel_size", 1),
  ("epochs", 1),
  ("batch_size", 1),
  ("keep_checkpoints", 1),
  ("warmup_steps", 0),
  ("sample_temperature", 0),
)
# Command-line spellings that differ from `--field-name`: of `RunConfig`
# fields, and of arguments of the library's run functions.
_FLAGS = {
  "splits": "--split",
  "condition_couplings": "--no-condition-couplings",
  "num_samples": "--samples",  # evaluate_run's
}


class RunError(ValueError):
  """A run that cannot be made: bad options, or a run directory that cannot
  be used (missing, not a run, already one)."""


class ArgumentError(RunError):
  """A `RunError` caused by arguments of a library call, which it names.

  The message is `template`, a `str.format` string with a field for each
  parameter it names and `values` for the others: `str(error)` names the
  parameters as a Python caller spells them, `spelled(flag)` as the
  command line does.

      error = ArgumentError("{out} {path}: is a folder.", path="/tmp")
      str(error)  # 'out /tmp: is a folder.'
      error.spelled(flag)  # '--out /tmp: is a folder.'

  Attributes:
    parameters: the names of the parameters the message names, in its
      order.
  """

  def __init__(self, template: str, **values: Any):
    fields = (field for _, field, _, _ in string.Formatter().parse(template))
    self.parameters = tuple(
      dict.fromkeys(f for f in fields if f is not None and f not in values)
    )
    self.template = template
    self.values = values
    super().__init__(self.spelled(str))

  def __reduce__(self):
    # Pickled and copied as made (BaseException's would pass the message
    # as the template).
    return functools.partial(type(self), self.template, **self.values), ()

  def spelled(self, spelling: Callable[[str], str]) -> str:
    """The message with each parameter `name` written `spelling(name)`."""
    names = {name: spelling(name) for name in self.parameters}
    return self.template.format(**names, **self.values)


def flag(name: str) -> str:
  """The command-line option of the `RunConfig` field, or the argument of a
  run function (`ArgumentError.parameters`), called `name`."""
  return _FLAGS.get(name, "--" + name.replace("_", "-"))


def _is_int(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclasses.dataclass
class RunConfig:
  """Everything that defines a run; stored as `config.json`.

  The defaults are `make demo`'s run: sized for the 8x8 digits, about two
  minutes of CPU. One level (8x8x1 squeezed to 4x4x4) keeps every mixing
  usable there: the periodic convolution's 3x3 kernel must fit the last
  level's 4x4. Larger images want more levels and wider couplings.

  Attributes:
    dataset: `"digits"`, `"skimage-crops"`, a `tensorflow-datasets` name, or
      a path to an `.npz` file or a PNG folder (see
      `tfp_emerging.data.load`); a path that exists is made absolute.
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
    checkpoint_every: write a step checkpoint every this many steps inside
      an epoch (`callbacks.StepCheckpointer`), or `None` for none (a stop
      by SIGINT or SIGTERM checkpoints its step anyway).
    sample_temperature: temperature of `samples.png`.
    data_dir: `tensorflow-datasets` data folder, or `None`.
    splits: `[train, test]` split names of the source, or `None` for the
      source's own (`tfp_emerging.data.load`'s `splits`).
    bit_depth: `None` (keep the data's depth) or 8 (reduce 16-bit data).
    conditional: a class-conditional Glow on the data's labels (its priors
      depend on the class; `Glow(num_classes=...)`).
    condition_couplings: with `conditional`, the coupling networks depend on
      the class too (`Glow`'s own default with `num_classes`).
    dequantization: `"uniform"` noise, or `"variational"`: a
      `tfp_emerging.flows.VariationalDequantizer` `q(u | k)` (4 couplings,
      `hidden_channels // 2` wide) trained jointly with the flow, the bits
      per dimension being the bound `E_q[-log p + log q]`.
    preset: the name of the `tfp_emerging.presets` preset the options came
      from, or `None`.
    num_bins: grey levels per channel (set from the data).
    image_shape: `[H, W, C]` (set from the data).
    num_classes: the data's number of classes for a conditional run (set
      from the data), else `None`.
    changes: the options changed when the run was resumed: a list of
      `{"epoch": first epoch trained with the new value, "option", "old",
      "new"}`.

  Raises:
    RunError: on creation, a value out of range or of the wrong type, naming
      the option (its command-line flag and field) and what was expected.
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
  checkpoint_every: int | None = None
  sample_temperature: float = 0.7
  data_dir: str | None = None
  splits: list[str] | None = None
  bit_depth: int | None = None
  conditional: bool = False
  condition_couplings: bool = True
  dequantization: str = "uniform"
  preset: str | None = None
  num_bins: int | None = None
  image_shape: list[int] | None = None
  num_classes: int | None = None
  changes: list[dict] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    def fail(field, expected):
      raise RunError(
        f"{flag(field)} must be {expected}; got "
        f"{getattr(self, field)!r} (RunConfig.{field})."
      )

    if not isinstance(self.dataset, str) or not self.dataset:
      fail("dataset", "a dataset name or path")
    if sources.is_path(self.dataset) and os.path.exists(self.dataset):
      self.dataset = os.path.abspath(self.dataset)
    if self.mixing not in glow.MIXINGS:
      fail("mixing", f"one of {', '.join(glow.MIXINGS)}")
    if self.dequantization not in variational_dequantization.DEQUANTIZATIONS:
      fail(
        "dequantization",
        f"one of {', '.join(variational_dequantization.DEQUANTIZATIONS)}",
      )
    for field, low in _MINIMA:
      value = getattr(self, field)
      number = (
        _is_int(value)
        if field != "sample_temperature"
        else isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
      )
      if not number or not value >= low:
        fail(field, f">= {low}")
    if (
      not isinstance(self.learning_rate, numbers.Real)
      or isinstance(self.learning_rate, bool)
      or not math.isfinite(self.learning_rate)
      or not self.learning_rate > 0
    ):
      fail("learning_rate", "> 0")
    if not _is_int(self.seed):
      fail("seed", "an int")
    if self.checkpoint_every is not None and not (
      _is_int(self.checkpoint_every) and self.checkpoint_every >= 1
    ):
      fail("checkpoint_every", "None or an int >= 1")
    if self.splits is not None:
      if (
        isinstance(self.splits, str)
        or len(self.splits) != 2
        or not all(isinstance(s, str) and s for s in self.splits)
      ):
        fail("splits", "two split names TRAIN,TEST")
      self.splits = list(self.splits)
    if self.bit_depth not in (None, 8):
      fail("bit_depth", "None (keep the data's depth) or 8")
    if not isinstance(self.conditional, bool):
      fail("conditional", "True or False")
    if not isinstance(self.condition_couplings, bool):
      fail("condition_couplings", "True or False")
    if not self.condition_couplings and not self.conditional:
      raise RunError(
        "--no-condition-couplings goes with --conditional "
        "(RunConfig.condition_couplings=False needs "
        "conditional=True)."
      )
    if self.num_bins is not None and not (
      _is_int(self.num_bins) and self.num_bins >= 2
    ):
      fail("num_bins", "None or an int >= 2")
    if self.image_shape is not None:
      if len(self.image_shape) != 3 or not all(
        _is_int(d) and d >= 1 for d in self.image_shape
      ):
        fail("image_shape", "None or [H, W, C] of positive ints")
      self.image_shape = [int(d) for d in self.image_shape]
    if self.num_classes is not None and not (
      _is_int(self.num_classes) and self.num_classes >= 1
    ):
      fail("num_classes", "None or an int >= 1")

  def model_identity(self) -> dict[str, Any]:
    """`{field: value}` of `MODEL_OPTIONS`: what a checkpoint of this run's
    model must agree with."""
    return {name: getattr(self, name) for name in MODEL_OPTIONS}

  @classmethod
  def from_json(cls, path: str | os.PathLike) -> RunConfig:
    """Reads a `config.json`, raising `RunError` on a malformed file."""
    try:
      with open(path, encoding="utf-8") as f:
        values = json.load(f)
      return cls(**values)
    except RunError as e:
      raise RunError(f"{path}: {e}") from e
    except (OSError, ValueError, TypeError) as e:
      raise RunError(f"{path}: not a readable run configuration ({e}).") from e

  def with_data(self, data: dataset_lib.ImageDataset) -> RunConfig:
    """This config with `num_bins`, `image_shape` (and, if `conditional`,
    `num_classes`) of `data` (an `ImageDataset`); `DataError` if they differ
    from values already set, or if a conditional run's data has no labels."""
    shape = [int(d) for d in data.image_shape]
    num_classes = None
    if self.conditional:
      if data.num_classes is None:
        raise dataset_lib.DataError(
          f"{data.source}: has no class labels, which a conditional run "
          f"needs (--conditional). {dataset_lib.LABELLED_SOURCES}"
        )
      num_classes = int(data.num_classes)
    for name, value in (
      ("image_shape", shape),
      ("num_bins", data.num_bins),
      ("num_classes", num_classes),
    ):
      stored = getattr(self, name)
      if stored is not None and stored != value:
        raise dataset_lib.DataError(
          f"{data.source}: {name} is now {value}, but the run was trained "
          f"with {stored}."
        )
    return dataclasses.replace(
      self, num_bins=data.num_bins, image_shape=shape, num_classes=num_classes
    )

  def resumed(
    self, options: Mapping[str, Any]
  ) -> tuple[RunConfig, dict[str, Any]]:
    """`(config, changed)`: this stored config resumed with the run options
    `options` (a dict of fields given again, e.g. on the command line).

    Only `RESUMABLE_OPTIONS` may change; `changed` holds those whose value
    differs, in the order of `RESUMABLE_OPTIONS`. Any other option must equal
    the stored value.

    Raises:
      ArgumentError: an option that cannot change differs from the stored
        one (naming `resume` and the options).
      RunError: an unknown option, or a new value out of range.
    """
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(self)})
    if unknown:
      raise RunError(f"unknown run options {', '.join(unknown)}.")
    changed = {
      name: options[name]
      for name in RESUMABLE_OPTIONS
      if name in options and options[name] != getattr(self, name)
    }
    clashes = [
      (name, value, getattr(self, name))
      for name, value in options.items()
      if name not in RESUMABLE_OPTIONS
      and name != "dataset"
      and value != getattr(self, name)
    ]
    if "dataset" in options:
      given = dataclasses.replace(self, dataset=options["dataset"]).dataset
      if given != self.dataset:
        clashes.insert(0, ("dataset", given, self.dataset))
    if clashes:
      values: dict[str, Any] = {}
      differ = []
      for i, (name, value, stored) in enumerate(clashes):
        differ.append(f"{{{name}}} {{given{i}}} (the run has {{stored{i}}})")
        values.update({f"given{i}": value, f"stored{i}": stored})
      resumable = ", ".join(f"{{{name}}}" for name in RESUMABLE_OPTIONS)
      raise ArgumentError(
        "{resume} continues the stored run; these options differ from its "
        f"config.json and cannot change: {', '.join(differ)} (only {resumable} "
        "can).",
        **values,
      )
    return dataclasses.replace(self, **changed), changed
