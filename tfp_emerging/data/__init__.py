"""Image datasets for the density models, streamed through `tf.data`.

`load(dataset, ...)` is the one dataset dispatcher. It returns an
`ImageDataset`: the image shape, the number of grey levels (`num_bins`), the
exact number of train and test images, the number of classes (or `None`) and
`images(split)`, an unbatched `tf.data.Dataset` of integer pixels
`[H, W, C]` in `0 .. num_bins - 1` (uint8 when `num_bins <= 256`, uint16 up
to 65536), optionally with an int32 class label. Train and test never share
an image. Everything that can be checked without reading every pixel is
checked by `load`, so that bad data stops a command before any training;
bad data raises `DataError` (a `ValueError`) naming the file or dataset and
the problem.

Sources (`dataset`), one module each:

* `"digits"` (`digits`): scikit-learn's bundled 8x8 handwritten digits, 17
  grey levels, 10 classes, a fixed 1500/297 split.
* `"skimage-crops"` (`skimage_crops`): 4000 train and 1000 test 16x16 RGB
  crops of the colour photographs bundled with scikit-image, disjoint pixels
  between the splits, 256 levels, no labels.
* a `.npz` file (`npz_file`): arrays `train` and `test`, or one array
  `images` split with a fixed permutation; optional `num_bins`,
  `num_classes` and labels.
* a folder of PNG images (`png_folder`): 1 to 16 bits, headers checked by
  `load`, pixels decoded in the pipeline.
* any other name (`tfds_builder`): a `tensorflow-datasets` builder, read
  split by split from its prepared files.

Bit depth: 16-bit PNGs and uint16 arrays keep every level
(`num_bins = 65536`, uint16 pixels). `bit_depth=8` reduces data with more
than 256 levels to 256: level `v` of `num_bins` becomes
`floor(v * 256 / num_bins)` (for 16 bits, the high byte `v >> 8`), so that
each 8-bit level stands for an equal number of source levels.

`pipeline` turns an `ImageDataset` into the training and evaluation batches
of `FlowModel` (`train_batches`, `test_batches`). `tfds_mock.mock_tfds`
stands in for a prepared tensorflow-datasets copy, offline.
"""

from tfp_emerging.data.dataset import LABELLED_SOURCES
from tfp_emerging.data.dataset import MAX_BINS
from tfp_emerging.data.dataset import SPLITS
from tfp_emerging.data.dataset import DataError
from tfp_emerging.data.dataset import ImageDataset
from tfp_emerging.data.pipeline import LEVELS
from tfp_emerging.data.pipeline import NOISE
from tfp_emerging.data.pipeline import SHUFFLE_BUFFER_BYTES
from tfp_emerging.data.pipeline import WEIGHT
from tfp_emerging.data.pipeline import first_images
from tfp_emerging.data.pipeline import test_batches
from tfp_emerging.data.pipeline import train_batches
from tfp_emerging.data.pipeline import window_size
from tfp_emerging.data.sources import BUNDLED
from tfp_emerging.data.sources import load

__all__ = [
  "BUNDLED",
  "LABELLED_SOURCES",
  "LEVELS",
  "MAX_BINS",
  "NOISE",
  "SHUFFLE_BUFFER_BYTES",
  "SPLITS",
  "WEIGHT",
  "DataError",
  "ImageDataset",
  "first_images",
  "load",
  "test_batches",
  "train_batches",
  "window_size",
]
