"""The speed targets (issue 12) checked against a benchmark run; the docs'
tables.

Usage:
  python -m benchmarks.targets [RECORDS]               met / missed per target
  python -m benchmarks.targets [RECORDS] --markdown    the performance tables
  python -m benchmarks.targets [RECORDS] --write-docs  put them in
                                                       docs/performance.md

`RECORDS` is the JSON list `python -m benchmarks.run --out RECORDS` writes
(default: `benchmarks/speed.json`, the run the docs report). Every target
is a ratio of two figures of one run (`Record.ratio`), so a shared machine's
load hits both alike.

The tables of the docs' performance page are generated here from the
records, between the `BEGIN` and `END` markers, one table per XLA mode, each
from that mode's records only, and `tests/unit/benchmarks/test_run.py`
checks that docs/performance.md holds exactly what this script makes of
`speed.json`.
"""

import argparse
import dataclasses
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = os.path.join(HERE, "speed.json")
PAGE = os.path.join(os.path.dirname(HERE), "docs", "performance.md")
BEGIN = "<!-- speed tables: python -m benchmarks.targets --write-docs -->"
END = "<!-- end of speed tables -->"

SHAPES = ((16, 32, 32, 12), (64, 32, 32, 48), (4, 64, 64, 12), (16, 16, 16, 48))
GLOWS = ("digits", "32x32x3")
MODES = ((False, "no xla"), (True, "xla"))


@dataclasses.dataclass(frozen=True)
class Target:
  """`ratio` of the record `(layer, op, solver, shape, jit)` is at most `bound`.

  `shape` None matches any shape (a Glow's records carry its batch shape).
  """

  layer: str
  op: str
  solver: object
  shape: object
  jit: bool
  bound: float
  per: str

  def describe(self):
    mode = "xla" if self.jit else "no xla"
    where = (
      "" if self.shape is None else " at " + "x".join(map(str, self.shape))
    )
    solver = f" ({self.solver})" if self.solver else ""
    return (
      f"[{mode}] {self.layer} {self.op}{solver} <= {self.bound:g}x "
      f"{self.per}{where}"
    )


def targets():
  """The targets of issues 12 and 25, one row per mode, shape and flow."""
  rows = []
  for jit, _ in MODES:
    for shape in SHAPES:
      rows.append(
        Target(
          "EmergingConv2D",
          "inverse",
          "auto",
          shape,
          jit,
          2.0,
          "its forward",
        )
      )
    for shape in SHAPES:
      rows.append(
        Target(
          "PeriodicConv2D", "inverse", None, shape, jit, 2.0, "its forward"
        )
      )
    for shape in SHAPES:
      rows.append(
        Target(
          "PeriodicConv2D[frozen]",
          "inverse",
          None,
          shape,
          jit,
          1.5,
          "its forward",
        )
      )
    for shape in SHAPES:
      rows.append(
        Target(
          "EmergingConv2D",
          "forward",
          None,
          shape,
          jit,
          1.15,
          "dense 3x3 conv2d",
        )
      )
    for glow in GLOWS:
      rows.append(
        Target(
          f"Glow[{glow}, emerging]",
          "train_step",
          None,
          None,
          jit,
          1.25,
          "1x1's",
        )
      )
  # Sampling as `FlowModel.sample` samples: the whole flow frozen.
  for glow in GLOWS:
    for mixing in ("emerging", "periodic"):
      rows.append(
        Target(
          f"Glow[{glow}, {mixing}, frozen]",
          "sample",
          None,
          None,
          True,
          1.25,
          "the frozen 1x1's",
        )
      )
  return rows


def load(path=RECORDS):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _matches(record, target):
  return (record["layer"], record["op"], record["solver"], record["jit"]) == (
    target.layer,
    target.op,
    target.solver,
    target.jit,
  ) and (target.shape is None or tuple(record["shape"]) == target.shape)


def check(records):
  """`(target description, measured, met)`; `met` None where not measured."""
  rows = []
  for target in targets():
    found = [r for r in records if _matches(r, target)]
    if not found:
      rows.append((target.describe(), "not measured", None))
    else:
      ratio = found[-1]["ratio"]
      rows.append((target.describe(), f"{ratio:.2f}x", ratio <= target.bound))
  return rows


def _milliseconds(seconds):
  ms = seconds * 1e3
  return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def _cell(record):
  if record is None:
    return ""
  if record["ratio"] is None:
    return _milliseconds(record["seconds"])
  return f"{_milliseconds(record['seconds'])} ({record['ratio']:.2f}x)"


def _layer_table(records):
  """Rows `layer, op (solver)`, one column per shape, of one mode's records."""
  shapes = []
  rows = {}
  for r in records:
    if r["layer"].startswith("Glow["):
      continue
    shape = tuple(r["shape"])
    if shape not in shapes:
      shapes.append(shape)
    op = r["op"] + (f" ({r['solver']})" if r["solver"] else "")
    rows.setdefault((r["layer"], op), {})[shape] = r
  lines = [
    "| layer | op | "
    + " | ".join("x".join(map(str, s)) for s in shapes)
    + " |",
    "|---|---|" + "---|" * len(shapes),
  ]
  for (layer, op), cells in rows.items():
    lines.append(
      f"| {layer} | {op} | "
      + " | ".join(_cell(cells.get(s)) for s in shapes)
      + " |"
    )
  return lines


def _glow_table(records):
  columns = [(op, jit) for jit, _ in MODES for op in ("train_step", "sample")]
  rows = {}
  for r in records:
    if r["layer"].startswith("Glow["):
      rows.setdefault(r["layer"], {})[(r["op"], r["jit"])] = r
  names = {"train_step": "train step", "sample": "sample"}
  lines = [
    "| flow | "
    + " | ".join(names[op] + (", XLA" if jit else "") for op, jit in columns)
    + " |",
    "|---|" + "---|" * len(columns),
  ]
  for layer, cells in rows.items():
    lines.append(
      f"| {layer} | " + " | ".join(_cell(cells.get(c)) for c in columns) + " |"
    )
  return lines


def markdown(records):
  """The performance tables: layers per XLA mode, the flows, the targets."""
  lines = []
  for jit, _ in MODES:
    mode = [r for r in records if r["jit"] == jit]
    if not any(not r["layer"].startswith("Glow[") for r in mode):
      continue
    lines += [
      (
        "With XLA (`jit_compile=True`)"
        if jit
        else "Without XLA (`tf.function`)"
      )
      + ", milliseconds (ratio):",
      "",
    ]
    lines += _layer_table(mode) + [""]
  if any(r["layer"].startswith("Glow[") for r in records):
    lines += ["Whole flows, milliseconds (ratio to the `1x1` mixing):", ""]
    lines += _glow_table(records) + [""]
  lines += ["Targets:", "", "| target | measured | |", "|---|---|---|"]
  for target, measured, met in check(records):
    if met is None:
      measured, verdict = "", "not measured"
    else:
      verdict = "met" if met else "missed"
    lines.append(f"| {target} | {measured} | {verdict} |")
  return "\n".join(lines) + "\n"


def replace_block(text, tables):
  """`text` with the part between `BEGIN` and `END` replaced by `tables`."""
  start, end = text.find(BEGIN), text.find(END)
  if start < 0 or end < start:
    raise ValueError(f"the page lacks the markers {BEGIN!r} ... {END!r}")
  return text[: start + len(BEGIN)] + "\n\n" + tables + "\n" + text[end:]


def tables_block(text):
  """The tables between the markers of `text` (as `replace_block` wrote)."""
  start, end = text.find(BEGIN), text.find(END)
  if start < 0 or end < start:
    raise ValueError(f"the page lacks the markers {BEGIN!r} ... {END!r}")
  return text[start + len(BEGIN) : end].strip("\n") + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("records", nargs="?", default=RECORDS)
  parser.add_argument(
    "--markdown", action="store_true", help="print the performance tables"
  )
  parser.add_argument(
    "--write-docs",
    nargs="?",
    const=PAGE,
    default=None,
    metavar="PAGE",
    help="write the tables into PAGE (default: docs/performance.md)",
  )
  args = parser.parse_args(argv)
  records = load(args.records)
  if args.write_docs:
    with open(args.write_docs, encoding="utf-8") as f:
      text = f.read()
    with open(args.write_docs, "w", encoding="utf-8") as f:
      f.write(replace_block(text, markdown(records)))
    return 0
  if args.markdown:
    print(markdown(records), end="")
    return 0
  for target, measured, met in check(records):
    verdict = "----" if met is None else ("met " if met else "MISS")
    print(f"{verdict} {target}: {measured}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
