"""A density whose discrete probabilities, and so the gap of the uniform
dequantisation bound, are known in closed form: shared by the
importance-weighted and the variational dequantisation tests.

The density is a factorised Gaussian `N(mu, sigma^2)` per dimension, narrow
against a bin (`sigma = 0.4 / B`), so the single-draw bound is loose. Its
exact discrete probability is `P(k) = prod_d [Phi(hi_d) - Phi(lo_d)]` (the
mass of the bin in the flow's domain), and the expected single-draw bound
is `E[-log p(x)] = 1/2 log(2 pi sigma^2) + (w^2 / 12 + (c - mu)^2) /
(2 sigma^2)` per dimension (`x` uniform on the bin of width `w = 1/B` and
centre `c`): both from scipy and the definition, not from the code.
"""

import numpy as np
from scipy import stats

NUM_BINS = 17
LEVELS = np.array([3, 8, 8, 15])  # one image, D = 4
SIGMA = 0.4 / NUM_BINS
# Off-centre means: each bin's mass is below one, the density uneven on it.
MU = (LEVELS + np.array([0.2, 0.5, 0.9, 0.35])) / NUM_BINS - 0.5
D = LEVELS.size


def exact_bits():
  """The discrete model's bits/dim of `LEVELS`, `-log2 P(k) / D`."""
  lo = LEVELS / NUM_BINS - 0.5
  hi = (LEVELS + 1) / NUM_BINS - 0.5
  mass = stats.norm.cdf(hi, MU, SIGMA) - stats.norm.cdf(lo, MU, SIGMA)
  return -np.sum(np.log(mass)) / (D * np.log(2.0))


def jensen_bits():
  """The expected single-draw (uniform dequantisation) bound of `LEVELS`."""
  width = 1.0 / NUM_BINS
  centre = (LEVELS + 0.5) / NUM_BINS - 0.5
  nats = 0.5 * np.log(2 * np.pi * SIGMA**2) + (
    width**2 / 12 + (centre - MU) ** 2
  ) / (2 * SIGMA**2)
  return (np.sum(nats) + D * np.log(NUM_BINS)) / (D * np.log(2.0))
