"""`FlowModel.sample` and the exported `sample` run the flow frozen
(`tfp_emerging.bijectors.freeze`), and never on weights that have changed."""

import numpy as np
import tensorflow as tf

from tests.testlib.digits_models import digits
from tests.testlib.digits_models import make_model
from tfp_emerging import export as export_lib
from tfp_emerging import flows

SEED = tf.constant([3, 4])


def _reference(model, n=4, temperature=0.8):
  """`(z, flow.forward(z))` of the unfrozen flow, `sample`'s latents."""
  z = export_lib.tempered_sample(
    model.distribution.distribution, n, temperature, SEED
  )
  return z, model.flow.forward(z)


def _assert_samples_the_weights_now(model, n=4, temperature=0.8):
  """`sample`'s frozen pass gives the unfrozen flow's images now, and the
  images it returns are those, quantised."""
  z, x = _reference(model, n, temperature)
  np.testing.assert_allclose(
    model._generate(z, None).numpy(), x.numpy(), rtol=0, atol=1e-5
  )
  images = model.sample(n, temperature=temperature, seed=SEED).numpy()
  wrong = images != np.clip(np.floor((x.numpy() + 0.5) * 17), 0, 16)
  assert wrong.mean() < 0.01  # (round-off may move a pixel across a level)
  return images


def test_sample_freezes_once_and_again_after_a_training_step():
  model = make_model("qr", learning_rate=0.5)
  images = digits()[:32]
  model.initialize(images)
  before = _assert_samples_the_weights_now(model)
  frozen = model._generate.frozen
  assert isinstance(frozen, flows.glow.FrozenGlow)
  _assert_samples_the_weights_now(model)
  assert model._generate.frozen is frozen  # unchanged weights: reused
  model.train_on_batch(images)
  # The first call after the step runs the flow itself (weights that change
  # between calls are never frozen: no new trace each time), the next,
  # seeing the same weights, freezes them anew.
  z, x = _reference(model)
  np.testing.assert_allclose(
    model._generate(z, None).numpy(), x.numpy(), rtol=0, atol=1e-5
  )
  assert model._generate.frozen is None
  after = _assert_samples_the_weights_now(model)
  refrozen = model._generate.frozen
  assert refrozen is not None and refrozen is not frozen
  assert np.any(after != before)


def test_sample_sees_an_assign_to_a_frozen_weight():
  """Only a frozen layer's weight changes (not a coupling's, which the
  frozen pass reads anyway): the next sample is frozen anew."""
  model = make_model("qr")
  model.initialize(digits()[:32])
  _assert_samples_the_weights_now(model)
  frozen = model._generate.frozen
  actnorm, conv = model.flow.steps[0][:2]
  actnorm.log_scale.assign(actnorm.log_scale + 0.3)
  _assert_samples_the_weights_now(model)
  assert model._generate.frozen is not frozen
  frozen = model._generate.frozen
  householder = conv.factor("householder")
  householder.assign(householder * 1.1 + 0.05)
  _assert_samples_the_weights_now(model)
  assert model._generate.frozen is not frozen
  # What is compared: exactly the frozen layers' variables (the couplings
  # and priors are read at every call).
  frozen_layers = [layer for layers in model.flow.steps for layer in layers[:2]]
  assert {id(v) for v in model._generate.folded_variables} == {
    id(v) for layer in frozen_layers for v in layer.variables
  }


def test_export_samples_the_flow_frozen_when_exported(tmp_path):
  model = make_model("qr")
  model.initialize(digits()[:32])
  module = export_lib.export(model.discrete_flow, str(tmp_path / "exported"))
  assert isinstance(module._sampling_flow, flows.glow.FrozenGlow)
  loaded = tf.saved_model.load(str(tmp_path / "exported"))
  _, x = _reference(model, 3, 0.7)
  samples = loaded.signatures["sample"](
    n=tf.constant(3), temperature=tf.constant(0.7), seed=SEED
  )
  np.testing.assert_allclose(samples["x"].numpy(), x.numpy(), atol=1e-5)
