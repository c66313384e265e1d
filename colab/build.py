"""Writes the notebooks `colab/<NN_name>.ipynb` from their sources
`colab/<NN_name>.py`.

Each notebook has one source, a Python file in jupytext's percent format
(`# %%` starts a code cell, `# %% [markdown]` a Markdown one), which is
where it is edited; the `.ipynb` beside it, what Colab and the docs site
open, is written here: no outputs or execution counts, fixed cell ids and
metadata, so rebuilding an unchanged source changes no byte
(`tests/integration/test_notebooks.py` checks the committed files).

Every notebook opens with the same setup cell, kept once in
`colab/install_cell.py` (one code cell, percent format) and put before the
source's own cells here: it installs the package where needed and sets
`SMALL`, the size switch the sources read; a source starts with its title.

    python colab/build.py                          # make notebooks
    python colab/build.py --repository OWNER/NAME  # the same, with
                                                   # REPOSITORY=OWNER/NAME
    python colab/build.py --execute [NN_name ...]  # make tutorials

`--repository` first stamps `OWNER/NAME` into the install cell (its line
`REPOSITORY = "..."`) and into README.md's Colab badges
(`https://colab.research.google.com/github/OWNER/NAME/blob/main/colab/...`),
for a fork whose notebooks install from, and open at, the fork.

`--execute` also runs each built notebook top to bottom (`execute`: a
kernel of this Python, matplotlib's inline backend, in a scratch folder;
at full size unless the environment sets TFP_EMERGING_NOTEBOOK_SMALL=1)
and writes the executed copy, outputs and figures included, to
`docs/tutorials/<NN_name>.ipynb`: what the docs site shows as the Tutorials.
A copy is written only if every cell that shows a figure (`plt.show()`)
produced one.
"""

import argparse
import os
import pathlib
import re
import sys
import tempfile

from ipykernel import kernelspec
import jupytext
from nbclient import NotebookClient
import nbformat

COLAB = pathlib.Path(__file__).resolve().parent
README = COLAB.parent / "README.md"
# The first cell of every notebook: the install and the size switch.
INSTALL_CELL = COLAB / "install_cell.py"
# The executed copies, `--execute`'s output: the docs site's Tutorials.
TUTORIALS = COLAB.parent / "docs" / "tutorials"
KERNEL = "tfp-emerging-notebook"
# matplotlib's inline backend: each figure a cell shows becomes an
# image/png output of that cell (Agg would draw it nowhere).
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# The statement after which a cell must have shown a figure.
SHOW = "plt.show()"
CELL_TIMEOUT_S = 3600
# The install cell's one variable.
REPOSITORY_LINE = re.compile(r'^REPOSITORY = "[^"\n]*"$', re.M)
BADGE_URL = re.compile(
  r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/main/colab/"
)
SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")
METADATA = {
  "kernelspec": {
    "name": "python3",
    "display_name": "Python 3",
    "language": "python",
  },
  "language_info": {"name": "python"},
  "colab": {"provenance": []},
}


def sources() -> list:
  """The notebooks' sources, `colab/<NN_name>.py`, in their numbered order."""
  return sorted(COLAB.glob("[0-9][0-9]_*.py"))


def notebook(
  source: pathlib.Path, install_cell: pathlib.Path = INSTALL_CELL
) -> nbformat.NotebookNode:
  """The notebook of one percent-format source: the install cell, then the
  source's cells in order, ids `cell-00, cell-01, ...`, no outputs, the
  metadata above (none of jupytext's).

  Raises:
    ValueError: `install_cell` is not one code cell.
  """
  install = jupytext.read(install_cell, fmt="py:percent").cells
  if [cell.cell_type for cell in install] != ["code"]:
    raise ValueError(
      f"{install_cell} must hold one code cell; found "
      f"{[cell.cell_type for cell in install]}."
    )
  cells = install + jupytext.read(source, fmt="py:percent").cells
  built = nbformat.v4.new_notebook(metadata=METADATA)
  for index, cell in enumerate(cells):
    make = (
      nbformat.v4.new_markdown_cell
      if cell.cell_type == "markdown"
      else nbformat.v4.new_code_cell
    )
    built.cells.append(make(cell.source.strip("\n"), id=f"cell-{index:02d}"))
  nbformat.validate(built)
  return built


def execute(
  notebook: nbformat.NotebookNode,
  folder: pathlib.Path,
  environment: dict | None = None,
  timeout: int = CELL_TIMEOUT_S,
) -> nbformat.NotebookNode:
  """Runs `notebook` top to bottom, in place, and returns it.

  The kernel is this Python (`sys.executable`, via a kernelspec written to
  a scratch folder; what is written to its file descriptors, TensorFlow's
  C++ logs, is not captured), started in `folder` with the package of this
  checkout on `PYTHONPATH`, matplotlib's inline backend, and the process
  environment updated by `environment`. No timing metadata is recorded.

  Raises:
    nbclient.exceptions.CellExecutionError: at the first failing cell.
    nbclient.exceptions.CellTimeoutError: a cell ran past `timeout` s.
  """
  with tempfile.TemporaryDirectory() as jupyter_dir:
    kernelspec.write_kernel_spec(
      os.path.join(jupyter_dir, "kernels", KERNEL),
      # Outputs are what Python prints; TensorFlow's C++ logs, written to
      # the process's file descriptors, stay out of them.
      extra_arguments=["--IPKernelApp.capture_fd_output=False"],
    )
    paths = [str(COLAB.parent), os.environ.get("PYTHONPATH")]
    saved = dict(os.environ)
    os.environ.update(
      JUPYTER_PATH=jupyter_dir,
      MPLBACKEND=INLINE_BACKEND,
      TF_CPP_MIN_LOG_LEVEL="2",
      PYTHONPATH=os.pathsep.join(p for p in paths if p),
    )
    os.environ.update(environment or {})
    try:
      NotebookClient(
        notebook,
        kernel_name=KERNEL,
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(folder)}},
      ).execute()
    finally:
      os.environ.clear()
      os.environ.update(saved)
  return notebook


def missing_figures(notebook: nbformat.NotebookNode) -> list:
  """The ids of the code cells that call `plt.show()` but hold no
  image/png output: a figure that failed to appear."""
  return [
    cell.id
    for cell in notebook.cells
    if cell.cell_type == "code"
    and SHOW in cell.source
    and not any(
      "image/png" in output.get("data", {}) for output in cell.outputs
    )
  ]


def write_tutorial(source: pathlib.Path) -> pathlib.Path:
  """Builds, executes and writes the executed copy of one source,
  `docs/tutorials/<NN_name>.ipynb`; returns its path.

  Raises:
    RuntimeError: a cell that shows a figure produced none.
  """
  executed = notebook(source)
  with tempfile.TemporaryDirectory() as folder:  # not a checkout
    execute(executed, pathlib.Path(folder))
  missing = missing_figures(executed)
  if missing:
    raise RuntimeError(
      f"{source.name}: cells {missing} call {SHOW} but show no figure."
    )
  target = TUTORIALS / source.with_suffix(".ipynb").name
  nbformat.write(executed, target)
  return target


def stamp(
  repository: str,
  install_cell: pathlib.Path = INSTALL_CELL,
  readme: pathlib.Path = README,
) -> None:
  """Writes `repository` ("OWNER/NAME") into the install cell and into
  README.md's Colab badges.

  Raises:
    ValueError: `repository` is not `OWNER/NAME`, or the install cell has
      not exactly one line `REPOSITORY = "..."`.
  """
  if not SLUG.fullmatch(repository):
    raise ValueError(
      f"repository must be GitHub's OWNER/NAME, e.g. "
      f"'tfp-emerging/tfp_emerging'; got {repository!r}."
    )
  text = install_cell.read_text(encoding="utf-8")
  text, count = REPOSITORY_LINE.subn(f'REPOSITORY = "{repository}"', text)
  if count != 1:
    raise ValueError(
      f'{install_cell}: needs one line REPOSITORY = "..."; found {count}.'
    )
  install_cell.write_text(text, encoding="utf-8")
  readme.write_text(
    BADGE_URL.sub(
      f"https://colab.research.google.com/github/{repository}/blob/main/colab/",
      readme.read_text(encoding="utf-8"),
    ),
    encoding="utf-8",
  )


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--repository",
    metavar="OWNER/NAME",
    help="stamp this GitHub repository into the install "
    "cell and README.md's badges first",
  )
  parser.add_argument(
    "--execute",
    action="store_true",
    help="also run the notebooks and write the executed copies to "
    "docs/tutorials/",
  )
  parser.add_argument(
    "names",
    nargs="*",
    metavar="NN_name",
    help="with --execute: only these notebooks (default: all)",
  )
  options = parser.parse_args(argv)
  if options.names and not options.execute:
    parser.error("notebook names are for --execute")
  if options.repository:
    stamp(options.repository)
  for source in sources():
    target = source.with_suffix(".ipynb")
    nbformat.write(notebook(source), target)
    print("wrote", target.relative_to(COLAB.parent))
  if options.execute:
    known = [source.stem for source in sources()]
    unknown = sorted(set(options.names) - set(known))
    if unknown:
      parser.error(f"no notebooks {unknown}; there are {known}")
    for source in sources():
      if not options.names or source.stem in options.names:
        target = write_tutorial(source)
        print("executed", target.relative_to(COLAB.parent))


if __name__ == "__main__":
  main(sys.argv[1:])
