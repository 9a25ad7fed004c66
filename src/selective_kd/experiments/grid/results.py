"""What a grid call leaves: ``grid.json``, the report of the runs finished as asked, the exit status.

The report covers only runs whose result matches this call's settings (done now, or
skipped as finished earlier with the same request); a run folder that still holds a
result of other settings is left out of it, so old numbers never pass for new ones.
Several sweep values cannot share one table (each (dataset, model) cell would hold a
seed several times), so each gets its own report under ``OUT/sweeps/<tag>/`` and
``OUT/results.md``/``results.csv`` gather them under their tag.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

from selective_kd.experiments.grid.jobs import LOGS, Grid, Job
from selective_kd.experiments.grid.ledger import FINISHED, Ledger
from selective_kd.experiments.grid.schedule import Record
from selective_kd.experiments.grid.spec import GridSpec
from selective_kd.fileio import write_text
from selective_kd.layout import RESULTS_CSV, RESULTS_MD

GRID_FILE, SWEEPS = "grid.json", "sweeps"
FINISHED_STATES = ("done", "skipped")


def relative_to_grid(path: str | Path, grid_out: Path) -> str:
    """``path`` relative to the grid folder, with ``/`` separators, as grid.json records it.

    Why: a grid folder is copied (into ``study/``, into a clean clone); absolute paths
    would name the machine that ran it. A path outside the grid folder stays absolute.
    """
    p = Path(path)
    try:
        return p.resolve().relative_to(grid_out.resolve()).as_posix()
    except ValueError:
        return os.fspath(p)


def grid_summary(grid: Grid, records: dict[str, Record], spec: GridSpec, ledger: Ledger) -> dict[str, Any]:
    """The content of grid.json: every job of this call, and the ledger of all finished requests.

    ``folder`` and ``log`` are relative to the grid folder (``"out": "."``);
    :func:`selective_kd.report.runs.grid_run_results` also reads the absolute ones of older files.
    """
    def entry(job: Job) -> dict[str, Any]:
        r = records[job.id]
        return {"id": job.id, "kind": job.kind, "dataset": job.dataset, "seed": job.seed, "variant": job.variant,
                "sweep": job.sweep, "status": r.status, "attempts": r.attempts, "seconds": round(r.seconds, 3),
                "folder": relative_to_grid(job.out, grid.out), "log": relative_to_grid(r.log or job.log, grid.out),
                "error": r.error or None, "refused": r.user_error, **({"found": True} if r.found else {}),
                "request": job.request(), **({"shared": job.needs} if job.kind == "student" else {"needs": job.needs})}

    return {
        "out": ".", "datasets": spec.datasets, "seeds": spec.seeds, "variants": spec.variants,
        "sweeps": spec.sweeps, "runs": [entry(j) for j in grid.students], "shared": [entry(j) for j in grid.shared],
        FINISHED: ledger,
    }


def finish(grid: Grid, records: dict[str, Record], out: Path, grid_file: Path) -> int:
    """Print the student table, where the files are, one line per job not finished and a summary; the exit status.

    0 when every job finished; 2 when every job that did not is one the user must fix
    (refused: a folder holding other settings; a damaged file: retrying cannot help); 1 otherwise.
    """
    written: list[Path] = []
    table = write_results(grid, records, out, written)
    if table is not None:
        print(table)
        figures = ", ".join(os.path.relpath(p, out) for p in written if p.suffix == ".png") or "none (no per-epoch metrics to draw)"
        print(f"\nwritten: {out / RESULTS_MD}, {out / RESULTS_CSV}, {grid_file}; figures: {figures}; logs in {out / LOGS}")
    else:  # a results.md already there is an earlier call's: say so rather than let it pass for this one
        held = any(records[j.id].status in FINISHED_STATES for j in grid.students)
        why = "the run folders of those that did also hold results of other settings" if held else "see the lines below"
        print(f"no run finished with these settings ({why}); no report written, any {RESULTS_MD} in {out} is from "
              f"an earlier call; see {grid_file} and the logs in {out / LOGS}")
    unfinished = [j for j in grid.jobs() if records[j.id].status in ("failed", "refused")]
    for job in unfinished:  # one line per job; the progress lines did not repeat them
        r = records[job.id]
        tries = f" after {r.attempts} attempt(s)" if r.attempts else ""
        print(f"{r.status}: {job.id}{tries}: {r.error} (log: {r.log or job.log})", file=sys.stderr)
    print(summary_line(grid, records), file=sys.stderr)
    if not unfinished:
        return 0
    return 2 if all(records[j.id].user_error for j in unfinished) else 1


def summary_line(grid: Grid, records: dict[str, Record]) -> str:
    """``grid: 12 jobs: 0 trained, 12 skipped, 0 refused, 0 failed`` (and ``N not needed`` when some were)."""
    statuses = [records[j.id].status for j in grid.jobs()]
    counts = {s: statuses.count(s) for s in ("done", "skipped", "refused", "failed", "unused")}
    found = sum(1 for j in grid.jobs() if records[j.id].status == "done" and records[j.id].found)
    unused = f", {counts['unused']} not needed" if counts["unused"] else ""
    reused = f", {found} found finished in their folders (not trained again)" if found else ""
    return (f"grid: {len(statuses)} jobs: {counts['done'] - found} trained, {counts['skipped']} skipped (finished earlier "
            f"with these settings), {counts['refused']} refused, {counts['failed']} failed{unused}{reused}")


def _report_groups(grid: Grid, records: dict[str, Record]) -> dict[str, list[Path]]:
    """Sweep tag -> the run and teacher folders whose results match this call, in grid order."""
    stale = {j.out for j in grid.students
             if records[j.id].status not in FINISHED_STATES and (f := j.result_file()) is not None and f.exists()}
    teachers = {j.teacher_dir: Path(j.out) for j in grid.shared if j.kind == "teacher" and records[j.id].status in FINISHED_STATES}
    groups: dict[str, list[Path]] = {}
    for job in grid.students:
        folders = groups.setdefault(job.tag, [])
        if records[job.id].status not in FINISHED_STATES or job.out in stale:
            continue
        for folder in (Path(job.out), teachers.get(job.teacher_dir) if job.needs else None):
            if folder is not None and folder not in folders:
                folders.append(folder)
    return {tag: folders for tag, folders in groups.items() if folders}


def write_results(grid: Grid, records: dict[str, Record], out: Path, written: list[Path] | None = None) -> str | None:
    """The report of every run finished as asked; the student table as text, None when there is none.

    The files written are appended to ``written`` when given.
    """
    from selective_kd.report import write_report

    groups = _report_groups(grid, records)
    if len(groups) <= 1:
        return next((write_report(folders, out, written=written) for folders in groups.values()), None)
    texts = {tag: write_report(folders, out / SWEEPS / tag, written=written) for tag, folders in groups.items()}
    write_text(out / RESULTS_MD, _combined_markdown(out, list(groups)))
    write_text(out / RESULTS_CSV, _combined_csv(out, list(groups)))
    return "\n\n".join(f"{tag}:\n{text}" for tag, text in texts.items())


def _combined_markdown(out: Path, tags: list[str]) -> str:
    parts = ["# Results", "", f"One section per swept setting; its CSV and figures are in {SWEEPS}/<setting>/.", ""]
    for tag in tags:
        body = (out / SWEEPS / tag / RESULTS_MD).read_text(encoding="utf-8")
        body = re.sub(r"^# Results\n", "", body)
        parts += [f"## {tag}", "", re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M).strip(), ""]
    return "\n".join(parts)


def _combined_csv(out: Path, tags: list[str]) -> str:
    buf = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for tag in tags:
        with open(out / SWEEPS / tag / RESULTS_CSV, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if writer is None:
                    writer = csv.DictWriter(buf, fieldnames=["sweep", *row], lineterminator="\n")
                    writer.writeheader()
                writer.writerow({"sweep": tag, **row})
    return buf.getvalue()
