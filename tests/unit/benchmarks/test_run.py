"""The benchmark suite's `--quick` run and `benchmarks/targets.py`: well-formed
records, the targets read the right ratios, the docs' performance page holds
the tables the records make. Never timings."""

import json

import pytest

from benchmarks import run as benchmarks
from benchmarks import targets

# Trains models or runs whole commands: left out of `make test-unit`.
pytestmark = pytest.mark.slow

FIELDS = {
  "layer",
  "op",
  "solver",
  "shape",
  "jit",
  "seconds",
  "ratio",
  "ratio_to",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  """`main(["--quick", "--json", "--out", F])`: printed lines and F's list."""
  out = tmp_path_factory.mktemp("bench") / "records.json"
  capture = pytest.MonkeyPatch()
  lines = []
  capture.setattr(
    "builtins.print", lambda *a, **k: lines.append(" ".join(map(str, a)))
  )
  try:
    status = benchmarks.main(["--quick", "--json", "--out", str(out)])
  finally:
    capture.undo()
  assert status == 0
  return [json.loads(line) for line in lines], json.loads(out.read_text())


def test_every_line_is_a_complete_record_and_the_file_matches(quick_run):
  printed, saved = quick_run
  assert printed == saved
  for record in printed:
    assert set(record) == FIELDS
    assert isinstance(record["seconds"], float) and record["seconds"] > 0
    assert isinstance(record["jit"], bool)
    assert record["shape"] and all(isinstance(s, int) for s in record["shape"])
    assert (record["ratio"] is None) == (record["ratio_to"] is None)


def test_the_quick_run_covers_every_layer_op_and_mode(quick_run):
  records = quick_run[0]
  seen = {(r["layer"], r["op"], r["solver"], r["jit"]) for r in records}
  expected = {("conv2d", "forward", None)}
  for layer in ("AutoregressiveConv2D", "EmergingConv2D"):
    expected |= {(layer, "forward", None)} | {
      (layer, "inverse", solver) for solver in benchmarks.SOLVERS
    }
  for layer in (
    "PeriodicConv2D",
    "PeriodicConv2D[frozen]",
    "Conv1x1[qr]",
    "EmergingConv2D[equivalent]",
  ):
    expected |= {(layer, "forward", None), (layer, "inverse", None)}
  expected |= {("EmergingConv2D[frozen]", "forward", None)} | {
    ("EmergingConv2D[frozen]", "inverse", solver)
    for solver in benchmarks.FROZEN_SOLVERS
  }
  for mixing in benchmarks.QUICK_MIXINGS:
    expected |= {
      (f"Glow[tiny, {mixing}]", op, None) for op in ("train_step", "sample")
    }
    if mixing in benchmarks.FROZEN_GLOW_MIXINGS:
      expected.add((f"Glow[tiny, {mixing}, frozen]", "sample", None))
  assert seen == {e + (jit,) for e in expected for jit in (False, True)}


def test_ratios_divide_by_the_named_measurement_of_the_same_run(quick_run):
  records = quick_run[0]
  for record in records:
    if record["ratio_to"] is None:
      assert record["layer"] == "conv2d"
      continue
    layer, op = record["ratio_to"].rsplit(" ", 1)
    [base] = [
      r
      for r in records
      if (r["layer"], r["op"], r["solver"], r["shape"], r["jit"])
      == (layer, op, None, record["shape"], record["jit"])
    ]
    assert record["ratio"] == pytest.approx(record["seconds"] / base["seconds"])
    # A forward against the dense convolution, an inverse against its own
    # forward, a flow against the 1x1 mixing's same op (a frozen flow against
    # the frozen 1x1's).
    if record["layer"].startswith("Glow["):
      frozen = ", frozen" if record["layer"].endswith(", frozen]") else ""
      assert layer.endswith(f", 1x1{frozen}]") and op == record["op"]
    elif record["op"] == "inverse":
      assert (layer, op) == (record["layer"], "forward")
    else:
      assert (layer, op) == ("conv2d", "forward")


def test_the_suite_measures_every_ratio_a_target_names(quick_run):
  measured = {
    (r["layer"].replace("tiny", "digits"), r["op"], r["solver"])
    for r in quick_run[0]
  }
  for target in targets.targets():
    glow = target.layer.replace("32x32x3", "digits")
    assert (glow, target.op, target.solver) in measured, target


def test_targets_are_not_met_by_a_run_that_lacks_them(quick_run):
  rows = targets.check(quick_run[0])  # tiny shapes and a tiny Glow only
  assert len(rows) == len(targets.targets())
  assert all(
    met is None and measured == "not measured" for _, measured, met in rows
  )


def test_repeats_below_five_are_refused():
  with pytest.raises(ValueError, match="repeats"):
    benchmarks.run(quick=True, repeats=3)
  assert benchmarks.main(["--quick", "--repeats", "2"]) == 2


def test_only_selects_layers_and_mixings_keeping_the_baselines():
  records = benchmarks.run(quick=True, only="emerging", jit_modes=(False,))
  layers = {(r.layer, r.op, r.solver) for r in records}
  assert layers == {
    ("conv2d", "forward", None),
    ("EmergingConv2D", "forward", None),
    ("EmergingConv2D", "inverse", "auto"),
    ("EmergingConv2D", "inverse", "wavefront"),
    ("EmergingConv2D", "inverse", "raster"),
    ("EmergingConv2D[equivalent]", "forward", None),
    ("EmergingConv2D[equivalent]", "inverse", None),
    ("EmergingConv2D[frozen]", "forward", None),
    ("EmergingConv2D[frozen]", "inverse", "auto"),
    ("EmergingConv2D[frozen]", "inverse", "fft"),
    ("Glow[tiny, 1x1]", "train_step", None),
    ("Glow[tiny, 1x1]", "sample", None),
    ("Glow[tiny, emerging]", "train_step", None),
    ("Glow[tiny, emerging]", "sample", None),
    ("Glow[tiny, 1x1, frozen]", "sample", None),
    ("Glow[tiny, emerging, frozen]", "sample", None),
  }


def record(
  layer, op, solver, ratio, jit=False, shape=(16, 32, 32, 12), seconds=0.01
):
  return dict(
    layer=layer,
    op=op,
    solver=solver,
    shape=list(shape),
    jit=jit,
    seconds=seconds,
    ratio=ratio,
    ratio_to="x",
  )


# What `targets.check` makes of the records of
# `test_targets_read_the_ratios_the_right_way_round`: each target, then what
# it measured and whether that met it.
EXPECTED_ROWS = """\
[no xla] EmergingConv2D forward <= 1.15x dense 3x3 conv2d at 16x32x32x12
  1.60x, met: False
[no xla] EmergingConv2D inverse (auto) <= 2x its forward at 16x32x32x12
  3.00x, met: False
[xla] EmergingConv2D inverse (auto) <= 2x its forward at 16x32x32x12
  2.50x, met: False
[no xla] PeriodicConv2D inverse <= 2x its forward at 4x64x64x12
  2.01x, met: False
[xla] PeriodicConv2D[frozen] inverse <= 1.5x its forward at 16x32x32x12
  1.49x, met: True
[no xla] PeriodicConv2D[frozen] inverse <= 1.5x its forward at 16x32x32x12
  not measured, met: None
[xla] Glow[digits, emerging, frozen] sample <= 1.25x the frozen 1x1's
  1.20x, met: True
[xla] Glow[digits, periodic, frozen] sample <= 1.25x the frozen 1x1's
  not measured, met: None
[no xla] EmergingConv2D inverse (auto) <= 2x its forward at 64x32x32x48
  not measured, met: None
"""


def test_targets_read_the_ratios_the_right_way_round():
  rows = {
    target: (measured, met)
    for target, measured, met in targets.check(
      [
        record("EmergingConv2D", "forward", None, 1.6),
        record("EmergingConv2D", "inverse", "auto", 3.0),
        record("EmergingConv2D", "inverse", "wavefront", 9.0),
        record("EmergingConv2D", "inverse", "auto", 2.5, jit=True),
        record("PeriodicConv2D", "inverse", None, 2.01, shape=(4, 64, 64, 12)),
        record("PeriodicConv2D[frozen]", "inverse", None, 1.49, jit=True),
        record(
          "Glow[digits, emerging, frozen]",
          "sample",
          None,
          1.2,
          jit=True,
          shape=(64, 8, 8, 1),
        ),
      ]
    )
  }
  targets_named = EXPECTED_ROWS.splitlines()[::2]
  assert (
    "".join(
      f"{target}\n  {rows[target][0]}, met: {rows[target][1]}\n"
      for target in targets_named
    )
    == EXPECTED_ROWS
  )


def test_each_mode_gets_its_own_table():
  """The README once printed the no-XLA table twice, the second time under
  'With XLA': each table is made of its own mode's records only."""
  records = [
    record("conv2d", "forward", None, None, jit, seconds=s)
    for jit, s in ((False, 0.0777), (True, 0.0333))
  ]
  tables = targets.markdown(records)
  without, with_xla = tables.split("Targets:")[0].split("With XLA")
  assert "77.7" in without and "33.3" not in without
  assert "33.3" in with_xla and "77.7" not in with_xla


def test_the_performance_page_holds_the_tables_of_the_recorded_run():
  with open(targets.PAGE, encoding="utf-8") as f:
    page = f.read()
  assert targets.tables_block(page) == targets.markdown(targets.load())
  assert targets.replace_block(page, targets.markdown(targets.load())) == page


def test_only_takes_several_names():
  records = benchmarks.run(
    quick=True, only=["periodic", "lu"], jit_modes=(False,), glows=False
  )
  assert {r.layer for r in records} == {
    "conv2d",
    "PeriodicConv2D",
    "PeriodicConv2D[frozen]",
  }
