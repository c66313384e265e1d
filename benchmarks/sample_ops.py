"""Sequential work of one sample call: `python -m benchmarks.sample_ops`.

Per Glow mixing (1x1, periodic, emerging with each solver, unfrozen and
frozen), and per whole flow frozen by `tfp_emerging.bijectors.freeze`
(`FROZEN_FLOWS`, named `<mixing>[frozen flow]`: every layer frozen, as
`FlowModel.sample` runs it), traces `glow.forward` (sampling: latents to
images) once without and once with XLA and records

* `ops`: the graph's operations, nested function bodies (loop bodies,
  conditions) included: what TensorFlow's executor dispatches one by one;
* `loop_iterations`: the `while_loop` iterations the autoregressive solves
  run per call (`ceil(H/d) + ceil(W/d) - 1` per wavefront solve, which is
  unrolled into ops without XLA and a loop under XLA; `H W` per raster
  solve; none for the FFT filter or the dense inverse), counted from the
  solves traced.

On a GPU each op or loop iteration is at least one kernel launch and
host round trip, so these counts bound sampling there; they are machine
independent (`docs/performance.md` records them). Output: one JSON object per
line, or with `--out FILE` a JSON list.
"""

import argparse
import json
import sys

import tensorflow as tf
import tensorflow_probability as tfp

from benchmarks import run as speed
from tfp_emerging import bijectors
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import triangular_solvers

__all__ = ["CONFIG", "FROZEN_FLOWS", "count", "main"]

# `(batch, image_shape, num_levels, num_steps, hidden_channels)`: the
# speed suite's 32x32x3 Glow.
CONFIG = (16, (32, 32, 3), 3, 4, 64)
# The mixings whose whole Glow is also counted frozen (`freeze(glow)`).
FROZEN_FLOWS = ("1x1", "emerging")


def _emerging(solver, frozen):
  """A mixing callable: QR 1x1 then emerging with `solver`, maybe frozen."""

  def make(channels, seed, dtype):
    layer = bijectors.EmergingConv2D(
      channels, 3, solver=solver, seed=seed, dtype=dtype
    )
    if frozen:
      layer = layer._frozen()
    one_by_one = bijectors.Conv1x1(channels, "qr", seed=seed, dtype=dtype)
    return tfp.bijectors.Chain([layer, one_by_one])

  return make


def _graph_ops(graph_def):
  """Nodes of the graph and of every function in its library."""
  return len(graph_def.node) + sum(
    len(function.node_def) for function in graph_def.library.function
  )


def count(mixing, jit, config=CONFIG, frozen_flow=False):
  """`(ops, loop_iterations)` of one traced sample call; with
  `frozen_flow`, of the Glow initialised on noise and frozen
  (`_frozen_glow`)."""
  batch, image_shape, num_levels, num_steps, hidden = config
  glow = speed.build_glow(image_shape, num_levels, num_steps, mixing, hidden)
  if frozen_flow:
    glow = _frozen_glow(glow, batch)
  iterations = []
  solve = autoregressive._SOLVE

  def recording(name):
    def run(y, kernel, dilation, top_left, *rest):
      h, w = y.shape[1], y.shape[2]
      hd, wd = -(-h // dilation), -(-w // dilation)
      if name == "raster":
        iterations.append(hd * wd)
      elif name == "wavefront" and jit and kernel.shape[0] > 1:
        iterations.append(hd + wd - 1)
      return solve[name](y, kernel, dilation, top_left, *rest)

    return run

  recorded = {name: recording(name) for name in solve}
  frozen_solve = triangular_solvers.wavefront_solve
  autoregressive._SOLVE = recorded
  triangular_solvers.wavefront_solve = recorded["wavefront"]
  try:
    fn = tf.function(glow.forward, jit_compile=jit)
    concrete = fn.get_concrete_function(
      tf.TensorSpec([batch, *image_shape], tf.float32)
    )
  finally:
    autoregressive._SOLVE = solve
    triangular_solvers.wavefront_solve = frozen_solve
  return _graph_ops(concrete.graph.as_graph_def()), sum(iterations)


def _frozen_glow(glow, batch):
  """`freeze(glow)` once its ActNorms are initialised (an uninitialised
  ActNorm stays as it is), from uniform noise images."""
  images = tf.random.stateless_uniform([batch, *glow.image_shape], [1, 2])
  glow.initialize(images - 0.5)
  return bijectors.freeze(glow)


def mixings():
  """`(name, mixing)` measured."""
  cases = [("1x1", "1x1"), ("periodic", "periodic")]
  for solver in ("auto", "wavefront", "raster", "fft"):
    cases.append((f"emerging[{solver}]", _emerging(solver, False)))
  for solver in ("auto", "fft"):
    cases.append((f"emerging[{solver}, frozen]", _emerging(solver, True)))
  return cases


def main(argv=None):
  parser = argparse.ArgumentParser(
    prog="python -m benchmarks.sample_ops", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--out", default=None, help="JSON list to write")
  args = parser.parse_args(argv)
  records = []
  for name, mixing in mixings():
    for jit in (False, True):
      ops, loops = count(mixing, jit)
      record = dict(mixing=name, jit=jit, ops=ops, loop_iterations=loops)
      print(json.dumps(record), flush=True)
      records.append(record)
  for mixing in FROZEN_FLOWS:
    for jit in (False, True):
      ops, loops = count(mixing, jit, frozen_flow=True)
      record = dict(
        mixing=f"{mixing}[frozen flow]", jit=jit, ops=ops, loop_iterations=loops
      )
      print(json.dumps(record), flush=True)
      records.append(record)
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(records, f, indent=1)
      f.write("\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
