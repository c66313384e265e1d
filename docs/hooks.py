"""mkdocs hook: files of the repository outside `docs/` that the site shows.

* The notebooks' executed copies, `docs/tutorials/<NAME>.ipynb` (`make
  tutorials`: the notebooks of `colab/` run at full size, outputs and
  figures kept), become the Tutorials: mkdocs-jupyter renders them without
  executing them, and this hook appends each to the nav's Tutorials
  section, so a notebook added to `colab/` appears without editing
  `mkdocs.yml`. A notebook of `colab/` without its executed copy fails the
  build.
* The Tutorials page's table of notebooks, each with its Colab badge, is
  made from the same files, in place of the marker `TABLE` in that page;
  a badge opens, on Colab, the notebook of `colab/` (without outputs) in
  the repository its install cell names (`REPOSITORY`, which `make
  notebooks REPOSITORY=OWNER/NAME` stamps).
* The figures the benchmarks write, `benchmarks/results/*.png`, are added
  as they are (a page links them as `benchmarks/results/<NAME>.png`), so the
  site never shows a stale copy; so are the repository's `CONTRIBUTING.md`
  and `CHANGELOG.md`, pages of the nav.
"""

import json
import pathlib
import re

from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDER = "colab"
SECTION = "Tutorials"
FIGURES = "benchmarks/results"
# Pages of the site that live at the repository's root.
ROOT_PAGES = ["CONTRIBUTING.md", "CHANGELOG.md"]
# The executed copies, in the docs folder, beside the Tutorials page.
TUTORIALS = "tutorials"
TUTORIALS_PAGE = "tutorials/index.md"
TABLE = "<!-- the notebooks of colab/, made by docs/hooks.py -->"
COLAB_URL = (
  "https://colab.research.google.com/github/{repository}/blob/main/colab/{name}"
)
# The install cell's variable, which `make notebooks REPOSITORY=...` stamps
# (as it does README.md's badges).
REPOSITORY = re.compile(r'^REPOSITORY = "([^"]+)"$', re.M)
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def notebooks():
  """The executed copies of the notebooks, in their numbered order.

  Raises:
    ValueError: a notebook of `colab/` has no executed copy, or a copy no
      notebook.
  """
  copies = sorted((ROOT / "docs" / TUTORIALS).glob("*.ipynb"))
  names = sorted(path.stem for path in (ROOT / FOLDER).glob("*.ipynb"))
  if [path.stem for path in copies] != names:
    raise ValueError(
      f"docs/{TUTORIALS}/ must hold an executed copy of each notebook of "
      f"{FOLDER}/, {names}; it holds {[path.stem for path in copies]}. "
      f"Run `make tutorials`."
    )
  return copies


def title(path):
  """The notebook's first Markdown heading."""
  for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
    if cell["cell_type"] == "markdown":
      for line in "".join(cell["source"]).splitlines():
        if line.startswith("#"):
          return line.lstrip("#").strip()
  raise ValueError(f"{path} has no Markdown heading to use as its title")


def repository(path):
  """The GitHub `OWNER/NAME` the notebook's install cell installs from."""
  install_cell = "".join(
    json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"]
  )
  found = REPOSITORY.search(install_cell)
  if not found:
    raise ValueError(f"{path}: its first cell sets no REPOSITORY")
  return found.group(1)


def notebook_table():
  rows = ["| notebook | | open |", "|---|---|---|"]
  for path in notebooks():
    url = COLAB_URL.format(repository=repository(path), name=path.name)
    rows.append(
      f"| [`{path.stem}`]({path.name}) | {title(path)} | "
      f"[![Open In Colab]({BADGE})]({url}) |"
    )
  return "\n".join(rows)


def on_config(config):
  sections = [
    entry
    for entry in config.nav or []
    if isinstance(entry, dict) and SECTION in entry
  ]
  if len(sections) != 1:
    raise ValueError(
      f"mkdocs.yml's nav needs one {SECTION!r} section, found {len(sections)}"
    )
  sections[0][SECTION] = list(sections[0][SECTION]) + [
    f"{TUTORIALS}/{path.name}" for path in notebooks()
  ]
  return config


def on_files(files, config):
  figures = sorted((ROOT / FIGURES).glob("*.png"))
  for path in [*figures, *(ROOT / name for name in ROOT_PAGES)]:
    # A File of the repository root, as it is there.
    files.append(
      File(
        path.relative_to(ROOT).as_posix(),
        src_dir=str(ROOT),
        dest_dir=config.site_dir,
        use_directory_urls=config.use_directory_urls,
      )
    )
  return files


def on_page_markdown(markdown, page, config, files):
  if page.file.src_uri != TUTORIALS_PAGE:
    return markdown
  if TABLE not in markdown:
    raise ValueError(f"{TUTORIALS_PAGE} lacks the marker {TABLE!r}")
  return markdown.replace(TABLE, notebook_table())
