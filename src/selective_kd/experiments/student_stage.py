"""The student stage: one variant, its teacher signal, λ policy, order, pacing and (dynamic) scorer."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from selective_kd.config import Config
from selective_kd.curriculum import SCORERS, read_curriculum
from selective_kd.data import Dataset
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
)
from selective_kd.engine import CrossEntropyObjective, Runtime, fit
from selective_kd.experiments.identity import (
    file_digest,
    student_identity,
)
from selective_kd.experiments.plans import StudentPlan
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher, resolve_variants
from selective_kd.layout import RunPaths
from selective_kd.models import build_model
from selective_kd.watch import callbacks_for

log = logging.getLogger("selective_kd")
from selective_kd.experiments.curriculum_stage import curriculum_digest
from selective_kd.experiments.stage import finish_stage, finished_result, _model_meta, load_teacher, precision, read_teacher_checkpoint, summarize_history


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
    if (done := finished_result(files, identity, runtime)) is not None:
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
        callbacks=callbacks_for(cfg, files.dir, scfg.epochs),
    )
    result = {"model": variant, "arch": scfg.arch, "shift": plan.shift, "teacher_signal": signal_name,
              **summarize_history(history), "identity": identity}
    log.info("student %s: val_acc %.4f val_loss %.4f mean λ %.4f (%.1fs)", variant, result["val_acc"], result["val_loss"],
             result["lam_mean"], result["seconds"])
    return finish_stage(files, model, _model_meta(scfg, data, identity), result, runtime)


