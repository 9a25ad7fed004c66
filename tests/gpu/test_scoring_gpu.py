"""Curriculum scoring is float32 on the GPU, so the curriculum does not depend on the device.

``curriculum.scoring.teacher_logits`` promises float32 logits, autocast or not, because
"an order must not depend on the device". On an Ampere or later GPU float32 is not the
default for convolutions: cuDNN runs them as TF32 (10-bit mantissa) unless told not to.

Tolerance: GPU logits agree with a float64 CPU reference to SCORE_TOL = 1e-4 of the
largest logit. Why: float32 CPU logits of this network were measured at 7.6e-7 of it
(ample room for other float32 kernels), TF32 (emulated by rounding every convolution's
inputs and weights) at 1.7e-3, bf16 at 1.6e-2. The test also measures TF32 on this GPU
and checks the tolerance can tell it from float32.
"""

from __future__ import annotations

import copy

import torch
from gpu_helpers import DEVICE, GPU_ONLY, REHEARSAL, cifar_like, gpu_runtime, on, small_teacher

from selective_kd.curriculum import curriculum_order, score_samples, teacher_logits

pytestmark = GPU_ONLY
SCORE_TOL = 1e-4
GAP = 1e-5  # confidences kept for the order test differ by this much (float32 moves them ~4e-8)


def _relative_error(logits: torch.Tensor, reference: torch.Tensor) -> float:
    return ((logits.double() - reference).abs().max() / reference.abs().max()).item()


def test_scoring_logits_are_float32_on_the_gpu() -> None:
    teacher = small_teacher(0, width=0.5)
    x, _ = cifar_like(512, 1)
    with torch.no_grad():
        reference = copy.deepcopy(teacher).double()(x.double())
    runtime = gpu_runtime()
    model = on(runtime, teacher)
    with runtime.autocast():  # a caller inside autocast must still get float32
        logits = teacher_logits(model, x.to(DEVICE), 256)
    assert logits.dtype == torch.float32
    err = _relative_error(logits.cpu(), reference)
    assert err <= SCORE_TOL, f"scoring is not float32 on this GPU: error {err:.2e} of the logit scale (TF32 or bf16?)"

    if not REHEARSAL and torch.cuda.get_device_capability() >= (8, 0):
        conv, mm = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        try:
            with torch.no_grad():
                tf32 = model(x.to(DEVICE)).float().cpu()
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, mm
        assert _relative_error(tf32, reference) > 3 * SCORE_TOL, "the tolerance cannot tell TF32 from float32 here"


def _well_separated(confidence: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Indices whose confidences are GAP apart and whose top-2 logits are not near a tie."""
    top2 = logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3 * logits.abs().max()
    keep, last = [], -1.0
    for i in confidence.argsort().tolist():
        if clear[i] and confidence[i].item() - last >= GAP:
            keep.append(i)
            last = confidence[i].item()
    return torch.tensor(keep)


def test_curriculum_order_is_the_same_on_cpu_and_gpu() -> None:
    teacher = small_teacher(1, width=0.5)
    x, y = cifar_like(4096, 2)
    logits = teacher_logits(teacher, x, 1024)
    # Half the labels agree with the teacher: both branches of the order (correct first by
    # confidence down, then wrong by confidence up) and the class stratification get used.
    agree = torch.rand(4096, generator=torch.Generator().manual_seed(3)) < 0.5
    y = torch.where(agree, logits.argmax(1), y)
    keep = _well_separated(score_samples(teacher, x, y).confidence, logits)
    assert keep.numel() >= 300, keep.numel()
    x, y = x[keep], y[keep]

    cpu_scores = score_samples(teacher, x, y)
    assert 0.2 < cpu_scores.correct.double().mean().item() < 0.8
    runtime = gpu_runtime()
    gpu_scores = score_samples(on(runtime, teacher), x.to(DEVICE), y.to(DEVICE))
    assert torch.equal(gpu_scores.correct, cpu_scores.correct)
    worst = (gpu_scores.confidence - cpu_scores.confidence).abs().max().item()
    assert torch.equal(curriculum_order(gpu_scores), curriculum_order(cpu_scores)), f"confidences moved by up to {worst:.1e}"
