"""Compares the channel mixings (1x1, LU, QR, emerging, periodic, wide 1x1).

Usage: python benchmarks/compare.py [--quick] [--seeds N] [--epochs N]
       [--datasets digits,skimage-crops] [--mixings ...] [--out DIR]

See `tfp_emerging.compare` for what is trained and what is written.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tfp_emerging import compare  # pylint: disable=g-import-not-at-top,wrong-import-position

if __name__ == "__main__":
  compare.main()
