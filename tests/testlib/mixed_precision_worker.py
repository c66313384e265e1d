"""Run by tests/integration/test_mixed_precision.py in a fresh process: the
Keras global policy is process-wide, so setting `mixed_float16` here keeps
it away from the rest of the suite. Prints one JSON line of results.
"""

import json
import sys

import numpy as np
import tensorflow as tf

from tests.testlib.runs import digits_glow
from tests.testlib.runs import first_examples
from tfp_emerging import keras as tfe_keras
from tfp_emerging.bijectors.affine_coupling import AffineCoupling

keras = tfe_keras.keras


def perturb(flow):
  """Moves every variable off its initial value (zero output kernels too)."""
  rng = np.random.default_rng(0)
  for v in flow.trainable_variables:
    v.assign_add(tf.constant(rng.normal(0.0, 0.05, v.shape), v.dtype))


def graph_nodes(concrete):
  graph_def = concrete.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return nodes


def half_nodes(concrete):
  """(name, op) of every node with a float16 input or output type."""
  found = []
  for node in graph_nodes(concrete):
    types = [
      node.attr[key].type
      for key in ("T", "dtype", "SrcT", "DstT")
      if key in node.attr
    ]
    if tf.float16.as_datatype_enum in types:
      found.append((node.name, node.op))
  return found


def main():
  x = tf.random.stateless_uniform([4, 8, 8, 1], [1, 2]) - 0.5
  init = tf.random.stateless_uniform([16, 8, 8, 1], [3, 4]) - 0.5
  reference = digits_glow()
  reference.initialize(init)
  perturb(reference)
  keras.mixed_precision.set_global_policy("mixed_float16")
  mixed = digits_glow()
  mixed.initialize(init)
  perturb(mixed)
  couplings = [
    layer
    for layers in mixed.steps
    for layer in layers
    if isinstance(layer, AffineCoupling)
  ]
  distribution = tfe_keras.FlowModel(mixed, num_bins=17).distribution
  log_prob = tf.function(distribution.log_prob).get_concrete_function(x)
  z = tf.random.stateless_normal([3, 8, 8, 1], [5, 6])
  sample = tf.function(mixed.forward).get_concrete_function(z)
  half = half_nodes(log_prob) + half_nodes(sample)
  mixed_log_prob = distribution.log_prob(x)
  reference_log_prob = tfe_keras.FlowModel(
    reference, num_bins=17
  ).distribution.log_prob(x)
  round_trip = mixed.inverse(tf.identity(mixed.forward(z)))
  # An uninitialised flow's first log_prob initialises it (float32 ActNorm
  # after float16 coupling networks), as initialize() does.
  implicit, explicit = digits_glow(), digits_glow()
  explicit.initialize(init)
  tf.function(tfe_keras.FlowModel(implicit, num_bins=17).distribution.log_prob)(
    init
  )
  actnorm_difference = max(
    float(
      tf.reduce_max(tf.abs(a.bias - b.bias) + tf.abs(a.log_scale - b.log_scale))
    )
    for a, b in zip(implicit.actnorms, explicit.actnorms)
  )

  images, _ = first_examples(256)
  model = tfe_keras.FlowModel(digits_glow(seed=1), num_bins=17)
  model.compile(optimizer=keras.optimizers.Adam(2e-3))
  history = model.fit(images, batch_size=32, epochs=3, verbose=0)
  result = {
    "policy": keras.mixed_precision.global_policy().name,
    "coupling_compute_dtypes": sorted(
      {c.compute_dtype.name for c in couplings}
    ),
    "variable_dtypes": sorted(
      {v.dtype.name for v in mixed.variables if v.dtype.is_floating}
    ),
    "half_ops": sorted({op for _, op in half}),
    "half_outside_couplings": [
      name for name, _ in half if "affine_coupling" not in name
    ],
    "half_conv2d": sum(op == "Conv2D" for _, op in half),
    "num_couplings": len(couplings),
    "log_prob_dtype": mixed_log_prob.dtype.name,
    "log_prob_mixed": mixed_log_prob.numpy().tolist(),
    "log_prob_float32": reference_log_prob.numpy().tolist(),
    "round_trip_error": float(tf.reduce_max(tf.abs(round_trip - z))),
    "optimizer": type(model.optimizer).__name__,
    "losses": history.history["loss"],
    "implicit_initialized": implicit.is_initialized(),
    "implicit_actnorm_difference": actnorm_difference,
    "actnorm_moved": float(tf.reduce_max(tf.abs(explicit.actnorms[-1].bias))),
  }
  json.dump(result, sys.stdout)


if __name__ == "__main__":
  main()
