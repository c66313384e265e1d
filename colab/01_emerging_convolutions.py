# %% [markdown]
# # Emerging convolutions
#
# [Hoogeboom, van den Berg and Welling (ICML 2019)](https://arxiv.org/abs/1901.11137)
# build an invertible `k x k` convolution out of two *autoregressive*
# convolutions. Each one masks its kernel so that output pixel `(i, j)` reads
# only input pixels on one side of it (above and to the left for the first,
# below and to the right for the second), and at `(i, j)` itself only input
# channels up to its own. Ordering pixels in raster order, each Jacobian is
# then triangular:
#
# * the log-determinant is `H W sum_c log K_centre[c, c]`, read off the
#   kernel's centre tap, at no cost;
# * the inverse is an exact triangular solve (forward substitution, done here
#   along anti-diagonal wavefronts or pixel by pixel in raster order).
#
# Composing the two gives a convolution whose receptive field is a full
# `k x k` window: the *emerging* convolution. This notebook builds one, shows
# its masks and its equivalent kernel, checks its log-determinant against the
# dense Jacobian, inverts it and times both directions.

# %%
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_emerging.bijectors import AutoregressiveConv2D
from tfp_emerging.bijectors import EmergingConv2D
from tfp_emerging.image_grid import tile
from tfp_emerging.timing import best_seconds

SIZES = {
  "small": dict(channels=4, timing_sides=[4, 8], timing_repeats=2),
  "full": dict(channels=8, timing_sides=[8, 16, 32, 64], timing_repeats=10),
}["small" if SMALL else "full"]

# %% [markdown]
# ## Build one
#
# `EmergingConv2D(channels, kernel_size)` creates its two parts with small
# random kernels (close to the identity map). To make the pictures and checks
# below interesting we pass our own, larger, initial values instead: each part
# is an `AutoregressiveConv2D` with a free `[m, m, C, C]` quadrant kernel,
# `m = (k + 1) / 2`, and a free `log_diagonal` for the centre tap's diagonal.
# We work in float64 so the checks can be tight.

# %%
C, K = 3, 3
M = (K + 1) // 2
rng = np.random.default_rng(0)


def part(order, solver="wavefront", channels=C, seed=0):
  values = np.random.default_rng(seed)
  return AutoregressiveConv2D(
    channels,
    K,
    order=order,
    solver=solver,
    dtype=tf.float64,
    kernel=values.normal(0.0, 0.3, [M, M, channels, channels]),
    log_diagonal=values.normal(0.0, 0.3, [channels]),
  )


layer = EmergingConv2D(
  C,
  K,
  dtype=tf.float64,
  solver="wavefront",
  first=part("top_left", seed=1),
  second=part("bottom_right", seed=2),
)
first, second = layer.bijectors
print(
  first.order,
  first.full_kernel().shape,
  "|",
  second.order,
  second.full_kernel().shape,
  "| equivalent:",
  layer.equivalent_kernel().shape,
)

# %% [markdown]
# ## The two masks and the equivalent kernel
#
# A `[k, k, C, C]` kernel is drawn as a `k x k` grid of `C x C` blocks: block
# `(a, b)` is the tap at row offset `a`, column offset `b`, with input channels
# down and output channels across. The top-left part uses only the upper-left
# `m x m` quadrant, and its centre tap (the bottom-right block of that
# quadrant) is upper triangular; the bottom-right part is the mirror image.
# Their composition, `equivalent_kernel()`, fills the whole `k x k` window.


# %%
def kernel_image(kernel):
  """`[k, k, C, C]` -> one image of k x k blocks (C x C each), NaN gaps."""
  k, _, c, _ = kernel.shape
  return tile(np.reshape(kernel, [k * k, c, c, 1]), columns=k, fill=np.nan)[
    ..., 0
  ]


equivalent = layer.equivalent_kernel().numpy()
limit = np.abs(equivalent).max()
panels = [
  # Used taps black, masked ones light grey, gaps between taps blank.
  (
    kernel_image((first.full_kernel().numpy() != 0).astype(float)),
    "top-left mask (f1)",
    dict(cmap="Greys", vmin=-0.25, vmax=1),
  ),
  (
    kernel_image((second.full_kernel().numpy() != 0).astype(float)),
    "bottom-right mask (f2)",
    dict(cmap="Greys", vmin=-0.25, vmax=1),
  ),
  (
    kernel_image(equivalent),
    "equivalent 3x3 kernel of f2(f1(x))",
    dict(cmap="RdBu_r", vmin=-limit, vmax=limit),
  ),
]
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
for ax, (image, title, style) in zip(axes, panels):
  ax.imshow(image, **style)
  ax.set_title(title)
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_xlabel("tap column (output channels within)")
axes[0].set_ylabel("tap row (input channels within)")
plt.show()

# %% [markdown]
# Away from the image's borders the layer *is* a convolution with that kernel
# (at the borders the two parts' zero padding differs from a single
# convolution's):

# %%
x = tf.constant(rng.normal(size=[2, 8, 8, C]))
y = layer.forward(x)
y_conv = tf.nn.convolution(x, layer.equivalent_kernel(), padding="SAME")
interior = np.abs(y - y_conv)[:, M - 1 : -(M - 1), M - 1 : -(M - 1)].max()
print(f"max |forward - conv(equivalent kernel)| inside: {interior:.2e}")
assert interior < 1e-10

# %% [markdown]
# ## Log-determinant versus the dense Jacobian
#
# On a small `4 x 4 x 3` image the whole Jacobian `dy / dx` is a `48 x 48`
# matrix (pixels in raster order, channels within a pixel). Each part's is
# triangular: `f1`'s lower (outputs read earlier pixels), `f2`'s upper. Their
# product is dense, yet its log-determinant is still just the sum of the two
# diagonals' logs. We compare `forward_log_det_jacobian` with `slogdet` of the
# dense matrix.


# %%
def dense_jacobian(bijector, x):
  x = tf.identity(x)  # a fresh tensor: TFP's cache must not short-cut forward
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = bijector.forward(x)
  size = int(np.prod(x.shape))
  return tape.jacobian(y, x).numpy().reshape(size, size)


x_small = tf.constant(rng.normal(size=[1, 4, 4, C]))
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, bijector) in zip(
  axes,
  [
    ("f1 (top-left)", first),
    ("f2 (bottom-right)", second),
    ("f2(f1(x)) (emerging)", layer),
  ],
):
  jacobian = dense_jacobian(bijector, x_small)
  sign, dense_log_det = np.linalg.slogdet(jacobian)
  log_det = bijector.forward_log_det_jacobian(x_small, event_ndims=3).numpy()[0]
  print(
    f"{name:22s} log|det| dense: {dense_log_det:+.12f}   layer: {log_det:+.12f}"
  )
  assert abs(dense_log_det - log_det) < 1e-9
  limit = np.abs(jacobian).max()
  # Zeros blank: the triangles of f1 and f2, the dense product.
  ax.imshow(
    np.where(jacobian == 0, np.nan, jacobian),
    cmap="RdBu_r",
    vmin=-limit,
    vmax=limit,
  )
  ax.set_title(f"Jacobian of {name}")
  ax.set_xticks([])
  ax.set_yticks([])
plt.show()

# %% [markdown]
# ## Inverse
#
# `inverse` undoes the bottom-right part, then the top-left one, each by exact
# forward substitution. TFP caches the pair `(x, forward(x))`, so
# `inverse(forward(x))` would just hand back `x`; `tf.identity` makes a fresh
# tensor and forces the solves. Both solvers give the same answer:
# `"wavefront"` solves all pixels of an anti-diagonal at once (`H + W - 1`
# sequential steps), `"raster"` one pixel at a time (`H W` steps).

# %%
raster = EmergingConv2D(
  C,
  K,
  dtype=tf.float64,
  solver="raster",
  first=part("top_left", "raster", seed=1),
  second=part("bottom_right", "raster", seed=2),
)
y = layer.forward(x)
for name, bijector in [("wavefront", layer), ("raster", raster)]:
  x_back = bijector.inverse(tf.identity(y))
  error = np.abs(x_back - x).max()
  print(f"{name:9s} max |inverse(forward(x)) - x| = {error:.2e}")
  assert error < 1e-10

# %% [markdown]
# ## Forward versus inverse time
#
# The forward pass is two small convolutions; the inverse is sequential.
# We time both (each wrapped in a `tf.function`, traced once before timing;
# the fastest of several runs) for growing images, with 8 channels (4 in the
# small run) and a batch of 8, in float32. The
# wavefront solver's step count grows like `H + W`, the raster solver's like
# `H W`.

# %%
channels = SIZES["channels"]
timed = {}
for solver in ("wavefront", "raster"):
  parts = [
    AutoregressiveConv2D(channels, K, order=order, solver=solver, seed=seed)
    for seed, order in enumerate(["top_left", "bottom_right"])
  ]
  timed[solver] = EmergingConv2D(
    channels, K, solver=solver, first=parts[0], second=parts[1]
  )
forward = tf.function(timed["wavefront"].forward)
inverses = {
  solver: tf.function(bijector.inverse) for solver, bijector in timed.items()
}
seconds = {"forward": [], "inverse (wavefront)": [], "inverse (raster)": []}
for side in SIZES["timing_sides"]:
  images = tf.random.normal([8, side, side, channels], seed=side)
  seconds["forward"].append(
    best_seconds(forward, images, SIZES["timing_repeats"])
  )
  for solver, inverse in inverses.items():
    seconds[f"inverse ({solver})"].append(
      best_seconds(inverse, images, SIZES["timing_repeats"])
    )
  print(
    f"{side:3d} x {side:<3d}"
    + "".join(
      f"  {name}: {times[-1] * 1e3:8.2f} ms" for name, times in seconds.items()
    )
  )

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, times in seconds.items():
  ax.plot(SIZES["timing_sides"], np.array(times) * 1e3, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(
  SIZES["timing_sides"], [str(side) for side in SIZES["timing_sides"]]
)
ax.minorticks_off()
ax.set_yscale("log")
ax.set_xlabel("image side H = W")
ax.set_ylabel("milliseconds per batch of 8")
ax.set_title(f"EmergingConv2D, {channels} channels, 3x3")
ax.legend()
plt.show()

# %% [markdown]
# Density evaluation (training) only ever runs `forward`; the solves are paid
# when sampling. That asymmetry is why the emerging convolution suits density
# modelling: see `02_density_modeling.ipynb`.
