"""The digits FlowModels under tf_keras: run with TF_USE_LEGACY_KERAS=1.

Keras is chosen when TensorFlow is imported, so this runs in a process of
its own (tests/integration/test_tf_keras.py). Argument: a folder to write
into. Prints one JSON object on its last line.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

from tests.testlib import digits_models as t
from tfp_emerging import keras as tfe_keras
from tfp_emerging.flows import dequantization

OUT = sys.argv[1]
model, snapshot, history = t.trained("1x1")
images = t.digits()[t.TEST]
want = model.bits_per_dim(images, seed=3).numpy()
model.save_weights(os.path.join(OUT, "model.weights.h5"))
fresh = t.make_model("1x1", seed=5)
fresh.load_weights(os.path.join(OUT, "model.weights.h5"))
moved = [
  bool(np.any(v.numpy() != b))
  for v, b in zip(model.flow.variables, snapshot.values)
  if v.trainable
]
lu = t.lu_model_off_its_seed()
lu.save(os.path.join(OUT, "m.keras"))
loaded = t.keras.models.load_model(os.path.join(OUT, "m.keras"))
x = dequantization.dequantize(images, t.NUM_BINS, seed=[1, 2])
lu.export(os.path.join(OUT, "exported"), verbose=False)
served = tf.saved_model.load(os.path.join(OUT, "exported"))
print(
  json.dumps(
    dict(
      keras=type(model).__mro__[1].__module__,
      keras_3=tfe_keras.KERAS_3,
      initialized=snapshot.initialized,
      weights=len(model.trainable_weights),
      variables=len(model.flow.trainable_variables),
      moved=all(moved),
      before=float(snapshot.bits.mean()),
      after=float(model.bits_per_dim(images, seed=7).numpy().mean()),
      restored=bool(
        np.array_equal(fresh.bits_per_dim(images, seed=3).numpy(), want)
      ),
      sample=list(model.sample(2, seed=1).shape),
      keras_file=bool(
        np.array_equal(
          loaded.distribution.log_prob(x).numpy(),
          lu.distribution.log_prob(x).numpy(),
        )
      ),
      keras_file_flags=loaded.is_initialized(),
      checkpoint=t.checkpoint_restores_the_trained_model("1x1"),
      layers=[
        [layer.name, type(layer).__name__, layer.count_params()]
        for layer in model.layers
      ],
      part_sizes=t.part_sizes(model),
      exported=bool(
        np.array_equal(
          served.signatures["log_prob"](x=x)["log_prob"].numpy(),
          lu.distribution.log_prob(x).numpy(),
        )
      ),
    )
  )
)
