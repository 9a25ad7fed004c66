"""A student's plan: the confidences selective policies read follow a re-scoring scorer, and a resume."""

from __future__ import annotations

import torch
from torch import nn

from selective_kd.curriculum import Curriculum, Scores
from selective_kd.distill import make_policy
from selective_kd.engine import Batch
from selective_kd.experiments.plans import StudentPlan


def curriculum(correct: list[bool]) -> Curriculum:
    n = len(correct)
    label = torch.zeros(n, dtype=torch.long)
    ok = torch.tensor(correct)
    conf = torch.full((n,), 0.9, dtype=torch.float64)
    return Curriculum(Scores(label, (~ok).long(), conf, conf.log(), ok), torch.arange(n))


def plan(rescore: Curriculum) -> StudentPlan:
    return StudentPlan(order="curriculum", pacing="none", pacing_params={}, n=4, batch_size=2, epochs=2, seed=0,
                       curriculum=curriculum([True] * 4), fixed_shift=0.0, device=torch.device("cpu"),
                       rescore=lambda model: rescore, every=1)


def lam(p: StudentPlan, idx: list[int]) -> float:
    assert p.source is not None
    policy = make_policy("selective-label", {}, p.source)
    t = torch.tensor(idx)
    return float(policy(Batch(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), t, None)))


def test_label_aware_reliance_reads_the_re_scored_correctness_and_a_resume_restores_it() -> None:
    rescored = curriculum([True, True, False, False])  # the student now contradicts samples 2 and 3
    p = plan(rescored)
    before = lam(p, [2, 3])
    p.batches(1, nn.Identity())  # epoch 1: the scorer re-scores
    after = lam(p, [2, 3])
    assert before == lam(p, [0, 1]) and after > before  # (1 − 0)/0.9 against (1 − 0.9)/0.9
    resumed = plan(rescored)
    resumed.load_state_dict(p.state_dict())
    assert lam(resumed, [2, 3]) == after
