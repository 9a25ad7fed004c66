"""Reporting: turn per-run results into tables and statistics a reader can trust."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def write_report(run_dirs: Sequence[Path], out: Path) -> str:
    """results.md, results.csv and Figure 3 for the given run folders; returns Table 2 as text.

    Every file is read and every table computed before the first write, so a damaged
    result or a table that cannot be made leaves ``out`` as it was.
    """
    from selective_kd.fileio import write_text
    from selective_kd.report.figures import plot_convergence
    from selective_kd.report.tables import collect_results, render_tables, row_name

    rows = collect_results(run_dirs)
    tables = render_tables(rows)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    figures: list[tuple[Path, dict[str, list[Any]], str]] = []
    for dataset in datasets:
        curves: dict[str, list[Any]] = {}
        for r in rows:
            if r["kind"] == "student" and r["dataset"] == dataset:
                # comparing configurations: one line per run; otherwise one line (and seed band) per variant
                curves.setdefault(row_name(r) if r["compare"] else r["model"], []).append(r["history"])
        if curves:
            name = "figure3_convergence.png" if len(datasets) == 1 else f"figure3_convergence_{dataset}.png"
            figures.append((out / name, curves, f"{dataset}: validation metrics per epoch"))
    write_text(out / "results.csv", tables.csv)
    write_text(out / "results.md", tables.markdown)
    for path, curves, title in figures:
        plot_convergence(curves, path, title=title)
    return tables.text
