"""The paper's tables from run folders: Table 1 (teachers) and Table 2 (students).

One run folder holds one teacher and some students for one dataset and seed. Several
folders (datasets side by side, or seeds) are gathered into one table; with several
seeds per cell the statistics of ``report.stats`` and the paper's claims
(``report.claims``) are added. Folders holding the same dataset and seed are two
configurations to compare: their rows are labelled by run folder instead of being
mistaken for seeds, and no seed statistics are made. Every table ends with a note
saying what was averaged and how.
"""

from __future__ import annotations

import csv
import io
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selective_kd.distill.variants import PAPER_NAMES
from selective_kd.fileio import write_text
from selective_kd.report.families import Family, families_markdown, teacher_level_markdown
from selective_kd.report.claims import PAPER_CLAIMS, any_tested, claims_markdown, evaluate_claims
from selective_kd.report.runs import CSV_COLUMNS, collect_results, variant_rank
from selective_kd.report.stats import protocol_comparisons, stats_table
from selective_kd.report.stats_markdown import format_stats_markdown, protocol_family_markdown

__all__ = ["LOW_LAMBDA", "SELECTIVE_POLICIES", "Tables", "collect_results", "low_lambda_note", "render_tables", "row_name"]

LOW_LAMBDA = 0.05  # a selective-reliance student below this mean λ barely used its teacher
SELECTIVE_POLICIES = ("selective", "selective-sample", "selective-label")  # λ from the scorer's confidences
STATS_BASELINES = ("kd", "unguided")  # every variant is compared with these; with the claims, one Holm family


def row_name(r: dict[str, Any]) -> str:
    """A row's name in tables and figures: the paper's name, and the run when configurations are compared."""
    name = PAPER_NAMES.get(r["model"], r["model"])
    return f"{name} [{r['label']}]" if r.get("compare") else name


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def dedupe_teachers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A teacher shared by several run folders (grid, seeds) is counted once."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        key = (r["dataset"], r["val_acc"], r["val_loss"], r["epochs"])
        if r["kind"] == "teacher":
            if key in seen:
                continue
            seen.add(key)  # teachers only: a student with the same numbers is no copy of it
        out.append(r)
    return out


def _teacher_table(teachers: list[dict[str, Any]], compare: bool) -> list[str]:
    run_head, run_rule = ("run | ", "---|") if compare else ("", "")
    lines = ["## Table 1: teacher", "", f"| {run_head}dataset | model | init | seed | val acc | val loss | epochs |",
             f"|{run_rule}---|---|---|---|---|---|---|"]

    def order(r: dict[str, Any]) -> tuple[str, str, int]:  # several teachers (teacher seeds): in seed order
        return (str(r["label"]) if compare else "", str(r["dataset"]), r["seed"] if isinstance(r["seed"], int) else -1)

    for r in sorted(teachers, key=order):
        run_cell = f"{r['label']} | " if compare else ""
        model = f"assistant: {r['arch']}" if r["kind"] == "assistant" else r["arch"]
        lines.append(f"| {run_cell}{r['dataset']} | {model} | {r['init']} | {r['seed']} | {_pct(r['val_acc'])} | "
                     f"{r['val_loss']:.4f} | {r['epochs']} |")
    note = ("Validation accuracy and cross-entropy of each teacher at its last epoch: one training run per row "
            "(a grid trains one teacher per dataset and setting and shares it across seeds), nothing averaged.")
    if any(r["kind"] == "assistant" for r in teachers):
        note += " An assistant row is TAKD's teacher assistant, distilled from the teacher: one per run folder (seed)."
    return [*lines, "", note, ""]


def low_lambda_note(students: list[dict[str, Any]], threshold: float = LOW_LAMBDA) -> str | None:
    """One line when a selective-reliance student barely used its teacher (mean λ < ``threshold``).

    Why: a scorer that trained on the samples it scores is near-certain of almost all
    of them, so λ = (1 − C̄_b)/max C − s stays near 0 and "selective reliance" quietly
    becomes unguided training; the comparison would then test nothing.
    """
    cells: dict[tuple[Any, str], list[float]] = {}
    for r in students:
        if r.get("policy") in SELECTIVE_POLICIES and r.get("lam_mean") is not None:
            cells.setdefault((r["dataset"], row_name(r)), []).append(float(r["lam_mean"]))
    low = {k: sum(v) / len(v) for k, v in cells.items() if sum(v) / len(v) < threshold}
    if not low:
        return None
    several = len({d for d, _ in cells}) > 1
    names = ", ".join(f"{m}{f' on {d}' if several else ''} (mean λ {lam:.3f})" for (d, m), lam in low.items())
    return (f"**λ below {threshold:g}:** {names}: the scorer was near-certain of almost every sample (as a teacher is on "
            "data it trained on), so selective reliance gave the KD term almost no weight and these students trained "
            "nearly unguided; to test selective reliance, score with models that did not train on the samples "
            "(`curriculum.scorer: crossfit`) or train the teacher on a separate share of the data "
            "(`data.teacher_fraction`, e.g. 0.6).")


def _student_table(students: list[dict[str, Any]], compare: bool, split: bool) -> tuple[list[str], bool]:
    """Table 2 (Table 5 with a teacher split) and its notes; whether some cell has several seeds."""
    datasets = list(OrderedDict.fromkeys(r["dataset"] for r in students))
    runs_order = list(OrderedDict.fromkeys(r["run"] for r in students))
    ordered = sorted(students, key=lambda r: (variant_rank(r["model"]), runs_order.index(r["run"])) if compare else 0)
    models = list(OrderedDict.fromkeys(row_name(r) for r in ordered))
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in students:
        cells.setdefault((r["dataset"], row_name(r)), []).append(r)
    title = "## Table 5: students, teacher trained on a separate split" if split else "## Table 2: students"
    head = "| model | " + " | ".join(f"{d} val acc | {d} val loss | {d} epochs to 95%" for d in datasets) + " |"
    lines = [title, "", head, "|---|" + "---|---|---|" * len(datasets)]
    for m in models:
        cols = []
        for d in datasets:
            runs = cells.get((d, m), [])
            if not runs:
                cols += ["—", "—", "—"]
                continue
            acc = sum(r["val_acc"] for r in runs) / len(runs)
            loss = sum(r["val_loss"] for r in runs) / len(runs)
            e95 = sum(r["epochs_to_95"] for r in runs) / len(runs)
            cols += [_pct(acc), f"{loss:.4f}", f"{e95:.3g}"]
        lines.append(f"| {m} | " + " | ".join(cols) + " |")
    n_seeds = sorted({len(v) for v in cells.values()})
    seeds_text = "one seed" if n_seeds == [1] else f"arithmetic mean over {'-'.join(map(str, n_seeds))} seeds"
    if len({r.get("teacher_seed") for r in students}) > 1:  # nested: a cell's runs span teachers, not only seeds
        seeds_text = f"arithmetic mean over {'-'.join(map(str, n_seeds))} runs, students nested in teachers"
    if compare:
        seeds_text += "; [name]: the run folder, one configuration each"
    multi_seed = any(len(v) > 1 for v in cells.values())
    below = "; spreads, intervals and tests are in the statistics below" if multi_seed and not compare else ""
    note = (f"Validation accuracy and cross-entropy at the last epoch ({seeds_text}); epochs to 95%: first epoch whose "
            f"validation accuracy reaches 95% of the run's best (the convergence figure){', averaged the same way' if multi_seed else ''}"
            f"{below}.")
    lines += ["", note, ""]
    note = low_lambda_note(students)
    if note:
        lines += [note, ""]
    return lines, multi_seed


def _claims_section(students: list[dict[str, Any]]) -> list[str]:
    """The paper's findings against ours, per dataset; empty when no claim can be tested."""
    parts: list[tuple[Any, str]] = []
    datasets = list(OrderedDict.fromkeys(r["dataset"] for r in students))
    for d in datasets:
        per_model: dict[str, dict[Any, float]] = {}
        for r in students:
            if r["dataset"] == d:
                per_model.setdefault(r["model"], {})[r["seed"]] = float(r["val_acc"])
        # one Holm family per protocol: the claims with every comparison of the statistics tables
        results = evaluate_claims(per_model, family_pairs=protocol_comparisons(list(per_model), STATS_BASELINES))
        if any_tested(results):
            parts.append((d, claims_markdown(results)))
    if not parts:
        return []
    lines = ["## The paper's claims, side by side", ""]
    for d, md in parts:
        lines += [*([f"### {d}", ""] if len(datasets) > 1 else []), md.rstrip("\n"), ""]
    return lines


def results_markdown(rows: list[dict[str, Any]], margin: float | None = None,
                     families: Sequence[Family] | None = None) -> str:
    """Tables 1 and 2 (Table 5 heading when the teacher/student split is used), statistics, claims.

    With ``margin`` (an accuracy fraction declared in advance, ``report --margin`` in pp)
    a last section tests every comparison of each protocol as one Holm family, on
    teacher-level means when students are nested in several teachers, with TOST against
    ±margin and each comparison's minimum detectable effect (``report.inference``).
    With ``families`` (a study's registered comparisons, ``report --families``) that
    section tests exactly those families instead, and with several teachers a ranking
    table of teacher-level means comes first (``report.families``).
    """
    teachers = [r for r in rows if r["kind"] in ("teacher", "assistant")]  # TAKD's assistant beside its teacher
    students = [r for r in rows if r["kind"] == "student"]
    split = any(r["teacher_fraction"] for r in rows)
    compare = any(r.get("compare") for r in rows)
    lines: list[str] = _teacher_table(teachers, compare) if teachers else []
    if students:
        table, multi_seed = _student_table(students, compare, split)
        lines += table
        teachers_per_dataset = {d: {r.get("teacher_seed") for r in students if r["dataset"] == d}
                                for d in {r["dataset"] for r in students}}
        nested = max(map(len, teachers_per_dataset.values())) > 1
        if nested:  # the per-seed tests below pair seeds under one teacher: they would pool teachers as seeds
            lines += [f"Students are nested in {max(map(len, teachers_per_dataset.values()))} teachers (`teacher_seed`): "
                      "the per-seed statistics and claims, which assume one teacher, are left out; "
                      "`selective-kd report --margin PP` tests every comparison on teacher-level means.", ""]
        if multi_seed and not compare and not nested:
            for metric in ("val_acc", "val_loss"):
                acc = metric == "val_acc"
                stats = stats_table(students, metric=metric, bounds=(0.0, 1.0) if acc else None,
                                    means_of=("lam_mean",) if acc else (), baselines=STATS_BASELINES, family="protocol",
                                    extra_pairs=[(c.variant, c.reference) for c in PAPER_CLAIMS])
                body = format_stats_markdown(stats, metric=metric, percent=acc).rstrip("\n")
                lines += [f"## Statistics over seeds: {metric}", "", body, ""]
            lines += _claims_section(students)
        if nested and not compare:
            lines += ["## Teacher-level means (val_acc)", "", teacher_level_markdown(students).rstrip("\n"), ""]
        if margin is not None and families is not None and not compare:
            body = families_markdown(students, families, margin=margin)
            if body:
                lines += ["## Registered families: tests, equivalence and power (val_acc)", "", body.rstrip("\n"), ""]
        elif margin is not None and multi_seed and not compare:
            body = protocol_family_markdown(students, margin=margin, extra=[(c.variant, c.reference) for c in PAPER_CLAIMS])
            if body:
                lines += ["## One family per protocol: equivalence and power (val_acc)", "", body.rstrip("\n"), ""]
    return "\n".join(lines)


def results_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def student_table_text(rows: list[dict[str, Any]]) -> str:
    """Table 2 as plain text for the terminal."""
    students = [r for r in rows if r["kind"] == "student"]
    width = max([20, *(len(row_name(r)) for r in students)])
    ds_width = max([9, *(len(str(r["dataset"])) for r in students)])  # 'fashion-mnist' is wider than 'dataset'
    out = [f"{'model':<{width}} {'dataset':<{ds_width}} {'seed':>4} {'val_acc':>8} {'val_loss':>9} {'ep→95%':>7}"]
    for r in students:
        out.append(f"{row_name(r):<{width}} {r['dataset']!s:<{ds_width}} {r['seed']!s:>4} "
                   f"{_pct(r['val_acc']):>8} {r['val_loss']:>9.4f} {r['epochs_to_95']:>7}")
    return "\n".join(out)


@dataclass(frozen=True)
class Tables:
    """Everything the tables write, computed before any file is touched."""

    csv: str
    markdown: str
    text: str  # Table 2 for the terminal


def terminal_warnings(rows: list[dict[str, Any]]) -> list[str]:
    """The tables' warnings as plain lines for the terminal (the low-λ note), so a user sees them without results.md."""
    note = low_lambda_note([r for r in rows if r["kind"] == "student"])
    return [] if note is None else ["warning: " + note.replace("**", "").replace("`", "")]


def render_tables(rows: list[dict[str, Any]], margin: float | None = None,
                  families: Sequence[Family] | None = None) -> Tables:
    rows = dedupe_teachers(rows)
    text = "\n".join([student_table_text(rows), *terminal_warnings(rows)])
    return Tables(results_csv(rows), "# Results\n\n" + results_markdown(rows, margin, families) + "\n", text)


def write_tables(rows: list[dict[str, Any]], out: Path) -> str:
    """results.csv and results.md under ``out``; returns Table 2 as text."""
    tables = render_tables(rows)
    write_text(out / "results.csv", tables.csv)
    write_text(out / "results.md", tables.markdown)
    return tables.text
