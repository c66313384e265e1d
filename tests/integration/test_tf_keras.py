"""FlowModel under tf_keras (TF_USE_LEGACY_KERAS=1), in a process of its own."""

from tests.testlib import workers


def test_tf_keras_flavour(tmp_path):
  """The same model under tf_keras, in a subprocess (Keras is fixed at
  import)."""
  report = workers.run_json_worker(
    "tf_keras_worker", str(tmp_path), TF_USE_LEGACY_KERAS="1"
  )
  assert report["keras"].startswith("tf_keras"), report
  assert report["keras_3"] is False
  assert report["initialized"]
  assert report["weights"] == report["variables"] > 0
  assert report["moved"]
  assert report["after"] < report["before"] - 0.1, report
  assert report["restored"]
  assert report["sample"] == [2, 8, 8, 1]
  assert report["keras_file"] and report["keras_file_flags"]
  assert report["checkpoint"]  # a full-model ModelCheckpoint during fit
  assert report["exported"]
  step = [
    ["actnorm", "ActNorm"],
    ["conv1x1", "Conv1x1"],
    ["affine_coupling", "AffineCoupling"],
  ]
  expected = (
    [[f"level0_step0_{n}", k] for n, k in step]
    + [["level0_split_prior", "ConditionalNormalPrior"]]
    + [[f"level1_step0_{n}", k] for n, k in step]
    + [["level1_top_prior", "LearnedNormalPrior"]]
  )
  assert [layer[:2] for layer in report["layers"]] == expected
  assert [layer[2] for layer in report["layers"]] == report["part_sizes"]
