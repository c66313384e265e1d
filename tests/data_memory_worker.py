"""Worker of test_data's memory test, run in a fresh process.

Streams one epoch of 20,000 mock 64x64x3 images (246 MB as uint8) through
`tfp_emerging.data` with `benchmarks/memory.py` and prints its JSON record.
"""

import json
import os
import sys

# sys.path starts with this script's folder, tests/, whose `benchmarks` is
# the test package; the repository's benchmarks/ is meant here.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import memory  # pylint: disable=wrong-import-position

if __name__ == "__main__":
  print(json.dumps(memory.measure("imagenet_resized/64x64", 20000,
                                  test_examples=100, batch_size=64)))
