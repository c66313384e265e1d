"""Every test under tests/integration runs real processes, builds or the docs
site: marked `integration` and `slow`, so `make test-unit` leaves them out."""

import pathlib

import pytest

_HERE = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items):
  for item in items:
    if _HERE in pathlib.Path(item.fspath).parents:
      item.add_marker(pytest.mark.integration)
      item.add_marker(pytest.mark.slow)
