"""Speed benchmarks: `python -m benchmarks.run [--json] [--quick] [--only S]`.

Every measurement is the median wall time of `repeats` (default 7, at least
5) calls of a `tf.function` after two warm-up calls (the first traces and,
with `jit`, compiles), in float32, once without and once with XLA
(`jit_compile=True`). The functions of one group (all layers on one shape,
or all mixings of one Glow) take turns call by call, and ratios are taken
within a group, so the load of a shared machine hits numerator and
denominator alike.

Layers, on `(batch, H, W, C)` in `SHAPES`, kernel size `KERNEL_SIZE`:

* `conv2d`: a dense `k x k` `tf.nn.conv2d`, SAME padding: the reference.
* `AutoregressiveConv2D`, `EmergingConv2D`: forward; inverse with each of
  `SOLVERS` (`"auto"`, the default, then each solver it chooses from).
* `EmergingConv2D[equivalent]`: the forward as one dense convolution plus
  the border correction (`forward_path="equivalent"`), and its inverse;
  `EmergingConv2D[frozen]`: frozen weights, forward and inverse with each
  of `FROZEN_SOLVERS`. All timed in the same interleaved group as the old
  paths and `conv2d`.
* `PeriodicConv2D`, `Conv1x1[qr|lu|plain]`: forward and inverse;
  `PeriodicConv2D[frozen]`: frozen weights (`PeriodicConv2D._frozen`, the
  inverse spectrum and log-det computed once), forward and inverse.

Ratios: a forward is divided by `conv2d`'s forward, an inverse by the same
layer's forward.

Whole flows (`GLOWS`): a `Glow` per mixing of `tfp_emerging.flows.MIXINGS`;
`train_step` is one gradient step on `-mean(log_prob)` (gradients and a
plain SGD update), `sample` is `forward` of a batch of latents; each is
divided by the same op of the `"1x1"` mixing. `Glow[<config>, <mixing>,
frozen]` (mixings `FROZEN_GLOW_MIXINGS`): `sample` of the whole flow frozen
(`tfp_emerging.bijectors.freeze`, as `FlowModel.sample` runs it), in the
same interleaved group, divided by the frozen `"1x1"`'s `sample` (frozen /
unfrozen of one mixing: the two records' `seconds`).

Output: a table, or with `--json` one JSON object per line with the fields
`layer, op, solver, shape, jit, seconds, ratio, ratio_to` (`solver`, `ratio`
and `ratio_to` may be null), and with `--out FILE` the records as a JSON list
too. The records hold every ratio the speed targets name; the targets
themselves, and the docs' performance tables, come from `benchmarks.targets`
(`python -m benchmarks.targets FILE`).
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging import bijectors
from tfp_emerging import flows

__all__ = [
  "FROZEN_GLOW_MIXINGS",
  "FROZEN_SOLVERS",
  "GLOWS",
  "KERNEL_SIZE",
  "QUICK_GLOWS",
  "QUICK_SHAPES",
  "SHAPES",
  "SOLVERS",
  "Record",
  "main",
  "median_seconds",
  "run",
]

SHAPES = ((16, 32, 32, 12), (64, 32, 32, 48), (4, 64, 64, 12), (16, 16, 16, 48))
QUICK_SHAPES = ((2, 8, 8, 4),)
KERNEL_SIZE = 3
REPEATS = 7
MIN_REPEATS = 5

# `(name, batch, image_shape, num_levels, num_steps, hidden_channels)`.
GLOWS = (
  ("digits", 64, (8, 8, 1), 1, 4, 32),
  ("32x32x3", 16, (32, 32, 3), 3, 4, 64),
)
QUICK_GLOWS = (("tiny", 2, (8, 8, 1), 1, 1, 4),)
# `--quick` runs the Glow code path for the baseline and the paper's mixings.
QUICK_MIXINGS = ("1x1", "emerging", "periodic")
# The autoregressive layers' inverses measured: the default, then each solver.
SOLVERS = ("auto", "wavefront", "raster")
# The frozen emerging layer's inverses (`EmergingConv2D._frozen`): the
# default, then the inverse filter.
FROZEN_SOLVERS = ("auto", "fft")
# The mixings whose whole Glow is also sampled frozen (`freeze(glow)`, as
# `FlowModel.sample` samples): the baseline and the paper's two.
FROZEN_GLOW_MIXINGS = ("1x1", "emerging", "periodic")

DENSE = "conv2d"


@dataclasses.dataclass(frozen=True)
class Record:
  """One measurement; `ratio = seconds / seconds of ratio_to`."""

  layer: str
  op: str
  solver: object
  shape: list
  jit: bool
  seconds: float
  ratio: object = None
  ratio_to: object = None


JIT_MODES = {"both": (False, True), "on": (True,), "off": (False,)}
"""`--jit`'s choices: the XLA settings (`jit_compile`) each measures."""


def add_jit_option(parser, default):
  """`--jit {both,on,off}` (`JIT_MODES`) on the `argparse` `parser`."""
  parser.add_argument(
    "--jit",
    choices=tuple(JIT_MODES),
    default=default,
    help=f"XLA compilation: both, on or off (default: {default})",
  )


def add_shapes_option(parser, default):
  """`--shapes N,H,W,C ...` on `parser`, `default` naming the shapes used
  without it (`requested_shapes`)."""
  parser.add_argument(
    "--shapes",
    nargs="*",
    default=None,
    help=f"N,H,W,C each (default: {default})",
  )


def requested_shapes(shapes, default):
  """The `--shapes` values (`"N,H,W,C"` strings) as int tuples; `default`
  without them."""
  if shapes is None:
    return default
  return [tuple(int(s) for s in shape.split(",")) for shape in shapes]


def build_glow(image_shape, num_levels, num_steps, mixing, hidden_channels):
  """The suite's `flows.Glow`: `KERNEL_SIZE` kernels, seed 0."""
  return flows.Glow(
    image_shape,
    num_levels,
    num_steps,
    mixing=mixing,
    hidden_channels=hidden_channels,
    kernel_size=KERNEL_SIZE,
    seed=0,
  )


def median_seconds(calls, repeats):
  """Median wall time of each `fn(arg)` of `calls`, interleaved.

  Every call is warmed up twice (the first traces and compiles), then the
  calls take turns for `repeats` rounds, so a change in the machine's load
  hits all of them alike. Eager execution on CPU is synchronous: a call
  returns once its outputs are computed.
  """
  for fn, arg in calls:
    fn(arg)
    fn(arg)
  times = [[] for _ in calls]
  for _ in range(repeats):
    for (fn, arg), samples in zip(calls, times):
      start = time.perf_counter()
      fn(arg)
      samples.append(time.perf_counter() - start)
  return [statistics.median(samples) for samples in times]


def _layers(channels, quick):
  """`(name, solver, bijector)` for every layer measured on a shape."""
  layers = []
  for cls in (bijectors.AutoregressiveConv2D, bijectors.EmergingConv2D):
    for solver in SOLVERS:
      layers.append(
        (
          cls.__name__,
          solver,
          cls(channels, KERNEL_SIZE, solver=solver, seed=1),
        )
      )
  # Issue 25: the equivalent-kernel forward, and the frozen inverses.
  layers.append(
    (
      "EmergingConv2D[equivalent]",
      None,
      bijectors.EmergingConv2D(
        channels, KERNEL_SIZE, forward_path="equivalent", seed=1
      ),
    )
  )
  for solver in FROZEN_SOLVERS:
    layers.append(
      (
        "EmergingConv2D[frozen]",
        solver,
        bijectors.EmergingConv2D(
          channels, KERNEL_SIZE, solver=solver, seed=1
        )._frozen(),
      )
    )
  periodic = bijectors.PeriodicConv2D(channels, KERNEL_SIZE, seed=1)
  layers.append(("PeriodicConv2D", None, periodic))
  layers.append(("PeriodicConv2D[frozen]", None, periodic._frozen()))
  parameterizations = ("qr",) if quick else ("qr", "lu", "plain")
  for parameterization in parameterizations:
    layers.append(
      (
        f"Conv1x1[{parameterization}]",
        None,
        bijectors.Conv1x1(channels, parameterization, seed=1),
      )
    )
  return layers


def _layer_records(shape, jit, repeats, quick, selected):
  """Records of the dense reference and every layer on one shape."""
  images = tf.random.stateless_normal(shape, seed=[1, 2])
  channels = shape[-1]
  kernel = (
    tf.random.stateless_normal(
      [KERNEL_SIZE, KERNEL_SIZE, channels, channels], seed=[3, 4]
    )
    * 0.1
  )

  def compile_(fn):
    return tf.function(fn, jit_compile=jit)

  # (layer, op, solver, fn, arg), timed together below.
  plan = [
    (
      DENSE,
      "forward",
      None,
      compile_(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME")),
      images,
    )
  ]
  for name, solver, layer in _layers(channels, quick):
    if not selected(name):
      continue
    if solver in (None, SOLVERS[0]):  # one forward per layer (and solver)
      plan.append((name, "forward", None, compile_(layer.forward), images))
    # tf.identity: a fresh tensor, so TFP's cache cannot answer the inverse.
    outputs = tf.identity(layer.forward(images))
    plan.append((name, "inverse", solver, compile_(layer.inverse), outputs))
  seconds = median_seconds([(fn, arg) for *_, fn, arg in plan], repeats)
  measured = {key[:3]: t for key, t in zip(plan, seconds)}
  records = []
  for (name, op, solver, _, _), t in zip(plan, seconds):
    if name == DENSE:
      ratio_to = None
    elif op == "forward":
      ratio_to = (DENSE, "forward", None)
    else:
      ratio_to = (name, "forward", None)
    records.append(
      Record(
        name,
        op,
        solver,
        list(shape),
        jit,
        t,
        None if ratio_to is None else t / measured[ratio_to],
        None if ratio_to is None else " ".join(filter(None, ratio_to)),
      )
    )
  return records


def _glow_mixings(quick):
  return QUICK_MIXINGS if quick else flows.MIXINGS


def _glow_records(config, jit, repeats, quick, selected):
  """Training-step and sampling time of a `Glow` per mixing, vs `"1x1"`."""
  name, batch, image_shape, num_levels, num_steps, hidden = config
  shape = [batch, *image_shape]
  images = tf.random.stateless_uniform(shape, seed=[5, 6]) - 0.5
  latents = tf.random.stateless_normal(shape, seed=[7, 8]) * 0.7
  plan = []
  for mixing in _glow_mixings(quick):
    layer = f"Glow[{name}, {mixing}]"
    if mixing != "1x1" and not selected(layer):
      continue
    glow = build_glow(image_shape, num_levels, num_steps, mixing, hidden)
    glow.initialize(images)
    model = tfp.distributions.TransformedDistribution(
      glow.base_distribution(), glow
    )
    variables = glow.trainable_variables

    def train_step(x, model=model, variables=variables):
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(model.log_prob(x))
      for variable, grad in zip(variables, tape.gradient(loss, variables)):
        variable.assign_sub(1e-5 * grad)
      return loss

    plan.append(
      (layer, "train_step", tf.function(train_step, jit_compile=jit), images)
    )
    plan.append(
      (layer, "sample", tf.function(glow.forward, jit_compile=jit), latents)
    )
    plan.extend(_frozen_sample_plan(glow, name, mixing, jit, latents, selected))
  seconds = median_seconds([(fn, arg) for *_, fn, arg in plan], repeats)
  measured = {(layer, op): t for (layer, op, _, _), t in zip(plan, seconds)}

  def baseline(layer, op):
    frozen = ", frozen" if layer.endswith(", frozen]") else ""
    return f"Glow[{name}, 1x1{frozen}]", op

  return [
    Record(
      layer,
      op,
      None,
      shape,
      jit,
      t,
      t / measured[baseline(layer, op)],
      " ".join(baseline(layer, op)),
    )
    for (layer, op), t in measured.items()
  ]


def _frozen_sample_plan(glow, name, mixing, jit, latents, selected):
  """The plan entry timing `sample` of `freeze(glow)` (initialised), if its
  mixing is one of `FROZEN_GLOW_MIXINGS` and its name is selected (the
  `"1x1"`, the baseline, always)."""
  layer = f"Glow[{name}, {mixing}, frozen]"
  if mixing not in FROZEN_GLOW_MIXINGS or (
    mixing != "1x1" and not selected(layer)
  ):
    return []
  frozen = bijectors.freeze(glow)
  return [
    (layer, "sample", tf.function(frozen.forward, jit_compile=jit), latents)
  ]


def run(
  quick=False,
  repeats=REPEATS,
  only=None,
  jit_modes=(False, True),
  glows=True,
  log=None,
):
  """Runs the suite and returns its `Record`s.

  Args:
    quick: tiny shapes, one `Conv1x1` parameterisation, a tiny Glow with
      `QUICK_MIXINGS`: a smoke test of the suite's code paths, not a
      measurement.
    repeats: timed calls per measurement (at least `MIN_REPEATS`).
    only: optional substring, or list of substrings (any case); only layers
      (and Glow mixings, as `Glow[<config>, <mixing>]`) whose name contains
      one are measured. The dense reference (and, for a Glow, its 1x1)
      always run: the ratios need them.
    jit_modes: which of `jit_compile=False, True` to run.
    glows: whether to measure the whole flows.
    log: optional callable receiving each `Record` as it is measured.
  """
  if repeats < MIN_REPEATS:
    raise ValueError(
      f"`repeats` must be at least {MIN_REPEATS}; got {repeats}."
    )
  if isinstance(only, str):
    only = [only]

  def selected(name):
    return only is None or any(part.lower() in name.lower() for part in only)

  records = []

  def add(new):
    for record in new:
      records.append(record)
      if log is not None:
        log(record)

  for jit in jit_modes:
    for shape in QUICK_SHAPES if quick else SHAPES:
      add(_layer_records(shape, jit, repeats, quick, selected))
    if glows:
      for config in QUICK_GLOWS if quick else GLOWS:
        if any(
          selected(f"Glow[{config[0]}, {mixing}]")
          for mixing in _glow_mixings(quick)
        ):
          add(_glow_records(config, jit, repeats, quick, selected))
  return records


def _format(record):
  ratio = (
    "" if record.ratio is None else (f"{record.ratio:7.2f}x {record.ratio_to}")
  )
  solver = record.solver or ""
  shape = "x".join(str(s) for s in record.shape)
  jit = "xla" if record.jit else "   "
  return (
    f"{record.layer:28s} {record.op:10s} {solver:9s} {shape:14s} "
    f"{jit} {record.seconds * 1e3:10.2f} ms {ratio}"
  )


def build_parser():
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0]
  )
  parser.add_argument(
    "--json",
    action="store_true",
    help="one JSON record per line instead of a table",
  )
  parser.add_argument(
    "--quick",
    action="store_true",
    help="tiny shapes: checks the suite runs, in seconds",
  )
  parser.add_argument(
    "--only",
    action="append",
    default=None,
    help="only layers whose name contains this string (repeat for several)",
  )
  parser.add_argument(
    "--repeats",
    type=int,
    default=REPEATS,
    help=f"timed calls per measurement (>= {MIN_REPEATS})",
  )
  add_jit_option(parser, "both")
  parser.add_argument(
    "--no-glow", action="store_true", help="skip the whole-flow measurements"
  )
  parser.add_argument(
    "--out",
    default=None,
    help="also write the records to this file (JSON list)",
  )
  return parser


def main(argv=None):
  """Runs the suite from the command line; returns the exit status."""
  args = build_parser().parse_args(argv)
  if args.repeats < MIN_REPEATS:
    print(f"--repeats must be at least {MIN_REPEATS}", file=sys.stderr)
    return 2

  def log(record):
    if args.json:
      print(json.dumps(dataclasses.asdict(record)), flush=True)
    else:
      print(_format(record), flush=True)

  records = run(
    quick=args.quick,
    repeats=args.repeats,
    only=args.only,
    jit_modes=JIT_MODES[args.jit],
    glows=not args.no_glow,
    log=log,
  )
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump([dataclasses.asdict(r) for r in records], f, indent=1)
      f.write("\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
