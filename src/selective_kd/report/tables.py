"""The paper's tables from run folders: Table 1 (teachers) and Table 2 (students).

One run folder holds one teacher and up to six students for one dataset and seed.
Several folders (datasets side by side, or seeds) are gathered into one table; with
several seeds per cell the statistics of ``report.stats`` are added. Folders holding the
same dataset and seed are two configurations to compare: their rows are labelled by run
folder instead of being mistaken for seeds.

Every result.json and metrics.jsonl is checked while it is read, so a damaged file is a
one-line error naming it, before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selective_kd.errors import UserError
from selective_kd.experiments.variants import PAPER_NAMES
from selective_kd.fileio import read_jsonl, write_text
from selective_kd.report.stats import format_stats_markdown, stats_table

CSV_COLUMNS = ["model", "dataset", "seed", "run", "arch", "init", "val_acc", "val_loss", "best_val_acc", "epochs_to_95", "epochs", "seconds"]


def collect_results(run_dirs: Sequence[Path]) -> list[dict[str, Any]]:
    """One row per finished model (teacher or student) found under the given run folders.

    Each row carries ``run`` (the folder) and ``label`` (its shortest unique name) so rows
    of several configurations stay apart; ``compare`` marks those that need the label.
    """
    rows: list[dict[str, Any]] = []
    runs = [Path(r) for r in run_dirs]
    labels = run_labels(runs)
    for run in runs:
        if not run.is_dir():
            raise UserError(f"run folder {run} not found: pass folders written by `selective-kd run` (e.g. runs/digits)")
        students = sorted((run / "students").glob("*/result.json"), key=lambda p: _variant_rank(p.parent.name))
        found = [run / "teacher" / "result.json", *students]
        found = [p for p in found if p.exists()]
        if not found:
            raise UserError(f"{run} holds no finished stage (no teacher/result.json or students/*/result.json)")
        for p in found:
            r = read_result(p, run)
            ident = r.get("identity") if isinstance(r.get("identity"), dict) else {}
            data = ident.get("data") if isinstance(ident.get("data"), dict) else {}
            rows.append({
                **{k: r.get(k) for k in CSV_COLUMNS},
                "dataset": data.get("dataset"),
                "seed": ident.get("seed"),
                "run": str(run),
                "label": labels[run],
                "history": read_history(p.parent / "metrics.jsonl", run),
                "kind": "teacher" if r.get("model") == "teacher" else "student",
                "init": f"pretrained ({Path(r['pretrained']).name})" if r.get("pretrained") else "from scratch",
                "teacher_fraction": data.get("teacher_fraction"),
            })
    compare = _configurations_to_compare(rows)
    for r in rows:
        r["compare"] = compare
    return rows


def run_labels(runs: Sequence[Path]) -> dict[Path, str]:
    """Each run folder's shortest unique trailing path (``digits``, or ``a/digits`` beside ``b/digits``)."""
    labels: dict[Path, str] = {}
    for run in runs:
        parts = run.resolve().parts
        for k in range(1, len(parts) + 1):
            label = "/".join(parts[-k:])
            others = [o.resolve().parts for o in runs if o.resolve() != run.resolve()]
            if all("/".join(o[-k:]) != label for o in others):
                break
        labels[run] = label
    return labels


def _configurations_to_compare(rows: list[dict[str, Any]]) -> bool:
    """True when two folders hold the same (dataset, model, seed): configurations, not seeds."""
    seen: dict[tuple[Any, ...], str] = {}
    for r in rows:
        key = (r["dataset"], r["kind"], r["model"], r["seed"])
        if r["kind"] == "student" and seen.setdefault(key, r["run"]) != r["run"]:
            return True
    return False


def _stage_fix(path: Path, run: Path) -> str:
    return f"delete {path.parent} and run that stage again (e.g. `selective-kd run --out {run}` with the same settings)"


_NUMBERS = {"teacher": ("val_acc", "val_loss", "epochs"), "student": ("val_acc", "val_loss", "epochs", "epochs_to_95")}


def read_result(path: Path, run: Path) -> dict[str, Any]:
    """A stage's result.json with the keys the tables read; anything else is one line saying what to do."""
    try:
        r = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} is corrupt or cut short ({exc.__class__.__name__}): {_stage_fix(path, run)}") from None
    if not isinstance(r, dict):
        raise UserError(f"{path} holds a JSON {type(r).__name__}, not a stage result: {_stage_fix(path, run)}")
    if not isinstance(r.get("model"), str):
        raise UserError(f"{path} lacks 'model' (the stage's name): {_stage_fix(path, run)}")
    for key in _NUMBERS["teacher" if r["model"] == "teacher" else "student"]:
        if key not in r:
            raise UserError(f"{path} lacks {key!r}: {_stage_fix(path, run)}")
        value = r[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (key != "val_loss" and not math.isfinite(value)):
            raise UserError(f"{path}: {key!r} is {value!r}, not a number: {_stage_fix(path, run)}")
    if not 0 <= r["val_acc"] <= 1:
        raise UserError(f"{path}: 'val_acc' is {r['val_acc']!r}, not a fraction in [0, 1]: {_stage_fix(path, run)}")
    return r


def read_history(path: Path, run: Path) -> list[dict[str, Any]]:
    """A stage's metrics.jsonl for Figure 3 (``[]`` when absent); a damaged one is one line."""
    if not path.exists():
        return []
    try:
        history = read_jsonl(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{path} is corrupt or cut short ({exc.__class__.__name__}): {_stage_fix(path, run)}") from None
    for h in history:
        if not isinstance(h, dict) or not all(
            isinstance(h.get(k), (int, float)) and not isinstance(h.get(k), bool) for k in ("epoch", "val_acc", "val_loss")
        ):
            raise UserError(f"{path} has a line without numeric epoch, val_acc and val_loss: {_stage_fix(path, run)}")
    return history


def row_name(r: dict[str, Any]) -> str:
    """A row's name in tables and figures: the paper's name, and the run when configurations are compared."""
    name = PAPER_NAMES.get(r["model"], r["model"])
    return f"{name} [{r['label']}]" if r.get("compare") else name


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
    compare = any(r.get("compare") for r in rows)
    if teachers:
        run_head, run_rule = ("run | ", "---|") if compare else ("", "")
        lines += ["## Table 1: teacher", "", f"| {run_head}dataset | model | init | seed | val acc | val loss | epochs |",
                  f"|{run_rule}---|---|---|---|---|---|---|"]
        for r in teachers:
            run_cell = f"{r['label']} | " if compare else ""
            lines.append(f"| {run_cell}{r['dataset']} | {r['arch']} | {r['init']} | {r['seed']} | {_pct(r['val_acc'])} | "
                         f"{r['val_loss']:.4f} | {r['epochs']} |")
        lines.append("")
    if students:
        datasets = list(OrderedDict.fromkeys(r["dataset"] for r in students))
        runs_order = list(OrderedDict.fromkeys(r["run"] for r in students))
        ordered = sorted(students, key=lambda r: (_variant_rank(r["model"]), runs_order.index(r["run"])) if compare else 0)
        models = list(OrderedDict.fromkeys(row_name(r) for r in ordered))
        cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in students:
            cells.setdefault((r["dataset"], row_name(r)), []).append(r)
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
            lines.append(f"| {m} | " + " | ".join(cols) + " |")
        n_seeds = sorted({len(v) for v in cells.values()})
        seeds_text = "one seed" if n_seeds == [1] else f"mean over {'-'.join(map(str, n_seeds))} seeds"
        if compare:
            seeds_text += "; [name]: the run folder, one configuration each"
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
    students = [r for r in rows if r["kind"] == "student"]
    width = max([20, *(len(row_name(r)) for r in students)])
    out = [f"{'model':<{width}} {'dataset':<9} {'seed':>4} {'val_acc':>8} {'val_loss':>9} {'ep→95%':>7}"]
    for r in students:
        out.append(f"{row_name(r):<{width}} {r['dataset']!s:<9} {r['seed']!s:>4} "
                   f"{_pct(r['val_acc']):>8} {r['val_loss']:>9.4f} {r['epochs_to_95']:>7}")
    return "\n".join(out)


@dataclass(frozen=True)
class Tables:
    """Everything the tables write, computed before any file is touched."""

    csv: str
    markdown: str
    text: str  # Table 2 for the terminal


def render_tables(rows: list[dict[str, Any]]) -> Tables:
    rows = _dedupe_teachers(rows)
    return Tables(results_csv(rows), "# Results\n\n" + results_markdown(rows) + "\n", student_table_text(rows))


def write_tables(rows: list[dict[str, Any]], out: Path) -> str:
    """results.csv and results.md under ``out``; returns Table 2 as text."""
    tables = render_tables(rows)
    write_text(out / "results.csv", tables.csv)
    write_text(out / "results.md", tables.markdown)
    return tables.text
