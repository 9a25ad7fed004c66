"""Checkpoints written atomically and read without running code.

``torch.load`` with ``weights_only=False`` unpickles arbitrary objects: a ``model.pt`` or
``last.pt`` handed over by someone else (a shared teacher, a downloaded run folder) could
run any command on load. Our checkpoints hold only tensors and plain data (dicts, lists,
numbers, strings), so they are read with ``weights_only=True``, which refuses anything
else; every failure, damaged file or hostile one, is a one-line :class:`UserError`.

What a checkpoint holds is checked against its schema before use (:data:`MODEL_FIELDS`
for ``model.pt``, :data:`RESUME_FIELDS` for ``last.pt``), so a field of the wrong type
or a missing one is named with the file, never a ``KeyError`` deep in the engine.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from selective_kd.errors import UserError
from selective_kd.fields import Field, check_fields, flat_records, is_count, is_positive
from selective_kd.fileio import torch_save
from selective_kd.reading import open_regular

_STEMS = ("cifar", "imagenet")

#: A finished stage's ``model.pt``: the architecture to build and its weights.
MODEL_FIELDS: tuple[Field, ...] = (
    Field("arch", (str,)),
    Field("num_classes", (int,), valid=lambda v: 1 <= v <= 1_000_000, expect="a class count from 1 to 1,000,000"),
    Field("in_channels", (int,), valid=lambda v: 1 <= v <= 4096, expect="a channel count from 1 to 4096"),
    # width and stem: what records before arch_params rebuild a ResNet from (models.build_recorded)
    Field("width", (float,), required=False, valid=lambda v: is_positive(v) and v <= 64, expect="a positive width multiplier up to 64"),
    Field("stem", (str,), required=False, valid=lambda v: v in _STEMS, expect=" or ".join(_STEMS)),
    Field("input_size", (int, None), required=False, valid=lambda v: 1 <= v <= 4096, expect="a size in pixels"),
    Field("identity", (dict,), required=False),
    Field("arch_params", (dict,), required=False),  # architecture parameters beyond width and stem
    Field("state_dict", (dict,)),
)

#: A running stage's ``last.pt``: everything needed to resume after the last finished epoch.
RESUME_FIELDS: tuple[Field, ...] = (
    Field("identity", (dict,)),
    Field("epoch", (int,), valid=is_count, expect="a count of finished epochs"),
    Field("model", (dict,)),
    Field("optimizer", (dict,)),
    Field("history", (list,)),
    Field("plan", (dict,), required=False),
    Field("runtime", (dict,), required=False),
    Field("objective", (dict,), required=False),  # the state of an objective that keeps one
)


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


def load_checkpoint(path: str | os.PathLike[str], fields: Sequence[Field] | None = None, what: str = "checkpoint",
                    fix: str = "delete it to start that stage afresh") -> dict[str, Any]:
    """A checkpoint's contents (on the CPU), loaded with ``weights_only=True``: never runs code from the file.

    With ``fields`` (:data:`MODEL_FIELDS`, :data:`RESUME_FIELDS`) the contents are checked
    against that schema; ``what`` and ``fix`` word the one-line error.
    """
    path = Path(path)
    with open_regular(path, what, fix if path.exists() else "run the stage that writes it, or check the path") as fh:
        try:
            with warnings.catch_warnings():  # torch's own warnings (pickle protocol, ...) would print above our line
                warnings.simplefilter("ignore")
                obj = torch.load(fh, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - damaged or hostile, the file is the user's to remove
            raise UserError(f"{what} {path} cannot be read safely ({_reason(exc)}): {fix}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{what} {path} holds a {type(obj).__name__}, not a selective-kd checkpoint: {fix}")
    if fields is not None:
        check_fields(obj, fields, f"{what} {path}", fix)
        where = f"{what} {path}"
        if fields is MODEL_FIELDS:
            _tensors(obj["state_dict"], "state_dict", where, fix)
        elif fields is RESUME_FIELDS:
            _tensors(obj["model"], "model", where, fix)
            check_fields(obj["optimizer"], (Field("state", (dict,)), Field("param_groups", (list,))),
                         f"{where} (optimizer state)", fix)
            history = flat_records(obj["history"], where, fix)
            if len(history) != obj["epoch"]:
                raise UserError(f"{where}: the history holds {len(history)} epochs but epoch is {obj['epoch']}: {fix}")
    return obj


def _tensors(state: dict[str, Any], name: str, where: str, fix: str) -> None:
    """A state dict: names to tensors."""
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UserError(f"{where}: field {name!r} holds {_short(key)} = {type(value).__name__}, not a named tensor: {fix}")


def _short(key: object) -> str:
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."
