"""Glow's learned priors, written as affine maps of standard normal noise.

A prior `N(mu, sigma^2)` on `h` is the affine bijection `h = mu + sigma eps`
of `eps ~ N(0, 1)`, so a flow that includes these maps has a standard normal
base. Each prior exposes both directions with their log-determinants:

* `standardize`: `eps = (h - mu) / sigma`, log-det `-sum log sigma`
  (the density direction);
* `unstandardize`: `h = mu + sigma eps`, log-det `+sum log sigma`
  (the sampling direction).

Both cost `O(N H W C)` plus, for the conditional prior, one convolution.
"""

import tensorflow as tf

from tfp_emerging.ops import checks

__all__ = ["ConditionalNormalPrior", "LearnedNormalPrior"]


def _sum_over_event(values):
  return tf.reduce_sum(values, axis=[-3, -2, -1])


class ConditionalNormalPrior(tf.Module):
  """Glow's split prior `N(mu(h_1), sigma(h_1)^2)` on the split-off half `h_2`.

  `[mu, log sigma] = conv_{k x k}(h_1; W) + b`, with `W` (`[k, k, C_1,
  2 C_2]`) and `b` (`[2 C_2]`) starting at zero, so a new prior is
  `N(0, 1)`. `mu` is channels `0::2` of the convolution, `log sigma`
  channels `1::2`. Shapes: `h_1` `[N, H, W, C_1]`, `h_2` and `eps`
  `[N, H, W, C_2]`; log-dets `[N]`. Cost `O(N H W k^2 C_1 C_2)`.
  """

  def __init__(self, condition_channels, channels, kernel_size=3,
               dtype=tf.float32, name="conditional_normal_prior"):
    super().__init__(name=name)
    condition_channels = checks.positive_int(condition_channels,
                                             "condition_channels")
    self.channels = checks.positive_int(channels, "channels")
    k = checks.odd_kernel_size(kernel_size)
    dtype = checks.float_dtype(dtype)
    with self.name_scope:
      self.kernel = tf.Variable(
          tf.zeros([k, k, condition_channels, 2 * self.channels], dtype),
          name="kernel")
      self.bias = tf.Variable(tf.zeros([2 * self.channels], dtype),
                              name="bias")

  def mean_and_log_scale(self, condition):
    """`(mu, log sigma)`, each `[N, H, W, C_2]`, from `h_1`."""
    out = tf.nn.convolution(condition, self.kernel, padding="SAME") + self.bias
    return out[..., 0::2], out[..., 1::2]

  def standardize(self, h, condition):
    """`eps = (h_2 - mu) / sigma` and its log-det `-sum log sigma`."""
    mean, log_scale = self.mean_and_log_scale(condition)
    return (h - mean) * tf.exp(-log_scale), -_sum_over_event(log_scale)

  def unstandardize(self, eps, condition):
    """`h_2 = mu + sigma eps` and its log-det `+sum log sigma`."""
    mean, log_scale = self.mean_and_log_scale(condition)
    return mean + eps * tf.exp(log_scale), _sum_over_event(log_scale)


class LearnedNormalPrior(tf.Module):
  """Glow's top prior: `N(mu, sigma^2)` per channel, learned, starting at N(0, 1).

  `mu` and `log sigma` are `[C]` variables shared by every pixel. Shapes:
  `h` and `eps` `[N, H, W, C]`, log-dets `[N]`. Cost `O(N H W C)`.
  """

  def __init__(self, channels, dtype=tf.float32, name="learned_normal_prior"):
    super().__init__(name=name)
    self.channels = checks.positive_int(channels, "channels")
    dtype = checks.float_dtype(dtype)
    with self.name_scope:
      self.loc = tf.Variable(tf.zeros([self.channels], dtype), name="loc")
      self.log_scale = tf.Variable(tf.zeros([self.channels], dtype),
                                   name="log_scale")

  def _log_det(self, h):
    shape = tf.shape(h)
    pixels = tf.cast(shape[-3] * shape[-2], h.dtype)
    return tf.fill(shape[:-3], pixels * tf.reduce_sum(self.log_scale))

  def standardize(self, h, condition=None):
    """`eps = (h - mu) / sigma` and its log-det `-H W sum log sigma`."""
    del condition  # Unconditional.
    return (h - self.loc) * tf.exp(-self.log_scale), -self._log_det(h)

  def unstandardize(self, eps, condition=None):
    """`h = mu + sigma eps` and its log-det `+H W sum log sigma`."""
    del condition  # Unconditional.
    return self.loc + eps * tf.exp(self.log_scale), self._log_det(eps)
