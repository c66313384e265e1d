"""Runs a test worker script in a fresh Python process.

Some checks need a process of their own: logical CPU devices must be set
before TensorFlow starts, the mixed-precision policy is global, and Keras is
chosen (Keras 3 or tf_keras) when TensorFlow is imported.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def run_json_worker(module, *arguments, **environment):
  """Runs `python -m tests.testlib.<module> *arguments` from the repository
  root, with `environment` added to this process's; returns the JSON object
  on its last output line."""
  env = dict(
    os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", **environment
  )
  run = subprocess.run(
    [sys.executable, "-m", f"tests.testlib.{module}", *arguments],
    cwd=ROOT,
    capture_output=True,
    text=True,
    env=env,
    timeout=900,
    check=False,
  )
  assert run.returncode == 0, run.stderr[-3000:]
  return json.loads(run.stdout.strip().splitlines()[-1])
