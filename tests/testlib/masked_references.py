"""numpy references for the masked convolutions' tests, from the mask's
definition (`tfp_emerging.ops.masked_conv`), not from the code under test."""

import itertools

import numpy as np


def masked_kernel(rng, m, channels, top_left, scale=0.25):
  """A random quadrant kernel with a well-conditioned triangular centre
  (`rng`: a `np.random.Generator`)."""
  kernel = rng.normal(0.0, scale / m, [m, m, channels, channels])
  centre = m - 1 if top_left else 0
  triangle = np.triu if top_left else np.tril
  kernel[centre, centre] = triangle(
    kernel[centre, centre], 1 if top_left else -1
  ) + np.diag(np.exp(rng.normal(0.0, 0.4, channels)))
  return kernel


def numpy_solve(y, kernel, dilation, top_left):
  """Forward substitution pixel by pixel, written from the mask's definition.

  Top-left: `y[i, j] = sum_{a, b} x[i - a d, j - b d] @ K[p - a, p - b]`;
  bottom-right: `y[i, j] = sum_{a, b} x[i + a d, j + b d] @ K[a, b]`.
  """
  _, h, w, _ = y.shape
  m = kernel.shape[0]
  p = m - 1
  x = np.zeros_like(y)
  pixels = list(itertools.product(range(h), range(w)))
  sign = -1 if top_left else 1
  for i, j in pixels if top_left else reversed(pixels):
    rhs = y[:, i, j].copy()
    for a, b in itertools.product(range(m), repeat=2):
      if a == b == 0:
        continue
      si, sj = i + sign * a * dilation, j + sign * b * dilation
      if 0 <= si < h and 0 <= sj < w:
        tap = kernel[p - a, p - b] if top_left else kernel[a, b]
        rhs -= x[:, si, sj] @ tap
    centre = kernel[p, p] if top_left else kernel[0, 0]
    x[:, i, j] = np.linalg.solve(centre.T, rhs.T).T
  return x
