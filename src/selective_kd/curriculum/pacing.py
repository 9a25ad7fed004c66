"""Pacing: which samples a student sees in an epoch, and in what order.

The paper feeds its curriculum without a pacing function: each epoch walks the whole
ordered list in consecutive batches. Random-order variants reshuffle every epoch. The
shuffle is drawn from a generator seeded by (seed, epoch), so an epoch's order never
depends on how many epochs ran before in this process: a resumed run sees the same
batches as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import Tensor

from selective_kd.config import Order
from selective_kd.curriculum.ordering import inverse_order


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator unique to (seed, epoch, stream); streams separate order from augmentation."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + epoch * 7_919 + stream * 104_729) % (2**63 - 1))
    return g


def epoch_order(kind: Order, n: int, epoch: int, seed: int, curriculum: Tensor | None = None) -> Tensor:
    """The sample order for one epoch: a fresh permutation, the curriculum, or its reverse."""
    if kind == "random":
        return torch.randperm(n, generator=epoch_generator(seed, epoch))
    if curriculum is None:
        raise ValueError(f"order {kind!r} needs a curriculum")
    return curriculum if kind == "curriculum" else inverse_order(curriculum)


def split_batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Consecutive batches of ``order``; a last batch of one sample joins the one before.

    Nothing is dropped: with a curriculum, dropping the tail would drop the hardest
    samples. A batch of one would break BatchNorm, so it is merged instead.
    """
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and batches[-1].numel() == 1:
        last = batches.pop()
        batches[-1] = torch.cat([batches[-1], last])
    return batches
