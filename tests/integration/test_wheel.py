"""The package as a user meets it, in new processes: the wheel, built from
the repository, installed in a fresh virtual environment, working from
another folder; and `python -m tfp_emerging` run from another folder, its
start line and one line per epoch in a log, its files loaded by a process
that imports `tfp_emerging` alone (`load_model`, and a SavedModel that loads
without warnings).

The fresh environment holds only the wheel (`--no-deps`); TensorFlow and the
other dependencies are borrowed from this environment through a `.pth` line
naming its site-packages (appended after the fresh environment's own, so the
wheel's `tfp_emerging` comes first, and the checkout's editable install,
whose finder only a site directory's own `.pth` files start, plays no part).
"""

import os
import sys
import sysconfig
import textwrap
import time
import zipfile

from tests.testlib import workers
from tfp_emerging import training

TINY_FLOW = textwrap.dedent("""
    import importlib.metadata, importlib.resources, json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_probability as tfp
    import tfp_emerging
    from tfp_emerging import bijectors

    layer = bijectors.EmergingConv2D(channels=3, kernel_size=3)
    x = tf.random.stateless_normal([2, 4, 4, 3], seed=[1, 2])
    y = layer.forward(x)
    density = tfp.distributions.TransformedDistribution(
        tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [4, 4, 3]),
        bijectors.sampling_direction(layer))
    log_prob = density.log_prob(x)
    print(json.dumps(dict(
        file=tfp_emerging.__file__,
        version=tfp_emerging.__version__,
        metadata_version=importlib.metadata.version("tfp_emerging"),
        typed=importlib.resources.files("tfp_emerging").joinpath(
            "py.typed").is_file(),
        round_trip=float(np.max(np.abs(layer.inverse(tf.identity(y)) - x))),
        log_prob=[float(v) for v in log_prob])))
""")


def _run(command, cwd):
  """The output of `command`, run in `cwd` without the checkout on the
  path (it must exit 0)."""
  env = workers.child_environment(PYTHONPATH=None)
  return workers.run(command, cwd=cwd, env=env).stdout


def test_the_wheel_installs_and_runs_a_tiny_flow_from_another_folder(tmp_path):
  start = time.time()
  wheels = tmp_path / "wheels"
  _run(
    [
      sys.executable,
      "-m",
      "pip",
      "wheel",
      "--no-deps",
      "-q",
      "-w",
      str(wheels),
      workers.ROOT,
    ],
    cwd=str(tmp_path),
  )
  (wheel,) = wheels.glob("tfp_emerging-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert "tfp_emerging/py.typed" in names
  assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
  assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)

  venv = tmp_path / "venv"
  _run([sys.executable, "-m", "venv", str(venv)], cwd=str(tmp_path))
  python = str(venv / "bin" / "python")
  _run(
    [
      python,
      "-m",
      "pip",
      "install",
      "-q",
      "--no-deps",
      "--no-index",
      str(wheel),
    ],
    cwd=str(tmp_path),
  )
  fresh_site = _run(
    [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    cwd=str(tmp_path),
  ).strip()
  with open(
    os.path.join(fresh_site, "borrowed_dependencies.pth"), "w", encoding="utf-8"
  ) as f:
    f.write(sysconfig.get_paths()["purelib"] + "\n")

  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  report = workers.last_json(_run([python, "-c", TINY_FLOW], str(elsewhere)))
  assert report["file"].startswith(str(venv)), report["file"]
  assert report["version"] == report["metadata_version"]
  assert report["typed"]
  assert report["round_trip"] < 1e-4
  assert len(report["log_prob"]) == 2 and all(
    abs(v) < 1e4 for v in report["log_prob"]
  )
  version = _run(
    [str(venv / "bin" / "tfp-emerging"), "--version"], str(elsewhere)
  )
  assert version.strip() == f"tfp-emerging {report['version']}"
  print(f"wheel built, installed and run in {time.time() - start:.1f} s")


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
  train = workers.run_python(
    [
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
    ],
    cwd=str(tmp_path),
  )
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

  _, model, _, _ = training.load_run(run_dir)
  model.save(str(tmp_path / "model.keras"))
  workers.run_python(
    [
      "-m",
      "tfp_emerging",
      "export",
      "--run",
      run_dir,
      "--out",
      str(tmp_path / "saved"),
    ],
    cwd=str(tmp_path),
  )
  script = tmp_path / "load.py"
  script.write_text(LOAD)
  loaded = workers.run_python(
    [str(script), str(tmp_path / "model.keras"), str(tmp_path / "saved")],
    cwd=str(tmp_path),
  )
  assert "FlowModel (2, 8, 8, 1)" in loaded.stdout
  assert "exported (2, 8, 8, 1)" in loaded.stdout
  assert "unsaved custom gradients" not in loaded.stderr
