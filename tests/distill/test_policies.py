"""λ policies: the paper's selective-reliance equation, its shift and clamp, and the registry."""

from __future__ import annotations

import pytest
import torch

from selective_kd.distill import (
    POLICIES,
    ConstantLambda,
    LabelAwareSelectiveReliance,
    PerSampleSelectiveReliance,
    ScheduledLambda,
    SelectiveReliance,
    default_shift,
    label_confidence,
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


def test_label_confidence_is_top1_where_the_scorer_predicts_the_label_and_zero_where_not() -> None:
    conf = torch.tensor([0.9, 0.9, 0.3])
    correct = torch.tensor([True, False, False])
    assert label_confidence(conf, correct).tolist() == pytest.approx([0.9, 0.0, 0.0])


def test_label_aware_sr_relies_on_the_teacher_where_the_scorer_contradicts_the_label() -> None:
    conf = torch.tensor([0.99, 0.97, 0.97, 0.99])
    correct = torch.tensor([True, True, False, False])  # the last two: confidently put in another class
    source = FixedConfidence(conf, 0.99, (1 - 0.98) / 0.99, correct)
    easy, contradicted = batch([0, 1]), batch([2, 3])
    assert LabelAwareSelectiveReliance(source)(easy).item() == pytest.approx(SelectiveReliance(source)(easy).item())
    assert LabelAwareSelectiveReliance(source)(easy).item() == pytest.approx(0.0, abs=1e-6)
    assert SelectiveReliance(source)(contradicted).item() == pytest.approx(0.0, abs=1e-6)  # the paper's rule: "easy"
    # the scorer backs neither label: λ = (1 − 0) / 0.99 − s
    assert LabelAwareSelectiveReliance(source)(contradicted).item() == pytest.approx((1 - (1 - 0.98)) / 0.99, rel=1e-5)
    assert isinstance(make_policy("selective-label", {}, source), LabelAwareSelectiveReliance)


def test_label_aware_sr_without_correctness_flags_says_what_it_needs() -> None:
    with pytest.raises(ValueError, match="needs the curriculum's correct column"):
        LabelAwareSelectiveReliance(FixedConfidence(torch.tensor([0.9]), 0.9, 0.0))(batch([0]))
