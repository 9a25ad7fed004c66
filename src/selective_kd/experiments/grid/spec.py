"""What a grid is asked for: the base config, the axes (datasets, seeds, variants) and sweeps.

Everything the command line says is checked here, before any folder is made or any run
starts, so a typo in the last override never costs the runs before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selective_kd.config import Config, config_from_dict, load_config, parse_override, to_dict
from selective_kd.errors import UserError

DEFAULT_SEEDS = 3
#: Student runs one grid may plan. Each is a config checked and a folder planned before
#: anything starts; far more could never run and would take minutes (or all memory) to plan.
MAX_RUNS = 10_000
AXES = ("seeds", "datasets", "variants", "teacher_seeds")
SWEEP_PREFIX = "sweep."
#: Keys a sweep may not name, and the axis to use instead.
NOT_SWEPT = {"seed": "seeds=[...]", "dataset": "datasets=[...]", "distill.variants": "variants=[...]",
             "teacher.seed": "teacher_seeds=[...]"}


@dataclass(frozen=True)
class GridSpec:
    """What to run: the base config and the axes."""

    base: Config  # with distill.variants = variants
    datasets: list[str]
    seeds: list[int]
    variants: list[str]
    sweeps: dict[str, list[Any]]  # dotted config key -> values
    # the teachers' seeds (teacher.seed; also the scorers'); None: one teacher, seeded by the base `seed`,
    # and run folders without a teacher level (the layout before the axis existed)
    teacher_seeds: list[int] | None = None


def build_spec(config: Path | None, overrides: Sequence[str], plugins: Sequence[str] = ()) -> GridSpec:
    """Split the overrides into axes, sweeps and settings; check them all before anything runs."""
    axes: dict[str, Any] = {}
    sweeps: dict[str, list[Any]] = {}
    plain: list[str] = []
    for text in overrides:
        path, value = parse_override(text)
        key = ".".join(path)
        if key in AXES:
            axes[key] = value
        elif key.startswith(SWEEP_PREFIX):
            swept = key[len(SWEEP_PREFIX):]
            sweeps[swept] = _sweep_values(swept, value)
        else:
            plain.append(text)
    base = load_config(config, plain, list(plugins))
    variants = _names("variants", axes.get("variants", base.distill.variants))
    base = with_values(base, {"distill.variants": variants})
    datasets = _names("datasets", axes.get("datasets", base.grid.datasets or [base.dataset]))
    seeds_value = axes.get("seeds", base.grid.seeds if base.grid.seeds is not None else DEFAULT_SEEDS)
    teacher_seeds = _teacher_seeds(axes.get("teacher_seeds", base.grid.teacher_seeds), base.seed)
    _check_size(datasets, seeds_value, variants, sweeps, len(teacher_seeds or [None]))
    return GridSpec(base=base, datasets=datasets, seeds=_seeds(seeds_value, base.seed), variants=variants, sweeps=sweeps,
                    teacher_seeds=teacher_seeds)


def _check_size(datasets: list[str], seeds: Any, variants: list[str], sweeps: dict[str, list[Any]], teachers: int = 1) -> None:
    """Refuse, before anything is planned, a grid of more than :data:`MAX_RUNS` student runs, naming its size."""
    n_seeds = seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else len(seeds) if isinstance(seeds, list) else 1
    settings = math.prod(len(v) for v in sweeps.values())
    total = len(datasets) * settings * teachers * max(1, n_seeds) * len(variants)
    if total > MAX_RUNS:
        parts = [f"{len(datasets)} dataset(s)", f"{settings} swept setting(s)", *([f"{teachers} teacher(s)"] if teachers > 1 else []),
                 f"{n_seeds} seed(s)", f"{len(variants)} variant(s)"]
        raise UserError(f"grid: {' × '.join(parts)} = {total:,} student runs; one grid plans at most {MAX_RUNS:,}: "
                        "split it into several grids (e.g. seeds=[0,1,2] in one, seeds=[3,4,5] in the next)")


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """``cfg`` with dotted keys set, validated like any override."""
    tree = to_dict(cfg)
    for key, value in values.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"config key {key!r}: {part!r} is not a section")
        node[last] = value
    return config_from_dict(tree)


def _seeds(value: Any, base: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"seeds={value}: give a count of at least 1 (seeds=3) or a list (seeds=[0,4,7])")
        return list(range(base, base + value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return _unique("seeds", value)
    raise UserError(f"seeds={value!r}: give a count (seeds=3: seeds {base}..{base + 2}) or a list of integers (seeds=[0,4,7])")


def _teacher_seeds(value: Any, base: int) -> list[int] | None:
    """``teacher_seeds=3`` (seeds base..base+2) or ``teacher_seeds=[0,4]``; None when not asked for."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return list(range(base, base + value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value):
        return _unique("teacher_seeds", value)
    raise UserError(f"teacher_seeds={value!r}: give a count of at least 1 (teacher_seeds=3: seeds {base}..{base + 2}) "
                    "or a list of integers >= 0 (teacher_seeds=[0,1,2])")


def _names(axis: str, value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"{axis}={value!r}: give a name or a list of names, e.g. {axis}=[a,b]")
    return _unique(axis, names)


def _unique(axis: str, values: list[Any]) -> list[Any]:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise UserError(f"{axis}: {', '.join(dupes)} given more than once; list each once")
    return list(values)


def _sweep_values(key: str, value: Any) -> list[Any]:
    if key in NOT_SWEPT:
        raise UserError(f"sweep.{key}: {key} is a grid axis; use {NOT_SWEPT[key]} instead")
    if not isinstance(value, list) or not value:
        raise UserError(f"sweep.{key}={value!r}: a sweep needs a list of values, e.g. sweep.{key}=[a,b]")
    return _unique(f"sweep.{key}", value)
