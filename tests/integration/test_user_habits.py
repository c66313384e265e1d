"""The command line and saved files as a user meets them, in new processes:
the start line and one line per epoch in a log, `load_model` after `import
tfp_emerging` alone, a SavedModel that loads without warnings."""

import os
import subprocess
import sys

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def _python(*arguments, cwd):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(
    [sys.executable, *arguments],
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


LOAD = """
import sys
import numpy as np
import tensorflow as tf
import tfp_emerging
for name in ("bijectors", "data", "flows", "keras", "training", "export"):
  getattr(tfp_emerging, name)
model = tf.keras.models.load_model(sys.argv[1])
print(type(model).__name__, model.sample(2, seed=0).shape)
loaded = tf.saved_model.load(sys.argv[2])
images = loaded.signatures["sample"](
    n=tf.constant(2), temperature=tf.constant(0.7),
    seed=tf.constant([1, 2]))["images"]
print("exported", tuple(images.shape))
"""


def test_a_run_logs_one_line_per_epoch_and_its_files_load_anywhere(tmp_path):
  run_dir = str(tmp_path / "run")
  train = _python(
    "-m",
    "tfp_emerging",
    "train",
    "--epochs",
    "2",
    "--num-steps",
    "1",
    "--hidden-channels",
    "4",
    "--out",
    run_dir,
    cwd=str(tmp_path),
  )
  assert train.returncode == 0, train.stderr[-2000:]
  lines = train.stdout.splitlines()
  assert lines[0].startswith(
    "training Glow with emerging mixing (1 level(s) "
    "x 1 steps, 4 hidden channels,"
  ), lines
  for part in (
    "parameters) on digits: 1500 train / 297 test images of 8x8x1, 17 levels",
    "batch 64, 2 epochs, on CPU",
    run_dir,
  ):
    assert part in lines[0]
  epochs = [line for line in lines if "epoch" in line.lower()]
  assert [line.split(":")[0] for line in epochs[1:]] == [
    "epoch 1",
    "epoch 2",
    "test bits/dim after epoch 2",
  ], lines
  assert not any(line.startswith("Epoch ") for line in lines)  # Keras' own

  from tfp_emerging import training

  _, model, _, _ = training.load_run(run_dir)
  model.save(str(tmp_path / "model.keras"))
  exported = _python(
    "-m",
    "tfp_emerging",
    "export",
    "--run",
    run_dir,
    "--out",
    str(tmp_path / "saved"),
    cwd=str(tmp_path),
  )
  assert exported.returncode == 0, exported.stderr[-2000:]
  script = tmp_path / "load.py"
  script.write_text(LOAD)
  loaded = _python(
    str(script),
    str(tmp_path / "model.keras"),
    str(tmp_path / "saved"),
    cwd=str(tmp_path),
  )
  assert loaded.returncode == 0, loaded.stderr[-3000:]
  assert "FlowModel (2, 8, 8, 1)" in loaded.stdout
  assert "exported (2, 8, 8, 1)" in loaded.stdout
  assert "unsaved custom gradients" not in loaded.stderr
