"""`python -m tfp_emerging ...`: the `tfp-emerging` command line."""

import sys

from tfp_emerging.cli import main

sys.exit(main())
