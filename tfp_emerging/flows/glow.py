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
from tfp_emerging.bijectors.conv1x1 import Conv1x1
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D
from tfp_emerging.bijectors.freezing import freeze
from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.bijectors.periodic_conv2d import PeriodicConv2D
from tfp_emerging.flows import priors
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions

__all__ = ["MIXINGS", "FrozenGlow", "Glow", "squeeze", "unsqueeze"]

MIXINGS = ("1x1", "lu", "qr", "emerging", "periodic")
"""The channel mixings `Glow(mixing=...)` takes: Glow's plain `"1x1"`
convolution, its `"lu"` and `"qr"` parameterisations (`Conv1x1`), the
`"emerging"` `k x k` convolution after a QR 1x1 (`EmergingConv2D`) and
the `"periodic"` one (`PeriodicConv2D`)."""

# Seeds of consecutive layers are this far apart (a layer may use a few).
_SEED_STRIDE = 10


def _dimensions(x):
  """`[N, H, W, C]` of `x`: Python ints where static, else scalar tensors."""
  dynamic = tf.shape(x)
  return [
    size if size is not None else dynamic[i]
    for i, size in enumerate(x.shape.as_list())
  ]


def squeeze(x: tf.Tensor) -> tf.Tensor:
  """`[N, H, W, C]` -> `[N, H/2, W/2, 4C]`: each 2x2 block becomes channels.

  Output channel `(2a + b) C + c` of pixel `(i, j)` is input pixel
  `(2i + a, 2j + b)`, channel `c`. A permutation: no log-det. Static sizes
  stay static.
  """
  n, h, w, c = _dimensions(x)
  x = tf.reshape(x, [n, h // 2, 2, w // 2, 2, c])
  x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
  return tf.reshape(x, [n, h // 2, w // 2, 4 * c])


def unsqueeze(x: tf.Tensor) -> tf.Tensor:
  """Inverse of `squeeze`: `[N, H, W, 4C]` -> `[N, 2H, 2W, C]`."""
  n, h, w, c = _dimensions(x)
  c //= 4
  x = tf.reshape(x, [n, h, w, 2, 2, c])
  x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
  return tf.reshape(x, [n, 2 * h, 2 * w, c])


def _mixing_layers(mixing, channels, kernel_size, seed, dtype, validate_args):
  """The mixing layers of one step, in the density (convolution) direction."""
  seed_2 = None if seed is None else seed + _SEED_STRIDE // 2
  common = dict(dtype=dtype, validate_args=validate_args)
  if callable(mixing):
    return [mixing(channels=channels, seed=seed, dtype=dtype)]
  if mixing == "1x1":
    return [Conv1x1(channels, "plain", seed=seed, **common)]
  if mixing in ("lu", "qr"):
    return [Conv1x1(channels, mixing, seed=seed, **common)]
  if mixing == "emerging":
    return [
      Conv1x1(channels, "qr", seed=seed, **common),
      EmergingConv2D(channels, kernel_size, seed=seed_2, **common),
    ]
  return [PeriodicConv2D(channels, kernel_size, seed=seed, **common)]


def _custom_coupling_network(
  coupling_network_fn,
  input_shape,
  output_channels,
  conditional_size,
  dtype,
  name,
):
  """Makes a coupling network with `coupling_network_fn` and builds it.

  Calls the network once on zeros (and a zero condition), which creates the
  variables of a Keras layer built on first call, and checks the shape of
  its output early, with a `ValueError`.
  """
  network = coupling_network_fn(
    input_shape=input_shape, output_channels=output_channels, name=name
  )
  if not callable(network):
    raise ValueError(
      f"`coupling_network_fn` must return a callable network; got {network!r}."
    )
  x_a = tf.zeros([1, *input_shape], dtype)
  if conditional_size is None:
    out = network(x_a)
  else:
    out = network(x_a, conditional_input=tf.zeros([1, conditional_size], dtype))
  expected = [1, *input_shape[:2], output_channels]
  if list(tf.convert_to_tensor(out).shape) != expected:
    raise ValueError(
      f"`coupling_network_fn`'s network must map [N, H, W, C_a] = "
      f"{[1, *input_shape]} to [N, H, W, 2 C_b] = {expected}; got shape "
      f"{list(out.shape)}."
    )
  return network


class Glow(OnePassLogDet, tfb.Bijector):
  """Glow's multi-scale flow, latent -> image, with a standard normal base.

  The direction matches TFP's `tfb.Glow`: `forward` maps a latent `z` of the
  image's shape `[H, W, C]` to an image `x`, so

      distribution = tfd.TransformedDistribution(glow.base_distribution(), glow)

  is the density model, and `log_prob` runs `inverse` (image -> latent).

  Architecture, in the density direction (image -> latent), as in the paper:
  `L = num_levels` levels; level `l` receives `h` of shape
  `[H / 2^l, W / 2^l, C_l]` (`C_0 = C`) and

  1. squeezes it to `[H / 2^(l+1), W / 2^(l+1), 4 C_l]`;
  2. applies `K = num_steps` steps, each
     `ActNorm` (data-dependent initialisation, `initialize`) -> mixing ->
     `AffineCoupling` (`hidden_channels` wide, last layer zero-initialised,
     scale `sigmoid(h + 2)`);
  3. if not the last level, splits the channels in halves `h_1, h_2`,
     standardises `h_2` under the learned conditional prior
     `N(mu(h_1), sigma(h_1)^2)` (`priors.ConditionalNormalPrior`) and passes
     `h_1` (`2 C_l` channels) to level `l + 1`; the last level standardises
     all of `h` under a learned per-channel `N(mu, sigma^2)`
     (`priors.LearnedNormalPrior`).

  The standardised noise of each level, concatenated with the latent coming
  back from the next level and unsqueezed, fills the latent `z` of shape
  `[H, W, C]`. Because every prior is an affine map of a standard normal,
  the base distribution is `N(0, I)` and sampling at temperature `T` (Glow's
  temperature: every prior's `sigma` scaled by `T`) is
  `forward(T * base.sample())`.

  Mixing (`mixing`, see `MIXINGS`), each layer initialised as in the paper:
  `"1x1"`: Glow's plain 1x1 convolution (`Conv1x1`, `"plain"`); `"lu"`,
  `"qr"`: the LU and QR parameterised 1x1; `"emerging"`: a QR 1x1 followed by
  an emerging `k x k` (`EmergingConv2D`); `"periodic"`: a periodic `k x k`
  (`PeriodicConv2D`, which needs `k <= min(H, W) / 2^L`). A callable
  `mixing(channels=, seed=, dtype=)` returning
  a bijector on `[H, W, channels]` events plugs in any other layer; its
  `forward` is used in the density direction.

  Class-conditional flow (`num_classes=K`, the Glow paper's
  class-conditional model): every call takes the label `y` as
  `conditional_input`, TFP's convention for conditional bijectors,

      x = glow.forward(z, conditional_input=y)
      z = glow.inverse(x, conditional_input=y)
      glow.forward_log_det_jacobian(z, event_ndims=3, conditional_input=y)
      dist.log_prob(x, bijector_kwargs={"conditional_input": y})
      dist.sample(n, bijector_kwargs={"conditional_input": y})
      tfb.Chain([..., glow, ...]).forward(
          z, **{glow.name: {"conditional_input": y}})

  `y` is either integer class ids `[...]` in `0..K-1` or floating vectors
  `[..., K]` (one-hot, or class weights that mix the classes' terms
  linearly); its batch shape `[...]` broadcasts to that of the events (one
  label may serve a whole batch). The label enters as its one-hot vector
  `e_y`:

  * the top prior: `mu = mu_0 + e_y E_mu`, `log sigma = log sigma_0 +
    e_y E_sigma` per channel (`E` `[K, C_L]`): a learned per-class mean
    and scale;
  * each split prior: `[mu, log sigma] = conv(h_1) + b + e_y E` (`E`
    `[K, 2 C_2]`, the same for every pixel);
  * with `condition_couplings=True` (the default with `num_classes`),
    every coupling network too: the
    default one adds `e_y W_c` (`[K, F]`, a per-class bias) to its first
    hidden layer; a custom one gets `conditional_input=e_y` (`[N, K]`).

  Every such `E` and `W_c` starts at zero, so a new conditional Glow is the
  unconditional one, `N(0, I)` for every label after the data-dependent
  initialisation. The base stays `N(0, I)`: sampling class `y` is
  `forward(T * base.sample(n), conditional_input=y)`. A conditional Glow
  called without `conditional_input`, or an unconditional one given one,
  raises a `ValueError`. TFP's bijector cache keys include
  `conditional_input` (tensors by identity), so a result or log-det is
  reused only for the same input and the same label tensor.

  Coupling network (`coupling_network_fn`): by default each step's
  coupling is `AffineCoupling`'s network of three convolutions. A callable

      coupling_network_fn(input_shape, output_channels, name) -> network

  called with keywords, `input_shape = (H_l, W_l, C_a)` (the level's
  squeezed size and the `C_a = C_l // 2` channels the network reads) and
  `output_channels = 2 C_b` (`C_b = C_l - C_a`), replaces it; compare
  `tfb.Glow`'s `coupling_bijector_fn`. `network(x_a)` (or
  `network(x_a, conditional_input=e_y)` with `condition_couplings`) maps
  `[N, H_l, W_l, C_a]` to `[N, H_l, W_l, 2 C_b]`: the shift `t` in
  channels `0::2`, the pre-sigmoid scale `h` in `1::2` (see
  `AffineCoupling`). `network` is a Keras layer (Keras 3 or tf_keras, e.g. a
  `keras.Sequential` of `Conv2D`s) or a `tf.Module`; the Glow calls it once
  on zeros when it is built, which creates its variables and checks the
  output shape, and lists the `tf.Variable`s behind them in
  `trainable_variables`, so `FlowModel` and any `tf.GradientTape` train
  them. Zero-initialise its last layer, as Glow does.

  Directions and cost. `inverse` (density) runs every layer's `forward`: the
  convolutions, never a solve. With `N` images, `D = H W C`, `F` hidden
  channels and `k x k` kernels, one step at level `l` costs about
  `O(N (D / 4^l) (k^2 F / 2 + F^2 / (4 C_l) + k^2 F / 2))` for the coupling
  network (dominant for Glow's widths) plus the mixing's convolutions,
  `O(N D C_l)` (1x1) or `O(N D k^2 C_l)` (emerging, periodic). `forward`
  (sampling) runs every layer's `inverse`: the same network passes plus the
  mixings' solves (triangular solves; `H / 2^l + W / 2^l - 1` sequential
  wavefront steps per emerging layer; FFT solves for periodic). The log-det
  comes out of the same pass: `inverse` puts it in TFP's bijector cache, so
  `TransformedDistribution.log_prob` evaluates the flow once.

  Data-dependent initialisation: the first density evaluation of a new flow
  (`log_prob`, or `inverse`) initialises every ActNorm from that batch, in
  order, each from the activations its initialised predecessors produce
  (Glow's scheme, as in TFP's `tfb.Glow`); `initialize(images)` does the same
  explicitly and re-initialises. It works eagerly, in `tf.function` and under
  XLA; in a `tf.distribute` replica context, initialise beforehand (see
  `ActNorm`). Sampling (`forward`) from an uninitialised flow raises
  `InvalidArgumentError`: a latent is no data to initialise from.

  Variables: every layer's (custom coupling networks' included), plus the
  priors'; `trainable_variables` lists them all, `variables` adds each
  ActNorm's `initialized` flag.

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
    coupling_conditions = num_classes if condition_couplings else None
    layer_seed = iter(range(0, 10**9, _SEED_STRIDE))

    def next_seed():
      offset = next(layer_seed)
      return None if seed is None else seed + offset

    with tf.name_scope(name) as name:
      self._steps = []
      self._priors = []
      level_channels = channels
      for level in range(num_levels):
        c = 4 * level_channels
        size = (height // 2 ** (level + 1), width // 2 ** (level + 1))
        layers = []
        with tf.name_scope(f"level_{level}"):
          for step in range(num_steps):
            with tf.name_scope(f"step_{step}"):
              layers.append(
                ActNorm(c, dtype=dtype, validate_args=validate_args)
              )
              layers.extend(
                _mixing_layers(
                  mixing, c, kernel_size, next_seed(), dtype, validate_args
                )
              )
              network = None
              if coupling_network_fn is not None:
                network = _custom_coupling_network(
                  coupling_network_fn,
                  (*size, c // 2),
                  2 * (c - c // 2),
                  coupling_conditions,
                  dtype,
                  f"coupling_network_{level}_{step}",
                )
              layers.append(
                AffineCoupling(
                  c,
                  hidden_channels,
                  kernel_size,
                  network=network,
                  conditional_size=coupling_conditions,
                  seed=next_seed(),
                  dtype=dtype,
                  validate_args=validate_args,
                )
              )
          if level < num_levels - 1:
            self._priors.append(
              priors.ConditionalNormalPrior(
                c - c // 2,
                c // 2,
                kernel_size,
                num_classes=num_classes,
                dtype=dtype,
                name="split_prior",
              )
            )
          else:
            self._priors.append(
              priors.LearnedNormalPrior(
                c, num_classes=num_classes, dtype=dtype, name="top_prior"
              )
            )
        self._steps.append(layers)
        level_channels = c - c // 2
      super().__init__(
        forward_min_event_ndims=3,
        dtype=dtype,
        validate_args=validate_args,
        parameters=parameters,
        name=name,
      )

  @classmethod
  def _parameter_properties(cls, dtype):
    return {}

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
  def image_shape(self) -> tuple[int, int, int]:
    """`(H, W, C)`."""
    return self._image_shape

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

  def _no_events(self, events, batch_shape):
    """The outputs of a batch known to hold no events: `events` as they
    are (empty) and empty log-dets of `batch_shape`. TF's convolutions
    return wrongly shaped results for an empty batch, so no layer runs."""
    empty = tf.zeros(batch_shape, self.dtype)
    return tf.identity(events), {"fldj": empty, "ildj": empty}

  def _frozen(self) -> FrozenGlow:
    """This flow with its weights as they are now, for sampling (`freeze`):
    every step's layers frozen, the couplings and priors as they are."""
    return FrozenGlow(self)

  def _augmented_forward(self, z, conditional_input=None):
    images, batch_shape = self._as_images(z, "z")
    labels = self._labels(conditional_input, z)
    if images.shape[0] == 0:
      return self._no_events(z, batch_shape)
    x, fldj = self._generate(images, labels)
    fldj = tf.reshape(fldj, batch_shape)
    return tf.reshape(x, tf.shape(z)), {"fldj": fldj, "ildj": -fldj}

  def _augmented_inverse(self, x, conditional_input=None):
    images, batch_shape = self._as_images(x, "x")
    labels = self._labels(conditional_input, x)
    if images.shape[0] == 0:
      return self._no_events(x, batch_shape)
    z, ildj = self._normalize(images, labels)
    ildj = tf.reshape(ildj, batch_shape)
    return tf.reshape(z, tf.shape(x)), {"ildj": ildj, "fldj": -ildj}


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
    tfb.Bijector.__init__(
      self,
      forward_min_event_ndims=3,
      dtype=glow.dtype,
      validate_args=glow.validate_args,
      parameters=dict(glow=glow),
      name=f"{glow.name}/",  # exactly glow's name (kwargs route by name)
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

  def initialize(
    self,
    images: tf.Tensor | np.ndarray,
    conditional_input: (
      tf.Tensor | np.ndarray | Sequence[int] | int | None
    ) = None,
  ) -> None:
    """Raises `ValueError`: initialise the original flow and freeze again."""
    raise ValueError(
      "A FrozenGlow holds the weights it was frozen with: initialise the "
      "original flow (`.glow.initialize`) and freeze it again."
    )
