"""`make docs`: the site builds offline with `mkdocs build --strict`.

Strict mode turns every warning into a failure, and `mkdocs.yml`'s
`validation` makes a link to a missing page or anchor, a page left out of
the nav and a docstring the API reference cannot parse warnings. The
notebooks of `colab/` are rendered (not executed) as the Tutorials.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, NO_MKDOCS_2_WARNING="1")


def build(site, config="mkdocs.yml"):
  return subprocess.run(
    [
      sys.executable,
      "-m",
      "mkdocs",
      "build",
      "--strict",
      "-f",
      str(config),
      "-d",
      str(site),
    ],
    cwd=ROOT,
    env=ENV,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
  site = tmp_path_factory.mktemp("site")
  result = build(site)
  assert result.returncode == 0, result.stdout + result.stderr
  return site


def test_every_page_is_built(site):
  for path in (ROOT / "docs").rglob("*.md"):
    page = path.relative_to(ROOT / "docs")
    folder = page.parent if page.name == "index.md" else page.with_suffix("")
    assert (site / folder / "index.html").exists(), page


def test_the_notebooks_are_tutorials(site):
  notebooks = sorted((ROOT / "colab").glob("*.ipynb"))
  assert notebooks
  tutorials = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
  for notebook in notebooks:
    page = site / "colab" / notebook.stem / "index.html"
    assert page.exists(), notebook.name
    assert f"colab/{notebook.stem}/" in tutorials, notebook.name


@pytest.mark.parametrize(
  "module, names",
  [
    (
      "bijectors",
      ["EmergingConv2D", "PeriodicConv2D", "Conv1x1", "AutoregressiveConv2D"],
    ),
    ("flows", ["Glow"]),
    ("keras", ["FlowModel", "WarmupSchedule"]),
    ("training", ["RunConfig", "fit", "train"]),
    ("data", ["load", "ImageDataset"]),
    ("export", ["export"]),
    ("distribute", ["make_strategy"]),
    ("presets", ["config"]),
  ],
)
def test_the_api_reference_renders_the_exported_names(site, module, names):
  page = (site / "api" / module / "index.html").read_text(encoding="utf-8")
  for name in names:
    assert f'id="tfp_emerging.{module}.{name}"' in page, name


def test_a_broken_link_fails_the_build(tmp_path):
  """The check is not vacuous: the same configuration with one dead link."""
  shutil.copytree(ROOT / "docs", tmp_path / "docs")
  with open(tmp_path / "docs" / "layers.md", "a", encoding="utf-8") as f:
    f.write("\nSee [nowhere](no-such-page.md).\n")
  config = tmp_path / "mkdocs.yml"
  text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
  config.write_text(
    text.replace("docs_dir: docs", f"docs_dir: {tmp_path / 'docs'}").replace(
      "  - docs/hooks.py", f"  - {ROOT / 'docs' / 'hooks.py'}"
    ),
    encoding="utf-8",
  )
  result = build(tmp_path / "site", config)
  assert result.returncode != 0
  assert "no-such-page.md" in result.stdout + result.stderr
