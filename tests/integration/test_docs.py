"""`make docs`: the site builds offline with `mkdocs build --strict`.

Strict mode turns every warning into a failure, and `mkdocs.yml`'s
`validation` makes a link to a missing page or anchor, a page left out of
the nav and a docstring the API reference cannot parse warnings. The
notebooks' executed copies (`docs/tutorials/`, `make tutorials`) are
rendered, figures included, as the Tutorials. The API
reference renders every name its modules export, constants included, and
each class or function once.
"""

import ast
import collections
import importlib
import inspect
import pathlib
import re
import shutil

import pytest

from tests.testlib import workers

ROOT = pathlib.Path(__file__).resolve().parents[2]


def build(site, config="mkdocs.yml"):
  """`mkdocs build --strict` of `config` into `site`, to its end."""
  return workers.run_python(
    ["-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
    env=workers.child_environment(NO_MKDOCS_2_WARNING="1"),
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


def test_contributing_and_changelog_are_pages(site):
  for name in ["CONTRIBUTING", "CHANGELOG"]:
    assert (site / name / "index.html").exists(), name


def test_contributing_names_every_make_target():
  """CONTRIBUTING.md's table keeps up with the Makefile's targets."""
  makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
  targets = re.search(r"^\.PHONY: (.*)$", makefile, re.M).group(1).split()
  assert "test" in targets
  guide = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
  assert [t for t in targets if f"`make {t}`" not in guide] == []
  changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
  assert "## [Unreleased]" in changelog


def test_the_notebooks_are_tutorials_with_their_figures(site):
  """Each notebook of `colab/` is a page made from its executed copy in
  `docs/tutorials/`, figures included."""
  notebooks = sorted((ROOT / "colab").glob("*.ipynb"))
  assert notebooks
  tutorials = (site / "tutorials" / "index.html").read_text(encoding="utf-8")
  for notebook in notebooks:
    page = site / "tutorials" / notebook.stem / "index.html"
    assert page.exists(), notebook.name
    assert f'href="{notebook.stem}/"' in tutorials, notebook.name
    assert "data:image/png;base64," in page.read_text(encoding="utf-8")


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


def _api_modules():
  """`(page, module)` for every `::: tfp_emerging.<name>` of `docs/api/*.md`."""
  return [
    (page.stem, name)
    for page in sorted((ROOT / "docs" / "api").glob("*.md"))
    for name in re.findall(
      r"^::: (tfp_emerging[\w.]*)$", page.read_text(encoding="utf-8"), re.M
    )
  ]


def _documented_names(module_name):
  """What the reference must show of a module: its `__all__` less the
  modules and other packages' objects it re-exports; without `__all__`, the
  public functions, classes and UPPER_CASE constants its source defines."""
  module = importlib.import_module(module_name)
  if hasattr(module, "__all__"):
    names = []
    for name in module.__all__:
      value = getattr(module, name)
      if inspect.ismodule(value):
        continue
      home = getattr(value, "__module__", None)
      if (inspect.isclass(value) or inspect.isfunction(value)) and not (
        home or ""
      ).startswith("tfp_emerging"):
        continue
      names.append(name)
    return names
  tree = ast.parse(pathlib.Path(module.__file__).read_text(encoding="utf-8"))
  names = []
  for node in tree.body:
    if isinstance(node, ast.FunctionDef | ast.ClassDef):
      names.append(node.name)
    elif isinstance(node, ast.Assign):
      names += [
        target.id
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.isupper()
      ]
  return [name for name in names if not name.startswith("_")]


def _ids(site, page):
  html = (site / "api" / page / "index.html").read_text(encoding="utf-8")
  return re.findall(r'id="(tfp_emerging\.[\w.]+)"', html)


def test_the_api_reference_has_the_modules_that_docstrings_name():
  modules = {module for _, module in _api_modules()}
  for name in [
    "tfp_emerging.ops.autoregressive",
    "tfp_emerging.ops.masked_conv",
    "tfp_emerging.ops.triangular_solvers",
    "tfp_emerging.ops.fft_inverse",
    "tfp_emerging.ops.fourier",
    "tfp_emerging.ops.batched_inverse",
    "tfp_emerging.ops.checks",
    "tfp_emerging.ops.conditions",
    "tfp_emerging.ops.initializers",
    "tfp_emerging.image_grid",
    "tfp_emerging.training.sample_grids",
    "tfp_emerging.timing",
    "tfp_emerging.cli",
    "tfp_emerging.flows.dequantization",
    "tfp_emerging.flows.priors",
  ]:
    assert name in modules, name


def test_every_exported_name_is_rendered_constants_included(site):
  missing = []
  for page, module in _api_modules():
    ids = set(_ids(site, page))
    missing += [
      f"{page}.md: {module}.{name}"
      for name in _documented_names(module)
      if f"{module}.{name}" not in ids
    ]
  assert not missing


def test_each_class_and_function_is_rendered_once(site):
  """Once in the whole reference, not also under the submodule that
  defines it (`flows.Glow` and `flows.glow.Glow`)."""
  places = collections.defaultdict(list)
  for page in {page for page, _ in _api_modules()}:
    for anchor in set(_ids(site, page)):
      module_name, _, name = anchor.rpartition(".")
      try:
        value = getattr(importlib.import_module(module_name), name)
      except (ImportError, AttributeError):
        continue  # a member of a class, or a section's anchor
      if inspect.isclass(value) or inspect.isfunction(value):
        places[value].append(anchor)
  assert places
  assert not {
    f"{value.__module__}.{value.__qualname__}": sorted(anchors)
    for value, anchors in places.items()
    if len(anchors) > 1
  }


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
