"""`tfp_emerging.ops.masked_conv`: the emerging pair as one convolution."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_emerging.ops import masked_conv

RNG = np.random.default_rng(5)


@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("m", [1, 2, 3])
@pytest.mark.parametrize("h,w", [(1, 1), (2, 9), (7, 3), (6, 8)])
def test_emerging_conv_equals_the_two_convolutions(m, dilation, h, w):
  first = tf.constant(RNG.normal(size=[m, m, 3, 3]))
  second = tf.constant(RNG.normal(size=[m, m, 3, 3]))
  x = tf.constant(RNG.normal(size=[2, h, w, 3]))
  two = masked_conv.quadrant_conv(
    masked_conv.quadrant_conv(x, first, dilation, True),
    second,
    dilation,
    False,
  )
  np.testing.assert_allclose(
    masked_conv.emerging_conv(x, first, second, dilation).numpy(),
    two.numpy(),
    atol=1e-12,
  )
