"""The student's objective for the engine: logits, teacher signal, λ, loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from selective_kd.distill.loss import cross_entropy_term, kd_term, student_loss
from selective_kd.distill.policies import LambdaPolicy
from selective_kd.distill.teacher import TeacherSignal
from selective_kd.engine import Batch


@dataclass(frozen=True)
class DistillObjective:
    """(1−λ)·CE + λ·τ²·KL(teacher ‖ student), with λ from a policy and teacher logits from a signal."""

    teacher: TeacherSignal
    policy: LambdaPolicy
    temperature: float

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # Teacher first: an online teacher run after the student's forward works while the
        # student's activations are held for backward, and on CPUs that made the step ~30%
        # slower (its large temporaries then need fresh pages from the OS).
        teacher_logits = self.teacher(batch)
        logits = model(batch.x)
        ce = cross_entropy_term(logits, batch.y)
        kd = kd_term(logits, teacher_logits, self.temperature)
        lam = self.policy(batch.idx, batch.batch_idx)
        loss = student_loss(ce, kd, lam)
        lam_mean = torch.as_tensor(lam, device=loss.device, dtype=torch.float32).mean()
        return loss, {"loss": loss.detach(), "ce": ce.detach().mean(), "kd": kd.detach().mean(), "lam": lam_mean}
