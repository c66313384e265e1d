"""Which way round a flow goes: this library's layers in TFP's direction.

Every layer of this package maps image to latent in `forward` (Glow's
convention): its forward is the cheap direction (a masked or periodic
convolution, a matrix product, an affine map) and its inverse the solve.
TFP's `tfd.TransformedDistribution(base, bijector)` wants the opposite: its
bijector maps base to data, and `log_prob` runs the bijector's `inverse`.
`sampling_direction(layer)` is a layer (or a `tfb.Chain` of layers written
image to latent) turned round for TFP, so that `log_prob` runs the layers'
forwards, with no solve, and `ActNorm` initialises from data as in Glow.

`tfp_emerging.flows.Glow` is already in TFP's direction (its forward samples,
its inverse computes the density); `tfp_emerging.keras.FlowModel` takes a
flow in either direction (`direction="sampling"`, TFP's and the default, or
`"density"`, the layers' own) and refuses one whose density pass would run a
layer's solve (`density_pass_inverses`).
"""

from __future__ import annotations

from tensorflow_probability import bijectors as tfb
from tensorflow_probability.python.bijectors import invert as invert_lib

from tfp_emerging.bijectors.actnorm import ActNorm
from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.autoregressive_conv2d import AutoregressiveConv2D
from tfp_emerging.bijectors.conv1x1 import Conv1x1
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D
from tfp_emerging.bijectors.periodic_conv2d import PeriodicConv2D

# `tfb.Invert` of a bijector that is not a composite tensor (e.g. `Glow`) is
# an instance of this base class only.
_INVERT = invert_lib._Invert

__all__ = [
  "DENSITY",
  "DIRECTIONS",
  "SAMPLING",
  "density_pass_inverses",
  "sampling_direction",
]

SAMPLING = "sampling"
"""`direction` of a bijector whose `forward` maps base (latent) to data
(image): TFP's convention."""
DENSITY = "density"
"""`direction` of a bijector whose `forward` maps data (image) to base
(latent): Glow's, and this package's layers'."""
DIRECTIONS = (SAMPLING, DENSITY)

# The layers whose forward is the density direction.
_DENSITY_LAYERS = (
  ActNorm,
  AffineCoupling,
  AutoregressiveConv2D,
  Conv1x1,
  EmergingConv2D,
  PeriodicConv2D,
)


def sampling_direction(
  bijector: tfb.Bijector, name: str | None = None
) -> tfb.Invert:
  """`bijector` (image to latent) as a TFP bijector from latent to image.

  `tfb.Invert(bijector)`: its `forward` is `bijector.inverse` (sampling:
  the layers' solves) and its `inverse` is `bijector.forward` (the density
  pass of `TransformedDistribution.log_prob`: the layers' cheap forwards).
  Log-dets follow: `forward_log_det_jacobian(z) =
  -bijector.forward_log_det_jacobian(bijector.inverse(z))`.

  Args:
    bijector: one of this package's layers, or a `tfb.Chain` of them listed
      as `tfb.Chain` applies them from image to latent (the last applied
      first, as always in a `tfb.Chain`).
    name: the inverted bijector's name (default `"invert_" + name`).

  Returns:
    A `tfb.Invert`.

  Raises:
    ValueError: `bijector` is not a TFP bijector.

  #### Example

  >>> import tensorflow as tf
  >>> import tensorflow_probability as tfp
  >>> from tfp_emerging.bijectors import EmergingConv2D, sampling_direction
  >>> layer = sampling_direction(EmergingConv2D(channels=2, seed=0))
  >>> image = tfp.distributions.TransformedDistribution(
  ...     tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [4, 4, 2]),
  ...     layer)
  >>> image.log_prob(tf.zeros([3, 4, 4, 2])).shape   # no solve: two convs
  TensorShape([3])
  """
  if not isinstance(bijector, tfb.Bijector):
    raise ValueError(f"`bijector` must be a TFP bijector; got {bijector!r}.")
  return tfb.Invert(bijector, name=name)


def density_pass_inverses(flow: tfb.Bijector) -> list[tfb.Bijector]:
  """The parts of `flow` that `TransformedDistribution(base, flow).log_prob`
  would run backwards: this package's layers run through their inverse (a
  solve, and `ActNorm` uninitialisable from data), and flows that declare
  `forward_direction = SAMPLING` (`tfp_emerging.flows.Glow`) run through
  their forward (the sampling pass). `[]` for a flow in TFP's direction.

  `flow` is searched through `tfb.Chain`s (any composition) and `tfb.Invert`s;
  other bijectors (TFP's own, yours) are taken as they come. Cost: a walk
  over the flow's parts, no computation.
  """
  return list(_backwards(flow, inverted=False))


def _backwards(flow, inverted):
  if getattr(type(flow), "forward_direction", None) == SAMPLING:
    if inverted:  # Internally consistent: its parts are not looked at.
      yield flow
  elif isinstance(flow, _INVERT):
    yield from _backwards(flow.bijector, not inverted)
  elif isinstance(flow, tfb.Composition):
    for part in flow.bijectors:
      yield from _backwards(part, inverted)
  elif isinstance(flow, _DENSITY_LAYERS) and not inverted:
    yield flow
