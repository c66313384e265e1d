"""tfp_emerging: invertible convolutions for normalizing flows in TFP.

Emerging, periodic and 1x1 invertible convolutions (Hoogeboom, van den Berg,
Welling, ICML 2019) as `tfp.bijectors.Bijector`s, and Glow-style image flows.

Importing the package registers its Keras classes (`FlowModel`,
`WarmupSchedule`, `Glow`), so `keras.models.load_model` reads `.keras` files
of this package after `import tfp_emerging` alone.
"""

__version__ = "0.1.0"

# First: for the command line, handles signals while TensorFlow is imported.
from tfp_emerging import _startup  # noqa: F401
from tfp_emerging import bijectors
from tfp_emerging import data
from tfp_emerging import distribute
from tfp_emerging import export
from tfp_emerging import flows
from tfp_emerging import image_grid
from tfp_emerging import keras
from tfp_emerging import presets
from tfp_emerging import training

__all__ = [
  "bijectors",
  "data",
  "distribute",
  "export",
  "flows",
  "image_grid",
  "keras",
  "presets",
  "training",
]
