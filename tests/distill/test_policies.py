"""λ policies: the paper's selective-reliance equation, its shift and clamp, and the registry."""

from __future__ import annotations

import pytest
import torch

from selective_kd.distill import (
    POLICIES,
    ConstantLambda,
    PerSampleSelectiveReliance,
    ScheduledLambda,
    SelectiveReliance,
    default_shift,
    make_policy,
    selective_reliance_lambda,
)
from selective_kd.distill.policies import FixedConfidence
from selective_kd.engine import Batch


def batch(idx: list[int], progress: float = 0.0) -> Batch:
    t = torch.tensor(idx)
    return Batch(torch.zeros(len(idx), 1), torch.zeros(len(idx), dtype=torch.long), t, None, progress=progress)


def test_equation_matches_the_paper() -> None:
    # λ = (1 − C̄_b) / max(C_g) − s
    assert selective_reliance_lambda(0.6, 0.8, 0.1) == pytest.approx((1 - 0.6) / 0.8 - 0.1)


def test_constant_policy_ignores_the_batch() -> None:
    assert ConstantLambda(0.5)(batch([3, 1])) == 0.5


def test_default_shift_zeroes_the_easiest_batch_and_hard_batches_rely_more() -> None:
    conf = torch.tensor([0.99, 0.97, 0.6, 0.4, 0.95, 0.5], dtype=torch.float64)
    order = torch.tensor([0, 1, 4, 2, 5, 3])  # easiest first
    s = default_shift(conf, order, batch_size=2)
    assert s == pytest.approx((1 - 0.98) / 0.99)
    policy = SelectiveReliance(FixedConfidence(conf.float(), 0.99, s))
    first = policy(batch(order[:2].tolist())).item()
    last = policy(batch(order[4:].tolist())).item()
    assert first == pytest.approx(0.0, abs=1e-6)
    assert last == pytest.approx((1 - 0.45) / 0.99 - s, rel=1e-5)
    assert last > policy(batch(order[2:4].tolist())).item() > first


def test_lambda_is_clamped_to_unit_interval() -> None:
    conf = torch.tensor([0.01, 0.02, 0.99])
    assert SelectiveReliance(FixedConfidence(conf, 0.1, 0.0))(batch([0, 1])).item() == 1.0  # raw value 9.85
    assert SelectiveReliance(FixedConfidence(conf, 0.99, 0.5))(batch([2])).item() == 0.0  # raw value < 0


def test_per_sample_policy_gives_one_lambda_per_sample() -> None:
    conf = torch.tensor([1.0, 0.5, 0.0])
    lam = PerSampleSelectiveReliance(FixedConfidence(conf, 1.0, 0.0))(batch([0, 1, 2]))
    assert lam.tolist() == pytest.approx([0.0, 0.5, 1.0])


def test_schedule_ramps_lambda_with_training_progress() -> None:
    policy = ScheduledLambda(0.1, 0.7)
    assert policy(batch([0], progress=0.0)) == pytest.approx(0.1)
    assert policy(batch([0], progress=0.5)) == pytest.approx(0.4)
    assert policy(batch([0], progress=1.0)) == pytest.approx(0.7)


def test_policies_are_built_by_name_with_their_parameters() -> None:
    assert make_policy("constant", {"lam": 0.25})(batch([0])) == 0.25
    assert isinstance(make_policy("schedule", POLICIES.params("schedule", {"end": 0.9})), ScheduledLambda)
    with pytest.raises(ValueError, match="needs the curriculum"):
        make_policy("selective", {})
    assert set(POLICIES.names()) >= {"constant", "selective", "selective-sample", "schedule"}
