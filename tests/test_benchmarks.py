"""The benchmark suite's `--quick` run: well-formed records, never timings."""

import json

import pytest

from tfp_emerging import benchmarks

FIELDS = {"layer", "op", "solver", "shape", "jit", "seconds", "ratio",
          "ratio_to"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  """`main(["--quick", "--json", "--out", F])`: printed lines and F's list."""
  out = tmp_path_factory.mktemp("bench") / "records.json"
  capture = pytest.MonkeyPatch()
  lines = []
  capture.setattr("builtins.print",
                  lambda *a, **k: lines.append(" ".join(map(str, a))))
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
    expected |= {(layer, "forward", None), (layer, "inverse", "wavefront"),
                 (layer, "inverse", "raster")}
  for layer in ("PeriodicConv2D", "Conv1x1[qr]"):
    expected |= {(layer, "forward", None), (layer, "inverse", None)}
  for mixing in benchmarks.QUICK_MIXINGS:
    expected |= {(f"Glow[tiny, {mixing}]", op, None)
                 for op in ("train_step", "sample")}
  assert seen == {e + (jit,) for e in expected for jit in (False, True)}


def test_ratios_divide_by_the_named_measurement_of_the_same_run(quick_run):
  records = quick_run[0]
  for record in records:
    if record["ratio_to"] is None:
      assert record["layer"] == "conv2d"
      continue
    layer, op = record["ratio_to"].rsplit(" ", 1)
    solver = None
    if op == "wavefront":
      layer, op = layer.rsplit(" ", 1)
      solver = "wavefront"
    [base] = [r for r in records
              if (r["layer"], r["op"], r["solver"], r["shape"], r["jit"]) ==
              (layer, op, solver, record["shape"], record["jit"])]
    assert record["ratio"] == pytest.approx(
        record["seconds"] / base["seconds"])
  # The raster inverse is compared with the wavefront one, the others with
  # their own forward.
  raster = [r for r in records if r["solver"] == "raster"]
  assert raster and all(r["ratio_to"].endswith("inverse wavefront")
                        for r in raster)


def test_targets_are_reported_only_for_measured_shapes(quick_run):
  records = [benchmarks.Record(**r) for r in quick_run[0]]
  rows = benchmarks.targets(records)
  assert rows and all(met is None for _, _, met in rows)
  assert all(measured == "not measured" for _, measured, _ in rows)


def test_repeats_below_five_are_refused():
  with pytest.raises(ValueError, match="repeats"):
    benchmarks.run(quick=True, repeats=3)
  assert benchmarks.main(["--quick", "--repeats", "2"]) == 2


def test_only_selects_layers_and_mixings_keeping_the_baselines():
  records = benchmarks.run(quick=True, only="emerging", jit_modes=(False,))
  layers = {(r.layer, r.op, r.solver) for r in records}
  assert layers == {
      ("conv2d", "forward", None), ("EmergingConv2D", "forward", None),
      ("EmergingConv2D", "inverse", "wavefront"),
      ("EmergingConv2D", "inverse", "raster"),
      ("Glow[tiny, 1x1]", "train_step", None),
      ("Glow[tiny, 1x1]", "sample", None),
      ("Glow[tiny, emerging]", "train_step", None),
      ("Glow[tiny, emerging]", "sample", None)}


def test_targets_read_the_ratios_the_right_way_round():
  shape = [16, 32, 32, 12]
  record = lambda layer, op, solver, seconds, ratio: benchmarks.Record(
      layer, op, solver, shape, False, seconds, ratio, "x")
  rows = dict(
      (target, (measured, met)) for target, measured, met in
      benchmarks.targets([
          record("EmergingConv2D", "forward", None, 0.004, 1.6),
          record("EmergingConv2D", "inverse", "wavefront", 0.012, 3.),
          record("EmergingConv2D", "inverse", "raster", 0.144, 12.)]))
  assert rows["[no xla] EmergingConv2D forward <= 1.5x dense 3x3 conv"] == (
      "1.60x", False)
  assert rows["[no xla] EmergingConv2D inverse <= 10x forward at "
              "(16, 32, 32, 12)"] == ("3.00x", True)
  assert rows["[no xla] wavefront >= 10x faster than raster at "
              "(16, 32, 32, 12)"] == ("12.0x", True)
  assert rows["[no xla] EmergingConv2D inverse at (16, 32, 32, 12) < "
              "paper's one solve, 19 ms"] == ("12.0 ms", True)
