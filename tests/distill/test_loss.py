"""The paper's student loss pinned to values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from selective_kd.distill import cross_entropy_term, kd_loss, kd_term

S = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # student logits
T = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # teacher logits
Y = torch.tensor([0, 1])


def _sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def test_lambda_zero_is_plain_cross_entropy() -> None:
    # CE of sample 0: log(1 + e^-2); sample 1: log(1 + e^-1); batch mean.
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert kd_loss(S, T, Y, 0.0, 4.0).item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.22009, abs=1e-5)


def test_lambda_one_is_tau_squared_kl_batchmean() -> None:
    tau = 2.0
    # sample 0: P_T = (.5, .5), P_S = softmax(1, 0); sample 1: P_T = softmax(.5, 0), P_S = softmax(0, .5)
    ps0 = (_sig(1.0), 1 - _sig(1.0))
    kl0 = sum(0.5 * math.log(0.5 / q) for q in ps0)
    pt1 = (_sig(0.5), 1 - _sig(0.5))
    ps1 = (1 - _sig(0.5), _sig(0.5))
    kl1 = sum(p * math.log(p / q) for p, q in zip(pt1, ps1))
    expected = tau**2 * (kl0 + kl1) / 2
    assert kd_loss(S, T, Y, 1.0, tau).item() == pytest.approx(expected, rel=1e-6)
    # by hand: KL0 = .5 ln(.5/.7311) + .5 ln(.5/.2689) = .1201; KL1 = (.6225 - .3775)·.5 = .1225
    assert expected == pytest.approx(0.485148, abs=1e-5)
    # PyTorch's KLDivLoss(batchmean), the paper's Table 4, agrees.
    ref = torch.nn.KLDivLoss(reduction="batchmean")(
        torch.log_softmax(S / tau, 1), torch.softmax(T / tau, 1)
    ) * tau**2
    assert kd_loss(S, T, Y, 1.0, tau).item() == pytest.approx(ref.item(), rel=1e-6)


def test_mixture_and_per_sample_lambda() -> None:
    ce = cross_entropy_term(S, Y)
    kd = kd_term(S, T, 4.0)
    assert kd_loss(S, T, Y, 0.25, 4.0).item() == pytest.approx((0.75 * ce + 0.25 * kd).mean().item(), rel=1e-6)
    lam = torch.tensor([0.0, 1.0])  # sample 0 CE only, sample 1 KD only
    assert kd_loss(S, T, Y, lam, 4.0).item() == pytest.approx(((ce[0] + kd[1]) / 2).item(), rel=1e-6)


def test_identical_distributions_have_zero_kd() -> None:
    assert kd_term(S, S, 3.0).abs().max().item() < 1e-6


def test_no_gradient_reaches_the_teacher() -> None:
    s = S.clone().requires_grad_()
    t = T.clone().requires_grad_()
    kd_loss(s, t, Y, 0.5, 4.0).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_lambda_of_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="one value per sample"):
        kd_loss(S, T, Y, torch.zeros(2, 2), 4.0)
