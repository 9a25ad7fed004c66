"""The paper's pipeline as stages: teacher → curriculum → six students → report.

Each stage reads what the one before wrote, so stages run alone (``selective-kd
teacher`` ...) or together (``selective-kd run``). A finished stage leaves a
``result.json`` and is skipped when asked again with the same settings; an unfinished
one resumes from its last epoch; a folder made with other settings is refused.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from selective_kd.checkpoint import load_checkpoint, save_checkpoint
from selective_kd.config import Config, StageConfig, resolve_curriculum, to_dict
from selective_kd.curriculum import SCORERS, Curriculum, read_curriculum, teacher_logits, write_curriculum
from selective_kd.data import Dataset, Split
from selective_kd.data.augment import Views
from selective_kd.distill.losses import LOSSES
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import make_policy
from selective_kd.distill.teacher import (
    CachedTeacher,
    OnlineTeacher,
    TeacherSignal,
    cache_key,
    compute_view_logits,
    load_or_build_cache,
    tensor_digest,
)
from selective_kd.distributed import barrier
from selective_kd.engine import CrossEntropyObjective, OrderPlan, Runtime, fit, mismatch_message, resolve_runtime
from selective_kd.curriculum.ordering import random_order
from selective_kd.errors import UserError
from selective_kd.experiments.identity import (
    curriculum_identity,
    file_digest,
    precision_of,
    stage_identity,
    student_identity,
    teacher_identity,
)
from selective_kd.experiments.plans import StudentPlan
from selective_kd.experiments.variants import needs_curriculum, needs_teacher, resolve_variants, get_variant
from selective_kd.fileio import read_jsonl, write_json
from selective_kd.layout import RunPaths, StageFiles
from selective_kd.models import build_model, load_pretrained

__all__ = ["RunPaths", "run_all", "run_curriculum", "run_student", "run_teacher", "teacher_identity"]

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


def _finished(files: StageFiles, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The stage's result if it finished with these settings and its files are whole; error if other settings."""
    if not files.result.exists():
        return None
    result = read_result(files.result)
    if result.get("identity") != identity:
        raise UserError(mismatch_message(files.dir, result.get("identity"), identity))
    if not files.model.is_file() or file_digest(files.model) != result.get("model_sha256"):
        log.warning("%s: model.pt is missing or damaged; training this stage again", files.dir)
        files.result.unlink()
        return None
    return result


def _finish(files: StageFiles, model: nn.Module, meta: dict[str, Any], result: dict[str, Any], runtime: Runtime) -> dict[str, Any]:
    if runtime.dist.is_main:
        save_checkpoint(files.model, {**meta, "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})
        result = {**result, "model_sha256": file_digest(files.model)}
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
    except UserError as exc:
        raise UserError(f"{exc}; or delete the folder {path.parent} to train the teacher again, or pass --teacher PATH") from None


def load_model(path: Path, data: Dataset, runtime: Runtime, what: str = "teacher") -> tuple[nn.Module, dict[str, Any]]:
    """A finished stage's model, checked against the dataset it will see."""
    ckpt = read_teacher_checkpoint(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "num_classes" not in ckpt:
        raise UserError(f"{what} checkpoint {path} is not a selective-kd model (model.pt from `selective-kd teacher`)")
    if ckpt["num_classes"] != data.num_classes:
        raise UserError(
            f"{what} checkpoint {path} predicts {ckpt['num_classes']} classes but {data.name} has "
            f"{data.num_classes}: use a {what} trained on this dataset"
        )
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
    if (done := _finished(files, identity)) is not None:
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
    )
    result = {"model": desc, "arch": stage.arch, "pretrained": pretrained, **summarize_history(history), "identity": identity}
    log.info("%s: val_acc %.4f val_loss %.4f (%.1fs)", desc, result["val_acc"], result["val_loss"], result["seconds"])
    return _finish(files, model, _model_meta(stage, data, identity), result, runtime)


def run_teacher(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> dict[str, Any]:
    """Train (or fine-tune) the teacher and report its validation accuracy and loss (Table 1)."""
    identity = teacher_identity(cfg, precision(runtime))
    result = train_supervised(cfg, cfg.teacher, data.teacher_train, data, paths.teacher, identity, cfg.seed, runtime, "teacher", quiet)
    return {**result, "model": "teacher"}


# --------------------------------------------------------------------------- curriculum


@dataclass
class _Scoring:
    """The pipeline's side of ``curriculum.ScoringContext``: trains and runs models for scorers."""

    cfg: Config
    paths: RunPaths
    data: Dataset
    runtime: Runtime
    quiet: bool
    _teacher: nn.Module | None = None

    @property
    def y(self) -> Tensor:
        return self.data.student_train.y

    @property
    def seed(self) -> int:
        return self.cfg.data.split_seed

    @property
    def stratify(self) -> bool:
        return self.cfg.curriculum.stratify

    def kd_teacher(self) -> nn.Module:
        if self._teacher is None:
            self._teacher, _ = load_teacher(self.paths.teacher.model, self.data, self.runtime)
        return self._teacher

    def train_model(self, role: str, on: str, idx: Tensor | None, name: str, seed: int) -> nn.Module:
        stage = self.cfg.teacher if role == "teacher" else self.cfg.student
        split: Split = getattr(self.data, on)
        if idx is not None:
            split = Split(split.x[idx].contiguous(), split.y[idx])
        identity = {"role": f"scorer model {name}", **stage_identity(self.cfg, stage, precision(self.runtime), seed),
                    "on": on, "samples": tensor_digest(idx) if idx is not None else None}
        files = StageFiles(self.paths.scorer_dir / name)
        train_supervised(self.cfg, stage, split, self.data, files, identity, seed, self.runtime, f"scorer {name}", self.quiet)
        return load_model(files.model, self.data, self.runtime, "scorer model")[0]

    def logits(self, model: nn.Module, idx: Tensor | None = None) -> Tensor:
        x = self.data.student_train.x if idx is None else self.data.student_train.x[idx]
        return teacher_logits(model, x.to(self.runtime.device), self.cfg.eval_batch_size).cpu()


def curriculum_digest(cur: Curriculum) -> str:
    """What a student reads of a curriculum: the order and the scores."""
    s = cur.scores
    return tensor_digest(cur.order, s.label, s.prediction, s.confidence, s.correct)


def run_curriculum(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> Curriculum:
    """Score the student's training set and order it easy to hard (Figure 1), with the configured scorer."""
    cur_cfg = resolve_curriculum(cfg)
    comp = SCORERS.get(cur_cfg.scorer)
    digest = None
    if "teacher" in comp.needs:
        read_teacher_checkpoint(paths.teacher.model)
        digest = file_digest(paths.teacher.model)
    identity = curriculum_identity(cfg, digest, precision(runtime))
    meta_path = paths.curriculum_meta
    if paths.curriculum.exists() and meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if isinstance(meta, dict) and meta.get("identity") == identity and meta.get("csv_sha256") == file_digest(paths.curriculum):
            log.info("curriculum: already in %s", paths.curriculum)
            return read_curriculum(paths.curriculum, data.student_train.y)
        log.info("curriculum: %s was made with other settings or edited; scoring again", paths.curriculum)
    t0 = time.perf_counter()
    cur = comp.fn(_Scoring(cfg, paths, data, runtime, quiet), **cur_cfg.params)
    if runtime.dist.is_main:
        write_curriculum(paths.curriculum, cur)
        write_json(meta_path, {"identity": identity, "csv_sha256": file_digest(paths.curriculum),
                               "scorer": cur_cfg.scorer, "samples": len(cur.scores)})
        from selective_kd.report.figures import plot_curriculum

        plot_curriculum(cur, paths.out / "figure1_curriculum.png", scorer=cur_cfg.scorer)
    barrier()
    log.info(
        "curriculum: %d samples scored by %s in %.1fs, scorer correct on %.1f%%, written to %s", len(cur.scores),
        cur_cfg.scorer, time.perf_counter() - t0, 100 * cur.scores.correct.double().mean().item(), paths.curriculum,
    )
    return cur


# --------------------------------------------------------------------------- students


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
    model, ckpt = load_teacher(paths.teacher.model, data, runtime)
    if mode == "online":
        return OnlineTeacher(model)
    views = student_views(cfg)
    x = data.student_train.x
    key = cache_key(file_digest(paths.teacher.model), x, data.student_train.y, views, ckpt.get("input_size"))

    def build() -> torch.Tensor:
        t0 = time.perf_counter()
        table = compute_view_logits(model, x.to(runtime.device), views, runtime, cfg.eval_batch_size, quiet)
        log.info("teacher cache: %d samples × %d views in %.1fs", x.shape[0], table.shape[1], time.perf_counter() - t0)
        return table

    table = load_or_build_cache(paths.cache_dir, key, build, writer=runtime.dist.is_main)
    on_device = table.to(runtime.device) if runtime.device.type == "cuda" else table
    return CachedTeacher(on_device)


def run_student(
    cfg: Config, paths: RunPaths, variant: str, data: Dataset, runtime: Runtime, quiet: bool = False
) -> dict[str, Any]:
    """Train one student variant (a row of Table 2)."""
    v = get_variant(cfg.distill, variant)
    scfg = cfg.student
    bs = scfg.batch_size or cfg.batch_size
    use_teacher, use_cur = needs_teacher(v), needs_curriculum(v)
    signal_name, teacher_digest = "none", None
    if use_teacher:
        read_teacher_checkpoint(paths.teacher.model)
        signal_name, teacher_digest = teacher_signal_mode(cfg), file_digest(paths.teacher.model)
    cur = read_curriculum(paths.curriculum, data.student_train.y) if use_cur else None
    identity = student_identity(
        cfg, variant, v, teacher_digest=teacher_digest, curriculum_digest=curriculum_digest(cur) if cur else None,
        signal=signal_name, precision=precision(runtime),
    )
    files = paths.student(variant)
    if (done := _finished(files, identity)) is not None:
        log.info("student %s: already trained (val_acc %.4f)", variant, done["val_acc"])
        return done
    train, val = data.student_train.to(runtime.device), data.val.to(runtime.device)
    rescore = None
    if v.scorer is not None:
        fn, stratify = SCORERS.get(v.scorer).fn, cfg.curriculum.stratify
        rescore = lambda m: fn(m, train.x, train.y, cfg.eval_batch_size, stratify)  # noqa: E731
    plan = StudentPlan(
        order=v.order, pacing=v.pacing, pacing_params=v.pacing_params, n=len(train), batch_size=bs, epochs=scfg.epochs,
        seed=cfg.seed, curriculum=cur, fixed_shift=cfg.distill.shift, device=runtime.device, rescore=rescore,
        every=int(v.scorer_params.get("every", 0)), write_to=files.curriculum if runtime.dist.is_main else None,
    )
    objective: Any = CrossEntropyObjective(scfg.label_smoothing)
    if use_teacher:
        signal = _teacher_signal(cfg, paths, data, runtime, signal_name, quiet)
        objective = DistillObjective(signal, make_policy(v.policy, v.policy_params, plan.source), cfg.distill.temperature,
                                     scfg.label_smoothing, LOSSES.get(v.loss).fn, dict(v.loss_params))
    torch.manual_seed(cfg.seed)  # every variant starts from the same weights for a seed: paired comparisons
    model = runtime.prepare(build_model(scfg.arch, data.num_classes, data.in_channels, scfg.stem, scfg.width))
    lam = v.policy_params.get("lam") if v.policy == "constant" else f"{v.policy} (s={plan.shift:.4f})" if plan.shift is not None else v.policy
    log.info("student %s: %s, order %s, pacing %s, λ %s, teacher %s%s", variant, scfg.arch, v.order, v.pacing, lam,
             signal_name, f", re-scored by {v.scorer}" if v.scorer else "")
    history = fit(
        model, train, val, stage=scfg, plan=plan, objective=objective, runtime=runtime, seed=cfg.seed,
        out_dir=files.dir, identity=identity, eval_batch_size=cfg.eval_batch_size, desc=f"student {variant}", quiet=quiet,
    )
    result = {"model": variant, "arch": scfg.arch, "shift": plan.shift, "teacher_signal": signal_name,
              **summarize_history(history), "identity": identity}
    log.info("student %s: val_acc %.4f val_loss %.4f mean λ %.4f (%.1fs)", variant, result["val_acc"], result["val_loss"],
             result["lam_mean"], result["seconds"])
    return _finish(files, model, _model_meta(scfg, data, identity), result, runtime)


def run_all(cfg: Config, paths: RunPaths, quiet: bool = False) -> str:
    """Every stage, then the report; returns Table 2 as markdown."""
    from selective_kd.data import load_dataset
    from selective_kd.report import write_report

    t0 = time.perf_counter()
    runtime = resolve_runtime(cfg)
    data = load_dataset(cfg)
    log.info("data: %s; device %s", data.describe(), runtime.device)
    variants = resolve_variants(cfg.distill)
    curriculum = any(needs_curriculum(v) for v in variants.values())
    scorer_teacher = "teacher" in SCORERS.get(cfg.curriculum.scorer).needs
    if any(needs_teacher(v) for v in variants.values()) or (curriculum and scorer_teacher):
        run_teacher(cfg, paths, data, runtime, quiet)
    if curriculum:
        run_curriculum(cfg, paths, data, runtime, quiet)
    for name in variants:
        run_student(cfg, paths, name, data, runtime, quiet)
    table = write_report([paths.out], paths.out) if runtime.dist.is_main else ""
    log.info("run: finished in %.1fs; results in %s", time.perf_counter() - t0, paths.out)
    return table


def read_history(stage_dir: Path) -> list[dict[str, Any]]:
    path = StageFiles(stage_dir).metrics
    return read_jsonl(path) if path.exists() else []
