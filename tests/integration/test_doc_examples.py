"""Every ```python block of README.md and docs/ runs, one test per block.

The pages are parsed with `markdown-it-py` (CommonMark), so a block is what
a Markdown renderer shows as one: fenced code whose info string starts with
`python`. Each block runs on its own, in a fresh namespace and an empty
working directory (the files it writes go to a temporary folder); a block
that needs a name imports or defines it. Shell commands are ```sh blocks and
are not run. Tracebacks name the page and its line.
"""

import pathlib

import markdown_it
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# The languages a fenced block may name; only python runs.
LANGUAGES = {"python", "sh", "diff", "text", "json"}


def fences(path):
  """`(line, language, code)` of each code block of the page at `path`."""
  tokens = markdown_it.MarkdownIt("commonmark").parse(
    path.read_text(encoding="utf-8")
  )
  for token in tokens:
    if token.type in ("fence", "code_block"):
      language = token.info.split()[0] if token.info.strip() else ""
      yield token.map[0] + 1, language, token.content


def python_blocks():
  for path in PAGES:
    for line, language, code in fences(path):
      if language == "python":
        name = f"{path.relative_to(ROOT)}:{line}"
        yield pytest.param(path, line, code, id=name)


@pytest.mark.parametrize("path, line, code", list(python_blocks()))
def test_python_block_runs(path, line, code, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # Code starts on the line after the fence: tracebacks give the page's lines.
  source = "\n" * line + code
  exec(compile(source, str(path), "exec"), {"__name__": "__doc_example__"})


def test_every_code_block_names_a_known_language():
  """An untagged or mistagged block would silently escape the test above."""
  unknown = [
    f"{path.relative_to(ROOT)}:{line} {language!r}"
    for path in PAGES
    for line, language, _ in fences(path)
    if language not in LANGUAGES
  ]
  assert not unknown, f"code blocks without a known language: {unknown}"


def test_the_guide_has_examples():
  counts = {
    path.name: sum(language == "python" for _, language, _ in fences(path))
    for path in PAGES
  }
  for page in (
    "README.md",
    "layers.md",
    "training.md",
    "conditioning.md",
    "data.md",
    "scaling.md",
  ):
    assert counts[page] >= 1, page
