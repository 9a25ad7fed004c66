"""One schema per file we read back (checkpoints, cache index, result.json), checked before use.

A file from another run, another version or another person may carry a field of the
wrong type, or none at all: read without a check, it fails far from the file, as a
``KeyError`` or ``TypeError`` inside the model builder or the report. A :class:`Field`
list says what each file must hold; :func:`check_fields` names the file and the first
field that is missing or wrong, in one line. Unknown extra fields are allowed: newer
versions add fields (``arch_params``, an objective's state) that older readers ignore.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from selective_kd.errors import UserError

__all__ = ["Field", "check_fields", "flat_records", "is_count", "is_number", "is_positive"]


@dataclass(frozen=True)
class Field:
    """A field of a file: its name, the types it may have (``None`` for null), whether it must be there."""

    name: str
    types: tuple[type | None, ...]
    required: bool = True
    valid: Callable[[Any], bool] | None = None  # a further check of the value (ranges)
    expect: str = ""  # what the value must be, when ``valid`` says no


def _is(value: Any, tp: type | None) -> bool:
    if tp is None:
        return value is None
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _names(types: tuple[type | None, ...]) -> str:
    words = {int: "an integer", float: "a number", str: "a string", dict: "a mapping", list: "a list",
             bool: "true or false", None: "null"}
    return " or ".join(words.get(t, getattr(t, "__name__", str(t))) for t in types)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_fields(obj: Any, fields: Sequence[Field], where: str, fix: str) -> dict[str, Any]:
    """``obj`` if it is a mapping holding every required field with an allowed type; else one line."""
    if not isinstance(obj, dict):
        raise UserError(f"{where} holds {type(obj).__name__}, not a mapping of fields: {fix}")
    for f in fields:
        if f.name not in obj:
            if f.required:
                raise UserError(f"{where} lacks {f.name!r}: {fix}")
            continue
        value = obj[f.name]
        if not any(_is(value, t) for t in f.types):
            raise UserError(f"{where}: field {f.name!r} is {_show(value)}, not {_names(f.types)}: {fix}")
        if f.valid is not None and value is not None and not f.valid(value):
            raise UserError(f"{where}: field {f.name!r} is {_show(value)}, not {f.expect}: {fix}")
    return obj


def is_number(x: Any) -> bool:
    """A finite number."""
    return math.isfinite(x)


def is_positive(x: Any) -> bool:
    return math.isfinite(x) and x > 0


def is_count(x: Any) -> bool:
    return 0 <= x < 2**31


_SCALARS = (int, float, str, bool, type(None))


def flat_records(records: Any, where: str, fix: str, max_items: int = 10_000_000) -> list[dict[str, Any]]:
    """A list of flat records (a training history): each maps names to scalars, lists of numbers or of named scalars.

    Flat, so writing it back cannot expand shared references exponentially, and bounded
    in the numbers it holds (``max_items``) however often one list is referenced.
    """
    if not isinstance(records, list):
        raise UserError(f"{where}: the history is {type(records).__name__}, not a list of epochs: {fix}")
    total = 0
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or not all(isinstance(k, str) for k in rec):
            raise UserError(f"{where}: history entry {i} is not a mapping of names to values: {fix}")
        for k, v in rec.items():
            if isinstance(v, list):
                if not all(_is(x, float) for x in v):
                    raise UserError(f"{where}: history entry {i} field {k!r} is not a list of numbers: {fix}")
                total += len(v)
            elif isinstance(v, dict):  # one level of named scalars (e.g. runtime facts), no deeper
                if not all(isinstance(x, _SCALARS) for x in v.values()):
                    raise UserError(f"{where}: history entry {i} field {k!r} nests deeper than training writes: {fix}")
                total += len(v)
            elif not isinstance(v, _SCALARS):
                raise UserError(f"{where}: history entry {i} field {k!r} is {type(v).__name__}, not a number or string: {fix}")
            total += 1
        if total > max_items:
            raise UserError(f"{where}: the history holds more than {max_items:,} values, more than training writes: {fix}")
    return records


#: A finished stage's ``result.json`` (what ``report`` and a rerun read back).
RESULT_FIELDS: tuple[Field, ...] = (
    Field("model", (str,)),
    Field("val_acc", (float,), valid=lambda v: 0 <= v <= 1, expect="a fraction in [0, 1]"),
    Field("val_loss", (float,)),
    Field("epochs", (float,), valid=is_number, expect="a finite number"),
    Field("best_val_acc", (float,), required=False, valid=lambda v: 0 <= v <= 1, expect="a fraction in [0, 1]"),
    Field("epochs_to_95", (float,), required=False, valid=is_number, expect="a finite number"),
    Field("seconds", (float, None), required=False),
    Field("arch", (str, None), required=False),
    Field("pretrained", (str, None), required=False),
    Field("model_sha256", (str,), required=False),
    Field("identity", (dict,), required=False),
)

#: The parts of a result's ``identity`` the report groups by.
RESULT_IDENTITY_FIELDS: tuple[Field, ...] = (
    Field("seed", (int, None), required=False),
    Field("data", (dict,), required=False),
    Field("variant", (dict,), required=False),
    Field("curriculum", (str, None), required=False),
)
_DATA_FIELDS: tuple[Field, ...] = (
    Field("dataset", (str, None), required=False),
    Field("teacher_fraction", (float, None), required=False),
)
_VARIANT_FIELDS: tuple[Field, ...] = (Field("policy", (str, None), required=False),)


def check_result(obj: Any, where: str, fix: str) -> dict[str, Any]:
    """A ``result.json``'s content checked against :data:`RESULT_FIELDS` (and its identity's parts)."""
    check_fields(obj, RESULT_FIELDS, where, fix)
    ident = obj.get("identity")
    if isinstance(ident, dict):
        check_fields(ident, RESULT_IDENTITY_FIELDS, f"{where} (identity)", fix)
        if isinstance(ident.get("data"), dict):
            check_fields(ident["data"], _DATA_FIELDS, f"{where} (identity.data)", fix)
        if isinstance(ident.get("variant"), dict):
            check_fields(ident["variant"], _VARIANT_FIELDS, f"{where} (identity.variant)", fix)
    return obj
