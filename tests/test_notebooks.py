"""The Colab notebooks of `colab/`: each runs top to bottom, and is stored clean.

`test_notebook_runs` executes every notebook with `nbclient` on a kernel
running this very interpreter, at the small size
(`TFP_EMERGING_NOTEBOOK_SCALE=small`), with matplotlib's Agg backend; any
error in any cell (including the notebooks' own `assert`s on log-dets,
inverses and reconstructions) fails it. The other tests check that the
committed files carry no outputs or execution counts and are exactly what
`colab/build_notebooks.py` writes.
"""

import glob
import importlib.util
import json
import os
import sys

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


def test_colab_install_cell_is_colab_only():
  for path in NOTEBOOKS:
    install = nbformat.read(path, as_version=4).cells[1].source
    assert 'if "google.colab" in sys.modules:' in install
    assert "!pip install" in install.split("google.colab")[1]
