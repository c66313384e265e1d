"""mkdocs hook: files of the repository outside `docs/` that the site shows.

* The committed notebooks `colab/*.ipynb` become the Tutorials. They stay
  where Colab opens them: this hook adds each one to the site as
  `colab/<NAME>.ipynb`, for mkdocs-jupyter to render without executing it,
  and appends it to the nav's Tutorials section, so a notebook added to
  `colab/` appears without editing `mkdocs.yml`.
* The Tutorials page's table of notebooks, each with its Colab badge, is
  made from the same files, in place of the marker `TABLE` in that page;
  a badge opens the repository its notebook's install cell names
  (`REPOSITORY`, which `make notebooks REPOSITORY=OWNER/NAME` stamps).
* The figures the benchmarks write, `benchmarks/results/*.png`, are added
  as they are (a page links them as `benchmarks/results/<NAME>.png`), so the
  site never shows a stale copy.
"""

import json
import pathlib
import re

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDER = "colab"
SECTION = "Tutorials"
FIGURES = "benchmarks/results"
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
  """The committed notebooks, in their numbered order."""
  return sorted((ROOT / FOLDER).glob("*.ipynb"))


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
      f"| [`{path.stem}`](../{FOLDER}/{path.name}) | {title(path)} | "
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
    f"{FOLDER}/{path.name}" for path in notebooks()
  ]
  return config


@event_priority(100)  # Before mkdocs-jupyter's on_files makes them pages.
def on_files(files, config):
  figures = sorted((ROOT / FIGURES).glob("*.png"))
  for path in [*notebooks(), *figures]:
    # A File of the repository root, not a generated one: mkdocs-jupyter's
    # wrapper only sees the source path of files read from a folder.
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
