# %% [markdown]
# # Density modelling of digits with Glow and emerging convolutions
#
# We train a Glow flow (Kingma and Dhariwal, 2018) whose mixing layers are a
# QR-parameterised 1x1 convolution followed by an emerging `3 x 3` convolution
# (Hoogeboom et al., 2019), on scikit-learn's 8x8 handwritten digits: 17 grey
# levels, 1500 training and 297 test images, bundled with scikit-learn (no
# download). Training is `tfp_emerging.training.fit`, the command line's own
# path: Keras' `model.fit` over a `tf.data` pipeline, with a test evaluation
# after every epoch; the loss is bits per dimension of the dequantised images.
# Then we sample at several temperatures,
# reconstruct test digits through the latent space and interpolate between
# them.

# %%
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.flows import dequantization
from tfp_emerging.image_grid import image_grid
from tfp_emerging.image_grid import tile

SIZES = {
  "small": dict(
    num_levels=1, num_steps=1, hidden_channels=8, epochs=2, train_images=256
  ),
  "full": dict(
    num_levels=2, num_steps=4, hidden_channels=64, epochs=40, train_images=None
  ),
}["small" if SMALL else "full"]

# %%
digits = data.load("digits")  # streams images("train") and images("test")
test_images = np.stack(list(digits.images("test").as_numpy_iterator()))
print(
  digits.num_examples,
  "images",
  digits.image_shape,
  "grey levels:",
  digits.num_bins,
)
fig, ax = plt.subplots(figsize=(8, 2))
# image_grid: integer images tiled into one uint8 image, ink white.
ax.imshow(
  image_grid(
    np.stack(list(digits.images("train").take(32))),
    digits.num_bins,
    columns=16,
    scale=1,
  )[..., 0],
  cmap="gray",
)
ax.set_title("training digits")
ax.set_axis_off()
plt.show()

# %% [markdown]
# ## The model
#
# Two levels (one in the small run); each squeezes the image (2x2 blocks to
# channels) and applies `num_steps` steps of ActNorm, 1x1 (QR) + emerging
# convolution, affine coupling; between levels half the channels are split
# off under a learned conditional prior. `training.build_model` wraps the flow
# in a `FlowModel` (a `keras.Model` that dequantises each batch and reports
# bits/dim), compiled with Adam after a linear warm-up. A uniform model of
# 17-level pixels scores `log2(17) = 4.09` bits/dim.

# %%
config = training.RunConfig(
  dataset="digits",
  mixing="emerging",
  num_levels=SIZES["num_levels"],
  num_steps=SIZES["num_steps"],
  hidden_channels=SIZES["hidden_channels"],
  epochs=SIZES["epochs"],
  batch_size=64,
  learning_rate=1e-3,
  warmup_steps=100,
  seed=0,
).with_data(digits)
model = training.build_model(config)
flow = model.flow
print(
  "trainable parameters:",
  sum(int(np.prod(v.shape)) for v in model.trainable_weights),
)

history = training.fit(
  model,
  digits,
  config,
  num_train=SIZES["train_images"],
  verbose=0 if SMALL else 2,
)
test_bits = history[-1]["test_bits_per_dim"]
print(f"test bits/dim: {test_bits:.3f}")

# %%
epochs = [record["epoch"] for record in history]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(
  epochs,
  [record["train_bits_per_dim"] for record in history],
  "o-",
  label="train (mean over the epoch)",
)
ax.plot(
  epochs,
  [record["test_bits_per_dim"] for record in history],
  "s-",
  label="test (end of epoch)",
)
ax.axhline(
  np.log2(digits.num_bins), color="gray", ls="--", label="uniform, log2(17)"
)
ax.set_xlabel("epoch")
ax.set_ylabel("bits / dim")
ax.legend()
plt.show()

# %% [markdown]
# ## Samples at several temperatures
#
# `model.sample(n, temperature=T)` draws `z ~ N(0, T^2 I)` and maps it through
# the flow's `forward` (the emerging convolutions' triangular solves), then
# quantises. Each panel maps the same 36 latents (same seed), scaled by `T`:
# lower temperatures trade diversity and detail for smoother digits.

# %%
temperatures = [0.5, 0.7, 0.85, 1.0]
fig, axes = plt.subplots(1, len(temperatures), figsize=(14, 4))
for ax, temperature in zip(axes, temperatures):
  samples = model.sample(36, temperature=temperature, seed=1).numpy()
  assert samples.shape == (36, 8, 8, 1)
  ax.imshow(
    image_grid(samples, digits.num_bins, columns=6, scale=1)[..., 0],
    cmap="gray",
  )
  ax.set_title(f"T = {temperature}")
  ax.set_axis_off()
plt.show()

# %% [markdown]
# ## Reconstructions through the latent space
#
# The flow is a bijection: the latent of an image is `flow.inverse(x)` (the
# density direction) and `flow.forward` maps it back. We encode the midpoint
# of each pixel's dequantisation interval, `x = (k + 1/2) / 17 - 1/2`, decode
# and quantise: every test digit comes back exactly. The middle row shows the
# latents, which look like the standard normal noise they are meant to be.


# %%
def encode(images):
  """Latents `[N, 8, 8, 1]` of integer images (midpoint dequantisation)."""
  x = (tf.cast(images, tf.float32) + 0.5) / digits.num_bins - 0.5
  return flow.inverse(x)


def decode(latents):
  # tf.identity: a fresh tensor, so TFP's cache cannot return the input.
  return dequantization.quantize(
    flow.forward(tf.identity(latents)), digits.num_bins
  ).numpy()


originals = test_images[:12]
latents = encode(originals)
reconstructions = decode(latents)
assert np.array_equal(reconstructions, originals)
print(
  "reconstructions equal the originals; latent std:",
  float(tf.math.reduce_std(latents)),
)
panels = [
  (
    image_grid(originals, digits.num_bins, columns=12, scale=1),
    "test digits",
    dict(cmap="gray"),
  ),
  # tile: the float latents, gaps blank (NaN).
  (
    tile(latents.numpy(), columns=12, fill=np.nan),
    "their latents z = flow.inverse(x)",
    dict(cmap="RdBu_r", vmin=-3, vmax=3),
  ),
  (
    image_grid(reconstructions, digits.num_bins, columns=12, scale=1),
    "flow.forward(z), quantised",
    dict(cmap="gray"),
  ),
]
fig, axes = plt.subplots(3, 1, figsize=(10, 3.6))
for ax, (grid, title, style) in zip(axes, panels):
  ax.imshow(grid[..., 0], **style)
  ax.set_title(title)
  ax.set_axis_off()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Interpolations in latent space
#
# Between the latents of two test digits we walk the straight line
# `z_t = (1 - t) z_a + t z_b` and decode each point; the ends are the two
# digits themselves.

# %%
pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
steps = np.linspace(0.0, 1.0, 9, dtype=np.float32)
rows = []
for a, b in pairs:
  z_a, z_b = latents[a], latents[b]
  path = (1.0 - steps[:, None, None, None]) * z_a + steps[
    :, None, None, None
  ] * z_b
  rows.append(decode(path))
  assert np.array_equal(rows[-1][0], originals[a])
  assert np.array_equal(rows[-1][-1], originals[b])
fig, ax = plt.subplots(figsize=(8, 4))
ax.imshow(
  image_grid(
    np.concatenate(rows), digits.num_bins, columns=len(steps), scale=1
  )[..., 0],
  cmap="gray",
)
ax.set_title("latent interpolations")
ax.set_axis_off()
plt.show()
