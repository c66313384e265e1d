"""Streaming a large dataset does not hold it in memory (a fresh process)."""

from tests.testlib.workers import run_json_worker


def test_streaming_an_epoch_does_not_hold_the_split_in_memory():
  # 20,000 mock images of 64x64x3 (246 MB as uint8) through `load` and
  # `images("train")`, batched, in a fresh process. Holding the split (a
  # tfds load with batch_size=-1, tfds' auto-cache, an array) would raise
  # the peak resident memory by at least its size.
  result = run_json_worker("data_memory_worker")
  assert result["images_seen"] == result["num_examples"] == 20000
  assert result["data_bytes"] == 20000 * 64 * 64 * 3
  assert result["growth_bytes"] < 0.25 * result["data_bytes"], result
