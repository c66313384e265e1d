"""Every name and path the repository quotes resolves.

Markdown, docstrings and comments quote dotted names (`tfp_emerging.ops.
checks.temperature`, or in backticks from a subpackage down, as
`training.fit`), repository paths (`tests/unit/test_cli.py`,
`benchmarks/run.py`), modules to run (`python -m benchmarks.targets`) and
command-line subcommands (`tfp-emerging evaluate`). A move or a rename that
leaves one behind fails here, naming the file and line that quotes it.

Templates are not references: a path with `<...>`, `{...}`, `*` or `...` in
it, or a name ending in a dot, is left alone.
"""

import importlib
import os
import pkgutil
import re
import subprocess

import pytest

import tfp_emerging
from tfp_emerging import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
TOP_LEVEL = ("tfp_emerging", "tests", "benchmarks", "docs", "colab", ".ci")
TEXT_ENDINGS = (".py", ".md", ".json", ".yml", ".yaml", ".cfg", ".toml", ".sh")
TEXT_NAMES = ("Makefile", "run")

DOTTED_NAME = re.compile(r"(?<![\w./-])tfp_emerging(?:\.\w+)+")
PATH = re.compile(
  r"(?<![\w./-])(?:"
  + "|".join(re.escape(top) for top in TOP_LEVEL)
  + r")/[\w./-]*[\w/]"
)
# `keras.` names the Keras package far more often than `tfp_emerging.keras`.
SUBMODULES = sorted(
  module.name
  for module in pkgutil.iter_modules(tfp_emerging.__path__)
  if module.name != "keras"
)
PACKAGE_RELATIVE = re.compile(
  r"`((?:" + "|".join(SUBMODULES) + r")\.[A-Za-z_][\w.]*)"
)
RUN_MODULE = re.compile(r"python3? -m ((?:tfp_emerging|benchmarks)[\w.]*)")
# The studies import the `benchmarks` package: run as scripts they fail
# with ModuleNotFoundError (`python -m benchmarks.NAME` runs them).
RUN_AS_SCRIPT = re.compile(r"python3? (benchmarks/\w+\.py)")
SUBCOMMAND = re.compile(r"(?<![\w-])tfp-emerging ([a-z][a-z-]*)")


def _tracked_text_files():
  listed = subprocess.run(
    ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    check=True,
  ).stdout.split()
  return sorted(
    path
    for path in listed
    if (path.endswith(TEXT_ENDINGS) or os.path.basename(path) in TEXT_NAMES)
    and not path.endswith(".ipynb")
    and os.path.isfile(os.path.join(ROOT, path))
  )


def _quotes(pattern, group=0):
  """`[(file:line, quoted text)]` of every match of `pattern`, this file's
  own examples left out."""
  found = []
  for path in _tracked_text_files():
    if path == "tests/unit/test_references.py":
      continue
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
      for number, line in enumerate(f, 1):
        for match in pattern.finditer(line):
          found.append((f"{path}:{number}", match.group(group)))
  return found


def _resolves(dotted):
  """Whether `a.b.c` names a module, or an attribute chain below one."""
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      target = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    try:
      for attribute in parts[cut:]:
        target = getattr(target, attribute)
    except AttributeError:
      return False
    return True
  return False


def _is_template(text):
  return any(mark in text for mark in ("<", "{", "*", "...")) or text.endswith(
    "."
  )


def test_every_quoted_dotted_name_resolves():
  stale = sorted(
    f"{where}: {name}"
    for where, name in _quotes(DOTTED_NAME)
    if not _is_template(name) and not _resolves(name)
  )
  assert not stale, "names that no longer exist:\n" + "\n".join(stale)


def test_every_name_quoted_from_a_subpackage_down_resolves():
  stale = sorted(
    f"{where}: {name}"
    for where, name in _quotes(PACKAGE_RELATIVE, group=1)
    if not _is_template(name) and not _resolves(f"tfp_emerging.{name}")
  )
  assert not stale, "names that no longer exist:\n" + "\n".join(stale)


def test_every_quoted_repository_path_exists():
  stale = sorted(
    f"{where}: {path}"
    for where, path in _quotes(PATH)
    if not _is_template(path) and not os.path.exists(os.path.join(ROOT, path))
  )
  assert not stale, "paths that no longer exist:\n" + "\n".join(stale)


def test_every_quoted_module_to_run_exists():
  stale = sorted(
    f"{where}: python -m {module}"
    for where, module in _quotes(RUN_MODULE, group=1)
    if not _resolves(module.rstrip("."))
  )
  assert not stale, "modules that no longer exist:\n" + "\n".join(stale)


def test_no_study_is_quoted_run_as_a_script():
  wrong = sorted(
    f"{where}: python {script}" for where, script in _quotes(RUN_AS_SCRIPT, 1)
  )
  assert not wrong, "run these as python -m benchmarks.NAME:\n" + "\n".join(
    wrong
  )


def test_every_quoted_subcommand_exists():
  subcommands = set(cli.build_parser()._subparsers._group_actions[0].choices)
  stale = sorted(
    f"{where}: tfp-emerging {name}"
    for where, name in _quotes(SUBCOMMAND, group=1)
    if name not in subcommands
  )
  assert not stale, "subcommands that do not exist:\n" + "\n".join(stale)


@pytest.mark.parametrize(
  "pattern, text, expected",
  [
    (DOTTED_NAME, "see `tfp_emerging.ops.checks.temperature`.", True),
    (DOTTED_NAME, "see `tfp_emerging.natural_images`.", False),
    (PACKAGE_RELATIVE, "`data.train_batches` splits", True),
    (PACKAGE_RELATIVE, "`training.train_batches` splits", False),
    (PATH, "in `tests/unit/test_cli.py`", True),
    (PATH, "in tests/bijectors/test_properties.py", False),
  ],
)
def test_the_checks_can_fail(pattern, text, expected):
  """The patterns find both kinds in a sentence, and a stale one does not
  resolve (the tests above would report it)."""
  (quoted,) = [m.group(m.lastindex or 0) for m in pattern.finditer(text)]
  if pattern is DOTTED_NAME:
    exists = _resolves(quoted)
  elif pattern is PACKAGE_RELATIVE:
    exists = _resolves(f"tfp_emerging.{quoted}")
  else:
    exists = os.path.exists(os.path.join(ROOT, quoted))
  assert exists is expected
