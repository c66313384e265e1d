"""The wheel: built from the repository, installed in a fresh virtual
environment, working from another folder.

The fresh environment holds only the wheel (`--no-deps`); TensorFlow and the
other dependencies are borrowed from this environment through a `.pth` line
naming its site-packages (appended after the fresh environment's own, so the
wheel's `tfp_emerging` comes first, and the checkout's editable install,
whose finder only a site directory's own `.pth` files start, plays no part).
"""

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)

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


def _run(command, cwd, env=None):
  result = subprocess.run(
    command,
    cwd=cwd,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
    check=False,
  )
  assert result.returncode == 0, (
    command,
    result.stdout[-2000:],
    result.stderr[-3000:],
  )
  return result.stdout


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
      ROOT,
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
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  report = json.loads(
    _run([python, "-c", TINY_FLOW], cwd=str(elsewhere), env=env)
    .strip()
    .splitlines()[-1]
  )
  assert report["file"].startswith(str(venv)), report["file"]
  assert report["version"] == report["metadata_version"]
  assert report["typed"]
  assert report["round_trip"] < 1e-4
  assert len(report["log_prob"]) == 2 and all(
    abs(v) < 1e4 for v in report["log_prob"]
  )
  version = _run(
    [str(venv / "bin" / "tfp-emerging"), "--version"],
    cwd=str(elsewhere),
    env=env,
  )
  assert version.strip() == f"tfp-emerging {report['version']}"
  print(f"wheel built, installed and run in {time.time() - start:.1f} s")
