"""The paper's tables from run folders: Table 1 (teachers) and Table 2 (students).

One run folder holds one teacher and up to six students for one dataset and seed.
Several folders (datasets side by side, or seeds) are gathered into one table; with
several seeds per cell the statistics of ``report.stats`` are added.
"""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selective_kd.errors import UserError
from selective_kd.experiments.variants import PAPER_NAMES
from selective_kd.fileio import read_jsonl, write_text
from selective_kd.report.stats import format_stats_markdown, stats_table

CSV_COLUMNS = ["model", "dataset", "seed", "run", "arch", "init", "val_acc", "val_loss", "best_val_acc", "epochs_to_95", "epochs", "seconds"]


def collect_results(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per finished model (teacher or student) found under the given run folders."""
    rows: list[dict[str, Any]] = []
    for run in run_dirs:
        run = Path(run)
        if not run.is_dir():
            raise UserError(f"run folder {run} not found: pass folders written by `selective-kd run` (e.g. runs/digits)")
        students = sorted((run / "students").glob("*/result.json"), key=lambda p: _variant_rank(p.parent.name))
        found = [run / "teacher" / "result.json", *students]
        found = [p for p in found if p.exists()]
        if not found:
            raise UserError(f"{run} holds no finished stage (no teacher/result.json or students/*/result.json)")
        for p in found:
            r = json.loads(p.read_text())
            ident = r.get("identity", {})
            metrics = p.parent / "metrics.jsonl"
            rows.append({
                **{k: r.get(k) for k in CSV_COLUMNS},
                "dataset": ident.get("data", {}).get("dataset"),
                "seed": ident.get("seed"),
                "run": str(run),
                "history": read_jsonl(metrics) if metrics.exists() else [],
                "kind": "teacher" if r.get("model") == "teacher" else "student",
                "init": f"pretrained ({Path(r['pretrained']).name})" if r.get("pretrained") else "from scratch",
                "teacher_fraction": ident.get("data", {}).get("teacher_fraction"),
            })
    return rows


def _variant_rank(name: str) -> tuple[int, str]:
    """The paper's variants in the paper's order, custom ones after them by name."""
    order = list(PAPER_NAMES)
    return (order.index(name), "") if name in order else (len(order), name)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _dedupe_teachers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A teacher shared by several run folders (grid, seeds) is counted once."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for r in rows:
        key = (r["dataset"], r["val_acc"], r["val_loss"], r["epochs"])
        if r["kind"] == "teacher" and key in seen:
            continue
        seen.add(key)
        out.append(r)
    return out


def results_markdown(rows: list[dict[str, Any]]) -> str:
    """Tables 1 and 2 (Table 5 heading when the teacher/student split is used)."""
    teachers = [r for r in rows if r["kind"] == "teacher"]
    students = [r for r in rows if r["kind"] == "student"]
    split = any(r["teacher_fraction"] for r in rows)
    lines: list[str] = []
    if teachers:
        lines += ["## Table 1: teacher", "", "| dataset | model | init | seed | val acc | val loss | epochs |", "|---|---|---|---|---|---|---|"]
        for r in teachers:
            lines.append(f"| {r['dataset']} | {r['arch']} | {r['init']} | {r['seed']} | {_pct(r['val_acc'])} | {r['val_loss']:.4f} | {r['epochs']} |")
        lines.append("")
    if students:
        datasets = list(OrderedDict.fromkeys(r["dataset"] for r in students))
        models = list(OrderedDict.fromkeys(r["model"] for r in students))
        cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in students:
            cells.setdefault((r["dataset"], r["model"]), []).append(r)
        multi_seed = any(len(v) > 1 for v in cells.values())
        title = "## Table 5: students, teacher trained on a separate split" if split else "## Table 2: students"
        head = "| model | " + " | ".join(f"{d} val acc | {d} val loss | {d} epochs to 95%" for d in datasets) + " |"
        lines += [title, "", head, "|---|" + "---|---|---|" * len(datasets)]
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
                cols += [_pct(acc), f"{loss:.4f}", f"{e95:g}"]
            lines.append(f"| {PAPER_NAMES.get(m, m)} | " + " | ".join(cols) + " |")
        n_seeds = sorted({len(v) for v in cells.values()})
        seeds_text = "one seed" if n_seeds == [1] else f"mean over {'-'.join(map(str, n_seeds))} seeds"
        lines += [
            "",
            f"Validation accuracy and cross-entropy at the last epoch ({seeds_text}); epochs to 95%: first epoch "
            "whose validation accuracy reaches 95% of the run's best (the convergence figure).",
            "",
        ]
        if multi_seed:
            for metric in ("val_acc", "val_loss"):
                table = stats_table(students, metric=metric)
                lines += [f"## Statistics over seeds: {metric}", "", format_stats_markdown(table, metric=metric, percent=metric == "val_acc"), ""]
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
    out = [f"{'model':<20} {'dataset':<9} {'seed':>4} {'val_acc':>8} {'val_loss':>9} {'ep→95%':>7}"]
    for r in rows:
        if r["kind"] == "student":
            out.append(f"{PAPER_NAMES.get(r['model'], r['model']):<20} {r['dataset']:<9} {r['seed']:>4} "
                       f"{_pct(r['val_acc']):>8} {r['val_loss']:>9.4f} {r['epochs_to_95']:>7}")
    return "\n".join(out)


def write_tables(rows: list[dict[str, Any]], out: Path) -> str:
    rows = _dedupe_teachers(rows)
    write_text(out / "results.csv", results_csv(rows))
    write_text(out / "results.md", "# Results\n\n" + results_markdown(rows) + "\n")
    return student_table_text(rows)
