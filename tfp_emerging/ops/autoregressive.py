"""Exact inverses of quadrant-masked convolutions: the solver and its gradient.

`quadrant_solve` solves `quadrant_conv(x, kernel, dilation, top_left) = y`
(`tfp_emerging.ops.masked_conv`) for `x` with one of three solvers:
`"wavefront"` (`H + W - 1` sequential steps) and `"raster"` (`H W` steps),
both in `tfp_emerging.ops.triangular_solvers`, or `"fft"`, the inverse
filter of `tfp_emerging.ops.fft_inverse`. `solver="auto"` picks the
wavefront or the raster at trace time (`raster_is_cheaper`).

The solves are exact (forward substitution, no iteration to convergence),
pure TensorFlow and compile with XLA. Their gradients are implicit
(`quadrant_solve`): one solve of the transposed convolution and one
convolution, never a differentiated loop.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import threading
import typing

import numpy as np
import tensorflow as tf
from tensorflow_probability.python.internal.implementation_selection import (
  is_xla,
)

from tfp_emerging.ops.fft_inverse import filter_solve
from tfp_emerging.ops.masked_conv import adjoint_kernel
from tfp_emerging.ops.masked_conv import quadrant_conv
from tfp_emerging.ops.triangular_solvers import raster_solve
from tfp_emerging.ops.triangular_solvers import wavefront_solve

Solver = typing.Literal["auto", "wavefront", "raster", "fft"]
"""The name of an inverse's solver (a type for hints)."""
SOLVERS = typing.get_args(Solver)
"""The solvers an autoregressive convolution's inverse can use: `"auto"`
(`choose_solver` picks), `"wavefront"`, `"raster"` and `"fft"`."""

_SOLVE = {
  "raster": raster_solve,
  "wavefront": wavefront_solve,
  "fft": filter_solve,
}


def _read_triangle(m, channels, top_left, dtype):
  """Mask `[m, m, C, C]` of the kernel entries a solve reads.

  Every off-centre tap, and the centre's upper (top-left) or lower
  (bottom-right) triangle with the diagonal; the other strict triangle of the
  centre is ignored by the solve, so its derivative is zero.
  """
  mask = np.ones([m, m, channels, channels], dtype.as_numpy_dtype)
  centre = m - 1 if top_left else 0
  mask[centre, centre] = (np.triu if top_left else np.tril)(
    np.ones([channels, channels])
  )
  return mask


def raster_is_cheaper(
  batch: int | None,
  height: int | None,
  width: int | None,
  channels: int | None,
  kernel_size: int,
  dilation: int,
  xla: bool,
) -> bool:
  """The solvers' cost rule: is the raster solve cheaper than the wavefront?

  With `H' = ceil(H/d)`, `W' = ceil(W/d)`, `B = N d^2` undilated images and
  `T = m^2 - 1` off-centre taps (`m = (k + 1) / 2`), the raster solve takes
  `H' W'` steps of `B T C^2` multiply-adds and a copy of its `p W' + p`
  pixels of history; the wavefront `H' + W' - 1` steps of `H' B T C^2`
  (padding slots included): about twice the raster's arithmetic in far
  fewer steps. So the raster can only win where it has few steps and a
  step's fixed cost is small:

  * without XLA a step costs tens of microseconds of TensorFlow's executor;
    the raster lost everywhere it was measured (3.7 to 120 times slower at
    `(N, H, W, C)` = `(16, 32, 32, 12)`, `(64, 32, 32, 48)`, `(4, 64, 64,
    12)`, `(16, 16, 16, 48)`, `k = 3`): never;
  * under XLA a raster step costs a few microseconds: raster when it has at
    most 64 steps, `H' W' <= 64`.

  Measured under XLA on CPU (`k = 3`, one solve, raster / wavefront time,
  2 to 5 runs each on a loaded 2-core machine, where single runs scatter by
  +-30%): 8 x 8 images 0.47 and 0.74 at `(16, 8, 8, 24)`, 0.78, 0.82 and
  1.15 at `(64, 8, 8, 48)`; 16 x 16 and 32 x 32 images no clear winner
  (medians 0.8 to 1.36, single runs 0.53 to 1.9, at `(16, 16, 16, 12)`,
  `(16, 16, 16, 24)`, `(16, 16, 16, 48)`, `(64, 16, 16, 12)`,
  `(16, 32, 32, 12)`, `(16, 32, 32, 24)`, `(64, 32, 32, 12)`,
  `(4, 32, 32, 48)`, `(64, 32, 32, 48)`); 64 x 64 images 1.3 to 2.2
  (`(4, 64, 64, 12)`, `(16, 64, 64, 12)`, `(4, 64, 64, 48)`).
  `benchmarks/solvers.py` reruns the comparison.

  Python ints in (`height` or `width` `None`, not known at trace time,
  means the wavefront), a Python bool out, decided at trace time.
  """
  del batch, channels, kernel_size  # the measurements show no clear effect
  if not xla or height is None or width is None:
    return False
  return -(-height // dilation) * -(-width // dilation) <= 64


def choose_solver(
  solver: Solver, y: tf.Tensor, kernel: tf.Tensor, dilation: int
) -> Solver:
  """`solver`, or for `"auto"` the one `raster_is_cheaper` picks for `y`."""
  if solver != "auto":
    return solver
  m, channels = kernel.shape[0], kernel.shape[-1]
  batch, height, width = y.shape[0], y.shape[1], y.shape[2]
  cheaper = raster_is_cheaper(
    batch, height, width, channels, 2 * m - 1, dilation, is_xla()
  )
  return "raster" if cheaper else "wavefront"


# Set while tracing functions that will be served without gradients.
_TRACING = threading.local()


@contextlib.contextmanager
def without_gradients() -> Iterator[None]:
  """Within the block, `quadrant_solve` traces its solve alone, without the
  implicit gradient: for functions served without gradients (a SavedModel's
  `sample`), whose graphs then hold no custom-gradient op that a SavedModel
  cannot store (the gradient's own solve has one too)."""
  previous = getattr(_TRACING, "without_gradients", False)
  _TRACING.without_gradients = True
  try:
    yield
  finally:
    _TRACING.without_gradients = previous


def quadrant_solve(
  y: tf.Tensor,
  kernel: tf.Tensor,
  dilation: int,
  top_left: bool = True,
  solver: Solver = "auto",
) -> tf.Tensor:
  """Solves `quadrant_conv(x, kernel, dilation, top_left) = y` for `x`, exactly.

  Gradients are implicit, not taken through the loop: with
  `F(x) = quadrant_conv(x, kernel)` and `x = F^{-1}(y)`, a cotangent `g_x`
  gives `g_y = F^{-T} g_x`, one solve of the transposed convolution (the
  opposite quadrant, `adjoint_kernel`), and
  `g_kernel = -d/dkernel <g_y, F(x)>` at fixed `x`, the kernel gradient of
  one parallel convolution. So the backward pass costs one more solve and one
  convolution, keeps no per-step state, and compiles with XLA (a loop's own
  gradient needs `TensorArray` reads XLA cannot compile); the backward solve
  has the same implicit gradient, so higher derivatives work too.

  Args:
    y: `[N, H, W, C]`.
    kernel: `[m, m, C, C]` as in `quadrant_conv`; its centre tap is upper
      (top-left) or lower (bottom-right) triangular in `(in, out)` with a
      nonzero diagonal (the other strict triangle is not read).
    dilation: Python int.
    top_left: which quadrant.
    solver: `"auto"` (`choose_solver`: by `raster_is_cheaper`, at trace
      time), `"wavefront"` (`ceil(H/d) + ceil(W/d) - 1` sequential steps) or
      `"raster"` (`H * W` sequential steps).

  Returns:
    `x`, `[N, H, W, C]`.
  """
  if solver not in SOLVERS:
    raise ValueError(f"`solver` must be one of {SOLVERS}; got {solver!r}.")
  if getattr(_TRACING, "without_gradients", False):
    return _solve(y, kernel, dilation, top_left, solver)

  @tf.custom_gradient
  def solve(y, kernel):
    x = _solve(y, kernel, dilation, top_left, solver)

    def gradient(g_x):
      g_y = quadrant_solve(
        g_x, adjoint_kernel(kernel), dilation, not top_left, solver
      )
      with tf.GradientTape() as tape:
        tape.watch(kernel)
        y_again = quadrant_conv(x, kernel, dilation, top_left)
      g_kernel = -tape.gradient(y_again, kernel, output_gradients=g_y)
      read = _read_triangle(
        kernel.shape[0], kernel.shape[-1], top_left, kernel.dtype
      )
      return g_y, g_kernel * read

    return x, gradient

  return solve(y, kernel)


def _solve(y, kernel, dilation, top_left, solver):
  """`quadrant_solve` without its gradient."""
  return _SOLVE[choose_solver(solver, y, kernel, dilation)](
    y, kernel, dilation, top_left
  )
