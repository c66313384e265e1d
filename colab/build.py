"""Writes the notebooks `colab/NN_name.ipynb` from their sources
`colab/NN_name.py`.

Each notebook has one source, a Python file in jupytext's percent format
(`# %%` starts a code cell, `# %% [markdown]` a Markdown one), which is
where it is edited; the `.ipynb` beside it, what Colab and the docs site
open, is written here: no outputs or execution counts, fixed cell ids and
metadata, so rebuilding an unchanged source changes no byte
(`tests/integration/test_notebooks.py` checks the committed files).

Every notebook opens with the same install cell, kept once in
`colab/install_cell.py` (one code cell, percent format) and put before the
source's own cells here; a source starts with its title.

    python colab/build.py                          # make notebooks
    python colab/build.py --repository OWNER/NAME  # the same, with
                                                   # REPOSITORY=OWNER/NAME

`--repository` first stamps `OWNER/NAME` into the install cell (its line
`REPOSITORY = "..."`) and into README.md's Colab badges
(`https://colab.research.google.com/github/OWNER/NAME/blob/main/colab/...`),
for a fork whose notebooks install from, and open at, the fork.
"""

import argparse
import pathlib
import re
import sys

import jupytext
import nbformat

COLAB = pathlib.Path(__file__).resolve().parent
README = COLAB.parent / "README.md"
# The first cell of every notebook.
INSTALL_CELL = COLAB / "install_cell.py"
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
  """The notebooks' sources, `colab/NN_name.py`, in their numbered order."""
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
  options = parser.parse_args(argv)
  if options.repository:
    stamp(options.repository)
  for source in sources():
    target = source.with_suffix(".ipynb")
    nbformat.write(notebook(source), target)
    print("wrote", target.relative_to(COLAB.parent))


if __name__ == "__main__":
  main(sys.argv[1:])
