"""The notebooks of `colab/`: each runs top to bottom, is built from its one
source, and installs the package from where it is.

`test_notebook_runs` executes every committed notebook with `nbclient` on a
kernel running this very interpreter, at the small size
(`TFP_EMERGING_NOTEBOOK_SMALL=1`), with matplotlib's inline backend; any error
in any cell (including the notebooks' own `assert`s on log-dets, inverses,
reconstructions) fails it, and so does a cell that calls `plt.show()`
without an image/png output. The other tests check that the committed
`.ipynb` files are what `colab/build.py` writes from the `.py` sources,
that the executed copies of `docs/tutorials/` (the docs site's Tutorials)
have the same cells and a figure wherever one is shown, the
install cell's decision (a checkout, an installed package, a published
copy), its failure message, `make notebooks REPOSITORY=...`'s stamping of
the install cell and README's badges, and the class-conditional
notebook's grid of one row per class.
"""

import importlib.util
import pathlib
import re
import shutil
import subprocess
import sys
import time
import types

import nbformat
import pytest

from tests.testlib import workers

ROOT = pathlib.Path(__file__).resolve().parents[2]
COLAB = ROOT / "colab"
DEFAULT_REPOSITORY = "tfp-emerging/tfp_emerging"
NAMES = [
  "01_emerging_convolutions",
  "02_density_modeling",
  "03_comparing_mixing_layers",
  "04_class_conditional",
]
# Generous per-cell limit: the small training cells take ~10 s on 2 cores.
CELL_TIMEOUT_S = 600


def _load_build():
  spec = importlib.util.spec_from_file_location(
    "colab_build", COLAB / "build.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


build = _load_build()


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
  """`executed(name)`: the notebook `colab/<name>.ipynb` run once (memoised)
  at the small size, and its wall-clock seconds."""
  runs = {}

  def run(name):
    if name not in runs:
      notebook = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
      start = time.perf_counter()
      build.execute(
        notebook,
        tmp_path_factory.mktemp(name),  # cwd: not a checkout
        {"TFP_EMERGING_NOTEBOOK_SMALL": "1"},
        timeout=CELL_TIMEOUT_S,
      )
      runs[name] = notebook, time.perf_counter() - start
    return runs[name]

  return run


def _printed(notebook):
  return "".join(
    output.text
    for cell in notebook.cells
    if cell.cell_type == "code"
    for output in cell.outputs
    if output.output_type == "stream"
  )


def test_there_are_the_four_notebooks_and_their_sources():
  assert [p.stem for p in build.sources()] == NAMES
  assert sorted(p.stem for p in COLAB.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, executed):
  # Raises CellExecutionError on the first failing cell.
  notebook, seconds = executed(name)
  print(f"{name}: {seconds:.1f} s")
  assert not [
    o
    for cell in notebook.cells
    if cell.cell_type == "code"
    for o in cell.outputs
    if o.output_type == "error"
  ]
  # Every figure a cell shows reached its outputs (the inline backend).
  assert build.missing_figures(notebook) == []
  assert any(build.SHOW in cell.source for cell in notebook.cells)
  printed = _printed(notebook)
  assert "small: True" in printed  # the size variable reached the kernel
  # Not a checkout, the package importable: the install cell installed nothing.
  assert "installing:" not in printed
  assert f"from {ROOT / 'tfp_emerging'}" in printed


@pytest.mark.slow
def test_a_figure_that_does_not_appear_is_caught(tmp_path):
  """`missing_figures` is not vacuous: with Agg, `plt.show()` shows
  nothing and the cell is named; with the inline backend it shows."""
  cell = nbformat.v4.new_code_cell(
    "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()",
    id="plot",
  )
  for backend, missing in [("Agg", ["plot"]), (build.INLINE_BACKEND, [])]:
    notebook = nbformat.v4.new_notebook(cells=[cell.copy()])
    build.execute(notebook, tmp_path, {"MPLBACKEND": backend}, timeout=120)
    assert build.missing_figures(notebook) == missing, backend


@pytest.mark.parametrize("name", NAMES)
def test_the_executed_copy_is_current_and_shows_its_figures(name):
  """`docs/tutorials/<name>.ipynb`, the site's page, is the notebook built
  from its source today, run at full size without an error, with an image
  wherever a cell shows one (`make tutorials` rewrites it)."""
  copy = nbformat.read(build.TUTORIALS / f"{name}.ipynb", as_version=4)
  built = build.notebook(COLAB / f"{name}.py")
  assert [(c.id, c.cell_type, c.source) for c in copy.cells] == [
    (c.id, c.cell_type, c.source) for c in built.cells
  ], "run `make tutorials` and commit docs/tutorials/"
  outputs = [
    output
    for cell in copy.cells
    if cell.cell_type == "code"
    for output in cell.outputs
  ]
  assert not [o for o in outputs if o.output_type == "error"]
  assert build.missing_figures(copy) == []
  assert "small: False" in _printed(copy)  # run at full size
  assert sorted(p.stem for p in build.TUTORIALS.glob("*.ipynb")) == NAMES


def test_the_conditional_grid_has_one_row_per_class(executed):
  printed = _printed(executed("04_class_conditional")[0])
  # 8x8 digits magnified 32 // 8 = 4 times, 1 pixel of padding: a grid of
  # R rows of 8 is (R (8 + 1) + 1) 4 by (8 (8 + 1) + 1) 4 pixels.
  assert "sample grid (364, 292, 1): 10 rows of 8" in printed
  assert "grid of classes [3, 1, 4] (112, 292, 1): 3 rows of 8" in printed
  accuracy = re.search(r"test digits: ([0-9.]+)%", printed)
  assert accuracy and 0 <= float(accuracy.group(1)) <= 100


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_built_from_its_source(name):
  committed = nbformat.read(COLAB / f"{name}.ipynb", as_version=4)
  assert committed == build.notebook(COLAB / f"{name}.py"), (
    "run `make notebooks` and commit the notebooks"
  )
  for cell in committed.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.id
    assert cell.metadata == {}, cell.id


def test_an_edited_source_gives_another_notebook(tmp_path):
  source = tmp_path / "01_emerging_convolutions.py"
  text = (COLAB / source.name).read_text(encoding="utf-8")
  source.write_text(
    text.replace("C, K = 3, 3", "C, K = 3, 5"), encoding="utf-8"
  )
  edited = build.notebook(source)
  committed = nbformat.read(COLAB / "01_emerging_convolutions.ipynb", 4)
  assert edited != committed
  assert [c.id for c in edited.cells] == [c.id for c in committed.cells]


def test_sources_are_jupytext_percent_files_without_code_in_strings():
  for source in build.sources():
    text = source.read_text(encoding="utf-8")
    # The title first: the install cell is not copied into the sources.
    assert text.startswith("# %% [markdown]\n# # "), source.name
    assert "REPOSITORY" not in text, source.name
    cells = build.notebook(source).cells
    assert len(cells) == 1 + text.count("\n# %%") + 1
    assert cells[1].cell_type == "markdown"
    assert cells[1].source.startswith("# "), source.name  # the title


def test_the_install_cell_is_kept_once_and_put_first(tmp_path):
  install = build.INSTALL_CELL.read_text(encoding="utf-8")
  assert install.startswith("# %%\n") and install.count("# %%") == 1
  for source in build.sources():
    first = build.notebook(source).cells[0]
    assert first.cell_type == "code"
    assert first.source == install.removeprefix("# %%\n").strip("\n")
  # An install cell of two cells is refused, not silently split.
  two_cells = tmp_path / "install_cell.py"
  two_cells.write_text(install + "\n# %%\nprint(1)\n", encoding="utf-8")
  with pytest.raises(ValueError, match="must hold one code cell"):
    build.notebook(build.sources()[0], two_cells)


def _install_cells():
  return [nbformat.read(COLAB / f"{name}.ipynb", 4).cells[0] for name in NAMES]


def _run_install_cell(
  source, monkeypatch, folder, returncode=0, importable=True
):
  """Runs an install cell in `folder`, pip replaced by a recorder that exits
  with `returncode`; `importable=False` hides the installed package from
  `find_spec`. Returns the cell's namespace and pip's recorded commands."""
  commands = []

  def fake_pip(command, **kwargs):
    commands.append(command)
    return types.SimpleNamespace(
      returncode=returncode, stderr="ERROR: no such repository"
    )

  monkeypatch.chdir(folder)
  monkeypatch.setattr(subprocess, "run", fake_pip)
  monkeypatch.setattr(sys, "path", list(sys.path))
  if not importable:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  namespace = {}
  exec(compile(source, "install-cell", "exec"), namespace)
  return namespace, commands


def test_the_install_cell_is_first_and_the_same_everywhere():
  cells = _install_cells()
  assert all(cell.cell_type == "code" for cell in cells)
  assert len({cell.source for cell in cells}) == 1
  code = [
    line
    for line in cells[0].source.splitlines()
    if line and not line.startswith("#")
  ]
  assert code[0] == f'REPOSITORY = "{DEFAULT_REPOSITORY}"'
  assert cells[0].source.count(DEFAULT_REPOSITORY) == 1


def test_the_install_decision(monkeypatch, tmp_path):
  namespace, commands = _run_install_cell(
    _install_cells()[0].source, monkeypatch, tmp_path
  )
  assert commands == []  # importable here, not a checkout
  install_command = namespace["install_command"]
  pip = [sys.executable, "-m", "pip", "install", "-q"]
  checkout = tmp_path / "clone"
  (checkout / "colab").mkdir(parents=True)
  (checkout / "pyproject.toml").write_text('[project]\nname = "tfp_emerging"\n')
  site_packages = tmp_path / "site-packages" / "tfp_emerging"
  # A checkout: installed from itself, unless it is what is imported.
  assert install_command("a/b", checkout / "colab", None) == [
    *pip,
    "-e",
    str(checkout),
  ]
  assert install_command("a/b", checkout / "colab", site_packages) == [
    *pip,
    "-e",
    str(checkout),
  ]
  assert (
    install_command("a/b", checkout / "colab", checkout / "tfp_emerging")
    is None
  )
  # This repository is such a checkout, with its package imported.
  assert install_command("a/b", COLAB, ROOT / "tfp_emerging") is None
  # A published copy (Colab's /content, a download): from GitHub's REPOSITORY.
  published = tmp_path / "content"
  published.mkdir()
  assert install_command("someone/fork", published, None) == [
    *pip,
    "git+https://github.com/someone/fork",
  ]
  assert install_command("someone/fork", published, site_packages) is None
  # Another project's pyproject.toml is no checkout of this one.
  (published / "pyproject.toml").write_text('[project]\nname = "other"\n')
  assert install_command("someone/fork", published, None)[-1] == (
    "git+https://github.com/someone/fork"
  )


def test_a_published_copy_installs_from_repository_or_says_to_set_it(
  monkeypatch, tmp_path
):
  source = _install_cells()[0].source
  _, commands = _run_install_cell(
    source, monkeypatch, tmp_path, importable=False
  )
  assert commands == [
    [
      sys.executable,
      "-m",
      "pip",
      "install",
      "-q",
      f"git+https://github.com/{DEFAULT_REPOSITORY}",
    ]
  ]
  with pytest.raises(RuntimeError) as info:
    _run_install_cell(
      source, monkeypatch, tmp_path, returncode=1, importable=False
    )
  message = str(info.value)
  assert message.startswith(
    f"Could not install tfp_emerging with `pip install -q git+https://"
    f"github.com/{DEFAULT_REPOSITORY}` (pip exit status 1). Set REPOSITORY "
    f"at the top of this cell"
  )
  assert message.endswith("pip said:\nERROR: no such repository")


def test_stamping_a_repository_changes_the_install_cell_and_badges(
  monkeypatch, tmp_path
):
  install_cell = tmp_path / "install_cell.py"
  shutil.copy(build.INSTALL_CELL, install_cell)
  readme = tmp_path / "README.md"
  shutil.copy(ROOT / "README.md", readme)
  build.stamp("someone/fork", install_cell, readme)
  badges = re.findall(
    r"https://colab\.research\.google\.com/github/"
    r"([^/]+/[^/]+)/blob/main/colab/(\w+)\.ipynb",
    readme.read_text(encoding="utf-8"),
  )
  assert badges == [("someone/fork", name) for name in NAMES]
  for source in build.sources():
    cell = build.notebook(source, install_cell).cells[0].source
    assert 'REPOSITORY = "someone/fork"' in cell
    assert DEFAULT_REPOSITORY not in cell
  # The stamped cell of a published copy installs from the fork.
  _, commands = _run_install_cell(
    build.notebook(build.sources()[0], install_cell).cells[0].source,
    monkeypatch,
    tmp_path,
    importable=False,
  )
  assert commands[0][-1] == "git+https://github.com/someone/fork"
  for wrong in ["someone", "someone/fork/extra", "git+https://x/y", ""]:
    with pytest.raises(ValueError, match="repository must be GitHub's"):
      build.stamp(wrong, install_cell, readme)
  # The committed files are untouched.
  assert DEFAULT_REPOSITORY in build.INSTALL_CELL.read_text(encoding="utf-8")


def test_the_committed_badges_open_the_committed_repository():
  badges = re.findall(
    r"https://colab\.research\.google\.com/github/"
    r"([^/]+/[^/]+)/blob/main/colab/(\w+)\.ipynb",
    (ROOT / "README.md").read_text(encoding="utf-8"),
  )
  assert badges == [(DEFAULT_REPOSITORY, name) for name in NAMES]


def test_make_notebooks_passes_the_repository_on():
  makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
  assert "\nnotebooks: install\n" in makefile
  dry_run = workers.run(
    ["make", "-n", "notebooks", "REPOSITORY=someone/fork"]
  ).stdout
  assert "colab/build.py --repository someone/fork" in dry_run
  dry_run = workers.run(["make", "-n", "notebooks"]).stdout
  assert "colab/build.py" in dry_run and "--repository" not in dry_run


def test_no_placeholder_is_left():
  placeholder = "YOUR_" + "GITHUB_USER"  # not spelled out: this file is grepped
  files = workers.run(["git", "ls-files"]).stdout.split()
  files += [f"colab/{p.name}" for p in COLAB.iterdir()]  # untracked too
  hits = [
    name
    for name in set(files)
    if (ROOT / name).is_file()
    and placeholder
    in (ROOT / name).read_text(encoding="utf-8", errors="replace")
  ]
  assert not hits
