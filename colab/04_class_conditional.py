# %% [markdown]
# # A class-conditional Glow on the digits
#
# The Glow paper's class-conditional flow (Kingma and Dhariwal, 2018): the
# top prior's mean and log-scale and every split prior get a learned
# per-class term, and here every coupling network a per-class bias too
# (`condition_couplings`), so the density `p(x | y)` depends on the digit's
# class `y`. We train one with emerging mixing on scikit-learn's 8x8 digits
# and their labels through `tfp_emerging.training.fit`, the command line's
# own path (`--conditional` there), then draw a sample grid with one row
# per class, and use the class-conditional densities to classify test
# digits. The conditioning is described in the guide's Conditioning page.

# %%
import matplotlib.pyplot as plt
import numpy as np

from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.training import sample_grids

SIZES = {
  "small": dict(
    num_levels=1, num_steps=1, hidden_channels=8, epochs=2, train_images=256
  ),
  "full": dict(
    num_levels=2, num_steps=4, hidden_channels=64, epochs=40, train_images=None
  ),
}["small" if SMALL else "full"]
TEMPERATURE = 0.7  # the command line's default for samples.png

# %%
digits = data.load("digits")  # images("train", labels=True): (image, label)
test_images, test_labels = (
  np.stack(column)
  for column in zip(*digits.images("test", labels=True).as_numpy_iterator())
)
print(
  digits.num_examples,
  "images",
  digits.image_shape,
  "grey levels:",
  digits.num_bins,
  "classes:",
  digits.num_classes,
)

# %% [markdown]
# ## Training with labels
#
# `RunConfig(conditional=True)` builds a `Glow(num_classes=10,
# condition_couplings=True)`; `with_data` reads the number of classes from
# the data. `training.fit(..., labels=True)` feeds `(images, labels)`
# batches: the loss is the bits per dimension of each image under its own
# class. A new model's class terms are zero, so it starts as the
# unconditional one.

# %%
config = training.RunConfig(
  dataset="digits",
  mixing="emerging",
  conditional=True,
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
print(
  "classes:",
  model.num_classes,
  "| trainable parameters:",
  sum(int(np.prod(v.shape)) for v in model.trainable_weights),
)

history = training.fit(
  model,
  digits,
  config,
  num_train=SIZES["train_images"],
  labels=True,
  verbose=0 if SMALL else 2,
)
print(f"test bits/dim: {history[-1]['test_bits_per_dim']:.3f}")

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
ax.set_ylabel("bits / dim, given the class")
ax.legend()
plt.show()

# %% [markdown]
# ## One row per class
#
# `sample_grids.sample_grid` draws, for a class-conditional model, one row per
# class with `n` samples of that class each (`model.sample(n * K,
# labels=...)`, the labels `0, ..., 0, 1, ..., 1, ...`), at `TEMPERATURE`.
# It is the grid of a conditional run's `samples.png` and of the command
# line's `sample`; `SAMPLES_PER_CLASS` is their default `n`.

# %%
n = sample_grids.SAMPLES_PER_CLASS
grid = sample_grids.sample_grid(model, n, TEMPERATURE, seed=1)
print(f"sample grid {grid.shape}: {model.num_classes} rows of {n}")
fig, ax = plt.subplots(figsize=(5, 6))
ax.imshow(grid[..., 0], cmap="gray")
ax.set_yticks(
  (np.arange(model.num_classes) + 0.5) * grid.shape[0] / model.num_classes,
  [f"class {c}" for c in range(model.num_classes)],
)
ax.set_xticks([])
ax.set_title(f"{n} samples per class, T = {TEMPERATURE}")
plt.show()

# %% [markdown]
# `classes=` picks some of the classes, one row each, in the order given
# (the command line's `sample --classes 3,1,4`):

# %%
classes = [3, 1, 4]
some = sample_grids.sample_grid(model, n, TEMPERATURE, seed=2, classes=classes)
print(f"grid of classes {classes} {some.shape}: {len(classes)} rows of {n}")
fig, ax = plt.subplots(figsize=(5, 2))
ax.imshow(some[..., 0], cmap="gray")
ax.set_axis_off()
ax.set_title(f"classes {classes}")
plt.show()

# %% [markdown]
# ## Classifying with the class-conditional densities
#
# With equal class priors, Bayes' rule picks the class under which an image
# is most likely: `argmin_y bits(x | y)`. `model.bits_per_dim(images,
# labels=y)` gives each image's bits/dim under class `y` (the same
# dequantisation noise for every `y`, via `seed`). A flow trained only for
# density is a weak classifier, but well above chance (10 %).

# %%
bits = np.stack(
  [
    model.bits_per_dim(
      test_images, labels=np.full(len(test_images), label), seed=0
    ).numpy()
    for label in range(model.num_classes)
  ],
  axis=1,
)  # [N, K]
assert bits.shape == (len(test_images), model.num_classes)
assert np.isfinite(bits).all()
predicted = bits.argmin(axis=1)
accuracy = float(np.mean(predicted == test_labels))
print(
  f"accuracy of argmin_y bits(x | y) on {len(test_images)} test digits: "
  f"{accuracy:.1%}"
)
own = bits[np.arange(len(test_images)), test_labels].mean()
print(
  f"bits/dim under the own class {own:.3f}, "
  f"under the best class {bits.min(axis=1).mean():.3f}"
)
