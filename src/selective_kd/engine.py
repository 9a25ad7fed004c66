"""One training engine for the teacher and every student.

The whole split lives on the training device; a batch is an index tensor into it, the
augmentation is one vectorised gather, and the loss comes from an *objective*: a small
callable that takes the model and a batch and returns the loss and a dict of named,
detached metrics (mdistiller's contract). The teacher trains with cross-entropy; a
student with the paper's KD loss. After every epoch the model, optimiser and history are
checkpointed atomically, so an interrupted run resumes from its last finished epoch and
ends with the same numbers as an uninterrupted one (orders and views are drawn from
generators seeded by (seed, epoch), never from global state).
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from selective_kd.config import StageConfig
from selective_kd.checkpoint import RESUME_FIELDS, load_checkpoint, save_checkpoint
from selective_kd.curriculum.ordering import epoch_generator
from selective_kd.curriculum.pacing import split_batches
from selective_kd.distributed import all_reduce_sum, local_slice, use_global_batchnorm
from selective_kd.data.augment import Views
from selective_kd.data.base import Split
from selective_kd.errors import UserError
from selective_kd.fileio import remove_stale_temps, write_jsonl
# Runtime and resolve_runtime lived here before runtime.py; importers of the engine still find them.
from selective_kd.runtime import Runtime, resolve_runtime, runtime_changes, runtime_record  # noqa: F401

log = logging.getLogger("selective_kd")


@dataclass(frozen=True)
class Batch:
    x: Tensor  # inputs after augmentation
    y: Tensor  # labels
    idx: Tensor  # positions in the training split (for per-sample teacher signals and λ)
    view: Tensor | None  # augmentation view id per sample, None when not augmented
    batch_idx: Tensor | None = None  # the whole batch across ranks; None in one process (= idx)
    epoch: int = 0  # 0-based epoch of this step
    progress: float = 0.0  # fraction of training steps done before this one, in [0, 1)


class Objective(Protocol):
    """Loss of a model on a batch, plus named detached metrics (per-batch means).

    An objective with state (e.g. CTKD's learned temperature) is an ``nn.Module``: ``fit``
    trains its parameters with the model's optimizer and keeps its ``state_dict`` in the
    checkpoint, so a resumed run continues it exactly. Nothing else is special-cased.
    """

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]: ...


class EpochPlan(Protocol):
    """Which batches (index tensors into the training split) each epoch trains on.

    ``steps(e)`` must be known before training (the learning-rate schedule follows the
    steps actually taken); ``batches(e, model)`` may look at the model (a curriculum the
    student re-scores). ``state_dict``/``load_state_dict`` carry any state across a resume.
    """

    def steps(self, epoch: int) -> int: ...

    def batches(self, epoch: int, model: nn.Module) -> list[Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class OrderPlan:
    """Consecutive batches of a per-epoch order: the teacher's plan, and simple students."""

    order_for_epoch: Callable[[int], Tensor]
    batch_size: int

    def steps(self, epoch: int) -> int:
        return len(split_batches(self.order_for_epoch(epoch), self.batch_size))

    def batches(self, epoch: int, model: nn.Module) -> list[Tensor]:
        return split_batches(self.order_for_epoch(epoch), self.batch_size)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Callback(Protocol):
    """Watches training (e.g. TensorBoard): called after every step and every epoch."""

    def on_step(self, step: int, logs: dict[str, float]) -> None: ...

    def on_epoch(self, record: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class CrossEntropyObjective:
    """Plain supervised training: the teacher, and students with λ = 0."""

    label_smoothing: float = 0.0

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        loss = F.cross_entropy(model(batch.x).float(), batch.y, label_smoothing=self.label_smoothing)
        zero = loss.detach() * 0
        return loss, {"loss": loss.detach(), "ce": loss.detach(), "lam": zero}


def learning_rate(stage: StageConfig, progress: float) -> float:
    """LR at ``progress`` ∈ [0, 1) of training: linear warm-up, then constant, cosine or step."""
    epochs = progress * stage.epochs
    if stage.warmup_epochs and epochs < stage.warmup_epochs:
        return stage.lr * (epochs + 1e-3) / stage.warmup_epochs
    if stage.schedule == "cosine":
        w = stage.warmup_epochs / stage.epochs
        return 0.5 * stage.lr * (1 + math.cos(math.pi * (progress - w) / max(1e-9, 1 - w)))
    if stage.schedule == "step":
        return stage.lr * stage.step_gamma ** sum(progress >= m for m in stage.step_milestones)
    return stage.lr


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, runtime: Runtime, batch_size: int) -> tuple[float, float]:
    """Validation accuracy (fraction) and mean cross-entropy, in eval mode (sharded across ranks)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), device=runtime.device, dtype=torch.float64)
    loss = torch.zeros((), device=runtime.device, dtype=torch.float64)
    mine = local_slice(torch.arange(len(split)), runtime.dist)
    lo, hi = (int(mine[0]), int(mine[-1]) + 1) if mine.numel() else (0, 0)
    for start in range(lo, hi, batch_size):
        x, y = split.x[start : min(start + batch_size, hi)], split.y[start : min(start + batch_size, hi)]
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with runtime.autocast():
            logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    totals = all_reduce_sum(torch.stack([correct, loss]))
    n = max(1, len(split))
    return totals[0].item() / n, totals[1].item() / n


def make_batch(train: Split, global_idx: Tensor, views: Views | None, view_gen: torch.Generator | None,
               runtime: Runtime, epoch: int = 0, progress: float = 0.0) -> Batch:
    """This rank's slice of a global batch, augmented and laid out for the model."""
    d = runtime.dist
    idx = local_slice(global_idx, d).to(runtime.device, non_blocking=True)
    x, y = train.x[idx], train.y[idx]
    view = None
    if views is not None:  # drawn for the global batch: any rank count sees the same views
        view = local_slice(views.sample(global_idx.numel(), view_gen), d).to(runtime.device, non_blocking=True)
        x = views.apply(x, view)
    if runtime.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    batch_idx = global_idx.to(runtime.device, non_blocking=True) if d.enabled else None
    return Batch(x, y, idx, view, batch_idx, epoch, progress)


def train_step(step_model: nn.Module, opt: torch.optim.Optimizer, objective: Objective, batch: Batch,
               runtime: Runtime, global_size: int) -> dict[str, Tensor]:
    """One optimisation step; the returned metrics stay on the device (no sync per step).

    ``fit`` and ``selective-kd bench`` both call this, so the benchmark times the real step.
    """
    with runtime.autocast():
        loss, logs = objective(step_model, batch)
    if runtime.dist.enabled:  # DDP averages over ranks; weight each by its share of the batch
        loss = loss * (batch.idx.numel() * runtime.dist.world / global_size)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if runtime.dist.enabled and isinstance(objective, nn.Module):  # DDP syncs the model's gradients only
        for p in objective.parameters():
            if p.grad is not None:
                p.grad.div_(runtime.dist.world)
                all_reduce_sum(p.grad)
    opt.step()
    return logs


def make_optimizer(model: nn.Module, stage: StageConfig, objective: object = None) -> torch.optim.SGD:
    """SGD with momentum; no weight decay on BatchNorm parameters and biases.

    An objective that is an ``nn.Module`` (one with state, e.g. a learned temperature) has
    its parameters trained alongside the model's, by the same rule.
    """
    params = list(model.parameters()) + (list(objective.parameters()) if isinstance(objective, nn.Module) else [])
    params_decay = [p for p in params if p.dim() > 1]
    params_plain = [p for p in params if p.dim() <= 1]
    return torch.optim.SGD(
        [{"params": params_decay, "weight_decay": stage.weight_decay}, {"params": params_plain, "weight_decay": 0.0}],
        lr=stage.lr, momentum=stage.momentum, nesterov=stage.nesterov and stage.momentum > 0,
    )


def _under_training_kernels(train: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    """Run ``fit`` with the CPU kernels its model may train with (``Runtime.training_kernels``: oneDNN or not)."""
    @functools.wraps(train)
    def wrapped(model: nn.Module, *args: Any, runtime: Runtime, **kwargs: Any) -> list[dict[str, Any]]:
        with runtime.training_kernels(model):
            return train(model, *args, runtime=runtime, **kwargs)

    return wrapped


@_under_training_kernels
def fit(
    model: nn.Module,
    train: Split,
    val: Split,
    *,
    stage: StageConfig,
    plan: EpochPlan,
    objective: Objective,
    runtime: Runtime,
    seed: int,
    out_dir: Path,
    identity: dict[str, Any],
    eval_batch_size: int = 1024,
    desc: str = "train",
    quiet: bool = False,
    callbacks: Sequence[Callback] = (),
) -> list[dict[str, Any]]:
    """Train ``model`` for ``stage.epochs`` epochs, resuming from ``out_dir/last.pt`` if present.

    ``train``/``val`` must already be on ``runtime.device``; ``plan`` gives each epoch's
    batches. Returns the per-epoch history, also written to ``out_dir/metrics.jsonl``
    after every epoch (rewritten from the checkpoint on resume, so the two always agree).
    """
    d = runtime.dist
    if d.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)
    ckpt_path = out_dir / "last.pt"
    if d.enabled:
        model = use_global_batchnorm(model, runtime.device.type == "cuda")
    opt = make_optimizer(model, stage, objective)
    history: list[dict[str, Any]] = []
    start = 0
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path, RESUME_FIELDS, "resume point", f"delete it to start {desc} afresh")
        if state.get("identity") != identity:
            raise UserError(mismatch_message(out_dir, state.get("identity"), identity))
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            if isinstance(objective, nn.Module):  # its state (e.g. CTKD's θ) resumes with the model's
                objective.load_state_dict(state.get("objective", {}))
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"resume point {ckpt_path} does not fit this model and optimiser "
                            f"({str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__}): "
                            f"delete it to start {desc} afresh") from None
        plan.load_state_dict(state.get("plan", {}))
        history, start = state["history"], state["epoch"]
        changed = runtime_changes(state.get("runtime"), runtime_record(runtime, model))
        if changed:
            log.warning("%s: resuming from epoch %d of %d (%s since it was interrupted): numbers will not be "
                        "bit-identical to an uninterrupted run", desc, start, stage.epochs, changed)
        else:
            log.info("%s: resuming from epoch %d of %d", desc, start, stage.epochs)
        if d.is_main:
            write_jsonl(out_dir / "metrics.jsonl", history)
    views = Views(stage.crop_padding, stage.flip) if stage.augment else None
    step_model: nn.Module = model
    if d.enabled:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
    step_model = runtime.compiled(step_model)
    epoch_steps = [plan.steps(e) for e in range(stage.epochs)]
    total = sum(epoch_steps)
    quiet = quiet or not d.is_main
    bars = not quiet and sys.stderr.isatty()  # a file or pipe (CI, SLURM) gets one line per epoch
    epochs = tqdm(range(start, stage.epochs), desc=desc, initial=start, total=stage.epochs, disable=not bars, leave=False)
    for epoch in epochs:
        t0 = time.perf_counter()
        model.train()
        batches = plan.batches(epoch, model)
        model.train()
        view_gen = epoch_generator(seed, epoch, stream=1)
        done = sum(epoch_steps[:epoch])
        sums: dict[str, Tensor] = {}
        lams: list[Tensor] = []
        seen = 0
        for step, global_cpu in enumerate(tqdm(batches, desc=f"epoch {epoch + 1}", disable=not bars, leave=False)):
            progress = (done + step) / total
            for group in opt.param_groups:
                group["lr"] = learning_rate(stage, progress)
            batch = make_batch(train, global_cpu, views, view_gen, runtime, epoch, progress)
            logs = train_step(step_model, opt, objective, batch, runtime, global_cpu.numel())
            n = batch.idx.numel()
            for k, v in logs.items():  # stays on the device: no sync per step
                sums[k] = sums.get(k, 0) + v.float() * n
            if "lam" in logs:
                lams.append(logs["lam"].detach().float())
            seen += n
            for cb in callbacks:
                cb.on_step(done + step, {k: float(v) for k, v in logs.items()})
        keys = sorted(sums)
        totals = all_reduce_sum(torch.stack([sums[k].double() for k in keys] + [torch.tensor(float(seen), dtype=torch.float64, device=runtime.device)]))
        train_logs = {k: (totals[i] / totals[-1]).item() for i, k in enumerate(keys)}
        if not math.isfinite(train_logs.get("loss", 0.0)):
            key = f"{desc.split()[0]}.lr" if desc.split()[0] in ("teacher", "assistant") else "student.lr"
            raise UserError(f"{desc}: training loss became {train_logs['loss']} in epoch {epoch + 1}; lower the learning rate ({key})")
        val_acc, val_loss = evaluate(model, val, runtime, eval_batch_size)
        record = {
            "epoch": epoch + 1,
            "train_loss": train_logs.pop("loss"),
            "lam_mean": train_logs.pop("lam", 0.0),
            **{f"train_{k}": v for k, v in train_logs.items()},
            "val_acc": val_acc,
            "val_loss": val_loss,
            "lr": opt.param_groups[0]["lr"],
            "steps": len(batches),
            "lam_batches": [round(v, 6) for v in torch.stack(lams).cpu().tolist()] if lams else [],
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        if d.is_main:
            save_checkpoint(ckpt_path, {
                "identity": identity, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "history": history, "plan": plan.state_dict(),
                "runtime": runtime_record(runtime, model),
                "objective": objective.state_dict() if isinstance(objective, nn.Module) else {},
            })
            write_jsonl(out_dir / "metrics.jsonl", history)
        for cb in callbacks:
            cb.on_epoch(record)
        epochs.set_postfix(val_acc=f"{val_acc:.3f}", loss=f"{record['train_loss']:.3f}")
        if not quiet and not bars:
            log.info("%s: epoch %d/%d  loss %.4f  val_acc %.4f  (%.1fs)", desc, epoch + 1, stage.epochs,
                     record["train_loss"], val_acc, record["seconds"])
    return history


def mismatch_message(where: Path, old: Any, new: dict[str, Any]) -> str:
    """Say which settings differ between what a folder holds and what was asked for."""
    keys: list[str] = []
    if isinstance(old, dict):
        flat_old, flat_new = _flatten(old), _flatten(new)
        keys = sorted(k for k in set(flat_old) | set(flat_new) if flat_old.get(k) != flat_new.get(k))
    what = f" ({', '.join(keys)} differ)" if keys else ""
    return f"{where} holds a run made with other settings{what}: use another --out, or delete {where} to redo it"


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
