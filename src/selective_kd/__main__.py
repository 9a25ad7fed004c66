import sys

from selective_kd.cli import main

sys.exit(main())
