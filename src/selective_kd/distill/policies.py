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
    correct: Tensor | None  # per training sample: does the scorer's prediction agree with the label


@dataclass
class FixedConfidence:
    confidence: Tensor
    max_confidence: float
    shift: float
    correct: Tensor | None = None


class BatchPlan(Protocol):
    """A student's batches known before training: what the selective-reliance controls read."""

    seed: int
    epochs: int

    def steps(self, epoch: int) -> int: ...

    def planned_batches(self, epoch: int) -> list[Tensor]:
        """The index tensors (whole batches, CPU) the engine will train epoch ``epoch`` on."""
        ...


def selective_reliance_lambda(batch_confidence: Tensor | float, max_confidence: float, shift: float) -> Tensor | float:
    """The paper's equation: λ = (1 − C̄_b) / max(C_g) − s (unclamped)."""
    return (1.0 - batch_confidence) / max_confidence - shift


def clamped_lambda(confidence: Tensor, source: ConfidenceSource) -> Tensor:
    """The paper's λ for a (batch mean or per-sample) confidence, clamped to [0, 1] (see the module docstring)."""
    return torch.clamp(selective_reliance_lambda(confidence, source.max_confidence, source.shift), 0.0, 1.0)


def label_confidence(confidence: Tensor, correct: Tensor) -> Tensor:
    """Beyond the paper: how far the scorer backs each sample's *given* label.

    The paper's C is the Top-1 confidence, whichever class it is for, so a sample the scorer
    confidently puts in another class (under label noise, typically a flipped label) reads as
    easy and gets λ near 0: SR then leans on the teacher least where the label is most likely
    wrong (STUDY.md, round 2). Here a sample counts C where the scorer predicts its label and
    0 where it predicts another class. The label's own probability there lies somewhere in
    [0, 1 − C] and the curriculum does not record it; 0, the lower end, says "the scorer
    does not back this label", and for a confident scorer 1 − C is small anyway.
    """
    return torch.where(correct.to(torch.bool), confidence, torch.zeros_like(confidence))


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
        return clamped_lambda(self.source.confidence[whole].mean(), self.source)


@dataclass(frozen=True)
class LabelAwareSelectiveReliance:
    """Beyond the paper: the paper's per-batch λ with C replaced by :func:`label_confidence`.

    A batch of samples the scorer assigns to other classes than their labels now gets a
    large λ (rely on the teacher, not on those labels) instead of the paper's λ ≈ 0 for a
    confident scorer. The shift is the run's: it zeroes the curriculum's first batch, whose
    samples the scorer gets right, so that batch gets λ = 0 here too.
    """

    source: ConfidenceSource

    def __call__(self, batch: Batch) -> Tensor:
        whole = batch.idx if batch.batch_idx is None else batch.batch_idx
        s = self.source
        if s.correct is None:
            raise ValueError("policy 'selective-label' needs the curriculum's correct column (which samples the scorer got right)")
        return clamped_lambda(label_confidence(s.confidence[whole], s.correct[whole]).mean(), s)


@dataclass(frozen=True)
class PerSampleSelectiveReliance:
    """Beyond the paper: λ_i = (1 − C_i)/max(C_g) − s for each sample, not each batch.

    Reliance then follows each sample's difficulty even when batches mix easy and hard
    samples (random order), which the per-batch rule cannot see.
    """

    source: ConfidenceSource

    def __call__(self, batch: Batch) -> Tensor:
        return clamped_lambda(self.source.confidence[batch.idx], self.source)


@dataclass(frozen=True)
class ScheduledLambda:
    """Beyond the paper: λ follows training progress, from ``start`` to ``end`` (linear ramp).

    Reliance then tracks how far training is rather than how hard a sample is.
    """

    start: float
    end: float

    def __call__(self, batch: Batch) -> float:
        return self.start + (self.end - self.start) * min(1.0, max(0.0, batch.progress))


def selective_lambdas(source: ConfidenceSource, plan: BatchPlan) -> list[Tensor]:
    """SR's λ for every batch of every epoch (one tensor per epoch), as :class:`SelectiveReliance` gives them."""
    out = []
    for epoch in range(plan.epochs):
        values = [clamped_lambda(source.confidence[b.to(source.confidence.device)].mean(), source)
                  for b in plan.planned_batches(epoch)]
        out.append(torch.stack(values) if values else torch.empty(0, device=source.confidence.device))
    return out


def _plan_of(source: ConfidenceSource | None, name: str) -> tuple[ConfidenceSource, BatchPlan]:
    plan = getattr(source, "plan", None)
    if source is None or plan is None:
        raise ValueError(f"policy {name!r} needs the curriculum's confidences and the student's batch plan")
    return source, plan


@dataclass(frozen=True)
class ShuffledLambda:
    """A λ per step, looked up by (epoch, step); the step follows from ``batch.progress``.

    Why progress: the engine gives each step ``progress = (steps before it) / total``, so
    the step within the epoch is exact without the policy counting calls (which a resume
    or a second rank would disturb).
    """

    table: list[Tensor]  # per epoch, λ per step
    before: list[int]  # steps before each epoch
    total: int

    def __call__(self, batch: Batch) -> Tensor:
        step = round(batch.progress * self.total) - self.before[batch.epoch]
        return self.table[batch.epoch][step]


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


@POLICIES.register("selective-label", needs=("teacher", "curriculum"))
def selective_label(source: ConfidenceSource | None) -> LambdaPolicy:
    """Selective reliance on the scorer's confidence in each sample's given label."""
    assert source is not None, "selective reliance needs the curriculum's confidences"
    return LabelAwareSelectiveReliance(source)


@POLICIES.register("selective-mean", needs=("teacher", "curriculum", "plan"))
def selective_mean(source: ConfidenceSource | None) -> LambdaPolicy:
    """Control for SR: a constant λ equal to the mean λ SR would give in this run.

    Computed before training from the curriculum's confidences and the student's batch
    plan (its order, pacing and seed): SR's λ of every batch of every epoch, averaged
    over samples (each batch weighs its size). Every epoch has the same number of
    samples, so this is also the mean over epochs that SR's result.json logs as
    ``lam_mean``. SR and this control then distill equally much in total; only SR makes
    λ follow the batch's difficulty, so "SR differs from KD" is told apart from "less
    teacher".
    """
    src, plan = _plan_of(source, "selective-mean")
    lams = selective_lambdas(src, plan)
    weights = [torch.tensor([float(b.numel()) for b in plan.planned_batches(e)], dtype=torch.float64)
               for e in range(plan.epochs)]
    total = sum(float((lam.double().cpu() * w).sum()) for lam, w in zip(lams, weights))
    return ConstantLambda(total / sum(float(w.sum()) for w in weights))


@POLICIES.register("selective-shuffled", needs=("teacher", "curriculum", "plan"))
def selective_shuffled(source: ConfidenceSource | None) -> LambdaPolicy:
    """Control for SR: SR's own per-batch λ values, in a shuffled batch order.

    Each epoch keeps exactly the multiset of λ values SR gives its batches, permuted by
    a generator seeded by (student seed, epoch): λ no longer follows the batch it is
    applied to, while its amount and its spread stay SR's.
    """
    from selective_kd.curriculum.ordering import epoch_generator

    src, plan = _plan_of(source, "selective-shuffled")
    table = []
    for epoch, lam in enumerate(selective_lambdas(src, plan)):
        perm = torch.randperm(lam.numel(), generator=epoch_generator(plan.seed, epoch, stream=3))
        table.append(lam[perm.to(lam.device)])
    steps = [plan.steps(e) for e in range(plan.epochs)]
    return ShuffledLambda(table, [sum(steps[:e]) for e in range(plan.epochs)], sum(steps))


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
