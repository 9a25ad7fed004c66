"""What every training stage shares: finished-stage checks, model files, supervised training.

A finished stage leaves ``model.pt`` and ``result.json`` (with the identity that made it
and the digest of ``model.pt``), and is reused only when asked again with the same
identity and its files are whole; a folder made with other settings is refused, naming
the keys that differ.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selective_kd.checkpoint import load_checkpoint, save_checkpoint
from selective_kd.config import Config, StageConfig
from selective_kd.curriculum.ordering import random_order
from selective_kd.data import Dataset, Split
from selective_kd.distributed import barrier
from selective_kd.engine import CrossEntropyObjective, OrderPlan, Runtime, fit, mismatch_message
from selective_kd.errors import UserError
from selective_kd.experiments.identity import (
    file_digest,
    precision_of,
    teacher_identity,
)
from selective_kd.fileio import write_json
from selective_kd.runtime import runtime_changes, runtime_record
from selective_kd.layout import RunPaths, StageFiles
from selective_kd.models import build_model, load_pretrained
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
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be read ({exc.__class__.__name__}): delete the folder {path.parent} to redo that stage") from None
    if not isinstance(result, dict):
        raise UserError(f"{path} does not hold a stage result: delete the folder {path.parent} to redo that stage")
    return result


def finished_result(files: StageFiles, identity: dict[str, Any], runtime: Runtime | None = None) -> dict[str, Any] | None:
    """The stage's result if it finished with these settings and its files are whole; error if other settings.

    With ``runtime``, a result made under another thread count, device or torch is still
    reused (its settings are the same), and the log says what differs.
    """
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


def finish_stage(files: StageFiles, model: nn.Module, meta: dict[str, Any], result: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    if runtime.dist.is_main:
        save_checkpoint(files.model, {**meta, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
        result = {**result, "model_sha256": file_digest(files.model), "runtime": runtime_record(runtime, model)}
        write_json(files.result, result)
        files.last.unlink(missing_ok=True)  # model.pt holds the weights; the optimiser is no longer needed
    barrier()
    return result


def _model_meta(stage: StageConfig, data: Dataset, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "arch": stage.arch, "width": stage.width, "stem": stage.stem,
        "num_classes": data.num_classes, "in_channels": data.in_channels,
        "input_size": getattr(stage, "input_size", None), "identity": identity,
    }


def read_teacher_checkpoint(path: Path) -> dict[str, Any]:
    """A finished teacher's model.pt; a missing or unreadable one says how to get a good one."""
    if not path.is_file():
        raise UserError(f"teacher checkpoint {path} not found: run `selective-kd teacher` first, or pass --teacher PATH")
    try:
        return load_checkpoint(path)
    except UserError:
        raise UserError(
            f"teacher checkpoint {path} cannot be read (damaged, or more than tensors and plain data): "
            f"delete the folder {path.parent} to train the teacher again, or pass --teacher PATH"
        ) from None


def class_count_error(what: str, source: str, predicted: Any, data: Dataset) -> UserError:
    """A model whose class count is not the data's: one message for the CLI (checkpoints) and the API (modules)."""
    return UserError(f"{what} {source} predicts {predicted} classes but {data.name} has {data.num_classes}: "
                     f"use a {what} trained on this dataset")


def load_model(path: Path, data: Dataset, runtime: Runtime, what: str = "teacher") -> tuple[nn.Module, dict[str, Any]]:
    """A finished stage's model, checked against the dataset it will see."""
    ckpt = read_teacher_checkpoint(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "num_classes" not in ckpt:
        raise UserError(f"{what} checkpoint {path} is not a selective-kd model (model.pt from `selective-kd teacher`)")
    if ckpt["num_classes"] != data.num_classes:
        raise class_count_error(what, f"checkpoint {path}", ckpt["num_classes"], data)
    if ckpt["in_channels"] != data.in_channels:
        raise UserError(f"{what} checkpoint {path} takes {ckpt['in_channels']} input channels, {data.name} has {data.in_channels}")
    model = build_model(ckpt["arch"], ckpt["num_classes"], ckpt["in_channels"], ckpt["stem"], ckpt["width"])
    model.input_size = ckpt.get("input_size")
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
                     identity: dict[str, Any], seed: int, runtime: Runtime, desc: str, quiet: bool) -> dict[str, Any]:
    """Train a model of ``stage``'s architecture with cross-entropy on ``train`` (teacher, scorer models)."""
    if (done := finished_result(files, identity, runtime)) is not None:
        log.info("%s: already trained in %s (val_acc %.4f)", desc, files.dir, done["val_acc"])
        return done
    torch.manual_seed(seed)
    model = build_model(stage.arch, data.num_classes, data.in_channels, stage.stem, stage.width)
    pretrained = getattr(stage, "pretrained", None)
    if pretrained:
        load_pretrained(model, pretrained)
    model.input_size = getattr(stage, "input_size", None)
    model = runtime.prepare(model)
    train_d, val = train.to(runtime.device), data.val.to(runtime.device)
    n, bs = len(train_d), stage.batch_size or cfg.batch_size
    log.info("%s: training %s (width %g) on %d samples for %d epochs%s", desc, stage.arch, stage.width, n, stage.epochs,
             " from " + pretrained if pretrained else " from scratch")
    history = fit(
        model, train_d, val, stage=stage, plan=OrderPlan(lambda e: random_order(None, n, e, seed), bs),
        objective=CrossEntropyObjective(stage.label_smoothing), runtime=runtime, seed=seed, out_dir=files.dir,
        identity=identity, eval_batch_size=cfg.eval_batch_size, desc=desc, quiet=quiet,
        callbacks=callbacks_for(cfg, files.dir, stage.epochs),
    )
    result = {"model": desc, "arch": stage.arch, "pretrained": pretrained, **summarize_history(history), "identity": identity}
    log.info("%s: val_acc %.4f val_loss %.4f (%.1fs)", desc, result["val_acc"], result["val_loss"], result["seconds"])
    return finish_stage(files, model, _model_meta(stage, data, identity), result, runtime)


def run_teacher(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> dict[str, Any]:
    """Train (or fine-tune) the teacher and report its validation accuracy and loss (Table 1)."""
    identity = teacher_identity(cfg, precision(runtime))
    result = train_supervised(cfg, cfg.teacher, data.teacher_train, data, paths.teacher, identity, cfg.seed, runtime, "teacher", quiet)
    return {**result, "model": "teacher"}


