"""The test contract every bijector of the package must pass.

A `Case` names one configured bijector. `tests/testlib/registry.py` lists
them all; `tests/unit/bijectors/test_contract.py` runs every check below on
every case, in float32 and float64. A new layer joins by adding cases there.

References are independent of the code under test: log-determinants come from
`numpy.linalg.slogdet` of the dense Jacobian (`tf.GradientTape.batch_jacobian`)
and round trips from applying both directions. TFP caches `forward`/`inverse`
pairs, so every second direction is given `tf.identity(...)` of the first's
output: without it `inverse(forward(x))` just returns the cached `x`.

Every assertion carries a label (e.g. "round trip y -> f^-1 -> f") that names
what failed; `test_properties_catch_a_broken_layer` in
`tests/unit/bijectors/test_properties.py` shows each labelled assertion
failing on a deliberately broken layer, so none of them is vacuous.
"""

from collections.abc import Callable, Sequence
import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors
tfd = tfp.distributions

# Round trip: max |x - f^-1(f(x))|.
ROUND_TRIP_ATOL = {tf.float32: 1e-4, tf.float64: 1e-9}
# Log-det against slogdet of the dense Jacobian.
LOG_DET_RTOL = {tf.float32: 1e-4, tf.float64: 1e-8}
# Eager vs tf.function vs XLA: the same ops, reassociated at most.
MODES_RTOL = {tf.float32: 1e-5, tf.float64: 1e-12}
# The four methods of a bijector, in the order the checks call them.
METHODS = (
  "forward",
  "inverse",
  "forward_log_det_jacobian",
  "inverse_log_det_jacobian",
)


@dataclasses.dataclass(frozen=True)
class Case:
  """One bijector configuration under test.

  Attributes:
    name: test id.
    make: `make(dtype, **overrides) -> Bijector` with variables set to
      realistic trained magnitudes (not the near-identity initialisation);
      `overrides` are constructor arguments, used by the bad-argument checks.
    event_shape: `[H, W, C]` of the events.
    bad_arguments: constructor overrides each of which must raise a
      `ValueError` whose message contains the given argument name:
      `[({"kernel_size": 0}, "kernel_size"), ...]`.
    check_jacobian: optional `check_jacobian(bijector, jacobian)` on the dense
      `[D, D]` Jacobian of `forward` (row = output, column = input; pixels in
      raster order, channels fastest), for layer-specific structure.
  """

  name: str
  make: Callable[..., tfb.Bijector]
  event_shape: Sequence[int] = (5, 7, 3)
  bad_arguments: Sequence = ()
  check_jacobian: Callable | None = None

  def __repr__(self):
    return self.name


def assert_close(got, want, what, atol, rtol=None):
  """`got` within `atol + rtol |want|` of `want` elementwise (`rtol`
  `atol` unless given); a failure's message starts with the label `what`."""
  np.testing.assert_allclose(
    got, want, rtol=atol if rtol is None else rtol, atol=atol, err_msg=what
  )


def random(shape, dtype, seed=0):
  return tf.random.stateless_normal(shape, seed=[seed, 7], dtype=dtype)


def dense_jacobian(fn, x):
  """`[N, D, D]` Jacobian of `fn` at `x` of shape `[N, H, W, C]`."""
  x = tf.identity(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(tf.identity(x))
  jac = tape.batch_jacobian(y, x)
  n, d = x.shape[0], int(np.prod(x.shape[1:]))
  return jac.numpy().reshape(n, d, d)


def slogdet(jacobian):
  sign, logdet = np.linalg.slogdet(jacobian.astype(np.float64))
  assert np.all(sign != 0), "dense Jacobian is singular"
  return logdet


def check_round_trip(bijector, event_shape, dtype):
  atol = ROUND_TRIP_ATOL[dtype]
  x = random([2, *event_shape], dtype, seed=1)
  x_again = bijector.inverse(tf.identity(bijector.forward(x)))
  assert_close(
    x_again.numpy(), x.numpy(), "round trip x -> f -> f^-1", atol, rtol=0
  )
  y = random([2, *event_shape], dtype, seed=2)
  y_again = bijector.forward(tf.identity(bijector.inverse(y)))
  assert_close(
    y_again.numpy(), y.numpy(), "round trip y -> f^-1 -> f", atol, rtol=0
  )


def check_log_det(bijector, event_shape, dtype):
  rtol = LOG_DET_RTOL[dtype]
  x = random([2, *event_shape], dtype, seed=3)
  expected = slogdet(dense_jacobian(bijector.forward, x))
  fldj = bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=3)
  assert_close(fldj.numpy(), expected, "fldj(x) against slogdet(J_f(x))", rtol)
  y = tf.identity(bijector.forward(x))
  ildj = bijector.inverse_log_det_jacobian(y, event_ndims=3)
  assert_close(ildj.numpy(), -fldj.numpy(), "ildj(f(x)) against -fldj(x)", rtol)
  # ... and the inverse's own dense Jacobian.
  y = random([2, *event_shape], dtype, seed=4)
  expected = slogdet(dense_jacobian(bijector.inverse, y))
  ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3)
  assert_close(
    ildj.numpy(), expected, "ildj(y) against slogdet(J_f^-1(y))", rtol
  )


def check_modes_agree(bijector, event_shape, dtype):
  """Eager, `tf.function` and `tf.function(jit_compile=True)` agree."""
  rtol = MODES_RTOL[dtype]
  x = random([2, *event_shape], dtype, seed=5)
  y = tf.identity(bijector.forward(x))

  def run(x, y):
    return (
      bijector.forward(tf.identity(x)),
      bijector.inverse(tf.identity(y)),
      bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=3),
      bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3),
    )

  eager = run(x, y)
  for mode, compiled in (
    ("tf.function", tf.function(run)),
    ("jit_compile=True", tf.function(run, jit_compile=True)),
  ):
    for method, want, got in zip(METHODS, eager, compiled(x, y)):
      assert_close(got.numpy(), want.numpy(), f"{mode}: {method}", rtol)


def _base(event_shape, dtype):
  return tfd.Sample(tfd.Normal(tf.constant(0.0, dtype), 1.0), event_shape)


def _assert_useful_gradients(variables, gradients, what):
  """Each of `variables` has a gradient, finite and nonzero somewhere; a
  failure names the variable after the label `what`."""
  for v, g in zip(variables, gradients, strict=True):
    assert g is not None, f"{what}: no gradient reaches {v.name}"
    g = tf.convert_to_tensor(g).numpy()
    assert np.all(np.isfinite(g)), f"{what}: non-finite gradient for {v.name}"
    assert np.any(g != 0), f"{what}: zero gradient for {v.name}"


def check_gradients(bijector, event_shape, dtype):
  """Gradients of `log_prob` reach every trainable variable, finite.

  Through the inverse (`log_prob` of the bijector's own flow) and through the
  forward (`log_prob` of its `tfb.Invert`).
  """
  variables = bijector.trainable_variables
  assert variables, "the bijector has no trainable variables"
  x = random([3, *event_shape], dtype, seed=6)
  for direction, flow in (
    ("through the inverse", bijector),
    ("through the forward", tfb.Invert(bijector)),
  ):
    dist = tfd.TransformedDistribution(_base(event_shape, dtype), flow)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(dist.log_prob(tf.identity(x)))
    _assert_useful_gradients(
      variables, tape.gradient(loss, variables), direction
    )


def check_gradients_compile(bijector, event_shape, dtype):
  """Gradients through both directions compile with XLA and equal eager.

  `log_prob` of `TransformedDistribution(base, b)` differentiates `b`'s
  inverse and its log-det, that of `TransformedDistribution(base, Invert(b))`
  its forward (the sampling direction of `b`'s inverse). Both lists of
  gradients come from one `tf.function(jit_compile=True)`, which must compile
  (an op without an XLA kernel raises there, no fallback) and match eager.
  """
  base = _base(event_shape, dtype)
  dists = [
    tfd.TransformedDistribution(base, flow)
    for flow in (bijector, tfb.Invert(bijector))
  ]
  variables = bijector.trainable_variables
  x = random([2, *event_shape], dtype, seed=10)

  def gradients(x):
    result = []
    for dist in dists:
      with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(dist.log_prob(tf.identity(x)))
      result.append(tape.gradient(loss, variables))
    return result

  try:
    compiled = tf.function(gradients, jit_compile=True)(x)
  except tf.errors.InvalidArgumentError as e:
    raise AssertionError(
      f"the gradients do not compile with XLA: {e.message[:500]}"
    ) from e
  for direction, want, got in zip(
    ("bijector", "Invert(bijector)"), gradients(x), compiled
  ):
    for v, w, g in zip(variables, want, got):
      assert_close(
        tf.convert_to_tensor(g).numpy(),
        tf.convert_to_tensor(w).numpy(),
        f"{direction}: {v.name}",
        1e-4,
      )


def check_batch_shapes(bijector, event_shape, dtype):
  for batch in ([], [2], [2, 3]):
    x = random(batch + list(event_shape), dtype, seed=8)
    y = bijector.forward(x)
    assert y.shape == x.shape, f"forward: shape {y.shape} for {x.shape}"
    x_again = bijector.inverse(tf.identity(y))
    assert x_again.shape == x.shape, (
      f"inverse: shape {x_again.shape} for {x.shape}"
    )
    fldj = bijector.forward_log_det_jacobian(x, event_ndims=3)
    assert fldj.shape == batch, f"fldj: shape {fldj.shape} for batch {batch}"
    ildj = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=3)
    assert ildj.shape == batch, f"ildj: shape {ildj.shape} for batch {batch}"


def check_transformed_distribution(bijector, event_shape, dtype):
  """In a `tfb.Chain` inside a `TransformedDistribution`: change of variables.

  log p(x) must equal log N(z) - log|det J_f(z)| with z = f^-1(x) and the
  log-determinant from the dense Jacobian of the whole chain.
  """
  rtol = LOG_DET_RTOL[dtype]
  chain = tfb.Chain(
    [
      tfb.Shift(tf.constant(0.25, dtype)),
      bijector,
      tfb.Scale(tf.constant(1.5, dtype)),
    ]
  )
  base = _base(event_shape, dtype)
  dist = tfd.TransformedDistribution(base, chain)
  x = dist.sample(2, seed=(1, 2))
  assert x.shape == [2, *event_shape], f"sample: shape {x.shape}"
  log_prob = dist.log_prob(tf.identity(x)).numpy()
  z = chain.inverse(tf.identity(x))
  expected = base.log_prob(z).numpy() - slogdet(
    dense_jacobian(chain.forward, z)
  )
  assert_close(
    log_prob, expected, "log_prob against the change of variables", rtol
  )


def _assert_rejected(call, message, what):
  """`call()` must raise a `ValueError` (or TFP's `TypeError` for a dtype)
  whose message contains `message`."""
  try:
    call()
  except ValueError as e:
    assert message in str(e), f"{what}: the error does not say {message!r}: {e}"
  except TypeError as e:  # TFP's own dtype check may come first.
    assert message == "dtype", f"{what}: {e}"
  else:
    raise AssertionError(f"{what} accepted bad {message}")


def _check_bad_event(bijector, event, message):
  for method in (bijector.forward, bijector.inverse):
    _assert_rejected(lambda m=method: m(event), message, method.__name__)


def check_bad_rank(case, bijector, dtype):
  """An event of rank 2 raises a `ValueError` that says "rank"."""
  _, w, c = case.event_shape
  _check_bad_event(bijector, tf.zeros([w, c], dtype), "rank")


def check_bad_channels(case, bijector, dtype):
  """An event with one channel too many raises a `ValueError` naming them."""
  h, w, c = case.event_shape
  _check_bad_event(bijector, tf.zeros([h, w, c + 1], dtype), "channels")


def check_bad_dtype(case, bijector, dtype):
  """An event of another floating dtype raises (no silent cast)."""
  other = tf.float16 if dtype != tf.float16 else tf.float32
  _check_bad_event(bijector, tf.zeros(case.event_shape, other), "dtype")


def check_bad_arguments(case, bijector, dtype):
  """Each of `case.bad_arguments` raises a `ValueError` naming the argument."""
  del bijector  # Each bad argument makes its own.
  for overrides, argument in case.bad_arguments:
    _assert_rejected(
      lambda overrides=overrides: case.make(**{"dtype": dtype, **overrides}),
      argument,
      f"the constructor with {overrides}",
    )


def _call(bijector, method, z):
  if method.endswith("log_det_jacobian"):
    return getattr(bijector, method)(z, event_ndims=3)
  return getattr(bijector, method)(z)


def check_non_finite(case, bijector, dtype):
  """With `validate_args=True`, a NaN or an inf fails every direction."""
  del bijector  # Needs validate_args=True.
  strict = case.make(dtype, validate_args=True)
  for value in (np.nan, np.inf):
    bad = np.zeros([1, *case.event_shape], dtype.as_numpy_dtype)
    bad[0, 0, 0, 0] = value
    for method in METHODS:
      try:
        _call(strict, method, tf.constant(bad))
      except (tf.errors.InvalidArgumentError, ValueError) as e:
        assert "finite" in str(e), (
          f"{method}: the error does not say 'finite': {e}"
        )
      else:
        raise AssertionError(
          f"{method} with validate_args=True accepted a {value}"
        )


def _traced_call(bijector, method, spec):
  """`bijector.method` as a `tf.function` of one tensor of `spec`.

  A closure, not default arguments: `tf.function` would take a bijector
  passed as a default argument for an input to trace.
  """
  return tf.function(
    lambda z: _call(bijector, method, z), input_signature=[spec]
  )


def check_unknown_channels(case, bijector, dtype):
  """Traced with every axis unknown, a wrong channel count fails at run time.

  In every direction with `validate_args=False`, and in the log-dets (which
  add the finiteness assertion to the same checks) with `validate_args=True`:
  one channel, which per-channel parameters would otherwise silently
  broadcast. The same traced functions give the eager results on events of
  the right shape. Slower than the other input checks (it traces up to six
  functions), so `tests/unit/bijectors/test_contract.py` runs it in one dtype.
  """
  del bijector  # Made for each validate_args.
  h, w, c = case.event_shape
  right = random([1, h, w, c], dtype, seed=11)
  wrong = tf.zeros([1, h, w, 1 if c > 1 else 2], dtype)
  spec = tf.TensorSpec([None] * 4, dtype)
  for validate_args, methods in ((False, METHODS), (True, METHODS[2:])):
    layer = case.make(dtype, validate_args=validate_args)
    for method in methods:
      traced = _traced_call(layer, method, spec)
      what = f"{method} with validate_args={validate_args}"
      assert_close(
        traced(right).numpy(),
        _call(layer, method, right).numpy(),
        f"{what}, traced with unknown shape",
        MODES_RTOL[dtype],
      )
      try:
        traced(wrong)
      except tf.errors.InvalidArgumentError as e:
        assert "channels" in e.message, (
          f"{what}: the error does not say 'channels': {e.message}"
        )
      else:
        raise AssertionError(
          f"{what} accepted {wrong.shape[-1]} channels for {c}"
        )


# Checks of what a bijector does with bad input: each `(case, bijector,
# dtype)`; the bijector is `case.make(dtype)`. `check_unknown_channels`, with
# the same arguments, is apart: it is slower.
INPUT_CHECKS = {
  "bad_rank": check_bad_rank,
  "bad_channels": check_bad_channels,
  "bad_dtype": check_bad_dtype,
  "bad_arguments": check_bad_arguments,
  "non_finite": check_non_finite,
}


def check_bad_input(case, bijector, dtype):
  """Every check of `INPUT_CHECKS`, in turn."""
  for check in INPUT_CHECKS.values():
    check(case, bijector, dtype)


def check_jacobian_structure(case, bijector, dtype):
  if case.check_jacobian is None:
    return
  x = random([1, *case.event_shape], dtype, seed=9)
  case.check_jacobian(bijector, dense_jacobian(bijector.forward, x)[0])


def _outputs(bijector, x, y):
  """The four methods at `x` (forward) and `y` (inverse), past the cache."""
  return tuple(
    _call(bijector, method, tf.identity(z))
    for method, z in zip(METHODS, (x, y, x, y))
  )


def _assert_same_outputs(got, want, dtype, what, methods=METHODS):
  for method, g, w in zip(methods, got, want, strict=True):
    assert_close(
      tf.convert_to_tensor(g).numpy(),
      tf.convert_to_tensor(w).numpy(),
      f"{what}: {method}",
      MODES_RTOL[dtype],
    )


def _attempt(what, call):
  """`call()`, any exception raised as an `AssertionError` naming `what`."""
  try:
    return call()
  except Exception as e:  # Whatever it is, the check fails.
    raise AssertionError(f"{what} raised {type(e).__name__}: {e}") from e


def check_constant_jacobian(bijector, event_shape, dtype):
  """`is_constant_jacobian` is `True` exactly when the log-dets' gradients
  with respect to their input are zero (or `None`: no path at all).

  TFP relies on the declaration (`TransformedDistribution.mean` and `mode`
  apply the bijector to the base distribution's), and its own gradient
  check expects no gradient of a constant log-det. A log-det that depends on
  its input must have a nonzero gradient at one of 8 events at least: the
  registered cases' weights are trained-looking, so a nonlinear layer's
  log-det varies (the property test's couplings have positive biases: a
  dead ReLU network's log-det is constant).
  """
  for method, seed in (
    ("forward_log_det_jacobian", 15),
    ("inverse_log_det_jacobian", 16),
  ):
    z = random([8, *event_shape], dtype, seed=seed)
    with tf.GradientTape() as tape:
      tape.watch(z)
      log_det = _call(bijector, method, tf.identity(z))
    gradient = tape.gradient(log_det, z)
    zero = gradient is None or not np.any(gradient.numpy() != 0)
    assert zero == bijector.is_constant_jacobian, (
      f"is_constant_jacobian is {bijector.is_constant_jacobian} but the "
      f"gradient of {method} with respect to its input is "
      f"{'zero' if zero else 'nonzero'}"
    )


MEAN_SAMPLES = 1000


def check_mean_and_mode(bijector, event_shape, dtype):
  """`TransformedDistribution(base, flow)`'s `mean()` and `mode()`, for the
  bijector and its `tfb.Invert`, on a Gaussian base with a batch of two
  means `m` and per-element scales.

  TFP computes both as `flow.forward(m)`, right for an affine flow, which a
  constant Jacobian declares: `flow` must be affine along `m`
  (`f(m) - f(0) = (f(2 m) - f(0)) / 2`); `mode()` must maximise the
  density, a zero gradient of `log_prob` there (the density is then a
  Gaussian's); `mean()` must match the mean of `MEAN_SAMPLES` samples to 5
  standard errors of each element. For affine bijectors only: TFP refuses
  both for any other (`NotImplementedError`, failing this check).
  """
  loc = random([2, *event_shape], dtype, seed=17)
  scale = 0.5 + tf.abs(random(event_shape, dtype, seed=18))
  base = tfd.Independent(tfd.Normal(loc, scale), len(event_shape))
  for direction, flow in (
    ("bijector", bijector),
    ("Invert(bijector)", tfb.Invert(bijector)),
  ):
    dist = tfd.TransformedDistribution(base, flow)
    f_0, f_m, f_2m = (
      flow.forward(tf.identity(z)).numpy()
      for z in (tf.zeros_like(loc), loc, 2.0 * loc)
    )
    assert_close(
      f_m - f_0,
      (f_2m - f_0) / 2.0,
      f"{direction}: not affine along the base's mean",
      LOG_DET_RTOL[dtype],
    )
    mode = tf.identity(_attempt(f"{direction}: mode()", dist.mode))
    with tf.GradientTape() as tape:
      tape.watch(mode)
      log_prob = dist.log_prob(mode)
    slope = tape.gradient(log_prob, mode).numpy()
    assert_close(
      slope,
      np.zeros_like(slope),
      f"{direction}: the gradient of log_prob at mode()",
      100 * LOG_DET_RTOL[dtype],
    )
    mean = _attempt(f"{direction}: mean()", dist.mean).numpy()
    samples = dist.sample(MEAN_SAMPLES, seed=(3, 4)).numpy()
    error = np.abs(mean - samples.mean(0))
    standard_error = samples.std(0) / np.sqrt(MEAN_SAMPLES)
    worst = np.max(error / standard_error)
    assert worst < 5.0, (
      f"{direction}: mean() against a Monte Carlo estimate: "
      f"{worst:.1f} standard errors off"
    )


def _variables_held(value):
  """The `tf.Variable`s in `value`, a bijector's parameters: parameters that
  are bijectors (an `EmergingConv2D`'s parts) are searched in turn."""
  found = []
  for leaf in tf.nest.flatten(value):
    if isinstance(leaf, tf.Variable):
      found.append(leaf)
    elif isinstance(leaf, tfb.Bijector):
      found.extend(_variables_held(dict(leaf.parameters)))
  return found


def _refs(variables):
  return {v.ref() for v in variables}


def check_variables(bijector, event_shape, dtype):
  """The variables a bijector lists are those its parameters hold, once
  each; a copy shares them; each trainable one gets a gradient.

  `variables` (what `tf.Module` finds, once each: what `fit` trains and
  checkpoints save) are the variables of `parameters`, no more, no fewer; a
  copy's are the same variables, not new ones. `forward` and `inverse` each
  give every trainable variable a gradient (TFP's `assert_no_none_grad`:
  `None` means the variable is not used, or not reached).
  """
  variables = bijector.variables
  held = _variables_held(dict(bijector.parameters))
  assert _refs(variables) == _refs(held), (
    f"variables: {sorted(v.name for v in variables)} are not the "
    f"{sorted(v.name for v in held)} its parameters hold"
  )
  trainable = bijector.trainable_variables
  for what, copy in (
    ("copy()", lambda: bijector.copy()),
    ("type(b)(**b.parameters)", lambda: type(bijector)(**bijector.parameters)),
  ):
    copied = _attempt(what, copy).variables
    assert len(copied) == len(variables) and _refs(copied) == _refs(
      variables
    ), f"{what}: its variables are not the bijector's own"
  for method, seed in (("forward", 19), ("inverse", 20)):
    z = random([2, *event_shape], dtype, seed=seed)
    with tf.GradientTape() as tape:
      out = _call(bijector, method, tf.identity(z))
    for v, g in zip(trainable, tape.gradient(out, trainable)):
      assert g is not None, f"{method}: no gradient reaches {v.name}"


def check_reconstruction(bijector, event_shape, dtype):
  """`copy()` and `type(b)(**b.parameters)` give the same bijector: the same
  outputs in every direction (TFP's rule for `parameters`)."""
  x = random([2, *event_shape], dtype, seed=21)
  y = random([2, *event_shape], dtype, seed=22)
  want = _outputs(bijector, x, y)
  for what, rebuild in (
    ("type(b)(**b.parameters)", lambda: type(bijector)(**bijector.parameters)),
    ("copy()", lambda: bijector.copy()),
  ):
    rebuilt = _attempt(what, rebuild)
    assert type(rebuilt) is type(bijector), f"{what}: a {type(rebuilt)}"
    _assert_same_outputs(
      _attempt(what, lambda r=rebuilt: _outputs(r, x, y)), want, dtype, what
    )


def check_composite_tensor(bijector, event_shape, dtype, xla=True):
  """A composite tensor, as TFP's bijectors are: it round-trips through
  `tf.nest.flatten(..., expand_composites=True)` and
  `tf.nest.pack_sequence_as` (every direction), and passes to a
  `tf.function` as an argument (`forward` and its log-det, alone, in a
  `tfb.Chain`, and `log_prob` of a `TransformedDistribution` through its
  `tfb.Invert`, which runs the same), with the eager results; with `xla`,
  also under `jit_compile=True`, except for a bijector holding a callable
  (a Keras network: it reads its own variables, which XLA would get a
  second time from the argument).
  """
  x = random([2, *event_shape], dtype, seed=23)
  y = random([2, *event_shape], dtype, seed=24)
  want = _outputs(bijector, x, y)
  assert isinstance(bijector, tf.__internal__.CompositeTensor), (
    "not a composite tensor"
  )
  packed = _attempt(
    "flatten/pack",
    lambda: tf.nest.pack_sequence_as(
      bijector,
      tf.nest.flatten(bijector, expand_composites=True),
      expand_composites=True,
    ),
  )
  _assert_same_outputs(
    _attempt("flatten/pack", lambda: _outputs(packed, x, y)),
    want,
    dtype,
    "flatten/pack",
  )

  def forward(flow, x):
    return flow.forward(x), flow.forward_log_det_jacobian(x, event_ndims=3)

  chain = tfb.Chain([bijector])
  dist = tfd.TransformedDistribution(
    _base(event_shape, dtype), tfb.Invert(bijector)
  )
  what = "tf.function arguments"
  got = _attempt(
    what,
    lambda: tf.function(
      lambda b, chain, dist, x: (
        forward(b, x),
        forward(chain, x),
        dist.log_prob(x),
      )
    )(bijector, chain, dist, tf.identity(x)),
  )
  for flow, outputs in (("bijector", got[0]), ("tfb.Chain", got[1])):
    _assert_same_outputs(
      outputs, want[::2], dtype, f"{what}: {flow}", METHODS[::2]
    )
  assert_close(
    got[2].numpy(),
    dist.log_prob(tf.identity(x)).numpy(),
    f"{what}: TransformedDistribution: log_prob",
    MODES_RTOL[dtype],
  )
  if not xla or bijector._type_spec._callable_params:
    return
  what = "a tf.function argument, jit_compile=True"
  got = _attempt(
    what,
    lambda: tf.function(forward, jit_compile=True)(bijector, tf.identity(x)),
  )
  _assert_same_outputs(got, want[::2], dtype, what, METHODS[::2])


def check_vectorized_map(bijector, event_shape, dtype):
  """`tf.vectorized_map` of the four methods over a batch of events (each
  call then sees one unbatched event; one map, one vectorisation) equals
  the batched calls."""
  x = random([3, *event_shape], dtype, seed=25)
  y = random([3, *event_shape], dtype, seed=26)
  got = _attempt(
    "tf.vectorized_map",
    lambda: tf.vectorized_map(lambda xy: _outputs(bijector, *xy), (x, y)),
  )
  _assert_same_outputs(
    got, _outputs(bijector, x, y), dtype, "tf.vectorized_map"
  )


CHECKS = {
  "round_trip": check_round_trip,
  "log_det": check_log_det,
  "modes_agree": check_modes_agree,
  "gradients": check_gradients,
  "batch_shapes": check_batch_shapes,
  "transformed_distribution": check_transformed_distribution,
}
# TFP's bijector contract beyond the maps: what TFP's own code and habits
# rely on (`tests/unit/bijectors/test_contract.py` runs them in one dtype,
# which changes none of it; `check_mean_and_mode` and `check_vectorized_map`
# are apart: the first is for affine layers only, the second costs most).
TFP_CHECKS = {
  "constant_jacobian": check_constant_jacobian,
  "variables": check_variables,
  "reconstruction": check_reconstruction,
  "composite_tensor": check_composite_tensor,
}


def check_conditional(bijector, event_shape, dtype, conditional_inputs):
  """A conditional bijector (TFP's `conditional_input` kwarg), per condition.

  `conditional_inputs`: at least two conditions for events of batch shape
  `[2]`. For each: the round trip both ways; `log_prob` of a
  `TransformedDistribution` given `bijector_kwargs={"conditional_input": c}`
  against `log N(z) + slogdet` of the dense Jacobian of `inverse(., c)`;
  fldj = -ildj(f(x)). Across them: `log_prob` changes with the condition,
  and TFP's cache never hands one condition's result or log-det to another.
  Gradients of the loss over all conditions reach every trainable variable.
  """
  assert len(conditional_inputs) >= 2, "give two conditions at least"
  atol = ROUND_TRIP_ATOL[dtype]
  rtol = LOG_DET_RTOL[dtype]
  base = _base(event_shape, dtype)
  dist = tfd.TransformedDistribution(base, bijector)
  x = random([2, *event_shape], dtype, seed=11)
  log_probs = []
  for c in conditional_inputs:
    kwargs = {"conditional_input": c}
    y = bijector.forward(x, **kwargs)
    assert_close(
      bijector.inverse(tf.identity(y), **kwargs).numpy(),
      x.numpy(),
      "conditional round trip x -> f -> f^-1",
      atol,
      rtol=0,
    )
    z = bijector.inverse(x, **kwargs)
    assert_close(
      bijector.forward(tf.identity(z), **kwargs).numpy(),
      x.numpy(),
      "conditional round trip x -> f^-1 -> f",
      atol,
      rtol=0,
    )
    log_prob = dist.log_prob(tf.identity(x), bijector_kwargs=kwargs).numpy()
    expected = base.log_prob(z).numpy() + slogdet(
      dense_jacobian(lambda v, kwargs=kwargs: bijector.inverse(v, **kwargs), x)
    )
    assert_close(
      log_prob,
      expected,
      "conditional log_prob against the change of variables",
      rtol,
    )
    fldj = bijector.forward_log_det_jacobian(
      tf.identity(x), event_ndims=3, **kwargs
    )
    ildj = bijector.inverse_log_det_jacobian(
      tf.identity(y), event_ndims=3, **kwargs
    )
    assert_close(
      fldj.numpy(),
      -ildj.numpy(),
      "conditional fldj(x) against -ildj(f(x))",
      rtol,
    )
    log_probs.append(log_prob)
  for i in range(len(log_probs)):
    for j in range(i):
      assert np.max(np.abs(log_probs[i] - log_probs[j])) > 1e-3, (
        "log_prob does not depend on the condition",
        i,
        j,
      )
  # The cache: results of one condition are not reused for another.
  first = {"conditional_input": conditional_inputs[0]}
  second = {"conditional_input": conditional_inputs[1]}
  y = bijector.forward(x, **first)
  fresh = bijector.forward_log_det_jacobian(
    tf.identity(x), event_ndims=3, **second
  )
  assert_close(
    bijector.forward_log_det_jacobian(x, event_ndims=3, **second).numpy(),
    fresh.numpy(),
    "the cache gave another condition's fldj",
    rtol,
  )
  assert_close(
    bijector.inverse(y, **second).numpy(),
    bijector.inverse(tf.identity(y), **second).numpy(),
    "the cache gave another condition's inverse",
    rtol,
  )
  assert np.max(np.abs(bijector.inverse(y, **second) - x)) > 1e-3, (
    "the inverse under another condition gave back x"
  )
  # Gradients.
  variables = bijector.trainable_variables
  with tf.GradientTape() as tape:
    loss = -tf.add_n(
      [
        tf.reduce_mean(
          dist.log_prob(x, bijector_kwargs={"conditional_input": c})
        )
        for c in conditional_inputs
      ]
    )
  _assert_useful_gradients(
    variables, tape.gradient(loss, variables), "conditional"
  )


def check_conditional_modes(bijector, event_shape, dtype, conditional_inputs):
  """Eager = `tf.function` = `jit_compile=True`, for `log_prob` (through
  `bijector_kwargs`) and `forward`, per condition. Give conditions of one
  shape and dtype: one trace serves them all."""
  dist = tfd.TransformedDistribution(_base(event_shape, dtype), bijector)
  x = random([2, *event_shape], dtype, seed=11)
  z = random([2, *event_shape], dtype, seed=12)

  def run(x, z, c):
    kwargs = {"conditional_input": c}
    return (
      dist.log_prob(x, bijector_kwargs=kwargs),
      bijector.forward(z, **kwargs),
    )

  compiled_runs = (tf.function(run), tf.function(run, jit_compile=True))
  for c in conditional_inputs:
    c = tf.convert_to_tensor(c)
    eager = run(x, z, c)
    for mode, compiled in zip(
      ("tf.function", "jit_compile=True"), compiled_runs
    ):
      for what, want, got in zip(
        ("log_prob", "forward"), eager, compiled(x, z, c)
      ):
        assert_close(
          got.numpy(),
          want.numpy(),
          f"conditional, {mode}: {what}",
          MODES_RTOL[dtype],
        )
