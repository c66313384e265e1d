"""Bijectors with one deliberate defect, to show the contract's checks fail.

A defect is a mixin put in front of a registered layer's class (`mutate`,
`mutant`), so that one defect breaks several layer types. The `Cond*`
defects change a conditional `AffineCoupling`'s one-pass methods.
"""

import dataclasses
import functools

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from tests.testlib import registry

CASES = {case.name: case for case in registry.CASES}
AR = "autoregressive-k3-d1-top_left-auto"
EM = "emerging-k3-d1-auto"
PER = "periodic-k3-5x6-fft"
LU = "conv1x1-lu"
AN = "actnorm"
AC = "affine-coupling-k3"
F32, F64 = tf.float32, tf.float64


@functools.cache
def _mutant_class(defect, base):
  return type(f"{defect.__name__}{base.__name__}", (defect, base), {})


def mutate(layer, defect):
  """`layer`, its class now a subclass with `defect` in front."""
  layer.__class__ = _mutant_class(defect, type(layer))
  if hasattr(layer, "_add_variables"):
    layer._add_variables()
  return layer


def mutant(defect, case_name):
  """The registered case `case_name` whose layers have `defect` in front."""
  case = CASES[case_name]

  def make(dtype, **overrides):
    return mutate(case.make(dtype, **overrides), defect)

  return dataclasses.replace(
    case, name=f"{defect.__name__}-{case_name}", make=make
  )


# Defects of the maps.


class ForgetsConstant:
  """Both log-dets forget a constant term (consistently with each other)."""

  def _forward_log_det_jacobian(self, x):
    return super()._forward_log_det_jacobian(x) + 0.5

  def _inverse_log_det_jacobian(self, y):
    return super()._inverse_log_det_jacobian(y) - 0.5


class InconsistentInverseLogDet:
  """The inverse's log-det is off by a constant; the forward's is right."""

  def _inverse_log_det_jacobian(self, y):
    return super()._inverse_log_det_jacobian(y) + 0.5


class WrongInverse:
  """The inverse is 1% off (a wrong scale in a solve)."""

  def _inverse(self, y):
    return super()._inverse(y) * 1.01


class BoundedRange:
  """`forward` maps onto a bounded set, through `2 tanh(x / 2)`; the inverse
  is exact there and NaN outside: only a round trip from `y` sees it."""

  def _forward(self, x):
    return super()._forward(2.0 * tf.tanh(x / 2.0))

  def _inverse(self, y):
    return 2.0 * tf.atanh(super()._inverse(y) / 2.0)


class KeepsFirstImage:
  """`forward` returns the first image of the batch only."""

  def _forward(self, x):
    return super()._forward(x)[:1]


class TraceDependent:
  """Gives another answer when traced (Python state read at trace time)."""

  def _forward(self, x):
    y = super()._forward(x)
    return y if tf.executing_eagerly() else y * 1.01

  def _inverse(self, y):
    x = super()._inverse(y)
    return x if tf.executing_eagerly() else x * 1.01


class XlaDependent:
  """Takes another (wrong) path in the inverse when compiled with XLA."""

  def _inverse(self, y):
    x = super()._inverse(y)
    graph = tf.compat.v1.get_default_graph()
    in_xla = control_flow_util.GraphOrParentsInXlaContext(graph)
    return x * 1.01 if in_xla else x


class GradientChangesUnderXla:
  """Same values everywhere; its kernel's gradient is 1% off when traced."""

  def masked_kernel(self):
    kernel = super().masked_kernel()
    if tf.executing_eagerly():
      return kernel
    return 1.01 * kernel - tf.stop_gradient(0.01 * kernel)


class LoopInInverse:
  """Sends its inverse through a `while_loop` with a `TensorArray`.

  The values compile with XLA; the loop's own gradient does not (its
  accumulators have no fixed size), the failure of issue 12.
  """

  def _inverse(self, y):
    x = super()._inverse(y)
    rows = tf.shape(x)[0]
    _, copy = tf.while_loop(
      lambda i, _: i < rows,
      lambda i, ta: (i + 1, ta.write(i, x[i])),
      (0, tf.TensorArray(x.dtype, size=rows)),
    )
    return copy.stack()


class ShapeDependent:
  """Wrong when traced without a static shape (a static-shape code path)."""

  def _forward(self, x):
    y = super()._forward(x)
    return y if x.shape.is_fully_defined() else y * 1.01


# Defects of the gradients.


class DetachedForward:
  """`forward` passes no gradient on to the variables."""

  def _forward(self, x):
    return tf.stop_gradient(super()._forward(x))


class ZeroGradientInverse:
  """The inverse's gradient with respect to everything is zero."""

  def _inverse(self, y):
    x = super()._inverse(y)
    return tf.stop_gradient(x) + 0.0 * x


class NanGradientInverse:
  """The inverse's value is right, its gradient NaN (`tf.norm` at 0)."""

  def _inverse(self, y):
    x = super()._inverse(y)
    return x + tf.norm(0.0 * x)


# Defects of the shapes.


def _flattened(z):
  return tf.reshape(z, [-1, *z.shape[-3:]])


class FlattensForward:
  def _forward(self, x):
    return _flattened(super()._forward(x))


class FlattensInverse:
  def _inverse(self, y):
    return _flattened(super()._inverse(y))


class SumsForwardLogDet:
  def _forward_log_det_jacobian(self, x):
    return tf.reduce_sum(super()._forward_log_det_jacobian(x))


class SumsInverseLogDet:
  def _inverse_log_det_jacobian(self, y):
    return tf.reduce_sum(super()._inverse_log_det_jacobian(y))


# Defects of the input checks.


class Lenient:
  """No checks at all: the identity in both directions."""

  def _forward(self, x):
    return tf.identity(x)

  def _inverse(self, y):
    return tf.identity(y)


class CastsInput:
  """Casts an input of another dtype instead of rejecting it."""

  def forward(self, x, *args, **kwargs):
    return super().forward(tf.cast(x, self.dtype), *args, **kwargs)

  def inverse(self, y, *args, **kwargs):
    return super().inverse(tf.cast(y, self.dtype), *args, **kwargs)


class VagueErrors:
  """Rejects every input with a message that names nothing."""

  def _forward(self, x):
    raise ValueError("bad input")

  def _inverse(self, y):
    raise ValueError("bad input")


class VagueFiniteness:
  """Rejects a NaN with a message that does not say what is wrong."""

  def _forward(self, x):
    return super()._forward(tf.debugging.check_numerics(x, "bad input"))


class VagueChannelCheck:
  """Asserts the channel count with a message that does not name it."""

  def _forward(self, x):
    with tf.control_dependencies(
      [
        tf.debugging.assert_equal(
          tf.shape(x)[-1], self.channels, message="bad input"
        )
      ]
    ):
      return tf.identity(x)


@functools.cache
def unchecked(method, only_validating=False):
  """A defect: `method` skips every check (the identity, or a zero log-det);
  with `only_validating`, only when the layer has `validate_args=True`."""

  def skipping(self, z):
    if only_validating and not self.validate_args:
      return getattr(super(defect, self), "_" + method)(z)
    if method.endswith("log_det_jacobian"):
      return tf.zeros(tf.shape(z)[:-3], z.dtype)
    return tf.identity(z)  # Not `z`: TFP's cache keys on the tensor.

  suffix = "WhenValidating" if only_validating else ""
  defect = type(f"Unchecked_{method}{suffix}", (), {"_" + method: skipping})
  return defect


# Conditional layers (`check_conditional`, `check_conditional_modes`): a
# conditional AffineCoupling, whose defects change its one-pass methods.


class CondWrongInverse:
  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return x * 1.01, log_dets


class CondBoundedRange:
  """As `BoundedRange`: exact on the forward's bounded range only."""

  def _augmented_forward(self, x, **kwargs):
    return super()._augmented_forward(2.0 * tf.tanh(x / 2.0), **kwargs)

  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return 2.0 * tf.atanh(x / 2.0), log_dets


def _shifted(log_dets, fldj=0.0, ildj=0.0):
  return {"fldj": log_dets["fldj"] + fldj, "ildj": log_dets["ildj"] + ildj}


class CondForgetsConstant:
  def _augmented_forward(self, x, **kwargs):
    y, log_dets = super()._augmented_forward(x, **kwargs)
    return y, _shifted(log_dets, 0.5, -0.5)

  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return x, _shifted(log_dets, 0.5, -0.5)


class CondInconsistentForwardLogDet:
  """The forward pass's log-det is off; the inverse pass's (which `log_prob`
  uses) is right."""

  def _augmented_forward(self, x, **kwargs):
    y, log_dets = super()._augmented_forward(x, **kwargs)
    return y, _shifted(log_dets, 0.5, -0.5)


class CondIgnoresCondition:
  """Every condition acts as zeros."""

  def _augmented_forward(self, x, conditional_input):
    return super()._augmented_forward(
      x, conditional_input=tf.zeros_like(conditional_input)
    )

  def _augmented_inverse(self, y, conditional_input):
    return super()._augmented_inverse(
      y, conditional_input=tf.zeros_like(conditional_input)
    )


def _memo(layer):
  return layer.__dict__.setdefault("_defect_memo", {})


class LogDetMemoIgnoresCondition:
  """Above TFP's cache (which keys on the condition too): remembers the
  log-det of each input's first `forward`, whatever the condition."""

  def forward(self, x, **kwargs):
    _memo(self).setdefault(
      x.ref(), super().forward_log_det_jacobian(x, event_ndims=3, **kwargs)
    )
    return super().forward(x, **kwargs)

  def forward_log_det_jacobian(self, x, event_ndims=None, **kwargs):
    if x.ref() in _memo(self):
      return _memo(self)[x.ref()]
    return super().forward_log_det_jacobian(x, event_ndims, **kwargs)


class InverseMemoIgnoresCondition:
  """Remembers the first input of each forward output, whatever the
  condition."""

  def _augmented_forward(self, x, **kwargs):
    y, log_dets = super()._augmented_forward(x, **kwargs)
    _memo(self).setdefault(y.ref(), x)
    return y, log_dets

  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return _memo(self).get(y.ref(), x), log_dets


class ExtraVariable:
  """Gets a trainable variable `extra` (after construction, `mutate`) that
  `_use` puts into the inverse's output with no effect on its value: the
  gradients with respect to the input, and so the Jacobians, stay right."""

  def _add_variables(self):
    self.extra = tf.Variable(tf.ones([], self.dtype), name="extra")

  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return x + self._use(self.extra), log_dets


class CondUnusedVariable(ExtraVariable):
  def _augmented_inverse(self, y, **kwargs):
    return super(ExtraVariable, self)._augmented_inverse(y, **kwargs)


class CondZeroGradient(ExtraVariable):
  def _use(self, v):
    return 0.0 * v


class CondNanGradient(ExtraVariable):
  def _use(self, v):
    return tf.norm(0.0 * v)  # Its gradient at 0 is NaN.


class CondTraceDependent:
  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    return (x if tf.executing_eagerly() else x * 1.01), log_dets


class CondXlaDependent:
  def _augmented_inverse(self, y, **kwargs):
    x, log_dets = super()._augmented_inverse(y, **kwargs)
    graph = tf.compat.v1.get_default_graph()
    in_xla = control_flow_util.GraphOrParentsInXlaContext(graph)
    return (x * 1.01 if in_xla else x), log_dets


# Defects of the TFP contract: declarations, reconstruction, composite
# tensors, variables.


class UndeclaredConstantJacobian:
  """A linear layer that does not say so (every layer on old main)."""

  @property
  def is_constant_jacobian(self):
    return False


class DeclaredConstantJacobian:
  """A nonlinear layer that claims a constant Jacobian."""

  @property
  def is_constant_jacobian(self):
    return True


class SampleBatchDependent:
  """`forward` is 20% off on batches of rank above 4 only: those of
  `TransformedDistribution.sample`, not those of `mean()` and `mode()`."""

  def _forward(self, x):
    y = super()._forward(x)
    return 1.2 * y if x.shape.rank > 4 else y


class UnbatchedDependent:
  """`forward` is 1% off on an unbatched event (as `tf.vectorized_map`
  gives each call)."""

  def _forward(self, x):
    y = super()._forward(x)
    return 1.01 * y if x.shape.rank == 3 else y


class StoredLikeOldCoupling:
  """Old main's `AffineCoupling`: `()` for the network variables of the
  default network, in `parameters` and in the attribute that composite
  tensor packing reads; the constructor rejects it."""

  def _add_variables(self):
    self._network_variables = ()

  @property
  def parameters(self):
    return dict(super().parameters, network_variables=())


class CopyReinitialises:
  """`copy()` drops the trained values: a new, uninitialised ActNorm."""

  def copy(self, **overrides):
    return super().copy(
      **{"bias": None, "log_scale": None, "initialized": None, **overrides}
    )


class CopyMakesNewVariables:
  """`copy()` gives the same values in new variables (what a training of
  the copy then moves is not the original's)."""

  def copy(self, **overrides):
    return super().copy(bias=tf.Variable(self.bias), **overrides)


class PropertyIsNotTheArgument:
  """A public `log_scale` that is not the constructor's argument (`exp` of
  it): TFP's composite tensor packing reads public attributes first."""

  @property
  def log_scale(self):
    return tf.exp(self._log_scale)


class ReadsFlagWhileTracing:
  """Old main's `ActNorm._initialized_now`: reads the flag eagerly even when
  it is a `tf.function` argument, whose handle is a graph placeholder."""

  def _initialized_now(self):
    with tf.init_scope():
      return bool(self._initialized.numpy())
