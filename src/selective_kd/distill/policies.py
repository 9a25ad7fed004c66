"""λ policies: how much a batch relies on the teacher.

A policy maps the indices of a batch (positions in the student's training set) to λ,
a number or one value per sample. Constant λ gives the paper's Student-Unguided (0) and
Student-KD (0.5); selective reliance (paper section 3) gives one λ per batch from the
teacher's confidence in that batch:

    λ_b = (1 − C̄_b) / max(C_g) − s

with C̄_b the batch's mean teacher confidence, max(C_g) the largest confidence over the
training set, and s a shift that sets the easiest batch's λ to zero. The paper leaves
the clamp implicit; we clamp λ to [0, 1] so the loss stays a convex mix of CE and KD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor


class LambdaPolicy(Protocol):
    """λ for this process's samples ``idx`` of the batch ``batch_idx`` (the whole batch
    across data-parallel ranks; ``idx`` itself in one process). Indices are positions in
    the training set, on the training device."""

    def __call__(self, idx: Tensor, batch_idx: Tensor | None = None) -> float | Tensor: ...


def selective_reliance_lambda(batch_confidence: Tensor | float, max_confidence: float, shift: float) -> Tensor | float:
    """The paper's equation: λ = (1 − C̄_b) / max(C_g) − s (unclamped)."""
    return (1.0 - batch_confidence) / max_confidence - shift


def default_shift(confidence: Tensor, curriculum_order: Tensor, batch_size: int) -> float:
    """The s that gives the forward curriculum's first (easiest) batch λ = 0 exactly."""
    first = confidence[curriculum_order[:batch_size]].double().mean().item()
    return float(selective_reliance_lambda(first, confidence.max().item(), 0.0))


@dataclass(frozen=True)
class ConstantLambda:
    """The same λ for every batch (0: no teacher; 0.5: the paper's KD students)."""

    value: float

    def __call__(self, idx: Tensor, batch_idx: Tensor | None = None) -> float:
        return self.value


@dataclass(frozen=True)
class SelectiveReliance:
    """One λ per batch from the batch's mean teacher confidence (the paper's λ*)."""

    confidence: Tensor  # per training sample, on the training device
    max_confidence: float
    shift: float

    def __call__(self, idx: Tensor, batch_idx: Tensor | None = None) -> Tensor:
        whole = idx if batch_idx is None else batch_idx
        lam = selective_reliance_lambda(self.confidence[whole].mean(), self.max_confidence, self.shift)
        return torch.clamp(lam, 0.0, 1.0)


@dataclass(frozen=True)
class PerSampleSelectiveReliance:
    """Beyond the paper: λ_i = (1 − C_i)/max(C_g) − s for each sample, not each batch.

    Reliance then follows each sample's difficulty even when batches mix easy and hard
    samples (random order), which the per-batch rule cannot see.
    """

    confidence: Tensor
    max_confidence: float
    shift: float

    def __call__(self, idx: Tensor, batch_idx: Tensor | None = None) -> Tensor:
        lam = selective_reliance_lambda(self.confidence[idx], self.max_confidence, self.shift)
        return torch.clamp(lam, 0.0, 1.0)


def make_policy(
    kind: str, *, lam: float, confidence: Tensor | None, shift: float | None
) -> LambdaPolicy:
    """Build the policy a variant names; selective kinds need the teacher's confidences."""
    if kind == "constant":
        return ConstantLambda(lam)
    if confidence is None or shift is None:
        raise ValueError(f"policy {kind!r} needs the curriculum's confidences and a shift")
    cls = {"selective": SelectiveReliance, "selective-sample": PerSampleSelectiveReliance}[kind]
    return cls(confidence, float(confidence.max().item()), shift)
