"""Invertible convolutions as TensorFlow Probability bijectors.

Every layer's `forward` maps image to latent (Glow's convention, the cheap
density direction); `sampling_direction(layer)` turns a layer, or a
`tfb.Chain` of them, round into TFP's base-to-data direction; `freeze(flow)`
computes what depends only on the weights once, for sampling.
"""

from tfp_emerging.bijectors.actnorm import ActNorm
from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.conv1x1 import Conv1x1
from tfp_emerging.bijectors.direction import DENSITY
from tfp_emerging.bijectors.direction import SAMPLING
from tfp_emerging.bijectors.direction import density_pass_inverses
from tfp_emerging.bijectors.direction import sampling_direction
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D
from tfp_emerging.bijectors.freezing import FrozenFunction
from tfp_emerging.bijectors.freezing import freeze
from tfp_emerging.bijectors.periodic_conv2d import PeriodicConv2D

__all__ = [
  "DENSITY",
  "SAMPLING",
  "ActNorm",
  "AffineCoupling",
  "AutoregressiveConv2D",
  "Conv1x1",
  "EmergingConv2D",
  "FrozenFunction",
  "PeriodicConv2D",
  "density_pass_inverses",
  "freeze",
  "sampling_direction",
]
