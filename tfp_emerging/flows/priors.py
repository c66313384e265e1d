"""Glow's learned priors, written as affine maps of standard normal noise.

A prior `N(mu, sigma^2)` on `h` is the affine bijection `h = mu + sigma eps`
of `eps ~ N(0, 1)`, so a flow that includes these maps has a standard normal
base. Each prior exposes both directions with their log-determinants:

* `standardize`: `eps = (h - mu) / sigma`, log-det `-sum log sigma`
  (the density direction);
* `unstandardize`: `h = mu + sigma eps`, log-det `+sum log sigma`
  (the sampling direction).

Class-conditional priors (`num_classes=K`, as in Glow's class-conditional
model) add to `[mu, log sigma]` a learned linear map of the label's one-hot
vector `y` (`labels`, `[N, K]`): a per-class term `y E`, `E` starting at
zero so that a new prior is the unconditional one. Floating `labels` other
than one-hot mix the classes' terms linearly.

Both directions cost `O(N H W C)` plus, for the split prior, one convolution
and, with labels, one `[N, K] x [K, 2 C]` product.
"""

from __future__ import annotations

import tensorflow as tf

from tfp_emerging.ops import checks

__all__ = ["ConditionalNormalPrior", "LearnedNormalPrior"]


def _sum_over_event(values):
  return tf.reduce_sum(values, axis=[-3, -2, -1])


def _class_embedding(num_classes, width, dtype, name):
  """A zero `[K, width]` variable, or `None` for an unconditional prior."""
  if num_classes is None:
    return None
  num_classes = checks.positive_int(num_classes, "num_classes")
  return tf.Variable(tf.zeros([num_classes, width], dtype), name=name)


def _class_term(embedding, labels):
  """`labels E` as `[N, 1, 1, width]`, for broadcasting over pixels."""
  if (embedding is None) != (labels is None):
    raise ValueError(
      "`labels` must be given exactly when the prior is class-conditional "
      f"(num_classes set); the prior is "
      f"{'un' if embedding is None else ''}conditional."
    )
  term = tf.matmul(labels, embedding)
  return tf.reshape(term, [-1, 1, 1, embedding.shape[-1]])


class _AffinePrior(tf.Module):
  """A prior `h = mu + sigma eps`: both directions from the subclass's
  `_affine(h, condition, labels)`, which gives `(mu, log sigma, log-det of
  unstandardize)` for events `h` (or `eps`) `[N, H, W, C]`."""

  def _affine(self, h, condition, labels):
    raise NotImplementedError

  def standardize(
    self,
    h: tf.Tensor,
    condition: tf.Tensor | None = None,
    labels: tf.Tensor | None = None,
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`eps = (h - mu) / sigma` and its log-det, `-sum log sigma` over the
    event."""
    loc, log_scale, log_det = self._affine(h, condition, labels)
    return (h - loc) * tf.exp(-log_scale), -log_det

  def unstandardize(
    self,
    eps: tf.Tensor,
    condition: tf.Tensor | None = None,
    labels: tf.Tensor | None = None,
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`h = mu + sigma eps` and its log-det, `+sum log sigma` over the
    event."""
    loc, log_scale, log_det = self._affine(eps, condition, labels)
    return loc + eps * tf.exp(log_scale), log_det


class ConditionalNormalPrior(_AffinePrior):
  """Glow's split prior `N(mu(h_1, y), sigma(h_1, y)^2)` on the split-off `h_2`.

  `[mu, log sigma] = conv_{k x k}(h_1; W) + b (+ y E)`, with `W` (`[k, k,
  C_1, 2 C_2]`), `b` (`[2 C_2]`) and, when class-conditional, `E`
  (`class_bias`, `[K, 2 C_2]`, the same for every pixel) starting at zero,
  so a new prior is `N(0, 1)`. `mu` is channels `0::2`, `log sigma`
  channels `1::2`. Shapes: `h_1` `[N, H, W, C_1]`, `h_2` and `eps`
  `[N, H, W, C_2]`, `labels` `y` `[N, K]`; log-dets `[N]`. Cost
  `O(N H W k^2 C_1 C_2)`.
  """

  def __init__(
    self,
    condition_channels: int,
    channels: int,
    kernel_size: int = 3,
    num_classes: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    name: str = "conditional_normal_prior",
  ) -> None:
    super().__init__(name=name)
    condition_channels = checks.positive_int(
      condition_channels, "condition_channels"
    )
    self.channels = checks.positive_int(channels, "channels")
    k = checks.odd_kernel_size(kernel_size)
    dtype = checks.float_dtype(dtype)
    with self.name_scope:
      self.kernel = tf.Variable(
        tf.zeros([k, k, condition_channels, 2 * self.channels], dtype),
        name="kernel",
      )
      self.bias = tf.Variable(tf.zeros([2 * self.channels], dtype), name="bias")
      self.class_bias = _class_embedding(
        num_classes, 2 * self.channels, dtype, "class_bias"
      )

  def mean_and_log_scale(
    self, condition: tf.Tensor, labels: tf.Tensor | None = None
  ) -> tuple[tf.Tensor, tf.Tensor]:
    """`(mu, log sigma)`, each `[N, H, W, C_2]`, from `h_1` (and `y`)."""
    out = tf.nn.convolution(condition, self.kernel, padding="SAME") + self.bias
    if self.class_bias is not None or labels is not None:
      out += _class_term(self.class_bias, labels)
    return out[..., 0::2], out[..., 1::2]

  def _affine(self, h, condition, labels):
    """`h_2`'s `mu`, `log sigma` given `h_1` (`condition`, required)."""
    del h  # Its prior depends on h_1 only.
    if condition is None:
      raise ValueError(
        "`condition` (h_1, the channels kept) must be given to a split prior."
      )
    mean, log_scale = self.mean_and_log_scale(condition, labels)
    return mean, log_scale, _sum_over_event(log_scale)


class LearnedNormalPrior(_AffinePrior):
  """Glow's top prior: `N(mu (+ y E_mu), exp(log sigma (+ y E_sigma))^2)`.

  `mu` (`loc`) and `log sigma` (`log_scale`) are `[C]` variables shared by
  every pixel, starting at `N(0, 1)`. When class-conditional, the label's
  one-hot `y` (`labels`, `[N, K]`) adds `y E_mu` and `y E_sigma`
  (`class_loc`, `class_log_scale`, each `[K, C]`, starting at zero): Glow's
  class-conditional top prior, a learned per-class mean and scale. Shapes:
  `h` and `eps` `[N, H, W, C]`, log-dets `[N]`. Cost `O(N H W C)`.
  """

  def __init__(
    self,
    channels: int,
    num_classes: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    name: str = "learned_normal_prior",
  ) -> None:
    super().__init__(name=name)
    self.channels = checks.positive_int(channels, "channels")
    dtype = checks.float_dtype(dtype)
    with self.name_scope:
      self.loc = tf.Variable(tf.zeros([self.channels], dtype), name="loc")
      self.log_scale = tf.Variable(
        tf.zeros([self.channels], dtype), name="log_scale"
      )
      self.class_loc = _class_embedding(
        num_classes, self.channels, dtype, "class_loc"
      )
      self.class_log_scale = _class_embedding(
        num_classes, self.channels, dtype, "class_log_scale"
      )

  def _affine(self, h, condition, labels):
    """`(mu, log sigma, log-det)`: `[C]`, `[C]`, `[N]`, or per image."""
    del condition  # The top prior has no h_1.
    shape = tf.shape(h)
    pixels = tf.cast(shape[-3] * shape[-2], h.dtype)
    if self.class_loc is None and labels is None:
      return (
        self.loc,
        self.log_scale,
        tf.fill(shape[:-3], pixels * tf.reduce_sum(self.log_scale)),
      )
    loc = self.loc + _class_term(self.class_loc, labels)
    log_scale = self.log_scale + _class_term(self.class_log_scale, labels)
    return loc, log_scale, pixels * _sum_over_event(log_scale)
