"""tfp_emerging.ops.input_checks: pixel levels eagerly and in traced steps,
the labels' dtype, labels given exactly when conditional, batch shapes,
empty inputs, what fit and evaluate get. The messages are written out here,
not built with the code under test."""

import re

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.ops import input_checks

RANGE = (
  "FlowModel.fit: images must be whole numbers in [0, 17) (num_bins=17; "
  "pass the pixel levels themselves, not images scaled to [0, 1]); got "
  "values from"
)


@pytest.mark.parametrize(
  "images",
  [
    np.array([[0, 16], [3, 9]], np.uint8),
    np.array([0, 16], np.int64),
    np.array([0.0, 16.0], np.float32),
    tf.constant([2.0, 5.0], tf.float64),
    np.zeros([0, 8, 8, 1], np.float32),  # no images: nothing to refuse
  ],
)
def test_levels_of_any_dtype_pass_unchanged(images):
  checked = input_checks.pixel_levels(images, 17, "FlowModel.fit")
  np.testing.assert_array_equal(checked.numpy(), np.asarray(images))
  assert checked.dtype == tf.convert_to_tensor(images).dtype


@pytest.mark.parametrize(
  "images, found",
  [
    (np.array([0.0, 0.5, 1.0]), "0 to 1, not all whole numbers."),
    (np.array([0, 17]), "0 to 17."),
    (np.array([-1.0, 3.0]), "-1 to 3."),
    (np.array([2.0, 32.25]), "2 to 32.25, not all whole numbers."),
  ],
)
def test_values_out_of_range_or_not_whole_are_refused_eagerly_and_traced(
  images, found
):
  expected = re.escape(f"{RANGE} {found}")
  with pytest.raises(ValueError, match=expected):
    input_checks.pixel_levels(images, 17, "FlowModel.fit")

  @tf.function
  def traced(x):
    return input_checks.pixel_levels(x, 17, "FlowModel.fit") + 0

  with pytest.raises(tf.errors.InvalidArgumentError):
    traced(tf.constant(images))  # without pixel_level_errors: as TF raises
  with (
    pytest.raises(ValueError, match=expected),
    input_checks.pixel_level_errors(),
  ):
    traced(tf.constant(images))


@pytest.mark.parametrize("dtype", [tf.bool, tf.string])
def test_images_of_other_dtypes_name_theirs(dtype):
  images = tf.zeros([2], dtype)
  with pytest.raises(
    ValueError,
    match=re.escape(
      "FlowModel.initialize: images must be integer pixel levels (any "
      f"integer or float dtype); got dtype {dtype.name}."
    ),
  ):
    input_checks.pixel_levels(images, 17, "FlowModel.initialize")


def test_pixel_level_errors_passes_other_errors_unchanged():
  other = tf.errors.InvalidArgumentError(None, None, "some other assertion")
  with (
    pytest.raises(tf.errors.InvalidArgumentError, match="some other"),
    input_checks.pixel_level_errors(),
  ):
    raise other
  with input_checks.pixel_level_errors():
    pass  # nothing raised: nothing to turn


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float32])
def test_integer_and_floating_labels_pass(dtype):
  assert input_checks.labels_dtype(dtype, "FlowModel.fit") == tf.as_dtype(dtype)


@pytest.mark.parametrize("dtype", [np.array(["zero"]).dtype, tf.string])
def test_string_labels_name_labels_and_the_integer_dtype(dtype):
  with pytest.raises(
    ValueError,
    match=re.escape(
      "FlowModel.evaluate: `labels` must be integer class ids (an integer "
      "dtype such as int32 or int64) or floating one-hot vectors [B, K]; "
      "got dtype string. Map class names to ids first."
    ),
  ):
    input_checks.labels_dtype(dtype, "FlowModel.evaluate")


def test_empty_input_error_names_the_caller_and_the_input():
  error = input_checks.empty_input_error("FlowModel.fit", "the dataset")
  assert isinstance(error, ValueError)
  assert str(error).startswith(
    "FlowModel.fit: the dataset holds no batches (an empty dataset or "
    "array): there is nothing to train on or evaluate"
  )


def test_labels_are_given_exactly_when_the_flow_is_conditional():
  input_checks.labels_given(None, False, "FlowModel.fit")
  input_checks.labels_given(10, True, "FlowModel.fit")
  with pytest.raises(
    ValueError,
    match=re.escape(
      "FlowModel.fit: this FlowModel's flow is not class-conditional, so it "
      "takes no labels"
    ),
  ):
    input_checks.labels_given(None, True, "FlowModel.fit")
  with pytest.raises(
    ValueError,
    match=re.escape(
      "FlowModel.sample: this FlowModel is class-conditional (10 classes) "
      "and needs the labels"
    ),
  ):
    input_checks.labels_given(10, False, "FlowModel.sample")


@pytest.mark.parametrize(
  "images_shape, labels_shape",
  [
    ([4, 8, 8, 1], None),
    ([None, 8, 8, 1], [None]),
    ([4, 8, 8, 1], [4]),
    ([4, 8, 8, 1], [4, 10]),  # one-hot or soft labels
    ([4, 8, 8, 1], tf.TensorShape(None)),  # rank not known yet
  ],
)
def test_matching_batch_shapes_pass(images_shape, labels_shape):
  input_checks.batch_shape((8, 8, 1), images_shape, labels_shape, "f")


@pytest.mark.parametrize(
  "images_shape, labels_shape, message",
  [
    (
      [4, 8, 8, 3],
      None,
      "f: images must have shape [batch, 8, 8, 1], the flow's event shape "
      "[8, 8, 1]; got shape [4, 8, 8, 3].",
    ),
    (
      [8, 8, 1],
      None,
      "f: images must have shape [batch, 8, 8, 1], the flow's event shape "
      "[8, 8, 1]; got shape [8, 8, 1].",
    ),
    (
      [4, 8, 8, 1],
      [3],
      "f: `labels` must give one class per image (4 images of shape "
      "[8, 8, 1]); got labels of shape [3].",
    ),
    (
      [4, 8, 8, 1],
      [],
      "f: `labels` must give one class per image (4 images of shape "
      "[8, 8, 1]); got labels of shape [].",
    ),
  ],
)
def test_mismatched_batch_shapes_are_refused(
  images_shape, labels_shape, message
):
  with pytest.raises(ValueError, match=re.escape(message)):
    input_checks.batch_shape((8, 8, 1), images_shape, labels_shape, "f")


def test_keras_input_checks_datasets_and_arrays():
  images = np.zeros([4, 8, 8, 1], np.uint8)
  labels = np.arange(4)
  input_checks.keras_input(images, None, None, (8, 8, 1), "FlowModel.fit")
  input_checks.keras_input(images, labels, 10, (8, 8, 1), "FlowModel.fit")
  pairs = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
  input_checks.keras_input(pairs, None, 10, (8, 8, 1), "FlowModel.fit")
  with pytest.raises(ValueError, match=r"FlowModel\.fit: .*the dataset"):
    input_checks.keras_input(
      pairs.take(0), None, 10, (8, 8, 1), "FlowModel.fit"
    )
  with pytest.raises(ValueError, match=r"FlowModel\.fit: .*the image array"):
    input_checks.keras_input(images[:0], None, None, (8, 8, 1), "FlowModel.fit")
  with pytest.raises(ValueError, match="not class-conditional"):
    input_checks.keras_input(pairs, None, None, (8, 8, 1), "FlowModel.fit")
  with pytest.raises(ValueError, match=r"class-conditional \(10 classes\)"):
    input_checks.keras_input(images, None, 10, (8, 8, 1), "FlowModel.evaluate")
  with pytest.raises(ValueError, match=r"\[batch, 4, 4, 1\]"):
    input_checks.keras_input(images, None, None, (4, 4, 1), "FlowModel.fit")
  strings = np.array(["a", "b", "c", "d"])
  with pytest.raises(ValueError, match="labels"):
    input_checks.keras_input(images, strings, 10, (8, 8, 1), "FlowModel.fit")
