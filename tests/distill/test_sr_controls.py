"""The two controls for selective reliance: SR's mean λ as a constant, and SR's λ in shuffled batch order."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from selective_kd.cli import main
from selective_kd.config import load_config
from selective_kd.distill.policies import ConstantLambda, FixedConfidence, SelectiveReliance, make_policy
from selective_kd.engine import Batch
from selective_kd.errors import UserError


@dataclass
class FakePlan:
    """Two epochs of three batches of unequal size over 8 samples."""

    seed: int = 0
    epochs: int = 2

    def steps(self, epoch: int) -> int:
        return 3

    def planned_batches(self, epoch: int) -> list[torch.Tensor]:
        if epoch == 0:
            return [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([6, 7])]
        return [torch.tensor([7, 6, 5]), torch.tensor([4, 3, 2]), torch.tensor([1, 0])]


@dataclass
class Source(FixedConfidence):
    plan: FakePlan | None = None


CONF = torch.tensor([0.99, 0.98, 0.97, 0.9, 0.8, 0.7, 0.5, 0.3])
SOURCE = Source(CONF, 0.99, 0.0, plan=FakePlan())


def at(plan: FakePlan, epoch: int, step: int) -> Batch:
    idx = plan.planned_batches(epoch)[step]
    progress = (epoch * 3 + step) / 6  # what the engine gives: steps before this one / all steps
    return Batch(torch.zeros(idx.numel(), 1), torch.zeros(idx.numel(), dtype=torch.long), idx, None, epoch=epoch, progress=progress)


def sr_values(epoch: int) -> list[float]:
    sr = SelectiveReliance(SOURCE)
    return [float(sr(at(SOURCE.plan, epoch, s))) for s in range(3)]  # type: ignore[arg-type]


def test_mean_control_is_srs_sample_weighted_mean_over_the_whole_run() -> None:
    policy = make_policy("selective-mean", {}, SOURCE)
    assert isinstance(policy, ConstantLambda)
    sizes = [3, 3, 2]
    expected = sum(v * n for e in (0, 1) for v, n in zip(sr_values(e), sizes)) / 16
    assert policy.value == pytest.approx(expected, abs=1e-6)
    assert 0 < policy.value < 1


def test_shuffled_control_keeps_each_epochs_multiset_and_permutes_it() -> None:
    policy = make_policy("selective-shuffled", {}, SOURCE)
    orders_differ = False
    for epoch in (0, 1):
        got = [round(float(policy(at(SOURCE.plan, epoch, s))), 6) for s in range(3)]  # type: ignore[arg-type]
        want = [round(v, 6) for v in sr_values(epoch)]
        assert Counter(got) == Counter(want)
        orders_differ |= got != want
    assert orders_differ  # seed 0 moves at least one epoch's values off their batches
    again = make_policy("selective-shuffled", {}, SOURCE)
    assert [float(again(at(SOURCE.plan, 1, s))) for s in range(3)] == [float(policy(at(SOURCE.plan, 1, s))) for s in range(3)]  # type: ignore[arg-type]


def test_controls_need_the_batch_plan() -> None:
    with pytest.raises(ValueError, match="batch plan"):
        make_policy("selective-mean", {}, FixedConfidence(CONF, 0.99, 0.0))


def test_controls_refuse_a_rescoring_scorer() -> None:
    with pytest.raises(UserError, match="computes its λ before training"):
        load_config(None, ["distill.custom_variants={x: {order: curriculum, policy: selective-mean, scorer: snapshot}}",
                           "distill.variants=[x]"])


@pytest.mark.slow
def test_on_a_tiny_run_the_controls_match_srs_logged_lambdas(tmp_path: Path) -> None:
    from conftest import TINY

    out = tmp_path / "run"
    assert main(["run", "--quiet", "--out", str(out), *TINY, "data.limit_train=300", "student.batch_size=24",
                 "distill.variants=[kd-cl-sr,kd-cl-srmean,kd-cl-srshuf]"]) == 0

    def result(v: str) -> dict:
        return json.loads((out / "students" / v / "result.json").read_text())

    def batches(v: str) -> list[list[float]]:
        lines = (out / "students" / v / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["lam_batches"] for line in lines]

    sr, mean = result("kd-cl-sr"), result("kd-cl-srmean")
    assert mean["lam_mean"] == pytest.approx(sr["lam_mean"], abs=1e-6)
    assert all(len(set(e)) == 1 for e in batches("kd-cl-srmean"))  # constant
    for got, want in zip(batches("kd-cl-srshuf"), batches("kd-cl-sr"), strict=True):
        assert Counter(got) == Counter(want) and len(set(want)) > 1
    assert batches("kd-cl-srshuf") != batches("kd-cl-sr")
