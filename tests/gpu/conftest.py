"""The GPU tests share ``gpu_helpers`` (marks, the pipeline's GPU runtime, true-fp32 switches)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # tests/gpu/gpu_helpers.py; appended, so `conftest` stays tests/conftest.py
