"""The student loss of the paper (section 1), one function per equation.

    L_ce      = CE(y_true, P_S)
    L_kd      = τ² · KL(P_T ‖ P_S)            P = softmax(logits / τ)
    L_student = (1 − λ)·L_ce + λ·L_kd

The KL is summed over classes and averaged over the batch (PyTorch's
``KLDivLoss(reduction="batchmean")``, the paper's Table 4). ``λ`` may be one number or
one value per sample; per-sample weights apply before the batch average.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cross_entropy_term(student_logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """L_ce per sample: CE(y_true, P_S) at temperature 1."""
    return F.cross_entropy(student_logits.float(), targets, reduction="none", label_smoothing=label_smoothing)


def kd_term(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """L_kd per sample: τ²·KL(softmax(teacher/τ) ‖ softmax(student/τ)), summed over classes.

    The teacher's logits are detached: the teacher is a fixed target, never trained here.
    The τ² factor keeps the gradient scale comparable to CE as τ grows (Hinton et al.).
    """
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    return (t * t) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def student_loss(ce: Tensor, kd: Tensor, lam: float | Tensor) -> Tensor:
    """L_student = mean over the batch of (1 − λ)·L_ce + λ·L_kd (λ scalar or per sample)."""
    return ((1.0 - lam) * ce + lam * kd).mean()


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    lam: float | Tensor,
    temperature: float,
) -> Tensor:
    """The paper's student loss in one call: (1−λ)·CE + λ·τ²·KL(teacher ‖ student), batchmean."""
    if isinstance(lam, Tensor) and lam.dim() not in (0, 1):
        raise ValueError(f"lam must be a scalar or one value per sample, got shape {tuple(lam.shape)}")
    return student_loss(
        cross_entropy_term(student_logits, targets), kd_term(student_logits, teacher_logits, temperature), lam
    )


