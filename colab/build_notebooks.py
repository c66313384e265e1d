"""Writes the Colab notebooks of `colab/` from the cell sources below.

The committed `.ipynb` files are the product; this script is how they are
edited: change a cell here, run `python colab/build_notebooks.py`, commit
both. The notebooks are written without outputs or execution counts, with
fixed cell ids, so rebuilding an unchanged notebook changes no byte
(`tests/test_notebooks.py` checks that the files match this script).

Every notebook starts with the same setup cell: it installs the package with
pip from `TFP_EMERGING_SOURCE`, the one variable at its top, when it runs on
Colab, and stops right there with a message naming the source and pip's error
if that fails (elsewhere it only checks that the package imports). A later
cell reads the size knob `TFP_EMERGING_NOTEBOOK_SCALE` (`"full"` by default,
what a Colab user gets; `"small"` for the test suite).
"""

import os
import textwrap

import nbformat

COLAB_DIR = os.path.dirname(os.path.abspath(__file__))

# What the notebooks' setup cell installs on Colab: anything `pip install`
# takes. Replace YOUR_GITHUB_USER with the repository's owner (here and in
# README's badges), then run this script.
TFP_EMERGING_SOURCE = "git+https://github.com/YOUR_GITHUB_USER/tfp_emerging"

INSTALL = f'''\
# Setup. On Colab this installs tfp_emerging with pip from TFP_EMERGING_SOURCE
# (a git URL, a wheel or a PyPI name: anything `pip install` takes) and stops
# here if that fails; anywhere else it only checks that the package imports.
TFP_EMERGING_SOURCE = "{TFP_EMERGING_SOURCE}"

import importlib.util
import subprocess
import sys

if "google.colab" in sys.modules:
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", TFP_EMERGING_SOURCE],
        capture_output=True, text=True)
    if install.returncode != 0:
        raise RuntimeError(
            f"Could not install tfp_emerging from TFP_EMERGING_SOURCE = "
            f"{{TFP_EMERGING_SOURCE!r}} (pip exit status "
            f"{{install.returncode}}). Set TFP_EMERGING_SOURCE at the top of "
            f"this cell to where the package is (e.g. "
            f"'git+https://github.com/<owner>/tfp_emerging') and run it "
            f"again. pip said:\\n" + install.stderr[-3000:])
importlib.invalidate_caches()
if importlib.util.find_spec("tfp_emerging") is None:
    raise RuntimeError(
        "tfp_emerging is not installed in this Python: on Colab set "
        "TFP_EMERGING_SOURCE above and run this cell again; elsewhere run "
        "`pip install -e .` in a checkout of the repository.")
print("tfp_emerging from", importlib.util.find_spec("tfp_emerging").origin)
'''

SCALE = '''\
# Size knob: "full" (default) is the real run, a few minutes on Colab;
# "small" is the test suite's quick run (tiny models, few steps).
import os

SCALE = os.environ.get("TFP_EMERGING_NOTEBOOK_SCALE", "full")
if SCALE not in ("small", "full"):
    raise ValueError("TFP_EMERGING_NOTEBOOK_SCALE must be 'small' or 'full'; "
                     f"got {SCALE!r}.")
print("scale:", SCALE)
'''

TILE = '''\
def tile(images, columns):
    """`[N, H, W, 1]` integer images as one `[rows * (H + 1), columns * (W + 1)]`
    array, one pixel of gap (NaN, drawn white) between images."""
    images = np.asarray(images, np.float64)[..., 0]
    n, h, w = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = image
    return grid


def show_digits(ax, images, columns, title=None, num_bins=17):
    cmap = plt.get_cmap("gray_r").copy()
    cmap.set_bad("white")
    ax.imshow(tile(images, columns), cmap=cmap, vmin=0, vmax=num_bins - 1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
'''

NOTEBOOK_01 = [
    ("code", INSTALL),
    ("markdown", '''\
# Emerging convolutions

[Hoogeboom, van den Berg and Welling (ICML 2019)](https://arxiv.org/abs/1901.11137)
build an invertible `k x k` convolution out of two *autoregressive*
convolutions. Each one masks its kernel so that output pixel `(i, j)` reads
only input pixels on one side of it (above and to the left for the first,
below and to the right for the second), and at `(i, j)` itself only input
channels up to its own. Ordering pixels in raster order, each Jacobian is
then triangular:

* the log-determinant is `H W sum_c log K_centre[c, c]`, read off the
  kernel's centre tap, at no cost;
* the inverse is an exact triangular solve (forward substitution, done here
  along anti-diagonal wavefronts or pixel by pixel in raster order).

Composing the two gives a convolution whose receptive field is a full
`k x k` window: the *emerging* convolution. This notebook builds one, shows
its masks and its equivalent kernel, checks its log-determinant against the
dense Jacobian, inverts it and times both directions.
'''),
    ("code", SCALE),
    ("code", '''\
import time

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_emerging.bijectors import AutoregressiveConv2D, EmergingConv2D

SIZES = {
    "small": dict(channels=4, timing_sides=[4, 8], timing_repeats=2),
    "full": dict(channels=8, timing_sides=[8, 16, 32, 64], timing_repeats=10),
}[SCALE]
'''),
    ("markdown", '''\
## Build one

`EmergingConv2D(channels, kernel_size)` creates its two parts with small
random kernels (close to the identity map). To make the pictures and checks
below interesting we pass our own, larger, initial values instead: each part
is an `AutoregressiveConv2D` with a free `[m, m, C, C]` quadrant kernel,
`m = (k + 1) / 2`, and a free `log_diagonal` for the centre tap's diagonal.
We work in float64 so the checks can be tight.
'''),
    ("code", '''\
C, K = 3, 3
M = (K + 1) // 2
rng = np.random.default_rng(0)


def part(order, solver="wavefront", channels=C, seed=0):
    values = np.random.default_rng(seed)
    return AutoregressiveConv2D(
        channels, K, order=order, solver=solver, dtype=tf.float64,
        kernel=values.normal(0., 0.3, [M, M, channels, channels]),
        log_diagonal=values.normal(0., 0.3, [channels]))


layer = EmergingConv2D(C, K, dtype=tf.float64,
                       first=part("top_left", seed=1),
                       second=part("bottom_right", seed=2))
first, second = layer.bijectors
print(first.order, first.full_kernel().shape, "|", second.order,
      second.full_kernel().shape, "| equivalent:", layer.equivalent_kernel().shape)
'''),
    ("markdown", '''\
## The two masks and the equivalent kernel

A `[k, k, C, C]` kernel is drawn as a `k x k` grid of `C x C` blocks: block
`(a, b)` is the tap at row offset `a`, column offset `b`, with input channels
down and output channels across. The top-left part uses only the upper-left
`m x m` quadrant, and its centre tap (the bottom-right block of that
quadrant) is upper triangular; the bottom-right part is the mirror image.
Their composition, `equivalent_kernel()`, fills the whole `k x k` window.
'''),
    ("code", '''\
def kernel_image(kernel):
    """`[k, k, C, C]` -> one image of k x k blocks (C x C each), NaN gaps."""
    kernel = np.asarray(kernel)
    k, _, c, _ = kernel.shape
    image = np.full((k * (c + 1) - 1, k * (c + 1) - 1), np.nan)
    for a in range(k):
        for b in range(k):
            image[a * (c + 1):a * (c + 1) + c,
                  b * (c + 1):b * (c + 1) + c] = kernel[a, b]
    return image


def draw(ax, image, title, cmap, **kwargs):
    cmap = plt.get_cmap(cmap).copy()
    cmap.set_bad("white")
    ax.imshow(image, cmap=cmap, **kwargs)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])


equivalent = layer.equivalent_kernel().numpy()
limit = np.abs(equivalent).max()
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
for ax, (name, bijector) in zip(axes, [("top-left mask (f1)", first),
                                       ("bottom-right mask (f2)", second)]):
    used = (bijector.full_kernel().numpy() != 0).astype(float)
    # Used taps black, masked ones light grey, gaps between taps white.
    draw(ax, kernel_image(used), name, "Greys", vmin=-0.25, vmax=1)
draw(axes[2], kernel_image(equivalent), "equivalent 3x3 kernel of f2(f1(x))",
     "RdBu_r", vmin=-limit, vmax=limit)
for ax in axes:
    ax.set_xlabel("tap column (output channels within)")
axes[0].set_ylabel("tap row (input channels within)")
plt.show()
'''),
    ("markdown", '''\
Away from the image's borders the layer *is* a convolution with that kernel
(at the borders the two parts' zero padding differs from a single
convolution's):
'''),
    ("code", '''\
x = tf.constant(rng.normal(size=[2, 8, 8, C]))
y = layer.forward(x)
y_conv = tf.nn.convolution(x, layer.equivalent_kernel(), padding="SAME")
interior = np.abs(y - y_conv)[:, M - 1:-(M - 1), M - 1:-(M - 1)].max()
print(f"max |forward - conv(equivalent kernel)| inside: {interior:.2e}")
assert interior < 1e-10
'''),
    ("markdown", '''\
## Log-determinant versus the dense Jacobian

On a small `4 x 4 x 3` image the whole Jacobian `dy / dx` is a `48 x 48`
matrix (pixels in raster order, channels within a pixel). Each part's is
triangular: `f1`'s lower (outputs read earlier pixels), `f2`'s upper. Their
product is dense, yet its log-determinant is still just the sum of the two
diagonals' logs. We compare `forward_log_det_jacobian` with `slogdet` of the
dense matrix.
'''),
    ("code", '''\
def dense_jacobian(bijector, x):
    x = tf.identity(x)  # a fresh tensor: TFP's cache must not short-cut forward
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = bijector.forward(x)
    size = int(np.prod(x.shape))
    return tape.jacobian(y, x).numpy().reshape(size, size)


x_small = tf.constant(rng.normal(size=[1, 4, 4, C]))
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, (name, bijector) in zip(axes, [("f1 (top-left)", first),
                                       ("f2 (bottom-right)", second),
                                       ("f2(f1(x)) (emerging)", layer)]):
    jacobian = dense_jacobian(bijector, x_small)
    sign, dense_log_det = np.linalg.slogdet(jacobian)
    log_det = bijector.forward_log_det_jacobian(x_small, event_ndims=3).numpy()[0]
    print(f"{name:22s} log|det| dense: {dense_log_det:+.12f}   "
          f"layer: {log_det:+.12f}")
    assert abs(dense_log_det - log_det) < 1e-9
    limit = np.abs(jacobian).max()
    draw(ax, np.where(jacobian == 0, np.nan, jacobian),
         f"Jacobian of {name}", "RdBu_r", vmin=-limit, vmax=limit)
plt.show()
'''),
    ("markdown", '''\
## Inverse

`inverse` undoes the bottom-right part, then the top-left one, each by exact
forward substitution. TFP caches the pair `(x, forward(x))`, so
`inverse(forward(x))` would just hand back `x`; `tf.identity` makes a fresh
tensor and forces the solves. Both solvers give the same answer:
`"wavefront"` solves all pixels of an anti-diagonal at once (`H + W - 1`
sequential steps), `"raster"` one pixel at a time (`H W` steps).
'''),
    ("code", '''\
raster = EmergingConv2D(C, K, dtype=tf.float64, solver="raster",
                        first=part("top_left", "raster", seed=1),
                        second=part("bottom_right", "raster", seed=2))
y = layer.forward(x)
for name, bijector in [("wavefront", layer), ("raster", raster)]:
    x_back = bijector.inverse(tf.identity(y))
    error = np.abs(x_back - x).max()
    print(f"{name:9s} max |inverse(forward(x)) - x| = {error:.2e}")
    assert error < 1e-10
'''),
    ("markdown", '''\
## Forward versus inverse time

The forward pass is two small convolutions; the inverse is sequential.
We time both (each wrapped in a `tf.function`, traced once before timing;
the fastest of several runs) for growing images, with 8 channels (4 in the
small run) and a batch of 8, in float32. The
wavefront solver's step count grows like `H + W`, the raster solver's like
`H W`.
'''),
    ("code", '''\
def best_seconds(function, argument, repeats):
    function(argument)  # trace (and warm up)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument).numpy()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed by other work on the machine


channels = SIZES["channels"]
timed = {}
for solver in ("wavefront", "raster"):
    parts = [AutoregressiveConv2D(channels, K, order=order, solver=solver, seed=seed)
             for seed, order in enumerate(["top_left", "bottom_right"])]
    timed[solver] = EmergingConv2D(channels, K, solver=solver,
                                   first=parts[0], second=parts[1])
forward = tf.function(timed["wavefront"].forward)
inverses = {solver: tf.function(bijector.inverse)
            for solver, bijector in timed.items()}
seconds = {"forward": [], "inverse (wavefront)": [], "inverse (raster)": []}
for side in SIZES["timing_sides"]:
    images = tf.random.normal([8, side, side, channels], seed=side)
    seconds["forward"].append(
        best_seconds(forward, images, SIZES["timing_repeats"]))
    for solver, inverse in inverses.items():
        seconds[f"inverse ({solver})"].append(
            best_seconds(inverse, images, SIZES["timing_repeats"]))
    print(f"{side:3d} x {side:<3d}" + "".join(
        f"  {name}: {times[-1] * 1e3:8.2f} ms" for name, times in seconds.items()))
'''),
    ("code", '''\
fig, ax = plt.subplots(figsize=(6, 4))
for name, times in seconds.items():
    ax.plot(SIZES["timing_sides"], np.array(times) * 1e3, "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_xticks(SIZES["timing_sides"], [str(side) for side in SIZES["timing_sides"]])
ax.minorticks_off()
ax.set_yscale("log")
ax.set_xlabel("image side H = W")
ax.set_ylabel("milliseconds per batch of 8")
ax.set_title(f"EmergingConv2D, {channels} channels, 3x3")
ax.legend()
plt.show()
'''),
    ("markdown", '''\
Density evaluation (training) only ever runs `forward`; the solves are paid
when sampling. That asymmetry is why the emerging convolution suits density
modelling: see `02_density_modeling.ipynb`.
'''),
]

NOTEBOOK_02 = [
    ("code", INSTALL),
    ("markdown", '''\
# Density modelling of digits with Glow and emerging convolutions

We train a Glow flow (Kingma and Dhariwal, 2018) whose mixing layers are a
QR-parameterised 1x1 convolution followed by an emerging `3 x 3` convolution
(Hoogeboom et al., 2019), on scikit-learn's 8x8 handwritten digits: 17 grey
levels, 1500 training and 297 test images, bundled with scikit-learn (no
download). Training is `tfp_emerging.training.fit`, the command line's own
path: Keras' `model.fit` over a `tf.data` pipeline, with a test evaluation
after every epoch; the loss is bits per dimension of the dequantised images.
Then we sample at several temperatures,
reconstruct test digits through the latent space and interpolate between
them.
'''),
    ("code", SCALE),
    ("code", '''\
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_emerging import data
from tfp_emerging import training
from tfp_emerging.flows import dequantization

SIZES = {
    "small": dict(num_levels=1, num_steps=1, hidden_channels=8, epochs=2,
                  train_images=256),
    "full": dict(num_levels=2, num_steps=4, hidden_channels=64, epochs=40,
                 train_images=None),
}[SCALE]
'''),
    ("code", TILE),
    ("code", '''\
digits = data.load("digits")  # streams images("train") and images("test")
test_images = np.stack(list(digits.images("test").as_numpy_iterator()))
print(digits.num_examples, "images", digits.image_shape, "grey levels:",
      digits.num_bins)
fig, ax = plt.subplots(figsize=(8, 2))
show_digits(ax, np.stack(list(digits.images("train").take(32))), 16,
            "training digits")
plt.show()
'''),
    ("markdown", '''\
## The model

Two levels (one in the small run); each squeezes the image (2x2 blocks to
channels) and applies `num_steps` steps of ActNorm, 1x1 (QR) + emerging
convolution, affine coupling; between levels half the channels are split
off under a learned conditional prior. `training.build_model` wraps the flow
in a `FlowModel` (a `keras.Model` that dequantises each batch and reports
bits/dim), compiled with Adam after a linear warm-up. A uniform model of
17-level pixels scores `log2(17) = 4.09` bits/dim.
'''),
    ("code", '''\
config = training.RunConfig(
    dataset="digits", mixing="emerging", num_levels=SIZES["num_levels"],
    num_steps=SIZES["num_steps"], hidden_channels=SIZES["hidden_channels"],
    epochs=SIZES["epochs"], batch_size=64, learning_rate=1e-3,
    warmup_steps=100, seed=0).with_data(digits)
model = training.build_model(config)
flow = model.flow
print("trainable parameters:",
      sum(int(np.prod(v.shape)) for v in model.trainable_weights))

history = training.fit(model, digits, config,
                       num_train=SIZES["train_images"],
                       verbose=2 if SCALE == "full" else 0)
test_bits = history[-1]["test_bits_per_dim"]
print(f"test bits/dim: {test_bits:.3f}")
'''),
    ("code", '''\
epochs = [record["epoch"] for record in history]
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(epochs, [record["train_bits_per_dim"] for record in history], "o-",
        label="train (mean over the epoch)")
ax.plot(epochs, [record["test_bits_per_dim"] for record in history], "s-",
        label="test (end of epoch)")
ax.axhline(np.log2(digits.num_bins), color="gray", ls="--",
           label="uniform, log2(17)")
ax.set_xlabel("epoch")
ax.set_ylabel("bits / dim")
ax.legend()
plt.show()
'''),
    ("markdown", '''\
## Samples at several temperatures

`model.sample(n, temperature=T)` draws `z ~ N(0, T^2 I)` and maps it through
the flow's `forward` (the emerging convolutions' triangular solves), then
quantises. Each panel maps the same 36 latents (same seed), scaled by `T`:
lower temperatures trade diversity and detail for smoother digits.
'''),
    ("code", '''\
temperatures = [0.5, 0.7, 0.85, 1.0]
fig, axes = plt.subplots(1, len(temperatures), figsize=(14, 4))
for ax, temperature in zip(axes, temperatures):
    samples = model.sample(36, temperature=temperature, seed=1).numpy()
    assert samples.shape == (36, 8, 8, 1)
    show_digits(ax, samples, 6, f"T = {temperature}")
plt.show()
'''),
    ("markdown", '''\
## Reconstructions through the latent space

The flow is a bijection: the latent of an image is `flow.inverse(x)` (the
density direction) and `flow.forward` maps it back. We encode the midpoint
of each pixel's dequantisation interval, `x = (k + 1/2) / 17 - 1/2`, decode
and quantise: every test digit comes back exactly. The middle row shows the
latents, which look like the standard normal noise they are meant to be.
'''),
    ("code", '''\
def encode(images):
    """Latents `[N, 8, 8, 1]` of integer images (midpoint dequantisation)."""
    x = (tf.cast(images, tf.float32) + 0.5) / digits.num_bins - 0.5
    return flow.inverse(x)


def decode(latents):
    # tf.identity: a fresh tensor, so TFP's cache cannot return the input.
    return dequantization.quantize(flow.forward(tf.identity(latents)),
                                   digits.num_bins).numpy()


originals = test_images[:12]
latents = encode(originals)
reconstructions = decode(latents)
assert np.array_equal(reconstructions, originals)
print("reconstructions equal the originals; latent std:",
      float(tf.math.reduce_std(latents)))
fig, axes = plt.subplots(3, 1, figsize=(10, 3.6))
show_digits(axes[0], originals, 12, "test digits")
axes[1].imshow(tile(latents.numpy(), 12), cmap="RdBu_r", vmin=-3, vmax=3)
axes[1].set_title("their latents z = flow.inverse(x)")
axes[1].set_axis_off()
show_digits(axes[2], reconstructions, 12, "flow.forward(z), quantised")
plt.tight_layout()
plt.show()
'''),
    ("markdown", '''\
## Interpolations in latent space

Between the latents of two test digits we walk the straight line
`z_t = (1 - t) z_a + t z_b` and decode each point; the ends are the two
digits themselves.
'''),
    ("code", '''\
pairs = [(0, 1), (2, 3), (4, 5), (6, 7)]
steps = np.linspace(0., 1., 9, dtype=np.float32)
rows = []
for a, b in pairs:
    z_a, z_b = latents[a], latents[b]
    path = (1. - steps[:, None, None, None]) * z_a + steps[:, None, None, None] * z_b
    rows.append(decode(path))
    assert np.array_equal(rows[-1][0], originals[a])
    assert np.array_equal(rows[-1][-1], originals[b])
fig, ax = plt.subplots(figsize=(8, 4))
show_digits(ax, np.concatenate(rows), len(steps), "latent interpolations")
plt.show()
'''),
]

NOTEBOOK_03 = [
    ("code", INSTALL),
    ("markdown", '''\
# Comparing mixing layers on the same budget

Glow mixes channels between couplings with an invertible 1x1 convolution.
Hoogeboom et al. (2019) replace it with wider invertible convolutions. Here
four mixings train in the same Glow, with the same data, batches, number of
steps, optimiser and seed, on the 8x8 digits:

| mixing | layer |
|---|---|
| `"1x1"` | Glow's plain 1x1 convolution, a free `C x C` matrix |
| `"qr"` | the QR-parameterised 1x1 convolution (always invertible) |
| `"emerging"` | a QR 1x1 followed by an emerging `3 x 3` convolution |
| `"periodic"` | a periodic (circular) `3 x 3` convolution, inverted by FFT |

We compare test bits/dim, parameter counts, training time per epoch and the
time to sample. One level of squeezing (images of `4 x 4 x 4`) keeps the
periodic convolution's `3 x 3` kernel within the image. On data this small
the differences are small and a single seed is noisy: read the numbers as an
illustration of the trade-off, not as the paper's results.
'''),
    ("code", SCALE),
    ("code", '''\
import time

import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from IPython.display import Markdown, display

from tfp_emerging import data
from tfp_emerging import training

SIZES = {
    "small": dict(num_steps=1, hidden_channels=8, epochs=2, train_images=128,
                  timing_repeats=2),
    "full": dict(num_steps=4, hidden_channels=32, epochs=20, train_images=None,
                 timing_repeats=10),
}[SCALE]
MIXINGS = ["1x1", "qr", "emerging", "periodic"]
SAMPLES = 64
# Each model traces its own functions; keep TF's retracing notes quiet.
tf.get_logger().setLevel("ERROR")
digits = data.load("digits")
test_images = np.stack(list(digits.images("test").as_numpy_iterator()))
'''),
    ("code", '''\
def best_seconds(function, argument, repeats):
    function(argument)  # trace (and warm up)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument).numpy()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed by other work on the machine


# The same latents (sampling) and images (density) for every model.
latents = tf.random.stateless_normal([SAMPLES, *digits.image_shape], seed=[0, 0])
images = tf.constant((test_images[:SAMPLES] + 0.5) / digits.num_bins - 0.5,
                     tf.float32)
results = {}
for mixing in MIXINGS:
    # The same data order, noise and seed for every model: only the mixing
    # differs (training.fit is the command line's training path).
    config = training.RunConfig(
        dataset="digits", mixing=mixing, num_levels=1,
        num_steps=SIZES["num_steps"], hidden_channels=SIZES["hidden_channels"],
        epochs=SIZES["epochs"], batch_size=64, learning_rate=1e-3,
        warmup_steps=100, seed=0).with_data(digits)
    model = training.build_model(config)
    history = training.fit(model, digits, config,
                           num_train=SIZES["train_images"])
    results[mixing] = dict(
        parameters=sum(int(np.prod(v.shape)) for v in model.trainable_weights),
        test_bits=history[-1]["test_bits_per_dim"],
        curve=[record["test_bits_per_dim"] for record in history],
        # The first epoch also traces the training step: leave it out.
        epoch_seconds=float(np.median(
            [record["train_seconds"] for record in history[1:]])),
        sample_seconds=best_seconds(tf.function(model.flow.forward), latents,
                                      SIZES["timing_repeats"]),
        density_seconds=best_seconds(
            tf.function(model.distribution.log_prob), images,
            SIZES["timing_repeats"]))
    assert np.isfinite(results[mixing]["test_bits"])
    print(f"{mixing:9s} test bits/dim {results[mixing]['test_bits']:.3f}")
'''),
    ("markdown", '''\
## Bits per dimension

Test bits/dim with the same dequantisation noise for every model (lower is
better; a uniform model scores `log2(17) = 4.09`). The emerging mixing has
more parameters than the 1x1 ones (its two `2 x 2` quadrant kernels per
step); the periodic one has a full `3 x 3` kernel.
'''),
    ("code", '''\
lines = ["| mixing | parameters | test bits/dim | s / epoch | "
         f"ms to sample {SAMPLES} | ms for the density of {SAMPLES} |",
         "|---|---:|---:|---:|---:|---:|"]
for mixing, r in results.items():
    lines.append(f"| `{mixing}` | {r['parameters']:,} | {r['test_bits']:.3f} | "
                 f"{r['epoch_seconds']:.2f} | {r['sample_seconds'] * 1e3:.1f} | "
                 f"{r['density_seconds'] * 1e3:.1f} |")
display(Markdown("\\n".join(lines)))
'''),
    ("code", '''\
bits = np.array([results[m]["test_bits"] for m in MIXINGS])
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
bars = axes[0].bar(MIXINGS, bits, color="C0")
axes[0].bar_label(bars, fmt="%.3f")
margin = max(0.05, bits.max() - bits.min())
axes[0].set_ylim(bits.min() - margin, bits.max() + margin)
axes[0].set_ylabel("test bits / dim (axis does not start at 0)")
axes[0].set_title("after the same training budget")
for mixing in MIXINGS:
    curve = results[mixing]["curve"]
    axes[1].plot(np.arange(1, len(curve) + 1), curve, "o-", label=mixing)
axes[1].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
axes[1].set_xlabel("epoch")
axes[1].set_ylabel("test bits / dim")
axes[1].set_title("learning curves")
axes[1].legend()
plt.show()
'''),
    ("markdown", '''\
## Sampling time

Density evaluation, `model.distribution.log_prob(x)`, runs every mixing
layer's cheap direction (a convolution); sampling, `flow.forward(z)`, runs
the other one. For the 1x1 layers that is a
`C x C` solve per pixel, for the periodic convolution one FFT solve per
frequency, for the emerging convolution a sequential triangular solve along
the image's anti-diagonals. Fastest of several runs, after tracing.
'''),
    ("code", '''\
x = np.arange(len(MIXINGS))
fig, ax = plt.subplots(figsize=(7, 4))
for offset, key, label in [(-0.2, "sample_seconds", f"sample {SAMPLES}"),
                           (0.2, "density_seconds", f"density of {SAMPLES}")]:
    bars = ax.bar(x + offset, [results[m][key] * 1e3 for m in MIXINGS], 0.4,
                  label=label)
    ax.bar_label(bars, fmt="%.0f")
ax.set_xticks(x, MIXINGS)
ax.set_ylabel("milliseconds")
ax.set_title("time per batch")
ax.legend()
plt.show()
'''),
]

NOTEBOOKS = {
    "01_emerging_convolutions.ipynb": NOTEBOOK_01,
    "02_density_modeling.ipynb": NOTEBOOK_02,
    "03_comparing_mixing_layers.ipynb": NOTEBOOK_03,
}


def build(cells):
  """The `nbformat` notebook of `(kind, source)` cells: no outputs, fixed ids."""
  notebook = nbformat.v4.new_notebook()
  notebook.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3",
                     "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  for index, (kind, source) in enumerate(cells):
    make = (nbformat.v4.new_markdown_cell if kind == "markdown" else
            nbformat.v4.new_code_cell)
    notebook.cells.append(make(textwrap.dedent(source).strip("\n"),
                               id=f"cell-{index:02d}"))
  nbformat.validate(notebook)
  return notebook


def main():
  for filename, cells in NOTEBOOKS.items():
    path = os.path.join(COLAB_DIR, filename)
    nbformat.write(build(cells), path)
    print("wrote", path)


if __name__ == "__main__":
  main()
