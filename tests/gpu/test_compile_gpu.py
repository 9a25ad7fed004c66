"""A ``torch.compile``d student step equals the eager one (``compile: true`` or
``compile: reduce-overhead``, which replays CUDA graphs, in a config).

Two steps of ``engine.train_step`` (the KD objective, backward, SGD with momentum and
weight decay) on the same batches, eager and compiled as ``fit`` compiles it, on the GPU
in channels_last, in float32 with TF32 off so that only the compiler differs.

Tolerances. Fused kernels reorder float32 sums and may compute BatchNorm's statistics by
another formula. On this test's network compiled on a CPU (where the compiler's kernels
differ most from eager ones; on a GPU both use cuDNN's convolutions) the two losses
agreed to 2.5e-7 and 5.8e-7 relative, the first step's gradients to 1.1e-3 of their
norm, and each tensor's change over the two steps to 2.1e-2 (the stem's BatchNorm
weight; momentum carries the first step's differences into the second). Allowed: losses
1e-4, gradients 1e-2, each tensor's change (weights and BatchNorm running statistics
alike) 1e-1 of its size. A compiled graph that drops a buffer or weight update, applies
one twice or mishandles the layout is off by the whole change (100%). Longer runs say
little: early differences grow about tenfold per step on this random-label task. bf16
with compile runs in the benchmark stage of ``scripts/gpu-check.sh`` (for speed).

In ``reduce-overhead`` mode the two steps are the CUDA-graph tree's warm-up call and its
recording call: this checks the compiled step and that recording leaves the arithmetic
alone, not a replayed graph (replays start at the third call, by which the differences
above, growing about tenfold per step, would outgrow these tolerances).
"""

from __future__ import annotations

import copy

import pytest
import torch
from gpu_helpers import DEVICE, GPU_ONLY, cifar_like, fp32_gpu_runtime, true_fp32

from selective_kd import engine
from selective_kd.config import StageConfig
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import CachedTeacher
from selective_kd.models import build_model

pytestmark = GPU_ONLY
STAGE = StageConfig(lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
STEPS = 2


def _train(model: torch.nn.Module, step_model: torch.nn.Module) -> tuple[list[float], torch.Tensor]:
    """``STEPS`` steps on fixed batches: the losses, and the first step's gradient (flat)."""
    runtime = fp32_gpu_runtime()
    views = Views(4, True)
    x, y = cifar_like(256, 5)
    train = Split(x.to(DEVICE), y.to(DEVICE))
    table = torch.randn(256, views.count, 10, generator=torch.Generator().manual_seed(6)).half().to(DEVICE)
    objective = DistillObjective(CachedTeacher(table), ConstantLambda(0.5), 4.0)
    opt = engine.make_optimizer(model, STAGE)
    view_gen, order_gen = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
    losses, first_grad = [], torch.empty(0)
    for step in range(STEPS):
        idx = torch.randperm(256, generator=order_gen)[:64]
        batch = engine.make_batch(train, idx, views, view_gen, runtime)
        logs = engine.train_step(step_model, opt, objective, batch, runtime, idx.numel())
        losses.append(logs["loss"].item())
        if step == 0:
            first_grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    return losses, first_grad


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, 0 when both vanish."""
    den = b.double().norm().item()
    return (a.double() - b.double()).norm().item() / den if den else float((a != b).any())


@pytest.mark.parametrize("mode", [None, "reduce-overhead"])  # reduce-overhead: CUDA graphs (warm-up, recording)
def test_compiled_student_step_equals_eager(mode: str | None) -> None:
    torch.manual_seed(0)
    runtime = fp32_gpu_runtime()
    start = runtime.prepare(build_model("resnet18", 10, 3, "cifar", width=0.5)).train()
    eager, compiled = copy.deepcopy(start), copy.deepcopy(start)
    with true_fp32():
        eager_losses, grads_e = _train(eager, eager)
        compiled_losses, grads_c = _train(compiled, torch.compile(compiled, mode=mode))
    torch.testing.assert_close(compiled_losses, eager_losses, rtol=1e-4, atol=0.0)
    assert _relative(grads_c, grads_e) <= 1e-2, f"first step's gradients differ by {_relative(grads_c, grads_e):.1e}"

    before, after_e, after_c = start.state_dict(), eager.state_dict(), compiled.state_dict()
    changed = 0
    for k, v in before.items():
        if not v.is_floating_point():
            assert torch.equal(after_c[k], after_e[k]), k  # num_batches_tracked
            continue
        change_e, change_c = after_e[k] - v, after_c[k] - v
        changed += bool(change_e.abs().max() > 0)
        assert _relative(change_c, change_e) <= 1e-1, f"{k}: compiled changed it by {_relative(change_c, change_e):.1e} otherwise"
    assert changed == sum(v.is_floating_point() for v in before.values()), "every weight and statistic must move"
