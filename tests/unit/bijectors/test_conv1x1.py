"""Conv1x1 beyond the shared contract: equivalence, factors, compiled graphs."""

import numpy as np
import pytest
import tensorflow as tf

from tests.testlib import contract
from tests.testlib import parameter_checks
from tests.testlib import registry
from tfp_emerging import bijectors
from tfp_emerging.bijectors import conv1x1

PARAMETERIZATIONS = ["qr", "lu", "plain"]


def test_all_parameterisations_represent_a_given_w():
  """QR and LU built from a plain `W` reproduce it, and all agree."""
  rng = np.random.default_rng(0)
  matrix = rng.normal(size=[5, 5])
  assert np.linalg.det(matrix) < 0  # exercises the signs of s
  x = contract.random([2, 3, 4, 5], tf.float64)
  y = contract.random([2, 3, 4, 5], tf.float64, seed=1)
  expected_log_det = 12 * np.linalg.slogdet(matrix)[1]
  for p in PARAMETERIZATIONS:
    layer = bijectors.Conv1x1(5, p, matrix=matrix, dtype=tf.float64)
    np.testing.assert_allclose(layer.weight().numpy(), matrix, atol=1e-13)
    np.testing.assert_allclose(
      layer.forward(x).numpy(), x.numpy() @ matrix, atol=1e-13
    )
    np.testing.assert_allclose(
      layer.inverse(y).numpy(), y.numpy() @ np.linalg.inv(matrix), atol=1e-12
    )
    np.testing.assert_allclose(
      layer.forward_log_det_jacobian(x, event_ndims=3).numpy(),
      [expected_log_det] * 2,
      rtol=1e-12,
    )
    np.testing.assert_allclose(
      layer.inverse_log_det_jacobian(y, event_ndims=3).numpy(),
      [-expected_log_det] * 2,
      rtol=1e-12,
    )


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64], ids=str)
def test_parameterisations_agree_from_the_registry_w(dtype):
  layers = [registry.conv1x1(dtype, p) for p in PARAMETERIZATIONS]
  x = contract.random([2, 4, 5, 3], dtype)
  tol = 1e-5 if dtype == tf.float32 else 1e-12
  for method in ("forward", "inverse"):
    want = getattr(layers[2], method)(tf.identity(x)).numpy()
    for layer in layers[:2]:
      np.testing.assert_allclose(
        getattr(layer, method)(tf.identity(x)).numpy(), want, atol=tol
      )
  want = layers[2].forward_log_det_jacobian(x, event_ndims=3).numpy()
  for layer in layers[:2]:
    np.testing.assert_allclose(
      layer.forward_log_det_jacobian(x, event_ndims=3).numpy(),
      want,
      rtol=tol,
      atol=tol,
    )


def test_householder_qr_and_product():
  matrix = np.random.default_rng(1).normal(size=[6, 6])
  vectors, r = conv1x1.householder_qr(tf.constant(matrix))
  q = conv1x1.householder_product(vectors).numpy()
  np.testing.assert_allclose(q @ q.T, np.eye(6), atol=1e-14)
  np.testing.assert_array_equal(np.tril(r.numpy(), -1), 0)
  np.testing.assert_allclose(q @ r.numpy(), matrix, atol=1e-13)
  free = np.random.default_rng(2).normal(size=[4, 4])
  q = conv1x1.householder_product(tf.constant(free)).numpy()
  np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-14)
  reflections = [np.eye(4) - 2 * np.outer(v, v) / v.dot(v) for v in free]
  np.testing.assert_allclose(q, np.linalg.multi_dot(reflections), atol=1e-14)


def sequential_householder_product(vectors):
  """The reference: `C` rank-one updates `Q <- Q - 2 (Q v) v^T / (v^T v)`."""
  q = tf.eye(vectors.shape[1], dtype=vectors.dtype)
  for i in range(vectors.shape[0]):
    v = vectors[i][:, None]
    q -= (
      2.0
      * tf.matmul(tf.matmul(q, v), v, transpose_b=True)
      / tf.reduce_sum(v * v)
    )
  return q


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-13), (tf.float32, 2e-5)])
@pytest.mark.parametrize("rows,channels", [(1, 1), (3, 3), (2, 5), (48, 48)])
def test_compact_householder_product_equals_the_sequential_one(
  rows, channels, dtype, tol
):
  """Values and gradients; rows of very different norms."""
  rng = np.random.default_rng(rows)
  vectors = tf.constant(
    rng.normal(size=[rows, channels]) * np.exp(rng.normal(size=[rows, 1])),
    dtype,
  )
  cotangent = tf.constant(rng.normal(size=[channels, channels]), dtype)
  results = []
  for product in (conv1x1.householder_product, sequential_householder_product):
    with tf.GradientTape() as tape:
      tape.watch(vectors)
      q = product(vectors)
      loss = tf.reduce_sum(q * cotangent)
    results.append((q, tape.gradient(loss, vectors)))
  (q, grad), (q_ref, grad_ref) = results
  np.testing.assert_allclose(q.numpy(), q_ref.numpy(), atol=tol)
  np.testing.assert_allclose(
    grad.numpy(), grad_ref.numpy(), rtol=tol * 10, atol=tol * 10
  )


def test_qr_and_lu_graphs_have_no_inverse_nor_determinant():
  banned = {
    "MatrixInverse",
    "LogMatrixDeterminant",
    "MatrixDeterminant",
    "Lu",
    "MatrixSolve",
  }
  x = contract.random([2, 4, 5, 3], tf.float32)
  for p in ("qr", "lu"):
    layer = registry.conv1x1(tf.float32, p)

    def run(x, layer=layer):
      return (
        layer.forward(x),
        layer.inverse(tf.identity(x)),
        layer.forward_log_det_jacobian(x, event_ndims=3),
      )

    graph = tf.function(run).get_concrete_function(x).graph
    ops = {op.type for op in graph.get_operations()}
    assert "MatrixTriangularSolve" in ops
    assert not ops & banned, (p, ops & banned)


@pytest.mark.parametrize("p", PARAMETERIZATIONS)
def test_starts_from_a_random_rotation(p):
  a = bijectors.Conv1x1(4, p, seed=7, dtype=tf.float64)
  b = bijectors.Conv1x1(4, p, seed=7, dtype=tf.float64)
  w = a.weight().numpy()
  np.testing.assert_allclose(w @ w.T, np.eye(4), atol=1e-12)
  np.testing.assert_allclose(np.linalg.det(w), 1.0, atol=1e-12)
  np.testing.assert_array_equal(w, b.weight().numpy())
  assert not np.allclose(
    w, bijectors.Conv1x1(4, p, seed=8).weight().numpy(), atol=1e-3
  )
  x = contract.random([3, 3, 4], tf.float64)
  np.testing.assert_allclose(
    a.forward_log_det_jacobian(x, 3).numpy(), 0.0, atol=1e-12
  )
  expected = {
    "qr": ["householder", "log_abs_s", "upper"],
    "lu": ["log_abs_s", "lower", "upper"],
    "plain": ["matrix"],
  }[p]
  assert (
    sorted(v.name.split("/")[-1][:-2] for v in a.trainable_variables)
    == expected
  )


def test_lu_permutation_and_signs_are_fixed_but_saved():
  layer = registry.conv1x1(tf.float64, "lu")
  permutation = layer.factor("permutation")
  assert not permutation.trainable and not layer.factor("sign").trainable
  assert sorted(permutation.numpy()) == [0, 1, 2]
  assert set(layer.factor("sign").numpy()) <= {-1.0, 1.0}
  with pytest.raises(ValueError, match="householder"):
    layer.factor("householder")


def test_s_never_vanishes():
  layer = bijectors.Conv1x1(
    2,
    "qr",
    householder=np.eye(2),
    upper=np.zeros([2, 2]),
    log_abs_s=[-300.0, 300.0],
    sign=[1.0, -1.0],
    dtype=tf.float64,
  )
  assert not layer.trainable_variables  # every factor given as a constant
  w = layer.weight().numpy()
  assert np.all(np.isfinite(w)) and np.all(np.diag(w) != 0)
  x = contract.random([2, 2, 2], tf.float64)
  np.testing.assert_allclose(
    layer.forward_log_det_jacobian(x, 3).numpy(), 0.0, atol=1e-9
  )


def test_matrix_and_every_factor_is_ambiguous():
  with pytest.raises(ValueError, match="matrix"):
    bijectors.Conv1x1(
      2,
      "qr",
      matrix=np.eye(2),
      householder=np.eye(2),
      upper=np.zeros([2, 2]),
      log_abs_s=[0.0, 0.0],
      sign=[1.0, 1.0],
    )


def test_given_factors_are_used_as_is_and_the_rest_decomposed():
  sign = tf.constant([1.0, 1.0, -1.0], tf.float64)
  layer = bijectors.Conv1x1(
    3, "qr", matrix=np.diag([1.0, 2.0, 3.0]), sign=sign, dtype=tf.float64
  )
  assert layer.factor("sign") is sign
  assert isinstance(layer.factor("householder"), tf.Variable)
  # Householder QR of a diagonal matrix reflects every column: Q = -I.
  np.testing.assert_allclose(
    layer.weight().numpy(), -np.diag([1.0, 2.0, -3.0]), atol=1e-14
  )


@pytest.mark.parametrize("parameterization", ["qr", "lu"])
def test_checkpoint_restores_the_layer_built_from_another_seed(
  parameterization, tmp_path
):
  """Signs and permutation are state: a restored layer is the saved one."""
  saved = bijectors.Conv1x1(5, parameterization, seed=0, dtype=tf.float64)
  other = bijectors.Conv1x1(5, parameterization, seed=5, dtype=tf.float64)
  path = tf.train.Checkpoint(layer=saved).write(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(layer=other).read(path).assert_consumed()
  x = tf.random.stateless_normal([2, 3, 4, 5], [1, 2], dtype=tf.float64)
  np.testing.assert_array_equal(
    other.forward(x).numpy(), saved.forward(x).numpy()
  )


SINGULAR = np.ones([3, 3])
NAN_MATRIX = np.where(np.eye(3) > 0, np.nan, 0.0)
ZERO_ROW = np.diag([1.0, 0.0, 1.0])
# `(parameterization, factor, value)`: values each condition refuses.
BAD_FACTORS = [
  ("qr", "sign", [2.0, 1.0, 1.0]),
  ("lu", "sign", [1.0, 0.0, -1.0]),
  ("qr", "householder", ZERO_ROW),
  ("qr", "householder", NAN_MATRIX),
  ("qr", "log_abs_s", [0.0, -np.inf, 0.0]),
  ("lu", "log_abs_s", [np.nan, 0.0, 0.0]),
  ("qr", "upper", NAN_MATRIX),
  ("lu", "lower", np.full([3, 3], np.inf)),
  ("lu", "permutation", [0, 0, 2]),
  ("lu", "permutation", [0, 1, 3]),
  ("plain", "matrix", SINGULAR),
  ("plain", "matrix", NAN_MATRIX),
  ("qr", "matrix", SINGULAR),
  ("lu", "matrix", SINGULAR),
]


@pytest.mark.parametrize("validate_args", [False, True])
@pytest.mark.parametrize(
  "parameterization,factor,value",
  BAD_FACTORS,
  ids=[f"{p}-{f}-{i}" for i, (p, f, _) in enumerate(BAD_FACTORS)],
)
def test_bad_factor_values_are_refused_at_construction(
  parameterization, factor, value, validate_args
):
  """Whatever `validate_args` is. `sign=[2, 1, 1]` used to give a log-det
  of `H W sum log_abs_s` for a `W` whose true one is `H W log 2` larger."""
  dtype = np.int32 if factor == "permutation" else np.float64
  with pytest.raises(ValueError, match=f"`{factor}` must"):
    bijectors.Conv1x1(
      3,
      parameterization,
      dtype=tf.float64,
      validate_args=validate_args,
      **{factor: np.asarray(value, dtype)},
    )


def test_good_signs_are_kept():
  """The conditions refuse no valid factor: `sign` of -1s, a permutation."""
  layer = bijectors.Conv1x1(
    3,
    "lu",
    matrix=np.random.default_rng(0).normal(size=[3, 3]) + 2 * np.eye(3),
    sign=[-1.0, 1.0, -1.0],
    permutation=[2, 0, 1],
    dtype=tf.float64,
  )
  x = contract.random([2, 4, 5, 3], tf.float64)
  log_abs_det = np.linalg.slogdet(layer.weight().numpy())[1]
  assert abs(log_abs_det) > 0.1
  np.testing.assert_allclose(
    layer.forward_log_det_jacobian(x, event_ndims=3).numpy(),
    [20 * log_abs_det] * 2,
    rtol=1e-12,
  )


# `(parameterization, factor, bad(value))` for variables.
BAD_ASSIGNMENTS = [
  ("qr", "sign", lambda v: [2.0, 1.0, 1.0]),
  ("qr", "householder", lambda v: v * [[1.0], [0.0], [1.0]]),
  ("qr", "log_abs_s", lambda v: [-np.inf, 0.0, 0.0]),
  ("lu", "permutation", lambda v: [0, 0, 2]),
  ("lu", "lower", lambda v: v + np.nan),
  ("plain", "matrix", lambda v: np.zeros_like(v)),
]


@pytest.mark.parametrize(
  "parameterization,factor,bad",
  BAD_ASSIGNMENTS,
  ids=[f"{p}-{f}" for p, f, _ in BAD_ASSIGNMENTS],
)
def test_variable_assigned_a_bad_value_fails_the_next_call(
  parameterization, factor, bad
):
  layer = registry.conv1x1(tf.float64, parameterization, validate_args=True)
  variable = layer.factor(factor)
  parameter_checks.assert_bad_assignment_fails(
    layer, variable, bad(variable.numpy()), factor, [4, 5, 3]
  )
