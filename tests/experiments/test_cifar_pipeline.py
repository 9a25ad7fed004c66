"""The CIFAR pipelines end to end on small archives in the exact official layout."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fakecifar import patch_md5, write_fake_cifar
from torchvision_naming import torchvision_style_state_dict

from selective_kd.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SMALL = [  # the paper's configs with models small enough for a test
    "teacher.arch=resnet18", "teacher.width=0.0625", "teacher.epochs=1",
    "student.width=0.0625", "student.epochs=1", "eval_batch_size=256",
]


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv") as fh:
        return list(csv.DictReader(fh))


def test_paper_cifar10_pipeline_with_pretrained_teacher_and_augmentation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = write_fake_cifar(tmp_path / "data", "cifar10", n_train=100, n_test=40)
    patch_md5(monkeypatch, archive, "cifar10")  # verify=true against the fake archive's own sums
    weights = tmp_path / "resnet18-imagenet.pth"
    torch.save(torchvision_style_state_dict("resnet18"), weights)
    out = tmp_path / "run"
    code = main(["run", "--quiet", "--config", str(ROOT / "configs/paper/cifar10.yaml"), "--out", str(out),
                 f"data.root={archive}", *SMALL, "teacher.width=1.0", f"teacher.pretrained={weights}",
                 "student.augment=true", "student.crop_padding=1", "distill.teacher_cache=on"])
    assert code == 0
    rows = _rows(out)
    assert [r["model"] for r in rows] == ["teacher", "unguided", "kd", "kd-cl", "kd-cl-inv", "kd-cl-sr", "kd-cl-inv-sr"]
    assert {r["dataset"] for r in rows} == {"cifar10"}
    assert rows[0]["init"] == "pretrained (resnet18-imagenet.pth)"
    assert len((out / "curriculum.csv").read_text().splitlines()) == 1 + 100
    cache = list((out / "teacher" / "cache").glob("*.npy"))
    assert len(cache) == 1 and tuple(__import__("numpy").load(cache[0], mmap_mode="r").shape) == (100, 18, 10)  # (2·1+1)² shifts × 2 flips
    assert "pretrained (resnet18-imagenet.pth)" in (out / "results.md").read_text()


def test_paper_cifar100_split_pipeline_reports_table5(tmp_path: Path) -> None:
    archive = write_fake_cifar(tmp_path / "data", "cifar100", n_train=500, n_test=100)
    out = tmp_path / "run"
    code = main(["run", "--quiet", "--config", str(ROOT / "configs/paper/cifar100-split.yaml"), "--out", str(out),
                 f"data.root={archive}", "data.verify=false", *SMALL, "distill.variants=[kd, kd-cl-sr]"])
    assert code == 0
    rows = _rows(out)
    assert [r["model"] for r in rows] == ["teacher", "kd", "kd-cl-sr"]
    assert len((out / "curriculum.csv").read_text().splitlines()) == 1 + 200  # the smaller (2/5) part, 2 per class
    assert "Table 5" in (out / "results.md").read_text()
    assert rows[0]["init"] == "from scratch"


def test_strong_cifar100_coarse_labels(tmp_path: Path) -> None:
    root = write_fake_cifar(tmp_path / "data", "cifar100", n_train=200, n_test=40, archive=False)
    out = tmp_path / "run"
    code = main(["run", "--quiet", "--config", str(ROOT / "configs/strong/cifar100.yaml"), "--out", str(out),
                 f"data.root={root}", "data.verify=false", "data.labels=coarse", *SMALL,
                 "distill.variants=[unguided, kd-cl-inv-sr]", "teacher.augment=true",
                 "teacher.warmup_epochs=0", "student.warmup_epochs=0"])
    assert code == 0
    assert torch.load(out / "teacher" / "model.pt", weights_only=False)["num_classes"] == 20


def test_report_puts_datasets_side_by_side(tmp_path: Path) -> None:
    outs = []
    for name in ("cifar10", "cifar100"):
        archive = write_fake_cifar(tmp_path / name, name, n_train=200, n_test=40)
        out = tmp_path / f"run-{name}"
        assert main(["run", "--quiet", "--config", str(ROOT / f"configs/paper/{name}.yaml"), "--out", str(out),
                     f"data.root={archive}", "data.verify=false", *SMALL, "distill.variants=[kd]"]) == 0
        outs.append(str(out))
    assert main(["report", *outs, "--out", str(tmp_path / "both")]) == 0
    md = (tmp_path / "both" / "results.md").read_text()
    assert "| model | cifar10 val acc | cifar10 val loss | cifar10 epochs to 95% | cifar100 val acc" in md
    assert (tmp_path / "both" / "figure3_convergence_cifar100.png").exists()


def test_unchanged_paper_config_starts_on_an_official_archive(tmp_path: Path) -> None:
    """`selective-kd run --config configs/paper/cifar10.yaml data.root=DIR` starts training."""
    write_fake_cifar(tmp_path / "data", "cifar10", n_train=100, n_test=20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "selective_kd", "run", "--config", str(ROOT / "configs/paper/cifar10.yaml"),
         "--out", str(tmp_path / "run"), f"data.root={tmp_path / 'data'}", "data.verify=false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    seen = []
    end = time.time() + 120
    try:
        while time.time() < end:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "teacher: training resnet152" in line:
                break
    finally:
        proc.kill()
        proc.wait()
    text = "".join(seen)
    assert "cifar10: train 100, val 20, 10 classes" in text, text
    assert "teacher: training resnet152 (width 1) on 100 samples for 350 epochs from scratch" in text, text


def test_missing_cifar_says_what_to_put_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["teacher", "--config", str(ROOT / "configs/paper/cifar10.yaml"), "--out", str(tmp_path / "o"),
                 f"data.root={tmp_path / 'empty'}", "data.download=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "cifar-10-python.tar.gz" in err and len(err.splitlines()) == 1
    code = main(["teacher", "--config", str(ROOT / "configs/paper/cifar10.yaml"), "--out", str(tmp_path / "o")])
    assert code == 2 and "needs data.root" in capsys.readouterr().err
