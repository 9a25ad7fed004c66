"""The paper's pipeline as stages: teacher → curriculum → six students → report.

Each stage reads what the one before wrote, so stages run alone (``selective-kd
teacher`` ...) or together (``selective-kd run``). A finished stage leaves a
``result.json`` and is skipped when asked again with the same settings; an unfinished
one resumes from its last epoch; a folder made with other settings is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selective_kd.config import Config, dump_yaml, to_dict
from selective_kd.curriculum import Curriculum, curriculum_order, epoch_order, read_curriculum, write_curriculum
from selective_kd.curriculum.scoring import scores_from_logits, teacher_logits
from selective_kd.data import Dataset, load_dataset
from selective_kd.data.augment import Views
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import default_shift, make_policy
from selective_kd.distill.teacher import (
    CachedTeacher,
    OnlineTeacher,
    TeacherSignal,
    cache_key,
    compute_view_logits,
    load_or_build_cache,
)
from selective_kd.distributed import barrier
from selective_kd.engine import CrossEntropyObjective, Runtime, fit, load_checkpoint, mismatch_message, resolve_runtime
from selective_kd.errors import UserError
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher, resolve_variants
from selective_kd.fileio import read_jsonl, torch_save, write_json, write_text
from selective_kd.models import build_model, load_pretrained

log = logging.getLogger("selective_kd")


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go; the teacher and curriculum may be shared with other runs."""

    out: Path
    teacher_dir: Path
    curriculum: Path

    @classmethod
    def under(cls, out: Path, teacher_dir: Path | None = None, curriculum: Path | None = None) -> RunPaths:
        return cls(out, teacher_dir or out / "teacher", curriculum or out / "curriculum.csv")

    def student_dir(self, variant: str) -> Path:
        return self.out / "students" / variant


# --------------------------------------------------------------------------- identities

_DATA_KEYS = ("labels", "val_fraction", "split_seed", "teacher_fraction", "limit_train", "limit_val")


def data_identity(cfg: Config) -> dict[str, Any]:
    """Settings that decide the exact samples and split (not where the files lie)."""
    d = to_dict(cfg.data)
    return {"dataset": cfg.dataset, **{k: d[k] for k in _DATA_KEYS}}


def teacher_identity(cfg: Config) -> dict[str, Any]:
    bs = cfg.teacher.batch_size or cfg.batch_size
    return {"data": data_identity(cfg), "seed": cfg.seed, "batch_size": bs, "teacher": to_dict(cfg.teacher)}


def student_identity(cfg: Config, variant: str, teacher_id: dict[str, Any] | None, signal: str) -> dict[str, Any]:
    v = get_variant(cfg.distill, variant)
    return {
        "data": data_identity(cfg),
        "seed": cfg.seed,
        "batch_size": cfg.student.batch_size or cfg.batch_size,
        "student": to_dict(cfg.student),
        "variant": {"name": variant, **to_dict(v)},
        "temperature": cfg.distill.temperature,
        "shift": cfg.distill.shift,
        "teacher": teacher_id,
        "teacher_signal": signal,
    }


# --------------------------------------------------------------------------- helpers


def summarize_history(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Final validation metrics, the best accuracy, and epochs to reach 95% of the best."""
    best = max(h["val_acc"] for h in history)
    to95 = next(h["epoch"] for h in history if h["val_acc"] >= 0.95 * best)
    return {
        "val_acc": history[-1]["val_acc"],
        "val_loss": history[-1]["val_loss"],
        "best_val_acc": best,
        "epochs_to_95": to95,
        "epochs": len(history),
        "seconds": sum(h["seconds"] for h in history),
    }


def _finished(stage_dir: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The stage's result if it already finished with these settings; error if with others."""
    result_path = stage_dir / "result.json"
    if not result_path.exists():
        return None
    result = json.loads(result_path.read_text())
    if result.get("identity") != identity:
        raise UserError(mismatch_message(stage_dir, result.get("identity"), identity))
    return result


def _finish(stage_dir: Path, model: nn.Module, meta: dict[str, Any], result: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    if runtime.dist.is_main:
        torch_save(stage_dir / "model.pt", {**meta, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
        write_json(stage_dir / "result.json", result)
        (stage_dir / "last.pt").unlink(missing_ok=True)  # model.pt holds the weights; the optimiser is no longer needed
    barrier()
    return result


def _model_meta(cfg_stage: Any, data: Dataset) -> dict[str, Any]:
    return {
        "arch": cfg_stage.arch, "width": cfg_stage.width, "stem": cfg_stage.stem,
        "num_classes": data.num_classes, "in_channels": data.in_channels,
        "input_size": getattr(cfg_stage, "input_size", None),
    }


def read_teacher_checkpoint(path: Path) -> dict[str, Any]:
    """A finished teacher's model.pt; a missing or unreadable one says how to get a good one."""
    if not path.is_file():
        raise UserError(f"teacher checkpoint {path} not found: run `selective-kd teacher` first, or pass --teacher PATH")
    try:
        return load_checkpoint(path)
    except UserError:
        raise UserError(
            f"teacher checkpoint {path} cannot be read: delete the folder {path.parent} to train the teacher again, "
            "or pass --teacher PATH"
        ) from None


def load_teacher(path: Path, data: Dataset, runtime: Runtime) -> tuple[nn.Module, dict[str, Any]]:
    """The trained teacher, checked against the dataset it will score."""
    ckpt = read_teacher_checkpoint(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "num_classes" not in ckpt:
        raise UserError(f"teacher checkpoint {path} is not a selective-kd teacher (model.pt from `selective-kd teacher`)")
    if ckpt["num_classes"] != data.num_classes:
        raise UserError(
            f"teacher checkpoint {path} predicts {ckpt['num_classes']} classes but {data.name} has "
            f"{data.num_classes}: use a teacher trained on this dataset"
        )
    if ckpt["in_channels"] != data.in_channels:
        raise UserError(f"teacher checkpoint {path} takes {ckpt['in_channels']} input channels, {data.name} has {data.in_channels}")
    model = build_model(ckpt["arch"], ckpt["num_classes"], ckpt["in_channels"], ckpt["stem"], ckpt["width"])
    model.input_size = ckpt.get("input_size")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"teacher checkpoint {path} does not match its recorded architecture: {str(exc).splitlines()[0]}") from None
    return runtime.prepare(model).eval(), ckpt


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- stages


def run_teacher(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> dict[str, Any]:
    """Train (or fine-tune) the teacher and report its validation accuracy and loss (Table 1)."""
    identity = teacher_identity(cfg)
    stage_dir = paths.teacher_dir
    if (done := _finished(stage_dir, identity)) is not None:
        log.info("teacher: already trained in %s (val_acc %.4f)", stage_dir, done["val_acc"])
        return done
    tcfg = cfg.teacher
    torch.manual_seed(cfg.seed)
    model = build_model(tcfg.arch, data.num_classes, data.in_channels, tcfg.stem, tcfg.width)
    if tcfg.pretrained:
        load_pretrained(model, tcfg.pretrained)
    model.input_size = tcfg.input_size
    model = runtime.prepare(model)
    train, val = data.teacher_train.to(runtime.device), data.val.to(runtime.device)
    n = len(train)
    log.info("teacher: training %s (width %g) on %d samples for %d epochs%s", tcfg.arch, tcfg.width, n, tcfg.epochs,
             " from " + tcfg.pretrained if tcfg.pretrained else " from scratch")
    history = fit(
        model, train, val, stage=tcfg, batch_size=tcfg.batch_size or cfg.batch_size,
        objective=CrossEntropyObjective(tcfg.label_smoothing),
        order_for_epoch=lambda e: epoch_order("random", n, e, cfg.seed),
        runtime=runtime, seed=cfg.seed, out_dir=stage_dir, identity=identity,
        eval_batch_size=cfg.eval_batch_size, desc="teacher", quiet=quiet,
    )
    result = {"model": "teacher", "arch": tcfg.arch, "pretrained": tcfg.pretrained, **summarize_history(history), "identity": identity}
    log.info("teacher: val_acc %.4f val_loss %.4f (%.1fs)", result["val_acc"], result["val_loss"], result["seconds"])
    return _finish(stage_dir, model, {**_model_meta(tcfg, data), "identity": identity}, result, runtime)


def run_curriculum(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> Curriculum:
    """Score the student's training set with the teacher and order it easy to hard (Figure 1)."""
    teacher_path = paths.teacher_dir / "model.pt"
    meta_path = paths.curriculum.with_suffix(".json")
    if paths.curriculum.exists() and meta_path.exists() and teacher_path.exists():
        if json.loads(meta_path.read_text()).get("teacher") == file_digest(teacher_path):
            log.info("curriculum: already in %s", paths.curriculum)
            return read_curriculum(paths.curriculum, data.student_train.y)
    model, _ = load_teacher(teacher_path, data, runtime)
    t0 = time.perf_counter()
    logits = teacher_logits(model, data.student_train.x.to(runtime.device), cfg.eval_batch_size, runtime.autocast_dtype)
    scores = scores_from_logits(logits, data.student_train.y)
    cur = Curriculum(scores, curriculum_order(scores))
    if runtime.dist.is_main:
        write_curriculum(paths.curriculum, cur)
        write_json(meta_path, {"teacher": file_digest(teacher_path), "samples": len(scores)})
        from selective_kd.report.figures import plot_curriculum

        plot_curriculum(cur, paths.out / "figure1_curriculum.png")
    barrier()
    log.info(
        "curriculum: %d samples scored in %.1fs, teacher correct on %.1f%%, written to %s",
        len(scores), time.perf_counter() - t0, 100 * scores.correct.double().mean().item(), paths.curriculum,
    )
    return cur


def teacher_signal_mode(cfg: Config) -> str:
    """"cached" or "online": whichever needs fewer teacher passes over the data.

    The cache costs one pass per augmented view, once; the online teacher one pass per
    student epoch and KD variant. ``distill.teacher_cache`` forces either.
    """
    mode = cfg.distill.teacher_cache
    if mode != "auto":
        return "cached" if mode == "on" else "online"
    views = student_views(cfg)
    count = views.count if views else 1
    kd_variants = sum(needs_teacher(v) for v in resolve_variants(cfg.distill).values())
    return "cached" if count <= cfg.student.epochs * max(1, kd_variants) else "online"


def student_views(cfg: Config) -> Views | None:
    return Views(cfg.student.crop_padding, cfg.student.flip) if cfg.student.augment else None


def _teacher_signal(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, mode: str, quiet: bool) -> TeacherSignal:
    """The online teacher, or the cache of its logits for every (sample, view)."""
    teacher_path = paths.teacher_dir / "model.pt"
    model, ckpt = load_teacher(teacher_path, data, runtime)
    if mode == "online":
        return OnlineTeacher(model)
    views = student_views(cfg)
    x = data.student_train.x
    key = cache_key(file_digest(teacher_path), x, data.student_train.y, views, ckpt.get("input_size"))

    def build() -> torch.Tensor:
        t0 = time.perf_counter()
        table = compute_view_logits(model, x.to(runtime.device), views, runtime, cfg.eval_batch_size, quiet)
        log.info("teacher cache: %d samples × %d views in %.1fs", x.shape[0], table.shape[1], time.perf_counter() - t0)
        return table

    table = load_or_build_cache(paths.teacher_dir / "cache", key, build, writer=runtime.dist.is_main)
    on_device = table.to(runtime.device) if runtime.device.type == "cuda" else table
    return CachedTeacher(on_device)


def _teacher_identity_of(paths: RunPaths) -> dict[str, Any] | None:
    """The settings the teacher checkpoint was trained with (part of a student's identity)."""
    return read_teacher_checkpoint(paths.teacher_dir / "model.pt").get("identity")


def run_student(
    cfg: Config, paths: RunPaths, variant: str, data: Dataset, runtime: Runtime, quiet: bool = False
) -> dict[str, Any]:
    """Train one student variant (a row of Table 2)."""
    v = get_variant(cfg.distill, variant)
    scfg = cfg.student
    bs = scfg.batch_size or cfg.batch_size
    signal_name, teacher_id = "none", None
    if needs_teacher(v):
        signal_name, teacher_id = teacher_signal_mode(cfg), _teacher_identity_of(paths)
    identity = student_identity(cfg, variant, teacher_id, signal_name)
    stage_dir = paths.student_dir(variant)
    if (done := _finished(stage_dir, identity)) is not None:
        log.info("student %s: already trained (val_acc %.4f)", variant, done["val_acc"])
        return done
    signal = _teacher_signal(cfg, paths, data, runtime, signal_name, quiet) if needs_teacher(v) else None
    cur = read_curriculum(paths.curriculum, data.student_train.y) if needs_curriculum(v) else None
    train, val = data.student_train.to(runtime.device), data.val.to(runtime.device)
    n = len(train)
    objective: Any = CrossEntropyObjective(scfg.label_smoothing)
    shift = None
    if signal is not None:
        conf = cur.scores.confidence.float().to(runtime.device) if cur is not None else None
        if cur is not None:
            shift = cfg.distill.shift if cfg.distill.shift is not None else default_shift(cur.scores.confidence, cur.order, bs)
        policy = make_policy(v.policy, lam=v.lam, confidence=conf, shift=shift)
        objective = DistillObjective(signal, policy, cfg.distill.temperature)
    order = cur.order if cur is not None else None
    torch.manual_seed(cfg.seed)  # every variant starts from the same weights for a seed: paired comparisons
    model = runtime.prepare(build_model(scfg.arch, data.num_classes, data.in_channels, scfg.stem, scfg.width))
    log.info("student %s: %s, order %s, λ %s, teacher %s", variant, scfg.arch, v.order,
             v.lam if v.policy == "constant" else f"{v.policy} (s={shift:.4f})", signal_name)
    history = fit(
        model, train, val, stage=scfg, batch_size=bs, objective=objective,
        order_for_epoch=lambda e: epoch_order(v.order, n, e, cfg.seed, order),
        runtime=runtime, seed=cfg.seed, out_dir=stage_dir, identity=identity,
        eval_batch_size=cfg.eval_batch_size, desc=f"student {variant}", quiet=quiet,
    )
    result = {"model": variant, "arch": scfg.arch, "shift": shift, "teacher_signal": signal_name,
              **summarize_history(history), "identity": identity}
    log.info("student %s: val_acc %.4f val_loss %.4f (%.1fs)", variant, result["val_acc"], result["val_loss"], result["seconds"])
    return _finish(stage_dir, model, {**_model_meta(scfg, data), "identity": identity}, result, runtime)


def run_all(cfg: Config, paths: RunPaths, quiet: bool = False) -> str:
    """Every stage, then the report; returns Table 2 as markdown."""
    from selective_kd.report import write_report

    t0 = time.perf_counter()
    runtime = resolve_runtime(cfg)
    if runtime.dist.is_main:
        paths.out.mkdir(parents=True, exist_ok=True)
        write_text(paths.out / "config.yaml", dump_yaml(cfg))
    data = load_dataset(cfg)
    log.info("data: %s; device %s", data.describe(), runtime.device)
    variants = resolve_variants(cfg.distill)
    if any(needs_teacher(v) or needs_curriculum(v) for v in variants.values()):
        run_teacher(cfg, paths, data, runtime, quiet)
    if any(needs_curriculum(v) for v in variants.values()):
        run_curriculum(cfg, paths, data, runtime, quiet)
    for name in variants:
        run_student(cfg, paths, name, data, runtime, quiet)
    table = write_report([paths.out], paths.out) if runtime.dist.is_main else ""
    log.info("run: finished in %.1fs; results in %s", time.perf_counter() - t0, paths.out)
    return table


def read_history(stage_dir: Path) -> list[dict[str, Any]]:
    path = stage_dir / "metrics.jsonl"
    return read_jsonl(path) if path.exists() else []
