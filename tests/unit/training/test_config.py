"""`tfp_emerging.training.config`: a resume that changes an option the run
is defined by names the parameters, which the command line spells as its
flags."""

import copy
import pickle

import pytest

from tfp_emerging import training
from tfp_emerging.training import config


def test_an_option_that_cannot_change_names_it_as_a_parameter():
  stored = training.RunConfig()
  with pytest.raises(training.ArgumentError) as info:
    stored.resumed({"mixing": "qr", "splits": ["a", "b"], "epochs": 3})
  assert str(info.value) == (
    "resume continues the stored run; these options differ from its "
    "config.json and cannot change: mixing qr (the run has emerging), "
    "splits ['a', 'b'] (the run has None) (only epochs, batch_size, "
    "learning_rate, warmup_steps, checkpoint_every can)."
  )
  assert info.value.spelled(config.flag) == (
    "--resume continues the stored run; these options differ from its "
    "config.json and cannot change: --mixing qr (the run has emerging), "
    "--split ['a', 'b'] (the run has None) (only --epochs, --batch-size, "
    "--learning-rate, --warmup-steps, --checkpoint-every can)."
  )
  assert info.value.parameters[:3] == ("resume", "mixing", "splits")


def test_an_argument_error_pickles_and_copies_as_made():
  error = training.ArgumentError("{out} {path}: is a folder.", path="/a{b}")
  for again in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
    assert type(again) is training.ArgumentError
    assert str(again) == "out /a{b}: is a folder."
    assert again.spelled(config.flag) == "--out /a{b}: is a folder."
