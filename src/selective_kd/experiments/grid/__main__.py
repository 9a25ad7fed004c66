"""``python -m selective_kd.experiments.grid --threads N``: one job (JSON on stdin), for ``--jobs N``."""

import sys

from selective_kd.experiments.grid.worker import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
