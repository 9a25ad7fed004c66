"""A study's cells side by side: ``report CELL... --cells --margin PP --families FILE``.

Each folder is one cell of a study (round 2: a regime × protocol grid folder) and keeps its
own ``results.md`` with every table in full. What a reader of the study needs first is the
registered comparisons across cells: per family, one row per comparison and one column per
cell, each entry the teacher-level mean difference, its 95% interval and the decision of
that cell's own Holm family (as in :func:`selective_kd.report.families.families_markdown`,
the same numbers). Below it, each variant's mean of teacher-level means per cell (the
ranking the plan reads), the teachers' own accuracy, and, under label noise, how well the
curricula find the flipped labels. Nothing here is computed that the cell's own report does
not compute; the summary only lays it out, so a verdict can be read off one page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from selective_kd.report.families import Family, teacher_means
from selective_kd.report.inference import Comparison, analyse_protocol
from selective_kd.report.stats_markdown import md_cell
from selective_kd.report.tables import dedupe_teachers

__all__ = ["SHORT", "SOURCES", "cells_markdown", "evaluated_on"]

SHORT = {"better": "**better**", "worse": "**worse**", "equivalent within ±m": "equivalent", "inconclusive": "inconclusive",
         "better, and equivalent within ±m": "**better**, and equivalent", "worse, and equivalent within ±m": "**worse**, and equivalent"}


def _cell_rows(folder: Path) -> list[dict[str, Any]]:
    from selective_kd.report.runs import collect_results, find_run_dirs

    return collect_results(find_run_dirs([folder]))


def _family_results(students: list[dict[str, Any]], fam: Family, margin: float) -> list[Comparison] | None:
    """The family as its cell tests it, or None while a variant it names has no runs there."""
    have = {str(r["model"]) for r in students}
    if any(v not in have for _, a, b in fam.comparisons for v in (a, b)):
        return None
    return analyse_protocol(students, [(a, b) for _, a, b in fam.comparisons], margin)


def _entry(c: Comparison) -> str:
    k = len(c.unpaired_teachers)
    n = f"n {c.n}" + (f"; {k} teacher{'s' if k > 1 else ''} ran only one" if k else "")
    if math.isnan(c.ci_low):
        return f"{100 * c.mean_diff:+.2f} ({n}) {SHORT.get(c.decision, c.decision)}"
    return f"{100 * c.mean_diff:+.2f} [{100 * c.ci_low:+.2f}, {100 * c.ci_high:+.2f}] ({n}) {SHORT.get(c.decision, c.decision)}"


def _noise(folder: Path, rows: list[dict[str, Any]]) -> str:
    from selective_kd.report.noise import noise_auroc
    from selective_kd.report.runs import find_curricula, find_run_dirs, used_curricula

    aucs = [a for _, cur, _ in used_curricula(find_curricula(find_run_dirs([folder])), rows) if (a := noise_auroc(cur)) is not None]
    if not aucs:
        return "—"
    return f"{np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f} ({len(aucs)})" if len(aucs) > 1 else f"{aucs[0]:.3f} (1)"


SOURCES = {"test": "the official test set (`data.val_source: test`)",
           "split": "a stratified split held out of the training data (`data.val_source: split`)",
           "auto": "the dataset's official test set where it has one, else a split held out of the training data "
                   "(`data.val_source: auto`)"}


def evaluated_on(rows: Sequence[dict[str, Any]]) -> str:
    """Where every ``val_acc`` on the page was measured, from the runs' own identities.

    The toolkit calls the evaluation set "val" whatever it is; a study that evaluates on
    the official test set (round 2) must say so, or its tables read as validation numbers.
    """
    found = sorted({str(r.get("val_source")) for r in rows})
    return "; ".join(SOURCES.get(s, "an evaluation set the runs do not record" if s == "None" else f"`data.val_source: {s}`")
                     for s in found) or "—"


def cells_markdown(folders: Sequence[Path], families: Sequence[Family], *, margin: float, names: Sequence[str] | None = None) -> str:
    """summary.md: the registered families across cells, then per-cell means, teachers and noise detection."""
    names = list(names) if names is not None else [Path(f).name for f in folders]
    rows = [dedupe_teachers(_cell_rows(Path(f))) for f in folders]  # a grid's shared teacher once
    students = [[r for r in part if r["kind"] == "student"] for part in rows]
    head = "| " + " | ".join(md_cell(n) for n in names) + " |"
    rule = "|---" * len(names) + "|"
    pp = f"±{100 * margin:g} pp"
    lines = ["# Study summary: the registered comparisons across cells", "",
             f"Cells: {', '.join(f'`{Path(f).as_posix()}`' for f in folders)}. Each cell's `results.md` has every table in "
             f"full; this page lays the same numbers side by side (`selective-kd report CELL... --cells --margin "
             f"{100 * margin:g} --families FILE`). Every accuracy on this page (val acc, `val_acc`) is measured on "
             f"{evaluated_on([r for part in rows for r in part])}.", ""]
    for fam in families:
        per_cell = [_family_results(s, fam, margin) for s in students]
        lines += [f"## {md_cell(fam.name)}", "", "| comparison " + head, "|---" + rule]
        for i, (label, a, b) in enumerate(fam.comparisons):
            entries = ["not run yet" if res is None else _entry(res[i]) for res in per_cell]
            lines.append(f"| {md_cell(label)}: {md_cell(a)} − {md_cell(b)} | " + " | ".join(entries) + " |")
        lines += ["", f"Δ in pp: variant − reference, mean of the teacher-level differences (n teachers), its 95% "
                  f"Student-t interval, and the decision of the cell's own Holm family of {len(fam.comparisons)} "
                  f"(better / worse at Holm p < 0.05, \"and equivalent\" when Holm-adjusted TOST within {pp} holds too; "
                  f"else equivalent within {pp} by Holm-adjusted TOST; else inconclusive). \"k teachers ran only one\": "
                  "teachers with one of the two variants, left out of n. p-values, TOST p, sd and minimum detectable "
                  "effects: each cell's results.md. A cell where a variant of the family has not run yet tests none of "
                  "it.", ""]
    variants = list(dict.fromkeys(str(r["model"]) for s in students for r in s))
    means = [{m: (n, mean, lo, hi) for m, n, mean, lo, hi in teacher_means(s)} for s in students]
    lines += ["## Mean of teacher-level means (val_acc)", "", "| variant " + head, "|---" + rule]
    for v in variants:
        cells = []
        for cell in means:
            if v not in cell:
                cells.append("—")
                continue
            n, mean, lo, hi = cell[v]
            cells.append(f"{100 * mean:.2f}" + ("" if math.isnan(lo) else f" [{100 * lo:.2f}, {100 * hi:.2f}]") + f" ({n})")
        lines.append(f"| {md_cell(v)} | " + " | ".join(cells) + " |")
    lines += ["", "Each variant's students averaged per teacher, then over teachers (n), with the 95% t interval over "
              "teachers; variants run on different teachers (the plan's Tier B: teachers 0-3) are not paired here.", ""]
    teacher_cells = []
    for part in rows:
        acc = [float(r["val_acc"]) for r in part if r["kind"] == "teacher"]
        teacher_cells.append("—" if not acc else f"{100 * np.mean(acc):.2f} ± {100 * np.std(acc, ddof=1):.2f} ({len(acc)})"
                             if len(acc) > 1 else f"{100 * acc[0]:.2f} (1)")
    lines += ["## Teachers and noise detection", "", "| quantity " + head, "|---" + rule,
              "| teacher accuracy, mean ± sd (teachers) | " + " | ".join(teacher_cells) + " |",
              "| AUROC of the curriculum at finding flipped labels, mean ± sd (curricula) | "
              + " | ".join(_noise(Path(f), part) for f, part in zip(folders, rows)) + " |", "",
              "Teacher accuracy: each teacher's own accuracy at its last epoch, on the set named at the top of this "
              "page, mean and sample sd over the cell's teachers. AUROC: as in each cell's label-noise section; — where no label was flipped.", ""]
    return "\n".join(lines)
