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

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from selective_kd.curriculum.scoring import Scores
from selective_kd.registry import Registry


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


def curriculum_order(scores: Scores, stratify: bool = True) -> Tensor:
    """The paper's teacher-generated curriculum: difficulty order, stratified by class."""
    order = difficulty_order(scores.confidence, scores.correct)
    return stratify_by_class(order, scores.label) if stratify else order


def inverse_order(order: Tensor) -> Tensor:
    """Hard-to-easy: the exact reverse of the curriculum (the paper's CL')."""
    return torch.flip(order, dims=[0])


# --------------------------------------------------------------------------- orders by name
# An order gives the sample order of one epoch from the curriculum (None for orders that
# need none), the training-set size, the epoch and the seed. Random orders draw from a
# generator seeded by (seed, epoch): an epoch's order never depends on what ran before,
# so a resumed run sees the same batches as an uninterrupted one.

ORDERS: Registry[Callable[..., Tensor]] = Registry("order", "order")


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator unique to (seed, epoch, stream); streams separate order, views and pacing."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1))
    return g


@ORDERS.register("random")
def random_order(curriculum: Tensor | None, n: int, epoch: int, seed: int) -> Tensor:
    """A fresh permutation every epoch (Student-Unguided, Student-KD)."""
    return torch.randperm(n, generator=epoch_generator(seed, epoch))


@ORDERS.register("curriculum", needs=("curriculum",))
def forward_order(curriculum: Tensor | None, n: int, epoch: int, seed: int) -> Tensor:
    """The curriculum, easiest first, every epoch (the paper's CL)."""
    if curriculum is None:
        raise ValueError("order 'curriculum' needs a curriculum")
    return curriculum


@ORDERS.register("inverse", needs=("curriculum",))
def reverse_order(curriculum: Tensor | None, n: int, epoch: int, seed: int) -> Tensor:
    """The curriculum reversed, hardest first, every epoch (the paper's CL')."""
    if curriculum is None:
        raise ValueError("order 'inverse' needs a curriculum")
    return inverse_order(curriculum)
