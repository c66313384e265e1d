"""The levels of a Glow (`tfp_emerging.flows.Glow`): the squeeze, and each
level's steps (actnorm, mixing, coupling) and prior, built as in the paper."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf
from tensorflow_probability import bijectors as tfb

from tfp_emerging.bijectors.actnorm import ActNorm
from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.conv1x1 import Conv1x1
from tfp_emerging.bijectors.emerging_conv2d import EmergingConv2D
from tfp_emerging.bijectors.periodic_conv2d import PeriodicConv2D
from tfp_emerging.flows import priors

__all__ = ["build_levels", "squeeze", "unsqueeze"]

Prior = priors.ConditionalNormalPrior | priors.LearnedNormalPrior

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


def build_levels(
  image_shape: tuple[int, int, int],
  num_levels: int,
  num_steps: int,
  *,
  mixing: str | Callable[..., tfb.Bijector],
  hidden_channels: int,
  kernel_size: int,
  num_classes: int | None,
  coupling_conditions: int | None,
  coupling_network_fn: Callable[..., Callable[..., tf.Tensor]] | None,
  seed: int | None,
  dtype: tf.dtypes.DType,
  validate_args: bool,
) -> tuple[list[list[tfb.Bijector]], list[Prior]]:
  """`(steps, priors)` of a Glow on `image_shape` `(H, W, C)`, arguments
  checked (`Glow.__init__` documents them; `coupling_conditions` is `K` for
  label-conditioned couplings, else `None`).

  Level `l` works on `[H / 2^(l+1), W / 2^(l+1), C_l]` after its squeeze:
  `C_0 = 4 C`, and `C_l` is four times the channels level `l - 1` kept
  (`h_1`, its second half, `C_{l-1} - C_{l-1} // 2`). `steps[l]`
  lists its `num_steps` steps' layers in the density direction (`ActNorm`,
  the mixing, `AffineCoupling`, in name scopes `level_l/step_s`);
  `priors[l]` is its split prior (`priors.ConditionalNormalPrior` of `h_2`,
  the first half, given `h_1`), or, at the last level, the top prior
  (`priors.LearnedNormalPrior`). The mixing and the coupling of every step,
  in order, take the seeds `seed`, `seed + _SEED_STRIDE`, ... (`None`
  without `seed`). Cost: creating the variables.
  """
  height, width, channels = image_shape
  layer_seed = iter(range(0, 10**9, _SEED_STRIDE))

  def next_seed():
    offset = next(layer_seed)
    return None if seed is None else seed + offset

  steps: list[list[tfb.Bijector]] = []
  level_priors: list[Prior] = []
  level_channels = channels
  for level in range(num_levels):
    c = 4 * level_channels
    size = (height // 2 ** (level + 1), width // 2 ** (level + 1))
    layers: list[tfb.Bijector] = []
    with tf.name_scope(f"level_{level}"):
      for step in range(num_steps):
        with tf.name_scope(f"step_{step}"):
          layers.append(ActNorm(c, dtype=dtype, validate_args=validate_args))
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
      prior: Prior
      if level < num_levels - 1:
        prior = priors.ConditionalNormalPrior(
          c - c // 2,
          c // 2,
          kernel_size,
          num_classes=num_classes,
          dtype=dtype,
          name="split_prior",
        )
      else:
        prior = priors.LearnedNormalPrior(
          c, num_classes=num_classes, dtype=dtype, name="top_prior"
        )
      level_priors.append(prior)
    steps.append(layers)
    level_channels = c - c // 2
  return steps, level_priors
