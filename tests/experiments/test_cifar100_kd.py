"""configs/cifar100-kd/: the standard CIFAR-100 KD benchmark, each pair for one epoch on a small fake archive (issue 16)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from fakecifar import write_fake_cifar

from selective_kd.cli import main
from selective_kd.config import load_config
from selective_kd.errors import UserError
from selective_kd.models import build_model

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PAIRS = {"resnet32x4-resnet8x4": ("resnet32x4", "resnet8x4"), "resnet56-resnet20": ("resnet56", "resnet20"),
         "wrn-40-2-wrn-16-2": ("wrn-40-2", "wrn-16-2")}
# One step per stage: one image per class, one batch. The teacher cache is off: 162 augmented
# views per image are worth caching in a real run, not for one step.
TINY = ["teacher.epochs=1", "student.epochs=1", "data.limit_train=100", "data.limit_val=100", "batch_size=100",
        "eval_batch_size=100", "distill.teacher_cache=off"]


def test_the_recipe_is_the_published_one() -> None:
    for pair, (teacher, student) in PAIRS.items():
        cfg = load_config(ROOT / f"configs/cifar100-kd/{pair}.yaml")
        assert (cfg.dataset, cfg.data.labels, cfg.batch_size, cfg.teacher.arch, cfg.student.arch) == (
            "cifar100", "fine", 64, teacher, student)
        for stage in (cfg.teacher, cfg.student):
            assert (stage.epochs, stage.lr, stage.momentum, stage.weight_decay, stage.nesterov) == (240, 0.05, 0.9, 5e-4, False)
            assert (stage.schedule, stage.step_gamma, stage.augment, stage.crop_padding, stage.flip) == ("step", 0.1, True, 4, True)
            assert [m * 240 for m in stage.step_milestones] == [150, 180, 210]
        assert cfg.distill.temperature == 4.0 and cfg.distill.variants == ["unguided", "kd-std"]
        assert cfg.distill.custom_variants["kd-std"].policy_params == {"lam": 0.9}  # 0.1·CE + 0.9·KD


@pytest.mark.parametrize("pair", list(PAIRS))
def test_each_pair_runs_an_epoch(pair: str, tmp_path: Path) -> None:
    teacher, student = PAIRS[pair]
    archive = write_fake_cifar(tmp_path / "data", "cifar100", n_train=100, n_test=100)
    extra = []
    if pair == "resnet56-resnet20":  # from a teacher checkpoint in the layout the benchmarks distribute
        torch.manual_seed(0)
        published = build_model(teacher, 100).state_dict()
        torch.save({"epoch": 240, "model": published, "accuracy": 72.34}, tmp_path / "ckpt_epoch_240.pth")
        extra = [f"teacher.pretrained={tmp_path / 'ckpt_epoch_240.pth'}", "teacher.epochs=0"]  # used as it is
    out = tmp_path / "run"
    assert main(["run", "--quiet", "--config", str(ROOT / f"configs/cifar100-kd/{pair}.yaml"), "--out", str(out),
                 f"data.root={archive}", "data.verify=false", *TINY, *extra]) == 0
    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["model"], r["arch"], r["epochs"]) for r in rows] == [("teacher", teacher, "0" if extra else "1"),
                                                                     ("unguided", student, "1"), ("kd-std", student, "1")]
    assert rows[0]["init"] == ("pretrained (ckpt_epoch_240.pth)" if extra else "from scratch")
    if extra:  # the published weights, unchanged, are the teacher
        kept = torch.load(out / "teacher/model.pt", weights_only=True)["state_dict"]
        assert set(kept) == set(published) and all(torch.equal(kept[k], published[k]) for k in kept)
    ckpt = torch.load(out / "students/kd-std/model.pt", weights_only=True)
    assert ckpt["arch"] == student and ckpt["arch_params"] == {} and ckpt["num_classes"] == 100


def test_a_teacher_is_used_as_it_is_only_when_it_is_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UserError, match=r"'teacher.epochs': must be at least 1 \(0 uses teacher.pretrained as it is"):
        load_config(None, ["teacher.epochs=0"])
    torch.save({"model": build_model("resnet20", 100, in_channels=1).state_dict()}, tmp_path / "c100.pth")  # digits: 10
    assert main(["teacher", "--quiet", "--out", str(tmp_path / "run"), "teacher.arch=resnet20", "teacher.width=1.0",
                 f"teacher.pretrained={tmp_path / 'c100.pth'}", "teacher.epochs=0", "data.limit_train=100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "teacher.epochs=0 uses teacher.pretrained as it is, but the classifier in" in err and "does not fit 10 classes" in err
    assert "\n" not in err
