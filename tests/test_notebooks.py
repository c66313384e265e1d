"""The Colab notebooks of `colab/`: each runs top to bottom, and is stored clean.

`test_notebook_runs` executes every notebook with `nbclient` on a kernel
running this very interpreter, at the small size
(`TFP_EMERGING_NOTEBOOK_SCALE=small`), with matplotlib's Agg backend; any
error in any cell (including the notebooks' own `assert`s on log-dets,
inverses and reconstructions) fails it. The other tests check that the
committed files carry no outputs or execution counts and are exactly what
`colab/build_notebooks.py` writes, and that the first cell installs from the
one variable `TFP_EMERGING_SOURCE` and stops there, with a message, when the
install fails.
"""

import glob
import importlib.util
import json
import os
import re
import subprocess
import sys
import types

import nbformat
import pytest
from ipykernel import kernelspec
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLAB = os.path.join(ROOT, "colab")
NOTEBOOKS = sorted(glob.glob(os.path.join(COLAB, "*.ipynb")))
KERNEL = "tfp-emerging-test"
# Generous per-cell limit: the small training cells take ~10 s on 2 cores.
CELL_TIMEOUT_S = 600


def _builder():
  spec = importlib.util.spec_from_file_location(
      "build_notebooks", os.path.join(COLAB, "build_notebooks.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
  """A kernelspec for `sys.executable` and the environment the kernel inherits."""
  jupyter_dir = tmp_path_factory.mktemp("jupyter")
  kernelspec.write_kernel_spec(str(jupyter_dir / "kernels" / KERNEL))
  with open(jupyter_dir / "kernels" / KERNEL / "kernel.json",
            encoding="utf-8") as f:
    assert json.load(f)["argv"][0] == sys.executable
  env = {
      "JUPYTER_PATH": str(jupyter_dir),
      "TFP_EMERGING_NOTEBOOK_SCALE": "small",
      "MPLBACKEND": "Agg",
      "TF_CPP_MIN_LOG_LEVEL": "2",
      # The package from this checkout, installed or not.
      "PYTHONPATH": os.pathsep.join(
          [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
  }
  return env


def test_there_are_the_three_notebooks():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      "01_emerging_convolutions.ipynb", "02_density_modeling.ipynb",
      "03_comparing_mixing_layers.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, kernel_env, monkeypatch, tmp_path):
  for name, value in kernel_env.items():
    monkeypatch.setenv(name, value)
  notebook = nbformat.read(path, as_version=4)
  client = NotebookClient(notebook, kernel_name=KERNEL,
                          timeout=CELL_TIMEOUT_S,
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute()  # Raises CellExecutionError on the first failing cell.
  outputs = [output for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  # The size knob reached the kernel.
  assert any(o.output_type == "stream" and "scale: small" in o.text
             for o in outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_without_outputs(path):
  notebook = nbformat.read(path, as_version=4)
  nbformat.validate(notebook)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [], f"{cell.id} has outputs"
      assert cell.execution_count is None, f"{cell.id} has a count"
    assert "execution" not in cell.metadata, f"{cell.id} has timings"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_matches_its_builder(path):
  builder = _builder()
  expected = builder.build(builder.NOTEBOOKS[os.path.basename(path)])
  assert nbformat.read(path, as_version=4) == expected, (
      "run `python colab/build_notebooks.py` and commit the notebooks")


def _setup_cells():
  return [nbformat.read(path, as_version=4).cells[0] for path in NOTEBOOKS]


def test_first_cell_installs_from_the_one_source_variable():
  source = _builder().TFP_EMERGING_SOURCE
  for cell in _setup_cells():
    assert cell.cell_type == "code"
    code = [line for line in cell.source.splitlines()
            if line and not line.startswith("#")]
    # Set once, at the top; the URL appears nowhere else in the cell.
    assert code[0] == f'TFP_EMERGING_SOURCE = "{source}"'
    assert cell.source.count(source) == 1
    assert '"pip", "install", "-q", TFP_EMERGING_SOURCE]' in cell.source


def _run_setup(cell, monkeypatch, source=None):
  """Runs a setup cell here as on Colab, with `TFP_EMERGING_SOURCE` set to
  `source` as a user would edit it."""
  code = cell.source
  if source is not None:
    code = re.sub(r'^TFP_EMERGING_SOURCE = .*$',
                  f"TFP_EMERGING_SOURCE = {source!r}", code, flags=re.M)
  monkeypatch.setitem(sys.modules, "google.colab",
                      types.ModuleType("google.colab"))
  monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
  namespace = {}
  exec(compile(code, "setup-cell", "exec"), namespace)  # pylint: disable=exec-used
  return namespace


def test_a_failing_install_stops_in_the_setup_cell(monkeypatch, tmp_path):
  missing = str(tmp_path / "no_such_tfp_emerging")
  cell = _setup_cells()[0]
  assert all(other.source == cell.source for other in _setup_cells())
  with pytest.raises(RuntimeError) as info:
    _run_setup(cell, monkeypatch, source=missing)
  message = str(info.value)
  assert message.startswith(
      f"Could not install tfp_emerging from TFP_EMERGING_SOURCE = "
      f"{missing!r} (pip exit status 1). Set TFP_EMERGING_SOURCE")
  assert "does not exist" in message  # pip's own words follow
  # Installed but not importable (say, a wrong package): the same cell stops.
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: types.SimpleNamespace(
      returncode=0, stderr=""))
  with pytest.raises(RuntimeError, match="tfp_emerging is not installed in "
                     "this Python"):
    _run_setup(cell, monkeypatch)
