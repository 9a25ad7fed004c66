"""A model registered by name (as a plugin would) runs the whole pipeline exactly as ours do (issue 19)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from selective_kd.cli import main
from selective_kd.models import MODELS

pytestmark = pytest.mark.slow

SMALL = ["data.limit_train=200", "teacher.epochs=1", "student.epochs=1", "batch_size=32",
         "student.arch=resnet18", "student.width=0.0625", "distill.variants=[kd]", "distill.teacher_cache=on"]
TEACHER = ["teacher.arch=mlp-net", "teacher.width=1.0", "teacher.arch_params={hidden: 24}"]


class MLP(nn.Module):
    def __init__(self, num_classes: int, in_features: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


@pytest.fixture
def mlp_net() -> Iterator[None]:
    @MODELS.register("mlp-net", params={"hidden": 16, "side": 8})
    def mlp(num_classes: int, in_channels: int, hidden: int, side: int) -> nn.Module:
        """A two-layer perceptron on side×side images."""
        return MLP(num_classes, in_channels * side * side, hidden)

    yield
    del MODELS._table["mlp-net"]


def test_a_registered_teacher_trains_distils_is_reused_and_its_params_are_its_identity(
        mlp_net: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(out), *SMALL, *TEACHER]) == 0
    ckpt = torch.load(out / "teacher/model.pt", weights_only=True)
    assert ckpt["arch"] == "mlp-net" and ckpt["arch_params"] == {"hidden": 24, "side": 8}
    assert ckpt["state_dict"]["fc.weight"].shape == (10, 24)
    result = json.loads((out / "teacher/result.json").read_text())
    assert result["identity"]["teacher"]["arch_params"] == {"hidden": 24, "side": 8}
    assert len(list((out / "teacher/cache").glob("*.npy"))) == 1  # the cached teacher logits came from it
    student = (out / "students/kd/model.pt").read_bytes()

    # The same settings, the default named explicitly: everything is reused.
    assert main(["run", "--quiet", "--out", str(out), *SMALL, *TEACHER[:2], "teacher.arch_params={hidden: 24, side: 8}"]) == 0
    assert (out / "students/kd/model.pt").read_bytes() == student

    # Another parameter is another teacher: the folder is refused, naming the key.
    assert main(["run", "--quiet", "--out", str(out), *SMALL, *TEACHER[:2], "teacher.arch_params={hidden: 12}"]) == 2
    assert "teacher.arch_params.hidden" in capsys.readouterr().err

    # Its model.pt serves as a teacher elsewhere (rebuilt from the record), and a record
    # that no longer fits the registered model is one line.
    other = tmp_path / "other"
    assert main(["student", "--quiet", "--out", str(other), "--teacher", str(out / "teacher/model.pt"), "--variant", "kd",
                 *SMALL]) == 0
    ckpt["arch_params"] = {"hidden": 24, "depth": 2}
    (tmp_path / "changed").mkdir()
    torch.save(ckpt, tmp_path / "changed/model.pt")
    assert main(["student", "--quiet", "--out", str(tmp_path / "third"), "--teacher", str(tmp_path / "changed/model.pt"),
                 "--variant", "kd", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert "changed/model.pt records a model this installation builds otherwise" in err and "depth" in err and "\n" not in err
