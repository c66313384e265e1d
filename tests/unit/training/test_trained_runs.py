"""`tfp_emerging.training.trained_runs`: the checks of `sample_run`,
`export_run` and `evaluate_run` on their arguments, made before a run is
loaded, name the parameter as Python spells it (the command line's flags
are `tests/unit/test_cli.py`'s)."""

import dataclasses

import pytest

from tests.testlib.runs import tiny_config
from tfp_emerging import cli
from tfp_emerging import training
from tfp_emerging.training import run_dir


@pytest.fixture
def no_run(tmp_path):
  """A folder holding no run: every call below fails before reading it."""
  return str(tmp_path / "no-run")


@pytest.mark.parametrize(
  ("call", "parameter", "message"),
  [
    (
      lambda run, tmp: training.sample_run(run, tmp),
      "out",
      "out {tmp}: is a folder; give the PNG file to write.",
    ),
    (
      lambda run, tmp: training.sample_run(run, f"{tmp}/a.png", n=0),
      "n",
      "n must be >= 1; got 0.",
    ),
    (
      lambda run, tmp: training.sample_run(
        run, f"{tmp}/a.png", temperature=float("nan")
      ),
      "temperature",
      "temperature must be >= 0; got nan.",
    ),
    (
      lambda run, tmp: training.evaluate_run(run, num_samples=0),
      "num_samples",
      "num_samples must be an integer >= 1; got 0 (evaluate_run's "
      "num_samples).",
    ),
    (
      lambda run, tmp: training.export_run(run, f"{tmp}/notes.txt"),
      "out",
      "out {tmp}/notes.txt: is a file; give the SavedModel folder to write.",
    ),
  ],
  ids=["sample-out", "sample-n", "sample-temperature", "evaluate", "export"],
)
def test_argument_errors_name_the_parameter(
  no_run, tmp_path, call, parameter, message
):
  (tmp_path / "notes.txt").write_text("mine")
  with pytest.raises(training.ArgumentError) as info:
    call(no_run, str(tmp_path))
  assert str(info.value) == message.format(tmp=tmp_path)
  assert info.value.parameters[0] == parameter
  assert "--" not in str(info.value)


def test_export_names_both_parameters_it_speaks_of(tmp_path, no_run):
  out = tmp_path / "model"
  out.mkdir()
  (out / "saved_model.pb").write_bytes(b"")
  with pytest.raises(training.ArgumentError) as info:
    training.export_run(no_run, str(out))
  assert info.value.parameters == ("out", "overwrite")
  assert str(info.value) == (
    f"out {out}: already holds a SavedModel; pass overwrite to replace it, "
    f"or choose another out."
  )


@pytest.mark.parametrize(
  ("argv", "message"),
  [
    (["sample", "--out", "{tmp}"], "--out {tmp}: is a folder; give the PNG"),
    (
      ["sample", "--n", "0", "--out", "{tmp}/a.png"],
      "--n must be >= 1; got 0.",
    ),
    (
      ["evaluate", "--samples", "0"],
      "--samples must be an integer >= 1; got 0 (evaluate_run's num_samples).",
    ),
    (
      ["export", "--out", "{tmp}/model", "--run"],
      "--out {tmp}/model: already holds a SavedModel; pass --overwrite to "
      "replace it, or choose another --out.",
    ),
  ],
  ids=["sample-out", "sample-n", "evaluate", "export"],
)
def test_the_command_line_names_the_flag(
  no_run, tmp_path, capsys, argv, message
):
  (tmp_path / "model").mkdir()
  (tmp_path / "model" / "saved_model.pb").write_bytes(b"")
  argv = [part.format(tmp=tmp_path) for part in argv]
  run = ["--run", no_run] if "--run" not in argv else [no_run]
  assert cli.main(argv + run) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"tfp-emerging {argv[0]}: error: ")
  assert message.format(tmp=tmp_path) in err


def test_a_run_without_a_checkpoint_says_to_resume_it(
  digits_npz, tmp_path, capsys
):
  run = tmp_path / "run"
  run.mkdir()
  run_dir.write_json(
    str(run / "config.json"),
    dataclasses.asdict(
      tiny_config(digits_npz, num_bins=17, image_shape=[8, 8, 1])
    ),
  )
  with pytest.raises(training.ArgumentError) as info:
    training.load_run(str(run))
  assert str(info.value) == (
    f"{run}: no checkpoint yet (no epoch finished); train it with resume first."
  )
  assert cli.main(["evaluate", "--run", str(run)]) == 2
  assert capsys.readouterr().err.endswith("train it with --resume first.\n")
