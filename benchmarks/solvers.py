"""Raster against wavefront: the measurements behind `solver="auto"`.

Usage: python -m benchmarks.solvers [--jit both|on|off] [--shapes N,H,W,C ...]

Times one `AutoregressiveConv2D` inverse (`k = 3`, float32) with each solver
next to its forward, the calls of one shape taking turns, and prints
raster / wavefront per shape with the solver `"auto"` picks
(`tfp_emerging.ops.autoregressive.raster_is_cheaper`), to recalibrate the
rule on another machine.
"""

import argparse
import sys

import tensorflow as tf

from benchmarks import run as speed
from tfp_emerging import bijectors
from tfp_emerging.ops import autoregressive

SHAPES = (
  (16, 32, 32, 12),
  (64, 32, 32, 12),
  (4, 32, 32, 48),
  (16, 32, 32, 24),
  (16, 16, 16, 12),
  (64, 16, 16, 12),
  (16, 16, 16, 24),
  (64, 32, 32, 48),
  (16, 16, 16, 48),
  (4, 64, 64, 12),
  (16, 64, 64, 12),
  (4, 64, 64, 48),
  (64, 8, 8, 48),
  (16, 8, 8, 24),
)


def compare(shape, jit, repeats=speed.REPEATS):
  """`(forward, wavefront, raster)` seconds of one layer on `shape`."""
  images = tf.random.stateless_normal(shape, seed=[1, 2])
  calls = []
  for solver in ("wavefront", "raster"):
    layer = bijectors.AutoregressiveConv2D(shape[-1], 3, solver=solver, seed=1)
    if not calls:
      calls.append((tf.function(layer.forward, jit_compile=jit), images))
    outputs = tf.identity(layer.forward(images))
    calls.append((tf.function(layer.inverse, jit_compile=jit), outputs))
  return speed.median_seconds(calls, repeats)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  speed.add_jit_option(parser, "on")
  speed.add_shapes_option(parser, "the calibration set")
  args = parser.parse_args(argv)
  shapes = speed.requested_shapes(args.shapes, SHAPES)
  for jit in speed.JIT_MODES[args.jit]:
    for shape in shapes:
      forward, wavefront, raster = compare(shape, jit)
      auto = (
        "raster"
        if autoregressive.raster_is_cheaper(
          shape[0], shape[1], shape[2], shape[3], 3, 1, jit
        )
        else "wavefront"
      )
      print(
        f"{'xla' if jit else 'tf '} {'x'.join(map(str, shape)):12s} "
        f"forward {forward * 1e3:8.2f} ms  wavefront {wavefront * 1e3:8.2f}"
        f" ms  raster {raster * 1e3:8.2f} ms  raster/wavefront "
        f"{raster / wavefront:5.2f}  auto: {auto}",
        flush=True,
      )
  return 0


if __name__ == "__main__":
  sys.exit(main())
