"""Puts this folder on sys.path so the report tests share ``fakeruns`` (pytest runs with importlib mode)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent))  # appended: `import conftest` must stay tests/conftest.py
