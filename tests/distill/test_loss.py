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


# --------------------------------------------------------------------------- trust (issue 12)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan"), float("inf"), torch.tensor(1.01), torch.tensor([0.2, -1e-6]),
                                 torch.tensor([0.2, float("nan")])])
def test_lambda_outside_zero_one_is_refused(lam: float | torch.Tensor) -> None:
    with pytest.raises(ValueError, match=r"lam must (lie in|be a number in) \[0, 1\]"):
        kd_loss(S, T, Y, lam, 4.0)


@pytest.mark.parametrize("lam", [torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.5])])
def test_per_sample_lambda_of_wrong_length_names_the_shapes(lam: torch.Tensor) -> None:
    with pytest.raises(ValueError, match=rf"lam has {lam.shape[0]} values .* but the batch has 2 samples"):
        kd_loss(S, T, Y, lam, 4.0)


@pytest.mark.parametrize("lam", [0, 1, 0.0, 1.0, torch.tensor(0.0), torch.tensor([0.0, 1.0])])
def test_lambda_edges_are_accepted(lam: float | torch.Tensor) -> None:
    assert torch.isfinite(kd_loss(S, T, Y, lam, 4.0))


def test_float64_inputs_stay_float64() -> None:
    s64, t64 = S.double(), T.double()
    assert cross_entropy_term(s64, Y).dtype == torch.float64
    assert kd_term(s64, t64, 4.0).dtype == torch.float64
    loss = kd_loss(s64, t64, Y, 0.25, 4.0)
    assert loss.dtype == torch.float64
    # the exact value to float64 precision, from the closed forms of the tests above
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert kd_loss(s64, t64, Y, 0.0, 4.0).item() == pytest.approx(ce, rel=1e-14)


def test_tiny_logit_differences_survive_in_float64() -> None:
    """A KL of 1e-9 drowns in float32 rounding (as it did when every input was cast with .float())."""
    s = torch.tensor([[0.0, 1e-4]], dtype=torch.float64)
    t = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    kd = kd_term(s, t, 1.0).item()
    assert kd == pytest.approx((1e-4) ** 2 / 8, rel=1e-3)  # KL ≈ Var·δ²/2 = δ²/8 for two classes


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_computed_in_float32(dtype: torch.dtype) -> None:
    loss = kd_loss(S.to(dtype), T.to(dtype), Y, 0.5, 4.0)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(kd_loss(S, T, Y, 0.5, 4.0).item(), rel=1e-6)  # S, T are exact in half
