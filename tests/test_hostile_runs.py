"""Through the command line: a hostile teacher model.pt, teacher last.pt or student last.pt
is refused in one line and its payload never runs (issue 12, section 1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from selective_kd.cli import main

pytestmark = pytest.mark.slow


class Payload:
    """Unpickling this creates ``marker``: a stand-in for any command a hostile file could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    out = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["run", "--quiet", "--out", str(out), *TINY, "data.limit_train=200", "distill.variants=[kd]"]) == 0
    return out


def poison(path: Path, marker: Path) -> None:
    """A working checkpoint with the payload in an extra key (it would even train to exit 0)."""
    ckpt = torch.load(path, weights_only=True) if path.exists() else {}
    torch.save({**ckpt, "extra": Payload(marker)}, path)


def args(out: Path, *rest: str) -> list[str]:
    from conftest import TINY

    return [*rest, "--quiet", "--out", str(out), *TINY, "data.limit_train=200", "distill.variants=[kd]"]


@pytest.mark.parametrize("where", ["teacher/model.pt", "teacher/last.pt", "students/kd/last.pt", "--teacher"])
def test_a_hostile_checkpoint_is_refused_and_never_runs(finished: Path, tmp_path: Path, where: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    marker = tmp_path / "MARKER"
    if where == "teacher/last.pt":  # an unfinished teacher: its resume point is loaded
        (out / "teacher/result.json").unlink()
        (out / "teacher/model.pt").rename(out / "teacher/last.pt")
        poison(out / "teacher/last.pt", marker)
        code = main(args(out, "teacher"))
    elif where == "students/kd/last.pt":  # an unfinished student
        shutil.rmtree(out / "students/kd")
        (out / "students/kd").mkdir(parents=True)
        poison(out / "students/kd/last.pt", marker)
        code = main(args(out, "student", "--variant", "kd"))
    elif where == "--teacher":  # a teacher someone handed over
        shared = tmp_path / "theirs"
        shutil.copytree(out / "teacher", shared)
        poison(shared / "model.pt", marker)
        shutil.rmtree(out / "students/kd")
        code = main(args(out, "student", "--variant", "kd", "--teacher", str(shared)))
    else:
        poison(out / "teacher/model.pt", marker)
        shutil.rmtree(out / "students/kd")
        code = main(args(out, "student", "--variant", "kd"))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert not marker.exists()
    assert err.startswith("error: ") and "\n" not in err and "cannot be read" in err, err


# --------------------------------------------------------------------------- issue 18, point 4


def _cli(*argv: str, timeout: float = 240) -> tuple[int, str]:
    """The command in a child process (a hang is a failure, not a stuck test run): exit status and stderr."""
    import subprocess
    import sys

    try:
        proc = subprocess.run([sys.executable, "-m", "selective_kd", *argv], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"selective-kd {' '.join(argv[:3])} ... still running after {timeout} s")
    return proc.returncode, proc.stderr.strip()


@pytest.mark.parametrize("where", ["results.md", "students/kd-cl/model.pt", "curriculum.csv", "teacher/result.json",
                                   "config.yaml:fifo"])
def test_an_output_that_is_not_a_file_is_refused_before_training(tmp_path: Path, where: str) -> None:
    """A results.md or model.pt that is a folder was found only after training; a config.yaml FIFO hung at the end."""
    import os

    out = tmp_path / "run"
    path = out / where.removesuffix(":fifo")
    path.parent.mkdir(parents=True, exist_ok=True)
    if where.endswith(":fifo"):
        os.mkfifo(path)
    else:
        path.mkdir()
    code, err = _cli(*args(out, "run"), "distill.variants=[kd-cl]")
    assert code == 2 and err.startswith("error: ") and "\n" not in err and str(path) in err, err
    assert not (out / "teacher" / "metrics.jsonl").exists()  # refused before the first epoch


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A teacher stopped after its first epoch: teacher/last.pt is a real resume point."""
    import selective_kd.engine as engine

    out = tmp_path_factory.mktemp("resume") / "run"
    real = engine.write_jsonl

    def stop(path, rows):  # noqa: ANN001, ANN202
        real(path, rows)
        raise KeyboardInterrupt

    engine.write_jsonl = stop
    try:
        assert main(args(out, "teacher")) == 130
    finally:
        engine.write_jsonl = real
    assert (out / "teacher" / "last.pt").exists()
    return out


def _shared_history(state: dict) -> None:
    nested: list = [0.5]
    for _ in range(40):  # 2**40 numbers once written out, 41 objects in the file
        nested = [nested, nested]
    state["history"][0]["lam_batches"] = nested


RESUME_CASES = {
    "shared-references": (_shared_history, "history entry 0"),
    "no-optimizer": (lambda s: s.pop("optimizer"), "'optimizer'"),
    "optimizer-not-state": (lambda s: s.update(optimizer={"state": [], "param_groups": []}), "'state'"),
    "model-a-list": (lambda s: s.update(model=[1, 2]), "'model'"),
    "epoch-text": (lambda s: s.update(epoch="1"), "'epoch'"),
    "history-of-text": (lambda s: s.update(history=["epoch 1"]), "history entry 0"),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_a_resume_point_is_checked_against_its_schema(interrupted: Path, tmp_path: Path, case: str) -> None:
    """A resumed history with shared references expanded exponentially when written; missing fields were tracebacks."""
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    last = out / "teacher" / "last.pt"
    state = torch.load(last, weights_only=True)
    change, words = RESUME_CASES[case]
    change(state)
    torch.save(state, last)
    code, err = _cli(*args(out, "teacher"), timeout=120)
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert str(last) in err and words in err, err


def test_crossfit_with_more_folds_than_a_class_has_samples_is_refused_before_training(tmp_path: Path) -> None:
    """It trained the teacher and the folds, then failed."""
    out = tmp_path / "run"
    code, err = _cli(*args(out, "run"), "distill.variants=[kd-cl]", "curriculum.scorer=crossfit",
                     "curriculum.params.folds=25", "data.limit_train=40")
    assert code == 2 and "folds" in err and "\n" not in err, err
    assert not (out / "teacher" / "metrics.jsonl").exists()
