"""Easy-to-hard ordering of the training set (paper section 3, Figure 1).

1. Correctly classified samples first, from highest to lowest teacher confidence.
2. Then misclassified samples, from lowest to highest confidence (a confidently wrong
   teacher marks the hardest samples).
3. Stratified by class: group k holds the k-th sample of every class in the order of
   steps 1-2; groups follow each other and keep that order inside. With balanced
   classes every prefix of m·C samples holds m samples of each class.

The inverse curriculum is the exact reverse. Ties keep dataset order (stable sorts).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from selective_kd.curriculum.scoring import Scores


def difficulty_order(confidence: Tensor, correct: Tensor) -> Tensor:
    """Indices from easiest to hardest: correct by confidence ↓, then wrong by confidence ↑."""
    conf = confidence.double().cpu().numpy()
    ok = correct.cpu().numpy().astype(bool)
    # lexsort sorts by the last key first; every key ascending; ties keep index order.
    secondary = np.where(ok, -conf, conf)
    order = np.lexsort((np.arange(conf.size), secondary, ~ok))
    return torch.from_numpy(order.astype(np.int64))


def stratify_by_class(order: Tensor, labels: Tensor) -> Tensor:
    """Interleave classes: the k-th sample of each class (in ``order``) forms group k."""
    lab = labels.cpu().numpy()[order.cpu().numpy()]
    rank = np.zeros(lab.size, dtype=np.int64)
    seen: dict[int, int] = {}
    for i, c in enumerate(lab.tolist()):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    within = np.argsort(rank, kind="stable")  # group by rank, keep global order inside a group
    return order[torch.from_numpy(within)]


def curriculum_order(scores: Scores) -> Tensor:
    """The paper's teacher-generated curriculum: difficulty order, stratified by class."""
    return stratify_by_class(difficulty_order(scores.confidence, scores.correct), scores.label)


def inverse_order(order: Tensor) -> Tensor:
    """Hard-to-easy: the exact reverse of the curriculum (the paper's CL')."""
    return torch.flip(order, dims=[0])
