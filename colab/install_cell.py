# %%
# Setup: makes `tfp_emerging` importable, then picks the notebook's size.
# In a checkout of the repository (this notebook in its colab/ folder) it
# installs that checkout with `pip install -e`; anywhere else, unless this
# Python already has the package, it installs it from GitHub's REPOSITORY
# ("OWNER/NAME"; for a fork, set it here, or run
# `make notebooks REPOSITORY=OWNER/NAME`).
REPOSITORY = "tfp-emerging/tfp_emerging"

import importlib.util
import os
import pathlib
import subprocess
import sys


def install_command(repository, folder, installed_at):
  """pip's command line for `tfp_emerging`, or None when none is needed.

  `folder`: where the notebook runs; `installed_at`: the folder of the
  importable package, or None."""
  for checkout in [folder, *folder.parents]:
    project = checkout / "pyproject.toml"
    if project.is_file() and 'name = "tfp_emerging"' in project.read_text():
      if installed_at is not None and checkout in installed_at.parents:
        return None
      return [sys.executable, "-m", "pip", "install", "-q", "-e", str(checkout)]
  if installed_at is not None:
    return None
  return [
    sys.executable,
    "-m",
    "pip",
    "install",
    "-q",
    f"git+https://github.com/{repository}",
  ]


spec = importlib.util.find_spec("tfp_emerging")
command = install_command(
  REPOSITORY,
  pathlib.Path.cwd().resolve(),
  pathlib.Path(spec.origin).resolve().parent if spec else None,
)
if command:
  print("installing:", " ".join(command[2:]))
  pip = subprocess.run(command, capture_output=True, text=True)
  if pip.returncode != 0:
    raise RuntimeError(
      f"Could not install tfp_emerging with `{' '.join(command[2:])}` "
      f"(pip exit status {pip.returncode}). Set REPOSITORY at the top "
      f"of this cell to the GitHub repository that holds it, as "
      f"'OWNER/NAME', and run the cell again. pip said:\n" + pip.stderr[-3000:]
    )
  if "-e" in command:  # an editable install shows after a restart only
    sys.path.insert(0, command[-1])
  importlib.invalidate_caches()
import tfp_emerging

print(
  "tfp_emerging",
  tfp_emerging.__version__,
  "from",
  pathlib.Path(tfp_emerging.__file__).parent,
)

# Size: the full run (a few minutes on Colab) unless the environment sets
# TFP_EMERGING_NOTEBOOK_SMALL=1, the test suite's quick run (tiny models,
# few steps); each notebook's SIZES follow it.
SMALL = os.environ.get("TFP_EMERGING_NOTEBOOK_SMALL", "0")
if SMALL not in ("0", "1"):
  raise ValueError(
    f"TFP_EMERGING_NOTEBOOK_SMALL must be '0' or '1'; got {SMALL!r}."
  )
SMALL = SMALL == "1"
print("small:", SMALL)
