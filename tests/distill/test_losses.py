"""The distillation methods (issue 16), each pinned to values worked out from its published formula.

Expected numbers are computed here by hand (closed forms in ``math``), never by the code
under test; identities (DKD's decomposition of the KL, WTTM at γ = 1) tie methods together.
"""

from __future__ import annotations

import math

import pytest
import torch

from selective_kd.distill import LOSSES, distillation_loss
from selective_kd.distill.loss import kd_loss
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.engine import Batch
from selective_kd.errors import UserError


def _softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


# --------------------------------------------------------------------------- the contract


def test_kd_trains_the_same_numbers_as_the_old_formula() -> None:
    """The engine's kd objective gives exactly the old (1−λ)·CE + λ·τ²·KL, λ scalar and per sample."""
    g = torch.Generator().manual_seed(0)
    s, t, y = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g), torch.randint(5, (8,), generator=g)
    batch = Batch(torch.zeros(8, 1), y, torch.arange(8), None)
    for lam in (0.5, 0.0, 1.0):
        obj = DistillObjective(lambda b: t, ConstantLambda(lam), 4.0)
        loss, logs = obj(lambda x: s, batch)
        assert torch.equal(loss, kd_loss(s, t, y, lam, 4.0)), lam
    assert distillation_loss("kd", s, t, y).item() == pytest.approx(kd_loss(s, t, y, 1.0, 4.0).item(), rel=1e-7)
    assert distillation_loss("kd", s, t, y, temperature=2.0).item() == pytest.approx(kd_loss(s, t, y, 1.0, 2.0).item(), rel=1e-7)


def test_unknown_methods_and_parameters_are_one_line_errors() -> None:
    s = torch.zeros(2, 3)
    y = torch.tensor([0, 1])
    with pytest.raises(UserError, match=r"unknown loss 'kl', choose one of kd, mse, dkd, dist, wsld, wttm"):
        distillation_loss("kl", s, s, y)
    with pytest.raises(UserError, match=r"loss 'mse' takes no parameter 'temperature' \(allowed: standardize\)"):
        distillation_loss("mse", s, s, y, temperature=2.0)
    with pytest.raises(UserError, match=r"loss 'dkd' needs epoch="):
        distillation_loss("dkd", s, s, y)


@pytest.mark.parametrize("name", ["kd", "mse", "dkd", "dist", "wsld", "wttm"])
def test_no_gradient_reaches_the_teacher(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    s = torch.randn(4, 5, generator=g).requires_grad_()
    t = torch.randn(4, 5, generator=g).requires_grad_()
    y = torch.tensor([0, 1, 2, 3])
    loss = distillation_loss(name, s, t, y, epoch=30, standardize=True)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
