"""(a) The reference: the KD loop as common frameworks write it.

A ``DataLoader`` over a ``TensorDataset``, a Python loop over the images for the random
crop and flip, the teacher run forward on every step, float32 and the default memory
layout. It is the baseline the engine's speed-ups are stated against.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selective_kd.bench.common import LAM, PADDING, STEP_STAGE, TEMPERATURE, StepFn, new_student
from selective_kd.distill.loss import kd_loss


def _endless(loader: DataLoader) -> Iterator[Any]:
    while True:
        yield from loader


def plain_sgd(model: nn.Module) -> torch.optim.Optimizer:
    """The reference's optimiser: plain SGD as common loops build it (weight decay on every parameter)."""
    return torch.optim.SGD(model.parameters(), lr=STEP_STAGE.lr, momentum=STEP_STAGE.momentum,
                           weight_decay=STEP_STAGE.weight_decay)


def augment_per_image(x: Tensor, rng: random.Random, padding: int = PADDING) -> Tensor:
    """Random crop of the zero-padded image and a random flip, one image at a time.

    Written the way KD code bases usually write it: a Python loop over the batch.
    """
    h, w = x.shape[-2:]
    out = []
    for img in x:
        padded = F.pad(img, (padding, padding, padding, padding))
        top, left = rng.randint(0, 2 * padding), rng.randint(0, 2 * padding)
        img = padded[:, top : top + h, left : left + w]
        if rng.random() < 0.5:
            img = torch.flip(img, dims=[2])
        out.append(img)
    return torch.stack(out)


def reference_step(
    student_arch: str, teacher: nn.Module, x: Tensor, y: Tensor, device: torch.device, batch_size: int
) -> StepFn:
    """(a) one step of the common KD loop (fp32, default layout, teacher forward every step)."""
    student = new_student(student_arch, device)
    opt = plain_sgd(student)
    teacher.eval()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, num_workers=0, drop_last=True)
    batches = _endless(loader)
    rng = random.Random(0)

    def step() -> int:
        xb, yb = next(batches)
        xb, yb = augment_per_image(xb, rng).to(device), yb.to(device)
        with torch.no_grad():
            t_logits = teacher(xb)
        loss = kd_loss(student(xb), t_logits, yb, LAM, TEMPERATURE)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return xb.shape[0]

    return step
