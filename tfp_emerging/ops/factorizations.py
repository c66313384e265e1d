"""Factorisations of an invertible `C x C` matrix, as `Conv1x1` keeps its
weight `W`: Householder QR (Hoogeboom et al. 2019, section 3.4) and LU with
a fixed permutation (Glow).

`qr_factors` and `lu_factors` decompose a given `W` into the factors the
layer trains (at construction, eagerly); `householder_product`,
`with_diagonal` and `solve_right` rebuild and invert it from them, in pure
TensorFlow (`triangular_solve` and matmuls, which XLA compiles).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import tensorflow as tf

__all__ = [
  "NONZERO_PIVOTS",
  "check_invertible",
  "householder_product",
  "householder_qr",
  "lu_factors",
  "qr_factors",
  "solve_right",
  "with_diagonal",
]


def householder_product(vectors: tf.Tensor) -> tf.Tensor:
  """`Q = H_1 H_2 ... H_C`, `H_i = I - 2 v_i v_i^T / (v_i^T v_i)`,
  `v_i = vectors[i]`.

  Orthogonal for any nonzero rows of `vectors` (`[C, C]`, or `[K, C]` for
  `K` reflections). In compact WY form (Schreiber & Van Loan 1989; the
  triangular factor as in Joffrain et al. 2006): with `V` the matrix whose
  columns are the `v_i`,

      Q = I - V S^{-1} V^T,   S = triu(V^T V) - diag(V^T V) / 2,

  `S` upper triangular. One Gram matmul, one triangular solve and one matmul,
  `O(C^3)`, instead of `C` sequential rank-one updates.
  """
  gram = tf.matmul(vectors, vectors, transpose_b=True)
  s = tf.linalg.band_part(gram, 0, -1) - 0.5 * tf.linalg.diag(
    tf.linalg.diag_part(gram)
  )
  channels = vectors.shape[-1]
  return tf.eye(channels, dtype=vectors.dtype) - tf.matmul(
    vectors,
    tf.linalg.triangular_solve(s, vectors, lower=False),
    transpose_a=True,
  )


def householder_qr(
  matrix: tf.Tensor | npt.ArrayLike,
) -> tuple[tf.Tensor, tf.Tensor]:
  """Householder vectors `V` and upper triangular `R` with `matrix = Q(V) R`.

  `Q(V)` is `householder_product(V)`. Classic Householder QR: step `i`
  reflects column `i` below the diagonal onto `e_i`, with the vector
  `v_i = x + sign(x_0) |x| e_0` (zeros above row `i`). `matrix` must be
  invertible. `O(C^3)`; used at construction only.
  """
  a = tf.convert_to_tensor(matrix)
  channels = a.shape[0]
  vectors = []
  for i in range(channels):
    x = a[i:, i]
    sign = tf.where(x[0] < 0, -tf.ones_like(x[0]), tf.ones_like(x[0]))
    v = tf.concat(
      [tf.zeros([i], a.dtype), [x[0] + sign * tf.norm(x)], x[1:]], axis=0
    )
    a -= 2.0 * v[:, None] * tf.matmul(v[None, :], a) / tf.reduce_sum(v * v)
    vectors.append(v)
  return tf.stack(vectors), tf.linalg.band_part(a, 0, -1)


def qr_factors(matrix: tf.Tensor) -> dict[str, tf.Tensor]:
  """`W = Q(V) (R + diag(s))`, `s = sign exp(log_abs_s)`: the Householder
  vectors `householder` (`householder_qr`), `upper` (the strict upper
  triangle `R`, zero diagonal), `log_abs_s` and `sign`. `O(C^3)`."""
  householder, r = householder_qr(matrix)
  s = tf.linalg.diag_part(r)
  return dict(
    householder=householder,
    upper=r - tf.linalg.diag(s),
    log_abs_s=tf.math.log(tf.abs(s)),
    sign=tf.sign(s),
  )


def lu_factors(matrix: tf.Tensor) -> dict[str, tf.Tensor]:
  """`W = P L U`: `permutation` (`x @ P = gather(x, permutation, axis=-1)`),
  `lower` (the strict lower triangle of the unit lower `L`), `upper` (the
  strict upper triangle of `U`), and `U`'s diagonal `s` as `log_abs_s` and
  `sign`. `O(C^3)`.

  `tf.linalg.lu` gives `gather(matrix, permutation) = L U`, so
  `matrix = P L U` with `P` the transpose of that row permutation.
  """
  lower_upper, permutation = tf.linalg.lu(matrix)
  s = tf.linalg.diag_part(lower_upper)
  return dict(
    permutation=permutation,
    lower=tf.linalg.band_part(lower_upper, -1, 0) - tf.linalg.diag(s),
    upper=tf.linalg.band_part(lower_upper, 0, -1) - tf.linalg.diag(s),
    log_abs_s=tf.math.log(tf.abs(s)),
    sign=tf.sign(s),
  )


def with_diagonal(
  matrix: tf.Tensor, diagonal: tf.Tensor, lower: bool = False
) -> tf.Tensor:
  """The strict upper (or, `lower=True`, lower) triangle of `matrix` plus
  `diag(diagonal)`: `O(C^2)`."""
  triangle = (
    tf.linalg.band_part(matrix, -1, 0)
    if lower
    else tf.linalg.band_part(matrix, 0, -1)
  )
  return triangle - tf.linalg.band_part(matrix, 0, 0) + tf.linalg.diag(diagonal)


def solve_right(rows: tf.Tensor, triangle: tf.Tensor, lower: bool) -> tf.Tensor:
  """`rows @ triangle^{-1}` for `[M, C]` rows and a triangular `[C, C]`
  (`lower` or upper): `triangle^T z^T = rows^T`, one `triangular_solve`,
  `O(M C^2)`."""
  return tf.transpose(
    tf.linalg.triangular_solve(
      triangle, tf.transpose(rows), lower=lower, adjoint=True
    )
  )


NONZERO_PIVOTS = (
  lambda t: tf.reduce_all(tf.linalg.diag_part(tf.linalg.qr(t)[1]) != 0),
  "be invertible (the diagonal of R in its QR factorisation nonzero)",
)
"""A condition of `checks.parameter_assertions`: the pivots of a matrix's
QR (`diag R`, which an inverse through the QR divides by) nonzero."""


def check_invertible(matrix: tf.Tensor | npt.ArrayLike, channels: int) -> None:
  """Raises `ValueError` unless `matrix`, where its value is known now (an
  array, an eager tensor or variable), is finite and of full rank to working
  precision (`numpy.linalg.matrix_rank`)."""
  known = tf.get_static_value(tf.convert_to_tensor(matrix))
  if known is None:
    return
  if not np.all(np.isfinite(known)):
    raise ValueError("`matrix` must be finite; got one with NaN or inf.")
  rank = np.linalg.matrix_rank(known)
  if rank < channels:
    raise ValueError(
      f"`matrix` must be invertible; got one of rank {rank} < {channels}."
    )
