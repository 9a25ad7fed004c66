"""The student's objective for the engine: logits, teacher signal, λ, method (mdistiller's contract).

It is an ``nn.Module`` so a component with state fits the engine generically: a learned
temperature (CTKD) is a submodule whose parameters the stage's optimizer trains and whose
``state_dict`` the checkpoint holds. The teacher signal and the λ policy are plain attributes,
never submodules: an online teacher's weights are not trained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from selective_kd.distill.distillation import loss_params, method_term
from selective_kd.distill.loss import cross_entropy_term, student_loss
from selective_kd.distill.policies import LambdaPolicy
from selective_kd.distill.teacher import TeacherSignal
from selective_kd.engine import Batch


class DistillObjective(nn.Module):
    """(1−λ)·L_ce + λ·L_method, λ from a policy, teacher logits from a signal.

    ``temperature`` is the default for a method's temperature (``distill.temperature``) when
    ``params`` do not give one; ``learned_temperature`` (CTKD) replaces it step by step.
    A batch-level method is weighted by λ's mean over the batch (see ``distill.losses``).
    """

    def __init__(self, teacher: TeacherSignal, policy: LambdaPolicy, temperature: float = 4.0,
                 label_smoothing: float = 0.0, loss: str = "kd", params: Mapping[str, Any] | None = None,
                 learned_temperature: nn.Module | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "teacher", teacher)  # never a submodule, whatever it holds
        object.__setattr__(self, "policy", policy)
        self.label_smoothing = label_smoothing
        self.loss = loss
        given = dict(params or {})
        if learned_temperature is not None:
            given.pop("temperature", None)
        self.params = loss_params(loss, given, None if learned_temperature is not None else temperature)
        if learned_temperature is not None:
            self.params.pop("temperature", None)
        self.learned_temperature = learned_temperature

    def forward(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # Teacher first: an online teacher run after the student's forward works while the
        # student's activations are held for backward, and on CPUs that made the step ~30%
        # slower (its large temporaries then need fresh pages from the OS).
        teacher_logits = self.teacher(batch)
        logits = model(batch.x)
        params = dict(self.params)
        logs: dict[str, Tensor] = {}
        if self.learned_temperature is not None:
            tau = self.learned_temperature(batch.epoch + 1)
            params["temperature"] = tau
            logs["temperature"] = tau.detach()
        ce = cross_entropy_term(logits, batch.y, self.label_smoothing)
        term = method_term(self.loss, logits, teacher_logits, batch.y, params, batch.epoch + 1)
        lam = self.policy(batch)
        lam_mean = torch.as_tensor(lam, device=ce.device, dtype=torch.float32).mean()
        if term.dim() == 0:  # a batch-level method: weighted by λ's batch mean
            loss = ((1.0 - lam) * ce).mean() + lam_mean * term
        else:
            loss = student_loss(ce, term, lam)
        return loss, {"loss": loss.detach(), "ce": ce.detach().mean(), "kd": term.detach().mean(), "lam": lam_mean, **logs}


def variant_objective(teacher: TeacherSignal, policy: LambdaPolicy, variant: Any, temperature: float,
                      label_smoothing: float = 0.0) -> DistillObjective:
    """The objective of a resolved variant (its loss, loss_params and temperature component)."""
    from selective_kd.distill.temperature import make_temperature

    learned = make_temperature(variant.temperature, dict(variant.temperature_params))
    return DistillObjective(teacher, policy, temperature, label_smoothing, variant.loss, dict(variant.loss_params), learned)
