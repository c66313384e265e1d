"""Glow: change of variables against a dense Jacobian, structure, directions."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.testlib import contract
from tests.testlib import digits_models
from tests.testlib import registry
from tfp_emerging import bijectors
from tfp_emerging import flows
from tfp_emerging import keras as tfe_keras

keras = tfe_keras.keras
tfb = tfp.bijectors
tfd = tfp.distributions

# Ops that solve a linear system or iterate: allowed only when sampling.
SOLVE_OPS = {
  "MatrixTriangularSolve",
  "MatrixSolve",
  "MatrixInverse",
  "BatchMatrixTriangularSolve",
  "While",
  "StatelessWhile",
}


def small_glow(mixing, dtype=tf.float64, seed=1, **overrides):
  """A tiny Glow with variables moved off their initial values.

  4x4x2 images and two levels, except `periodic`, whose kernel needs the
  last level to be at least 3x3: 6x6x1 and one level there.
  """
  shape, levels = ((6, 6, 1), 1) if mixing == "periodic" else ((4, 4, 2), 2)
  kwargs = dict(
    image_shape=shape,
    num_levels=levels,
    num_steps=1,
    mixing=mixing,
    hidden_channels=8,
    seed=seed,
    dtype=dtype,
  )
  kwargs.update(overrides)
  glow = flows.Glow(**kwargs)
  labels = None if glow.num_classes is None else np.arange(8) % glow.num_classes
  glow.initialize(
    contract.random([8, *shape], glow.dtype, seed=10) * 0.3,
    conditional_input=labels,
  )
  rng = np.random.default_rng(seed)
  for v in glow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0.0, 0.1, v.shape), glow.dtype))
  return glow


def standard_normal_log_prob(z):
  z = z.reshape(z.shape[0], -1)
  return -0.5 * np.sum(z**2, axis=1) - 0.5 * z.shape[1] * np.log(2 * np.pi)


@pytest.mark.slow
@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_log_prob_matches_dense_jacobian(mixing):
  glow = small_glow(mixing)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = contract.random([1, *glow.image_shape], tf.float64, seed=11) * 0.3
  log_prob = dist.log_prob(tf.identity(x)).numpy()
  z = glow.inverse(tf.identity(x)).numpy()
  jacobian = contract.dense_jacobian(glow.inverse, x)
  expected = standard_normal_log_prob(z) + contract.slogdet(jacobian)
  np.testing.assert_allclose(log_prob, expected, rtol=1e-10)
  # The sampling direction's own log-det: minus the density direction's at
  # the image it maps to; and, where it is cheap (no solver loops to
  # differentiate), from its own dense Jacobian.
  z = tf.constant(z)
  fldj = glow.forward_log_det_jacobian(z, event_ndims=3).numpy()
  x_again = tf.identity(glow.forward(z))
  np.testing.assert_allclose(
    fldj,
    -glow.inverse_log_det_jacobian(x_again, event_ndims=3).numpy(),
    rtol=1e-10,
  )
  if mixing in ("1x1", "lu"):
    np.testing.assert_allclose(
      fldj,
      contract.slogdet(contract.dense_jacobian(glow.forward, z)),
      rtol=1e-10,
    )


@pytest.mark.parametrize("mixing", ["emerging", "periodic"])
def test_round_trip_and_batch_shapes(mixing):
  glow = small_glow(mixing)
  for batch in ([], [3], [2, 2]):
    x = contract.random(batch + list(glow.image_shape), tf.float64, seed=12)
    z = glow.inverse(x)
    assert z.shape == x.shape
    assert glow.inverse_log_det_jacobian(x, event_ndims=3).shape == batch
    np.testing.assert_allclose(
      glow.forward(tf.identity(z)).numpy(), x.numpy(), atol=1e-9
    )


def test_structure_and_variables():
  glow = digits_models.glow(
    "emerging", (8, 8, 3), num_levels=3, num_steps=2, hidden_channels=5
  )
  channels = [[layer.channels for layer in layers] for layers in glow.steps]
  # Squeezed channels per level: 12, then half of 12 times 4, and so on.
  assert [c[0] for c in channels] == [12, 24, 48]
  kinds = [type(layer).__name__ for layer in glow.steps[0]]
  assert kinds == ["ActNorm", "Conv1x1", "EmergingConv2D", "AffineCoupling"] * 2
  assert [type(p).__name__ for p in glow.priors] == [
    "ConditionalNormalPrior",
    "ConditionalNormalPrior",
    "LearnedNormalPrior",
  ]
  # Non-trainable state: 6 ActNorm `initialized` flags and the fixed signs
  # of the 6 QR 1x1 convolutions.
  assert len(glow.variables) == len(glow.trainable_variables) + 6 + 6
  assert not glow.is_initialized()
  glow.initialize(tf.random.uniform([4, 8, 8, 3]) - 0.5)
  assert glow.is_initialized()


def test_new_flow_latent_is_standardised_by_initialisation():
  """After the data-dependent init, the latent of the init batch is ~N(0, 1)."""
  glow = digits_models.glow("lu", hidden_channels=4)
  x = contract.random([64, 8, 8, 1], tf.float32, seed=3) * 0.2 + 0.1
  glow.initialize(x)
  z = glow.inverse(x).numpy()
  assert abs(z.mean()) < 0.1
  assert 0.8 < z.std() < 1.2


def test_bad_arguments():
  for kwargs, name in [
    (dict(image_shape=(6, 8, 1), num_levels=2), "image_shape"),
    (dict(image_shape=(8, 8), num_levels=1), "image_shape"),
    (dict(mixing="svd"), "mixing"),
    (dict(num_levels=0), "num_levels"),
    (dict(num_steps=0), "num_steps"),
    (dict(hidden_channels=0), "hidden_channels"),
    (dict(kernel_size=2), "kernel_size"),
    (dict(mixing="periodic", kernel_size=5), "kernel_size"),
    (dict(num_classes=0), "num_classes"),
    (dict(condition_couplings=True), "num_classes"),
    (dict(num_classes=2, condition_couplings="yes"), "condition_couplings"),
    (dict(coupling_network_fn="conv"), "coupling_network_fn"),
    (dict(coupling_network_fn=lambda **kwargs: 3), "coupling_network_fn"),
    (
      dict(
        coupling_network_fn=lambda input_shape, output_channels, name: (
          registry.keras_coupling_network(2 * input_shape[-1] + 1, tf.float32)
        )
      ),  # 2 C_b + 2 out.
      "coupling_network_fn",
    ),
  ]:
    arguments = dict(image_shape=(8, 8, 1), num_levels=1, num_steps=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=name):
      flows.Glow(**arguments)


def test_custom_mixing_callable():
  made = []

  def mixing(channels, seed, dtype):
    made.append(channels)
    return bijectors.Conv1x1(channels, "lu", seed=seed, dtype=dtype)

  glow = digits_models.glow(mixing, (4, 4, 1), hidden_channels=3)
  assert made == [4, 8]
  assert type(glow.steps[1][1]) is bijectors.Conv1x1


def _op_types(concrete_function):
  graph_def = concrete_function.graph.as_graph_def()
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types.update(node.op for node in function.node_def)
  return types


@pytest.mark.parametrize("mixing", flows.MIXINGS)
def test_log_prob_runs_convolutions_and_sampling_runs_solves(mixing):
  """The density path holds no per-pixel solve or loop; sampling solves.

  (Without XLA and with static sizes the wavefront's steps are unrolled, so
  the sampling path need not hold a loop.)
  """
  glow = small_glow(mixing, dtype=tf.float32)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  log_prob = tf.function(dist.log_prob).get_concrete_function(x)
  density = _op_types(log_prob)
  sampling = _op_types(tf.function(glow.forward).get_concrete_function(x))
  assert not density & SOLVE_OPS - {"MatrixTriangularSolve"}, density
  # The only triangular solves there form the QR 1x1's Q from its
  # Householder vectors (compact WY): C x C, never over the pixels.
  for op in log_prob.graph.get_operations():
    if op.type == "MatrixTriangularSolve":
      assert op.inputs[1].shape.rank == 2, op.inputs[1].shape
  assert "Conv2D" in density
  assert "MatrixTriangularSolve" in sampling
  if mixing == "periodic":
    assert "IRFFT2D" in sampling


def test_log_prob_evaluates_the_flow_once():
  """`inverse` caches its log-det: log_prob runs each network once."""
  glow = small_glow("lu", dtype=tf.float32)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  graph = tf.function(dist.log_prob).get_concrete_function(x).graph
  convolutions = sum(op.type == "Conv2D" for op in graph.get_operations())
  # 2 couplings x 3 convolutions + 1 split prior convolution.
  assert convolutions == 7


def test_squeeze_moves_each_2x2_block_into_channels():
  x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  y = flows.glow.squeeze(tf.constant(x)).numpy()
  assert y.shape == (2, 2, 3, 12)
  for i, j, a, b, c in np.ndindex(2, 3, 2, 2, 3):
    assert y[1, i, j, (2 * a + b) * 3 + c] == x[1, 2 * i + a, 2 * j + b, c]
  np.testing.assert_array_equal(flows.glow.unsqueeze(tf.constant(y)), x)


def test_contract_gradients_and_bad_input():
  """Two checks of the shared contract on the whole flow (the others, XLA
  included, pass too but cost minutes: the dense Jacobian tests above cover
  the log-det)."""
  case = contract.Case(
    name="glow-emerging",
    make=lambda dtype, mixing="emerging", **overrides: small_glow(
      mixing, dtype, seed=3, **overrides
    ),
    event_shape=(4, 4, 2),
    bad_arguments=(
      ({"mixing": "svd"}, "mixing"),
      ({"image_shape": (6, 4, 2)}, "image_shape"),
      ({"dtype": tf.int32}, "dtype"),
    ),
  )
  glow = case.make(tf.float32)
  contract.check_gradients(glow, case.event_shape, tf.float32)
  contract.check_bad_input(case, glow, tf.float32)


@pytest.mark.slow
def test_shapes_unknown_at_trace_time_are_checked_at_run_time():
  """A channel count (contract) or image size that a traced function did not
  know fails with a message naming it, whatever `validate_args` is. One
  level on 2x2x1 images: each trace of the flow costs seconds."""

  def make(dtype, **overrides):
    glow = digits_models.glow(
      "qr",
      (2, 2, 1),
      num_levels=1,
      hidden_channels=2,
      seed=3,
      dtype=dtype,
      **overrides,
    )
    glow.initialize(
      tf.random.stateless_normal([4, 2, 2, 1], [1, 2], dtype=dtype)
    )
    return glow

  case = contract.Case(name="glow-qr", make=make, event_shape=(2, 2, 1))
  contract.check_unknown_channels(case, None, tf.float32)
  inverse = tf.function(
    make(tf.float32).inverse, input_signature=[tf.TensorSpec([None] * 4)]
  )
  with pytest.raises(
    tf.errors.InvalidArgumentError, match=r"events of shape \[2, 2, 1\]"
  ):
    inverse(tf.zeros([1, 4, 2, 1]))


# Labels of events with batch shape [2]: ids, one-hot vectors. (One id for
# a whole batch: test_label_enters_as_documented.)
NUM_CLASSES = 3
LABELS = ([0, 2], [1, 1], np.eye(NUM_CLASSES)[[2, 0]])


class ConditionalConvNet(keras.layers.Layer):
  """A custom coupling network: the label's one-hot `[N, K]` sets a bias."""

  def __init__(self, output_channels, hidden=8, dtype="float64", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.seen_conditions = []
    self.hidden = keras.layers.Conv2D(
      hidden, 3, padding="same", activation="relu", dtype=dtype
    )
    self.embed = keras.layers.Dense(hidden, dtype=dtype)
    self.out = keras.layers.Conv2D(
      output_channels, 3, padding="same", dtype=dtype
    )

  def call(self, x_a, conditional_input=None):
    self.seen_conditions.append(conditional_input)
    bias = self.embed(conditional_input)
    return self.out(self.hidden(x_a) + bias[:, None, None, :])


def _conditional_network(input_shape, output_channels, name):
  del input_shape  # Convolutions: any size.
  return ConditionalConvNet(output_channels, name=name)


@pytest.mark.slow
@pytest.mark.parametrize(
  "coupling_network_fn",
  [None, _conditional_network],
  ids=["default-network", "custom-network"],
)
def test_conditional_contract(coupling_network_fn):
  """Per label: round trips, log_prob against the dense Jacobian, a new
  label changes log_prob, no cache reuse across labels, gradients reach
  every variable (the class terms of the priors and couplings too)."""
  glow = small_glow(
    "lu",
    seed=4,
    num_classes=NUM_CLASSES,
    condition_couplings=True,
    coupling_network_fn=coupling_network_fn,
  )
  contract.check_conditional(glow, glow.image_shape, tf.float64, LABELS)
  if coupling_network_fn is not None:  # It gets the one-hot labels, [N, K].
    glow.inverse(
      tf.zeros([2, *glow.image_shape], tf.float64), conditional_input=[2, 0]
    )
    seen = glow.steps[0][-1].network.seen_conditions[-1]
    np.testing.assert_array_equal(seen, np.eye(NUM_CLASSES)[[2, 0]])


@pytest.mark.slow
def test_conditional_modes_agree():
  """Eager = tf.function = XLA with labels, both directions."""
  glow = small_glow(
    "lu", tf.float32, seed=4, num_classes=NUM_CLASSES, condition_couplings=True
  )
  contract.check_conditional_modes(
    glow,
    glow.image_shape,
    tf.float32,
    [tf.constant([0, 2]), tf.constant([1, 1])],
  )


def _unconditional_twin(glow, label):
  """An unconditional Glow that computes what `glow` does for `label`.

  Built like `glow`, with its variables, and each class term of the
  docstring's math folded into the bias it adds to: the top prior's `loc`
  and `log_scale`, the split priors' `bias` and the couplings' first
  hidden bias.
  """
  names = (
    "image_shape",
    "num_levels",
    "num_steps",
    "mixing",
    "hidden_channels",
    "kernel_size",
    "seed",
    "dtype",
  )
  twin = flows.Glow(**{name: glow.parameters[name] for name in names})
  for layers, twin_layers in zip(glow.steps, twin.steps):
    for layer, twin_layer in zip(layers, twin_layers):
      if isinstance(layer, bijectors.AffineCoupling):
        weights = layer.weights
        for key, weight in twin_layer.weights.items():
          weight.assign(weights[key])
        if glow.condition_couplings:
          twin_layer.weights["hidden_bias"].assign_add(
            weights["condition_kernel"][label]
          )
      else:
        for v, twin_v in zip(layer.variables, twin_layer.variables):
          twin_v.assign(v)
  *splits, top = glow.priors
  *twin_splits, twin_top = twin.priors
  for prior, twin_prior in zip(splits, twin_splits):
    twin_prior.kernel.assign(prior.kernel)
    twin_prior.bias.assign(prior.bias + prior.class_bias[label])
  twin_top.loc.assign(top.loc + top.class_loc[label])
  twin_top.log_scale.assign(top.log_scale + top.class_log_scale[label])
  return twin


def test_label_enters_as_documented():
  glow = small_glow(
    "lu", seed=5, num_classes=NUM_CLASSES, condition_couplings=True
  )
  x = contract.random([2, *glow.image_shape], tf.float64, seed=13) * 0.3
  for label in range(NUM_CLASSES):
    twin = _unconditional_twin(glow, label)
    for conditional_input in (label, np.eye(NUM_CLASSES)[[label] * 2]):
      np.testing.assert_allclose(
        glow.inverse(x, conditional_input=conditional_input),
        twin.inverse(x),
        rtol=1e-12,
        atol=1e-12,
      )
      np.testing.assert_allclose(
        glow.inverse_log_det_jacobian(
          x, event_ndims=3, conditional_input=conditional_input
        ),
        twin.inverse_log_det_jacobian(x, event_ndims=3),
        rtol=1e-12,
      )
    np.testing.assert_allclose(
      glow.forward(x, conditional_input=label),
      twin.forward(x),
      rtol=1e-10,
      atol=1e-10,
    )


def test_new_conditional_glow_is_standard_normal_for_every_label():
  """Class terms start at zero: after the data-dependent init, the latent of
  the init batch is the same for every label."""
  glow = digits_models.glow(
    "lu", hidden_channels=4, num_classes=NUM_CLASSES, condition_couplings=True
  )
  x = contract.random([32, 8, 8, 1], tf.float32, seed=3) * 0.2 + 0.1
  glow.initialize(x, conditional_input=np.arange(32) % NUM_CLASSES)
  z = [
    glow.inverse(x, conditional_input=label).numpy()
    for label in range(NUM_CLASSES)
  ]
  np.testing.assert_array_equal(z[0], z[1])
  np.testing.assert_array_equal(z[0], z[2])
  assert abs(z[0].mean()) < 0.1 and 0.8 < z[0].std() < 1.2


def test_num_classes_conditions_the_couplings_by_default():
  """`Glow(num_classes=K)` is the flow `train --conditional` builds: the
  coupling networks take the label too (their per-class weights exist and
  the flow equals an explicit `condition_couplings=True` one); priors only
  is `condition_couplings=False`, and no labels means no conditioning."""
  default = small_glow("lu", seed=7, num_classes=NUM_CLASSES)
  explicit = small_glow(
    "lu", seed=7, num_classes=NUM_CLASSES, condition_couplings=True
  )
  priors_only = small_glow(
    "lu", seed=7, num_classes=NUM_CLASSES, condition_couplings=False
  )
  assert default.condition_couplings and not priors_only.condition_couplings
  assert not small_glow("lu", seed=7).condition_couplings

  def shapes(glow):
    return [tuple(v.shape) for v in glow.trainable_variables]

  assert shapes(default) == shapes(explicit)
  assert len(shapes(default)) > len(shapes(priors_only))
  x = contract.random([3, *default.image_shape], tf.float64, seed=15) * 0.3
  for label in range(NUM_CLASSES):
    np.testing.assert_array_equal(
      default.inverse(x, conditional_input=label).numpy(),
      explicit.inverse(x, conditional_input=label).numpy(),
    )
  rebuilt = type(default)(**default.parameters)
  assert rebuilt.condition_couplings


def test_sampling_and_chains_route_the_label():
  """`sample` and `log_prob` pass `bijector_kwargs` on; a `tfb.Chain` routes
  them to the Glow by its name, as TFP does."""
  glow = small_glow("lu", seed=6, num_classes=NUM_CLASSES)
  base = glow.base_distribution()
  dist = tfd.TransformedDistribution(base, glow)
  eps = base.sample(3, seed=(1, 2))
  samples = {
    label: dist.sample(
      3, seed=(1, 2), bijector_kwargs={"conditional_input": label}
    ).numpy()
    for label in range(NUM_CLASSES)
  }
  for label, images in samples.items():
    np.testing.assert_allclose(
      images,
      glow.forward(eps, conditional_input=[label] * 3).numpy(),
      rtol=1e-12,
    )
  assert np.max(np.abs(samples[0] - samples[1])) > 1e-3
  chain = tfb.Chain(
    [
      tfb.Shift(tf.constant(0.25, tf.float64)),
      glow,
      tfb.Scale(tf.constant(1.5, tf.float64)),
    ]
  )
  chained = tfd.TransformedDistribution(base, chain)
  x = contract.random([2, *glow.image_shape], tf.float64, seed=14) * 0.3
  labels = [2, 0]
  kwargs = {glow.name: {"conditional_input": labels}}
  assert glow.name == "glow"
  log_prob = chained.log_prob(x, bijector_kwargs=kwargs).numpy()
  z = chain.inverse(tf.identity(x), **kwargs)
  expected = base.log_prob(z).numpy() + contract.slogdet(
    contract.dense_jacobian(lambda v: chain.inverse(v, **kwargs), x)
  )
  np.testing.assert_allclose(log_prob, expected, rtol=1e-10)


def test_bad_labels():
  glow = small_glow("lu", dtype=tf.float32, num_classes=NUM_CLASSES)
  plain = small_glow("lu", dtype=tf.float32)
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  for call, message in [
    (lambda: glow.forward(x), "is conditional"),
    (lambda: glow.inverse(x), "is conditional"),
    (lambda: dist.log_prob(x), "is conditional"),
    (lambda: glow.initialize(x), "is conditional"),
    (lambda: plain.inverse(x, conditional_input=[0, 1]), "unconditional"),
    (lambda: glow.inverse(x, conditional_input=[0, 3]), r"0\.\.2; got \[3\]"),
    (lambda: glow.forward(x, conditional_input=-1), r"got \[-1\]"),
    (
      lambda: glow.inverse(x, conditional_input=[[0, 1, 2]] * 2),
      "one-hot vectors as floats",
    ),
    (
      lambda: glow.inverse(x, conditional_input=np.eye(4)[:2]),
      r"\[\.\.\., 3\]",
    ),
    (lambda: glow.inverse(x, conditional_input=[True, False]), "dtype"),
    (
      lambda: dist.sample(3, bijector_kwargs={"conditional_input": [0, 1]}),
      "broadcast",
    ),
  ]:
    with pytest.raises(ValueError, match=message):
      call()
  # Ids known only at run time: an assertion.
  inverse = tf.function(lambda x, y: glow.inverse(x, conditional_input=y))
  with pytest.raises(tf.errors.InvalidArgumentError, match="class ids"):
    inverse(x, tf.constant([0, 5]))


def test_custom_coupling_network_replaces_the_default_and_is_tracked():
  made = []

  def coupling_network_fn(input_shape, output_channels, name):
    made.append((input_shape, output_channels, name))
    return keras.Sequential(
      [
        keras.layers.Conv2D(6, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(
          output_channels, 3, padding="same", kernel_initializer="zeros"
        ),
      ]
    )

  default = digits_models.glow("lu", hidden_channels=4)
  glow = digits_models.glow(
    "lu", hidden_channels=4, coupling_network_fn=coupling_network_fn
  )
  # Squeezed: 4x4x4 (C_a = 2, 2 C_b = 4), then 2x2x8.
  assert made == [
    ((4, 4, 2), 4, "coupling_network_0_0"),
    ((2, 2, 4), 8, "coupling_network_1_0"),
  ]
  couplings = [layers[-1] for layers in glow.steps]
  behind = [
    getattr(w, "value", w) for c in couplings for w in c.network.weights
  ]
  tracked = {id(v) for v in glow.trainable_variables}
  assert len(behind) == 8 and all(id(v) in tracked for v in behind)
  assert all(isinstance(v, tf.Variable) for v in behind)
  assert (
    len(glow.trainable_variables)
    == len(default.trainable_variables) - 2 * 6 + 8
  )
  # A zero last layer: like the default network, a new coupling is
  # y_b = sigmoid(2) x_b, so both flows agree.
  x = contract.random([2, 8, 8, 1], tf.float32, seed=15) * 0.3
  np.testing.assert_allclose(
    glow.inverse(x), default.inverse(x), rtol=1e-5, atol=1e-6
  )


def test_fit_trains_the_custom_coupling_network():
  network = []

  def coupling_network_fn(input_shape, output_channels, name):
    network.append(
      keras.Sequential(
        [
          keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
          keras.layers.Conv2D(output_channels, 1, kernel_initializer="zeros"),
        ],
        name=name,
      )
    )
    return network[-1]

  glow = digits_models.glow(
    "lu",
    num_levels=1,
    hidden_channels=4,
    coupling_network_fn=coupling_network_fn,
  )
  model = tfe_keras.FlowModel(glow, num_bins=17)
  model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=False)
  before = [w.numpy().copy() for w in network[0].weights]
  images = np.random.default_rng(0).integers(0, 17, [24, 8, 8, 1])
  model.fit(images, batch_size=8, epochs=1, verbose=0)  # 3 steps.
  for old, new in zip(before, network[0].weights):
    assert np.any(old != new.numpy()), new.name


def test_log_prob_with_labels_evaluates_the_flow_once():
  glow = small_glow(
    "lu", dtype=tf.float32, num_classes=NUM_CLASSES, condition_couplings=True
  )
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  x = tf.zeros([2, *glow.image_shape])
  graph = (
    tf.function(
      lambda x, y: dist.log_prob(x, bijector_kwargs={"conditional_input": y})
    )
    .get_concrete_function(x, tf.constant([0, 1]))
    .graph
  )
  convolutions = sum(op.type == "Conv2D" for op in graph.get_operations())
  assert convolutions == 7  # As without labels.


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_first_log_prob_initialises_every_actnorm_in_order(mode):
  """As tfb.Glow: the first density evaluation is the data-dependent init."""

  def new_glow():
    return digits_models.glow(
      "lu", num_levels=1, num_steps=2, hidden_channels=4
    )

  glow = new_glow()
  dist = tfd.TransformedDistribution(glow.base_distribution(), glow)
  run = {
    "eager": dist.log_prob,
    "function": tf.function(dist.log_prob),
    "xla": tf.function(dist.log_prob, jit_compile=True),
  }[mode]
  x = contract.random([32, 8, 8, 1], tf.float32, seed=3) * 0.2 + 0.1
  log_prob = run(x).numpy()
  assert glow.is_initialized()
  # Each ActNorm standardises the activations its initialised predecessors
  # produce from that batch (the second one's input depends on the first).
  h = flows.glow.squeeze(x)
  for layer in glow.steps[0]:
    h_next = layer.forward(h)
    if isinstance(layer, bijectors.ActNorm):
      np.testing.assert_allclose(
        np.mean(h_next, axis=(0, 1, 2)), 0.0, atol=1e-5
      )
      np.testing.assert_allclose(np.std(h_next, axis=(0, 1, 2)), 1.0, rtol=1e-3)
    h = h_next
  # The batch was evaluated by the initialised flow.
  np.testing.assert_allclose(
    log_prob, dist.log_prob(tf.identity(x)).numpy(), rtol=1e-5
  )
  if mode == "eager":
    # A graph traced after the initialisation has no cond and no check.
    traced = _op_types(tf.function(dist.log_prob).get_concrete_function(x))
    assert not traced & {"If", "StatelessIf", "Assert"}, traced
  # The same values as the explicit initialize().
  explicit = new_glow()
  explicit.initialize(x)
  for implicit_layer, explicit_layer in zip(glow.actnorms, explicit.actnorms):
    np.testing.assert_allclose(
      implicit_layer.bias.numpy(),
      explicit_layer.bias.numpy(),
      rtol=1e-5,
      atol=1e-6,
    )
    np.testing.assert_allclose(
      implicit_layer.log_scale.numpy(),
      explicit_layer.log_scale.numpy(),
      rtol=1e-5,
    )


def test_sampling_an_uninitialised_flow_raises():
  glow = digits_models.glow("1x1", (4, 4, 1), num_levels=1, hidden_channels=4)
  z = glow.base_distribution().sample(2, seed=[1, 2])
  with pytest.raises(tf.errors.InvalidArgumentError, match="not initialised"):
    glow.forward(z)
  assert not glow.is_initialized()
