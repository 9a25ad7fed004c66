"""What every training stage shares: finished-stage checks, model files, supervised training.

A finished stage leaves ``model.pt`` and ``result.json`` (with the identity that made it
and the digest of ``model.pt``), and is reused only when asked again with the same
identity and its files are whole; a folder made with other settings is refused, naming
the keys that differ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selective_kd.checkpoint import MODEL_FIELDS, load_checkpoint, save_checkpoint
from selective_kd.config import Config, StageConfig
from selective_kd.curriculum.ordering import random_order
from selective_kd.data import Dataset, Split
from selective_kd.distributed import barrier
from selective_kd.engine import Callback, CrossEntropyObjective, OrderPlan, Runtime, evaluate, fit, mismatch_message
from selective_kd.errors import UserError
from selective_kd.experiments.identity import (
    file_digest,
    precision_of,
    stale_code,
)
from selective_kd.fields import check_result
from selective_kd.fileio import write_json
from selective_kd.reading import parse_json, read_text
from selective_kd.runtime import runtime_changes, runtime_record
from selective_kd.layout import RunPaths, StageFiles
from selective_kd.models import build_model_from, build_recorded, load_pretrained, model_params
from selective_kd.watch import callbacks_for

log = logging.getLogger("selective_kd")


# --------------------------------------------------------------------------- stage bookkeeping


def summarize_history(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Final validation metrics, the best accuracy, epochs to reach 95% of the best, mean λ."""
    best = max(h["val_acc"] for h in history)
    to95 = next(h["epoch"] for h in history if h["val_acc"] >= 0.95 * best)
    return {
        "val_acc": history[-1]["val_acc"],
        "val_loss": history[-1]["val_loss"],
        "best_val_acc": best,
        "epochs_to_95": to95,
        "epochs": len(history),
        "lam_mean": sum(h.get("lam_mean", 0.0) for h in history) / len(history),
        "seconds": sum(h["seconds"] for h in history),
    }


def read_result(path: Path) -> dict[str, Any]:
    """A stage's result.json; a damaged one is a one-line error naming the folder to delete."""
    fix = f"delete the folder {path.parent} to redo that stage"
    text = read_text(path, "result", fix)  # a folder or a FIFO is refused in one line
    try:
        result = parse_json(text)
    except ValueError as exc:
        raise UserError(f"{path} cannot be read ({exc}): {fix}") from None
    if not isinstance(result, dict):
        raise UserError(f"{path} does not hold a stage result: {fix}")
    return check_result(result, str(path), fix)


def finished_result(files: StageFiles, identity: dict[str, Any], runtime: Runtime | None = None) -> dict[str, Any] | None:
    """The stage's result if it finished with these settings and its files are whole; error if other settings.

    With ``runtime``, a result made under another thread count, device or torch is still
    reused (its settings are the same), and the log says what differs.
    """
    _drop_stale_code(files, identity)
    if not files.result.exists():
        return None
    result = read_result(files.result)
    if result.get("identity") != identity:
        raise UserError(mismatch_message(files.dir, result.get("identity"), identity))
    if not files.model.is_file() or file_digest(files.model) != result.get("model_sha256"):
        log.warning("%s: model.pt is missing or damaged; training this stage again", files.dir)
        files.result.unlink()
        return None
    if runtime is not None and (changed := runtime_changes(result.get("runtime"), runtime_record(runtime))):
        log.warning("%s: reusing a result made with %s: a run here would not reproduce it bit for bit", files.dir, changed)
    return result


def _drop_stale_code(files: StageFiles, identity: dict[str, Any]) -> None:
    """A result (or resume point) of these settings made by an earlier version of a plugin: train again.

    The settings are the same and the code is not, so the old result is stale rather than
    another experiment to protect: it is removed, and the stage trains from the start.
    """
    try:
        if files.result.exists():
            old = read_result(files.result).get("identity")
        elif files.last.exists():
            state = load_checkpoint(files.last)
            old = state.get("identity") if isinstance(state, dict) else None
        else:
            return
    except UserError:
        return  # unreadable: the usual checks name the fix
    if not stale_code(old, identity):
        return
    before, now = old.get("plugins", {}), identity.get("plugins", {})
    changed = sorted(k for k in {*before, *now} if before.get(k) != now.get(k)) or ["a plugin"]
    log.warning("%s: %s changed since it was trained; training it again", files.dir, ", ".join(changed))
    for path in (files.result, files.last, files.model, files.metrics):
        path.unlink(missing_ok=True)


def finish_stage(files: StageFiles, model: nn.Module, meta: dict[str, Any], result: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    if runtime.dist.is_main:
        save_checkpoint(files.model, {**meta, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
        result = {**result, "model_sha256": file_digest(files.model), "runtime": runtime_record(runtime, model)}
        write_json(files.result, result)
        files.last.unlink(missing_ok=True)  # model.pt holds the weights; the optimiser is no longer needed
    barrier()
    return result


def _model_meta(stage: StageConfig, data: Dataset, identity: dict[str, Any], role: str = "student") -> dict[str, Any]:
    """What model.pt records beside the weights to rebuild the model (``models.build_recorded``):
    ``arch`` and ``arch_params`` (every parameter its builder received; ``width`` and ``stem``
    are kept too, as files written before ``arch_params`` have only those)."""
    return {
        "arch": stage.arch, "arch_params": model_params(stage, role), "width": stage.width, "stem": stage.stem,
        "num_classes": data.num_classes, "in_channels": data.in_channels,
        "input_size": getattr(stage, "input_size", None), "identity": identity,
    }


def read_teacher_checkpoint(path: Path, what: str = "teacher") -> dict[str, Any]:
    """A finished stage's model.pt (the teacher's, or a scorer model's), checked against its schema."""
    if not path.exists() and not path.is_symlink():
        if what == "teacher":
            raise UserError(f"teacher checkpoint {path} not found: run `selective-kd teacher` first, or pass --teacher PATH")
        raise UserError(f"{what} checkpoint {path} not found: run the stage that trains it (`selective-kd curriculum`)")
    fix = (f"delete the folder {path.parent} to train the teacher again, or pass --teacher PATH" if what == "teacher"
           else f"delete the folder {path.parent} to train it again")
    return load_checkpoint(path, MODEL_FIELDS, f"{what} checkpoint", fix)


def class_count_error(what: str, source: str, predicted: Any, data: Dataset) -> UserError:
    """A model whose class count is not the data's: one message for the CLI (checkpoints) and the API (modules)."""
    return UserError(f"{what} {source} predicts {predicted} classes but {data.name} has {data.num_classes}: "
                     f"use a {what} trained on this dataset")


def load_model(path: Path, data: Dataset, runtime: Runtime, what: str = "teacher") -> tuple[nn.Module, dict[str, Any]]:
    """A finished stage's model, checked against the dataset it will see."""
    ckpt = read_teacher_checkpoint(path, what)
    if ckpt["num_classes"] != data.num_classes:
        raise class_count_error(what, f"checkpoint {path}", ckpt["num_classes"], data)
    if ckpt["in_channels"] != data.in_channels:
        raise UserError(f"{what} checkpoint {path} takes {ckpt['in_channels']} input channels, {data.name} has {data.in_channels}")
    model = build_recorded(ckpt, f"{what} checkpoint {path}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"{what} checkpoint {path} does not match its recorded architecture: {str(exc).splitlines()[0]}") from None
    return runtime.prepare(model).eval(), ckpt


def load_teacher(path: Path, data: Dataset, runtime: Runtime) -> tuple[nn.Module, dict[str, Any]]:
    return load_model(path, data, runtime, "teacher")


def precision(runtime: Runtime) -> str:
    return precision_of(runtime.autocast_dtype)


# --------------------------------------------------------------------------- supervised stages


def train_supervised(cfg: Config, stage: StageConfig, train: Split, data: Dataset, files: StageFiles,
                     identity: dict[str, Any], seed: int, runtime: Runtime, desc: str, quiet: bool,
                     watchers: Callable[[nn.Module], list[Callback]] | None = None) -> dict[str, Any]:
    """Train a model of ``stage``'s architecture with cross-entropy on ``train`` (teacher, scorer models).

    ``watchers`` gives callbacks that see the model being trained (the teacher's kept epochs)."""
    if (done := finished_result(files, identity, runtime)) is not None:
        log.info("%s: already trained in %s (val_acc %.4f)", desc, files.dir, done["val_acc"])
        return done
    torch.manual_seed(seed)
    role = "teacher" if stage is cfg.teacher else "student"  # the config section errors name
    model = build_model_from(stage, data.num_classes, data.in_channels, role)
    pretrained = getattr(stage, "pretrained", None)
    whole = bool(pretrained) and load_pretrained(model, pretrained)
    if stage.epochs == 0 and not whole:
        raise UserError(f"{role}.epochs=0 uses {role}.pretrained as it is, but the classifier in {pretrained} does not fit "
                        f"{data.num_classes} classes: set {role}.epochs to fine-tune it")
    model = runtime.prepare(model)
    train_d, val = train.to(runtime.device), data.val.to(runtime.device)
    if stage.epochs == 0:  # teacher.pretrained as it is (e.g. a published CIFAR-100 teacher): evaluated, not trained
        return _as_is(cfg, stage, model, val, data, files, identity, runtime, desc, role)
    n, bs = len(train_d), stage.batch_size or cfg.batch_size
    log.info("%s: training %s (width %g) on %d samples for %d epochs%s", desc, stage.arch, stage.width, n, stage.epochs,
             " from " + pretrained if pretrained else " from scratch")
    history = fit(
        model, train_d, val, stage=stage, plan=OrderPlan(lambda e: random_order(None, n, e, seed), bs),
        objective=CrossEntropyObjective(stage.label_smoothing), runtime=runtime, seed=seed, out_dir=files.dir,
        identity=identity, eval_batch_size=cfg.eval_batch_size, desc=desc, quiet=quiet,
        callbacks=[*callbacks_for(cfg, files.dir, stage.epochs), *(watchers(model) if watchers else [])],
    )
    result = {"model": desc, "arch": stage.arch, "pretrained": pretrained, **summarize_history(history), "identity": identity}
    log.info("%s: val_acc %.4f val_loss %.4f (%.1fs)", desc, result["val_acc"], result["val_loss"], result["seconds"])
    return finish_stage(files, model, _model_meta(stage, data, identity, role), result, runtime)


def _as_is(cfg: Config, stage: StageConfig, model: nn.Module, val: Split, data: Dataset, files: StageFiles,
           identity: dict[str, Any], runtime: Runtime, desc: str, role: str) -> dict[str, Any]:
    """A stage of 0 epochs: the pretrained weights, evaluated once and kept unchanged."""
    start = time.perf_counter()
    val_acc, val_loss = evaluate(model, val, runtime, cfg.eval_batch_size)
    record = {"epoch": 0, "val_acc": val_acc, "val_loss": val_loss, "seconds": time.perf_counter() - start}
    pretrained = getattr(stage, "pretrained", None)
    result = {"model": desc, "arch": stage.arch, "pretrained": pretrained, **summarize_history([record]), "epochs": 0,
              "identity": identity}
    log.info("%s: %s from %s used as it is: val_acc %.4f val_loss %.4f", desc, stage.arch, pretrained, val_acc, val_loss)
    return finish_stage(files, model, _model_meta(stage, data, identity, role), result, runtime)

