"""Distillation terms by name: the L_method that λ mixes with cross-entropy.

    L_student = (1 − λ)·L_ce + λ·L_method

The contract (adding a method is one function and one registry line):

    @LOSSES.register("name", params={"temperature": 4.0, "standardize": False, ...}, needs=(...))
    def name(student: Tensor, teacher: Tensor, labels: Tensor, *, temperature: float | Tensor, ...) -> Tensor

- ``student``/``teacher`` are (B, C) logits, at least float32, the teacher's detached: the
  caller (:func:`selective_kd.distill.distillation.method_term`) does both, so no method can
  send a gradient into the teacher. ``labels`` are the (B,) class indices.
- ``params`` declares every parameter with its published CIFAR-100 default (the type of a
  default is the parameter's type); the source of each default is in the function's docstring.
- ``standardize`` (declared by every logit method) is applied by the caller, to both logits,
  before the function runs (logit standardization, Sun et al., CVPR 2024); the function never
  sees it.
- ``temperature`` may be a float or a 0-dim tensor (a learned temperature, CTKD), so a method
  uses it only arithmetically. In a config a method's temperature is ``loss_params.temperature``
  if given, else ``distill.temperature`` (which defaults to 4, the published τ of KD, DKD, DIST
  and WSLD); the run's identity records the resolved number. ``distillation_loss`` called
  directly uses the default declared here.
- ``needs``: ``"epoch"`` — the function also gets ``epoch=``, the 1-based number of the epoch
  being trained (mdistiller's and CTKD's convention); ``"batch"`` — the term is one value for
  the whole batch (a 0-dim tensor), not one per sample.
- The result is one value per sample, shape (B,), averaged over the batch by the caller, or,
  for ``"batch"`` methods, a 0-dim tensor. A per-sample λ weights per-sample terms sample by
  sample; a batch-level term is weighted by λ's mean over the batch:
  mean_i[(1 − λ_i)·CE_i] + mean_i(λ_i)·L_batch, which equals the per-sample rule whenever λ is
  one number.

Label smoothing belongs to L_ce (``loss.cross_entropy_term``), never to a method.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from selective_kd.distill.loss import kd_term
from selective_kd.registry import Registry

LossTerm = Callable[..., Tensor]
LOSSES: Registry[LossTerm] = Registry("loss", "loss")

#: The needs a loss may declare (anything else is a bug in its registry line).
LOSS_NEEDS = frozenset({"epoch", "batch"})


def standardize(logits: Tensor) -> Tensor:
    """Z-score over classes: (z − mean) / (std + 1e-7), with the unbiased std (``Tensor.std``).

    Sun et al., "Logit Standardization in Knowledge Distillation", CVPR 2024, eq. (9); the
    1e-7 and the unbiased std as in their reference code (``normalize`` in mdistiller/distillers/KD.py).
    """
    return (logits - logits.mean(dim=1, keepdim=True)) / (logits.std(dim=1, keepdim=True) + 1e-7)


@LOSSES.register("kd", params={"temperature": 4.0, "standardize": False})
def kd(student: Tensor, teacher: Tensor, labels: Tensor, *, temperature: float | Tensor) -> Tensor:
    """Hinton et al. 2015 (the paper's L_kd): τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) per sample.

    τ 4: the CIFAR-100 setting of mdistiller's ``CFG.KD.TEMPERATURE`` and of the paper's digits runs.
    """
    return kd_term(student, teacher, temperature)  # type: ignore[arg-type]


@LOSSES.register("mse", params={"standardize": False})
def mse(student: Tensor, teacher: Tensor, labels: Tensor) -> Tensor:
    """Logit matching (Ba & Caruana 2014): mean over classes of (z_S − z_T)²; no temperature."""
    diff = student - teacher
    return (diff * diff).mean(dim=1)


def _target_mask(logits: Tensor, labels: Tensor) -> Tensor:
    return F.one_hot(labels, logits.shape[1]).to(torch.bool)


@LOSSES.register("dkd", params={"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup": 20, "standardize": False},
                 needs=("epoch",))
def dkd(student: Tensor, teacher: Tensor, labels: Tensor, *, alpha: float, beta: float, temperature: float | Tensor,
        warmup: int, epoch: int) -> Tensor:
    """Decoupled KD (Zhao et al., CVPR 2022): min(epoch/warmup, 1)·(α·TCKD + β·NCKD), per sample.

    TCKD = τ²·KL([p_t, 1 − p_t] of the teacher ‖ the student's), p_t the target's probability
    at temperature τ; NCKD = τ²·KL of the softmaxes over the non-target classes (the target's
    logit/τ lowered by 1000 before the softmax, as the reference does). Defaults α 1, β 8,
    τ 4, warm-up 20 epochs: mdistiller's ``CFG.DKD`` (engine/cfg.py), its R32x4→R8x4 setting
    (the paper tunes β per pair, e.g. 2 for R56→R20, 6 for WRN-40-2→WRN-16-2). ``warmup: 0``
    turns the warm-up off.
    """
    t = temperature
    mask = _target_mask(student, labels)
    zs, zt = student / t, teacher / t

    def binary_log_probs(z: Tensor) -> Tensor:  # log [p_target, 1 − p_target], stable for confident logits
        total = torch.logsumexp(z, dim=1)
        target = z.masked_select(mask)
        rest = torch.logsumexp(z.masked_fill(mask, float("-inf")), dim=1)
        return torch.stack([target - total, rest - total], dim=1)

    bs, bt = binary_log_probs(zs), binary_log_probs(zt)
    tckd = (bt.exp() * (bt - bs)).sum(dim=1)
    ns = F.log_softmax(zs - 1000.0 * mask, dim=1)
    nt = F.log_softmax(zt - 1000.0 * mask, dim=1)
    nckd = (nt.exp() * (nt - ns)).sum(dim=1)
    ramp = min(epoch / warmup, 1.0) if warmup > 0 else 1.0
    return ramp * (t * t) * (alpha * tckd + beta * nckd)


def _pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (centred cosine).

    The eps in the denominator as in DIST's reference (``cosine_similarity``, eps 1e-8)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@LOSSES.register("dist", params={"beta": 1.0, "gamma": 1.0, "temperature": 4.0, "standardize": False}, needs=("batch",))
def dist(student: Tensor, teacher: Tensor, labels: Tensor, *, beta: float, gamma: float,
         temperature: float | Tensor) -> Tensor:
    """DIST (Huang et al., NeurIPS 2022): τ²·(β·inter + γ·intra), one value for the batch.

    y = softmax(z/τ); inter = 1 − mean over samples of the Pearson correlation of student and
    teacher rows; intra = the same over classes (the columns of the batch). β = γ = 1, τ 4:
    the CIFAR-100 setting given in issue 16 (the reference, hunto/DIST_KD, defaults β = γ = 1).
    """
    t = temperature
    ys, yt = F.softmax(student / t, dim=1), F.softmax(teacher / t, dim=1)
    inter = 1.0 - _pearson_rows(ys, yt).mean()
    intra = 1.0 - _pearson_rows(ys.t(), yt.t()).mean()
    return (t * t) * (beta * inter + gamma * intra)


def wsld_weights(student: Tensor, teacher: Tensor, labels: Tensor) -> Tensor:
    """WSLD's per-sample weight 1 − exp(−max(0, CE_S / (CE_T + 1e-7))), in [0, 1], no gradient.

    Both cross-entropies at temperature 1 on detached logits (Zhou et al. 2021, eq. (9);
    the 1e-7 as in their ``knowledge_distiller.py``)."""
    with torch.no_grad():
        ce_s = F.cross_entropy(student.detach(), labels, reduction="none")
        ce_t = F.cross_entropy(teacher.detach(), labels, reduction="none")
        return 1.0 - torch.exp(-torch.clamp(ce_s / (ce_t + 1e-7), min=0.0))


@LOSSES.register("wsld", params={"temperature": 4.0, "standardize": False})
def wsld(student: Tensor, teacher: Tensor, labels: Tensor, *, temperature: float | Tensor) -> Tensor:
    """Weighted soft labels (Zhou et al., ICLR 2021): τ²·w_i·H(softmax(t_i/τ), softmax(s_i/τ)).

    H is the soft cross-entropy −Σ p·log q (not the KL: it keeps the teacher's entropy, as the
    reference does); w_i from :func:`wsld_weights`. τ 4: the CIFAR-100 setting given in
    issue 16 (the reference repository ships only its ImageNet distiller, with τ 2).
    """
    t = temperature
    p_t = F.softmax(teacher / t, dim=1)
    h = -(p_t * F.log_softmax(student / t, dim=1)).sum(dim=1)
    return (t * t) * wsld_weights(student, teacher, labels) * h


@LOSSES.register("wttm", params={"gamma": 0.2, "standardize": False})
def wttm(student: Tensor, teacher: Tensor, labels: Tensor, *, gamma: float) -> Tensor:
    """Weighted transformed teacher matching (Zheng & Yang, ICLR 2024): W_i·KL(p̃_i ‖ softmax(s_i)).

    p = softmax(t) (temperature 1), W_i = Σ_j p_ij^γ, p̃_i = p_i^γ / W_i; the student has no
    temperature. γ = 1 is KL at τ 1. γ 0.2: the WTTM command in the reference repository's
    README (zkxufo/TTM, ``--ttm_l 0.2``); the paper tunes γ per teacher-student pair (its A.4).
    """
    log_powered = gamma * F.log_softmax(teacher, dim=1)  # log p^γ: no underflow in p
    log_w = torch.logsumexp(log_powered, dim=1, keepdim=True)
    log_p_tilde = log_powered - log_w
    kl = (log_p_tilde.exp() * (log_p_tilde - F.log_softmax(student, dim=1))).sum(dim=1)
    return log_w.squeeze(1).exp() * kl
