"""Reading what a run left behind, for the tests that compare two runs (weights bit for bit, results)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def weights(path: Path) -> dict[str, torch.Tensor]:
    """A model.pt's state dict, loaded as every checkpoint is: plain tensors only."""
    return torch.load(path, weights_only=True)["state_dict"]


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit-identical state dicts: the same names and equal tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def result(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
