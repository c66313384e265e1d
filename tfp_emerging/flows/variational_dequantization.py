"""Variational dequantisation (Flow++): a flow `q(u | k)` learns the noise.

Uniform dequantisation adds `u ~ U[0, 1)^D` to the pixel levels `k`; the
flow must then spread its density evenly over each unit cube, which costs
bits a smooth density cannot save. Variational dequantisation (Ho et al.,
2019) draws the noise from a learned conditional density `q(u | k)` on
`(0, 1)^D` and trains it jointly with the flow `p`. Since `P(k) =
int_{[0,1)^D} p_y(k + u) du = E_{u ~ q}[p_y(k + u) / q(u | k)]`, Jensen
gives

    -log2 P(k) <= E_{u ~ q}[-log p_y(k + u) + log q(u | k)] / log 2,

a valid bound for every `q` supported in the cube, equal to the uniform
one when `q = 1`. In bits per dimension, with `x = (k + u) / B - 1/2`,

    bpd = -(log p(x) - log q(u | k) - D log B) / (D log 2),

and the importance-weighted bound over `K` draws `u_j ~ q` is the same
with `logsumexp_j (log p(x_j) - log q(u_j | k)) - log K` in place of
`log p(x) - log q(u | k)` (`dequantization.importance_weighted_bits_per_dim`).

`VariationalDequantizer` is `q`'s flow: a TFP bijector `f` on `R^D` from a
standard logistic base `eps` to `v`, conditioned on the image `k`, then
`u = sigmoid(v)`:

    c = context(k)                                  [H/2, W/2, F]
    h = squeeze(eps)                                [H/2, W/2, 4C]
    h = reverse_channels(coupling_s(h; c))          s = 1 .. S
    v = unsqueeze(h),   u = sigmoid(v)              in (0, 1)^D

`context` is two `3 x 3` convolutions with ReLUs of the squeezed levels
`k / B - 1/2`; each coupling is this package's `AffineCoupling` whose network
reads its `x_a` and `c`. By the change of variables, with `log
Logistic(t) = log sigmoid(t) + log sigmoid(-t)` (which is also `log
sigmoid'(t)`),

    log q(u | k) = sum log Logistic(eps) - log |det dv / d eps|
                   - sum log Logistic(v).

The logistic base is drawn from uniform noise `u_0` as `eps = logit(u_0)`,
so the `tf.data` pipeline's seeded uniform noise serves both kinds of
dequantisation. The couplings' last layers start at zero, so each scales
half of the channels by `sigmoid(2)` and a new `q` with an even `S` is `u =
sigmoid(sigmoid(2)^(S/2) logit(u_0))`, close to uniform. In floating point
`u` may round to 0 or 1 where `|v|` is large (beyond about 17 in float32);
`log q` is computed from `v`, exact.

#### References

[1]: Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan, Pieter Abbeel.
     Flow++: Improving Flow-Based Generative Models with Variational
     Dequantization and Architecture Design. In _ICML_, 2019.
     https://arxiv.org/abs/1902.00275
"""

from __future__ import annotations

from collections.abc import Sequence
import itertools
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_emerging.bijectors.affine_coupling import AffineCoupling
from tfp_emerging.bijectors.image_bijector import ImageFlow
from tfp_emerging.bijectors.one_pass_log_det import OnePassLogDet
from tfp_emerging.flows import glow as glow_lib
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions
from tfp_emerging.ops import initializers
from tfp_emerging.ops import input_checks

__all__ = ["DEQUANTIZATIONS", "VariationalDequantizer", "logistic_log_prob"]

DEQUANTIZATIONS = ("uniform", "variational")
"""The kinds of dequantisation a `FlowModel` (and a run) can use: uniform
noise, or noise drawn from a learned `VariationalDequantizer`."""


def logistic_log_prob(eps: tf.Tensor) -> tf.Tensor:
  """`log sigmoid(eps) + log sigmoid(-eps)`, the standard logistic's
  log-density, elementwise."""
  return tf.math.log_sigmoid(eps) + tf.math.log_sigmoid(-eps)


def _conv(x, kernel, bias):
  return tf.nn.convolution(x, kernel, padding="SAME") + bias


class _ContextCouplingNetwork(tf.Module):
  """`AffineCoupling`'s network reading `x_a` and the context `c`:
  `conv_3x3(relu(conv_3x3([x_a, c]) + b_1)) + b_2`, the last layer zero."""

  def __init__(
    self,
    in_channels,
    context_channels,
    out_channels,
    hidden,
    spatial_shape,
    seed,
    dtype,
    name,
  ):
    super().__init__(name=name)
    self._context_shape = [-1, *spatial_shape, context_channels]
    self.hidden_kernel = tf.Variable(
      initializers.normal(
        [3, 3, in_channels + context_channels, hidden], 0.05, seed, dtype
      ),
      name="hidden_kernel",
    )
    self.hidden_bias = tf.Variable(
      tf.zeros([hidden], dtype), name="hidden_bias"
    )
    self.output_kernel = tf.Variable(
      tf.zeros([3, 3, hidden, out_channels], dtype), name="output_kernel"
    )
    self.output_bias = tf.Variable(
      tf.zeros([out_channels], dtype), name="output_bias"
    )

  def __call__(self, x_a, conditional_input):
    context = tf.reshape(conditional_input, self._context_shape)
    g = tf.nn.relu(
      _conv(tf.concat([x_a, context], -1), self.hidden_kernel, self.hidden_bias)
    )
    return _conv(g, self.output_kernel, self.output_bias)


class VariationalDequantizer(OnePassLogDet, ImageFlow):
  """`q(u | k)`'s flow: logistic noise `eps` -> `v`, `u = sigmoid(v)` in
  `(0, 1)`.

  See the module docstring for the math. Events are `[H, W, C]` (`H`, `W`
  even); every call takes the pixel levels `k` (`[..., H, W, C]`, any real
  or integer dtype, whole numbers in `0..num_bins-1`) as
  `conditional_input`, TFP's convention (`forward(eps,
  conditional_input=k)`).

  * `forward(eps)`: `v` (the couplings; a bijector on `R^D`), and
    `forward_log_det_jacobian` `log |det dv / d eps|`.
  * `inverse(v)`: `eps`, the couplings backwards.
  * `sample_and_log_prob(noise, images)`: `u` and `log q(u | k)`;
    `log_prob(u, images)`: `log q(u | k)`. These add the sigmoid.

  Cost per image, each direction: the context network
  `O(H W F (9 C + 9 F) / 4)` and `S` couplings `O(H W F (9 (2C + F)) / 4)`,
  no solve.

  #### Example

  >>> import tensorflow as tf
  >>> from tfp_emerging.flows import VariationalDequantizer
  >>> q = VariationalDequantizer(image_shape=(8, 8, 1), num_bins=17)
  >>> images = tf.random.uniform([4, 8, 8, 1], 0, 17, tf.int32)
  >>> noise = tf.random.uniform([4, 8, 8, 1])  # uniform, in [0, 1)
  >>> u, log_q = q.sample_and_log_prob(noise, images)
  >>> u.shape, log_q.shape
  (TensorShape([4, 8, 8, 1]), TensorShape([4]))
  """

  def __init__(
    self,
    image_shape: Sequence[int],
    num_bins: int = 256,
    num_steps: int = 4,
    hidden_channels: int = 32,
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "variational_dequantizer",
  ) -> None:
    """Creates `q`'s flow with new variables.

    Args:
      image_shape: `(H, W, C)`, `H` and `W` even.
      num_bins: `B >= 2`, the pixel levels of the images it conditions on.
      num_steps: `S >= 1` couplings.
      hidden_channels: `F >= 1`, the width of the context and coupling
        networks.
      seed: optional int seed of the initial weights.
      dtype: floating dtype of the variables, events and log-det.
      validate_args: assert at run time that the inputs are finite.
      name: name scope.

    Raises:
      ValueError: bad `image_shape`, `num_bins`, `num_steps`,
        `hidden_channels` or `dtype`.
    """
    parameters = dict(locals())
    if (
      not isinstance(image_shape, (tuple, list))
      or len(image_shape) != 3
      or not all(
        isinstance(d, (int, np.integer)) and d >= 1 for d in image_shape
      )
    ):
      raise ValueError(
        f"`image_shape` must be (H, W, C) of positive ints; "
        f"got {image_shape!r}."
      )
    height, width, channels = (int(d) for d in image_shape)
    if height % 2 or width % 2:
      raise ValueError(
        f"`image_shape` must have an even height and width "
        f"(the dequantizer squeezes 2 x 2 blocks); got "
        f"{image_shape!r}."
      )
    self._image_shape = (height, width, channels)
    self._num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
    self._num_steps = checks.positive_int(num_steps, "num_steps")
    hidden = checks.positive_int(hidden_channels, "hidden_channels")
    self._hidden_channels = hidden
    dtype = checks.float_dtype(dtype)
    parameters.update(image_shape=self._image_shape, dtype=dtype)
    offsets = itertools.count()

    def next_seed():
      return None if seed is None else seed + next(offsets)

    squeezed = 4 * channels
    spatial = (height // 2, width // 2)
    with tf.name_scope(name) as name:
      self._context_kernels = [
        tf.Variable(
          initializers.normal(
            [3, 3, squeezed, hidden], 0.05, next_seed(), dtype
          ),
          name="context_kernel_0",
        ),
        tf.Variable(
          initializers.normal([3, 3, hidden, hidden], 0.05, next_seed(), dtype),
          name="context_kernel_1",
        ),
      ]
      self._context_biases = [
        tf.Variable(tf.zeros([hidden], dtype), name=f"context_bias_{i}")
        for i in range(2)
      ]
      self._couplings = []
      c_a = squeezed // 2
      for step in range(self._num_steps):
        network = _ContextCouplingNetwork(
          c_a,
          hidden,
          2 * (squeezed - c_a),
          hidden,
          spatial,
          next_seed(),
          dtype,
          name=f"coupling_network_{step}",
        )
        self._couplings.append(
          AffineCoupling(
            channels=squeezed,
            network=network,
            conditional_size=spatial[0] * spatial[1] * hidden,
            dtype=dtype,
            validate_args=validate_args,
            name=f"coupling_{step}",
          )
        )
      super().__init__(parameters, dtype, name)

  def get_config(self) -> dict[str, Any]:
    """The constructor's arguments as JSON values (for `.keras` files)."""
    config = dict(self.parameters)
    config["image_shape"] = list(self._image_shape)
    config["dtype"] = tf.as_dtype(config["dtype"]).name
    return config

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> VariationalDequantizer:
    """A new `VariationalDequantizer` of `get_config()`'s arguments."""
    config = dict(config)
    config["image_shape"] = tuple(config["image_shape"])
    return cls(**config)

  @property
  def num_bins(self) -> int:
    """`B`, the pixel levels of the images it conditions on."""
    return self._num_bins

  @property
  def num_steps(self) -> int:
    """`S`, the number of couplings."""
    return self._num_steps

  @property
  def couplings(self) -> tuple[AffineCoupling, ...]:
    """The `S` `AffineCoupling`s, in forward order."""
    return tuple(self._couplings)

  def _flat(self, z, name):
    """`z` as `[N, H, W, C]` in `dtype`, and its shape."""
    z = checks.checked(
      z, self._image_shape[-1], self.dtype, name, self.validate_args
    )
    if not z.shape[-3:].is_compatible_with(self._image_shape):
      raise ValueError(
        f"`{name}` must have events {self._image_shape}; got shape {z.shape}."
      )
    return tf.reshape(z, [-1, *self._image_shape]), tf.shape(z)

  def _context(self, conditional_input, events):
    """`[N, (H/2) (W/2) F]` context rows of the levels `k` for `events`."""
    conditions.require(conditional_input, True, self.name)
    levels = tf.convert_to_tensor(conditional_input)
    if not input_checks.holds_levels(levels.dtype):
      raise ValueError(
        f"`conditional_input` must be the pixel levels k "
        f"(integer or float); got dtype {levels.dtype.name}."
      )
    levels = tf.cast(levels, self.dtype)
    if levels.shape.rank is not None and (
      levels.shape.rank < 3
      or not levels.shape[-3:].is_compatible_with(self._image_shape)
    ):
      raise ValueError(
        f"`conditional_input` must be images [..., "
        f"{', '.join(map(str, self._image_shape))}]; got shape "
        f"{levels.shape}."
      )
    levels = tf.broadcast_to(levels, tf.shape(events))
    h = glow_lib.squeeze(
      tf.reshape(levels, [-1, *self._image_shape]) / self._num_bins - 0.5
    )
    for kernel, bias in zip(self._context_kernels, self._context_biases):
      h = tf.nn.relu(_conv(h, kernel, bias))
    return tf.reshape(h, [tf.shape(h)[0], -1])

  def _augmented_forward(self, x, conditional_input=None):
    eps, shape = self._flat(x, "x")
    context = self._context(conditional_input, x)
    h = glow_lib.squeeze(eps)
    log_det = tf.zeros([tf.shape(h)[0]], self.dtype)
    for coupling in self._couplings:
      y = coupling.forward(h, conditional_input=context)
      # From TFP's cache: the forward pass computed it.
      log_det += coupling.forward_log_det_jacobian(
        h, event_ndims=3, conditional_input=context
      )
      h = tf.reverse(y, axis=[-1])
    fldj = tf.reshape(log_det, shape[:-3])
    return (
      tf.reshape(glow_lib.unsqueeze(h), shape),
      {"fldj": fldj, "ildj": -fldj},
    )

  def _augmented_inverse(self, y, conditional_input=None):
    v, shape = self._flat(y, "y")
    context = self._context(conditional_input, y)
    log_det = tf.zeros([tf.shape(v)[0]], self.dtype)
    h = glow_lib.squeeze(v)
    for coupling in reversed(self._couplings):
      h = tf.reverse(h, axis=[-1])
      x = coupling.inverse(h, conditional_input=context)
      log_det += coupling.inverse_log_det_jacobian(
        h, event_ndims=3, conditional_input=context
      )
      h = x
    ildj = tf.reshape(log_det, shape[:-3])
    return (
      tf.reshape(glow_lib.unsqueeze(h), shape),
      {"ildj": ildj, "fldj": -ildj},
    )

  def log_prob(
    self, u: tf.Tensor | np.ndarray, images: tf.Tensor | np.ndarray
  ) -> tf.Tensor:
    """`log q(u | k)`, `[...]`, of dequantisations `u` `[..., H, W, C]` in
    `(0, 1)` of the levels `images` (`k`). Cost: one inverse pass."""
    u = tf.convert_to_tensor(u, self.dtype)
    v = tf.math.log(u) - tf.math.log1p(-u)
    eps = self.inverse(v, conditional_input=images)
    return tf.reduce_sum(
      logistic_log_prob(eps) - logistic_log_prob(v), axis=[-3, -2, -1]
    ) + self.inverse_log_det_jacobian(
      v, event_ndims=3, conditional_input=images
    )

  def sample_and_log_prob(
    self, noise: tf.Tensor | np.ndarray, images: tf.Tensor | np.ndarray
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`(u, log q(u | k))`: the dequantisation of `images` (`k`, `[..., H,
    W, C]`) drawn from uniform `noise` in `[0, 1)` of the same shape
    (`eps = logit(noise)`; `noise` is clipped into the open interval), and
    its log-density `[...]`. Cost: one forward pass."""
    noise = tf.convert_to_tensor(noise, self.dtype)
    tiny = np.finfo(self.dtype.as_numpy_dtype).tiny
    epsilon = np.finfo(self.dtype.as_numpy_dtype).epsneg
    noise = tf.clip_by_value(noise, tiny, 1.0 - epsilon)
    eps = tf.math.log(noise) - tf.math.log1p(-noise)
    v = self.forward(eps, conditional_input=images)
    log_q = tf.reduce_sum(
      logistic_log_prob(eps) - logistic_log_prob(v), axis=[-3, -2, -1]
    ) - self.forward_log_det_jacobian(
      eps, event_ndims=3, conditional_input=images
    )
    return tf.sigmoid(v), log_q
