"""SavedModel export: reloaded in a fresh process without tfp_emerging.

The reloading process gets only TensorFlow (it checks that neither
`tfp_emerging` nor TensorFlow Probability was imported) and must reproduce
the exporting process's log_prob and seeded samples exactly.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

from tfp_emerging import cli
from tfp_emerging import export
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras
from tfp_emerging import training

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
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("PYTHONPATH", None)
  run = subprocess.run(
      [sys.executable, "-c", RELOAD, str(path), str(tmp_path / "x.npy")],
      capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
      check=False)
  assert run.returncode == 0, run.stderr[-3000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


def test_exported_model_reloads_without_the_package(tmp_path):
  glow = flows.Glow((8, 8, 1), num_levels=2, num_steps=1, mixing="emerging",
                    hidden_channels=8, seed=0)
  model = tfe_keras.FlowModel(glow, num_bins=17)
  model.initialize(np.random.default_rng(0).integers(0, 17, (16, 8, 8, 1)))
  rng = np.random.default_rng(1)
  for v in glow.trainable_variables:  # as if trained: no zero weights left
    v.assign_add(tf.constant(rng.normal(0., 0.05, v.shape), v.dtype))
  module = export.export(model, str(tmp_path / "saved"))
  x = (np.random.default_rng(2).random((4, 8, 8, 1)) - 0.5).astype(np.float32)
  got = reload_in_fresh_process(tmp_path / "saved", x, tmp_path)
  expected = model.distribution.log_prob(x).numpy()
  np.testing.assert_array_equal(got["log_prob"], expected)
  np.testing.assert_array_equal(got["attribute"], expected)
  np.testing.assert_allclose(
      got["bits_per_dim"], model.bits_per_dim(
          np.floor((x + 0.5) * 17).astype(np.int32), seed=9).numpy(),
      atol=0.1)  # same images, other dequantisation noise
  samples = module.sample(tf.constant(3), tf.constant(0.7), tf.constant([4, 5]))
  np.testing.assert_array_equal(got["x"], samples["x"].numpy())
  np.testing.assert_array_equal(got["images"], samples["images"].numpy())
  assert np.asarray(got["images"]).min() >= 0
  assert np.asarray(got["images"]).max() <= 16


def test_cli_export_writes_the_runs_latest_checkpoint(tmp_path, capsys):
  config = training.RunConfig(
      dataset="digits", mixing="1x1", num_levels=1, num_steps=1,
      hidden_channels=8, epochs=1, batch_size=256, warmup_steps=1)
  training.train(config, str(tmp_path / "run"), log=lambda message: None)
  out = tmp_path / "exported"
  assert cli.main(["export", "--run", str(tmp_path / "run"),
                   "--out", str(out)]) == 0
  assert str(out) in capsys.readouterr().out
  _, model, _, _ = training.load_run(str(tmp_path / "run"))
  x = (np.random.default_rng(3).random((2, 8, 8, 1)) - 0.5).astype(np.float32)
  got = reload_in_fresh_process(out, x, tmp_path)
  np.testing.assert_array_equal(got["log_prob"],
                                model.distribution.log_prob(x).numpy())
  assert cli.main(["export", "--run", str(tmp_path / "nothing"),
                   "--out", str(out)]) == 2
