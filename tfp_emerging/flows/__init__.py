"""Image flows built from the package's bijectors."""

from tfp_emerging.flows import dequantization
from tfp_emerging.flows import priors
from tfp_emerging.flows.glow import Glow
from tfp_emerging.flows.glow import MIXINGS

__all__ = ["Glow", "MIXINGS", "dequantization", "priors"]
