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


def test_rejects_parts_of_another_solver():
  """The layer's `solver` is its parts': a part that solves otherwise is
  refused (old main kept it silently)."""
  part = bijectors.AutoregressiveConv2D(3, 3, solver="raster")
  with pytest.raises(ValueError, match="solver='wavefront'"):
    bijectors.EmergingConv2D(3, 3, solver="wavefront", first=part)


def _kernels(layer):
  return [v.ref() for part in layer.bijectors for v in part.variables]


@pytest.mark.parametrize(
  "overrides",
  [dict(solver="raster"), dict(dilation=2), dict(validate_args=True)],
  ids=lambda o: next(iter(o)),
)
def test_copy_gives_both_parts_the_override_and_keeps_their_variables(
  overrides,
):
  """`copy(**overrides)` builds the layer with those arguments changed:
  both parts take them (old main's copy kept its parts as they were, or
  refused them for another dilation), and keep their variables. The
  reference: the layer built anew with the overrides around the same
  kernels."""
  layer = registry.emerging(tf.float64, 3, 1, "wavefront")
  copied = layer.copy(**overrides)
  for part in copied.bijectors:
    for key, value in overrides.items():
      assert getattr(part, key) == value
  assert _kernels(copied) == _kernels(layer)
  arguments = dict(dict(solver="wavefront", dilation=1), **overrides)
  parts = [
    bijectors.AutoregressiveConv2D(
      3,
      3,
      order=part.order,
      kernel=part.kernel,
      log_diagonal=part.log_diagonal,
      dtype=tf.float64,
      **arguments,
    )
    for part in layer.bijectors
  ]
  reference = bijectors.EmergingConv2D(
    3, 3, first=parts[0], second=parts[1], dtype=tf.float64, **arguments
  )
  y = contract.random([2, 5, 7, 3], tf.float64)
  np.testing.assert_allclose(
    copied.inverse(y).numpy(), reference.inverse(y).numpy(), atol=1e-12
  )


@pytest.mark.parametrize(
  "overrides,kernel_shape",
  [(dict(kernel_size=5), [3, 3, 3, 3]), (dict(channels=2), [2, 2, 2, 2])],
  ids=["kernel_size", "channels"],
)
def test_copy_with_another_shape_makes_new_parts(overrides, kernel_shape):
  """A kernel size or channel count the parts' variables cannot take gives
  new parts (old main: a `ValueError` about `first`), which the copy's own
  `parameters` hold, so that copying the copy shares them."""
  layer = registry.emerging(tf.float32, 3, 1, "raster")
  copied = layer.copy(**overrides)
  for key, value in overrides.items():
    assert getattr(copied, key) == value
  assert [part.kernel.shape for part in copied.bijectors] == [kernel_shape] * 2
  assert [part.solver for part in copied.bijectors] == ["raster"] * 2
  assert not set(_kernels(copied)) & set(_kernels(layer))
  assert _kernels(copied.copy()) == _kernels(copied)
  x = contract.random([2, 5, 7, copied.channels], tf.float32)
  np.testing.assert_allclose(
    copied.inverse(tf.identity(copied.forward(x))).numpy(), x, atol=1e-4
  )


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
