"""AutoregressiveConv2D beyond the shared contract: mask, references and
solvers."""

import itertools
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tfp_emerging import bijectors
from tfp_emerging.ops import autoregressive
from tfp_emerging.ops import fft_inverse
from tfp_emerging.ops import masked_conv
from tfp_emerging.ops import triangular_solvers


def reference_forward(x, kernel, order, dilation):
  """Direct numpy sum over taps of the masked convolution's definition."""
  _, h, w, _ = x.shape
  m = kernel.shape[0]
  y = np.zeros_like(x)
  for a, b in itertools.product(range(m), repeat=2):
    # Tap (a, b) reads offset -(m-1-a, m-1-b) (top-left) or +(a, b).
    di, dj = (
      ((a - (m - 1)) * dilation, (b - (m - 1)) * dilation)
      if (order == "top_left")
      else (a * dilation, b * dilation)
    )
    for i, j in itertools.product(range(h), range(w)):
      if 0 <= i + di < h and 0 <= j + dj < w:
        y[:, i, j] += x[:, i + di, j + dj] @ kernel[a, b]
  return y


@pytest.mark.parametrize("order", ["top_left", "bottom_right"])
@pytest.mark.parametrize(
  "kernel_size,dilation", [(1, 1), (3, 1), (3, 2), (5, 1), (5, 3)]
)
def test_forward_matches_numpy_reference(order, kernel_size, dilation):
  layer = registry.autoregressive(
    tf.float64, kernel_size, dilation, order, "wavefront"
  )
  x = contract.random([2, 6, 5, 3], tf.float64).numpy()
  expected = reference_forward(
    x, layer.masked_kernel().numpy(), order, dilation
  )
  np.testing.assert_allclose(layer.forward(x).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("order", ["top_left", "bottom_right"])
def test_full_kernel_is_the_masked_k_by_k_convolution(order):
  layer = registry.autoregressive(tf.float64, 5, 2, order, "wavefront")
  x = contract.random([1, 13, 11, 3], tf.float64)
  dense = tf.nn.convolution(x, layer.full_kernel(), padding="SAME", dilations=2)
  np.testing.assert_allclose(
    layer.forward(x).numpy(), dense.numpy(), atol=1e-12
  )
  full = layer.full_kernel().numpy()
  centre = full[2, 2]
  triangle = np.triu if order == "top_left" else np.tril
  np.testing.assert_array_equal(triangle(centre), centre)
  half = slice(0, 2) if order == "bottom_right" else slice(3, 5)
  assert np.all(full[half] == 0) and np.all(full[:, half] == 0)


SHAPES = [(5, 7), (4, 6), (1, 9), (8, 3), (16, 16)]


@pytest.mark.parametrize("order", ["top_left", "bottom_right"])
@pytest.mark.parametrize(
  "kernel_size,dilation", [(3, 1), (3, 2), (5, 1), (5, 2)]
)
def test_solvers_agree(order, kernel_size, dilation):
  """Wavefront and raster solvers agree to 1e-5 in float32 and invert."""
  layer = registry.autoregressive(
    tf.float32, kernel_size, dilation, order, "wavefront"
  )
  kernel = layer.masked_kernel()
  for h, w in SHAPES:
    y = contract.random([2, h, w, 3], tf.float32)
    top_left = order == "top_left"
    wave = autoregressive.quadrant_solve(
      y, kernel, dilation, top_left, "wavefront"
    )
    raster = autoregressive.quadrant_solve(
      y, kernel, dilation, top_left, "raster"
    )
    np.testing.assert_allclose(wave.numpy(), raster.numpy(), atol=1e-5)
    back = masked_conv.quadrant_conv(wave, kernel, dilation, top_left)
    np.testing.assert_allclose(back.numpy(), y.numpy(), atol=1e-4)


def test_image_size_is_fixed_only_at_call_time():
  layer = registry.autoregressive(tf.float64, 3, 1, "top_left", "wavefront")
  for h, w in SHAPES:
    x = contract.random([h, w, 3], tf.float64)
    x_again = layer.inverse(tf.identity(layer.forward(x)))
    np.testing.assert_allclose(x_again.numpy(), x.numpy(), atol=1e-9)
    assert layer.forward_log_det_jacobian(x, event_ndims=3).shape == []


def test_inverse_compiles_once_for_unknown_sizes():
  layer = registry.autoregressive(tf.float32, 3, 1, "bottom_right", "wavefront")
  inverse = tf.function(
    layer.inverse,
    input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
  )
  for h, w in SHAPES[:3]:
    y = contract.random([2, h, w, 3], tf.float32)
    np.testing.assert_allclose(
      layer.forward(inverse(y)).numpy(), y.numpy(), atol=1e-4
    )


def test_diagonal_stays_invertible_for_any_variable_value():
  layer = bijectors.AutoregressiveConv2D(2, 3, dtype=tf.float32)
  layer.log_diagonal.assign([-1e4, 1e4])
  diagonal = np.diag(layer.masked_kernel().numpy()[1, 1])
  assert np.all(diagonal > 0) and np.all(np.isfinite(diagonal))
  x = contract.random([1, 4, 4, 2], tf.float32)
  ldj = layer.forward_log_det_jacobian(x, event_ndims=3).numpy()
  np.testing.assert_allclose(ldj, 16 * np.log(diagonal).sum(), rtol=1e-5)


def test_initial_values_and_seed():
  a = bijectors.AutoregressiveConv2D(3, 3, seed=4)
  b = bijectors.AutoregressiveConv2D(3, 3, seed=4)
  np.testing.assert_array_equal(a.kernel.numpy(), b.kernel.numpy())
  kernel = np.ones([2, 2, 3, 3], np.float32)
  c = bijectors.AutoregressiveConv2D(3, 3, kernel=kernel)
  np.testing.assert_array_equal(c.kernel.numpy(), kernel)
  assert len(c.trainable_variables) == 1  # log_diagonal; kernel is a constant
  with pytest.raises(ValueError, match="kernel"):
    bijectors.AutoregressiveConv2D(3, 3, kernel=np.ones([3, 3, 3, 3]))
  with pytest.raises(ValueError, match="log_diagonal"):
    bijectors.AutoregressiveConv2D(3, 3, log_diagonal=np.ones([2]))


def _frozen_inverse_spy(monkeypatch):
  """Records which inverse a frozen layer applies."""
  used = []
  for module, name in [
    (fft_inverse, "apply_filter"),
    (fft_inverse, "apply_dense_inverse"),
    (triangular_solvers, "wavefront_solve"),
  ]:
    original = getattr(module, name)

    def spy(*args, _original=original, _name=name):
      used.append(_name)
      return _original(*args)

    monkeypatch.setattr(module, name, spy)
  return used


@pytest.mark.parametrize("order", ["top_left", "bottom_right"])
@pytest.mark.parametrize("shape", [[2, 9, 7, 3], [2, 4, 3, 3]])
def test_frozen_auto_takes_the_filter_on_accelerators(
  monkeypatch, order, shape
):
  layer = registry.autoregressive(tf.float32, 3, 1, order, "auto")
  y = tf.random.stateless_normal(shape, seed=[1, 2])
  exact = layer.inverse(y)
  used = _frozen_inverse_spy(monkeypatch)
  monkeypatch.setattr(fft_inverse, "on_accelerator", lambda: True)
  x = layer._frozen().inverse(tf.identity(y))
  small = shape[1] * shape[2] <= fft_inverse.DENSE_INVERSE_PIXELS
  assert used == ["apply_dense_inverse" if small else "apply_filter"]
  np.testing.assert_allclose(x.numpy(), exact.numpy(), atol=1e-5)
  monkeypatch.setattr(fft_inverse, "on_accelerator", lambda: False)
  used.clear()
  layer._frozen().inverse(tf.identity(y))
  assert used == ["apply_dense_inverse" if small else "wavefront_solve"]


def test_frozen_auto_falls_back_once_when_the_filter_grows(monkeypatch):
  layer = registry.autoregressive(tf.float32, 3, 1, "top_left", "auto")
  layer.kernel.assign(layer.kernel * 8.0)
  _, kappa = fft_inverse.inverse_filter(layer.masked_kernel(), 1, True, 24, 24)
  assert not fft_inverse.fft_is_accurate(kappa.numpy(), tf.float32)
  used = _frozen_inverse_spy(monkeypatch)
  monkeypatch.setattr(fft_inverse, "on_accelerator", lambda: True)
  frozen = layer._frozen()
  y = tf.random.stateless_normal([1, 24, 24, 3], seed=[3, 4])
  with pytest.warns(UserWarning, match="kappa"):
    frozen.inverse(tf.identity(y))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    frozen.inverse(tf.identity(y))
  assert used == ["wavefront_solve", "wavefront_solve"]


def test_fft_solver_follows_kernel_assign_and_frozen_keeps_its_weights():
  layer = registry.autoregressive(tf.float64, 3, 1, "top_left", "fft")
  y = tf.random.stateless_normal([2, 6, 7, 3], seed=[5, 6], dtype=tf.float64)
  frozen = layer._frozen()
  before = layer.inverse(tf.identity(y))
  np.testing.assert_allclose(
    frozen.inverse(tf.identity(y)).numpy(), before.numpy(), atol=1e-12
  )
  layer.kernel.assign(layer.kernel * 0.5)
  after = layer.inverse(tf.identity(y))
  np.testing.assert_allclose(
    layer.forward(after).numpy(), y.numpy(), atol=1e-12
  )
  assert np.abs(after - before).max() > 1e-3
  np.testing.assert_allclose(
    frozen.inverse(tf.identity(y)).numpy(), before.numpy(), atol=1e-12
  )
  np.testing.assert_allclose(
    layer._frozen().inverse(tf.identity(y)).numpy(), after.numpy(), atol=1e-12
  )


@pytest.mark.parametrize("validate_args", [False, True])
@pytest.mark.parametrize("name", ["kernel", "log_diagonal"])
def test_non_finite_parameter_values_are_refused_at_construction(
  name, validate_args
):
  values = dict(kernel=np.zeros([2, 2, 3, 3]), log_diagonal=np.zeros(3))
  values[name].flat[1] = np.inf
  with pytest.raises(ValueError, match=f"`{name}` must be finite"):
    bijectors.AutoregressiveConv2D(3, validate_args=validate_args, **values)


@pytest.mark.parametrize("name", ["kernel", "log_diagonal"])
def test_variable_assigned_a_non_finite_value_fails_the_next_call(name):
  layer = registry.autoregressive(
    tf.float64, 3, 1, "top_left", "wavefront", validate_args=True
  )
  variable = getattr(layer, name)
  bad = variable.numpy()
  bad.flat[-1] = np.nan
  parameter_checks.assert_bad_assignment_fails(
    layer, variable, bad, name, [4, 3, 3]
  )
