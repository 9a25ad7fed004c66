"""What the GPU tests share: their marks, the runtime the pipeline uses on a GPU, small models.

Every test here is marked ``gpu`` and skipped, with the reason "no CUDA device visible",
where ``torch.cuda.is_available()`` is false, so CI on CPUs collects and skips them.
``bash scripts/gpu-check.sh`` runs them on a GPU (``pytest tests/gpu -m gpu``).

``SELECTIVE_KD_GPU_TESTS_ON_CPU=1`` runs them on the CPU instead (bf16 autocast, default
layout): a rehearsal of their logic on a machine without a GPU, never a substitute for
the GPU run (no cuDNN, no TF32, no NCCL, other kernels).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor, nn

from selective_kd.config import Config
from selective_kd.engine import Runtime, resolve_runtime
from selective_kd.models import build_model

REHEARSAL = os.environ.get("SELECTIVE_KD_GPU_TESTS_ON_CPU") == "1"
DEVICE = torch.device("cpu" if REHEARSAL else "cuda")
GPU_ONLY = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (REHEARSAL or torch.cuda.is_available()), reason="no CUDA device visible"),
]


def gpu_runtime() -> Runtime:
    """The runtime ``selective-kd`` resolves on a GPU: bf16 autocast and channels_last by default."""
    if REHEARSAL:
        return Runtime(DEVICE, torch.bfloat16, channels_last=False, compile=False)
    return resolve_runtime(Config(device="cuda"))


def fp32_gpu_runtime() -> Runtime:
    """The same device and layout without autocast: the float32 reference of a comparison."""
    return Runtime(DEVICE, None, channels_last=not REHEARSAL, compile=False)


@contextmanager
def true_fp32() -> Iterator[None]:
    """Turn TF32 off for convolutions and matmuls, so "float32" on an Ampere+ GPU means float32.

    cuDNN runs float32 convolutions as TF32 (10-bit mantissa) by default: a reference
    computed that way would carry ~1e-3 relative error and hide what a test looks for.
    """
    conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels (warnings, not errors, for an op without one), restored afterwards."""
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def cifar_like(n: int, seed: int, size: int = 32) -> tuple[Tensor, Tensor]:
    """``n`` normalised-looking images with a colour offset per image, and labels, on the CPU.

    The offsets make the zero-filled border of a shifted view stand out from the image,
    so different augmentation views give clearly different logits (as real photos do).
    """
    g = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, 3, 1, 1, generator=g) + torch.randn(n, 3, size, size, generator=g)
    return x, torch.randint(10, (n,), generator=g)


def small_teacher(seed: int, width: float = 0.25) -> nn.Module:
    """A CIFAR-stem ResNet-18 in eval mode on the CPU, with BatchNorm statistics away from their defaults."""
    torch.manual_seed(seed)
    model = build_model("resnet18", 10, 3, "cifar", width=width)
    x, _ = cifar_like(64, seed + 1000)
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(x)
    return model.eval()


def on(runtime: Runtime, model: nn.Module) -> nn.Module:
    """A copy of ``model`` laid out for ``runtime`` (the CPU original stays untouched)."""
    return runtime.prepare(copy.deepcopy(model))
