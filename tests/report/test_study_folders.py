"""Every committed study folder regenerates its tables byte for byte from its committed per-run results.

For each ``study/<p>/`` holding a ``grid.json``, ``selective-kd report study/<p> --out TMP
--tables-only``, run from the repository root as STUDY.md tells the reader, must write
``results.md`` and ``results.csv`` identical to the committed ones. Figures are not drawn
here: PNG bytes depend on the matplotlib build, so they could not be compared, and drawing
a study's per-curriculum figures took most of this check's time (the figure code has its
own tests in ``test_report_grid.py``). CI runs this as part of the
test suite, on a clean clone: it is the check that the study can be regenerated from
what the repository holds. A folder whose tables were made with options (round 2's
``--margin``, declared in its plan) records them in ``study/<p>/report-args``, one line,
and is regenerated with them.

A folder whose ``grid.json`` names finished runs whose ``result.json`` is not committed
fails this test. (Round 1's per-run student results were never committed, since
``.gitignore``'s ``runs/`` also matched ``study/*/runs/`` until issue 21; round 1 was rerun
folder by folder and every folder now holds its results. ``report``'s refusal of a folder
without them is tested in ``test_report_grid.py``.)

A folder still being run under a registered plan holds an ``IN-PROGRESS`` file (round 2:
no analysis before the plan's teachers have finished). Its per-run results must all be
committed as they finish, but its tables must not be: they would be an analysis of part of
the design. The file's own ``.gitignore`` keeps the grid's end-of-run tables out of git;
once the last planned run is in, both files go and the tables are generated and checked.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from fakeruns import PAPER, fake_run

from selective_kd.cli import main
from selective_kd.report.runs import grid_run_results

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "study"
TABLES = ("results.md", "results.csv")
IN_PROGRESS = "IN-PROGRESS"  # a folder whose planned runs are not all finished: results committed, tables not yet
REPORT_ARGS = "report-args"  # the options the folder's tables were made with, e.g. "--margin 1"


def study_folders() -> list[str]:
    """Every grid folder under study/, at any depth (round 2's sit in study/r2/)."""
    return sorted(p.parent.relative_to(STUDY).as_posix() for p in STUDY.rglob("grid.json") if "runs" not in p.relative_to(STUDY).parts)


def regenerate(folder: Path, out: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``report FOLDER --out OUT [report-args]`` from ``cwd``; the tables that differ from the committed ones."""
    monkeypatch.chdir(cwd)
    args = shlex.split((folder / REPORT_ARGS).read_text(encoding="utf-8")) if (folder / REPORT_ARGS).is_file() else []
    assert main(["report", str(folder.relative_to(cwd)), "--out", str(out), "--tables-only", *args]) == 0
    return [name for name in TABLES if (out / name).read_bytes() != (folder / name).read_bytes()]


def committed_tables(folder: Path) -> list[str]:
    """The tables git holds for ``folder`` (in a checkout without git: those on disk)."""
    import subprocess

    if not (REPO / ".git").exists():
        return [name for name in TABLES if (folder / name).is_file()]
    got = subprocess.run(["git", "ls-files", "--", *(str(folder / name) for name in TABLES)], cwd=REPO,
                         capture_output=True, text=True, check=True)
    return got.stdout.split()


@pytest.mark.parametrize("name", study_folders())
def test_study_folder_regenerates_its_tables(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = STUDY / name
    expected = grid_run_results(folder)
    missing = [p for p in expected if not p.is_file()]
    assert not missing, f"{folder}: {len(missing)} per-run results named in grid.json are not committed, e.g. {missing[0]}"
    if (folder / IN_PROGRESS).is_file():
        assert not committed_tables(folder), f"{folder} is in progress: its tables must wait for the plan's last run"
        return
    assert regenerate(folder, tmp_path / "out", REPO, monkeypatch) == []


SUMMARY_ARGS = "summary-args"  # a study summary's folder: the report arguments it was made with (``--cells``)


def summary_folders() -> list[str]:
    """Every study summary (``report CELL... --cells``), by the file that records how it was made."""
    return sorted(p.parent.relative_to(STUDY).as_posix() for p in STUDY.rglob(SUMMARY_ARGS))


@pytest.mark.parametrize("name", summary_folders())
def test_study_summary_regenerates(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = STUDY / name
    monkeypatch.chdir(REPO)
    args = shlex.split((folder / SUMMARY_ARGS).read_text(encoding="utf-8"))
    assert "--cells" in args and main(["report", *args, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "summary.md").read_bytes() == (folder / "summary.md").read_bytes()


def test_the_check_finds_a_table_that_does_not_regenerate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The comparison itself, on a made-up study folder: exact when untouched, a difference when edited.
    root = tmp_path / "clone"
    folder = root / "study" / "p1"
    for s in range(2):
        fake_run(folder / "runs" / "digits" / f"seed{s}", seed=s, variants=PAPER, acc=0.9 - 0.01 * s)
    runs = [{"status": "done", "folder": f"runs/digits/seed{s}", "variant": v} for s in range(2) for v in PAPER]
    (folder / "grid.json").write_text(json.dumps({"out": ".", "runs": runs}))
    monkeypatch.chdir(root)
    assert main(["report", "study/p1"]) == 0  # the committed tables
    assert regenerate(folder, tmp_path / "again", root, monkeypatch) == []
    (folder / "results.md").write_text((folder / "results.md").read_text().replace("89.00%", "89.01%"))
    assert regenerate(folder, tmp_path / "third", root, monkeypatch) == ["results.md"]
    # A folder made with a declared margin is regenerated with it.
    assert main(["report", "study/p1", "--margin", "1"]) == 0
    (folder / REPORT_ARGS).write_text("--margin 1\n")
    assert "equivalence and power" in (folder / "results.md").read_text()
    assert regenerate(folder, tmp_path / "fourth", root, monkeypatch) == []


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_git_keeps_a_study_folders_results_and_ignores_its_weights() -> None:
    import subprocess

    run = "study/p9/runs/fashion-mnist/seed0"
    kept = [f"{run}/students/kd/result.json", f"{run}/students/kd/metrics.jsonl", f"{run}/config.yaml",
            f"{run}/students/kd-cl-snap/curriculum.csv", "study/p9/shared/f-1/curriculum-2/curriculum.json",
            "study/p9/shared/f-1/teacher/result.json", "study/p9/grid.json",
            f"{run}/students/dist/result.json", f"{run}/students/build/metrics.jsonl"]  # variants named like build folders
    ignored = [f"{run}/students/kd/model.pt", f"{run}/students/kd/last.pt", "study/p9/shared/f-1/teacher/cache/x.npy",
               "study/p9/logs/kd.log", "runs/digits/students/kd/result.json", "dist/x.whl", "build/lib/x.py"]
    got = subprocess.run(["git", "check-ignore", "--no-index", *kept, *ignored], cwd=REPO, capture_output=True, text=True)
    assert got.stdout.split() == ignored
