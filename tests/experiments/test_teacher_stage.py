"""ESKD: students distil from the teacher as it was after ``distill.teacher_epoch`` (issue 16).

The teacher stage keeps exactly that epoch's weights, resumes with them, makes them again
for a teacher trained without them, and every student identity and teacher cache follows
the weights actually used; the final teacher is reused when only ``teacher_epoch`` changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from runfiles import result, same, weights

from selective_kd.cli import main
from selective_kd.experiments.identity import file_digest

pytestmark = pytest.mark.slow

SMALL = ["data.limit_train=300", "teacher.epochs=3", "distill.variants=[kd]"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def args(command: str, out: Path, *extra: str) -> list[str]:
    from conftest import TINY

    return [command, "--quiet", "--out", str(out), *TINY, *SMALL, *extra]


@pytest.fixture(scope="module")
def eskd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose student distils from the teacher after epoch 1 of 3."""
    out = tmp_path_factory.mktemp("eskd") / "run"
    assert main(args("run", out, "distill.teacher_epoch=1")) == 0
    return out


def test_students_distil_from_the_kept_epoch_and_the_cache_follows(eskd: Path) -> None:
    teacher = eskd / "teacher"
    assert sorted(p.name for p in teacher.glob("*.pt")) == ["epoch-1.pt", "model.pt"]  # exactly the epoch asked for
    early, final = teacher / "epoch-1.pt", teacher / "model.pt"
    assert not same(weights(early), weights(final))
    ident = result(eskd / "students/kd/result.json")["identity"]
    assert ident["teacher_weights"] == file_digest(early) != file_digest(final)
    assert ident["distill"]["teacher_epoch"] == 1
    keys = [json.loads(p.read_text())["key"]["teacher"] for p in (teacher / "cache").glob("*.json")]
    assert keys == [file_digest(early)]  # the students' cache holds the early teacher's logits


def test_the_final_teacher_scores_the_curriculum(eskd: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    import shutil

    shutil.copytree(eskd, out)
    assert main(args("curriculum", out, "distill.teacher_epoch=1", "distill.variants=[kd,kd-cl]")) == 0
    meta = result(out / "curriculum.json")
    assert meta["identity"]["teacher_weights"] == file_digest(out / "teacher/model.pt")


def test_a_teacher_trained_without_the_epoch_trains_it_again_to_the_same_weights(eskd: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(args("teacher", out)) == 0  # the final teacher only
    assert not (out / "teacher/epoch-1.pt").exists()
    stamp = (out / "teacher/model.pt").stat().st_mtime_ns
    assert main(args("teacher", out, "distill.teacher_epoch=1")) == 0
    assert (out / "teacher/model.pt").stat().st_mtime_ns == stamp  # the final teacher is reused
    assert same(weights(out / "teacher/epoch-1.pt"), weights(eskd / "teacher/epoch-1.pt"))  # as if kept while training
    assert sorted(p.name for p in (out / "teacher").iterdir()) == ["epoch-1.pt", "metrics.jsonl", "model.pt", "result.json"]


def test_a_kill_between_the_epochs_checkpoint_and_its_snapshot_is_repaired(eskd: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from selective_kd.experiments import teacher_stage

    write = teacher_stage._Snapshots.write

    def killed(self: Any, epoch: int, state: dict[str, Any]) -> None:
        raise KeyboardInterrupt  # last.pt of epoch 1 is written, its snapshot not

    out = tmp_path / "run"
    monkeypatch.setattr(teacher_stage._Snapshots, "write", killed)
    assert main(args("teacher", out, "distill.teacher_epoch=1")) == 130
    assert torch.load(out / "teacher/last.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(teacher_stage._Snapshots, "write", write)
    assert main(args("teacher", out, "distill.teacher_epoch=1")) == 0
    assert same(weights(out / "teacher/epoch-1.pt"), weights(eskd / "teacher/epoch-1.pt"))
    assert same(weights(out / "teacher/model.pt"), weights(eskd / "teacher/model.pt"))


def test_an_interrupted_eskd_run_resumes_to_the_same_numbers(eskd: Path, tmp_path: Path) -> None:
    from test_cli import _wait_for

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "selective_kd", *args("run", out, "distill.teacher_epoch=1")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _wait_for(out / "teacher" / "metrics.jsonl")
    proc.kill()
    proc.wait(timeout=60)
    if (out / "students/kd/result.json").exists():
        pytest.skip("the run finished before it could be interrupted")
    assert main(args("run", out, "distill.teacher_epoch=1")) == 0
    for stage in ("teacher", "students/kd"):
        assert (out / stage / "metrics.jsonl").read_text().count("\n") == (eskd / stage / "metrics.jsonl").read_text().count("\n")
        cut = [json.loads(x) for x in (out / stage / "metrics.jsonl").read_text().splitlines()]
        full = [json.loads(x) for x in (eskd / stage / "metrics.jsonl").read_text().splitlines()]
        keys = ["epoch", "train_loss", "val_acc", "val_loss", "lr"]
        assert [[m[k] for k in keys] for m in cut] == [[m[k] for k in keys] for m in full], stage
        assert same(weights(out / stage / "model.pt"), weights(eskd / stage / "model.pt")), stage
    assert same(weights(out / "teacher/epoch-1.pt"), weights(eskd / "teacher/epoch-1.pt"))


def test_another_teacher_epoch_is_another_student_and_the_same_teacher(eskd: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(eskd, out)
    stamp = (out / "teacher/model.pt").stat().st_mtime_ns
    assert main(args("run", out, "distill.teacher_epoch=2")) == 2  # the folder's student used epoch 1
    assert "distill.teacher_epoch, teacher_weights differ" in capsys.readouterr().err
    assert (out / "teacher/model.pt").stat().st_mtime_ns == stamp and (out / "teacher/epoch-2.pt").is_file()
    shutil.rmtree(out / "students/kd")
    assert main(args("run", out, "distill.teacher_epoch=2")) == 0
    assert (out / "teacher/model.pt").stat().st_mtime_ns == stamp
    ident = result(out / "students/kd/result.json")["identity"]
    assert ident["teacher_weights"] == file_digest(out / "teacher/epoch-2.pt") != file_digest(out / "teacher/epoch-1.pt")


def test_a_grid_over_teacher_epochs_trains_one_teacher_that_keeps_them_all(tmp_path: Path) -> None:
    from conftest import TINY

    from selective_kd.experiments.grid import add_grid_parser, grid_command
    import argparse

    parser = argparse.ArgumentParser(prog="selective-kd")
    add_grid_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "grid"
    argv = ["grid", "--quiet", "--out", str(out), *TINY, "data.limit_train=300", "teacher.epochs=3", "student.epochs=1",
            "seeds=1", "variants=[kd]", "sweep.distill.teacher_epoch=[1,3]"]
    assert grid_command(parser.parse_args(argv)) == 0
    (teacher,) = out.glob("shared/*/teacher")
    assert len((teacher / "metrics.jsonl").read_text().splitlines()) == 3  # trained once
    assert sorted(p.name for p in teacher.glob("*.pt")) == ["epoch-1.pt", "epoch-3.pt", "model.pt"]
    for k in (1, 3):
        ident = result(out / f"runs/digits/teacher_epoch={k}/seed0/students/kd/result.json")["identity"]
        assert ident["teacher_weights"] == file_digest(teacher / f"epoch-{k}.pt")
    assert same(weights(teacher / "epoch-3.pt"), weights(teacher / "model.pt"))  # the last epoch is the final teacher
    summary = json.loads((out / "grid.json").read_text())
    assert [(r["kind"], r["status"]) for r in summary["shared"]] == [("teacher", "done")]
    assert grid_command(parser.parse_args(argv)) == 0
    summary = json.loads((out / "grid.json").read_text())
    assert {r["status"] for r in summary["shared"] + summary["runs"]} == {"skipped"}
    # Another epoch to keep: the finished teacher trains its first 2 epochs again, so the grid
    # must count it as trained, not as found finished in its folder.
    argv[-1] = "sweep.distill.teacher_epoch=[2]"
    assert grid_command(parser.parse_args(argv)) == 0
    summary = json.loads((out / "grid.json").read_text())
    assert [(r["kind"], r["status"], r.get("found", False)) for r in summary["shared"]] == [("teacher", "done", False)]
    assert (teacher / "epoch-2.pt").is_file()


def _one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("epoch", [0, 4])
def test_a_teacher_epoch_outside_the_teachers_epochs_is_one_line(tmp_path: Path, epoch: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "selective_kd", *args("run", tmp_path / "run", f"distill.teacher_epoch={epoch}")],
                          capture_output=True, text=True, env=ENV, timeout=600)
    _one_line(proc, "distill.teacher_epoch", "between 1 and teacher.epochs (3)", f"got {epoch}")
    assert not (tmp_path / "run").exists()


def test_a_student_without_its_teachers_epoch_says_how_to_get_it(eskd: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    student = args("student", tmp_path / "other", "distill.teacher_epoch=2")
    assert main([*student[:4], "--variant", "kd", "--teacher", str(eskd / "teacher"), *student[4:]]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "epoch-2.pt (teacher after epoch 2) not found" in err and "distill.teacher_epoch=2" in err
