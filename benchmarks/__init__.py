"""Studies, speed and memory measurements, and the targets they are checked
against.

Not part of the installed package: each module runs from the repository root
as `python -m benchmarks.<NAME>` (`run`, the speed suite; `solvers`,
`cython_inverse`, `train_speed`, `memory`, `compare`, `conditional`,
`targets`), and the tests import them as `benchmarks.NAME`.
"""
