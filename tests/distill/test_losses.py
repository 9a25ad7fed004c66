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


# --------------------------------------------------------------------------- standardize, kd, mse

L2 = math.log(2.0)
T3 = torch.tensor([[L2, 0.0, 0.0]])  # teacher: softmax = (1/2, 1/4, 1/4)
U3 = torch.zeros(1, 3)  # student: uniform


def test_standardize_is_the_z_score_with_the_unbiased_std() -> None:
    from selective_kd.distill import standardize

    z = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 3.0]])
    # row 0: mean 2, unbiased std 1; row 1: mean 1, unbiased var (1 + 1 + 4)/2 = 3
    r3 = math.sqrt(3.0)
    torch.testing.assert_close(standardize(z), torch.tensor([[-1.0, 0.0, 1.0], [-1 / r3, -1 / r3, 2 / r3]]), rtol=1e-6, atol=1e-6)
    # a teacher twice as sharp, shifted, standardizes to the same row: KD sees no difference
    s, t = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[7.0, 9.0, 11.0]])
    assert distillation_loss("kd", s, t, torch.tensor([0]), standardize=True).item() == pytest.approx(0.0, abs=1e-10)
    assert distillation_loss("kd", s, t, torch.tensor([0])).item() > 0.1


@pytest.mark.parametrize("name", ["kd", "mse", "dkd", "dist", "wsld", "wttm"])
def test_standardized_methods_ignore_each_rows_shift_and_scale(name: str) -> None:
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(6, 7, generator=g), torch.randn(6, 7, generator=g)
    y = torch.randint(7, (6,), generator=g)
    a, b = torch.rand(6, 1, generator=g) * 3 + 0.2, torch.randn(6, 1, generator=g) * 5
    base = distillation_loss(name, s, t, y, epoch=40, standardize=True).item()
    moved = distillation_loss(name, a * s + b, 2.5 * t - 1.0, y, epoch=40, standardize=True).item()
    assert moved == pytest.approx(base, rel=1e-4)
    assert distillation_loss(name, a * s + b, 2.5 * t - 1.0, y, epoch=40).item() != pytest.approx(base, rel=1e-3)


def test_mse_is_the_mean_squared_logit_difference() -> None:
    s, t = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    assert distillation_loss("mse", s, t, torch.tensor([0, 1])).item() == pytest.approx(((1 + 4) / 2 + (9 + 1) / 2) / 2)


def test_kd_by_hand() -> None:
    # KL((1/2, 1/4, 1/4) ‖ uniform) = ½ln(3/2) + ½ln(3/4) = ½ln(9/8), at τ = 1
    assert distillation_loss("kd", U3, T3, torch.tensor([0]), temperature=1.0).item() == pytest.approx(0.5 * math.log(9 / 8), rel=1e-6)


# --------------------------------------------------------------------------- DKD


def test_dkd_by_hand() -> None:
    """Teacher (1/2, 1/4, 1/4), student uniform, τ 1, α 1, β 8, warm-up done."""
    y = torch.tensor([0, 1])
    s, t = U3.repeat(2, 1), T3.repeat(2, 1)
    # label 0: TCKD = KL([1/2, 1/2] ‖ [1/3, 2/3]) = ½ln(3/2) + ½ln(3/4); NCKD = KL([1/2,1/2] ‖ [1/2,1/2]) = 0
    tckd0 = 0.5 * math.log(1.5) + 0.5 * math.log(0.75)
    # label 1: TCKD = KL([1/4, 3/4] ‖ [1/3, 2/3]); non-target classes 0, 2: teacher (2/3, 1/3), student (1/2, 1/2)
    tckd1 = 0.25 * math.log(0.75) + 0.75 * math.log(9 / 8)
    nckd1 = (2 / 3) * math.log(4 / 3) + (1 / 3) * math.log(2 / 3)
    expected = (tckd0 + tckd1 + 8 * nckd1) / 2
    assert expected == pytest.approx(0.2642, abs=1e-4)  # (0.0589 + 0.0164 + 8·0.0566) / 2
    assert distillation_loss("dkd", s, t, y, temperature=1.0, epoch=20).item() == pytest.approx(expected, rel=1e-6)
    # the warm-up min(epoch / 20, 1): a quarter in epoch 5, all of it from epoch 20 on; warmup 0 turns it off
    assert distillation_loss("dkd", s, t, y, temperature=1.0, epoch=5).item() == pytest.approx(expected / 4, rel=1e-6)
    assert distillation_loss("dkd", s, t, y, temperature=1.0, epoch=90).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss("dkd", s, t, y, temperature=1.0, epoch=1, warmup=0).item() == pytest.approx(expected, rel=1e-6)
    # α and β weight the two parts; τ² scales both (here τ 2 on logits doubled: the same distributions)
    assert distillation_loss("dkd", s, t, y, temperature=1.0, epoch=20, alpha=2.0, beta=0.0).item() == pytest.approx(
        tckd0 + tckd1, rel=1e-6)
    assert distillation_loss("dkd", 2 * s, 2 * t, y, temperature=2.0, epoch=20).item() == pytest.approx(4 * expected, rel=1e-6)


def test_dkd_decomposes_the_kl_sample_by_sample() -> None:
    """KL(p_T ‖ p_S) = TCKD + (1 − p_T,target)·NCKD for every sample (Zhao et al., eq. (4)), at τ 4."""
    g = torch.Generator().manual_seed(5)
    s, t = torch.randn(10, 6, generator=g) * 3, torch.randn(10, 6, generator=g) * 3
    y = torch.randint(6, (10,), generator=g)
    tau = 4.0
    for i in range(10):
        si, ti, yi = s[i : i + 1], t[i : i + 1], y[i : i + 1]
        kl = distillation_loss("kd", si, ti, yi, temperature=tau).item()
        tckd = distillation_loss("dkd", si, ti, yi, temperature=tau, epoch=20, alpha=1.0, beta=0.0).item()
        nckd = distillation_loss("dkd", si, ti, yi, temperature=tau, epoch=20, alpha=0.0, beta=1.0).item()
        p_target = torch.softmax(ti / tau, dim=1)[0, yi].item()
        assert kl == pytest.approx(tckd + (1 - p_target) * nckd, rel=1e-5, abs=1e-7), i


# --------------------------------------------------------------------------- DIST


def _pearson(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return num / math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))


def test_dist_is_zero_for_perfect_correlation_and_four_tau_squared_for_reversed() -> None:
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    # perfect correlation: 0 up to the eps 1e-8 beside the norms (rows here are (.56, .44) at τ 4)
    assert distillation_loss("dist", t.double(), t.double(), y).item() == pytest.approx(0.0, abs=1e-4)
    assert distillation_loss("dist", 3 * t, 3 * t, y, temperature=1.0).item() == pytest.approx(0.0, abs=1e-5)
    # two classes: every row and every column of the student is anti-correlated with the teacher's
    # (Pearson −1): inter = intra = 2, so τ²·(β·2 + γ·2) = 4τ² = 64 at τ 4
    assert distillation_loss("dist", t.flip(1), t, y).item() == pytest.approx(64.0, rel=1e-6)
    # rows: +1 and −1 (inter = 1); columns of a constant student: Pearson 0 (intra = 1); β 2, γ 1, τ 1
    assert distillation_loss("dist", torch.tensor([[1.0, 0.0], [1.0, 0.0]]), t, y, beta=2.0, temperature=1.0).item() == \
        pytest.approx(3.0, rel=1e-6)


def test_dist_matches_the_pearson_formula_on_a_small_batch() -> None:
    s = [[0.5, -1.0, 2.0, 0.0], [1.0, 1.5, -0.5, 0.2], [-2.0, 0.3, 0.1, 1.0]]
    t = [[1.0, -0.5, 1.0, 0.5], [0.0, 2.0, -1.0, 0.0], [-1.0, -1.0, 0.5, 2.0]]
    tau, beta, gamma = 2.0, 1.5, 0.5
    ys = [_softmax([v / tau for v in row]) for row in s]
    yt = [_softmax([v / tau for v in row]) for row in t]
    inter = 1 - sum(_pearson(a, b) for a, b in zip(ys, yt)) / 3
    intra = 1 - sum(_pearson([r[j] for r in ys], [r[j] for r in yt]) for j in range(4)) / 4
    expected = tau**2 * (beta * inter + gamma * intra)
    got = distillation_loss("dist", torch.tensor(s), torch.tensor(t), torch.tensor([0, 1, 2]), temperature=tau, beta=beta, gamma=gamma)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_a_batch_level_method_is_weighted_by_the_mean_lambda() -> None:
    g = torch.Generator().manual_seed(7)
    s, t, y = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g), torch.tensor([0, 1, 2, 3])
    lam = torch.tensor([0.0, 0.2, 0.6, 1.0])
    obj = DistillObjective(lambda b: t, lambda b: lam, 4.0, loss="dist")
    loss, logs = obj(lambda x: s, Batch(torch.zeros(4, 1), y, torch.arange(4), None))
    ce = torch.nn.functional.cross_entropy(s, y, reduction="none")
    expected = ((1 - lam) * ce).mean() + lam.mean() * distillation_loss("dist", s, t, y)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert logs["lam"].item() == pytest.approx(0.45)


# --------------------------------------------------------------------------- WSLD


def test_wsld_by_hand() -> None:
    # label 0; teacher (3/4, 1/4): CE_T = ln(4/3); student uniform: CE_S = ln 2
    t, s, y = torch.tensor([[math.log(3.0), 0.0]]), torch.zeros(1, 2), torch.tensor([0])
    w = 1 - math.exp(-math.log(2) / math.log(4 / 3))
    assert w == pytest.approx(0.9101, abs=1e-4)
    # H(teacher, uniform student) = ln 2 at any τ; L = τ²·w·ln 2
    assert distillation_loss("wsld", s, t, y, temperature=1.0).item() == pytest.approx(w * math.log(2), rel=1e-5)
    assert distillation_loss("wsld", s, t, y).item() == pytest.approx(16 * w * math.log(2), rel=1e-5)


def test_wsld_weights_lie_in_zero_one_and_grow_as_the_student_falls_behind() -> None:
    from selective_kd.distill.losses import wsld_weights

    g = torch.Generator().manual_seed(8)
    s, t, y = torch.randn(50, 10, generator=g) * 4, torch.randn(50, 10, generator=g) * 4, torch.randint(10, (50,), generator=g)
    w = wsld_weights(s, t, y)
    assert bool(((w >= 0) & (w <= 1)).all())  # 1 − e^(−r) < 1 in exact arithmetic; float32 rounds r ≳ 17 to 1
    good, bad = torch.zeros(1, 3), torch.zeros(1, 3)
    good[0, 0], bad[0, 0] = 5.0, -5.0
    teacher = torch.tensor([[2.0, 0.0, 0.0]])
    assert wsld_weights(good, teacher, torch.tensor([0])).item() < 0.1 < 0.99 < wsld_weights(bad, teacher, torch.tensor([0])).item()


# --------------------------------------------------------------------------- WTTM


def test_wttm_with_gamma_one_is_the_kl_at_temperature_one() -> None:
    g = torch.Generator().manual_seed(9)
    s, t, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g), torch.zeros(5, dtype=torch.long)
    expected = sum(_kl(_softmax(b), _softmax(a)) for a, b in zip(s.tolist(), t.tolist())) / 5
    assert distillation_loss("wttm", s, t, y, gamma=1.0).item() == pytest.approx(expected, rel=1e-5)
    assert distillation_loss("wttm", s, t, y, gamma=1.0).item() == pytest.approx(
        distillation_loss("kd", s, t, y, temperature=1.0).item(), rel=1e-5)


def test_wttm_by_hand() -> None:
    # teacher (1/2, 1/4, 1/4), γ ½: p^γ = (√½, ½, ½), W = √½ + 1, p̃ = p^γ / W; student uniform
    w = math.sqrt(0.5) + 1
    p_tilde = [math.sqrt(0.5) / w, 0.5 / w, 0.5 / w]
    expected = w * _kl(p_tilde, [1 / 3] * 3)
    assert distillation_loss("wttm", U3, T3, torch.tensor([0]), gamma=0.5).item() == pytest.approx(expected, rel=1e-5)
    assert LOSSES.get("wttm").params["gamma"] == 0.2


def test_the_readme_example_runs_and_is_the_documented_mix() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Methods"):text.index("## Command line")]
    code = section.split("```python\n")[1].split("```")[0]
    assert len(code.strip().splitlines()) == 3
    g = torch.Generator().manual_seed(11)
    env = {"torch": torch, "student_logits": torch.randn(4, 5, generator=g), "teacher_logits": torch.randn(4, 5, generator=g),
           "labels": torch.tensor([0, 1, 2, 3]), "epoch": 25, "lam": 0.5}
    exec(compile(code, "README.md", "exec"), env)
    obj = DistillObjective(lambda b: env["teacher_logits"], ConstantLambda(0.5), 4.0, loss="dkd", params={"standardize": True})
    loss, _ = obj(lambda x: env["student_logits"], Batch(torch.zeros(4, 1), env["labels"], torch.arange(4), None, epoch=24))
    assert env["loss"].item() == pytest.approx(loss.item(), rel=1e-6)  # the engine's loss for the same batch
