"""The student loss of the paper (section 1), one function per equation.

    L_ce      = CE(y_true, P_S)
    L_kd      = τ² · KL(P_T ‖ P_S)            P = softmax(logits / τ)
    L_student = (1 − λ)·L_ce + λ·L_kd

The KL is summed over classes and averaged over the batch (PyTorch's
``KLDivLoss(reduction="batchmean")``, the paper's Table 4). ``λ`` may be one number or
one value per sample; per-sample weights apply before the batch average.

Precision: logits in half precision (bf16/fp16, from autocast) are computed in float32,
where softmax and log stay accurate; float32 and float64 inputs keep their precision.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor


def _at_least_fp32(x: Tensor) -> Tensor:
    """Upcast bf16/fp16 (too coarse for log-softmax over many classes); never downcast float64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def cross_entropy_term(student_logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """L_ce per sample: CE(y_true, P_S) at temperature 1."""
    return F.cross_entropy(_at_least_fp32(student_logits), targets, reduction="none", label_smoothing=label_smoothing)


def kd_term(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """L_kd per sample: τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)), summed over classes.

    The teacher's logits are detached: the teacher is a fixed target, never trained here.
    The τ² factor keeps the gradient scale comparable to CE as τ grows (Hinton et al.).
    """
    t = temperature
    log_p_s = F.log_softmax(_at_least_fp32(student_logits) / t, dim=1)
    log_p_t = F.log_softmax(_at_least_fp32(teacher_logits.detach()) / t, dim=1)
    return (t * t) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def student_loss(ce: Tensor, kd: Tensor, lam: float | Tensor) -> Tensor:
    """L_student = mean over the batch of (1 − λ)·L_ce + λ·L_kd (λ scalar or per sample)."""
    return ((1.0 - lam) * ce + lam * kd).mean()


def check_lambda(lam: float | Tensor, batch: int) -> None:
    """Refuse λ outside [0, 1] (or NaN) and a per-sample λ whose length is not the batch size.

    Inspecting a tensor's values synchronises with its device: the training loop's
    objective calls :func:`student_loss` directly, with λ its policies already clamp.
    """
    if isinstance(lam, Tensor):
        if lam.dim() not in (0, 1):
            raise ValueError(f"lam must be a scalar or one value per sample, got shape {tuple(lam.shape)}")
        if lam.dim() == 1 and lam.shape[0] != batch:
            raise ValueError(f"lam has {lam.shape[0]} values (shape {tuple(lam.shape)}) but the batch has {batch} samples "
                             f"(logits of shape ({batch}, C)): give one value per sample or one number")
        bad = ~((lam >= 0) & (lam <= 1))  # NaN fails both comparisons
        if bool(bad.any()):
            first = lam.reshape(-1)[bad.reshape(-1)][0].item()
            raise ValueError(f"lam must lie in [0, 1], got {first} ({int(bad.sum())} value(s) outside)")
        return
    if not isinstance(lam, numbers.Real) or isinstance(lam, bool) or math.isnan(lam) or not 0 <= lam <= 1:
        raise ValueError(f"lam must be a number in [0, 1] or a tensor of them, got {lam!r}")


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    lam: float | Tensor,
    temperature: float,
) -> Tensor:
    """The paper's student loss in one call: (1−λ)·CE + λ·τ²·KL(teacher ‖ student), batchmean.

    ``lam`` must lie in [0, 1] (a convex mix of the two terms), as one number or one value
    per sample; anything else is a ``ValueError`` naming the shapes or the bad value.
    """
    check_lambda(lam, student_logits.shape[0])
    return student_loss(
        cross_entropy_term(student_logits, targets), kd_term(student_logits, teacher_logits, temperature), lam
    )


