"""Checkpoints written atomically and read without running code.

``torch.load`` with ``weights_only=False`` unpickles arbitrary objects: a ``model.pt`` or
``last.pt`` handed over by someone else (a shared teacher, a downloaded run folder) could
run any command on load. Our checkpoints hold only tensors and plain data (dicts, lists,
numbers, strings), so they are read with ``weights_only=True``, which refuses anything
else; every failure, damaged file or hostile one, is a one-line :class:`UserError`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from selective_kd.errors import UserError
from selective_kd.fileio import torch_save


def save_checkpoint(path: str | os.PathLike[str], obj: dict[str, Any]) -> Path:
    """Write ``obj`` with ``torch.save``, atomically: a kill mid-write leaves the previous file."""
    return torch_save(path, obj)


def _reason(exc: BaseException) -> str:
    """One short line: torch's refusal names the forbidden global; other errors their first line."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"it asks to run {found.group(1)}, which a checkpoint never needs"
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return f"{exc.__class__.__name__}: {lines[0][:160]}" if lines else exc.__class__.__name__


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A checkpoint's contents (on the CPU), loaded with ``weights_only=True``: never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found: run the stage that writes it, or check the path")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - damaged or hostile, the file is the user's to remove
        raise UserError(
            f"checkpoint {path} cannot be read safely ({_reason(exc)}): delete it to start that stage afresh"
        ) from None
    if not isinstance(obj, dict):
        raise UserError(
            f"checkpoint {path} holds a {type(obj).__name__}, not a selective-kd checkpoint: delete it to start that stage afresh"
        )
    return obj
