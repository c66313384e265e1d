"""Worker of the data memory test (tests/integration/test_data_memory.py),
run in a fresh process.

Streams one epoch of 20,000 mock 64x64x3 images (246 MB as uint8) through
`tfp_emerging.data` with `benchmarks/memory.py` and prints its JSON record.
"""

import json

from benchmarks import memory

if __name__ == "__main__":
  print(
    json.dumps(
      memory.measure(
        "imagenet_resized/64x64", 20000, test_examples=100, batch_size=64
      )
    )
  )
