"""Run by ``test_torchrun_gpu.py`` under ``torchrun --nproc-per-node 1``: DDP + SyncBatchNorm vs plain.

With one process ``selective_kd.distributed.init_from_env`` takes the single-process
path (no process group), so ``fit`` never wraps the model. This script joins the NCCL
group torchrun describes itself and applies what ``fit`` applies on several GPUs
(``use_global_batchnorm`` → SyncBatchNorm, ``DistributedDataParallel``), then trains a
copy without them on the same batches. It writes what it saw as JSON to ``argv[1]``.
"""

from __future__ import annotations

import copy
import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn

from selective_kd import engine
from selective_kd.config import Config, StageConfig
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import ConstantLambda
from selective_kd.distill.teacher import CachedTeacher
from selective_kd.distributed import all_reduce_sum, use_global_batchnorm
from selective_kd.models import build_model


def main(out: str) -> None:
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    torch.use_deterministic_algorithms(True, warn_only=True)
    runtime = engine.resolve_runtime(Config(device="cuda"))
    torch.manual_seed(0)
    plain = runtime.prepare(build_model("resnet18", 10, 3, "cifar", width=0.25)).train()
    synced = use_global_batchnorm(copy.deepcopy(plain), on_gpu=True)
    wrapped = nn.parallel.DistributedDataParallel(synced, device_ids=[local])
    views = Views(4, True)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(256, 3, 32, 32, generator=g), torch.randint(10, (256,), generator=g)
    train = Split(x.cuda(), y.cuda())
    table = torch.randn(256, views.count, 10, generator=g).half().cuda()
    objective = DistillObjective(CachedTeacher(table), ConstantLambda(0.5), 4.0)
    stage = StageConfig(lr=0.1, momentum=0.9, weight_decay=5e-4)
    losses: dict[str, list[float]] = {"plain": [], "ddp": []}
    for name, model, step_model in (("plain", plain, plain), ("ddp", synced, wrapped)):
        opt = engine.make_optimizer(model, stage)
        view_gen, order_gen = torch.Generator().manual_seed(2), torch.Generator().manual_seed(3)
        for _ in range(4):
            idx = torch.randperm(256, generator=order_gen)[:64]
            batch = engine.make_batch(train, idx, views, view_gen, runtime)
            losses[name].append(engine.train_step(step_model, opt, objective, batch, runtime, 64)["loss"].item())
    a, b = plain.state_dict(), synced.state_dict()
    total = torch.tensor([1.5, 2.0], dtype=torch.float64, device="cuda")
    dist.all_reduce(total)  # NCCL itself (the engine's all_reduce_sum skips a world of one) on float64, as fit's metrics
    all_reduce_sum(total)
    result = {
        "backend": dist.get_backend(),
        "world": dist.get_world_size(),
        "sync_batchnorm_layers": sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()),
        "batchnorm_layers": sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()),
        "same_keys": list(a) == list(b),
        "losses": losses,
        "max_weight_difference": max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()),
        "max_weight": max(a[k].double().abs().max().item() for k in a if a[k].is_floating_point()),
        "same_counters": all(torch.equal(a[k], b[k]) for k in a if not a[k].is_floating_point()),
        "channels_last": all(p.is_contiguous(memory_format=torch.channels_last) for p in synced.parameters() if p.dim() == 4),
        "all_reduce": total.tolist(),
    }
    dist.destroy_process_group()
    with open(out, "w") as fh:
        json.dump(result, fh)


if __name__ == "__main__":
    main(sys.argv[1])
