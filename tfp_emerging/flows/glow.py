"""Glow (Kingma & Dhariwal 2018) with pluggable invertible convolutions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_probability import bijectors as tfb
from tensorflow_probability import distributions as tfd

from tfp_emerging.bijectors.actnorm import ActNorm
from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.freezing import freeze
from tfp_emerging.bijectors.image_bijector import ImageFlow
from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.flows import glow_levels
from tfp_emerging.flows import priors
from tfp_emerging.flows.glow_levels import squeeze
from tfp_emerging.flows.glow_levels import unsqueeze
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions

__all__ = ["MIXINGS", "FrozenGlow", "Glow", "squeeze", "unsqueeze"]

MIXINGS = ("1x1", "lu", "qr", "emerging", "periodic")
"""The channel mixings `Glow(mixing=...)` takes: Glow's plain `"1x1"`
convolution, its `"lu"` and `"qr"` parameterisations (`Conv1x1`), the
`"emerging"` `k x k` convolution after a QR 1x1 (`EmergingConv2D`) and
the `"periodic"` one (`PeriodicConv2D`)."""


class Glow(OnePassLogDet, ImageFlow):
  """Glow's multi-scale flow, latent -> image, with a standard normal base.

  The direction matches TFP's `tfb.Glow`: `forward` maps a latent `z` of the
  image's shape `[H, W, C]` to an image `x`, so

      distribution = tfd.TransformedDistribution(glow.base_distribution(), glow)

  is the density model, and `log_prob` runs `inverse` (image -> latent):
  every layer's cheap `forward`, never a solve, with the log-det from the
  same pass (TFP's bijector cache). `forward` (sampling, at temperature `T`
  `forward(T * base.sample())`) runs the layers' inverses.

  In the density direction, each of the `L = num_levels` levels squeezes
  (`squeeze`), runs `K = num_steps` steps of `ActNorm` -> mixing ->
  `AffineCoupling`, then standardises half of its channels under a learned
  conditional prior (`priors.ConditionalNormalPrior`) and hands the other
  half on; the last level standardises all under a learned
  `priors.LearnedNormalPrior`, so the base is `N(0, I)`. `mixing` is one of
  `MIXINGS` or a callable `mixing(channels=, seed=, dtype=)` returning a
  bijector on `[H, W, channels]` events (its `forward` is used in the
  density direction). With `num_classes=K` every call takes the label as
  `conditional_input` (class ids `[...]` or vectors `[..., K]`), which
  conditions the priors and (`condition_couplings`) the coupling networks;
  `coupling_network_fn(input_shape, output_channels, name)` replaces the
  coupling networks. The first density evaluation (or `initialize`)
  initialises every ActNorm from data, in order; sampling an uninitialised
  flow raises `InvalidArgumentError`. `trainable_variables` lists every
  layer's variables (custom coupling networks' too) and the priors';
  `variables` adds each ActNorm's `initialized` flag.

  docs/layers.md, "The Glow flow", gives the architecture's shapes, the
  label's terms, the custom network's contract and the costs of each
  direction; docs/conditioning.md the class-conditional flow's use.

  #### Example

  ```python
  glow = Glow((8, 8, 1), num_levels=2, num_steps=2, hidden_channels=16,
              num_classes=10)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.random.uniform([4, 8, 8, 1]) - 0.5
  y = [0, 1, 2, 3]                                   # class ids, [4]
  glow.initialize(x, conditional_input=y)
  log_prob = dist.log_prob(x, bijector_kwargs={"conditional_input": y})
  sevens = dist.sample(5, bijector_kwargs={"conditional_input": 7})
  ```
  """

  # `forward` samples (latent -> image): TFP's direction
  # (`tfp_emerging.bijectors.direction`).
  forward_direction = "sampling"

  def __init__(
    self,
    image_shape: Sequence[int],
    num_levels: int,
    num_steps: int,
    mixing: str | Callable[..., tfb.Bijector] = "emerging",
    hidden_channels: int = 512,
    kernel_size: int = 3,
    num_classes: int | None = None,
    condition_couplings: bool | None = None,
    coupling_network_fn: (
      Callable[..., Callable[..., tf.Tensor]] | None
    ) = None,
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "glow",
  ) -> None:
    """Builds the flow and all its variables.

    Args:
      image_shape: `(H, W, C)`, Python ints; `H` and `W` divisible by
        `2 ** num_levels`.
      num_levels: `L >= 1`.
      num_steps: `K >= 1`, steps per level.
      mixing: one of `MIXINGS`, or a callable (see the class docstring).
      hidden_channels: width of each coupling network.
      kernel_size: odd size of the coupling networks' and priors' first and
        last convolutions and of the emerging or periodic kernels.
      num_classes: optional `K >= 1`: a class-conditional flow whose priors
        depend on a label given as `conditional_input` (see the class
        docstring).
      condition_couplings: whether the coupling networks depend on the label
        too; needs `num_classes`. Default (`None`): `True` with
        `num_classes` (priors and couplings conditioned, as `tfp-emerging
        train --conditional` builds), `False` without; pass `False` with
        `num_classes` to condition the priors only (its samples barely
        depend on the class, docs/results.md).
      coupling_network_fn: optional callable making each coupling network
        (see the class docstring); default: `AffineCoupling`'s.
      seed: optional int seed; each layer derives its own from it.
      dtype: floating dtype.
      validate_args: passed to every layer.
      name: name scope.

    Raises:
      ValueError: bad `image_shape`, `num_levels`, `num_steps`, `mixing`,
        `hidden_channels`, `kernel_size` (also: larger than the last level
        for `"periodic"`), `num_classes`, `condition_couplings` (without
        `num_classes`), `coupling_network_fn` (or the network it makes: not
        a Keras layer or `tf.Module`, or the wrong output shape) or `dtype`.
    """
    parameters = dict(locals())
    try:
      height, width, channels = image_shape
    except (TypeError, ValueError) as e:
      raise ValueError(
        f"`image_shape` must be (H, W, C) of ints; got {image_shape!r}."
      ) from e
    height, width, channels = (
      checks.positive_int(s, "image_shape") for s in (height, width, channels)
    )
    num_levels = checks.positive_int(num_levels, "num_levels")
    num_steps = checks.positive_int(num_steps, "num_steps")
    hidden_channels = checks.positive_int(hidden_channels, "hidden_channels")
    kernel_size = checks.odd_kernel_size(kernel_size)
    dtype = checks.float_dtype(dtype)
    factor = 2**num_levels
    if height % factor or width % factor:
      raise ValueError(
        f"`image_shape` must have H and W divisible by 2**num_levels = "
        f"{factor}; got {tuple(image_shape)}."
      )
    if not callable(mixing) and mixing not in MIXINGS:
      raise ValueError(
        f"`mixing` must be one of {MIXINGS} or a callable; got {mixing!r}."
      )
    if num_classes is not None:
      num_classes = checks.positive_int(num_classes, "num_classes")
    if condition_couplings is None:
      condition_couplings = num_classes is not None
    if not isinstance(condition_couplings, bool):
      raise ValueError(
        "`condition_couplings` must be a bool or None; got "
        f"{condition_couplings!r}."
      )
    if condition_couplings and num_classes is None:
      raise ValueError("`condition_couplings=True` needs `num_classes`.")
    if coupling_network_fn is not None and not callable(coupling_network_fn):
      raise ValueError(
        f"`coupling_network_fn` must be callable; got {coupling_network_fn!r}."
      )
    smallest = min(height, width) // factor
    if mixing == "periodic" and kernel_size > smallest:
      raise ValueError(
        f"`kernel_size` ({kernel_size}) must be at most the last level's "
        f"height and width ({smallest}) for mixing='periodic'; use a "
        f"smaller kernel_size or num_levels."
      )
    self._image_shape = (height, width, channels)
    self._num_levels = num_levels
    self._num_steps = num_steps
    self._mixing = mixing
    self._num_classes = num_classes
    self._condition_couplings = condition_couplings
    with tf.name_scope(name) as name:
      self._steps, self._priors = glow_levels.build_levels(
        self._image_shape,
        num_levels,
        num_steps,
        mixing=mixing,
        hidden_channels=hidden_channels,
        kernel_size=kernel_size,
        num_classes=num_classes,
        coupling_conditions=num_classes if condition_couplings else None,
        coupling_network_fn=coupling_network_fn,
        seed=seed,
        dtype=dtype,
        validate_args=validate_args,
      )
      super().__init__(parameters, dtype, name)

  def get_config(self) -> dict[str, Any]:
    """The constructor's arguments as JSON values (dtype by name).

    `Glow.from_config(glow.get_config())` builds the same architecture with
    new variables; `FlowModel`'s `.keras` files store this config and the
    variables' values. Raises `ValueError` for an argument that has no JSON
    form (a callable `mixing`).
    """
    config = {}
    for key, value in self.parameters.items():
      if isinstance(value, tf.dtypes.DType):
        value = value.name
      elif isinstance(value, tuple):
        value = list(value)
      if value is not None and not isinstance(
        value, (bool, int, float, str, list)
      ):
        raise ValueError(
          f"A Glow with `{key}`={value!r} has no config: only arguments "
          f"given by value (e.g. `mixing` by name, one of {MIXINGS}) can be "
          f"saved in a config."
        )
      config[key] = value
    return config

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> Glow:
    """A new `Glow` from `get_config()`'s arguments."""
    return cls(**config)

  @property
  def num_levels(self) -> int:
    return self._num_levels

  @property
  def num_steps(self) -> int:
    return self._num_steps

  @property
  def mixing(self) -> str | Callable[..., tfb.Bijector]:
    return self._mixing

  @property
  def num_classes(self) -> int | None:
    """`K` for a class-conditional flow, else `None`."""
    return self._num_classes

  @property
  def condition_couplings(self) -> bool:
    """Whether the coupling networks depend on the label."""
    return self._condition_couplings

  @property
  def steps(self) -> list[list[tfb.Bijector]]:
    """Per level, the list of layers in the density direction."""
    return [list(layers) for layers in self._steps]

  @property
  def priors(
    self,
  ) -> list[priors.ConditionalNormalPrior | priors.LearnedNormalPrior]:
    """Per level, its prior (conditional split priors, then the top prior)."""
    return list(self._priors)

  @property
  def actnorms(self) -> list[ActNorm]:
    return [
      layer
      for layers in self._steps
      for layer in layers
      if isinstance(layer, ActNorm)
    ]

  def base_distribution(self) -> tfd.Distribution:
    """`N(0, I)` on events `[H, W, C]` in the flow's dtype."""
    zero = tf.zeros([], self.dtype)
    return tfd.Sample(
      tfd.Normal(zero, zero + 1.0), self._image_shape, name="standard_normal"
    )

  def is_initialized(self) -> bool:
    """Whether every ActNorm has had its data-dependent initialisation."""
    return all(bool(layer.initialized.numpy()) for layer in self.actnorms)

  def initialize(
    self,
    images: tf.Tensor | np.ndarray,
    conditional_input: (
      tf.Tensor | np.ndarray | Sequence[int] | int | None
    ) = None,
  ) -> None:
    """Data-dependent initialisation of every ActNorm from a batch.

    Runs the density direction on `images` (`[N, H, W, C]`, already in the
    flow's continuous domain; with their labels `conditional_input` for a
    class-conditional flow), initialising each ActNorm from the
    activations it receives, in order, so each sees its predecessors'
    initialised outputs (Glow's scheme), whether or not it was initialised
    before. The first `log_prob` of a new flow does the same implicitly.
    Cost: one density pass.

    Raises:
      ValueError: `images` of another event shape, or no images (nothing
        to initialise from).
    """
    with tf.name_scope(self.name):
      x = tf.convert_to_tensor(images, self.dtype)
      images = self._as_images(x, "images")[0]
      if images.shape[0] == 0:
        raise ValueError(
          f"{self.name}.initialize: `images` holds no images; ActNorm "
          f"initialises from a batch's statistics, which needs at least one."
        )
      self._normalize(
        images, self._labels(conditional_input, x), initialize=True
      )

  def _as_images(self, z, name):
    """Checks `z` and flattens it to `[N, H, W, C]` with static event sizes.

    An event shape not fully known at trace time is asserted at run time,
    whatever `validate_args` is (`tfp_emerging.ops.checks`).
    """
    assertions = checks.image_event(
      z, self._image_shape[-1], self.dtype, name, self.validate_args
    )
    message = f"`{name}` must have events of shape {list(self._image_shape)}"
    if z.shape.rank is not None and not z.shape[-3:].is_compatible_with(
      self._image_shape
    ):
      raise ValueError(f"{message}; got shape {z.shape}.")
    if not z.shape[-3:].is_fully_defined():
      with tf.control_dependencies(assertions):
        assertions.append(
          tf.debugging.assert_equal(
            tf.shape(z)[-3:], self._image_shape, message=f"{message}."
          )
        )
    if assertions:
      with tf.control_dependencies(assertions):
        z = tf.identity(z)
    return tf.reshape(z, [-1, *self._image_shape]), tf.shape(z)[:-3]

  def _labels(self, conditional_input, events):
    """The one-hot labels `[N, K]` of a conditional flow's events, or `None`."""
    conditions.require(
      conditional_input, self._num_classes is not None, self.name
    )
    if conditional_input is None or self._num_classes is None:
      return None
    return conditions.class_vectors(
      conditional_input,
      self._num_classes,
      events,
      self.dtype,
      self.validate_args,
    )

  def _layer_kwargs(self, layer, labels):
    """The bijector kwargs of one step's layer: the label for couplings."""
    if self._condition_couplings and isinstance(layer, AffineCoupling):
      return {"conditional_input": labels}
    return {}

  def _normalize(self, x, labels=None, level=0, initialize=False):
    """Density direction from `level` on: `(z, log-det)` for `[N, ...]` x.

    `labels`: `[N, K]` one-hot labels of a conditional flow, else `None`.
    """
    h = squeeze(x)
    log_det = tf.zeros(tf.shape(x)[:1], self.dtype)
    for layer in self._steps[level]:
      if initialize and isinstance(layer, ActNorm):
        layer.initialize(h)
      kwargs = self._layer_kwargs(layer, labels)
      h_next = layer.forward(h, **kwargs)
      log_det += layer.forward_log_det_jacobian(h, event_ndims=3, **kwargs)
      h = h_next
    prior = self._priors[level]
    if level == self._num_levels - 1:
      z, prior_log_det = prior.standardize(h, labels=labels)
      return unsqueeze(z), log_det + prior_log_det
    half = h.shape[-1] // 2
    h_1, h_2 = h[..., half:], h[..., :half]
    eps, prior_log_det = prior.standardize(h_2, h_1, labels=labels)
    z_1, inner_log_det = self._normalize(h_1, labels, level + 1, initialize)
    z = unsqueeze(tf.concat([z_1, eps], axis=-1))
    return z, log_det + prior_log_det + inner_log_det

  def _generate(self, z, labels=None, level=0):
    """Sampling direction from `level` on: `(x, log-det)` for `[N, ...]` z."""
    h = squeeze(z)
    prior = self._priors[level]
    if level == self._num_levels - 1:
      h, log_det = prior.unstandardize(h, labels=labels)
    else:
      half = h.shape[-1] // 2
      z_1, eps = h[..., :-half], h[..., -half:]
      h_1, log_det = self._generate(z_1, labels, level + 1)
      h_2, prior_log_det = prior.unstandardize(eps, h_1, labels=labels)
      h = tf.concat([h_2, h_1], axis=-1)
      log_det += prior_log_det
    for layer in reversed(self._steps[level]):
      kwargs = self._layer_kwargs(layer, labels)
      h_next = layer.inverse(h, **kwargs)
      log_det += layer.inverse_log_det_jacobian(h, event_ndims=3, **kwargs)
      h = h_next
    return unsqueeze(h), log_det

  def _frozen(self) -> FrozenGlow:
    """This flow with its weights as they are now, for sampling (`freeze`):
    every step's layers frozen, the couplings and priors as they are."""
    return FrozenGlow(self)

  def _augmented(self, events, name, conditional_input, transform):
    """`(result, log-det)` of `transform(images, labels)` (`_generate` or
    `_normalize`) on `events` `[..., H, W, C]`, shaped back. A batch known
    to hold no events returns them as they are (empty) with empty log-dets:
    TF's convolutions return wrongly shaped results for an empty batch, so
    no layer runs."""
    images, batch_shape = self._as_images(events, name)
    labels = self._labels(conditional_input, events)
    if images.shape[0] == 0:
      return tf.identity(events), tf.zeros(batch_shape, self.dtype)
    result, log_det = transform(images, labels)
    return tf.reshape(result, tf.shape(events)), tf.reshape(
      log_det, batch_shape
    )

  def _augmented_forward(self, z, conditional_input=None):
    x, fldj = self._augmented(z, "z", conditional_input, self._generate)
    return x, self._log_dets(fldj)

  def _augmented_inverse(self, x, conditional_input=None):
    z, ildj = self._augmented(x, "x", conditional_input, self._normalize)
    return z, self._log_dets(-ildj)


class FrozenGlow(Glow):
  """A `Glow` with frozen layers (`Glow._frozen`, `bijectors.freeze`).

  The same flow, name, label handling and base distribution, with each
  step's layers replaced by `freeze(layer)`: ActNorm's scales, the 1x1
  convolutions' `W^{-1}` and the emerging or periodic convolutions'
  weight-only quantities computed once, when frozen. The couplings and the
  priors, whose every call depends on the data (and the label), are the
  original's, variables and all. Sampling (`forward`) saves what the
  layers would recompute per call (`O(C^3)` per 1x1 for its inverse, the
  centre inverses and folded taps of the emerging solves); the density
  direction works too, with the same values, but gives no gradient to the
  frozen layers' variables: train the original (`glow`).
  """

  def __init__(self, glow: Glow):
    self._glow = glow
    self._image_shape = glow.image_shape
    self._num_levels = glow.num_levels
    self._num_steps = glow.num_steps
    self._mixing = glow.mixing
    self._num_classes = glow.num_classes
    self._condition_couplings = glow.condition_couplings
    self._steps = [[freeze(layer) for layer in layers] for layers in glow.steps]
    self._priors = glow.priors
    ImageFlow.__init__(
      self,
      dict(glow=glow),
      glow.dtype,
      f"{glow.name}/",  # exactly glow's name (kwargs route by name)
      validate_args=glow.validate_args,
    )

  @property
  def glow(self) -> Glow:
    """The flow frozen."""
    return self._glow

  @property
  def actnorms(self) -> list[ActNorm]:
    """The original flow's ActNorms (their flags say whether it is
    initialised)."""
    return self._glow.actnorms

  def get_config(self) -> dict[str, Any]:
    """Raises `ValueError`: a frozen flow is made from a flow, not saved."""
    raise ValueError(
      "A FrozenGlow has no config: save the flow it froze (`.glow`) and "
      "freeze it again after loading."
    )

  def initialize(self, *args: Any, **kwargs: Any) -> None:
    """Raises `ValueError`: initialise the original flow and freeze again."""
    raise ValueError(
      "A FrozenGlow holds the weights it was frozen with: initialise the "
      "original flow (`.glow.initialize`) and freeze it again."
    )
