"""Curriculum scorers: each pinned on small fakes, and each run end to end on tiny digits."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from selective_kd.cli import main
from selective_kd.curriculum import SCORERS
from selective_kd.curriculum.scorers import stratified_folds


@dataclass
class FakeContext:
    """Models are lookup tables of logits; records what each scorer trained on."""

    y: Tensor
    logits_by_model: dict[str, Tensor]
    seed: int = 0
    stratify: bool = False
    model_seed: int = 0
    trained: list[tuple[str, str, list[int] | None]] = field(default_factory=list)

    def kd_teacher(self) -> nn.Module:
        return _Named("teacher")

    def train_model(self, role: str, on: str, idx: Tensor | None, name: str, seed: int) -> nn.Module:
        self.trained.append((role, on, None if idx is None else sorted(idx.tolist())))
        return _Named(name)

    def logits(self, model: nn.Module, idx: Tensor | None = None) -> Tensor:
        table = self.logits_by_model[model.name]  # type: ignore[attr-defined]
        return table if idx is None else table[idx]


class _Named(nn.Module):
    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


def test_folds_are_stratified_and_cover_every_sample_once() -> None:
    y = torch.tensor([0] * 6 + [1] * 4)
    fold = stratified_folds(y, 2, seed=1)
    assert sorted(fold.tolist()) == [0] * 5 + [1] * 5
    for c in (0, 1):
        counts = torch.bincount(fold[y == c], minlength=2)
        assert counts.max() - counts.min() <= 1


def test_crossfit_scores_each_sample_with_a_model_that_never_trained_on_it() -> None:
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    fold = stratified_folds(y, 3, seed=0)
    tables = {f"fold{f}": torch.full((6, 2), float(f)) for f in range(3)}
    for f in range(3):
        tables[f"fold{f}"][:, 0] += 10.0 * (f + 1)  # each fold model is confident to its own degree
    ctx = FakeContext(y, tables)
    cur = SCORERS.get("crossfit").fn(ctx, folds=3)
    for role, on, idx in ctx.trained:
        assert role == "teacher" and on == "student_train"
    for f, (_, _, idx) in enumerate(ctx.trained):
        held = torch.nonzero(fold == f).flatten().tolist()
        assert set(held).isdisjoint(idx or []) and len(held) + len(idx or []) == 6
        expected = torch.softmax(tables[f"fold{f}"][0].double(), 0).max().item()
        for i in held:
            assert cur.scores.confidence[i].item() == pytest.approx(expected)


def test_ensemble_averages_the_members_softmax() -> None:
    y = torch.tensor([0, 1])
    t = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    m1 = torch.tensor([[0.0, 2.0], [0.0, 3.0]])
    cur = SCORERS.get("ensemble").fn(FakeContext(y, {"teacher": t, "member1": m1}), members=2)
    mean = (torch.softmax(t.double(), 1) + torch.softmax(m1.double(), 1)) / 2
    assert cur.scores.confidence.tolist() == pytest.approx(mean.max(1).values.tolist())
    assert cur.scores.prediction.tolist() == mean.argmax(1).tolist()


def test_self_paced_loss_puts_low_loss_first() -> None:
    class Table(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x

    x = torch.tensor([[0.0, 5.0], [5.0, 0.0], [1.0, 0.0], [0.0, 0.1]])
    y = torch.tensor([0, 0, 0, 0])  # losses: high, lowest, middle, high-ish
    cur = SCORERS.get("loss").fn(Table(), x, y, 2, False)
    assert cur.order.tolist() == [1, 2, 3, 0]
    assert cur.scores.confidence[1].item() == pytest.approx(torch.softmax(x[1], 0)[0].item())


SMALL = ["data.limit_train=300", "teacher.epochs=2", "student.epochs=2", "teacher.arch=resnet18",
         "teacher.width=0.125", "student.width=0.0625", "batch_size=64"]


@pytest.mark.slow
@pytest.mark.parametrize(("scorer", "params", "models"), [
    ("crossfit", "{folds: 2}", ["fold0", "fold1"]),
    ("self-taught", "{}", ["self-taught"]),
    ("ensemble", "{members: 2}", ["member1"]),
])
def test_each_static_scorer_runs_on_digits(tmp_path: Path, scorer: str, params: str, models: list[str]) -> None:
    out = tmp_path / scorer
    assert main(["run", "--quiet", "--out", str(out), *SMALL, f"curriculum.scorer={scorer}",
                 f"curriculum.params={params}", "distill.variants=[kd-cl-sr]"]) == 0
    meta = json.loads((out / "curriculum.json").read_text())
    assert meta["scorer"] == scorer and meta["identity"]["curriculum"]["scorer"] == scorer
    for m in models:
        assert (out / "scorers" / m / "model.pt").is_file()
    assert (out / "figure1_curriculum.png").is_file()
    # the same command again reuses the scorer's curriculum and models
    assert main(["run", "--quiet", "--out", str(out), *SMALL, f"curriculum.scorer={scorer}",
                 f"curriculum.params={params}", "distill.variants=[kd-cl-sr]"]) == 0


DYNAMIC = ("distill.custom_variants={snap: {order: curriculum, policy: selective, scorer: snapshot, "
           "scorer_params: {every: 2}}, lossy: {order: curriculum, policy: selective-sample, scorer: loss, "
           "scorer_params: {every: 1}}}")


@pytest.mark.slow
def test_dynamic_scorers_rescore_with_the_student(tmp_path: Path) -> None:
    out = tmp_path / "dyn"
    assert main(["run", "--quiet", "--out", str(out), *SMALL, "student.epochs=3", DYNAMIC,
                 "distill.variants=[snap,lossy]"]) == 0
    for v in ("snap", "lossy"):
        assert (out / "students" / v / "curriculum.csv").is_file()  # the student's latest scores
        assert (out / "students" / v / "curriculum.csv").read_text() != (out / "curriculum.csv").read_text()


@pytest.mark.slow
def test_a_dynamic_curriculum_resumes_to_the_same_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import selective_kd.engine as engine

    args = ["run", "--quiet", *SMALL, "student.epochs=4", DYNAMIC, "distill.variants=[snap]"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    real, calls = engine.evaluate, {"n": 0}

    def stop_in_epoch_four(*a, **k):  # noqa: ANN002, ANN003
        calls["n"] += 1
        if calls["n"] == 2 + 4:  # 2 teacher epochs, then the student's fourth
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(engine, "evaluate", stop_in_epoch_four)
    assert main([*args, "--out", str(tmp_path / "cut")]) == 130
    monkeypatch.setattr(engine, "evaluate", real)
    assert json.loads((tmp_path / "cut/students/snap/metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 3
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    a = torch.load(tmp_path / "whole/students/snap/model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut/students/snap/model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
