"""A mixin for bijectors whose log-det falls out of the same pass as the map."""

from collections.abc import Callable
from typing import Any

from tensorflow_probability.python.internal import cache_util

__all__ = ["OnePassLogDet"]


class OnePassLogDet:
  """Computes the map and its log-det in one pass, sharing TFP's cache.

  A subclass defines `_augmented_forward(x)` and `_augmented_inverse(y)`, each
  returning `(result, {"fldj": ..., "ildj": ...})`. TFP's greedy-attribute
  cache keeps the dict beside the cached pair `(x, y)`, so `forward(x)`
  followed by `forward_log_det_jacobian(x)` (or `inverse` and
  `inverse_log_det_jacobian`, as in `TransformedDistribution.log_prob`) runs
  the pass once. A log-det asked for a tensor that was never transformed runs
  the pass then. Put this class first among the bases.

  Bijector kwargs (e.g. `conditional_input`) go to both `_augmented_*`
  methods; TFP's cache keys include them, so a log-det is reused only for
  the same input and the same kwargs (tensors compared by identity).
  """

  _cache = cache_util.BijectorCacheWithGreedyAttrs(
    forward_name="_augmented_forward", inverse_name="_augmented_inverse"
  )

  # What a subclass defines: `(result, {"fldj": ..., "ildj": ...})`.
  _augmented_forward: Callable[..., tuple[Any, dict[str, Any]]]
  _augmented_inverse: Callable[..., tuple[Any, dict[str, Any]]]

  @staticmethod
  def _log_dets(fldj):
    """The dict an `_augmented_*` method returns for the pair whose
    forward log-det is `fldj`: `{"fldj": fldj, "ildj": -fldj}`."""
    return {"fldj": fldj, "ildj": -fldj}

  def _forward(self, x, **kwargs):
    return self._augmented_forward(x, **kwargs)[0]

  def _inverse(self, y, **kwargs):
    return self._augmented_inverse(y, **kwargs)[0]

  def _forward_log_det_jacobian(self, x, **kwargs):
    cached = self._cache.forward_attributes(x, **kwargs)
    if "fldj" not in cached:
      cached.update(self._augmented_forward(x, **kwargs)[1])
    return cached["fldj"]

  def _inverse_log_det_jacobian(self, y, **kwargs):
    cached = self._cache.inverse_attributes(y, **kwargs)
    if "ildj" not in cached:
      cached.update(self._augmented_inverse(y, **kwargs)[1])
    return cached["ildj"]
