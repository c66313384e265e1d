"""Studies, speed and memory measurements, and the targets they are checked against.

Scripts run from the repository root (`python benchmarks/NAME.py`); a package
so that tests and workers import them as `benchmarks.NAME` unambiguously.
"""
