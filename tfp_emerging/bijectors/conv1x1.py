"""Invertible 1x1 convolutions: QR (Hoogeboom et al. 2019), LU and plain
(Glow)."""

from __future__ import annotations

import typing

import tensorflow as tf
from tensorflow_probability.python.internal import tensor_util

from tfp_emerging.bijectors.freezing import FrozenLayer
from tfp_emerging.bijectors.image_bijector import ImageBijector
from tfp_emerging.bijectors.image_bijector import PixelwiseLogDet
from tfp_emerging.bijectors.image_bijector import parameter_table
from tfp_emerging.bijectors.image_bijector import stored_parameter
from tfp_emerging.ops import checks
from tfp_emerging.ops import factorizations
from tfp_emerging.ops import initializers
from tfp_emerging.ops.factorizations import householder_product
from tfp_emerging.ops.factorizations import householder_qr

__all__ = [
  "PARAMETERIZATIONS",
  "Conv1x1",
  "FrozenConv1x1",
  "householder_product",
  "householder_qr",
]

Parameterization = typing.Literal["qr", "lu", "plain"]
PARAMETERIZATIONS = typing.get_args(Parameterization)
# The constructor's factor arguments each parameterisation uses.
FACTORS = {
  "qr": ("householder", "upper", "log_abs_s", "sign"),
  "lu": ("permutation", "lower", "upper", "log_abs_s", "sign"),
  "plain": ("matrix",),
}
# The constructor's factor arguments but `matrix`, in its order.
_FACTOR_ARGUMENTS = (
  "householder",
  "lower",
  "upper",
  "log_abs_s",
  "sign",
  "permutation",
)
# The factors of shape `[C]`; the others are `[C, C]`.
_VECTORS = ("log_abs_s", "sign", "permutation")
# Fixed at construction, never trained, but part of the model's state:
# non-trainable variables, so that checkpoints and saved weights hold them.
_FIXED = ("sign", "permutation")


class Conv1x1(PixelwiseLogDet, ImageBijector):
  """An invertible 1x1 convolution `y[i, j] = x[i, j] @ W`, `W` `C x C`.

  On events `[H, W, C]` every pixel's channels are multiplied by the same
  invertible `W`; `log|det J| = H W log|det W|`. Three parameterisations:

  * `"qr"` (Hoogeboom et al. 2019, section 3.4): `W = Q (R + diag(s))`,
    `Q = H_1 ... H_C` a product of Householder reflections
    `H_i = I - 2 v_i v_i^T / |v_i|^2`, each from its own free vector `v_i`
    (`householder`, `[C, C]`, row `i` is `v_i`); `R` the strict upper triangle
    of the free `upper`; `s = sign * exp(log_abs_s)` with `sign` fixed (a
    non-trainable variable) and `log_abs_s` free, so `s` is never zero.
    `log|det W| = sum log_abs_s`. The inverse is a `triangular_solve` with
    `R + diag(s)` followed by `Q^T`: no matrix inverse, no `slogdet`.
  * `"lu"` (Glow): `W = P L U` with a fixed permutation `P` (`permutation`,
    `x @ P = gather(x, permutation)`), `L` unit lower triangular (the strict
    lower triangle of the free `lower`), `U` the strict upper triangle of the
    free `upper` plus `diag(s)`, `s` as above. `log|det W| = sum log_abs_s`;
    the inverse is two triangular solves and the inverse permutation.
  * `"plain"` (Glow's baseline): `W` is the free `matrix`. Log-det and inverse
    go through the QR factorisation `W = Q_W R_W` (`tf.linalg.qr`, which XLA
    compiles, unlike `slogdet`): `log|det W| = sum log|diag R_W|`, and
    `x = y R_W^{-1} Q_W^T` by a triangular solve. `W` may become singular in
    training; nothing prevents it.

  All three start from a random rotation (`initializers.random_rotation`),
  like Glow: `W` orthogonal with determinant +1, decomposed into the factors.
  Given `matrix`, `"qr"` and `"lu"` start from its decomposition instead, so
  the three can represent the same `W`.

  Directions and cost (`M = N H W` pixels in the batch):

  * forward: `W` from its factors, `O(C^3)` for `"qr"` (`Q` in compact WY
    form: two matmuls and a triangular solve, `householder_product`) and
    `"lu"`, then one matmul, `O(M C^2)`.
  * inverse: `"qr"` and `"lu"`: triangular solves, `O(M C^2)`, plus `O(C^3)`
    for `Q` (`"qr"`); `"plain"`: QR of `W`, `O(C^3)`, then a triangular solve
    and a matmul, `O(M C^2)`.
  * log-det: `H W sum log_abs_s`, `O(C)` (`"qr"`, `"lu"`); `O(C^3)` for the QR
    of `W` (`"plain"`). Shaped like the batch.

  Linear in `x`: a constant Jacobian (`is_constant_jacobian=True`), so a
  `tfd.TransformedDistribution` through it has a `mean()` and a `mode()`
  (`ImageBijector`).

  Examples:
    >>> import numpy as np
    >>> import tensorflow as tf
    >>> from tfp_emerging.bijectors import Conv1x1
    >>> layer = Conv1x1(channels=3, parameterization="qr", seed=0)
    >>> x = tf.random.stateless_normal([2, 4, 4, 3], seed=[1, 2])
    >>> y = layer.forward(x)
    >>> bool(np.allclose(y, tf.einsum("nhwi,ij->nhwj", x, layer.weight())))
    True
    >>> log_det = layer.forward_log_det_jacobian(x, event_ndims=3)
    >>> h_w_log_det = 4 * 4 * np.log(abs(np.linalg.det(layer.weight())))
    >>> bool(np.allclose(log_det, h_w_log_det, atol=1e-4))
    True
  """

  def __init__(
    self,
    channels: int,
    parameterization: Parameterization = "qr",
    seed: int | None = None,
    dtype: tf.dtypes.DType | str = tf.float32,
    validate_args: bool = False,
    name: str = "conv1x1",
    matrix: checks.ParameterLike | None = None,
    householder: checks.ParameterLike | None = None,
    lower: checks.ParameterLike | None = None,
    upper: checks.ParameterLike | None = None,
    log_abs_s: checks.ParameterLike | None = None,
    sign: checks.ParameterLike | None = None,
    permutation: checks.ParameterLike | None = None,
  ):
    """Creates the layer and, unless given, its variables.

    Args:
      channels: number of channels `C` of the events `[H, W, C]`.
      parameterization: `"qr"` (default), `"lu"` or `"plain"`.
      seed: optional int seed for the default random rotation.
      dtype: `float32` or `float64`.
      validate_args: if `True`, assert at run time that the inputs of every
        direction and log-det are finite (a channel count unknown at trace
        time is asserted whatever it is: `tfp_emerging.ops.checks`), and
        that the factors given as variables meet the conditions below.
      name: name scope of the ops and variables.
      matrix: optional `[C, C]` matrix `W`. For `"plain"`, the weight itself
        (a value or `tf.Variable`, used as given). For `"qr"` and `"lu"`, an
        invertible initial `W` decomposed into new trainable variables
        (`sign` and `permutation` become non-trainable variables, saved with
        the model's weights and checkpoints). Default: a random
        rotation from `seed`.
      householder: `"qr"` only: `[C, C]`, row `i` is the vector of `H_i`;
        every row must stay nonzero (a zero row makes `Q` NaN).
      lower: `"lu"` only: `[C, C]`, its strict lower triangle is `L`'s.
      upper: `"qr"` and `"lu"`: `[C, C]`, its strict upper triangle is used.
      log_abs_s: `"qr"` and `"lu"`: `[C]`, `log|s|`.
      sign: `"qr"` and `"lu"`: `[C]` of +-1, the fixed signs of `s`.
      permutation: `"lu"` only: `[C]` int32, a permutation of `0..C-1`.

    Factor arguments left `None` come from the decomposition of `matrix` (or
    of the random rotation).

    Factors given as values must meet these conditions (finite, `sign` in
    {-1, 1}, ...; a `matrix` invertible) or the constructor raises; factors
    given as variables are asserted at each call with `validate_args`.

    Raises:
      ValueError: a bad `channels`, `parameterization`, `dtype`, a factor of
        the wrong shape (one bijector: no batch of them), one the
        parameterisation does not use, or one given as a value that breaks
        its condition.
    """
    parameters = dict(locals())
    channels = checks.positive_int(channels, "channels")
    dtype = checks.float_dtype(dtype)
    if dtype not in (tf.float32, tf.float64):
      raise ValueError(f"`dtype` must be float32 or float64; got {dtype.name}.")
    if parameterization not in PARAMETERIZATIONS:
      raise ValueError(
        f"`parameterization` must be one of {PARAMETERIZATIONS}"
        f"; got {parameterization!r}."
      )
    given = {f: parameters[f] for f in _FACTOR_ARGUMENTS}
    for argument, value in given.items():
      if value is not None and argument not in FACTORS[parameterization]:
        raise ValueError(
          f"`{argument}` is not a factor of the "
          f"{parameterization!r} parameterization."
        )
    factors = {f: given.get(f, matrix) for f in FACTORS[parameterization]}
    missing = [f for f, value in factors.items() if value is None]
    if matrix is not None:
      checks.matrix_shape(matrix, [channels, channels], "matrix")
      if parameterization != "plain" or not tensor_util.is_ref(matrix):
        # Decomposed now, or the weight itself as a value: a variable
        # `"plain"` weight is checked as TFP checks variables (at each call,
        # with `validate_args`).
        factorizations.check_invertible(matrix, channels)
      if parameterization != "plain" and not missing:
        raise ValueError(
          "`matrix` would be ignored: every factor of the "
          f"{parameterization!r} parameterization is given."
        )
    with tf.name_scope(name) as name:
      if missing:
        if matrix is None:
          matrix = initializers.random_rotation(channels, seed, dtype)
        decompose = dict(
          plain=lambda m: dict(matrix=m),
          qr=factorizations.qr_factors,
          lu=factorizations.lu_factors,
        )[parameterization]
        decomposed = decompose(tf.cast(matrix, dtype))
        for factor in missing:
          factors[factor] = tf.Variable(
            decomposed[factor], name=factor, trainable=factor not in _FIXED
          )
      if parameterization != "plain":
        parameters["matrix"] = None
      for factor, value in factors.items():
        stored = stored_parameter(
          parameters,
          factor,
          value,
          [channels] if factor in _VECTORS else [channels, channels],
          tf.int32 if factor == "permutation" else dtype,
        )
        setattr(self, "_" + factor, stored)
      self._parameterization = parameterization
      super().__init__(parameters, channels, dtype, name)

  @classmethod
  def _parameter_properties(cls, dtype):
    # All free factors are unconstrained reals (TFP's default, the identity).
    # Preferred (TFP's mark for the one of mutually exclusive parameters to
    # create): the free factors of the default "qr" parameterisation, which
    # exclude `matrix` and `lower`. `sign` and `permutation` are fixed
    # discrete values: no bijector maps reals onto them.
    return parameter_table(
      {
        factor: (1, checks.channel_vector_shape)
        if factor in _VECTORS
        else (2, checks.channel_matrix_shape)
        for factor in ("matrix", *_FACTOR_ARGUMENTS)
      },
      not_preferred=["matrix", "lower"],
      fixed=_FIXED,
    )

  def _parameter_control_dependencies(self, is_init):
    """Each factor's conditions (`checks.parameter_assertions`): all finite,
    `sign` in {-1, 1}, `permutation` one, the Householder vectors nonzero, and
    for `"plain"` the pivots of `W`'s QR (`diag R_W`, which the inverse divides
    by) nonzero."""
    return self._parameter_checks(
      is_init,
      FACTORS[self._parameterization],
      dict(
        matrix=[checks.FINITE, factorizations.NONZERO_PIVOTS],
        householder=[checks.FINITE, checks.NONZERO_ROWS],
        sign=[checks.SIGNS],
        permutation=[checks.PERMUTATION],
      ),
    )

  @property
  def parameterization(self) -> Parameterization:
    return self._parameterization

  def factor(self, name: str) -> tf.Variable | tf.Tensor:
    """The given or created factor `name` (e.g. `"householder"`), as stored."""
    if name not in FACTORS[self._parameterization]:
      raise ValueError(
        f"`{name}` is not a factor of the "
        f"{self._parameterization!r} parameterization."
      )
    return getattr(self, "_" + name)

  def _s(self):
    """`s = sign * exp(log_abs_s)`, the diagonal of `R + diag(s)` or `U`."""
    return tf.convert_to_tensor(self._sign) * tf.exp(
      tf.convert_to_tensor(self._log_abs_s)
    )

  def _upper_with_s(self):
    """`U`: the strict upper triangle of `upper` plus `diag(s)`."""
    return factorizations.with_diagonal(
      tf.convert_to_tensor(self._upper), self._s()
    )

  def _unit_lower(self):
    """`L`: the strict lower triangle of `lower` plus the identity."""
    return factorizations.with_diagonal(
      tf.convert_to_tensor(self._lower),
      tf.ones([self._channels], self.dtype),
      lower=True,
    )

  def _inverse_permutation(self):
    """`q` with `P @ M = gather(M, q)` and `M @ P^T = gather(M, q, axis=1)`."""
    return tf.math.invert_permutation(tf.convert_to_tensor(self._permutation))

  def weight(self) -> tf.Tensor:
    """The `[C, C]` matrix `W` of `y = x @ W` (`O(C^3)` for `"qr"`, `"lu"`)."""
    if self._parameterization == "plain":
      return tf.convert_to_tensor(self._matrix)
    if self._parameterization == "qr":
      return tf.matmul(
        householder_product(tf.convert_to_tensor(self._householder)),
        self._upper_with_s(),
      )
    return tf.gather(
      tf.matmul(self._unit_lower(), self._upper_with_s()),
      self._inverse_permutation(),
      axis=0,
    )

  def _pixels_times(self, z, name, matrix_of_rows):
    """`z` `[..., H, W, C]`, once checked, with its pixels' channel rows
    `[M, C]` mapped by `matrix_of_rows`."""
    z = self._checked(z, name)
    rows = matrix_of_rows(tf.reshape(z, [-1, self._channels]))
    return tf.reshape(rows, tf.shape(z))

  def _forward(self, x):
    return self._pixels_times(
      x, "x", lambda rows: tf.matmul(rows, self.weight())
    )

  def _inverse(self, y):
    return self._pixels_times(y, "y", self._inverse_rows)

  def _inverse_rows(self, rows):
    """`rows W^{-1}` by triangular solves, `O(M C^2)` (plus `O(C^3)` for
    `Q`, or the QR of `W` for `"plain"`)."""
    if self._parameterization == "lu":
      # x P L U = y: undo U, then L, then P.
      rows = factorizations.solve_right(rows, self._upper_with_s(), False)
      rows = factorizations.solve_right(rows, self._unit_lower(), True)
      return tf.gather(rows, self._inverse_permutation(), axis=1)
    # x Q U = y: x = (y U^{-1}) Q^T.
    if self._parameterization == "qr":
      q = householder_product(tf.convert_to_tensor(self._householder))
      upper = self._upper_with_s()
    else:
      q, upper = tf.linalg.qr(tf.convert_to_tensor(self._matrix))
    return tf.matmul(
      factorizations.solve_right(rows, upper, False), q, transpose_b=True
    )

  def log_abs_det_weight(self) -> tf.Tensor:
    """`log|det W|`: `sum log_abs_s`, or `sum log|diag R_W|` for `"plain"`."""
    if self._parameterization == "plain":
      _, r = tf.linalg.qr(tf.convert_to_tensor(self._matrix))
      return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))
    return tf.reduce_sum(tf.convert_to_tensor(self._log_abs_s))

  def _per_pixel_log_det(self, x=None):
    del x
    return self.log_abs_det_weight()

  def _frozen(self) -> FrozenConv1x1:
    """This layer with its weights as they are now (`freeze`): `W`, `W^{-1}`
    and `log|det W|` computed once."""
    return FrozenConv1x1(self)


class FrozenConv1x1(FrozenLayer):
  """A `Conv1x1` with frozen weights (`Conv1x1._frozen`).

  Holds, as tensors computed when frozen, `W` (`Conv1x1.weight`), `W^{-1}`
  (the layer's own inverse applied to the rows of the identity: triangular
  solves with its factors, or with the QR of `W` for `"plain"`) and
  `log|det W|`, `O(C^3)` once. Forward `y = x W` and inverse `x = y W^{-1}`
  are one matmul each, `O(M C^2)` for `M` pixels; the log-dets `O(1)`. The
  inverse agrees with the layer's triangular solves to `O(kappa(W) eps)`.
  """

  def __init__(self, layer: Conv1x1):
    self._weight = tf.identity(layer.weight())
    self._inverse_weight = layer._inverse_rows(
      tf.eye(layer.channels, dtype=layer.dtype)
    )
    super().__init__(layer, layer.log_abs_det_weight())

  def _forward(self, x):
    return self._layer._pixels_times(
      x, "x", lambda rows: tf.matmul(rows, self._weight)
    )

  def _inverse(self, y):
    return self._layer._pixels_times(
      y, "y", lambda rows: tf.matmul(rows, self._inverse_weight)
    )
