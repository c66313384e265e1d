"""Real tensorflow-datasets builders on random examples, offline.

A stand-in for a prepared tensorflow-datasets copy, to try a pipeline (or
measure its memory: `benchmarks/memory.py`) at a dataset's real shapes and
sizes without a download; the package's tests use it for every tfds path.
Needs the `datasets` extra (tensorflow-datasets).

    with mock_tfds("imagenet_resized/64x64", {"train": 1000,
                                              "validation": 100}):
      images = tfp_emerging.data.load("imagenet_resized/64x64")

`tfds.testing.mock_data` runs a real builder without any download, but with
its default policy (`AUTO`, which becomes `USE_CODE` because the wheel ships
no metadata files) the builder's info comes from its code alone: it lists
no splits (`imagenet_resized`, `mnist` and `cifar10` alike), and every split
yields the same `num_examples` examples whatever its size.

`mock_tfds(name, split_sizes)` gives the builder the split metadata a
prepared copy has: it writes the builder's `dataset_info.json` (and
`features.json`) with the given splits into a temporary data folder and
mocks with `MockPolicy.USE_FILES` on that folder. Then `builder.info.splits`
lists exactly those splits, with their counts (slices such as
`"train[:75%]"` too) and a size in bytes as the prepared files would have
(the images' bytes). Its reader (`as_dataset_fn`) streams exactly the
count of the split or slice asked for: example `i` is
`RandomFakeGenerator`'s example `i` for a seed of the split's name, so the
splits differ, and `shuffle_files` with a `shuffle_seed` permutes the
examples by that seed, as shuffling the files of a prepared copy reorders
its examples.
"""

from collections.abc import Iterator, Mapping
import contextlib
import os
import shutil
import tempfile
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

__all__ = ["mock_tfds"]


def _write_metadata(name, split_sizes, root):
  builder = tfds.builder(name, data_dir=root)
  example_bytes = sum(
    int(np.prod(info.shape)) * np.dtype(info.np_dtype).itemsize
    for info in tf.nest.flatten(builder.info.features.get_tensor_info())
    if None not in info.shape
  )
  builder.info.set_splits(
    tfds.core.SplitDict(
      [
        tfds.core.SplitInfo(
          name=split, shard_lengths=[count], num_bytes=count * example_bytes
        )
        for split, count in split_sizes.items()
      ]
    )
  )
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


def _as_dataset(
  builder,
  split,
  decoders=None,
  read_config=None,
  shuffle_files=False,
  max_value=None,
):
  del decoders  # The examples are generated decoded.
  count = builder.info.splits[split].num_examples
  examples = mocking.RandomFakeGenerator(
    builder.info.features,
    count,
    max_value=max_value,
    seed=zlib.crc32(str(split).encode()),
  )
  order = np.arange(count)
  if shuffle_files and read_config is not None:
    order = np.random.default_rng(read_config.shuffle_seed).permutation(count)
  specs = tf.nest.map_structure(
    lambda t: tf.TensorSpec(t.shape, t.tf_dtype),
    builder.info.features.get_tensor_info(),
  )
  dataset = tf.data.Dataset.from_generator(
    lambda: (examples[int(i)] for i in order), output_signature=specs
  )
  return dataset.apply(tf.data.experimental.assert_cardinality(count))


@contextlib.contextmanager
def mock_tfds(
  name: str, split_sizes: Mapping[str, int], max_value: int | None = None
) -> Iterator[None]:
  """Within the block, the real builder `name` has exactly `split_sizes`.

  Args:
    name: a tensorflow-datasets name, e.g. `"mnist"` or
      `"imagenet_resized/32x32"`.
    split_sizes: `{split: number of examples}`, e.g. `{"train": 6,
      "validation": 3}`.
    max_value: the largest generated integer value (default 255).
  """
  root = tempfile.mkdtemp(prefix="mock_tfds_")
  try:
    _write_metadata(name, split_sizes, root)

    def as_dataset(builder, split, **kwargs):
      return _as_dataset(builder, split, max_value=max_value, **kwargs)

    with tfds.testing.mock_data(
      policy=tfds.testing.MockPolicy.USE_FILES,
      data_dir=root,
      as_dataset_fn=as_dataset,
    ):
      yield
  finally:
    shutil.rmtree(root, ignore_errors=True)
