"""Speed benchmarks of the invertible convolutions and whole Glow flows.

Usage: python benchmarks/run.py [--json] [--quick] [--only NAME]
       [--repeats N] [--jit both|on|off] [--no-glow] [--out FILE]

The same as `tfp-emerging benchmark ...`; see `tfp_emerging.benchmarks`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfp_emerging import benchmarks  # pylint: disable=g-import-not-at-top,wrong-import-position

if __name__ == "__main__":
  sys.exit(benchmarks.main())
