"""What every part of the benchmark shares: the fixed settings, synthetic data, small helpers.

The settings are the issue's KD step (ResNet-152 → ResNet-18, CIFAR stem, λ = 0.5,
τ = 4, the usual crop-and-flip augmentation); keeping them in one place is what makes
the three variants time the same work.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor, nn

from selective_kd.config import StageConfig
from selective_kd.models import build_model

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
LAM, TEMPERATURE = 0.5, 4.0
PADDING, FLIP = 4, True  # the usual CIFAR augmentation: 162 views per image
STEP_STAGE = StageConfig(lr=0.05, momentum=0.9, weight_decay=5e-4)  # the optimiser of every variant
SCORING_BATCH = 512
StepFn = Callable[[], int]  # one training step; returns how many images it processed


def synthetic_data(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` CIFAR-shaped images (random normal, as if normalised) and labels, on the CPU."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, *IMAGE_SHAPE), generator=g), torch.randint(NUM_CLASSES, (n,), generator=g)


def random_logit_table(n: int, views: int, seed: int = 0) -> Tensor:
    """A stand-in for the teacher cache: N × views × classes fp16, random values (timing only)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn((n, views, NUM_CLASSES), generator=g).to(torch.float16)


def new_student(arch: str, device: torch.device) -> nn.Module:
    """A freshly initialised student in training mode on ``device`` (default layout)."""
    return build_model(arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").to(device).train()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer read afterwards covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load_average() -> float | None:
    """The 1-minute load average: a shared machine slows every number down."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def device_name(device: torch.device) -> str:
    """``cuda: <GPU name>`` or ``cpu (<n> threads)``, as the JSON and the table show it."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"
