"""Checks of the layers' parameter validation (TFP's
`_parameter_control_dependencies`): a variable assigned a bad value later."""

import pytest
import tensorflow as tf

from tests.testlib import contract


def assert_bad_assignment_fails(layer, variable, bad_value, name, event_shape):
  """`layer` has `validate_args=True`: every direction and log-det, eager and
  in a `tf.function` traced before the assignment, runs while `variable` is
  good, and raises `InvalidArgumentError` naming `name` once it holds
  `bad_value`. `variable` gets its value back afterwards."""
  x = contract.random([2, *event_shape], layer.dtype)

  def call(method):
    kwargs = {"event_ndims": 3} if method.endswith("jacobian") else {}
    # A new tensor each call: no result comes from TFP's cache.
    return getattr(layer, method)(tf.identity(x), **kwargs)

  traced = tf.function(lambda z: layer.forward(z))
  for method in contract.METHODS:
    call(method)
  traced(x)
  good = variable.numpy()
  variable.assign(bad_value)
  try:
    for method in contract.METHODS:
      with pytest.raises(tf.errors.InvalidArgumentError, match=f"`{name}`"):
        call(method)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"`{name}`"):
      traced(x)
  finally:
    variable.assign(good)
