"""Invertible convolutions as TensorFlow Probability bijectors."""

from tfp_emerging.bijectors.actnorm import ActNorm
from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.conv1x1 import Conv1x1
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D
from tfp_emerging.bijectors.periodic_conv2d import PeriodicConv2D

__all__ = ["ActNorm", "AffineCoupling", "AutoregressiveConv2D", "Conv1x1",
           "EmergingConv2D", "PeriodicConv2D"]
