"""The contract's checks fail on broken bijectors: none of them is vacuous."""

import pytest
import tensorflow as tf

from tests import contract
from tests.bijectors import registry
from tfp_emerging import bijectors

EVENT = (5, 7, 3)


class WrongLogDet(bijectors.AutoregressiveConv2D):
  """Forgets the factor H * W in the log-determinant."""

  def _forward_log_det_jacobian(self, x):
    return super()._forward_log_det_jacobian(x) / 35.

  def _inverse_log_det_jacobian(self, y):
    return super()._inverse_log_det_jacobian(y) / 35.


class WrongInverse(bijectors.AutoregressiveConv2D):
  """An inverse that ignores the off-centre taps: only TFP's cache hides it."""

  def _inverse(self, y):
    centre = self.masked_kernel()[-1, -1]
    return y @ tf.linalg.inv(centre)


class FrozenVariable(bijectors.AutoregressiveConv2D):
  """Convolves with a detached copy of the kernel: no gradient reaches it."""

  def masked_kernel(self):
    return tf.stop_gradient(super().masked_kernel()) + 0. * tf.exp(
        self.bounded_log_diagonal())[None, None, None]


class DropsBatchShape(bijectors.AutoregressiveConv2D):

  def _forward_log_det_jacobian(self, x):
    return tf.reduce_sum(super()._forward_log_det_jacobian(x))


class TraceDependent(bijectors.AutoregressiveConv2D):
  """Gives a different answer when traced than eagerly."""

  def _forward(self, x):
    y = super()._forward(x)
    return y if tf.executing_eagerly() else y * 1.01


class GradientChangesUnderXla(bijectors.AutoregressiveConv2D):
  """Same values everywhere; its kernel's gradient is 1% off when traced."""

  def masked_kernel(self):
    kernel = super().masked_kernel()
    if tf.executing_eagerly():
      return kernel
    return 1.01 * kernel - tf.stop_gradient(0.01 * kernel)


class LoopInInverse(bijectors.AutoregressiveConv2D):
  """Sends its inverse through a `while_loop` with a `TensorArray`.

  The values compile with XLA; the loop's own gradient does not (its
  accumulators have no fixed size), the failure of issue 12.
  """

  def _inverse(self, y):
    x = super()._inverse(y)
    rows = tf.shape(x)[0]
    _, copy = tf.while_loop(
        lambda i, _: i < rows, lambda i, ta: (i + 1, ta.write(i, x[i])),
        (0, tf.TensorArray(x.dtype, size=rows)))
    return copy.stack()


def broken(cls, dtype=tf.float64):
  layer = cls(3, 3, dtype=dtype)
  layer.kernel.assign(registry.trained(layer.kernel.shape, 0.2, 1, dtype))
  layer.log_diagonal.assign(registry.trained([3], 0.4, 2, dtype))
  return layer


@pytest.mark.parametrize("cls,check", [
    (WrongLogDet, contract.check_log_det),
    (WrongLogDet, contract.check_transformed_distribution),
    (WrongInverse, contract.check_round_trip),
    (FrozenVariable, contract.check_gradients),
    (DropsBatchShape, contract.check_batch_shapes),
    (TraceDependent, contract.check_modes_agree),
    (GradientChangesUnderXla, contract.check_gradients_compile),
    (LoopInInverse, contract.check_gradients_compile),
], ids=lambda v: getattr(v, "__name__", str(v)))
def test_check_catches_defect(cls, check):
  with pytest.raises(AssertionError):
    check(broken(cls), EVENT, tf.float64)


def test_bad_input_check_catches_silent_acceptance():
  class Lenient(bijectors.AutoregressiveConv2D):
    def _forward(self, x):
      return x

    def _inverse(self, y):
      return y

  case = contract.Case("lenient", make=lambda dtype, **kw: Lenient(
      **{"channels": 3, "dtype": dtype, **kw}))
  with pytest.raises(AssertionError):
    contract.check_bad_input(case, case.make(tf.float64), tf.float64)


def test_structure_check_catches_a_leaking_mask():
  layer = broken(bijectors.AutoregressiveConv2D)
  x = contract.random([1, *EVENT], tf.float64)
  jacobian = contract.dense_jacobian(layer.forward, x)[0]
  jacobian[0, -1] = 1.  # output pixel 0 now reads the last input pixel
  with pytest.raises(AssertionError):
    registry._check_masked(layer, jacobian)
