"""Training of `FlowModel`s: the one training path and run directories.

* `config`: `RunConfig`, everything that defines a run, checked on
  creation; `RESUMABLE_OPTIONS`, what a resume may change; `RunError` and
  `ArgumentError` (naming the parameter at fault, which the command line
  spells as its flag).
* `loop`: `build_model`, `fit` (the one training path: Keras `fit` over the
  `tf.data` pipeline of `tfp_emerging.data.pipeline`) and `evaluate` (the
  one evaluator); no filesystem.
* `run_training`: `train`, `resume`: the training path with a run
  directory.
* `trained_runs`: `load_run`, `evaluate_run`, `sample_run`, `export_run`:
  using a run's newest checkpoint.
* `console`: what a run prints (progress lines, warnings, the start line).
* `run_dir`: every read and write of a run directory, atomic.
* `atomic_writes`: files replaced whole or not at all; `DiskFull`,
  `ReadOnlyRun`.
* `locks`: `locked`, one writer of a run directory at a time.
* `checkpoint_files`: the names of a run's checkpoint files, which are
  complete, their removal.
* `checkpoints`: `RunState`, a run's checkpointed state.
* `callbacks`: the Keras callbacks of a run.
* `sample_grids`: `sample_grid`, a model's samples tiled (`samples.png`,
  `tfp-emerging sample`, TensorBoard).
"""

from tfp_emerging.training.callbacks import TrainingDiverged
from tfp_emerging.training.checkpoints import CorruptCheckpointError
from tfp_emerging.training.config import RESUMABLE_OPTIONS
from tfp_emerging.training.config import ArgumentError
from tfp_emerging.training.config import RunConfig
from tfp_emerging.training.config import RunError
from tfp_emerging.training.loop import build_model
from tfp_emerging.training.loop import evaluate
from tfp_emerging.training.loop import fit
from tfp_emerging.training.loop import load_data
from tfp_emerging.training.run_dir import read_config
from tfp_emerging.training.run_training import resume
from tfp_emerging.training.run_training import train
from tfp_emerging.training.trained_runs import evaluate_run
from tfp_emerging.training.trained_runs import export_run
from tfp_emerging.training.trained_runs import load_run
from tfp_emerging.training.trained_runs import sample_run

__all__ = [
  "RESUMABLE_OPTIONS",
  "ArgumentError",
  "CorruptCheckpointError",
  "RunConfig",
  "RunError",
  "TrainingDiverged",
  "build_model",
  "evaluate",
  "evaluate_run",
  "export_run",
  "fit",
  "load_data",
  "load_run",
  "read_config",
  "resume",
  "sample_run",
  "train",
]
