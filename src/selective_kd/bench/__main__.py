"""``python -m selective_kd.bench``: the same as ``selective-kd bench``."""

import sys

from selective_kd.bench.command import main

sys.exit(main())
