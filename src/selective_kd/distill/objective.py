"""The student's objective for the engine: logits, teacher signal, λ, loss (mdistiller's contract)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from selective_kd.distill.loss import student_loss
from selective_kd.distill.losses import LossTerms, paper_kd_terms
from selective_kd.distill.policies import LambdaPolicy
from selective_kd.distill.teacher import TeacherSignal
from selective_kd.engine import Batch

@dataclass(frozen=True)
class DistillObjective:
    """(1−λ)·L_ce + λ·L_kd, with λ from a policy and teacher logits from a signal."""

    teacher: TeacherSignal
    policy: LambdaPolicy
    temperature: float
    label_smoothing: float = 0.0
    terms: LossTerms = paper_kd_terms
    params: dict[str, Any] = field(default_factory=dict)

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # Teacher first: an online teacher run after the student's forward works while the
        # student's activations are held for backward, and on CPUs that made the step ~30%
        # slower (its large temporaries then need fresh pages from the OS).
        teacher_logits = self.teacher(batch)
        logits = model(batch.x)
        ce, kd = self.terms(logits, teacher_logits, batch.y, self.temperature, self.label_smoothing, **self.params)
        lam = self.policy(batch)
        loss = student_loss(ce, kd, lam)
        lam_mean = torch.as_tensor(lam, device=loss.device, dtype=torch.float32).mean()
        return loss, {"loss": loss.detach(), "ce": ce.detach().mean(), "kd": kd.detach().mean(), "lam": lam_mean}
