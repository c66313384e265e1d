"""A folder of PNG images: `load(path, ...)`, decoded lazily in `tf.data`.

`*.png`, not recursive; 1 to 16 bits, grey, grey with alpha, RGB, RGBA or
palette; all of one size, channel count and bit depth; split like a single
`.npz` array in the order of the sorted file names. Grey images of 1, 2 or
4 bits have `2**bits` levels (`num_bins`: 2 for black-and-white images),
8-bit images and palette images 256, 16-bit images 65536.

`load` checks every file before any training: its header (signature,
`IHDR`: width, height, bit depth, colour type; the chunks before the image
data; the closing `IEND` chunk, which a truncated file lacks), then its
pixels, decoded once as the pipeline will (`tf.io.decode_png`), so that a
file whose compressed data is corrupt behind an intact header is named
there (`DataError`) rather than failing an epoch half-way. Cost: one read
and decode of every file, about as long as one pass over the data. The
pipeline itself decodes the files again in its `map`, when iterated.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import os
import re
import struct
import zlib

import numpy as np
import tensorflow as tf

from tfp_emerging.data import dataset

__all__ = ["load"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The last 12 bytes of every complete PNG file: the empty IEND chunk.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# Bit depths PNG allows for each colour type, and the channels that
# `tf.io.decode_png` gives it (a palette image with a tRNS chunk gives 4).
_PNG_BIT_DEPTHS = {
  0: (1, 2, 4, 8, 16),
  2: (8, 16),
  3: (1, 2, 4, 8),
  4: (8, 16),
  6: (8, 16),
}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclasses.dataclass(frozen=True)
class _PngHeader:
  height: int
  width: int
  channels: int
  bit_depth: int
  colour: int  # the PNG colour type: 0 grey, 2 RGB, 3 palette, 4, 6 alpha

  @property
  def num_bins(self):
    """Levels per channel: `2**bit_depth` for grey images of 1, 2 or 4 bits
    (decoded scaled to 0..255), 256 up to 8 bits otherwise (a palette's
    index is a colour, not a level), 65536 for 16 bits."""
    if self.colour == 0 and self.bit_depth < 8:
      return 2**self.bit_depth
    return dataset.MAX_BINS if self.bit_depth == 16 else 256


def _png_header(path):
  """Reads and checks a PNG file's header, not its pixels.

  Reads the signature, the `IHDR` chunk (checksum included), the chunk
  headers up to the first `IDAT` (a palette's `tRNS` adds an alpha channel)
  and the file's last 12 bytes (the `IEND` chunk, missing when the file is
  truncated). Cost: a few small reads, independent of the image size.

  Returns:
    A `_PngHeader`.

  Raises:
    dataset.DataError: the file cannot be read or is not a complete PNG image.
  """

  def unreadable(why):
    return dataset.DataError(f"{path}: not a readable PNG image ({why}).")

  try:
    with open(path, "rb") as stream:
      head = stream.read(33)
      if head[:8] != PNG_SIGNATURE:
        raise unreadable("no PNG signature")
      if len(head) < 33 or head[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise unreadable("no IHDR chunk after the signature")
      if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise unreadable("the IHDR chunk's checksum does not match")
      width, height, bit_depth, colour = struct.unpack(">IIBB", head[16:26])
      if bit_depth not in _PNG_BIT_DEPTHS.get(colour, ()):
        raise unreadable(
          f"colour type {colour} with bit depth {bit_depth} is not a PNG format"
        )
      if not width or not height:
        raise unreadable(f"its size is {height}x{width}")
      channels = _PNG_CHANNELS[colour]
      while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
          raise unreadable("the file ends before its image data")
        length, kind = struct.unpack(">I4s", chunk)
        if kind == b"IDAT":
          break
        if kind == b"tRNS" and colour == 3:
          channels = 4
        stream.seek(length + 4, os.SEEK_CUR)
      stream.seek(-len(_PNG_END), os.SEEK_END)
      if stream.read() != _PNG_END:
        raise unreadable("truncated: the file does not end with the IEND chunk")
  except OSError as e:
    raise unreadable(e.strerror or e) from e
  return _PngHeader(height, width, channels, bit_depth, colour)


def _check_pixels(path, header):
  """Decodes `path`'s pixels as the pipeline does; `DataError` naming the
  file if they cannot be (corrupt or missing compressed image data)."""
  try:
    tf.io.decode_png(
      tf.io.read_file(path),
      channels=header.channels,
      dtype=tf.uint16 if header.bit_depth == 16 else tf.uint8,
    )
  except tf.errors.OpError as e:
    # TensorFlow's "{{function_node ...}} Invalid PNG data, ... [Op:...]"
    why = re.sub(r"\{\{.*?\}\}|\[Op:\w+\]", "", e.message).strip()
    raise dataset.DataError(
      f"{path}: not a readable PNG image (its image data cannot be "
      f"decoded: {why}); replace or remove the file."
    ) from None


@dataclasses.dataclass(frozen=True)
class _PngFolderDataset(dataset.ImageDataset):
  """PNG files decoded lazily: `read_file` and `decode_png` in a `map`.

  `files[split]` is the tuple of the split's file paths; `bits` the files'
  bit depth (decoded as uint16 when 16, else uint8).
  """

  files: dict = dataclasses.field(repr=False, compare=False)
  bits: int = 8

  @property
  def _source_bins(self):
    return dataset.MAX_BINS if self.bits == 16 else 256

  def check_files(self):
    first = _check_files(self.files["train"] + self.files["test"])
    now = (first.height, first.width, first.channels, first.bit_depth)
    if now != (*self.image_shape, self.bits):
      raise dataset.DataError(
        f"{self.source}: the images are now {now[0]}x{now[1]}x{now[2]} of "
        f"{now[3]} bits, but were {'x'.join(map(str, self.image_shape))} "
        f"of {self.bits} bits when loaded."
      )

  def _read(self, split, labels, shuffle_seed):
    del labels  # A PNG folder has none; `images` refused them.
    files = np.array(self.files[split])
    if shuffle_seed is not None:
      files = files[np.random.default_rng(shuffle_seed).permutation(len(files))]
    dtype = tf.uint16 if self.bits == 16 else tf.uint8

    def decode(path):
      image = tf.io.decode_png(
        tf.io.read_file(path), channels=self.image_shape[2], dtype=dtype
      )
      return tf.ensure_shape(image, self.image_shape)

    return tf.data.Dataset.from_tensor_slices(files).map(
      decode, num_parallel_calls=tf.data.AUTOTUNE
    )


def load(
  path: str | os.PathLike,
  splits: Sequence[str] | None = None,
  bit_depth: int | None = None,
) -> dataset.ImageDataset:
  """The PNG files of the folder `path` as an `ImageDataset` (see the
  module docstring); `DataError` if they cannot be used."""
  if not os.path.isdir(path):
    raise dataset.DataError(f"{path}: no such folder.")
  names = sorted(f for f in os.listdir(path) if f.lower().endswith(".png"))
  if not names:
    raise dataset.DataError(f"{path}: no .png files in this folder.")
  files = [os.path.join(path, name) for name in names]
  source = f"{path} ({len(files)} PNG files such as {files[0]})"
  dataset.fixed_splits(source, splits)
  first = _check_files(files)
  train, test = dataset.split_order(len(files), path)
  return _PngFolderDataset(
    name=os.path.abspath(path),
    source=source,
    image_shape=(first.height, first.width, first.channels),
    num_bins=min(first.num_bins, 256) if bit_depth == 8 else first.num_bins,
    num_examples={"train": len(train), "test": len(test)},
    num_classes=None,
    split_names=dict(zip(dataset.SPLITS, dataset.SPLITS)),
    files={
      "train": tuple(files[i] for i in train),
      "test": tuple(files[i] for i in test),
    },
    bits=first.bit_depth,
  )


def _check_files(files):
  """The header of `files[0]` once every file's header agrees with it and
  every file's pixels decode; `DataError` naming the first file that does
  not."""
  first = _png_header(files[0])
  for file in files[1:]:
    header = _png_header(file)
    if (header.height, header.width, header.channels) != (
      first.height,
      first.width,
      first.channels,
    ):
      raise dataset.DataError(
        f"{file}: image is {header.height}x{header.width} with "
        f"{header.channels} channel(s), but {files[0]} is "
        f"{first.height}x{first.width} with {first.channels} channel(s); "
        f"all images must have the same size and channels."
      )
    if header.bit_depth != first.bit_depth:
      raise dataset.DataError(
        f"{file}: image is {header.bit_depth}-bit, but {files[0]} is "
        f"{first.bit_depth}-bit; all images must have the same bit depth "
        f"(convert them to one, e.g. all 8-bit or all 16-bit)."
      )
  for file in files:
    _check_pixels(file, first)
  return first
