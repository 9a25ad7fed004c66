"""On the GPU, the teacher cache hands a student the logits the online teacher would.

The pairs are drawn the way training draws them: ``engine.make_batch`` picks samples and
views on the GPU, ``OnlineTeacher`` runs the teacher on the augmented batch under the
runtime's autocast (as ``engine.train_step`` does), ``CachedTeacher`` looks the same
(sample, view) up in the table ``compute_view_logits`` built on the GPU.

Tolerances. In true float32 the only difference is the table's float16 storage
(relative rounding 2^-11 ≈ 4.9e-4): 2e-3 relative to each sample's logit scale. Views
of one image differ by 4-5% of that scale (measured), so the check also proves each
row belongs to its own view: no other of the 162 views comes as close. Under bf16
autocast, both sides carry bf16 rounding (about 2% of the logit scale against float32,
measured on CPU bf16); 4% is allowed there.
"""

from __future__ import annotations

import torch
from gpu_helpers import DEVICE, GPU_ONLY, cifar_like, fp32_gpu_runtime, gpu_runtime, on, small_teacher, true_fp32

from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.teacher import CachedTeacher, OnlineTeacher, compute_view_logits
from selective_kd.engine import Runtime, make_batch

pytestmark = GPU_ONLY
N, BATCH, VIEWS = 96, 32, Views(4, True)


def _pairs(runtime: Runtime) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """The table, and per training batch: sample ids, view ids, cached and online logits."""
    teacher = on(runtime, small_teacher(0))
    x, y = cifar_like(N, 1)
    train = Split(x.to(DEVICE), y.to(DEVICE))
    table = compute_view_logits(teacher, train.x, VIEWS, runtime, batch_size=64)  # 64 does not divide 96
    assert table.dtype == torch.float16 and table.shape == (N, VIEWS.count, 10) and table.device.type == "cpu"
    cached, online = CachedTeacher(table.to(DEVICE)), OnlineTeacher(teacher)
    view_gen, order_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(3)
    out = []
    for _ in range(4):
        idx = torch.randperm(N, generator=order_gen)[:BATCH]
        batch = make_batch(train, idx, VIEWS, view_gen, runtime)
        assert batch.x.is_contiguous(memory_format=torch.channels_last) == runtime.channels_last
        with runtime.autocast():
            expected = online(batch)
        got = cached(batch)
        assert got.device.type == DEVICE.type and got.dtype == torch.float32
        out.append((batch.idx.cpu(), batch.view.cpu(), got.cpu(), expected.cpu()))
    return table, out


def test_cached_logits_are_the_online_teachers_for_each_sampled_view() -> None:
    with true_fp32():
        table, batches = _pairs(fp32_gpu_runtime())
    for idx, view, got, expected in batches:
        scale = expected.abs().amax(dim=1, keepdim=True)
        err = ((got - expected).abs() / scale).amax(dim=1)
        assert err.max().item() <= 2e-3, f"worst relative error {err.max().item():.2e}"
        # Every view of the sample, against the online logits: its own must be the nearest, by far.
        dist = ((table[idx].float() - expected[:, None]).abs() / scale[:, None]).amax(dim=2)
        assert torch.equal(dist.argmin(dim=1), view), "a cached row belongs to another view"
        others = dist.scatter(1, view[:, None], float("inf")).amin(dim=1)
        assert (others > 5 * 2e-3).all(), "views must differ for this check to mean anything"


def test_bf16_cache_matches_the_bf16_online_teacher() -> None:
    runtime = gpu_runtime()
    assert runtime.autocast_dtype == torch.bfloat16
    _, batches = _pairs(runtime)
    for _, _, got, expected in batches:
        assert torch.isfinite(got).all()
        scale = expected.abs().amax(dim=1, keepdim=True)
        assert (((got - expected).abs() / scale).amax(dim=1) <= 4e-2).all()
