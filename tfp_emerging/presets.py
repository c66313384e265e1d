"""The paper's configurations, ready to run: `tfp-emerging train --preset NAME`.

Hoogeboom, van den Berg & Welling (2019) train Glow-style flows on CIFAR-10
(32x32x3, 8 bits) with 3 levels, coupling networks 512 channels wide, and
either 8 or 32 steps per level. Each preset sets those options of a
`tfp_emerging.training.RunConfig` (`options`); anything given explicitly on
the command line (or to `config`) overrides them, so that

    tfp-emerging train --preset cifar10-emerging --out runs/c10-emerging
    tfp-emerging train --preset cifar10-emerging --batch-size 32 --out ...

train the paper's architecture on tensorflow-datasets' `cifar10` (the data
must be downloadable or prepared in `--data-dir`). Sized for a GPU: on the
2-core CPUs this project is tested on, one epoch of a 512-wide, 3x8-step
flow on 50,000 images takes hours. The tests build each preset at a tiny
size.

`PAPER_BITS_PER_DIM` holds the test bits/dim the paper reports for the
architecture (`None` where it reports none); `describe()` prints them.

Training options follow the paper's code (Glow's `train.py`: Adam at
`1e-3` after a linear warm-up, batches of 64, learned priors); the paper
trained far longer (thousands of Glow's epochs on 4 GPUs) than `epochs`
here, which is a budget for one GPU, to be raised with `--epochs` and
`--resume`.
"""

from __future__ import annotations

from typing import Any

from tfp_emerging.training.config import RunConfig

__all__ = ["PAPER_BITS_PER_DIM", "PRESETS", "config", "describe", "options"]

_CIFAR10 = dict(
  dataset="cifar10",
  num_levels=3,
  num_steps=8,
  hidden_channels=512,
  kernel_size=3,
  batch_size=64,
  learning_rate=1e-3,
  warmup_steps=5000,
  epochs=1000,
)

PRESETS = {
  "cifar10-1x1": dict(_CIFAR10, mixing="1x1"),
  "cifar10-lu": dict(_CIFAR10, mixing="lu"),
  "cifar10-qr": dict(_CIFAR10, mixing="qr"),
  "cifar10-emerging": dict(_CIFAR10, mixing="emerging"),
  "cifar10-periodic": dict(_CIFAR10, mixing="periodic"),
  "cifar10-1x1-32": dict(_CIFAR10, mixing="1x1", num_steps=32),
  "cifar10-emerging-32": dict(_CIFAR10, mixing="emerging", num_steps=32),
}
"""The paper's CIFAR-10 configurations by name (`--preset`): the
`RunConfig` options each sets."""

PAPER_BITS_PER_DIM = {
  "cifar10-1x1": 3.46,
  "cifar10-lu": None,
  "cifar10-qr": None,
  "cifar10-emerging": 3.43,
  "cifar10-periodic": None,
  "cifar10-1x1-32": 3.35,
  "cifar10-emerging-32": 3.34,
}
"""Test bits/dim on CIFAR-10 as reported by the paper (its tables of 8 and
of 32 steps per level; the 32-step 1x1 figure is Glow's own, quoted
there), `None` where it reports none for that mixing."""


def options(name: str) -> dict[str, Any]:
  """The `RunConfig` options that preset `name` sets (a new dict).

  Raises:
    ValueError: an unknown `name`, naming the presets there are.
  """
  if name not in PRESETS:
    raise ValueError(
      f"unknown preset {name!r}; the presets are {', '.join(sorted(PRESETS))}."
    )
  return dict(PRESETS[name])


def config(name: str, **overrides: Any) -> RunConfig:
  """The `RunConfig` of preset `name`, with `overrides` applied last.

  `config("cifar10-emerging", hidden_channels=8)` is the preset's
  architecture 8 channels wide. The result records `preset=name`.
  """
  return RunConfig(**{**options(name), "preset": name, **overrides})


def describe() -> str:
  """One line per preset: its name, architecture and the paper's bits/dim."""
  lines = []
  for name, preset in PRESETS.items():
    paper = PAPER_BITS_PER_DIM[name]
    lines.append(
      f"{name:21s} {preset['mixing']:8s} levels {preset['num_levels']}, "
      f"{preset['num_steps']} steps/level, {preset['hidden_channels']} "
      f"hidden, on {preset['dataset']}; paper: "
      f"{'not reported' if paper is None else f'{paper:.2f} bits/dim'}"
    )
  return "\n".join(lines)
