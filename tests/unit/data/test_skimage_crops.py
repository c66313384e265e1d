"""Tests of the scikit-image crops: shapes, determinism, no train/test
overlap."""

import numpy as np
import pytest

from tfp_emerging import data


@pytest.fixture(scope="module")
def crops():
  return data.skimage_crops.load_crops(num_train=3000, num_test=600, seed=0)


@pytest.fixture(scope="module")
def sources():
  return data.skimage_crops.source_images()


def test_sources_are_bundled_colour_photos(sources):
  assert len(sources) == len(data.skimage_crops.SOURCES)
  for image in sources:
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[-1] == 3
    assert min(image.shape[:2]) >= 256
    assert image.std() > 10  # a photograph, not a constant


def test_shapes_and_dtype(crops):
  assert crops.train.shape == (3000, 16, 16, 3)
  assert crops.test.shape == (600, 16, 16, 3)
  assert crops.train.dtype == np.uint8 and crops.test.dtype == np.uint8
  assert "scikit-image" in crops.source


def test_crops_are_the_pixels_of_their_boxes(crops, sources):
  for images, boxes in (
    (crops.train, crops.train_boxes),
    (crops.test, crops.test_boxes),
  ):
    for k in range(0, images.shape[0], 97):
      i, top, left = boxes.image[k], boxes.top[k], boxes.left[k]
      np.testing.assert_array_equal(
        images[k], sources[i][top : top + 16, left : left + 16]
      )


def test_no_test_crop_shares_a_pixel_with_a_train_crop(crops, sources):
  for index, image in enumerate(sources):
    masks = []
    for boxes in (crops.train_boxes, crops.test_boxes):
      mask = np.zeros(image.shape[:2], bool)
      for i, top, left in zip(boxes.image, boxes.top, boxes.left):
        if i == index:
          assert top >= 0 and top + 16 <= image.shape[0]
          assert left >= 0 and left + 16 <= image.shape[1]
          mask[top : top + 16, left : left + 16] = True
      masks.append(mask)
    train_mask, test_mask = masks
    assert test_mask.any() and train_mask.any(), data.skimage_crops.SOURCES[
      index
    ]
    assert not (train_mask & test_mask).any(), data.skimage_crops.SOURCES[index]


def test_no_textured_test_crop_equals_a_train_crop(crops):
  # Disjoint pixels can still hold equal constant crops (the black sky of
  # the Hubble field); any crop with texture must be unique to its split.
  train = {crop.tobytes() for crop in crops.train}
  textured = [crop for crop in crops.test if crop.max() > crop.min()]
  assert len(textured) > 0.9 * crops.test.shape[0]
  assert not any(crop.tobytes() in train for crop in textured)


def test_deterministic_and_seeded():
  a = data.skimage_crops.load_crops(num_train=50, num_test=20, seed=3)
  b = data.skimage_crops.load_crops(num_train=50, num_test=20, seed=3)
  c = data.skimage_crops.load_crops(num_train=50, num_test=20, seed=4)
  np.testing.assert_array_equal(a.train, b.train)
  np.testing.assert_array_equal(a.test, b.test)
  assert not np.array_equal(a.train, c.train)


def test_test_share_of_columns_follows_test_every():
  shapes = [(100, 480)]
  train = data.skimage_crops.crop_boxes(
    shapes, 2000, 16, 48, 4, test=False, seed=0
  )
  test = data.skimage_crops.crop_boxes(
    shapes, 2000, 16, 48, 4, test=True, seed=0
  )
  # Ten 48-px bands: 3, 7 are test bands; the others train bands.
  assert set(np.unique(test.left // 48)) == {3, 7}
  assert set(np.unique(train.left // 48)) == {0, 1, 2, 4, 5, 6, 8, 9}
  assert ((train.left % 48) + 16 <= 48).all()
  assert ((test.left % 48) + 16 <= 48).all()


@pytest.mark.parametrize(
  "kwargs, message",
  [
    (dict(band_width=8), "band_width"),
    (dict(test_every=1), "test_every"),
  ],
)
def test_bad_arguments(kwargs, message):
  args = dict(
    shapes=[(64, 64)],
    num_crops=5,
    size=16,
    band_width=32,
    test_every=2,
    test=True,
    seed=0,
  )
  args.update(kwargs)
  with pytest.raises(ValueError, match=message):
    data.skimage_crops.crop_boxes(**args)


def test_no_band_of_the_split_raises():
  with pytest.raises(ValueError, match="no band"):
    data.skimage_crops.crop_boxes([(64, 40)], 5, 16, 32, 2, test=True, seed=0)
