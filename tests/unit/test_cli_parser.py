"""`tfp_emerging.cli_parser`: the run options' flags, built from the table of
`RunConfig` fields, parse into the fields with `RunConfig`'s types."""

import dataclasses

from tfp_emerging import cli_parser
from tfp_emerging import training


def _given(*argv):
  return cli_parser.given_options(
    cli_parser.build_parser().parse_args(["train", "--out", "run", *argv])
  )


def test_nothing_given_is_no_option():
  assert _given() == {}


def test_each_flag_sets_its_field_with_the_defaults_type():
  given = _given(
    "--split",
    "a,b",
    "--num-levels",
    "2",
    "--learning-rate",
    "1e-3",
    "--checkpoint-every",
    "5",
    "--no-condition-couplings",
    "--conditional",
    "--mixing",
    "qr",
  )
  assert given == {
    "splits": ["a", "b"],
    "mixing": "qr",
    "num_levels": 2,
    "learning_rate": 1e-3,
    "checkpoint_every": 5,
    "conditional": True,
    "condition_couplings": False,
  }
  assert type(given["num_levels"]) is int
  assert type(given["learning_rate"]) is float


def test_every_option_a_run_is_defined_by_has_a_flag():
  set_by_the_run = {"num_bins", "image_shape", "num_classes", "changes"}
  fields = {f.name for f in dataclasses.fields(training.RunConfig)}
  assert {name for name, *_ in cli_parser._RUN_OPTIONS} == (
    fields - set_by_the_run
  )
