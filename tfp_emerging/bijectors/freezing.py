"""Frozen weights: a flow with everything that depends only on its weights
computed once, for sampling (`freeze`)."""

from __future__ import annotations

from collections.abc import Callable
import functools
from typing import Any

import tensorflow as tf
from tensorflow_probability import bijectors as tfb
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.bijectors import invert as invert_lib

from tfp_emerging.bijectors.image_bijector import PixelwiseLogDet

__all__ = ["FrozenBijector", "FrozenFunction", "FrozenLayer", "freeze"]


def freeze(bijector: tfb.Bijector) -> tfb.Bijector:
  """`bijector` with its weights as they are now, for sampling.

  Returns a bijector with the same `forward`, `inverse` and log-dets (to
  float round-off) in which every quantity that depends only on the weights
  is computed once, here, instead of in every call. With `M = N H W` pixels
  per call:

  * `Conv1x1`: `W`, `W^{-1}` and `log|det W|` (`O(C^3)` once); then forward
    `y = x W` and inverse `x = y W^{-1}`, one matmul each, `O(M C^2)`,
    where the layer itself rebuilds `W` from its factors (`"qr"`, `"lu"`,
    `O(C^3)` per call) and solves triangular systems, or factorises `W`
    (`"plain"`: a QR per inverse and log-det). `W^{-1}` is the layer's own
    inverse of the identity's rows, so the frozen inverse agrees with the
    solves to `O(kappa(W) eps)`;
  * `ActNorm` (initialised): `b = bias`, `s = exp(log_scale)`, `1 / s =
    exp(-log_scale)` and `sum_c log_scale[c]`; forward `(x + b) s`,
    inverse `y (1 / s) - b`, `O(M C)`, without the `exp`s and the
    initialisation check;
  * `AutoregressiveConv2D`, `EmergingConv2D`: the masked kernels, their
    centre taps' inverses and folded taps (`O(m^2 C^2 + C^3)`), the
    equivalent kernel (and, for `solver="fft"`, the inverse filter, once
    per image size), see their `_frozen`; the forward convolutions and the
    solve's sequential steps still run per call;
  * any other bijector with a `_frozen()` method (this package's periodic
    convolution: its per-frequency inverses and log-det, `O(H W C^3)`, once
    it has one): its `_frozen()`;
  * `tfb.Chain` and `tfb.Invert` (exactly those classes, not subclasses):
    rebuilt around their frozen parts, with the same names, so that
    keyword arguments routed by name (a class-conditional part's
    `conditional_input`) still reach their bijectors;
  * `tfp_emerging.flows.Glow` (conditional or not): every layer of every
    step frozen; the couplings and priors, which depend on the data, as
    they are, still taking `conditional_input`;
  * every other bijector (TFP's, `AffineCoupling`, an uninitialised
    `ActNorm`): itself.

  Log-dets of the frozen layers cost `O(1)` per call (`H W` times the
  frozen log-det per pixel). Freezing costs one evaluation of the frozen
  quantities, about one call's setup; a bijector in which nothing changes
  is returned itself, so `freeze` costs nothing on a flow that has nothing
  to freeze.

  The frozen bijector holds tensors, not variables: it does not see later
  changes of the weights (an optimiser step, `assign`), and no gradient
  reaches the frozen layers' variables through it (those of the parts left
  as they are still get theirs). Freeze for sampling, after training, and
  freeze again after the weights change; `FlowModel.sample` does both by
  itself (`FrozenFunction`), and `tfp_emerging.export` freezes at export
  time (docs/layers.md, "Frozen weights", says when to freeze by hand).
  Frozen eagerly, the values are computed once; frozen inside a
  `tf.function`, once per trace and call.

  Args:
    bijector: a TFP bijector.

  Returns:
    The frozen bijector, or `bijector` itself.

  Raises:
    ValueError: `bijector` is not a TFP bijector.
  """
  if not isinstance(bijector, tfb.Bijector):
    raise ValueError(f"`bijector` must be a TFP bijector; got {bijector!r}.")
  # `tfb.Chain(...)` makes a `_Chain` when a part is not a CompositeTensor;
  # either is rebuilt by `tfb.Chain`, which picks the class again.
  if type(bijector) in (chain_lib._Chain, tfb.Chain):
    parts = [freeze(part) for part in bijector.bijectors]
    if all(new is old for new, old in zip(parts, bijector.bijectors)):
      return bijector
    return tfb.Chain(
      parts,
      validate_args=bijector.validate_args,
      validate_event_size=bijector._validate_event_size,
      name=_same_name(bijector),
    )
  if type(bijector) in (invert_lib._Invert, tfb.Invert):
    inner = freeze(bijector.bijector)
    if inner is bijector.bijector:
      return bijector
    return tfb.Invert(
      inner, validate_args=bijector.validate_args, name=_same_name(bijector)
    )
  frozen = getattr(bijector, "_frozen", None)
  return bijector if frozen is None else frozen()


class FrozenFunction:
  """`fn(freeze(flow), *args)` as a `tf.function`, never on stale weights.

  The first call freezes `flow` (`freeze`) and traces `fn` on the frozen
  flow; it then finds the variables freezing folded into constants: those
  of `flow.variables` that the traced graph does not read (the parts left
  as they are, e.g. the couplings, read theirs at every call and need no
  check), and keeps a copy of their values. Every later call first compares
  them with the copy, in one traced `reduce_all(equal)` (`O(P)` for `P`
  folded weights: small beside a sampling pass, which reads every coupling
  weight and runs the solves). So whatever changed a weight (an optimiser
  step, a user's `assign`, `load_weights`, a checkpoint restored) is seen,
  and no stale value is ever served:

  * weights unchanged since freezing: the frozen flow's trace;
  * changed, and changed again since the previous call (e.g. one sample
    per training epoch): `fn(flow, *args)`, the flow itself, traced once
    for all such calls, so that training between calls never costs a new
    trace;
  * changed, but as they were at the previous call (sampling again from
    weights that stay put): freezes and traces anew, then the first case.

  A weight assigned the value it had is no change. (A NaN weight differs
  from itself: calls then run the flow itself, correctly.)

  Cost: at most two traces of `fn` per stretch of unchanged weights (the
  flow itself, once for good, and the frozen flow); every call pays the
  check, and a call after a change a copy of the `P` folded weights.

  Args:
    flow: the flow to freeze (any TFP bijector).
    fn: `fn(flow, *args)`, traceable, for `flow` frozen or not.
  """

  def __init__(self, flow: tfb.Bijector, fn: Callable[..., Any]):
    self._flow = flow
    self._fn = fn
    self._live = tf.function(functools.partial(fn, flow), reduce_retracing=True)
    # The `_FrozenTrace` of the last freezing.
    self._frozen: _FrozenTrace | None = None
    # The folded weights at the last call served live.
    self._seen: list[Any] | None = None
    self._used = None  # The flow the last call ran.

  @property
  def frozen(self) -> tfb.Bijector | None:
    """The frozen flow the last call ran (`None` before the first call, or
    when it ran the flow itself)."""
    return self._used

  @property
  def folded_variables(self) -> list[tf.Variable]:
    """The variables whose values the frozen flow holds as constants, which
    every call compares with their copies (`[]` before the first call)."""
    return [] if self._frozen is None else list(self._frozen.folded)

  def __call__(self, *args: Any) -> Any:
    trace = self._frozen
    if trace is not None and not trace.matches():
      if self._seen is None or not trace.matches(self._seen):
        self._seen = trace.values()  # Changing: the flow itself.
        self._used = None
        return self._live(*args)
      trace = None  # As at the previous call: freeze again.
    if trace is None:
      trace = self._frozen = _FrozenTrace(self._flow, self._fn)
      self._seen = None
    self._used = trace.flow
    return trace(*args)


class _FrozenTrace:
  """One frozen flow, the `tf.function` of `fn` on it, and the comparison
  of the weights it folded with copies (`FrozenFunction`)."""

  def __init__(self, flow, fn):
    self._original = flow
    self.flow = freeze(flow)
    self._function = tf.function(
      functools.partial(fn, self.flow), reduce_retracing=True
    )
    self.folded: tuple[Any, ...] = ()
    self._traced = False
    self._copies = None
    self._matches = None

  def __call__(self, *args):
    if not self._traced:  # First call: trace, then copy the folded.
      live = {
        id(v) for v in self._function.get_concrete_function(*args).variables
      }
      self.folded = tuple(
        v for v in self._original.variables if id(v) not in live
      )
      self._traced = True
      self._copies = self.values()
      self._matches = tf.function(
        lambda copies: functools.reduce(
          tf.logical_and,
          [tf.reduce_all(tf.equal(v, c)) for v, c in zip(self.folded, copies)],
          tf.constant(True),
        )
      )
    return self._function(*args)

  def values(self):
    """Copies of the folded weights' values now."""
    return [tf.identity(v) for v in self.folded]

  def matches(self, copies=None):
    """Whether the folded weights equal `copies` (default: their values when
    frozen); `True` before the first call has traced."""
    if self._matches is None:
      return True
    return bool(self._matches(self._copies if copies is None else copies))


def _same_name(bijector):
  """A `name` argument that gives a new bijector exactly `bijector.name`:
  a name scope (trailing `/`) is taken as it is, never made unique."""
  return f"{bijector.name}/"


class FrozenBijector(tfb.Bijector):
  """Base of a layer with frozen weights (`freeze`): holds the layer
  (`layer`) and takes its dtype, `validate_args` and name (`frozen_` and
  the layer's); its Jacobian is constant, as the layer's. A subclass
  computes its frozen values before calling `__init__`."""

  def __init__(self, layer: tfb.Bijector):
    self._layer = layer
    super().__init__(
      forward_min_event_ndims=3,
      is_constant_jacobian=True,
      dtype=layer.dtype,
      validate_args=layer.validate_args,
      parameters=dict(layer=layer),
      name=f"frozen_{layer.name}",
    )

  @property
  def layer(self) -> tfb.Bijector:
    """The layer frozen (its variables, read when frozen)."""
    return self._layer


class FrozenLayer(PixelwiseLogDet, FrozenBijector):
  """Base of a frozen layer whose every pixel has the same log-det.

  Holds `per_pixel`, the layer's log-det per pixel computed when frozen:
  `log|det J|` of events `[..., H, W, C]` is `H W per_pixel`, shaped like
  the batch, `O(1)` per call (`PixelwiseLogDet`). A subclass computes its
  other frozen values before calling `__init__` and defines `_forward` and
  `_inverse`.
  """

  def __init__(self, layer: tfb.Bijector, per_pixel: tf.Tensor):
    self._per_pixel = tf.identity(per_pixel)
    super().__init__(layer)

  @property
  def channels(self) -> int:
    """The layer's channels `C`."""
    return self._layer.channels

  def _per_pixel_log_det(self, x=None):
    del x
    return self._per_pixel
