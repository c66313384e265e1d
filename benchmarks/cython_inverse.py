"""Our autoregressive inverse next to the paper's Cython one, in the same run.

Usage:
  OMP_THREAD_LIMIT=2 python -m benchmarks.cython_inverse MODULE \\
      [--jit both|on|off] [--repeats N] [--shapes N,H,W,C ...]

`MODULE` is the path of an already built `inverse_op_cython` extension (the
`.so` file) from the paper's public repository (`ehoogeboom/emerging`,
`conv2d/inverses/inverse_op_cython.pyx`), compiled with OpenMP. Nothing of
it is part of this repository. Its `prange` asks for 8 threads: limit them
with `OMP_THREAD_LIMIT` (set before Python starts) to the cores TensorFlow
uses.

For each shape (default: the four of `benchmarks.run.SHAPES`), in
float64 with `k = 3`: one `AutoregressiveConv2D` (top-left mask, the kernel
both receive, its masked `k x k` form for the paper's code), the same
right-hand side; checks that both give the same `x`, then times both, the
calls taking turns (`benchmarks.run.median_seconds`), and prints
ours / Cython. Ours is the layer's `inverse` under `tf.function`, and under
`tf.function(jit_compile=True)` with `--jit on` or `both`.

The paper's loop solves output channels in decreasing order (its centre tap
is lower triangular in `(in, out)`), ours in increasing order (upper
triangular): its inputs are ours with the channels reversed, and so is its
output.
"""

import argparse
import importlib.util
import os
import sys

import numpy as np
import tensorflow as tf

from benchmarks import run as speed
from tfp_emerging import bijectors


def load_module(path):
  """The built extension at `path`, imported under its own name."""
  spec = importlib.util.spec_from_file_location("inverse_op_cython", path)
  if spec is None:
    raise ValueError(f"cannot import an extension module from {path!r}")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def make_layer(channels, seed=0):
  """A float64 top-left layer with trained-looking taps (a few tenths)."""
  layer = bijectors.AutoregressiveConv2D(
    channels, 3, dtype=tf.float64, seed=seed
  )
  rng = np.random.default_rng(seed)
  layer.kernel.assign(
    rng.normal(0.0, 0.25 / (2 * np.sqrt(channels)), layer.kernel.shape)
  )
  layer.log_diagonal.assign(rng.normal(0.0, 0.3, [channels]))
  return layer


def paper_inverse(module, layer):
  """`y -> x` with the paper's code on `layer`'s masked `k x k` kernel."""
  kernel = np.ascontiguousarray(layer.full_kernel().numpy()[:, :, ::-1, ::-1])

  def inverse(y):
    x = module.inverse_conv(
      np.ascontiguousarray(y[..., ::-1]), kernel, 1, layer.dilation
    )
    return x[..., ::-1]

  return inverse


def compare(module, shape, jit_modes, repeats):
  """`{name: seconds}` of our inverse(s) and the paper's on one shape."""
  layer = make_layer(shape[-1])
  y = tf.random.stateless_normal(shape, seed=[1, 2], dtype=tf.float64)
  y_numpy = y.numpy()
  theirs = paper_inverse(module, layer)
  expected = theirs(y_numpy)
  calls, names = [], []
  for jit in jit_modes:
    ours = tf.function(layer.inverse, jit_compile=jit)
    x = ours(y).numpy()
    error = np.abs(x - expected).max() / max(1.0, np.abs(expected).max())
    if error > 1e-9:
      raise AssertionError(
        f"{shape}, jit={jit}: ours and the paper's inverse "
        f"differ by {error:.2e} (relative)"
      )
    calls.append((ours, y))
    names.append("ours, xla" if jit else "ours")
  calls.append((theirs, y_numpy))
  names.append("cython")
  return dict(zip(names, speed.median_seconds(calls, repeats)))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("module", help="path of the built inverse_op_cython")
  speed.add_jit_option(parser, "both")
  parser.add_argument("--repeats", type=int, default=speed.REPEATS)
  speed.add_shapes_option(parser, "the four benchmark shapes")
  args = parser.parse_args(argv)
  threads = os.environ.get("OMP_THREAD_LIMIT")
  if threads is None:
    print(
      "warning: OMP_THREAD_LIMIT is not set; the paper's code asks for 8 "
      "threads",
      file=sys.stderr,
    )
  module = load_module(args.module)
  shapes = speed.requested_shapes(args.shapes, speed.SHAPES)
  print(
    f"float64, k = 3, one AutoregressiveConv2D inverse; Cython with "
    f"OMP_THREAD_LIMIT={threads}; same x checked; median of "
    f"{args.repeats} calls"
  )
  for shape in shapes:
    seconds = compare(module, shape, speed.JIT_MODES[args.jit], args.repeats)
    cython = seconds.pop("cython")
    ours = "  ".join(
      f"{name} {t * 1e3:8.1f} ms ({t / cython:.2f}x)"
      for name, t in seconds.items()
    )
    print(
      f"{'x'.join(map(str, shape)):14s} cython {cython * 1e3:8.1f} ms  {ours}",
      flush=True,
    )
  return 0


if __name__ == "__main__":
  sys.exit(main())
