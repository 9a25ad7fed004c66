"""Shared fixtures: a tiny digits config that runs the whole pipeline in seconds."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/fakecifar.py

TINY = [
    "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=2", "teacher.batch_size=128",
    "student.arch=resnet18", "student.width=0.0625", "student.epochs=2", "batch_size=128",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
