"""Structural asserts on a layer's dense Jacobian, from the layers' definitions.

Each function is written from the mathematical definition of its layer (the
mask, the receptive field, the circulant structure, the block diagonal), not
from the layer's code; the registry's `check_jacobian` hooks call them on the
`[D, D]` Jacobian of one image.
"""

import itertools

import numpy as np
import tensorflow as tf


def allowed_dependencies(order, kernel_size, dilation, height, width, channels):
  """`[D, D]` boolean: may output (i, j, c) depend on input (i', j', c')?

  Written from the mask's definition, independently of the layer's code.
  """
  m = (kernel_size + 1) // 2
  sign = -1 if order == "top_left" else 1
  allowed = np.zeros([height, width, channels, height, width, channels], bool)
  for i, j, a, b in itertools.product(
    range(height), range(width), range(m), range(m)
  ):
    si, sj = i + sign * a * dilation, j + sign * b * dilation
    if not (0 <= si < height and 0 <= sj < width):
      continue
    for c, c2 in itertools.product(range(channels), repeat=2):
      if (a, b) != (0, 0) or (c2 <= c if order == "top_left" else c2 >= c):
        allowed[i, j, c, si, sj, c2] = True
  d = height * width * channels
  return allowed.reshape(d, d)


def assert_dependency_pattern(bijector, jacobian):
  """Zero outside the mask, nonzero inside it, triangular in the mask's
  order."""
  d = jacobian.shape[0]
  channels = bijector.channels
  hw = d // channels
  # The contract's events are 5 x 7.
  height, width = 5, hw // 5
  allowed = allowed_dependencies(
    bijector.order,
    bijector.kernel_size,
    bijector.dilation,
    height,
    width,
    channels,
  )
  assert np.all(jacobian[~allowed] == 0)
  assert np.all(jacobian[allowed] != 0)
  triangle = np.tril if bijector.order == "top_left" else np.triu
  np.testing.assert_array_equal(triangle(jacobian), jacobian)


def assert_receptive_field(bijector, jacobian):
  """Output (i, j) depends on exactly the k x k (dilated) window around it."""
  channels, k, d = bijector.channels, bijector.kernel_size, bijector.dilation
  height = 5
  width = jacobian.shape[0] // (channels * height)
  r = (k - 1) // 2
  jac = jacobian.reshape(height, width, channels, height, width, channels)
  for i, j, i2, j2 in itertools.product(
    range(height), range(width), range(height), range(width)
  ):
    block = jac[i, j, :, i2, j2, :]
    di, dj = i2 - i, j2 - j
    inside = (
      di % d == 0 and dj % d == 0 and abs(di) <= r * d and abs(dj) <= r * d
    )
    if inside:
      assert np.any(block != 0), (i, j, i2, j2)
    else:
      assert np.all(block == 0), (i, j, i2, j2)


def dense_reference(kernel, height, width):
  """`[D, D]` matrix of the periodic convolution, from its definition.

  Output pixel `(i, j)` channel `o` reads input `((i + a - p) % H,
  (j + b - p) % W)` channel `c` with weight `K[a, b, c, o]`.
  """
  k, _, c_in, c_out = kernel.shape
  p = (k - 1) // 2
  dense = np.zeros([height, width, c_out, height, width, c_in])
  for i, j, a, b in itertools.product(
    range(height), range(width), range(k), range(k)
  ):
    dense[i, j, :, (i + a - p) % height, (j + b - p) % width] += kernel[a, b].T
  return dense.reshape(height * width * c_out, height * width * c_in)


def assert_circulant_blocks(bijector, jacobian, event_shape):
  """The dense Jacobian is the block-circulant matrix of the kernel."""
  height, width, _ = event_shape
  kernel = tf.convert_to_tensor(bijector.kernel).numpy()
  expected = dense_reference(kernel.astype(np.float64), height, width)
  atol = 1e-5 if jacobian.dtype == np.float32 else 1e-12
  np.testing.assert_allclose(jacobian, expected, rtol=0, atol=atol)
  assert np.count_nonzero(expected) > 0


def assert_block_diagonal(bijector, jacobian):
  """`dy[pixel] / dx[pixel'] = [pixel == pixel'] W^T`, one `W` for all
  pixels."""
  c = bijector.channels
  pixels = jacobian.shape[0] // c
  blocks = jacobian.reshape(pixels, c, pixels, c).transpose(0, 2, 1, 3)
  atol = 1e-6 if jacobian.dtype == np.float32 else 1e-14
  weight = bijector.weight().numpy()
  for i in range(pixels):
    for j in range(pixels):
      np.testing.assert_allclose(
        blocks[i, j], weight.T if i == j else 0.0, rtol=0, atol=atol
      )
  assert np.all(weight != 0)
