"""The contract's checks fail on broken bijectors: none of them is vacuous.

Every labelled assertion of `tests/testlib/contract.py` is shown failing on a
layer with one deliberate defect. A defect is a mixin put in front of a
registered layer's class (`tests/testlib/mutants.py`), so that one defect
breaks several layer types; a row names the defect, the case, the dtype, the
check and the label of the assertion that must fail (matched in the
`AssertionError`'s message: another assertion failing first does not count).
Where a tolerance depends on the dtype, a defect is shown in float32 and
float64, on different layers.

`AffineCoupling` and `PeriodicConv2D` compute both directions in
`_augmented_forward` and `_augmented_inverse` (`OnePassLogDet`), so defects
of `_forward` and `_inverse` do not reach them; they appear in the log-det
rows, and the coupling as the conditional layer of `check_conditional`'s
rows. TFP's
`TransformedDistribution.log_prob` takes `-fldj(f^-1(y))`, not `ildj(y)`: a
wrong `ildj` is caught by `check_log_det`, not by the distribution check.

One assertion has no row of its own: `check_conditional`'s "the inverse under
another condition gave back x" needs a layer whose conditions give the same
forward at the test's `x` while its round trips, log-dets, `log_prob`s and
caches are all right.
"""

import dataclasses
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import registry
from tests.testlib.mutants import AC
from tests.testlib.mutants import AN
from tests.testlib.mutants import AR
from tests.testlib.mutants import EM
from tests.testlib.mutants import F32
from tests.testlib.mutants import F64
from tests.testlib.mutants import LU
from tests.testlib.mutants import PER
from tests.testlib.mutants import BoundedRange
from tests.testlib.mutants import CastsInput
from tests.testlib.mutants import CondBoundedRange
from tests.testlib.mutants import CondForgetsConstant
from tests.testlib.mutants import CondIgnoresCondition
from tests.testlib.mutants import CondInconsistentForwardLogDet
from tests.testlib.mutants import CondNanGradient
from tests.testlib.mutants import CondTraceDependent
from tests.testlib.mutants import CondUnusedVariable
from tests.testlib.mutants import CondWrongInverse
from tests.testlib.mutants import CondXlaDependent
from tests.testlib.mutants import CondZeroGradient
from tests.testlib.mutants import CopyMakesNewVariables
from tests.testlib.mutants import CopyReinitialises
from tests.testlib.mutants import DeclaredConstantJacobian
from tests.testlib.mutants import DetachedForward
from tests.testlib.mutants import ExtraVariable
from tests.testlib.mutants import FlattensForward
from tests.testlib.mutants import FlattensInverse
from tests.testlib.mutants import ForgetsConstant
from tests.testlib.mutants import GradientChangesUnderXla
from tests.testlib.mutants import InconsistentInverseLogDet
from tests.testlib.mutants import InverseMemoIgnoresCondition
from tests.testlib.mutants import KeepsFirstImage
from tests.testlib.mutants import Lenient
from tests.testlib.mutants import LogDetMemoIgnoresCondition
from tests.testlib.mutants import LoopInInverse
from tests.testlib.mutants import NanGradientInverse
from tests.testlib.mutants import PropertyIsNotTheArgument
from tests.testlib.mutants import ReadsFlagWhileTracing
from tests.testlib.mutants import SampleBatchDependent
from tests.testlib.mutants import ShapeDependent
from tests.testlib.mutants import StoredLikeOldCoupling
from tests.testlib.mutants import SumsForwardLogDet
from tests.testlib.mutants import SumsInverseLogDet
from tests.testlib.mutants import TraceDependent
from tests.testlib.mutants import UnbatchedDependent
from tests.testlib.mutants import UndeclaredConstantJacobian
from tests.testlib.mutants import VagueChannelCheck
from tests.testlib.mutants import VagueErrors
from tests.testlib.mutants import VagueFiniteness
from tests.testlib.mutants import WrongInverse
from tests.testlib.mutants import XlaDependent
from tests.testlib.mutants import ZeroGradientInverse
from tests.testlib.mutants import mutant
from tests.testlib.mutants import mutate
from tests.testlib.mutants import unchecked

# Cases without a mutant.

FROZEN = contract.Case(
  "frozen-actnorm",
  make=lambda dtype, **overrides: registry.actnorm(
    dtype, bias=np.zeros(3), log_scale=np.zeros(3), **overrides
  ),
)
IGNORES_ARGUMENTS = contract.Case(
  "ignores-arguments",
  make=lambda dtype, **overrides: registry.actnorm(dtype),
  bad_arguments=registry.COMMON_BAD_ARGUMENTS,
)


def _vague_make(dtype, **overrides):
  if set(overrides) - {"validate_args"}:
    raise ValueError("invalid")
  return registry.actnorm(dtype, **overrides)


VAGUE_ARGUMENTS = dataclasses.replace(
  IGNORES_ARGUMENTS, name="vague-arguments", make=_vague_make
)


# (case, dtype, check, label of the assertion that must fail).
ROWS = [
  # check_log_det: each of its three comparisons.
  (
    mutant(ForgetsConstant, AR),
    F64,
    contract.check_log_det,
    "fldj(x) against slogdet(J_f(x))",
  ),
  (
    mutant(ForgetsConstant, PER),
    F32,
    contract.check_log_det,
    "fldj(x) against slogdet(J_f(x))",
  ),
  (
    mutant(InconsistentInverseLogDet, AN),
    F32,
    contract.check_log_det,
    "ildj(f(x)) against -fldj(x)",
  ),
  (
    mutant(InconsistentInverseLogDet, AC),
    F64,
    contract.check_log_det,
    "ildj(f(x)) against -fldj(x)",
  ),
  (
    mutant(WrongInverse, LU),
    F64,
    contract.check_log_det,
    "ildj(y) against slogdet(J_f^-1(y))",
  ),
  (
    mutant(WrongInverse, EM),
    F32,
    contract.check_log_det,
    "ildj(y) against slogdet(J_f^-1(y))",
  ),
  # check_round_trip: from x and from y.
  (
    mutant(WrongInverse, AR),
    F32,
    contract.check_round_trip,
    "round trip x -> f -> f^-1",
  ),
  (
    mutant(WrongInverse, EM),
    F64,
    contract.check_round_trip,
    "round trip x -> f -> f^-1",
  ),
  (
    mutant(BoundedRange, LU),
    F64,
    contract.check_round_trip,
    "round trip y -> f^-1 -> f",
  ),
  (
    mutant(BoundedRange, AN),
    F32,
    contract.check_round_trip,
    "round trip y -> f^-1 -> f",
  ),
  # check_modes_agree: tf.function and XLA.
  (
    mutant(TraceDependent, AN),
    F64,
    contract.check_modes_agree,
    "tf.function: forward",
  ),
  (
    mutant(TraceDependent, EM),
    F32,
    contract.check_modes_agree,
    "tf.function: forward",
  ),
  (
    mutant(XlaDependent, LU),
    F32,
    contract.check_modes_agree,
    "jit_compile=True: inverse",
  ),
  (
    mutant(XlaDependent, AN),
    F64,
    contract.check_modes_agree,
    "jit_compile=True: inverse",
  ),
  # check_gradients: each direction, each assertion.
  (
    FROZEN,
    F32,
    contract.check_gradients,
    "the bijector has no trainable variables",
  ),
  (
    mutant(DetachedForward, AR),
    F64,
    contract.check_gradients,
    "through the forward: no gradient reaches",
  ),
  (
    mutant(DetachedForward, AN),
    F32,
    contract.check_gradients,
    "through the forward: no gradient reaches",
  ),
  (
    mutant(ZeroGradientInverse, LU),
    F32,
    contract.check_gradients,
    "through the inverse: zero gradient",
  ),
  (
    mutant(ZeroGradientInverse, AR),
    F64,
    contract.check_gradients,
    "through the inverse: zero gradient",
  ),
  (
    mutant(NanGradientInverse, AR),
    F32,
    contract.check_gradients,
    "through the inverse: non-finite gradient",
  ),
  (
    mutant(NanGradientInverse, EM),
    F64,
    contract.check_gradients,
    "through the inverse: non-finite gradient",
  ),
  # check_gradients_compile.
  (
    mutant(TraceDependent, AN),
    F32,
    contract.check_gradients_compile,
    "Not equal to tolerance",
  ),
  (
    mutant(XlaDependent, LU),
    F64,
    contract.check_gradients_compile,
    "Not equal to tolerance",
  ),
  (
    mutant(GradientChangesUnderXla, AR),
    F32,
    contract.check_gradients_compile,
    "bijector: ",
  ),
  (
    mutant(LoopInInverse, AR),
    F32,
    contract.check_gradients_compile,
    "the gradients do not compile with XLA",
  ),
  # check_batch_shapes: each result.
  (
    mutant(FlattensForward, AR),
    F32,
    contract.check_batch_shapes,
    "forward: shape",
  ),
  (
    mutant(FlattensInverse, EM),
    F64,
    contract.check_batch_shapes,
    "inverse: shape",
  ),
  (
    mutant(SumsForwardLogDet, LU),
    F64,
    contract.check_batch_shapes,
    "fldj: shape",
  ),
  (
    mutant(SumsInverseLogDet, AC),
    F32,
    contract.check_batch_shapes,
    "ildj: shape",
  ),
  # check_transformed_distribution: the sample's shape and log_prob.
  (
    mutant(KeepsFirstImage, LU),
    F32,
    contract.check_transformed_distribution,
    "sample: shape",
  ),
  (
    mutant(ForgetsConstant, AN),
    F32,
    contract.check_transformed_distribution,
    "log_prob against the change of variables",
  ),
  (
    mutant(ForgetsConstant, EM),
    F64,
    contract.check_transformed_distribution,
    "log_prob against the change of variables",
  ),
  # The input checks: silent acceptance, and errors that name nothing.
  (
    mutant(Lenient, AR),
    F32,
    contract.check_bad_rank,
    "forward accepted bad rank",
  ),
  (
    mutant(VagueErrors, LU),
    F64,
    contract.check_bad_rank,
    "forward: the error does not say 'rank'",
  ),
  (
    mutant(Lenient, LU),
    F64,
    contract.check_bad_channels,
    "forward accepted bad channels",
  ),
  (
    mutant(VagueErrors, AN),
    F32,
    contract.check_bad_channels,
    "forward: the error does not say 'channels'",
  ),
  (
    mutant(CastsInput, AN),
    F32,
    contract.check_bad_dtype,
    "forward accepted bad dtype",
  ),
  (
    IGNORES_ARGUMENTS,
    F64,
    contract.check_bad_arguments,
    "the constructor with {'channels': 0} accepted bad channels",
  ),
  (
    VAGUE_ARGUMENTS,
    F32,
    contract.check_bad_arguments,
    "the constructor with {'channels': 0}: the error does not say 'channels'",
  ),
  (
    mutant(VagueFiniteness, AN),
    F64,
    contract.check_non_finite,
    "forward: the error does not say 'finite'",
  ),
  (
    mutant(VagueChannelCheck, LU),
    F32,
    contract.check_unknown_channels,
    "forward with validate_args=False: the error does not say 'channels'",
  ),
  (
    mutant(ShapeDependent, AN),
    F32,
    contract.check_unknown_channels,
    "forward with validate_args=False, traced with unknown shape",
  ),
  (
    mutant(unchecked("forward_log_det_jacobian", only_validating=True), AN),
    F32,
    contract.check_unknown_channels,
    "forward_log_det_jacobian with validate_args=True accepted 1 channels",
  ),
]
ROWS += [
  # check_constant_jacobian: both ways wrong.
  (
    mutant(UndeclaredConstantJacobian, AR),
    F32,
    contract.check_constant_jacobian,
    "is_constant_jacobian is False but the gradient of "
    "forward_log_det_jacobian with respect to its input is zero",
  ),
  (
    mutant(DeclaredConstantJacobian, AC),
    F64,
    contract.check_constant_jacobian,
    "is_constant_jacobian is True but the gradient of "
    "forward_log_det_jacobian with respect to its input is nonzero",
  ),
  # check_mean_and_mode: affinity, the mode, the Monte Carlo mean.
  (
    mutant(BoundedRange, AN),
    F64,
    contract.check_mean_and_mode,
    "bijector: not affine along the base's mean",
  ),
  (
    mutant(WrongInverse, AN),
    F64,
    contract.check_mean_and_mode,
    "bijector: the gradient of log_prob at mode()",
  ),
  (
    mutant(SampleBatchDependent, LU),
    F64,
    contract.check_mean_and_mode,
    "bijector: mean() against a Monte Carlo estimate",
  ),
  # check_variables: extra variables, copies with their own, no gradient.
  (
    mutant(ExtraVariable, AN),
    F32,
    contract.check_variables,
    "its parameters hold",
  ),
  (
    mutant(CopyMakesNewVariables, AN),
    F64,
    contract.check_variables,
    "copy(): its variables are not the bijector's own",
  ),
  (
    mutant(DetachedForward, AR),
    F32,
    contract.check_variables,
    "forward: no gradient reaches",
  ),
  # check_reconstruction: from the parameters, and copy().
  (
    mutant(StoredLikeOldCoupling, AC),
    F32,
    contract.check_reconstruction,
    "type(b)(**b.parameters) raised ValueError",
  ),
  (
    mutant(CopyReinitialises, AN),
    F64,
    contract.check_reconstruction,
    "copy(): forward",
  ),
  # check_composite_tensor: the packing, and tf.function arguments.
  (
    mutant(PropertyIsNotTheArgument, AN),
    F32,
    contract.check_composite_tensor,
    "flatten/pack: forward",
  ),
  (
    mutant(StoredLikeOldCoupling, AC),
    F32,
    contract.check_composite_tensor,
    "flatten/pack raised ValueError",
  ),
  (
    mutant(ReadsFlagWhileTracing, AN),
    F32,
    contract.check_composite_tensor,
    "tf.function arguments raised TypeError",
  ),
  # check_vectorized_map.
  (
    mutant(UnbatchedDependent, EM),
    F32,
    contract.check_vectorized_map,
    "tf.vectorized_map: forward",
  ),
]
# Each direction and log-det skipping its checks, on a different layer each.
for method, name, dtype in zip(
  contract.METHODS, (AR, LU, EM, AN), (F32, F64, F32, F64)
):
  ROWS.append(
    (
      mutant(unchecked(method), name),
      dtype,
      contract.check_non_finite,
      f"{method} with validate_args=True accepted a nan",
    )
  )
for method, name in zip(contract.METHODS, (AN, LU, AN, LU)):
  ROWS.append(
    (
      mutant(unchecked(method), name),
      F32,
      contract.check_unknown_channels,
      f"{method} with validate_args=False accepted 1 channels",
    )
  )


@pytest.mark.parametrize(
  "case,dtype,check,label",
  ROWS,
  ids=[
    f"{check.__name__[6:]}-{case.name}-{dtype.name}"
    for case, dtype, check, _ in ROWS
  ],
)
def test_check_catches_defect(case, dtype, check, label):
  if check in (
    *contract.INPUT_CHECKS.values(),
    contract.check_unknown_channels,
  ):
    arguments = (case, case.make(dtype), dtype)
  else:
    arguments = (case.make(dtype), case.event_shape, dtype)
  with pytest.raises(AssertionError, match=re.escape(label)):
    check(*arguments)


# (defect, dtype, check, label of the assertion that must fail).
CONDITIONAL_ROWS = [
  (
    CondWrongInverse,
    F64,
    contract.check_conditional,
    "conditional round trip x -> f -> f^-1",
  ),
  (
    CondBoundedRange,
    F64,
    contract.check_conditional,
    "conditional round trip x -> f^-1 -> f",
  ),
  (
    CondForgetsConstant,
    F32,
    contract.check_conditional,
    "conditional log_prob against the change of variables",
  ),
  (
    CondInconsistentForwardLogDet,
    F64,
    contract.check_conditional,
    "conditional fldj(x) against -ildj(f(x))",
  ),
  (
    CondIgnoresCondition,
    F64,
    contract.check_conditional,
    "log_prob does not depend on the condition",
  ),
  (
    LogDetMemoIgnoresCondition,
    F64,
    contract.check_conditional,
    "the cache gave another condition's fldj",
  ),
  (
    InverseMemoIgnoresCondition,
    F64,
    contract.check_conditional,
    "the cache gave another condition's inverse",
  ),
  (
    CondUnusedVariable,
    F64,
    contract.check_conditional,
    "conditional: no gradient reaches",
  ),
  (
    CondNanGradient,
    F32,
    contract.check_conditional,
    "conditional: non-finite gradient",
  ),
  (
    CondZeroGradient,
    F64,
    contract.check_conditional,
    "conditional: zero gradient",
  ),
  (
    CondTraceDependent,
    F64,
    contract.check_conditional_modes,
    "conditional, tf.function: log_prob",
  ),
  (
    CondXlaDependent,
    F32,
    contract.check_conditional_modes,
    "conditional, jit_compile=True: log_prob",
  ),
]


@pytest.mark.parametrize(
  "defect,dtype,check,label",
  CONDITIONAL_ROWS,
  ids=[
    f"{defect.__name__}-{dtype.name}"
    for defect, dtype, _, _ in CONDITIONAL_ROWS
  ],
)
def test_conditional_check_catches_defect(defect, dtype, check, label):
  layer = mutate(
    registry.coupling(dtype, channels=3, conditional_size=2), defect
  )
  conditions = [contract.random([2, 2], dtype, seed=s) for s in (1, 2)]
  with pytest.raises(AssertionError, match=re.escape(label)):
    check(layer, (4, 5, 3), dtype, conditions)


def test_every_check_has_a_failing_case():
  """Each `check_*` of the contract appears in a row (the structure check in
  the test below; `check_bad_input` runs the input checks)."""
  shown = {row[2] for row in ROWS + CONDITIONAL_ROWS}
  names = {f.__name__ for f in shown} | {
    "check_jacobian_structure",
    "check_bad_input",
  }
  assert names == {name for name in dir(contract) if name.startswith("check_")}


@pytest.mark.parametrize(
  "case", [c for c in registry.CASES if c.name in (AR, EM, PER, LU)], ids=repr
)
def test_structure_check_catches_a_stray_dependency(case):
  """Output pixel 0 now reads the last input pixel, channel 2."""
  layer = case.make(tf.float64)
  x = contract.random([1, *case.event_shape], tf.float64)
  jacobian = contract.dense_jacobian(layer.forward, x)[0]
  jacobian[0, -1] += 1.0
  with pytest.raises(AssertionError):
    case.check_jacobian(layer, jacobian)
