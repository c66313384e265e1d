"""Choosing a `tf.distribute` strategy by name: default, mirrored,
multiworker, tpu.

Build the flow, the `FlowModel` and its optimizer inside `strategy.scope()`;
`fit` then splits each global batch over the replicas and sums their
gradients (`FlowModel` scales each replica's loss by `1 / replicas`, so the
update equals the one of one device on the whole batch):

    strategy = make_strategy("mirrored")
    with strategy.scope():
      model = FlowModel(Glow(...), num_bins=256)
      model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(dataset_of_global_batches, epochs=10)

* `"default"`: TensorFlow's default strategy (one device, no replicas).
* `"mirrored"`: `MirroredStrategy`, one replica per local GPU (the CPU if
  there is none), or per device in `devices`.
* `"multiworker"`: `MultiWorkerMirroredStrategy`; each worker runs the same
  program with its own `TF_CONFIG` (JSON with `cluster` and `task`). Without
  `TF_CONFIG` it is one local worker.
* `"tpu"`: `TPUStrategy` on the TPU named by `tpu` (`""` or `None`: the
  TPU VM's own, or the one in `TPU_NAME`), after connecting to it and
  initialising its system.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os

import tensorflow as tf

__all__ = ["STRATEGIES", "StrategyError", "make_strategy"]

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
"""The `tf.distribute` strategies `make_strategy` (and `--strategy`) can
make by name."""


class StrategyError(ValueError):
  """A strategy that cannot be made here (no TPU, bad `TF_CONFIG`, ...)."""


def make_strategy(
  name: str = "default",
  devices: Sequence[str] | None = None,
  tpu: str | None = None,
) -> tf.distribute.Strategy:
  """The `tf.distribute.Strategy` called `name`.

  Args:
    name: one of `STRATEGIES`.
    devices: for `"mirrored"` only: device names, e.g. `["/gpu:0",
      "/gpu:1"]`; default all local GPUs (or the CPU).
    tpu: for `"tpu"` only: the TPU's name or `grpc://` address; default
      the local TPU (TPU VM) or `TPU_NAME`.

  Returns:
    The strategy.

  Raises:
    StrategyError: an unknown `name`, arguments for another strategy, a
      malformed `TF_CONFIG`, or no TPU where `"tpu"` was asked for.
  """
  if name not in STRATEGIES:
    raise StrategyError(f"`name` must be one of {STRATEGIES}; got {name!r}.")
  if devices is not None and name != "mirrored":
    raise StrategyError(
      f"`devices` is for the 'mirrored' strategy only; got it with {name!r}."
    )
  if tpu is not None and name != "tpu":
    raise StrategyError(
      f"`tpu` is for the 'tpu' strategy only; got it with {name!r}."
    )
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices)
  if name == "multiworker":
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  return _tpu_strategy(tpu)


def _check_tf_config():
  """Raises `StrategyError` unless `TF_CONFIG` is absent or well formed."""
  text = os.environ.get("TF_CONFIG")
  if not text:
    return
  try:
    config = json.loads(text)
  except ValueError as e:
    raise StrategyError(f"TF_CONFIG is not valid JSON ({e}).") from e
  if (
    not isinstance(config, dict)
    or "cluster" not in config
    or "task" not in config
  ):
    raise StrategyError(
      "TF_CONFIG must be a JSON object with 'cluster' (e.g. {\"worker\": "
      '["host1:12345", "host2:12345"]}) and \'task\' (e.g. {"type": '
      f'"worker", "index": 0}}); got {text!r}.'
    )


def _tpu_strategy(tpu):
  """Connects to the TPU `tpu` and returns a `TPUStrategy` over its cores."""
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    where = f"TPU {tpu!r}" if tpu else "a local TPU or TPU_NAME"
    raise StrategyError(
      f"the 'tpu' strategy found no TPU ({where}): {str(e).rstrip('.')}. "
      f"Run on a TPU VM, or pass the TPU's name or grpc:// address."
    ) from e
  return tf.distribute.TPUStrategy(resolver)
