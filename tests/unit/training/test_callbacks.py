"""`tfp_emerging.training.callbacks`: the run's Keras callbacks."""

from tfp_emerging.training import callbacks as training_callbacks


def test_callbacks_leave_the_batches_to_keras():
  # Keras calls per-batch hooks from a thread, without waiting for each
  # step, only when no callback overrides them (or says it is safe).
  for cls in (
    training_callbacks.EpochRecorder,
    training_callbacks.NaNGuard,
    training_callbacks.UniformCheck,
    training_callbacks.Checkpointer,
    training_callbacks.TensorBoardLogger,
  ):
    for hook in ("on_batch_end", "on_train_batch_end"):
      assert hook not in vars(cls), (cls, hook)
