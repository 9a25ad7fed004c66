"""Where a method's temperature comes from: fixed (the loss parameter) or learned (CTKD).

A variant names one (``temperature: fixed | ctkd`` with ``temperature_params``). ``fixed``
builds nothing: the method uses its ``loss_params.temperature``. ``ctkd`` builds a small
``nn.Module`` that the student's objective holds: its parameter θ is trained by the stage's
optimizer and saved in the stage's checkpoints like the student's weights (the engine treats
any objective that is an ``nn.Module`` so), so an interrupted run resumes exactly.

CTKD (Li et al., "Curriculum Temperature for Knowledge Distillation", AAAI 2023): the global
temperature τ = start + span·sigmoid(θ) is trained through a gradient-reversal layer, so θ
climbs the distillation loss while the student descends it, and the reversal's strength
λ_e = strength·(1 − cos(π·min(e, epochs)/epochs))/2 rises from 0 to ``strength`` over the first
``epochs`` epochs (e the 1-based epoch): the task gets harder as training goes. Defaults from
the reference (zhengli97/CTKD): ``--t_start 1 --t_end 20`` (start, span), θ initialised to 1
(``Global_T``: ``torch.ones(1)``, so τ starts at 1 + 20·sigmoid(1) ≈ 15.6), and
``--cosine_decay 1 --decay_max 0 --decay_min -1 --decay_loops 10`` (scripts/run_cifar_distill.sh),
the cosine from 0 to −1 whose sign is the reversal. One difference: the reference's optimizer
applies weight decay to θ; ours, like every 1-dim parameter here, has none.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from selective_kd.registry import Registry


def reversal_strength(epoch: int, epochs: int, strength: float) -> float:
    """CTKD's cosine schedule: 0 before training, ``strength`` from epoch ``epochs`` on."""
    if epochs <= 0:
        return strength
    e = min(max(epoch, 0), epochs)
    return strength * (1.0 - math.cos(math.pi * e / epochs)) / 2.0


def reverse_gradient(x: Tensor, scale: float) -> Tensor:
    """``x`` in the forward pass; the gradient multiplied by −``scale`` in the backward pass."""
    return x.detach() + (-scale) * (x - x.detach())


class LearnedTemperature(nn.Module):
    """CTKD's global temperature: τ = start + span·sigmoid(GRL_λ(θ)), λ by :func:`reversal_strength`."""

    def __init__(self, start: float, span: float, init: float, epochs: int, strength: float) -> None:
        super().__init__()
        self.start, self.span, self.epochs, self.strength = start, span, epochs, strength
        self.theta = nn.Parameter(torch.full((1,), float(init)))

    def forward(self, epoch: int) -> Tensor:
        theta = reverse_gradient(self.theta, reversal_strength(epoch, self.epochs, self.strength))
        return (self.start + self.span * torch.sigmoid(theta)).reshape(())


TEMPERATURES: Registry[Any] = Registry("temperature", "temperature")


@TEMPERATURES.register("fixed")
def fixed() -> None:
    """The method's own temperature: loss_params.temperature, else distill.temperature."""
    return None


@TEMPERATURES.register("ctkd", params={"start": 1.0, "span": 20.0, "init": 1.0, "epochs": 10, "strength": 1.0},
                       needs=("epoch",))
def ctkd(start: float, span: float, init: float, epochs: int, strength: float) -> nn.Module:
    """CTKD (Li et al., AAAI 2023): a global temperature learned adversarially, harder as training goes."""
    return LearnedTemperature(start, span, init, epochs, strength)


def make_temperature(name: str, params: dict[str, Any]) -> nn.Module | None:
    """The learned temperature a variant names (None for ``fixed``)."""
    return TEMPERATURES.get(name).fn(**params)  # type: ignore[no-any-return]
