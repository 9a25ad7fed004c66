"""Student losses by name: each gives the two per-sample terms that λ mixes.

    L_student = (1 − λ)·L_ce + λ·L_kd

``kd`` is the paper's (L_kd = τ²·KL(P_T ‖ P_S) at temperature τ); ``mse`` matches logits
directly (Ba & Caruana 2014), a common alternative with no temperature. Adding a loss is
one function and one registry line.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from selective_kd.distill.loss import cross_entropy_term, kd_term
from selective_kd.registry import Registry

LossTerms = Callable[..., tuple[Tensor, Tensor]]
LOSSES: Registry[LossTerms] = Registry("loss", "loss")


@LOSSES.register("kd")
def paper_kd_terms(student: Tensor, teacher: Tensor, y: Tensor, temperature: float, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """The paper: L_ce = CE(y, P_S) and L_kd = τ²·KL(P_T ‖ P_S), per sample."""
    return cross_entropy_term(student, y, label_smoothing), kd_term(student, teacher, temperature)


@LOSSES.register("mse")
def logit_matching_terms(student: Tensor, teacher: Tensor, y: Tensor, temperature: float, label_smoothing: float) -> tuple[Tensor, Tensor]:
    """Logit matching: L_kd = mean over classes of (z_S − z_T)² (temperature unused)."""
    diff = student.float() - teacher.detach().float()
    return cross_entropy_term(student, y, label_smoothing), (diff * diff).mean(dim=1)
