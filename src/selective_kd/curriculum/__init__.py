"""Curriculum (paper section 3): scoring by the teacher, ordering easy to hard, pacing."""

from selective_kd.curriculum.ordering import curriculum_order, difficulty_order, inverse_order, stratify_by_class
from selective_kd.curriculum.pacing import epoch_generator, epoch_order, split_batches
from selective_kd.curriculum.scoring import Scores, score_samples, scores_from_logits
from selective_kd.curriculum.table import Curriculum, read_curriculum, write_curriculum

__all__ = [
    "Curriculum",
    "Scores",
    "curriculum_order",
    "difficulty_order",
    "epoch_generator",
    "epoch_order",
    "inverse_order",
    "read_curriculum",
    "score_samples",
    "scores_from_logits",
    "split_batches",
    "stratify_by_class",
    "write_curriculum",
]
