"""`freeze`: frozen bijectors pass the shared contract and equal the layers
they froze; it recurses through chains, inversions and Glow, labels and
all."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import contract
from tests.testlib import registry
from tests.unit.flows.test_glow import small_glow
from tfp_emerging import bijectors
from tfp_emerging import flows
from tfp_emerging.ops import conditions

tfb = tfp.bijectors
tfd = tfp.distributions

# The contract's checks that hold for a frozen bijector (no gradients reach
# the variables it froze: by design), in float64, the tighter tolerances;
# XLA is in `modes_agree`.
FROZEN_CHECKS = ("round_trip", "log_det", "modes_agree")
# Frozen and unfrozen: the same maps up to reassociation and, for the 1x1's
# inverse, W^{-1} applied instead of solved (kappa(W) eps).
SAME_RTOL = {tf.float32: 2e-5, tf.float64: 1e-12}


def assert_same_maps(frozen, bijector, event_shape, dtype, **kwargs):
  """`frozen` and `bijector` give the same four results on fresh inputs."""
  x = contract.random([2, *event_shape], dtype, seed=21)
  y = contract.random([2, *event_shape], dtype, seed=22)
  for method, z in zip(contract.METHODS, (x, y, x, y)):
    extra = {"event_ndims": 3} if method.endswith("jacobian") else {}
    want = getattr(bijector, method)(tf.identity(z), **extra, **kwargs)
    got = getattr(frozen, method)(tf.identity(z), **extra, **kwargs)
    contract.assert_close(
      got.numpy(),
      want.numpy(),
      f"frozen {method} against the bijector's",
      SAME_RTOL[dtype],
    )


# Cases whose frozen inverse runs the same code as another case's (the
# raster solve on the frozen kernel, as for the k3-d2 cases): the same maps
# and round trips only, to save test time (their dense Jacobians through
# the raster loop are the slowest checks here).
SAME_CODE_AS_ANOTHER_CASE = (
  "autoregressive-k5-d1-top_left-raster",
  "emerging-k5-d1-raster",
)
assert all(
  name in [c.name for c in registry.CASES] for name in SAME_CODE_AS_ANOTHER_CASE
), "a case was renamed in the registry"


@pytest.mark.parametrize("case", registry.CASES, ids=repr)
def test_frozen_bijector_passes_the_contract_and_equals_the_bijector(case):
  bijector = case.make(tf.float64)
  frozen = bijectors.freeze(bijector)
  if not hasattr(bijector, "_frozen"):
    assert frozen is bijector  # Nothing to freeze: itself.
    return
  assert frozen is not bijector
  # Frozen or not, a linear layer's Jacobian is constant (TFP reuses it).
  assert frozen.is_constant_jacobian == bijector.is_constant_jacobian
  checks = FROZEN_CHECKS
  if case.name in SAME_CODE_AS_ANOTHER_CASE:
    checks = ("round_trip",)
  for check in checks:
    contract.CHECKS[check](frozen, case.event_shape, tf.float64)
  assert_same_maps(frozen, bijector, case.event_shape, tf.float64)
  float32 = case.make(tf.float32)
  assert_same_maps(
    bijectors.freeze(float32), float32, case.event_shape, tf.float32
  )


@pytest.mark.slow
@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_frozen_glow_passes_the_contract_and_equals_the_glow(mixing):
  """Float64: the same four maps as the Glow and round trips; except for
  "lu" and "qr" (whose frozen layers are of "1x1"'s kinds), log-dets
  against the dense Jacobians and, in float32, sampling eagerly, traced
  and under XLA."""
  glow = small_glow(mixing)
  frozen = bijectors.freeze(glow)
  assert isinstance(frozen, flows.glow.FrozenGlow) and frozen.name == glow.name
  assert all(
    type(new) is type(old)
    for new, old in zip(frozen.steps[0], glow.steps[0])
    if not hasattr(old, "_frozen")
  )
  assert_same_maps(frozen, glow, glow.image_shape, tf.float64)
  contract.check_round_trip(frozen, glow.image_shape, tf.float64)
  if mixing in ("lu", "qr"):  # A FrozenConv1x1 as in "1x1"; conv1x1-lu
    return  # and -qr pass the contract frozen, above.
  contract.check_log_det(frozen, glow.image_shape, tf.float64)
  glow = small_glow(mixing, tf.float32)
  frozen = bijectors.freeze(glow)
  z = contract.random([2, *glow.image_shape], tf.float32, seed=5)

  def sample(z):
    x = frozen.forward(tf.identity(z))
    return x, frozen.forward_log_det_jacobian(tf.identity(z), event_ndims=3)

  eager = sample(z)
  for mode, compiled in (
    ("tf.function", tf.function(sample)),
    ("jit_compile=True", tf.function(sample, jit_compile=True)),
  ):
    for what, want, got in zip(("forward", "fldj"), eager, compiled(z)):
      np.testing.assert_allclose(
        got.numpy(),
        want.numpy(),
        rtol=contract.MODES_RTOL[tf.float32],
        atol=contract.MODES_RTOL[tf.float32],
        err_msg=f"{mode}: {what}",
      )


def test_frozen_conditional_glow_takes_labels_through_chains():
  """The label reaches the frozen couplings and priors, by name through a
  `tfb.Chain` and as it is through a `tfb.Invert`."""
  glow = small_glow("qr", num_classes=3)
  chain = tfb.Chain([tfb.Shift(tf.constant(0.25, tf.float64)), glow])
  frozen = bijectors.freeze(chain)
  assert frozen.name == chain.name
  assert [b.name for b in frozen.bijectors] == [b.name for b in chain.bijectors]
  assert isinstance(frozen.bijectors[1], flows.glow.FrozenGlow)
  inverted = bijectors.freeze(tfb.Invert(chain))
  assert inverted.bijector.bijectors[1].glow is glow
  z = contract.random([2, *glow.image_shape], tf.float64, seed=23)
  outputs = []
  for labels in ([0, 2], [1, 1]):
    kwargs = conditions.route(chain, labels)
    assert set(kwargs) == {glow.name}
    assert_same_maps(frozen, chain, glow.image_shape, tf.float64, **kwargs)
    x = frozen.forward(z, **kwargs)
    np.testing.assert_allclose(
      inverted.inverse(tf.identity(z), **kwargs).numpy(), x.numpy(), rtol=0
    )
    outputs.append(x.numpy())
  assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
  np.testing.assert_allclose(
    frozen.bijectors[1].forward(z, conditional_input=[1, 1]).numpy(),
    glow.forward(z, conditional_input=[1, 1]).numpy(),
    rtol=1e-12,
  )
  with pytest.raises(ValueError, match="conditional"):
    frozen.bijectors[1].forward(z)


def test_freeze_leaves_what_has_nothing_to_freeze():
  scale = tfb.Scale(2.0)
  assert bijectors.freeze(scale) is scale
  coupling = registry.coupling(tf.float32)
  chain = tfb.Chain([scale, tfb.Invert(coupling)])
  assert bijectors.freeze(chain) is chain
  fresh = bijectors.ActNorm(3)  # Uninitialised: the data initialise it.
  assert bijectors.freeze(fresh) is fresh
  with pytest.raises(ValueError, match="bijector"):
    bijectors.freeze(lambda x: x)


@pytest.mark.parametrize("parameterization", ["qr", "lu", "plain"])
def test_frozen_conv1x1_holds_w_and_its_inverse_as_they_were(
  parameterization,
):
  layer = registry.conv1x1(tf.float64, parameterization)
  weight = layer.weight().numpy()
  frozen = bijectors.freeze(layer)
  np.testing.assert_allclose(frozen._weight.numpy(), weight, rtol=1e-14)
  np.testing.assert_allclose(
    frozen._inverse_weight.numpy(), np.linalg.inv(weight), rtol=1e-12
  )
  for v in layer.trainable_variables:  # Later assigns: not seen.
    v.assign(v * 1.5)
  np.testing.assert_allclose(frozen._weight.numpy(), weight, rtol=0)
  x = contract.random([1, 2, 2, 3], tf.float64)
  np.testing.assert_allclose(
    frozen.forward(x).numpy(), (x.numpy() @ weight), rtol=1e-13
  )
  assert not np.allclose(layer.forward(x).numpy(), frozen.forward(x).numpy())


def test_frozen_glow_refuses_initialisation_and_config():
  glow = small_glow("qr")
  frozen = bijectors.freeze(glow)
  assert frozen.glow is glow and frozen.is_initialized()
  with pytest.raises(ValueError, match="initialise the original"):
    frozen.initialize(tf.zeros([1, *glow.image_shape], tf.float64))
  with pytest.raises(ValueError, match="no config"):
    frozen.get_config()
