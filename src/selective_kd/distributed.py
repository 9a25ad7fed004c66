"""Data-parallel training under ``torchrun``: one global batch split across processes.

Every stage runs unchanged under ``torchrun --nproc-per-node N``. The global batch is
kept: each rank takes its contiguous slice of each (curriculum-ordered) batch, so λ per
batch, the sample order and the augmentation views are exactly those of one process.
Gradients are averaged by DistributedDataParallel, with each rank's loss weighted by its
share of the batch; BatchNorm normalises with the statistics of the *global* batch
(``SyncBatchNorm`` on GPUs; on CPUs, where it is unsupported, :class:`GlobalBatchNorm2d`);
metrics are summed across ranks; only rank 0 writes files.
"""

from __future__ import annotations

import os
from datetime import timedelta
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(use_cuda: bool) -> Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        # a long timeout: rank 0 alone builds the teacher cache while the others wait
        kwargs: dict = {"timeout": timedelta(hours=2)}
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if use_cuda else "gloo", **kwargs)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def current() -> Dist:
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return Dist()


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def all_reduce_sum(t: Tensor) -> Tensor:
    if current().enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def local_slice(batch: Tensor, d: Dist) -> Tensor:
    """This rank's contiguous part of a global batch (ranks may differ by one sample)."""
    return batch.tensor_split(d.world)[d.rank] if d.enabled else batch


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient: d(Σ_r x_r)/dx_r = 1."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:  # type: ignore[override]
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)  # every rank's loss depends on the sum
        return out


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span every rank's slice of the batch.

    Per-channel sums and sums of squares are all-reduced with autograd, so forward and
    backward equal those of one process seeing the whole batch (up to float rounding).
    Same parameters and buffers as ``nn.BatchNorm2d``: checkpoints are interchangeable.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and current().enabled):
            return super().forward(x)
        xf = x.float()
        count = torch.tensor([xf.numel() / xf.shape[1]], dtype=xf.dtype, device=x.device)
        stats = _SumAcrossRanks.apply(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        with torch.no_grad():
            assert self.running_mean is not None and self.running_var is not None
            self.num_batches_tracked += 1  # type: ignore[operator]
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1), alpha=m)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def use_global_batchnorm(model: nn.Module, on_gpu: bool) -> nn.Module:
    """Swap every BatchNorm2d for its global-batch form (SyncBatchNorm on GPUs)."""
    if on_gpu:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                g = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
                g.load_state_dict(child.state_dict())
                setattr(module, name, g.to(child.weight.device))
    return model
