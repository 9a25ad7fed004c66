"""`selective-kd grid`: expansion, shared teachers, skipping, refusing, retries, parallel runs, sweeps."""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from selective_kd.errors import UserError
from selective_kd.experiments.grid import add_grid_parser, build_spec, expand, grid_command

TINY = [
    "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=1", "teacher.batch_size=128",
    "student.width=0.0625", "student.epochs=1", "batch_size=128",
]


def build_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["grid", *argv])


def grid(out: Path, *argv: str, settings: tuple[str, ...] = ()) -> int:
    """A tiny grid; ``settings`` come after TINY, so they win over it."""
    return grid_command(build_args("--quiet", "--out", str(out), *argv, *TINY, *settings))


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "grid.json").read_text())


def by_id(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in summary(out)["runs"]}


def results(out: Path) -> dict[Path, dict[str, Any]]:
    return {p.relative_to(out): json.loads(p.read_text()) for p in sorted(out.glob("runs/**/students/*/result.json"))}


def break_run(out: Path, run: str, variant: str) -> Path:
    """An unreadable checkpoint where the run would resume from: a UserError on every attempt."""
    ckpt = out / "runs" / run / "students" / variant / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"\x00garbage, not a checkpoint\xff" * 10)
    return ckpt


def crash_run(out: Path, run: str, variant: str) -> Path:
    """A file where the student's folder goes: an OSError (a crash, not a UserError) on every attempt."""
    folder = out / "runs" / run / "students" / variant
    folder.parent.mkdir(parents=True)
    folder.write_text("in the way")
    return folder


@pytest.fixture(autouse=True)
def threads() -> Iterator[int]:
    """Torch threads here as a `--jobs 2` child uses them (and no more than half the cores
    while other tests may run beside this one); restored afterwards."""
    before = torch.get_num_threads()
    child = max(1, (os.cpu_count() or 1) // 2)
    torch.set_num_threads(child)
    yield child
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- expansion (no training)


def test_axes_sweeps_and_overrides_are_told_apart() -> None:
    spec = build_spec(None, ["seed=5", "seeds=3", "datasets=[digits]", "variants=[kd,kd-cl]",
                             "sweep.distill.temperature=[2,4]", "student.epochs=7"])
    assert spec.seeds == [5, 6, 7]
    assert spec.datasets == ["digits"] and spec.variants == ["kd", "kd-cl"]
    assert spec.sweeps == {"distill.temperature": [2, 4]}
    assert spec.base.student.epochs == 7 and spec.base.distill.variants == ["kd", "kd-cl"]
    assert build_spec(None, ["seeds=[0,4,7]"]).seeds == [0, 4, 7]
    default = build_spec(None, [])
    assert default.seeds == [0, 1, 2] and default.datasets == ["digits"]
    assert default.variants == ["unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr"]


@pytest.mark.parametrize("override, words", [
    ("seeds=0", "at least 1"),
    ("seeds=[1,1]", "more than once"),
    ("seeds=two", "seeds="),
    ("variants=[kd,nonsense]", "unknown variant 'nonsense'"),
    ("datasets=[nonsense]", "config key 'dataset': unknown dataset 'nonsense'"),
    ("sweep.distill.temperature=3", "needs a list"),
    ("sweep.seed=[1,2]", "seeds=[...]"),
    ("sweep.student.nope=[1,2]", "unknown config key 'student.nope'"),
])
def test_bad_grid_input_is_a_user_error_before_anything_runs(tmp_path: Path, override: str, words: str) -> None:
    with pytest.raises(UserError, match=words.replace("[", r"\[").replace(".", r"\.")):
        grid(tmp_path / "out", override)
    assert not (tmp_path / "out").exists()


def test_bad_flags_are_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="--jobs 0"):
        grid(tmp_path / "a", "--jobs", "0")
    with pytest.raises(UserError, match="--jobs is for local runs"):
        grid(tmp_path / "b", "--jobs", "2", "--ray")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(UserError, match=r"Ray is not installed: pip install -e '\.\[ray\]'"):
        grid(tmp_path / "c", "--ray", "seeds=1")  # also: `--ray key=value` is not taken for an address


def test_teacher_is_shared_across_sweeps_that_do_not_change_it(tmp_path: Path) -> None:
    def shared_of(*overrides: str) -> tuple[int, set[str]]:
        g = expand(build_spec(None, [*TINY, "seeds=2", "variants=[unguided,kd]", *overrides]), tmp_path)
        return len(g.shared), {str(Path(j.out).relative_to(tmp_path).parent) for j in g.students}

    assert shared_of("sweep.student.lr=[0.05,0.1]", "sweep.distill.temperature=[2,4]") == (
        1, {"runs/digits/" + t for t in ("lr=0.05,temperature=2", "lr=0.05,temperature=4", "lr=0.1,temperature=2", "lr=0.1,temperature=4")})
    assert shared_of("sweep.teacher.lr=[0.05,0.1]", "sweep.student.lr=[0.05,0.1]")[0] == 2  # two keys named lr: full names
    assert shared_of("sweep.teacher.lr=[0.05,0.1]", "sweep.student.lr=[0.05,0.1]")[1] >= {"runs/digits/teacher.lr=0.05,student.lr=0.1"}
    g = expand(build_spec(None, [*TINY, "seeds=1", "variants=[unguided]"]), tmp_path)
    assert g.shared == [] and [j.needs for j in g.students] == [[]]  # no variant needs a teacher


def test_each_curriculum_setting_gets_its_own_curriculum_scored_by_the_one_teacher(tmp_path: Path) -> None:
    g = expand(build_spec(None, [*TINY, "seeds=1", "variants=[unguided,kd-cl]", "sweep.curriculum.stratify=[true,false]"]),
               tmp_path)
    teachers = [j for j in g.shared if j.kind == "teacher"]
    curricula = [j for j in g.shared if j.kind == "curriculum"]
    assert len(teachers) == 1 and len(curricula) == 2 and all(c.needs == [teachers[0].id] for c in curricula)
    read = {j.sweep["curriculum.stratify"]: j.curriculum for j in g.students if j.variant == "kd-cl"}
    assert read[True] != read[False] and {read[True], read[False]} == {c.curriculum for c in curricula}
    assert [j.needs for j in g.students if j.variant == "unguided"] == [[], []]
    crossfit = expand(build_spec(None, [*TINY, "seeds=1", "variants=[kd-cl]", "curriculum.scorer=crossfit"]), tmp_path)
    assert [(j.kind, j.needs) for j in crossfit.shared][1] == ("curriculum", [])  # it trains its own scorers


# --------------------------------------------------------------------------- running


@pytest.mark.slow
def test_local_grid_shares_one_teacher_reports_seed_statistics_and_skips_when_asked_again(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid"
    assert grid(out, "seeds=2", "variants=[unguided,kd,kd-cl-sr]") == 0
    printed = capsys.readouterr().out  # the report's terminal text (its warnings included: tests/report/test_tables.py)
    assert "Student-KD-CL-SR" in printed and "figures: figure3_convergence.png, figure_lambda.png, figure1_curriculum.png" in printed
    found = results(out)
    assert sorted(map(str, found)) == sorted(f"runs/digits/seed{s}/students/{v}/result.json"
                                             for s in (0, 1) for v in ("unguided", "kd", "kd-cl-sr"))
    assert {r["identity"]["seed"] for r in found.values()} == {0, 1}
    shared = list((out / "shared").iterdir())
    assert len(shared) == 1 and shared[0].name.startswith("digits-")
    assert len((shared[0] / "teacher" / "metrics.jsonl").read_text().splitlines()) == 1  # one epoch, trained once
    assert len(list(shared[0].glob("curriculum-*/curriculum.csv"))) == 1
    s = summary(out)
    assert [(r["kind"], r["status"], r["attempts"]) for r in s["shared"]] == [("teacher", "done", 1), ("curriculum", "done", 1)]
    assert {(r["status"], r["attempts"]) for r in s["runs"]} == {("done", 1)} and len(s["runs"]) == 6
    kd_teacher = {r["identity"]["teacher_weights"] for p, r in found.items() if p.parts[-2] != "unguided"}
    assert len(kd_teacher) == 1  # every guided student read the same teacher
    md = (out / "results.md").read_text()
    assert "Statistics over seeds" in md and "Student-KD-CL-SR" in md and (out / "results.csv").exists()
    assert (out / "figure3_convergence.png").exists()
    assert all((out / "logs" / f"{r['id']}.log").exists() for r in s["runs"])

    models = sorted(out.glob("**/model.pt"))
    assert len(models) == 7
    stamps = {p: p.stat().st_mtime_ns for p in models}
    capsys.readouterr()
    assert grid_command(build_args("--out", str(out), "seeds=2", "variants=[unguided,kd,kd-cl-sr]", *TINY)) == 0
    s = summary(out)
    assert {(r["status"], r["attempts"]) for r in s["runs"] + s["shared"]} == {("skipped", 0)}
    err = capsys.readouterr().err.splitlines()  # not quiet: a line per job, then the summary
    assert sorted(line for line in err if line.startswith("[grid] skip")) == sorted(
        f"[grid] skip   {r['id']} (finished earlier with these settings)" for r in s["runs"] + s["shared"])
    assert err[-1] == "grid: 8 jobs: 0 trained, 8 skipped (finished earlier with these settings), 0 refused, 0 failed"
    assert {p: p.stat().st_mtime_ns for p in sorted(out.glob("**/model.pt"))} == stamps
    # grid.json names folders relative to the grid folder, so a copy of it (a study folder) still finds them.
    assert {r["folder"] for r in s["runs"]} == {"runs/digits/seed0", "runs/digits/seed1"} and s["out"] == "."
    assert all(not Path(r["folder"]).is_absolute() and (out / r["folder"]).is_dir() for r in s["runs"] + s["shared"])
    # Without grid.json (run folders copied in from elsewhere) every stage finds its run finished:
    # nothing is trained, and the summary must not say it was.
    (out / "grid.json").unlink()
    capsys.readouterr()
    assert grid_command(build_args("--out", str(out), "seeds=2", "variants=[unguided,kd,kd-cl-sr]", *TINY)) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == ("grid: 8 jobs: 0 trained, 0 skipped (finished earlier with these settings), 0 refused, 0 failed, "
                       "8 found finished in their folders (not trained again)")
    assert sum(line.startswith("[grid] found") for line in err) == 8
    assert all(r.get("found") for r in summary(out)["runs"])
    assert {p: p.stat().st_mtime_ns for p in sorted(out.glob("**/model.pt"))} == stamps


@pytest.mark.slow
def test_failing_run_is_retried_and_reported_while_the_others_finish(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grid"
    crash_run(out, "digits/seed1", "kd")  # fails anew on every attempt: retried
    break_run(out, "digits/seed0", "unguided")  # a UserError: the same next time, so not retried
    assert grid(out, "--retries", "2", "seeds=2", "variants=[unguided,kd]") == 1
    runs = by_id(out)
    bad = runs.pop("digits-seed1-kd")
    assert (bad["status"], bad["attempts"], bad["refused"]) == ("failed", 3, False)
    assert bad["error"].startswith("FileExistsError")
    log = out / bad["log"]
    assert bad["log"] == "logs/digits-seed1-kd.log" and log.exists()
    text = log.read_text()
    assert text.count("=== digits-seed1-kd: attempt") == 3 and text.count("\nerror: ") == 3 and "Traceback" in text
    user = runs.pop("digits-seed0-unguided")
    assert (user["status"], user["attempts"], user["refused"]) == ("failed", 1, True) and "cannot be read" in user["error"]
    assert {(r["status"], r["attempts"]) for r in runs.values()} == {("done", 1)}
    assert len(results(out)) == 2
    err = capsys.readouterr().err
    assert "failed: digits-seed1-kd after 3 attempt(s)" in err and str(log.name) in err
    assert "failed: digits-seed0-unguided after 1 attempt(s)" in err
    assert len([line for line in err.splitlines() if "digits-seed1-kd" in line and "retry" not in line]) == 1  # one line per job
    assert "grid: 5 jobs: 3 trained, 0 skipped (finished earlier with these settings), 0 refused, 2 failed" in err
    assert "Student-KD" in (out / "results.md").read_text()  # the report covers what finished


@pytest.mark.slow
def test_grid_run_again_with_other_settings_refuses_and_never_reports_the_old_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "grid"
    argv = ("seeds=1", "variants=[unguided,kd]")
    assert grid(out, *argv) == 0  # 1 teacher epoch, 1 student epoch
    first = results(out)
    stamps = {p: p.stat().st_mtime_ns for p in sorted(out.glob("runs/**/model.pt"))}
    capsys.readouterr()

    # Other student settings: refused from the stored settings alone, before any teacher trains.
    assert grid(out, *argv, settings=("teacher.epochs=2", "student.epochs=2")) == 2
    runs = by_id(out)
    assert {(r["status"], r["attempts"], r["refused"]) for r in runs.values()} == {("refused", 0, True)}
    for r in runs.values():
        assert re.search(r"holds a run made with other settings \(\S*epochs differ\)", r["error"]) and "\n" not in r["error"]
    assert len(list((out / "shared").iterdir())) == 1  # no teacher was trained for a grid that cannot finish
    captured = capsys.readouterr()
    assert "refused: digits-seed0-kd: " in captured.err and "epochs differ" in captured.err
    lines = captured.err.splitlines()
    assert not any(line.startswith(("failed", "FAILED", "REFUSED")) for line in lines)  # refused, not failed
    assert [line for line in lines if "digits-seed0-kd" in line] == [x for x in lines if x.startswith("refused: digits-seed0-kd")]
    assert len([line for line in lines if "digits-seed0-kd" in line]) == 1  # one line per job
    assert "0 trained, 0 skipped (finished earlier with these settings), 2 refused, 0 failed, 1 not needed" in captured.err
    assert "no run finished with these settings" in captured.out and "Student-" not in captured.out
    assert results(out) == first and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # Another teacher only: trained, then the KD student is refused by its stage (its teacher's
    # weights differ); the unguided student reads no teacher, so its result still holds.
    assert grid(out, *argv, settings=("teacher.epochs=2",)) == 2
    runs = by_id(out)
    kd, unguided = runs["digits-seed0-kd"], runs["digits-seed0-unguided"]
    assert (kd["status"], kd["attempts"], kd["refused"]) == ("failed", 1, True)
    assert "other settings (teacher_weights differ)" in kd["error"]
    assert "other settings" in (out / kd["log"]).read_text().splitlines()[-1]
    assert (unguided["status"], unguided["attempts"]) == ("done", 1)  # run, and its identical result reused
    # Its folder also holds the refused KD student's old result, so the report leaves it out.
    assert "no run finished with these settings (the run folders" in capsys.readouterr().out
    assert results(out) == first and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # The first settings again: every job is as asked, so nothing runs, and it says so.
    capsys.readouterr()
    assert grid(out, *argv) == 0
    s = summary(out)
    assert {(r["status"], r["attempts"]) for r in s["runs"]} == {("skipped", 0)}
    assert "grid: 3 jobs: 0 trained, 3 skipped (finished earlier with these settings), 0 refused, 0 failed" in capsys.readouterr().err
    assert "Student-KD" in (out / "results.md").read_text()


@pytest.mark.slow
def test_a_child_process_user_error_is_reported_once_with_exit_status_2(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    break_run(out, "digits/seed0", "unguided")
    assert grid(out, "--jobs", "2", "seeds=1", "variants=[unguided]") == 2
    bad = by_id(out)["digits-seed0-unguided"]
    assert (bad["status"], bad["attempts"], bad["refused"]) == ("failed", 1, True) and "cannot be read" in bad["error"]


@pytest.mark.slow
def test_parallel_jobs_give_the_same_results_as_sequential(tmp_path: Path, threads: int) -> None:
    # On a CPU a run is reproducible at a given number of torch threads (the sums inside
    # convolutions are split by thread); the sequential grid runs here at the children's count.
    argv = ("seeds=2", "variants=[unguided,kd-cl-sr]")
    assert grid(tmp_path / "seq", *argv) == 0
    assert grid(tmp_path / "par", "--jobs", "2", *argv) == 0
    seq, par = results(tmp_path / "seq"), results(tmp_path / "par")
    assert len(seq) == 4 and seq.keys() == par.keys()
    for key in seq:
        assert (par[key]["val_acc"], par[key]["val_loss"]) == (seq[key]["val_acc"], seq[key]["val_loss"]), key
    assert {r["status"] for r in by_id(tmp_path / "par").values()} == {"done"}


@pytest.mark.slow
def test_sweep_makes_run_folders_per_value_and_shares_the_teacher(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    assert grid(out, "seeds=2", "variants=[unguided,kd]", "sweep.distill.temperature=[2,4]") == 0
    found = results(out)
    assert len(found) == 8
    for path, r in found.items():
        assert path.parts[2] in ("temperature=2", "temperature=4")
        assert r["identity"]["distill"]["temperature"] == float(path.parts[2].split("=")[1])
    assert len(list((out / "shared").iterdir())) == 1  # the temperature does not touch the teacher
    assert {r["sweep"]["distill.temperature"] for r in summary(out)["runs"]} == {2, 4}
    md = (out / "results.md").read_text()
    assert "## temperature=2" in md and "## temperature=4" in md and md.count("Statistics over seeds: val_acc") == 2
    for tag in ("temperature=2", "temperature=4"):
        assert "Statistics over seeds" in (out / "sweeps" / tag / "results.md").read_text()
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["sweep"], r["model"]) for r in rows} >= {("temperature=4", "kd"), ("temperature=2", "unguided")}


@pytest.mark.parametrize("override, total", [
    ("seeds=1000000", "6,000,000"),
    ("seeds=1000000000000", "6,000,000,000,000"),
    ("sweep.distill.temperature=[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", None),
])
def test_a_grid_too_large_to_plan_is_refused_at_once_with_its_size(tmp_path: Path, override: str, total: str | None) -> None:
    import subprocess

    args = [override] if total else [override, "seeds=100"]  # 20 settings × 100 seeds × 6 variants = 12,000
    proc = subprocess.run([sys.executable, "-m", "selective_kd", "grid", "--out", str(tmp_path / "g"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert f"= {total or '12,000'} student runs; one grid plans at most 10,000" in proc.stderr
    assert not (tmp_path / "g").exists()


def test_a_job_killed_by_a_signal_is_reported_by_the_signal_name_and_not_as_a_user_error(tmp_path: Path) -> None:
    """A crash in native code (SIGSEGV) names the signal, so the summary says what happened; it is retried."""
    import signal
    import subprocess
    import time

    from selective_kd.experiments.grid.executors import SubprocessExecutor, _Child
    from selective_kd.experiments.grid.jobs import Job

    log = tmp_path / "job.log"
    log.write_text("=== a: attempt 1 ===\n")
    job = Job(id="a", kind="student", config={}, out=str(tmp_path), teacher_dir="", curriculum="", log=str(log),
              dataset="digits", sweep={})
    proc = subprocess.Popen([sys.executable, "-c", f"import os; os.kill(os.getpid(), {int(signal.SIGSEGV)})"])
    proc.wait()
    outcome = SubprocessExecutor._outcome(_Child(job, proc, time.perf_counter(), 0))
    assert not outcome.ok and not outcome.user_error
    assert outcome.error == f"killed by signal SIGSEGV ({int(signal.SIGSEGV)})"


def test_a_folder_where_a_job_writes_a_file_is_refused_before_anything_trains(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import TINY

    from selective_kd.cli import main

    out = tmp_path / "g"
    (out / "runs" / "digits" / "seed1" / "students" / "kd" / "result.json").mkdir(parents=True)
    assert main(["grid", "--quiet", "--out", str(out), *TINY, "seeds=2", "distill.variants=[kd]"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "seed1/students/kd/result.json is a folder" in err and "remove it" in err
    assert not list(out.glob("shared/*/teacher/result.json")) and not (out / "grid.json").exists()
