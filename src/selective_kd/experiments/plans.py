"""A student's epoch plan: its order, its pacing, and (for dynamic scorers) re-scoring.

The engine asks the plan for each epoch's batches. Here the variant's components meet:
the order (``curriculum.ORDERS``) arranges the curriculum, the pacing function
(``curriculum.PACING``) decides how much of it each step may draw from, and a dynamic
scorer re-scores the training set with the student every ``every`` epochs, rebuilding
the order and the confidences that selective λ policies read. The re-scored curriculum
travels in the checkpoint, so a resumed run continues from the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from selective_kd.curriculum import ORDERS, PACING, Curriculum, Pacer, Scores, write_curriculum
from selective_kd.distill.policies import default_shift


@dataclass
class ConfidenceHolder:
    """The confidences selective policies read; replaced when a dynamic scorer re-scores."""

    confidence: Tensor
    max_confidence: float
    shift: float
    correct: Tensor | None = None  # the scorer's prediction agrees with the label (label-aware SR reads it)
    plan: StudentPlan | None = None  # the batches to come, for policies that look ahead (SR's controls)


class StudentPlan:
    """Batches for one student variant, epoch by epoch (see the module docstring)."""

    def __init__(
        self,
        *,
        order: str,
        pacing: str,
        pacing_params: dict[str, Any],
        n: int,
        batch_size: int,
        epochs: int,
        seed: int,
        curriculum: Curriculum | None,
        fixed_shift: float | None,
        device: torch.device,
        rescore: Callable[[nn.Module], Curriculum] | None = None,
        every: int = 0,
        write_to: Path | None = None,
    ) -> None:
        fn = PACING.get(pacing).fn
        self.pacer = Pacer(lambda p: fn(p, **pacing_params), pacing != "none", n, batch_size, epochs, seed)
        self.order_fn = ORDERS.get(order).fn
        self.random = "curriculum" not in ORDERS.get(order).needs
        self.n, self.seed, self.batch_size, self.epochs = n, seed, batch_size, epochs
        self.fixed_shift, self.device = fixed_shift, device
        self.rescore, self.every, self.write_to = rescore, every, write_to
        self.curriculum = curriculum
        self.source: ConfidenceHolder | None = self._source(curriculum) if curriculum is not None else None

    def _source(self, cur: Curriculum) -> ConfidenceHolder:
        conf = cur.scores.confidence
        shift = self.fixed_shift if self.fixed_shift is not None else default_shift(conf, cur.order, self.batch_size)
        return ConfidenceHolder(conf.float().to(self.device), float(conf.max().item()), shift,
                                cur.scores.correct.to(self.device), self)

    def _adopt(self, cur: Curriculum) -> None:
        self.curriculum = cur
        fresh = self._source(cur)
        assert self.source is not None
        self.source.confidence, self.source.max_confidence, self.source.shift = fresh.confidence, fresh.max_confidence, fresh.shift
        self.source.correct = fresh.correct

    @property
    def shift(self) -> float | None:
        return None if self.source is None else self.source.shift

    def steps(self, epoch: int) -> int:
        return self.pacer.steps(epoch)

    def batches(self, epoch: int, model: nn.Module) -> list[Tensor]:
        if self.rescore is not None and epoch > 0 and epoch % self.every == 0:
            self._adopt(self.rescore(model))
            if self.write_to is not None and self.curriculum is not None:
                write_curriculum(self.write_to, self.curriculum)
        return self._batches(epoch)

    def planned_batches(self, epoch: int) -> list[Tensor]:
        """The batches of ``epoch`` known before training; a re-scoring plan cannot know them."""
        if self.rescore is not None:
            raise ValueError("a plan whose curriculum is re-scored in training cannot tell its batches in advance")
        return self._batches(epoch)

    def _batches(self, epoch: int) -> list[Tensor]:
        ordered = self.curriculum.order if self.curriculum is not None else None
        # Paced random orders keep one permutation (Wu et al.'s "random curriculum"): a
        # fresh one per epoch would make the paced prefix cover everything.
        e = 0 if (self.random and self.pacer.paced) else epoch
        return self.pacer.batches(self.order_fn(ordered, self.n, e, self.seed), epoch)

    def state_dict(self) -> dict[str, Any]:
        if self.rescore is None or self.curriculum is None:
            return {}
        s = self.curriculum.scores
        return {"order": self.curriculum.order, "label": s.label, "prediction": s.prediction,
                "confidence": s.confidence, "log_confidence": s.log_confidence, "correct": s.correct,
                "true_label": self.curriculum.true_label}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state and self.rescore is not None:
            scores = Scores(state["label"], state["prediction"], state["confidence"], state["log_confidence"], state["correct"])
            self._adopt(Curriculum(scores, state["order"], state.get("true_label")))
