"""A finished stage is reused only when everything that produced it is identical (issue 8, section 1)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from selective_kd.cli import main
from selective_kd.curriculum.scoring import teacher_logits
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.engine import Batch
from selective_kd.models import build_model

pytestmark = pytest.mark.slow

SMALL = ["data.limit_train=300", "student.epochs=2", "teacher.epochs=2"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import TINY

    out = tmp_path_factory.mktemp("ident") / "run"
    assert main(["run", "--quiet", "--out", str(out), *TINY, *SMALL, "distill.variants=[unguided,kd,kd-cl]"]) == 0
    return out


def again(out: Path, *extra: str, variant: str = "kd-cl", rest: tuple[str, ...] = ()) -> list[str]:
    from conftest import TINY

    return ["student", "--quiet", "--out", str(out), "--variant", variant, *rest, *TINY, *SMALL,
            "distill.variants=[unguided,kd,kd-cl]", *extra]


def copy(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def test_identical_settings_reuse_the_student(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = copy(finished, tmp_path)
    before = (out / "students/kd-cl/model.pt").read_bytes()
    assert main(again(out)) == 0
    assert (out / "students/kd-cl/model.pt").read_bytes() == before


def test_another_curriculum_file_is_not_passed_off_as_the_one_used(finished: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = copy(finished, tmp_path)
    rows = list(csv.reader(open(out / "curriculum.csv")))
    header, body = rows[0], rows[1:]
    body[0][0], body[1][0] = body[1][0], body[0][0]  # swap the two easiest samples: another order
    body[0][1], body[1][1] = body[1][1], body[0][1]
    body[0][2], body[1][2] = body[1][2], body[0][2]
    for k in (header.index("noisy"), header.index("true_label")):  # the label's own columns move with it
        body[0][k], body[1][k] = body[1][k], body[0][k]
    other = tmp_path / "other.csv"
    with open(other, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([header, *body])
    assert main(again(out, rest=("--curriculum", str(other)))) == 2
    err = capsys.readouterr().err
    assert "holds a run made with other settings" in err and "curriculum differ" in err


def test_a_retrained_teacher_invalidates_its_students(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = copy(finished, tmp_path)
    ckpt = torch.load(out / "teacher/model.pt", weights_only=True)
    ckpt["state_dict"]["fc.bias"] = ckpt["state_dict"]["fc.bias"] + 0.01  # same settings, other weights
    torch.save(ckpt, out / "teacher/model.pt")
    assert main(again(out, variant="kd")) == 2
    assert "teacher_weights differ" in capsys.readouterr().err


def test_precision_is_part_of_a_runs_identity(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = copy(finished, tmp_path)
    assert main(again(out, "precision=bf16", variant="unguided")) == 2
    assert "precision differ" in capsys.readouterr().err


def test_any_setting_of_a_section_is_part_of_the_identity(finished: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = copy(finished, tmp_path)
    assert main(again(out, "student.nesterov=true", "distill.temperature=2")) == 2
    err = capsys.readouterr().err
    assert "student.nesterov" in err and "distill.temperature" in err


def test_kd_variants_honour_label_smoothing() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    batch = Batch(logits, y, torch.arange(8), None)
    objective = DistillObjective(lambda b: torch.zeros(8, 5), ConstantLambda(0.0), 4.0, label_smoothing=0.2)
    loss, _ = objective(lambda x: x, batch)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y, label_smoothing=0.2).item(), rel=1e-6)


def test_curricula_are_scored_in_fp32_whatever_the_training_precision(finished: Path, tmp_path: Path) -> None:
    from conftest import TINY

    out = tmp_path / "bf16"
    args = ["curriculum", "--quiet", "--out", str(out), "--teacher", str(finished / "teacher"), *TINY, *SMALL,
            "distill.variants=[unguided,kd,kd-cl]", "precision=bf16"]
    assert main(args) == 0
    assert (out / "curriculum.csv").read_text() == (finished / "curriculum.csv").read_text()


def test_scoring_ignores_an_enclosing_autocast() -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", 10, 1, "cifar", 0.125).eval()
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        exact = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scored = teacher_logits(model, x, 8)
    assert scored.dtype == torch.float32 and torch.equal(scored, exact)
