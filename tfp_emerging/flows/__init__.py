"""Image flows built from the package's bijectors."""

from tfp_emerging.flows import dequantization
from tfp_emerging.flows import priors
from tfp_emerging.flows.discrete import DiscreteFlow
from tfp_emerging.flows.glow import MIXINGS
from tfp_emerging.flows.glow import Glow
from tfp_emerging.flows.variational_dequantization import DEQUANTIZATIONS
from tfp_emerging.flows.variational_dequantization import VariationalDequantizer

__all__ = [
  "DEQUANTIZATIONS",
  "MIXINGS",
  "DiscreteFlow",
  "Glow",
  "VariationalDequantizer",
  "dequantization",
  "priors",
]
