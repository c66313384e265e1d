"""Packaging for tfp_emerging: invertible convolutions for TensorFlow
Probability.

Every field (name, version, dependencies, extras, entry points, classifiers)
is in pyproject.toml; this file keeps `python setup.py ...` and older tools
working and defers to it.
"""

import setuptools

setuptools.setup()
