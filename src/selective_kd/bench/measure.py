"""Measurements: images/s in interleaved rounds, scoring throughput, a matmul peak, FLOP counts.

FLOPs are counted, not estimated: ``FlopCounterMode`` runs the models on the meta device
(no memory, no compute) and counts the convolutions and matrix products of one pass, so
"fraction of peak" rests on the model that was actually timed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

from selective_kd.bench.common import IMAGE_SHAPE, LAM, NUM_CLASSES, SCORING_BATCH, TEMPERATURE, StepFn, sync
from selective_kd.curriculum.scoring import teacher_logits
from selective_kd.distill.loss import kd_loss
from selective_kd.engine import Runtime
from selective_kd.models import build_model


def interleaved_rates(variants: dict[str, StepFn], steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Images/s of each variant: ``warmup`` untimed steps each, then ``steps`` timed steps each.

    The timed steps run in up to 5 rounds, each round one block of steps per variant in
    turn, so a slow spell of the machine (other processes on a shared CPU) falls on all
    variants alike instead of on whichever ran then. A block is synchronised (CUDA) at
    both ends only, so the GPU still overlaps with the Python that feeds it.
    """
    for step in variants.values():
        for _ in range(warmup):
            step()
    sync(device)
    rounds = min(steps, 5)
    blocks = [steps // rounds + (i < steps % rounds) for i in range(rounds)]
    images = dict.fromkeys(variants, 0)
    seconds = dict.fromkeys(variants, 0.0)
    for block in blocks:
        for name, step in variants.items():
            t0 = time.perf_counter()
            images[name] += sum(step() for _ in range(block))
            sync(device)
            seconds[name] += time.perf_counter() - t0
    return {name: images[name] / seconds[name] for name in variants}


def scoring_rate(teacher: torch.nn.Module, x: Tensor, runtime: Runtime, warmup: int) -> float:
    """Teacher inference images/s over all of ``x`` (eval, no grad, fp32), as curriculum scoring runs it."""
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch = min(SCORING_BATCH, x.shape[0])
    for _ in range(warmup):
        teacher_logits(teacher, x[:batch], batch)
    sync(runtime.device)
    t0 = time.perf_counter()
    passes = 0
    while passes == 0 or time.perf_counter() - t0 < 1.0:  # at least one pass and one second
        teacher_logits(teacher, x, batch)
        sync(runtime.device)
        passes += 1
    return passes * x.shape[0] / (time.perf_counter() - t0)


def peak_flops(device: torch.device, repeats: int = 10) -> float:
    """Measured matmul FLOP/s (2·n³ per product): fp32 2048² on CPU, bf16 8192² on CUDA.

    The best of ``repeats`` timings (of ``inner`` products each): a peak, so the fastest
    run is the estimate; a slower one only measures interference from other processes.
    """
    n, dtype, inner = (8192, torch.bfloat16, 10) if device.type == "cuda" else (2048, torch.float32, 1)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = torch.mm(a, b)
    sync(device)
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b, out=c)
        sync(device)
        best = min(best, (time.perf_counter() - t0) / inner)
    return 2 * n**3 / best


def student_step_flops(arch: str, batch_size: int) -> float:
    """FLOPs of one student fwd + bwd on a batch (FlopCounterMode on the meta device: no compute)."""
    with torch.device("meta"):
        model = build_model(arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").train()
        x = torch.empty((batch_size, *IMAGE_SHAPE))
        y = torch.zeros(batch_size, dtype=torch.long)
        t_logits = torch.empty((batch_size, NUM_CLASSES))
    with FlopCounterMode(display=False) as counter:
        kd_loss(model(x), t_logits, y, LAM, TEMPERATURE).backward()
    return float(counter.get_total_flops())


def forward_flops(arch: str, batch_size: int) -> float:
    """FLOPs of one forward pass (eval, no grad) on a batch: the teacher's share of a step, and scoring."""
    with torch.device("meta"):
        model = build_model(arch, NUM_CLASSES, IMAGE_SHAPE[0], "cifar").eval()
        x = torch.empty((batch_size, *IMAGE_SHAPE))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return float(counter.get_total_flops())


def profile_steps(step: StepFn, steps: int, device: torch.device, path: Path) -> list[dict[str, Any]]:
    """Where one variant's step spends its time: ``torch.profiler`` over ``steps`` steps.

    Writes the operator table (sorted by device time on CUDA, CPU time otherwise) to
    ``path`` and returns its top 15 rows, so a missed speed goal says what to fix. Rows
    nest (an aten operator, the kernels it launches, a compiled graph's call around them):
    read them one by one, never sum them.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()  # nothing the profiler sees should be a first call
    sync(device)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    key = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = prof.key_averages()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(events.table(sort_by=key, row_limit=40) + "\n", encoding="utf-8")
    rows = sorted(events, key=lambda e: getattr(e, key), reverse=True)[:15]
    return [{"name": e.key, "calls": e.count, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
             "self_device_ms_per_step": e.self_device_time_total / 1e3 / steps} for e in rows]
