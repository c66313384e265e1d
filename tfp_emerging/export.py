"""Export a trained flow as a TensorFlow SavedModel with two signatures.

    export(model, "exported/")                       # a FlowModel (or a flow)
    loaded = tf.saved_model.load("exported/")        # no tfp_emerging needed
    loaded.signatures["log_prob"](x=x)["log_prob"]   # [N]
    loaded.signatures["sample"](n=tf.constant(16), temperature=tf.constant(.7),
                                seed=tf.constant([1, 2]))["images"]

* `log_prob(x)`: `x` float32 `[N, H, W, C]` in the flow's domain
  (`[-0.5, 0.5)` for `FlowModel`'s dequantised pixels); returns `log_prob`
  `[N]` (nats) and `bits_per_dim` `[N]` (for `FlowModel`s: `x` read as
  dequantised pixels, see `tfp_emerging.flows.dequantization`). Cost: one
  density pass (convolutions only).
* `sample(n, temperature, seed)`: `n` int32 scalar, `temperature` float32
  scalar (Glow's: the base Gaussian's standard deviation), `seed` int32 `[2]`
  (stateless: the same seed gives the same samples). Returns `x` float32
  `[n, H, W, C]` and, for `FlowModel`s, `images` int32 `[n, H, W, C]`, `x`
  quantised to `0..num_bins-1`. Cost: one sampling pass (the solves).

The same functions are attributes of the loaded object (`loaded.log_prob(x)`,
`loaded.sample(n, temperature, seed)`); the flow's variables are saved with
their trained values. The SavedModel holds only TensorFlow ops, so serving
it needs TensorFlow alone.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_emerging.flows import dequantization

__all__ = ["FlowExport", "export"]


class FlowExport(tf.Module):
  """The exported object: a flow's `log_prob` and `sample` as `tf.function`s."""

  def __init__(self, flow, base_distribution=None, num_bins=None,
               name="flow_export"):
    """Wraps `flow` (a bijector latent -> image on events `[H, W, C]`).

    Args:
      flow: e.g. `tfp_emerging.flows.Glow`.
      base_distribution: default `flow.base_distribution()`.
      num_bins: the pixel levels of the data, or `None` for a flow on
        continuous data (then no `bits_per_dim` and no `images`).
      name: the module's name.
    """
    super().__init__(name=name)
    if base_distribution is None:
      base_distribution = flow.base_distribution()
    self.flow = flow
    self._distribution = tfp.distributions.TransformedDistribution(
        base_distribution, flow)
    self._event_shape = [int(s) for s in base_distribution.event_shape]
    self._num_bins = num_bins
    dtype = flow.dtype
    self.log_prob = tf.function(self._log_prob, input_signature=[
        tf.TensorSpec([None, *self._event_shape], dtype, name="x")])
    self.sample = tf.function(self._sample, input_signature=[
        tf.TensorSpec([], tf.int32, name="n"),
        tf.TensorSpec([], dtype, name="temperature"),
        tf.TensorSpec([2], tf.int32, name="seed")])

  def _log_prob(self, x):
    log_prob = self._distribution.log_prob(x)
    result = {"log_prob": log_prob}
    if self._num_bins is not None:
      result["bits_per_dim"] = dequantization.bits_per_dim(
          log_prob, int(np.prod(self._event_shape)), self._num_bins)
    return result

  def _sample(self, n, temperature, seed):
    z = tf.random.stateless_normal(
        tf.concat([[n], self._event_shape], axis=0), seed=seed,
        dtype=self.flow.dtype)
    x = self.flow.forward(z * temperature)
    result = {"x": x}
    if self._num_bins is not None:
      result["images"] = dequantization.quantize(x, self._num_bins)
    return result


def export(model, path):
  """Writes `model` (a `FlowModel` or a flow) as a SavedModel to `path`.

  Returns:
    The `FlowExport` that was saved.
  """
  if hasattr(model, "flow") and hasattr(model, "distribution"):
    module = FlowExport(model.flow, model.distribution.distribution,
                        num_bins=model.num_bins)
  else:
    module = FlowExport(model)
  tf.saved_model.save(module, path, signatures={
      "log_prob": module.log_prob, "sample": module.sample})
  return module
