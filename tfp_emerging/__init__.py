"""tfp_emerging: invertible convolutions for normalizing flows in TFP.

Emerging, periodic and 1x1 invertible convolutions (Hoogeboom, van den Berg,
Welling, ICML 2019) as `tfp.bijectors.Bijector`s, and Glow-style image flows.
"""

from tfp_emerging import bijectors

__version__ = "0.1.0"
__all__ = ["bijectors"]
