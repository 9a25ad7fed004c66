"""torchrun with 2 CPU processes (gloo) equals one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
# Few steps at a moderate learning rate: float rounding (summation order across ranks)
# stays at rounding size instead of being amplified by many chaotic early steps.
COMMON = [
    "--quiet", "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=2", "teacher.lr=0.01",
    "student.arch=resnet18", "student.width=0.0625", "student.epochs=2", "student.lr=0.01",
    "batch_size=50", "teacher.batch_size=50", "data.limit_train=240", "student.augment=true",
    # The default memory layout: in channels_last, oneDNN picks convolution kernels by batch
    # size, so a rank's half batch rounds differently from the whole (seen: 1.5e-3 relative
    # in the first epoch's loss). This test pins the distributed logic, not kernel choice.
    "channels_last=false",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _single(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "selective_kd", *args, *COMMON], capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr


def _torchrun(*args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
           "-m", "selective_kd", *args, *COMMON]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _metrics(stage_dir: Path) -> list[dict[str, float]]:
    return [json.loads(x) for x in (stage_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same(a_dir: Path, b_dir: Path) -> None:
    a, b = _metrics(a_dir), _metrics(b_dir)
    assert len(a) == len(b) == 2
    for ma, mb in zip(a, b):
        for k in ("train_loss", "val_loss", "val_acc", "lam_mean", "lr"):
            assert mb[k] == pytest.approx(ma[k], rel=1e-4, abs=1e-6), k
    wa = torch.load(a_dir / "model.pt", weights_only=False)["state_dict"]
    wb = torch.load(b_dir / "model.pt", weights_only=False)["state_dict"]
    assert wa.keys() == wb.keys()  # the global-batch BatchNorm keeps BatchNorm's names
    for k in wa:
        assert torch.allclose(wa[k].double(), wb[k].double(), rtol=1e-3, atol=1e-4), k  # seen: at most 3.6e-5 after 10 steps


def test_two_processes_equal_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    # oneDNN forced on for this width-0.125 teacher (8 channels into its strided 1×1 convolutions:
    # safe at one thread, OMP_NUM_THREADS=1 here, under AVX-512 and AVX2 alike). Routed to ATen's
    # convolutions (the default for it), 2 ranks and 1 process differed by 4e-3 relative in the
    # first epoch's loss (2026-12-02, not yet explained); this test pins the distributed logic.
    _single("teacher", "--out", str(one), "onednn=true")
    _torchrun("teacher", "--out", str(two), "onednn=true")
    _assert_same(one / "teacher", two / "teacher")
    assert not (two / "teacher" / "last.pt").exists()  # rank 0 finished the stage cleanly
    _single("curriculum", "--out", str(one))
    # The student on 2 ranks uses the same teacher and curriculum: per-batch λ (selective
    # reliance on the curriculum), views and sample order must match one process.
    shared = ["--teacher", str(one / "teacher"), "--curriculum", str(one / "curriculum.csv")]
    _single("student", "--variant", "kd-cl-sr", "--out", str(one), *shared)
    _torchrun("student", "--variant", "kd-cl-sr", "--out", str(two), *shared)
    _assert_same(one / "students" / "kd-cl-sr", two / "students" / "kd-cl-sr")
    lam = _metrics(two / "students" / "kd-cl-sr")[0]["lam_mean"]
    assert 0.0 < lam < 1.0


def test_a_learned_temperature_is_trained_on_the_global_batch(tmp_path: Path) -> None:
    """CTKD's θ lives in the objective, outside DDP's model: its gradient is averaged over ranks too."""
    one, two = tmp_path / "one", tmp_path / "two"
    _single("teacher", "--out", str(one))
    config = tmp_path / "ctkd.yaml"
    config.write_text("base: digits\ndistill:\n  custom_variants:\n    ctkd: {loss: kd, temperature: ctkd, temperature_params: {span: 3.0, epochs: 0}}\n")
    args = ["--teacher", str(one / "teacher"), "--config", str(config)]
    _single("student", "--variant", "ctkd", "--out", str(one), *args)
    _torchrun("student", "--variant", "ctkd", "--out", str(two), *args)
    _assert_same(one / "students" / "ctkd", two / "students" / "ctkd")
    ta = torch.load(one / "students/ctkd/model.pt", weights_only=True)["objective"]["learned_temperature.theta"]
    tb = torch.load(two / "students/ctkd/model.pt", weights_only=True)["objective"]["learned_temperature.theta"]
    moved_a, moved_b = ta.double() - 1.0, tb.double() - 1.0  # θ starts at 1
    assert moved_a.abs().item() > 1e-6 and torch.allclose(moved_a, moved_b, rtol=0.05)  # float32 θ near 1: 6e-8 steps
    for ma, mb in zip(_metrics(one / "students" / "ctkd"), _metrics(two / "students" / "ctkd")):
        assert mb["train_temperature"] == pytest.approx(ma["train_temperature"], rel=1e-5)
