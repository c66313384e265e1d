"""SavedModel export: reloaded in a fresh process without tfp_emerging.

The reloading process gets only TensorFlow (it checks that neither
`tfp_emerging` nor TensorFlow Probability was imported) and must reproduce
the exporting process's log_prob and seeded samples exactly.
"""

import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import digits_models
from tests.testlib import runs
from tests.testlib import workers
from tfp_emerging import cli
from tfp_emerging import export
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

tfd = tfp.distributions

RELOAD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    x = tf.constant(np.load(sys.argv[2]))
    out = loaded.signatures["log_prob"](x=x)
    samples = loaded.signatures["sample"](
        n=tf.constant(3), temperature=tf.constant(0.7, tf.float32),
        seed=tf.constant([4, 5]))
    assert not [m for m in sys.modules
                if m.startswith(("tfp_emerging", "tensorflow_probability"))]
    print(json.dumps({
        "log_prob": out["log_prob"].numpy().tolist(),
        "bits_per_dim": out["bits_per_dim"].numpy().tolist(),
        "x": samples["x"].numpy().tolist(),
        "images": samples["images"].numpy().tolist(),
        "attribute": loaded.log_prob(x)["log_prob"].numpy().tolist()}))
""")


def reload_in_fresh_process(path, x, tmp_path):
  np.save(tmp_path / "x.npy", x)
  run = workers.run_python(
    ["-c", RELOAD, str(path), str(tmp_path / "x.npy")],
    cwd=tmp_path,
    env=workers.child_environment(PYTHONPATH=None),
    timeout=600,
  )
  return workers.last_json(run.stdout)


def trained_looking_model(
  base_distribution=None, num_levels=2, mixing="emerging"
):
  """A tiny initialised FlowModel with no zero weight left, as if trained."""
  glow = digits_models.glow(mixing, num_levels=num_levels, hidden_channels=8)
  model = tfe_keras.FlowModel(
    glow, num_bins=17, base_distribution=base_distribution
  )
  model.initialize(np.random.default_rng(0).integers(0, 17, (16, 8, 8, 1)))
  rng = np.random.default_rng(1)
  for v in glow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0.0, 0.05, v.shape), v.dtype))
  return model


@pytest.mark.slow
def test_export_refuses_bad_temperature_and_out_of_range_x(tmp_path):
  model = trained_looking_model(num_levels=1, mixing="lu")
  path = str(tmp_path / "exported")
  model.export(path, verbose=False)
  loaded = tf.saved_model.load(path)
  for temperature in (-1.0, float("nan"), float("inf")):
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature"):
      loaded.signatures["sample"](
        n=tf.constant(2),
        temperature=tf.constant(temperature),
        seed=tf.constant([0, 1]),
      )
  for temperature in (0.0, 0.7, 1.0, 4.0):
    ok = loaded.signatures["sample"](
      n=tf.constant(64),
      temperature=tf.constant(temperature),
      seed=tf.constant([0, 1]),
    )
    images = ok["images"].numpy()
    assert images.shape == (64, 8, 8, 1)
    assert images.min() >= 0 and images.max() < 17, temperature
  for value in (0.5, -0.51, 3.0, float("nan")):
    x = tf.fill([1, 8, 8, 1], np.float32(value))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[-0.5, 0.5\)"):
      loaded.signatures["log_prob"](x=x)
  inside = tf.fill([1, 8, 8, 1], np.float32(0.49))
  assert np.isfinite(loaded.signatures["log_prob"](x=inside)["log_prob"])


def numpy_bits_per_dim(log_prob, num_bins, num_dims=64):
  """`-(log p - D log B) / (D log 2)` in float64, from the definition."""
  log_prob = np.asarray(log_prob, np.float64)
  return -(log_prob - num_dims * np.log(num_bins)) / (num_dims * np.log(2.0))


def test_export_takes_the_discrete_flow_not_the_keras_model(tmp_path):
  """`export` is typed by the real classes, a `DiscreteFlow` or a bijector:
  a `FlowModel` (a `keras.Model`) is refused, naming its `discrete_flow`,
  before anything is written; `FlowExport` holds the model's own."""
  model = trained_looking_model(num_levels=1, mixing="lu")
  with pytest.raises(ValueError, match="discrete_flow"):
    export.export(model, str(tmp_path / "refused"))
  assert not (tmp_path / "refused").exists()
  module = export.FlowExport(model.discrete_flow)
  assert module.density is model.discrete_flow
  x = tf.fill([2, 8, 8, 1], 0.1)
  np.testing.assert_array_equal(
    module.log_prob(x)["log_prob"], model.distribution.log_prob(x)
  )


def test_exported_model_reloads_without_the_package(tmp_path):
  model = trained_looking_model()
  module = export.export(model.discrete_flow, str(tmp_path / "saved"))
  x = (np.random.default_rng(2).random((4, 8, 8, 1)) - 0.5).astype(np.float32)
  got = reload_in_fresh_process(tmp_path / "saved", x, tmp_path)
  expected = model.distribution.log_prob(x).numpy()
  np.testing.assert_array_equal(got["log_prob"], expected)
  np.testing.assert_array_equal(got["attribute"], expected)
  # float32 arithmetic of the definition: machine precision (16 bins
  # instead of 17 would be 0.09 bits/dim off).
  np.testing.assert_allclose(
    got["bits_per_dim"], numpy_bits_per_dim(expected, 17), rtol=2e-7
  )
  samples = module.sample(tf.constant(3), tf.constant(0.7), tf.constant([4, 5]))
  np.testing.assert_array_equal(got["x"], samples["x"].numpy())
  np.testing.assert_array_equal(got["images"], samples["images"].numpy())
  assert np.asarray(got["images"]).min() >= 0
  assert np.asarray(got["images"]).max() <= 16


def test_model_export_serves_log_prob_and_samples_its_own_base(tmp_path):
  """Keras' `model.export(dir)`: no input signature, a non-standard base."""
  loc = np.linspace(-0.3, 0.3, 64, dtype=np.float32).reshape(8, 8, 1)
  scale = np.linspace(0.5, 1.5, 64, dtype=np.float32).reshape(8, 8, 1)
  base = tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=3)
  model = trained_looking_model(base, num_levels=1, mixing="lu")
  path = str(tmp_path / "exported")
  model.export(path, verbose=False)
  loaded = tf.saved_model.load(path)
  x = (np.random.default_rng(2).random((4, 8, 8, 1)) - 0.5).astype(np.float32)
  expected = model.distribution.log_prob(x).numpy()
  for signature in ("log_prob", "serving_default"):
    out = loaded.signatures[signature](x=tf.constant(x))
    np.testing.assert_array_equal(out["log_prob"].numpy(), expected)
    np.testing.assert_allclose(
      out["bits_per_dim"].numpy(), numpy_bits_per_dim(expected, 17), rtol=2e-7
    )
  served = tfe_keras.keras.layers.TFSMLayer(path, call_endpoint="log_prob")
  np.testing.assert_array_equal(served(x)["log_prob"].numpy(), expected)
  # Samples: the base's own draw, tempered about its mode (here its mean):
  # loc + T (z - loc), mapped by the flow. Standard-normal noise scaled by T
  # would be far off.
  samples = loaded.signatures["sample"](
    n=tf.constant(3), temperature=tf.constant(0.7), seed=tf.constant([4, 5])
  )
  z = base.sample(3, seed=tf.constant([4, 5])).numpy()
  reference = model.flow.forward(
    tf.constant(loc + np.float32(0.7) * (z - loc))
  ).numpy()
  np.testing.assert_allclose(
    samples["x"].numpy(), reference, rtol=1e-5, atol=1e-6
  )
  standard = model.flow.forward(
    0.7 * tf.random.stateless_normal([3, 8, 8, 1], [4, 5])
  ).numpy()
  assert np.abs(samples["x"].numpy() - standard).max() > 0.1
  np.testing.assert_array_equal(
    samples["images"].numpy(),
    np.clip(np.floor((samples["x"].numpy() + 0.5) * 17), 0, 16),
  )
  # FlowModel.sample draws the same way.
  np.testing.assert_array_equal(
    model.sample(3, temperature=0.7, seed=tf.constant([4, 5])).numpy(),
    samples["images"].numpy(),
  )
  with pytest.raises(ValueError, match="tf_saved_model"):
    model.export(str(tmp_path / "other"), format="onnx")
  with pytest.raises(ValueError, match="input_signature"):
    model.export(
      str(tmp_path / "other"), input_signature=[tf.TensorSpec([None, 4, 4, 1])]
    )


def test_cli_export_writes_the_runs_latest_checkpoint(tmp_path, capsys):
  config = training.RunConfig(**runs.DIGITS_1X1, epochs=1)
  training.train(config, str(tmp_path / "run"), log=lambda message: None)
  out = tmp_path / "exported"
  assert (
    cli.main(["export", "--run", str(tmp_path / "run"), "--out", str(out)]) == 0
  )
  assert str(out) in capsys.readouterr().out
  _, model, _, _ = training.load_run(str(tmp_path / "run"))
  x = (np.random.default_rng(3).random((2, 8, 8, 1)) - 0.5).astype(np.float32)
  got = reload_in_fresh_process(out, x, tmp_path)
  np.testing.assert_array_equal(
    got["log_prob"], model.distribution.log_prob(x).numpy()
  )
  assert (
    cli.main(["export", "--run", str(tmp_path / "nothing"), "--out", str(out)])
    == 2
  )
