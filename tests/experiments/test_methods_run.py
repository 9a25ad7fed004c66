"""Every distillation method (issue 16) trains a student end to end on tiny digits, composes with
a curriculum and selective reliance, and CTKD's learned temperature resumes exactly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import selective_kd.engine as engine
from selective_kd.checkpoint import load_checkpoint
from selective_kd.cli import main

SMALL = ["data.limit_train=200", "teacher.epochs=1", "teacher.arch=resnet18", "teacher.width=0.125",
         "student.arch=resnet18", "student.width=0.0625", "batch_size=32"]

METHODS = {
    "m-kd": "{loss: kd}",
    "m-mse": "{loss: mse}",
    "m-dkd": "{loss: dkd}",
    "m-ls": "{loss: kd, loss_params: {standardize: true, temperature: 2}}",
    "m-dist": "{loss: dist}",
    "m-wsld": "{loss: wsld}",
    "m-wttm": "{loss: wttm}",
    "m-ctkd": "{loss: kd, temperature: ctkd}",
    "dkd-cl-sr": "{order: curriculum, policy: selective, loss: dkd}",
}


def _metrics(stage: Path) -> list[dict]:
    return [json.loads(line) for line in (stage / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_every_method_trains_a_student_and_composes_with_a_curriculum(tmp_path: Path) -> None:
    custom = "distill.custom_variants={" + ", ".join(f"{k}: {v}" for k, v in METHODS.items()) + "}"
    out = tmp_path / "methods"
    assert main(["run", "--quiet", "--out", str(out), *SMALL, "student.epochs=2", custom,
                 f"distill.variants=[{','.join(METHODS)}]"]) == 0
    for name in METHODS:
        result = json.loads((out / "students" / name / "result.json").read_text())
        assert result["epochs"] == 2 and math.isfinite(result["val_acc"]) and math.isfinite(result["val_loss"]), name
        assert all(math.isfinite(m["train_loss"]) and math.isfinite(m["train_kd"]) for m in _metrics(out / "students" / name))
        assert result["identity"]["variant"]["loss"] == METHODS[name].split("loss: ")[1].split(",")[0].rstrip("}")
    temps = [m["train_temperature"] for m in _metrics(out / "students/m-ctkd")]
    assert temps[0] != temps[1] and all(1.0 < t < 21.0 for t in temps)  # learned, in CTKD's range
    sr = _metrics(out / "students/dkd-cl-sr")
    assert any(lam != 0.5 for m in sr for lam in m["lam_batches"])  # λ from selective reliance, not a constant
    ident = json.loads((out / "students/m-ls/result.json").read_text())["identity"]["variant"]
    assert ident["loss_params"] == {"temperature": 2.0, "standardize": True}


@pytest.mark.slow
def test_an_interrupted_ctkd_student_resumes_to_the_uninterrupted_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args = [*SMALL, "student.epochs=3", "distill.custom_variants={ctkd: {loss: dkd, temperature: ctkd}}",
            "distill.variants=[ctkd]"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(["run", "--quiet", "--out", str(whole), *args]) == 0

    real = engine.write_jsonl

    def stop_after_the_first_student_epoch(path, rows):  # noqa: ANN001, ANN202
        real(path, rows)
        if "students" in Path(path).parts and len(rows) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine, "write_jsonl", stop_after_the_first_student_epoch)
    assert main(["run", "--quiet", "--out", str(cut), *args]) == 130
    stage = cut / "students/ctkd"
    mid = load_checkpoint(stage / "last.pt")
    assert mid["epoch"] == 1 and list(mid["objective"]) == ["learned_temperature.theta"]
    monkeypatch.setattr(engine, "write_jsonl", real)
    assert main(["run", "--quiet", "--out", str(cut), *args]) == 0

    a, b = load_checkpoint(whole / "students/ctkd/model.pt"), load_checkpoint(stage / "model.pt")
    theta_a, theta_b = a["objective"]["learned_temperature.theta"], b["objective"]["learned_temperature.theta"]
    assert torch.equal(theta_a, theta_b) and not torch.equal(theta_a, mid["objective"]["learned_temperature.theta"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_metrics(whole / "students/ctkd")) == drop(_metrics(stage))
    temps = [m["train_temperature"] for m in _metrics(stage)]
    assert len(temps) == 3 and len(set(temps)) > 1  # logged every epoch; θ moves (slowly: the reversal starts near 0)


def test_ctkd_with_a_method_without_temperature_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--quiet", "--out", str(tmp_path / "x"), "distill.custom_variants={x: {loss: mse, temperature: ctkd}}",
                 "distill.variants=[x]"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert "ctkd learns the loss's temperature and loss 'mse' has none" in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.pt"))
