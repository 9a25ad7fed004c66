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
