"""Invertible convolutions as TensorFlow Probability bijectors."""

from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D

__all__ = ["AutoregressiveConv2D", "EmergingConv2D"]
