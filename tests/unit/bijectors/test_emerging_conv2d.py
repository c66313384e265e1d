"""EmergingConv2D beyond the shared contract: the equivalent k x k kernel."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tfp_emerging import bijectors


@pytest.mark.parametrize(
  "kernel_size,dilation", [(3, 1), (3, 2), (5, 1), (5, 2)]
)
def test_forward_is_one_dense_convolution_away_from_borders(
  kernel_size, dilation
):
  layer = registry.emerging(tf.float64, kernel_size, dilation, "wavefront")
  kernel = layer.equivalent_kernel()
  assert kernel.shape == [kernel_size, kernel_size, 3, 3]
  x = contract.random([2, 17, 15, 3], tf.float64)
  dense = tf.nn.convolution(x, kernel, padding="SAME", dilations=dilation)
  border = (kernel_size - 1) // 2 * dilation
  inner = np.s_[:, border:-border, border:-border]
  np.testing.assert_allclose(
    layer.forward(x).numpy()[inner], dense.numpy()[inner], atol=1e-12
  )


def test_log_det_is_sum_of_parts_and_inverse_runs_in_reverse():
  layer = registry.emerging(tf.float64, 3, 1, "wavefront")
  first, second = layer.bijectors
  x = contract.random([2, 5, 7, 3], tf.float64)
  np.testing.assert_allclose(
    layer.forward_log_det_jacobian(x, event_ndims=3).numpy(),
    (
      first.forward_log_det_jacobian(x, event_ndims=3)
      + second.forward_log_det_jacobian(x, event_ndims=3)
    ).numpy(),
  )
  y = layer.forward(x)
  manual = first.inverse(tf.identity(second.inverse(tf.identity(y))))
  np.testing.assert_allclose(
    layer.inverse(tf.identity(y)).numpy(), manual.numpy(), atol=1e-12
  )


def test_rejects_mismatched_parts():
  part = bijectors.AutoregressiveConv2D(3, 3, order="top_left")
  with pytest.raises(ValueError, match="second"):
    bijectors.EmergingConv2D(3, 3, second=part)
  with pytest.raises(ValueError, match="first"):
    bijectors.EmergingConv2D(4, 3, first=part)


def test_trainable_variables_are_both_parts():
  layer = bijectors.EmergingConv2D(3, 3)
  assert len(layer.trainable_variables) == 4


@pytest.mark.parametrize(
  "kernel_size,dilation,shape",
  [
    (1, 1, [2, 4, 5, 3]),
    (3, 1, [2, 7, 6, 3]),
    (3, 2, [2, 3, 9, 3]),
    (5, 1, [2, 2, 5, 3]),
    (5, 2, [2, 8, 7, 3]),
  ],
)
def test_equivalent_forward_and_its_gradients_equal_the_two_convolutions(
  kernel_size, dilation, shape
):
  x = contract.random(shape, tf.float64)
  results = []
  for path in ("two_convolutions", "equivalent"):
    layer = registry.emerging(
      tf.float64, kernel_size, dilation, "wavefront", forward_path=path
    )
    assert layer.uses_equivalent_kernel(x) == (path == "equivalent")
    with tf.GradientTape() as tape:
      y = layer.forward(x)
      loss = tf.reduce_sum(tf.sin(y))
    results.append([y, *tape.gradient(loss, layer.trainable_variables)])
  for two, equivalent in zip(*results):
    np.testing.assert_allclose(equivalent.numpy(), two.numpy(), atol=1e-12)


def test_rejects_a_bad_forward_path():
  with pytest.raises(ValueError, match="forward_path"):
    bijectors.EmergingConv2D(3, 3, forward_path="one")


@pytest.mark.parametrize("solver", ["auto", "wavefront", "fft"])
@pytest.mark.parametrize("path", ["two_convolutions", "equivalent"])
def test_frozen_layer_has_the_same_maps(solver, path):
  layer = registry.emerging(tf.float64, 3, 1, solver, forward_path=path)
  frozen = layer._frozen()
  x = contract.random([2, 6, 5, 3], tf.float64)
  y = layer.forward(x)
  np.testing.assert_allclose(frozen.forward(x).numpy(), y.numpy(), atol=1e-13)
  np.testing.assert_allclose(
    frozen.inverse(tf.identity(y)).numpy(), x.numpy(), atol=1e-12
  )
  np.testing.assert_allclose(
    frozen.forward_log_det_jacobian(x, 3).numpy(),
    layer.forward_log_det_jacobian(x, 3).numpy(),
  )


@pytest.mark.parametrize("index,name", [(0, "kernel"), (1, "log_diagonal")])
def test_part_variable_assigned_a_non_finite_value_fails_the_next_call(
  index, name
):
  """The layer asserts its parts' variables with its own `validate_args`,
  also in the equivalent-kernel forward and the log-det, which read the
  parts' kernels without calling the parts (here `validate_args=False`)."""
  first, second = (
    registry.autoregressive(tf.float64, 3, 1, order, "wavefront")
    for order in ("top_left", "bottom_right")
  )
  layer = bijectors.EmergingConv2D(
    3,
    first=first,
    second=second,
    solver="wavefront",
    forward_path="equivalent",
    dtype=tf.float64,
    validate_args=True,
  )
  variable = getattr(layer.bijectors[index], name)
  bad = variable.numpy()
  bad.flat[0] = np.nan
  parameter_checks.assert_bad_assignment_fails(
    layer, variable, bad, name, [4, 3, 3]
  )
