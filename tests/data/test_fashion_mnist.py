"""Real data beyond digits: a short teacher run on a stratified subset of Fashion-MNIST.

Uses the copy Debian's ``dataset-fashion-mnist`` installs (``.ci/run`` installs it when it
runs as root); skipped, saying so, where it is absent. Never downloads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selective_kd.cli import main
from selective_kd.data.idx import FILES, RELEASES

SYSTEM = Path(RELEASES["fashion-mnist"].system_dirs[0])
INSTALLED = all((SYSTEM / n).is_file() or (SYSTEM / f"{n}.gz").is_file() for n in FILES)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not INSTALLED, reason=f"Fashion-MNIST not in {SYSTEM}: apt-get install dataset-fashion-mnist"),
]


def test_teacher_learns_fashion_mnist_well_above_chance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1,000 stratified training images, 2 epochs of a small ResNet-18: ~70% on 500 official test images (chance: 10%)."""
    code = main([
        "teacher", "--quiet", "--out", str(tmp_path), "dataset=fashion-mnist", "data.download=false",
        "data.limit_train=1000", "data.limit_val=500", "device=cpu", "channels_last=false",
        "teacher.arch=resnet18", "teacher.width=0.125", "teacher.epochs=2", "teacher.batch_size=32",
        "teacher.lr=0.05", "teacher.schedule=cosine",
    ])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "teacher" / "result.json").read_text())
    assert result["val_acc"] > 0.5, result
