"""Reporting: turn per-run results into tables, statistics and figures a reader can trust."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selective_kd.report.families import Family

FIGURE_LAMBDA = "figure_lambda.png"


def write_report(run_dirs: Sequence[Path], out: Path, curricula: Sequence[Path] | None = None,
                 written: list[Path] | None = None, margin: float | None = None,
                 families: Sequence[Family] | None = None, figures: bool = True) -> str:
    """results.md, results.csv, Figures 1 and 3 and the λ figure for the given run folders.

    Returns Table 2 as text, followed by any warning the tables carry (a selective-
    reliance student whose mean λ is near 0), so the terminal shows it too. The paths
    written are appended to ``written`` when given, so a caller names only the figures
    that exist (a folder without per-epoch metrics gets none). ``margin`` (an accuracy
    fraction declared in advance) adds the protocol-family section with equivalence
    tests and power (:func:`selective_kd.report.tables.results_markdown`); ``families``
    (registered in a study's plan, :mod:`selective_kd.report.families`) replaces that
    section's family with exactly those. ``curricula`` are the curriculum.csv files to draw as
    Figure 1; by default those beside the runs or under their grid's ``shared/`` that the
    students read (:func:`selective_kd.report.runs.find_curricula`). Every file is read
    and every table computed before the first write, so a damaged result, curriculum or
    a table that cannot be made leaves ``out`` as it was. ``figures=False`` writes the two
    tables only (drawing a study's figures takes most of a report's time).
    """
    from selective_kd.fileio import write_text
    from selective_kd.layout import FIGURE1, FIGURE3
    from selective_kd.report.figures import (
        plot_convergence,
        plot_curriculum,
        plot_lambda,
    )
    from selective_kd.report.runs import find_curricula, lambda_series, used_curricula
    from selective_kd.report.tables import collect_results, render_tables, row_name

    rows = collect_results(run_dirs)
    tables = render_tables(rows, margin, families)
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    convergence: list[tuple[Path, dict[str, list[Any]], str]] = []
    for dataset in datasets:
        curves: dict[str, list[Any]] = {}
        for r in rows:
            if r["kind"] == "student" and r["dataset"] == dataset and r["history"]:  # no metrics.jsonl: nothing to draw
                # comparing configurations: one line per run; otherwise one line (and seed band) per variant
                curves.setdefault(row_name(r) if r["compare"] else r["model"], []).append(r["history"])
        if curves:
            name = FIGURE3 if len(datasets) == 1 else f"figure3_convergence_{dataset}.png"
            convergence.append((out / name, curves, f"{dataset}: validation metrics per epoch"))
    lam = lambda_series(rows)
    if curricula is None:  # found beside the runs or in their grid: draw those the students read
        loaded = used_curricula(find_curricula(run_dirs), rows)
    else:
        loaded = used_curricula(list(map(Path, curricula)), [])
    names = [FIGURE1] if len(loaded) == 1 else [f"figure1_curriculum_{'-'.join(f.parent.parts[-2:])}.png" for f, _, _ in loaded]
    from selective_kd.report.noise import noise_markdown

    noise = noise_markdown(loaded)  # only when some curriculum knows flipped labels
    done: list[Path] = []
    write_text(out / "results.csv", tables.csv)
    write_text(out / "results.md", tables.markdown if noise is None else f"{tables.markdown.rstrip()}\n\n{noise}")
    done += [out / "results.md", out / "results.csv"]
    if not figures:
        convergence, lam, loaded = [], {}, []
    for path, curves, title in convergence:
        plot_convergence(curves, path, title=title)
        done.append(path)
    if lam:
        plot_lambda(lam, out / FIGURE_LAMBDA, title="λ per batch of the variants whose λ follows the batch")
        done.append(out / FIGURE_LAMBDA)
    for (_, cur, scorer), name in zip(loaded, names):
        plot_curriculum(cur, out / name, scorer=scorer)
        done.append(out / name)
    if written is not None:
        written += done
    return tables.text
