"""Runs commands, test worker scripts among them, in fresh processes: the one
runner of the tests' child processes.

Some checks need a process of their own: logical CPU devices must be set
before TensorFlow starts, the mixed-precision policy is global, Keras is
chosen (Keras 3 or tf_keras) when TensorFlow is imported, and what a user
meets (the command line's output, a saved model loaded after `import
tfp_emerging` alone, an installed wheel) shows only in a new interpreter.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def child_environment(**variables):
  """This process's environment for a child Python process: `PYTHONPATH`
  the repository root (the checkout's `tfp_emerging` and `tests`),
  TensorFlow's C++ log quiet, then `variables`: a string sets a variable,
  `None` removes it (`PYTHONPATH=None`: the child imports the installed
  package)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  for name, value in variables.items():
    if value is None:
      env.pop(name, None)
    else:
      env[name] = value
  return env


def start_python(arguments, *, cwd=ROOT, env=None, **popen):
  """`python *arguments` started in `cwd` (a `subprocess.Popen` whose
  output is text), in `env` or else `child_environment()`; `popen` are
  further `Popen` arguments (`stdout=`, `stderr=`)."""
  return subprocess.Popen(
    [sys.executable, *arguments],
    cwd=cwd,
    env=child_environment() if env is None else env,
    text=True,
    **popen,
  )


def run(command, *, cwd=ROOT, env=None, timeout=900, check=True):
  """Runs `command` (a list: the program, then its arguments) to its end in
  `cwd`, in `env` or else `child_environment()`, its output captured as
  text; returns the `subprocess.CompletedProcess`. With `check`, fails the
  test unless it exits 0, showing the command and the ends of its output."""
  result = subprocess.run(
    command,
    cwd=cwd,
    env=child_environment() if env is None else env,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  if check:
    assert result.returncode == 0, (
      command,
      result.stdout[-2000:],
      result.stderr[-3000:],
    )
  return result


def run_python(arguments, **options):
  """`run([python, *arguments], **options)` with this interpreter."""
  return run([sys.executable, *arguments], **options)


def last_json(output):
  """The JSON object on the last line of `output`."""
  return json.loads(output.strip().splitlines()[-1])


def run_json_worker(module, *arguments, **environment):
  """Runs `python -m tests.testlib.<module> *arguments` from the repository
  root, with `environment` added to `child_environment()`; returns the JSON
  object on its last output line."""
  worker = run_python(
    ["-m", f"tests.testlib.{module}", *arguments],
    env=child_environment(**environment),
  )
  return last_json(worker.stdout)
