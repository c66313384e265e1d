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
  `TF_CONFIG` it is one local worker. A lost worker stops the others with
  an error instead of a hang (`worker_faults` turns it into `WorkerLost`):
  TensorFlow's coordination service notices a worker that stopped sending
  heartbeats (about 10 s), and a collective that has not completed after
  `COLLECTIVE_TIMEOUT_SECONDS` fails (a worker that hangs). Only the chief
  (`is_chief`) writes a run's files. Keras 3's `fit` cannot run on
  several workers (tensorflow/tensorflow#72388; custom loops of
  `strategy.run` can): such a run uses tf_keras (`TF_USE_LEGACY_KERAS=1`,
  `needs_legacy_keras`), which the command line sets itself.
* `"tpu"`: `TPUStrategy` on the TPU named by `tpu` (`""` or `None`: the
  TPU VM's own, or the one in `TPU_NAME`), after connecting to it and
  initialising its system.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import contextlib
import json
import os
import re

import tensorflow as tf

__all__ = [
  "COLLECTIVE_TIMEOUT_SECONDS",
  "STRATEGIES",
  "StrategyError",
  "WorkerLost",
  "is_chief",
  "is_multi_worker",
  "make_strategy",
  "needs_legacy_keras",
  "worker_faults",
  "worker_index",
]

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
"""The `tf.distribute` strategies `make_strategy` (and `--strategy`) can
make by name."""
COLLECTIVE_TIMEOUT_SECONDS = 120.0
"""Seconds after which a collective (all-reduce, broadcast) of a
multi-worker run that has not completed fails instead of waiting for a lost
worker: it bounds the wait of one step (and of a chief's checkpoint write)
for the slowest worker."""
# What a collective raises when a worker is gone: a peer that cannot be
# reached or stopped sending heartbeats (the collectives are aborted), one
# that has restarted, or a collective past its timeout.
_LOST_WORKER_ERRORS = (
  tf.errors.UnavailableError,
  tf.errors.DeadlineExceededError,
  tf.errors.FailedPreconditionError,
  tf.errors.AbortedError,
  tf.errors.CancelledError,
)


class WorkerLost(RuntimeError):
  """A worker of a multi-worker run stopped answering; this one stopped."""


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
    return tf.distribute.MultiWorkerMirroredStrategy(
      communication_options=tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS
      )
    )
  return _tpu_strategy(tpu)


def needs_legacy_keras(name: str) -> bool:
  """Whether strategy `name` must run under tf_keras in this process: a
  multi-worker run while `tf.keras` is Keras 3, whose `fit` fails on
  several workers (tensorflow/tensorflow#72388)."""
  # Imported here: tfp_emerging.keras imports this module.
  from tfp_emerging import keras as tfe_keras

  return name == "multiworker" and tfe_keras.KERAS_3


def is_multi_worker(strategy: tf.distribute.Strategy | None) -> bool:
  """Whether `strategy` is a `MultiWorkerMirroredStrategy` over several
  worker processes (its replicas are not all on this worker's devices)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
  """Whether this process writes a run's files: the chief (worker 0) of a
  multi-worker run, and the one process of every other strategy."""
  return strategy is None or bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy | None) -> int:
  """This process's task index in a multi-worker run (`TF_CONFIG`'s
  `task.index`), 0 for every other strategy."""
  resolver = getattr(strategy, "cluster_resolver", None)
  return int(getattr(resolver, "task_id", None) or 0)


@contextlib.contextmanager
def worker_faults(strategy: tf.distribute.Strategy | None) -> Iterator[None]:
  """Turns the error of a collective that lost a worker of the
  multi-worker `strategy` into `WorkerLost` (one line: what failed, and how
  to go on); other errors, and every error of other strategies, pass."""
  try:
    yield
  except _LOST_WORKER_ERRORS as e:
    if not is_multi_worker(strategy):
      raise
    text = re.sub(r"\{\{[^}]*\}\}", "", str(e)).strip()
    first = (text.splitlines() or [""])[0][:200]
    raise WorkerLost(
      f"a worker of the multi-worker run was lost or stopped answering "
      f"({type(e).__name__}: {first}). Every finished epoch (and step "
      f"checkpoint) is kept: start every worker again with the same "
      f"TF_CONFIG and --resume."
    ) from e


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
