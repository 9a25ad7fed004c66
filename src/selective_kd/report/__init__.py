"""Reporting: turn per-run results into tables and statistics a reader can trust."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_report(run_dirs: Sequence[Path], out: Path) -> str:
    """results.md, results.csv and Figure 3 for the given run folders; returns Table 2 as text."""
    from selective_kd.report.figures import plot_convergence
    from selective_kd.report.tables import collect_results, write_tables

    rows = collect_results(run_dirs)
    text = write_tables(rows, out)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        curves: dict[str, list] = {}
        for r in rows:
            if r["kind"] == "student" and r["dataset"] == dataset:
                curves.setdefault(r["model"], []).append(r["history"])
        if curves:
            name = "figure3_convergence.png" if len({r["dataset"] for r in rows}) == 1 else f"figure3_convergence_{dataset}.png"
            plot_convergence(curves, out / name, title=f"{dataset}: validation metrics per epoch")
    return text
