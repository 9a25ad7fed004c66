"""λ policies: how much a batch relies on the teacher.

A policy maps a batch (its sample indices in the student's training set, and the
training progress) to λ, a number or one value per sample. Constant λ gives the paper's
Student-Unguided (0) and Student-KD (0.5); selective reliance (paper section 3) gives
one λ per batch from the teacher's confidence in that batch:

    λ_b = (1 − C̄_b) / max(C_g) − s

with C̄_b the batch's mean teacher confidence, max(C_g) the largest confidence over the
training set, and s a shift that sets the easiest batch's λ to zero. The paper leaves
the clamp implicit; we clamp λ to [0, 1] so the loss stays a convex mix of CE and KD.

Policies are chosen by name from ``POLICIES``; each declares its parameters and what it
needs ("curriculum": the scores' confidences; "progress": where training is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from selective_kd.registry import Registry

if TYPE_CHECKING:
    from selective_kd.engine import Batch


class LambdaPolicy(Protocol):
    """λ for this process's samples of ``batch`` (``batch.idx``; ``batch.batch_idx`` is the
    whole batch across data-parallel ranks, None in one process)."""

    def __call__(self, batch: Batch) -> float | Tensor: ...


class ConfidenceSource(Protocol):
    """Where selective policies read confidences: fixed scores, or a curriculum re-scored in training."""

    confidence: Tensor  # per training sample, on the training device
    max_confidence: float
    shift: float


@dataclass
class FixedConfidence:
    confidence: Tensor
    max_confidence: float
    shift: float


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

    def __call__(self, batch: Batch) -> float:
        return self.value


@dataclass(frozen=True)
class SelectiveReliance:
    """One λ per batch from the batch's mean teacher confidence (the paper's λ*)."""

    source: ConfidenceSource

    def __call__(self, batch: Batch) -> Tensor:
        whole = batch.idx if batch.batch_idx is None else batch.batch_idx
        s = self.source
        return torch.clamp(selective_reliance_lambda(s.confidence[whole].mean(), s.max_confidence, s.shift), 0.0, 1.0)


@dataclass(frozen=True)
class PerSampleSelectiveReliance:
    """Beyond the paper: λ_i = (1 − C_i)/max(C_g) − s for each sample, not each batch.

    Reliance then follows each sample's difficulty even when batches mix easy and hard
    samples (random order), which the per-batch rule cannot see.
    """

    source: ConfidenceSource

    def __call__(self, batch: Batch) -> Tensor:
        s = self.source
        return torch.clamp(selective_reliance_lambda(s.confidence[batch.idx], s.max_confidence, s.shift), 0.0, 1.0)


@dataclass(frozen=True)
class ScheduledLambda:
    """Beyond the paper: λ follows training progress, from ``start`` to ``end`` (linear ramp).

    Reliance then tracks how far training is rather than how hard a sample is.
    """

    start: float
    end: float

    def __call__(self, batch: Batch) -> float:
        return self.start + (self.end - self.start) * min(1.0, max(0.0, batch.progress))


# --------------------------------------------------------------------------- registry
# Each entry builds a policy from its parameters and, for selective kinds, the source of
# confidences. Adding a policy is one function and one line.

POLICIES: Registry[Any] = Registry("λ policy", "policy")


@POLICIES.register("constant", params={"lam": 0.5})
def constant(source: ConfidenceSource | None, lam: float) -> LambdaPolicy:
    """A fixed λ (the paper's 0 and 0.5)."""
    return ConstantLambda(lam)


@POLICIES.register("selective", needs=("teacher", "curriculum"))
def selective(source: ConfidenceSource | None) -> LambdaPolicy:
    """The paper's selective reliance: one λ per batch from its mean confidence."""
    assert source is not None, "selective reliance needs the curriculum's confidences"
    return SelectiveReliance(source)


@POLICIES.register("selective-sample", needs=("teacher", "curriculum"))
def selective_sample(source: ConfidenceSource | None) -> LambdaPolicy:
    """Selective reliance per sample rather than per batch."""
    assert source is not None, "selective reliance needs the curriculum's confidences"
    return PerSampleSelectiveReliance(source)


@POLICIES.register("schedule", params={"start": 0.0, "end": 0.5}, needs=("teacher", "progress"))
def schedule(source: ConfidenceSource | None, start: float, end: float) -> LambdaPolicy:
    """λ ramps linearly from ``start`` to ``end`` over training."""
    return ScheduledLambda(start, end)


def lambda_params_in_range(name: str, params: dict[str, Any]) -> str | None:
    """The first parameter outside [0, 1] (λ mixes CE and KD convexly), or None."""
    for k in ("lam", "start", "end"):
        if k in params and not 0.0 <= float(params[k]) <= 1.0:
            return k
    return None


def uses_teacher(name: str, params: dict[str, Any]) -> bool:
    """Whether a policy ever gives λ > 0 (λ ≡ 0 trains on labels alone: no teacher needed)."""
    if name == "constant":
        return float(params["lam"]) != 0.0
    if name == "schedule":
        return float(params["start"]) != 0.0 or float(params["end"]) != 0.0
    return True


def make_policy(name: str, params: dict[str, Any], source: ConfidenceSource | None = None) -> LambdaPolicy:
    """Build the policy a variant names, with its checked parameters."""
    comp = POLICIES.get(name)
    if "curriculum" in comp.needs and source is None:
        raise ValueError(f"policy {name!r} needs the curriculum's confidences")
    return comp.fn(source, **params)
