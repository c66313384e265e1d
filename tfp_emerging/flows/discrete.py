"""`DiscreteFlow`: a flow's density on n-bit images, in bits per dimension.

The one place where integer pixel levels meet the continuous flow (the
math: `DiscreteFlow`). `tfp_emerging.keras.FlowModel` trains one and
`tfp_emerging.export` serves one; it needs no Keras.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_probability import bijectors as tfb
from tensorflow_probability import distributions as tfd

from tfp_emerging.flows import dequantization
from tfp_emerging.flows import variational_dequantization
from tfp_emerging.ops import checks
from tfp_emerging.ops import conditions

__all__ = ["DiscreteFlow"]

# The images per pass of a flow that needs batches of static size, when the
# batch size is unknown (`DiscreteFlow.log_prob`).
STATIC_CHUNK = 16


class DiscreteFlow(tf.Module):
  """A flow's density on integer images by dequantisation.

  Images are levels `k` in `0..B-1` (`B = num_bins`); each is dequantised
  with noise `u` in `[0, 1)^D` to the flow's domain,

      x = (k + u) / B - 1/2,

  uniformly (`u` is the given uniform noise) or variationally (`u ~ q(u |
  k)` drawn from that noise by a `VariationalDequantizer`, Flow++), and
  scored by the bound on the discrete model's code length

      bpd = -(log p(x) - log q(u | k) - D log B) / (D log 2),   D = H W C

  (`log q = 0` for uniform noise; `tfp_emerging.flows.dequantization`,
  `tfp_emerging.flows.variational_dequantization`). With `K` draws per
  image it is the importance-weighted bound

      bpd_K = -(logsumexp_j (log p(x_j) - log q(u_j | k)) - log K - D log B)
              / (D log 2).

  It holds the flow (latent -> image, TFP's direction), its base
  distribution, `num_bins` and the optional dequantiser; as a `tf.Module`
  its variables are the flow's and the dequantiser's.

  Shapes: levels `[B, H, W, C]` (any integer or float dtype holding whole
  numbers in `0..num_bins-1`; not checked here), noise `[B, H, W, C]` or
  `K` draws per image `[B, K, H, W, C]` in `[0, 1)`, labels `[B]` ids or
  `[B, K']` vectors for a class-conditional flow. Cost of `bits_per_dim`:
  `K` density passes of the flow per image (its inverse: convolutions only)
  and, with a dequantiser, `K` passes of `q`.
  """

  def __init__(
    self,
    flow: tfb.Bijector,
    num_bins: int = 256,
    base_distribution: tfd.Distribution | None = None,
    dequantizer: (
      variational_dequantization.VariationalDequantizer | None
    ) = None,
    name: str = "discrete_flow",
  ) -> None:
    """Holds `flow` and its density on `[H, W, C]` images.

    Args:
      flow: a TFP bijector latent -> image on events `[H, W, C]` (a
        `tfp_emerging.flows.Glow`, a `tfb.Chain`, TFP's `tfb.Glow`).
      num_bins: `B >= 2`, the number of pixel levels.
      base_distribution: the latent's distribution; default
        `flow.base_distribution()`.
      dequantizer: `None` (uniform noise) or a
        `tfp_emerging.flows.VariationalDequantizer` of the images' shape,
        `num_bins` and dtype.
      name: the module's name.

    Raises:
      ValueError: a bad `num_bins` or `dequantizer`, a `flow` that is no
        bijector, no base distribution, or events that are not `[H, W, C]`
        of known size.
    """
    super().__init__(name=name)
    self._num_bins = checks.positive_int(num_bins, "num_bins", minimum=2)
    if not isinstance(flow, tfb.Bijector):
      raise ValueError(f"`flow` must be a TFP bijector; got {flow!r}.")
    if base_distribution is None:
      if not hasattr(flow, "base_distribution"):
        raise ValueError(
          "`base_distribution` must be given for a flow "
          "without `base_distribution()`."
        )
      base_distribution = flow.base_distribution()
    self._flow = flow
    self._distribution = tfd.TransformedDistribution(base_distribution, flow)
    event_shape = self._distribution.event_shape
    if event_shape.rank != 3 or not event_shape.is_fully_defined():
      raise ValueError(
        f"The flow must map the base distribution to images [H, W, C] of "
        f"known size; its events have shape {event_shape}."
      )
    height, width, channels = event_shape.as_list()
    self._image_shape = (height, width, channels)
    self._num_dims = int(np.prod(self._image_shape))
    # A tfb.Chain's dtype is None: the images have the distribution's.
    self._dtype = tf.as_dtype(self._distribution.dtype)
    self._num_classes = conditions.num_classes_of(flow)
    self._needs_static_batch = isinstance(flow, tfb.Reshape) or any(
      True
      for _ in flow._flatten(predicate=lambda m: isinstance(m, tfb.Reshape))
    )
    self._dequantizer = self._checked_dequantizer(dequantizer)

  def _checked_dequantizer(self, dequantizer):
    """`dequantizer` if it is `None` or fits the images."""
    if dequantizer is None:
      return None
    kind = variational_dequantization.VariationalDequantizer
    if not isinstance(dequantizer, kind):
      raise ValueError(
        f"`dequantizer` must be None (uniform) or a "
        f"tfp_emerging.flows.VariationalDequantizer; got "
        f"{dequantizer!r}."
      )
    found = (
      tuple(dequantizer.image_shape),
      dequantizer.num_bins,
      tf.as_dtype(dequantizer.dtype),
    )
    wanted = (self._image_shape, self._num_bins, self._dtype)
    if found != wanted:
      raise ValueError(
        f"`dequantizer` must have the model's image shape, num_bins and "
        f"dtype {wanted[0]}, {wanted[1]}, {wanted[2].name}; got {found[0]}, "
        f"{found[1]}, {found[2].name}."
      )
    return dequantizer

  @property
  def flow(self) -> tfb.Bijector:
    """The flow, latent -> image."""
    return self._flow

  @property
  def distribution(self) -> tfd.TransformedDistribution:
    """`tfd.TransformedDistribution(base, flow)` on the `[-0.5, 0.5)` images."""
    return self._distribution

  @property
  def num_bins(self) -> int:
    """`B`, the number of pixel levels."""
    return self._num_bins

  @property
  def dequantizer(
    self,
  ) -> variational_dequantization.VariationalDequantizer | None:
    """The `VariationalDequantizer` `q(u | k)`, or `None` (uniform)."""
    return self._dequantizer

  @property
  def image_shape(self) -> tuple[int, int, int]:
    """`(H, W, C)`, the shape of one image."""
    return self._image_shape

  @property
  def num_dims(self) -> int:
    """`D = H W C`."""
    return self._num_dims

  @property
  def dtype(self) -> tf.dtypes.DType:
    """The floating dtype of the dequantised images and the noise."""
    return self._dtype

  @property
  def num_classes(self) -> int | None:
    """`K` for a class-conditional flow, else `None`."""
    return self._num_classes

  def log_prob(
    self, x: tf.Tensor | np.ndarray, labels: tf.Tensor | None = None
  ) -> tf.Tensor:
    """`log p(x)` `[N]` (nats) of dequantised images `x` `[N, H, W, C]`.

    `labels` reach a class-conditional flow's parts
    (`tfp_emerging.ops.conditions.route`). A flow holding a `tfb.Reshape`,
    as TFP's `tfb.Glow` does, cannot trace a batch of unknown size: TFP's
    `Reshape` then concatenates the int32 batch shape with its int64 event
    shape (a TFP bug: `ConcatV2 ... int32, int64`), as in Keras' traced
    steps on a dataset whose last batch is smaller. Such a batch goes
    through the flow in chunks of a static `STATIC_CHUNK` images, one after
    the other (`tf.map_fn`), the last padded with zeros whose densities are
    dropped: the same result, with less parallelism. This package's flows
    take any batch in one pass. Cost: one density pass per image.
    """
    x = tf.convert_to_tensor(x, self._dtype)
    kwargs = {} if labels is None else conditions.route(self._flow, labels)
    if x.shape[0] is not None or kwargs or not self._needs_static_batch:
      return self._distribution.log_prob(x, bijector_kwargs=kwargs)
    size = tf.shape(x)[0]
    chunks = (size + STATIC_CHUNK - 1) // STATIC_CHUNK
    padded = tf.pad(
      x, [[0, chunks * STATIC_CHUNK - size], [0, 0], [0, 0], [0, 0]]
    )
    log_prob = tf.map_fn(
      self._distribution.log_prob,
      tf.reshape(padded, [chunks, STATIC_CHUNK, *self._image_shape]),
    )
    return tf.reshape(log_prob, [-1])[:size]

  def dequantize(
    self, levels: tf.Tensor | np.ndarray, noise: tf.Tensor | np.ndarray
  ) -> tuple[tf.Tensor, tf.Tensor | None]:
    """`(x, log_q)`: `levels` `k` `[N, H, W, C]` dequantised from uniform
    `noise` `[N, H, W, C]`, `x = (k + u) / B - 1/2`.

    Uniform dequantisation: `u = noise`, `log_q` `None`. Variational: `u ~
    q(u | k)` drawn from `noise` (`VariationalDequantizer.
    sample_and_log_prob`) and its `log q(u | k)` `[N]`. Cost `O(N D)`, or
    one pass of `q`.
    """
    levels = tf.cast(levels, self._dtype)
    noise = tf.convert_to_tensor(noise, self._dtype)
    if self._dequantizer is None:
      u, log_q = noise, None
    else:
      u, log_q = self._dequantizer.sample_and_log_prob(noise, levels)
    # `divide_no_nan` by `B > 0` is the division itself, computed as eager
    # TensorFlow and `tf.data` compute it; a traced function's `/ B` comes
    # out an ulp apart in places (its graph is rewritten), and runs would
    # no longer reproduce those dequantised by the former pipeline.
    bins = tf.constant(self._num_bins, self._dtype)
    return tf.math.divide_no_nan(levels + u, bins) - 0.5, log_q

  def uniform_noise(
    self,
    batch_size: int | tf.Tensor,
    seed: int | tf.Tensor | None = None,
    num_samples: int = 1,
  ) -> tf.Tensor:
    """`U[0, 1)` noise for `batch_size` images: `[B, H, W, C]`, or `[B, K,
    H, W, C]` for `num_samples = K > 1`; drawn statelessly from `seed` (an
    int or a seed `[2]`), else from the global generator."""
    num_samples = checks.positive_int(num_samples, "num_samples")
    noise = dequantization.uniform_noise(
      tf.concat([[batch_size * num_samples], self._image_shape], 0),
      seed,
      self._dtype,
    )
    if num_samples == 1:
      return noise
    return tf.reshape(noise, [-1, num_samples, *self._image_shape])

  def bits_per_dim(
    self,
    levels: tf.Tensor | np.ndarray,
    noise: tf.Tensor | np.ndarray | None = None,
    labels: tf.Tensor | np.ndarray | None = None,
    seed: int | tf.Tensor | None = None,
    num_samples: int = 1,
  ) -> tf.Tensor:
    """Bits/dim `[B]` of integer `levels` `[B, H, W, C]`.

    Each image is dequantised from `noise` `[B, H, W, C]` in `[0, 1)` (one
    draw: the bound `bpd`), or from `K` draws `[B, K, H, W, C]` (the
    importance-weighted `bpd_K`; see the class). Without `noise`, it is
    drawn here (`uniform_noise`): `num_samples` draws per image, from
    `seed` if given (reproducible), else fresh. `labels`: one per image,
    for a class-conditional flow (repeated over the draws).

    Cost: `K` density passes of the flow per image (and of `q`).

    Raises:
      ValueError: `seed` or `num_samples` given with `noise`; `noise` not
        `[B, H, W, C]` or `[B, K, H, W, C]`; labels given to an
        unconditional flow or missing for a conditional one.
    """
    if noise is None:
      noise = self.uniform_noise(tf.shape(levels)[0], seed, num_samples)
    elif seed is not None or num_samples != 1:
      raise ValueError(
        "DiscreteFlow.bits_per_dim: `seed` and `num_samples` draw the "
        "noise, which was given."
      )
    if (self._num_classes is None) != (labels is None):
      raise ValueError(
        f"DiscreteFlow.bits_per_dim: `labels` must be given exactly when "
        f"the flow is class-conditional (num_classes="
        f"{self._num_classes}); got "
        f"{'none' if labels is None else 'labels'}."
      )
    levels = tf.cast(levels, self._dtype)
    noise = tf.convert_to_tensor(noise, self._dtype)
    rank = tf.TensorShape(noise.shape).rank
    if rank == 4:
      return dequantization.bits_per_dim(
        self._log_weights(levels, noise, labels),
        self._num_dims,
        self._num_bins,
      )
    if rank is not None and rank != 5:
      raise ValueError(
        f"DiscreteFlow.bits_per_dim: `noise` must be [B, H, W, C] or K "
        f"draws each, [B, K, H, W, C]; got shape {noise.shape}."
      )
    # The rank may be unknown in a traced step: the draws are what is left
    # of the size once the batch and the image are divided out.
    flat_noise = tf.reshape(noise, [-1, *self._image_shape])
    batch = tf.shape(levels)[0]
    draws = tf.shape(flat_noise)[0] // batch
    if labels is not None:
      labels = tf.repeat(labels, draws, axis=0)
    log_weights = self._log_weights(
      tf.repeat(levels, draws, axis=0), flat_noise, labels
    )
    return dequantization.importance_weighted_bits_per_dim(
      tf.reshape(log_weights, [batch, draws]), self._num_dims, self._num_bins
    )

  def _log_weights(self, levels, noise, labels):
    """`log p(x) - log q(u | k)` `[N]` of `levels` `[N, H, W, C]`
    dequantised from `noise` of their shape (`dequantize`; `log q = 0` for
    uniform noise), `labels` one per image or `None`."""
    x, log_q = self.dequantize(levels, noise)
    log_p = self.log_prob(x, labels)
    return log_p if log_q is None else log_p - log_q
