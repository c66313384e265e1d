# %% [markdown]
# # Comparing mixing layers on the same budget
#
# Glow mixes channels between couplings with an invertible 1x1 convolution.
# Hoogeboom et al. (2019) replace it with wider invertible convolutions. Here
# four mixings train in the same Glow, with the same data, batches, number of
# steps, optimiser and seed, on the 8x8 digits:
#
# | mixing | layer |
# |---|---|
# | `"1x1"` | Glow's plain 1x1 convolution, a free `C x C` matrix |
# | `"qr"` | the QR-parameterised 1x1 convolution (always invertible) |
# | `"emerging"` | a QR 1x1 followed by an emerging `3 x 3` convolution |
# | `"periodic"` | a periodic (circular) `3 x 3` convolution, inverted by FFT |
#
# We compare test bits/dim, parameter counts, training time per epoch and the
# time to sample. One level of squeezing (images of `4 x 4 x 4`) keeps the
# periodic convolution's `3 x 3` kernel within the image.
#
# **One seed proves nothing.** Each mixing trains once, with one seed, so the
# numbers below carry no error bars. On data this small the gaps between
# mixings are of the size another seed (other initial weights, another batch
# order) would change them by, and their order may flip from seed to seed.
# Read them as an illustration of the trade-off (parameters, training time,
# sampling time), not as a ranking of the mixings nor as the paper's results.
# The comparison over 3 seeds, with means, standard deviations and paired
# differences, is `benchmarks/compare.py`, reported in the docs' Results
# page.

# %%
from IPython.display import Markdown
from IPython.display import display
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.timing import best_seconds

SIZES = {
  "small": dict(
    num_steps=1, hidden_channels=8, epochs=2, train_images=128, timing_repeats=2
  ),
  "full": dict(
    num_steps=4,
    hidden_channels=32,
    epochs=20,
    train_images=None,
    timing_repeats=10,
  ),
}["small" if SMALL else "full"]
MIXINGS = ["1x1", "qr", "emerging", "periodic"]
SAMPLES = 64
# Each model traces its own functions; keep TF's retracing notes quiet.
tf.get_logger().setLevel("ERROR")
digits = data.load("digits")
test_images = np.stack(list(digits.images("test").as_numpy_iterator()))

# %%
# The same latents (sampling) and images (density) for every model.
latents = tf.random.stateless_normal(
  [SAMPLES, *digits.image_shape], seed=[0, 0]
)
images = tf.constant(
  (test_images[:SAMPLES] + 0.5) / digits.num_bins - 0.5, tf.float32
)
results = {}
for mixing in MIXINGS:
  # The same data order, noise and seed for every model: only the mixing
  # differs (training.fit is the command line's training path).
  config = training.RunConfig(
    dataset="digits",
    mixing=mixing,
    num_levels=1,
    num_steps=SIZES["num_steps"],
    hidden_channels=SIZES["hidden_channels"],
    epochs=SIZES["epochs"],
    batch_size=64,
    learning_rate=1e-3,
    warmup_steps=100,
    seed=0,
  ).with_data(digits)
  model = training.build_model(config)
  history = training.fit(model, digits, config, num_train=SIZES["train_images"])
  results[mixing] = dict(
    parameters=sum(int(np.prod(v.shape)) for v in model.trainable_weights),
    test_bits=history[-1]["test_bits_per_dim"],
    curve=[record["test_bits_per_dim"] for record in history],
    # The first epoch also traces the training step: leave it out.
    epoch_seconds=float(
      np.median([record["train_seconds"] for record in history[1:]])
    ),
    sample_seconds=best_seconds(
      tf.function(model.flow.forward), latents, SIZES["timing_repeats"]
    ),
    density_seconds=best_seconds(
      tf.function(model.distribution.log_prob), images, SIZES["timing_repeats"]
    ),
  )
  assert np.isfinite(results[mixing]["test_bits"])
  print(f"{mixing:9s} test bits/dim {results[mixing]['test_bits']:.3f}")

# %% [markdown]
# ## Bits per dimension
#
# Test bits/dim with the same dequantisation noise for every model (lower is
# better; a uniform model scores `log2(17) = 4.09`), from one seed each: no
# error bars, and no gap here says one mixing beats another. The emerging
# mixing has more parameters than the 1x1 ones (its two `2 x 2` quadrant
# kernels per step); the periodic one has a full `3 x 3` kernel.

# %%
lines = [
  "| mixing | parameters | test bits/dim | s / epoch | "
  f"ms to sample {SAMPLES} | ms for the density of {SAMPLES} |",
  "|---|---:|---:|---:|---:|---:|",
]
for mixing, r in results.items():
  lines.append(
    f"| `{mixing}` | {r['parameters']:,} | {r['test_bits']:.3f} | "
    f"{r['epoch_seconds']:.2f} | {r['sample_seconds'] * 1e3:.1f} | "
    f"{r['density_seconds'] * 1e3:.1f} |"
  )
display(Markdown("\n".join(lines)))

# %%
bits = np.array([results[m]["test_bits"] for m in MIXINGS])
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
bars = axes[0].bar(MIXINGS, bits, color="C0")
axes[0].bar_label(bars, fmt="%.3f")
margin = max(0.05, bits.max() - bits.min())
axes[0].set_ylim(bits.min() - margin, bits.max() + margin)
axes[0].set_ylabel("test bits / dim (axis does not start at 0)")
axes[0].set_title("same budget, one seed each: no error bars")
for mixing in MIXINGS:
  curve = results[mixing]["curve"]
  axes[1].plot(np.arange(1, len(curve) + 1), curve, "o-", label=mixing)
axes[1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("test bits / dim")
axes[1].set_title("learning curves")
axes[1].legend()
plt.show()

# %% [markdown]
# ## Sampling time
#
# Density evaluation, `model.distribution.log_prob(x)`, runs every mixing
# layer's cheap direction (a convolution); sampling, `flow.forward(z)`, runs
# the other one. For the 1x1 layers that is a
# `C x C` solve per pixel, for the periodic convolution one FFT solve per
# frequency, for the emerging convolution a sequential triangular solve along
# the image's anti-diagonals. Fastest of several runs, after tracing.

# %%
x = np.arange(len(MIXINGS))
fig, ax = plt.subplots(figsize=(7, 4))
for offset, key, label in [
  (-0.2, "sample_seconds", f"sample {SAMPLES}"),
  (0.2, "density_seconds", f"density of {SAMPLES}"),
]:
  bars = ax.bar(
    x + offset, [results[m][key] * 1e3 for m in MIXINGS], 0.4, label=label
  )
  ax.bar_label(bars, fmt="%.0f")
ax.set_xticks(x, MIXINGS)
ax.set_ylabel("milliseconds")
ax.set_title("time per batch")
ax.legend()
plt.show()
