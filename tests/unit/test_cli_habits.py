"""The command line as a user meets it, in process: --version, defaults in
--help, a mistyped dataset, a broken tensorflow-datasets install."""

import re
import sys

import pytest

import tfp_emerging
from tfp_emerging import cli
from tfp_emerging import data


def test_version(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--version"])
  assert exit_info.value.code == 0
  assert capsys.readouterr().out.strip() == (
    f"tfp-emerging {tfp_emerging.__version__}"
  )


def _help(command):
  parser = cli.build_parser()
  action = next(a for a in parser._actions if a.dest == "command")
  return action.choices[command].format_help()


@pytest.mark.parametrize(
  "command", ["train", "demo", "sample", "evaluate", "export"]
)
def test_every_option_shows_its_default(command):
  """Every option with a value says its default (or is required)."""
  parser = cli.build_parser()
  action = next(a for a in parser._actions if a.dest == "command")
  for option in action.choices[command]._actions:
    if option.dest in ("help", "run", "json", "resume") or option.required:
      continue
    assert "default" in (option.help or ""), (command, option.dest)


def test_sample_temperature_defaults_to_the_runs():
  text = " ".join(_help("sample").split())
  assert re.search(r"--sample-temperature, 0\.7 unless set", text)
  assert (
    cli.build_parser()
    .parse_args(["sample", "--run", "r", "--out", "o.png"])
    .temperature
    is None
  )


def test_a_mistyped_dataset_lists_at_most_five_close_matches():
  with pytest.raises(data.DataError) as info:
    data.load("cifar1O")
  message = str(info.value)
  suggested = re.findall(r"'([\w-]+)'", message.split("Did you mean")[1])
  assert suggested[0] == "cifar10" and 1 <= len(suggested) <= 5
  assert len(message) < 400
  with pytest.raises(data.DataError, match="Did you mean 'digits'"):
    data.load("digts")


def test_a_broken_tensorflow_datasets_is_not_blamed_on_the_network(
  tmp_path, monkeypatch
):
  package = tmp_path / "tensorflow_datasets"
  package.mkdir()
  (package / "__init__.py").write_text(
    'raise ImportError(\'cannot import name "x" from "etils"\', '
    "name='etils')\n"
  )
  for name in [n for n in sys.modules if n.startswith("tensorflow_datasets")]:
    monkeypatch.delitem(sys.modules, name)
  monkeypatch.syspath_prepend(str(tmp_path))
  with pytest.raises(data.DataError) as info:
    data.load("mnist")
  assert "installed but does not import" in str(info.value)
  assert "network" not in str(info.value)
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(data.DataError, match="which is not installed"):
    data.load("mnist")
