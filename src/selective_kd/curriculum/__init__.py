"""Curriculum (paper section 3): scoring, ordering easy to hard, pacing; each by name."""

from selective_kd.curriculum.ordering import (
    ORDERS,
    curriculum_order,
    difficulty_order,
    epoch_generator,
    inverse_order,
    stratify_by_class,
)
from selective_kd.curriculum.pacing import PACING, Pacer, split_batches, steps_per_epoch
from selective_kd.curriculum.scorers import SCORERS, ScoringContext, is_dynamic
from selective_kd.curriculum.scoring import Scores, score_samples, scores_from_logits, teacher_logits
from selective_kd.curriculum.table import Curriculum, read_curriculum, write_curriculum

__all__ = [
    "ORDERS",
    "PACING",
    "SCORERS",
    "Curriculum",
    "Pacer",
    "Scores",
    "ScoringContext",
    "curriculum_order",
    "difficulty_order",
    "epoch_generator",
    "inverse_order",
    "is_dynamic",
    "read_curriculum",
    "score_samples",
    "scores_from_logits",
    "split_batches",
    "steps_per_epoch",
    "stratify_by_class",
    "teacher_logits",
    "write_curriculum",
]
