"""A study's registered comparison families, and the teacher-level means its ranking reads.

``report --margin PP`` alone forms one family per protocol from whatever variants a
folder holds: each against ``kd`` and ``unguided``, plus the paper's claims. A study that
registered its families in advance (round 2's plan: six confirmatory comparisons C1-C6
for Tier A; each exploratory variant against ``kd`` for Tier B, in the same folders)
must be tested on exactly those, whatever else the folder holds, or the Holm correction
is over a family nobody registered. ``report --families FILE`` reads them:

    families:
      Tier A (confirmatory):
        C1: [kd, unguided]          # label: [variant, reference], i.e. variant − reference
        C2: [kd-cl, kd]
      Tier B (exploratory):
        B1: [dkd, kd]

Each family is one Holm family (difference tests and TOST adjusted separately, as in
:func:`selective_kd.report.inference.analyse_protocol`). A family is tested only whole:
while a variant it names has no runs in the folder, the family is listed as waiting
for them and nothing of it is tested, so a partial family is never read as the
registered one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _st

from selective_kd.errors import UserError

__all__ = ["Family", "families_markdown", "parse_families", "read_families", "teacher_level_markdown", "teacher_means"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ,.:_()+-]{0,79}$")  # shown in headings and table cells: no | ` or newline
MAX_FAMILIES, MAX_COMPARISONS = 32, 64
FIX = "write families: {family name: {label: [variant, reference], ...}, ...} (see study/r2/families-p3.yaml)"


@dataclass(frozen=True)
class Family:
    """One registered Holm family: labelled comparisons ``variant − reference``."""

    name: str
    comparisons: tuple[tuple[str, str, str], ...]  # (label, variant, reference)


def _name(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise UserError(f"{where}: {what} {value!r} must be a short name (letters, digits, space and , . : _ ( ) + -): {FIX}")
    return value


def parse_families(data: Any, where: str) -> list[Family]:
    """The families a parsed YAML mapping registers; anything malformed is a one-line :class:`UserError`."""
    if not isinstance(data, dict) or set(data) != {"families"} or not isinstance(data["families"], dict) or not data["families"]:
        raise UserError(f"{where} must hold one key, families, a mapping of family names: {FIX}")
    if len(data["families"]) > MAX_FAMILIES:
        raise UserError(f"{where} registers {len(data['families'])} families, more than {MAX_FAMILIES}: {FIX}")
    out = []
    for name, comps in data["families"].items():
        name = _name(name, "family name", where)
        if not isinstance(comps, dict) or not 0 < len(comps) <= MAX_COMPARISONS:
            raise UserError(f"{where}: family {name!r} must map 1-{MAX_COMPARISONS} labels to [variant, reference]: {FIX}")
        items = []
        for label, pair in comps.items():
            label = _name(str(label) if isinstance(label, int) else label, "label", where)
            if not (isinstance(pair, list) and len(pair) == 2):
                raise UserError(f"{where}: {name} {label} must be [variant, reference], got {pair!r}: {FIX}")
            a, b = (_name(x, "variant", where) for x in pair)
            if a == b:
                raise UserError(f"{where}: {name} {label} compares {a} with itself: name two variants")
            items.append((label, a, b))
        pairs = [frozenset(p[1:]) for p in items]
        if len(set(pairs)) < len(pairs):
            raise UserError(f"{where}: family {name!r} holds a comparison twice: keep one (Holm counts each test once)")
        out.append(Family(name, tuple(items)))
    return out


def read_families(path: Path) -> list[Family]:
    """``report --families FILE``: the registered families, read under the config files' bounds."""
    from selective_kd.yamlfile import read_yaml_mapping

    return parse_families(read_yaml_mapping(Path(path), "families file"), f"families file {path}")


def families_markdown(students: Sequence[Mapping[str, Any]], families: Sequence[Family], *, margin: float,
                      alpha: float = 0.05) -> str:
    """Per dataset, each registered family as one Holm family (nested tests, TOST, MDE), or why it waits."""
    from selective_kd.report.inference import analyse_protocol
    from selective_kd.report.stats_markdown import comparisons_markdown, md_cell

    datasets = list(dict.fromkeys(r.get("dataset") for r in students))
    out: list[str] = []
    for ds in datasets:
        part = [r for r in students if r.get("dataset") == ds]
        have = {str(r["model"]) for r in part}
        if len(datasets) > 1:
            out += [f"### {md_cell(ds)}", ""]
        for fam in families:
            out += [f"#### {md_cell(fam.name)} ({len(fam.comparisons)} comparisons, one Holm family)", ""]
            missing = sorted({v for _, a, b in fam.comparisons for v in (a, b)} - have)
            if missing:
                out += [f"Not tested yet: no runs of {', '.join(missing)} in this folder. A family is tested only whole, "
                        "as registered.", ""]
                continue
            results = analyse_protocol(part, [(a, b) for _, a, b in fam.comparisons], margin, alpha=alpha)
            body = comparisons_markdown(results, margin=margin, alpha=alpha, labels=[c[0] for c in fam.comparisons])
            out += [body.rstrip("\n"), ""]
    return "\n".join(out).rstrip("\n") + "\n" if out else ""


def teacher_means(students: Sequence[Mapping[str, Any]], metric: str = "val_acc",
                  confidence: float = 0.95) -> list[tuple[str, int, float, float, float]]:
    """Per model: (model, teachers, mean of its teacher-level means, t-interval low, high).

    The students of each (model, teacher) are averaged first, so a teacher with more
    seeds does not weigh more; the interval is Student's t over the teacher-level means
    (teachers − 1 df), ``nan`` below two teachers. Models with different teacher sets
    are not paired here: this is the descriptive ranking, the families hold the tests.
    """
    per: dict[str, dict[Any, list[float]]] = {}
    for r in students:
        per.setdefault(str(r["model"]), {}).setdefault(r.get("teacher_seed"), []).append(float(r[metric]))
    out = []
    for model, teachers in per.items():
        means = np.array([np.mean(v) for v in teachers.values()], dtype=float)
        n = int(means.size)
        mean = float(means.mean())
        if n > 1:
            half = float(_st.t.ppf(0.5 + confidence / 2, n - 1)) * float(means.std(ddof=1)) / math.sqrt(n)
            out.append((model, n, mean, mean - half, mean + half))
        else:
            out.append((model, n, mean, math.nan, math.nan))
    return out


def teacher_level_markdown(students: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> str:
    """The ranking table: per dataset, models by their mean of teacher-level means, with t intervals."""
    from selective_kd.report.stats_markdown import md_cell

    datasets = list(dict.fromkeys(r.get("dataset") for r in students))
    level = f"{confidence * 100:g}%"
    lines: list[str] = []
    for ds in datasets:
        rows = sorted(teacher_means([r for r in students if r.get("dataset") == ds], confidence=confidence),
                      key=lambda x: -x[2])
        if len(datasets) > 1:
            lines += [f"### {md_cell(ds)}", ""]
        lines += [f"| rank | model | teachers | val acc, mean of teacher means | {level} t interval |", "|---|---|---|---|---|"]
        for i, (model, n, mean, low, high) in enumerate(rows, 1):
            ci = "—" if math.isnan(low) else f"[{100 * low:.2f}, {100 * high:.2f}]"
            lines.append(f"| {i} | {md_cell(model)} | {n} | {100 * mean:.2f}% | {ci} |")
        lines.append("")
    lines.append(f"Each model's students averaged per teacher (`teacher_seed`), then over teachers; the {level} interval "
                 "is Student's t over the teacher-level means (teachers − 1 df). Models run on different teachers are not "
                 "paired here, so the order is descriptive; the registered families test the differences.")
    return "\n".join(lines) + "\n"
