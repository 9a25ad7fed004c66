"""The student stage: one variant, its teacher signal, λ policy, order, pacing and (dynamic) scorer."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selective_kd.config import Config
from selective_kd.curriculum import SCORERS, read_curriculum
from selective_kd.checkpoint import load_checkpoint
from selective_kd.data import Dataset, Split
from selective_kd.data.augment import Views
from selective_kd.distill.objective import variant_objective
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
from selective_kd.errors import UserError
from selective_kd.experiments.identity import (
    file_digest,
    student_identity,
)
from selective_kd.experiments.plans import StudentPlan
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher, resolve_variants
from selective_kd.layout import RunPaths
from selective_kd.models import build_model_from
from selective_kd.watch import callbacks_for

log = logging.getLogger("selective_kd")
from selective_kd.experiments.curriculum_stage import curriculum_digest
from selective_kd.experiments.stage import finish_stage, finished_result, _model_meta, load_model, precision, read_teacher_checkpoint, summarize_history


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


@dataclass(frozen=True)
class SignalSource:
    """The model whose logits a student learns from, and where the cache of them lives."""

    what: str  # "teacher", "teacher after epoch k" (ESKD) or "assistant" (TAKD)
    model: Path
    cache_dir: Path
    missing: str = ""  # how to get the model when it is not there ("" for the teacher: its own message)


def signal_source(cfg: Config, paths: RunPaths) -> SignalSource:
    """The assistant when there is one (TAKD), else the teacher after ``distill.teacher_epoch``
    (ESKD), else the final teacher. The curriculum is scored by the final teacher in every case."""
    if cfg.assistant is not None:
        return SignalSource("assistant", paths.assistant.model, paths.assistant_cache_dir,
                            f"run `selective-kd assistant --out {paths.out}` first (or `selective-kd run`)")
    k = cfg.distill.teacher_epoch
    if k is not None:
        return SignalSource(f"teacher after epoch {k}", paths.teacher_snapshot(k), paths.cache_dir,
                            f"run `selective-kd teacher` with distill.teacher_epoch={k} first: it keeps that epoch "
                            f"(training the first {k} epochs again for a teacher already trained)")
    return SignalSource("teacher", paths.teacher.model, paths.cache_dir)


def read_source(src: SignalSource) -> None:
    """Check the source model is there and readable; one line saying how to get it if not."""
    if not src.missing:
        read_teacher_checkpoint(src.model)
        return
    if not src.model.is_file():
        raise UserError(f"checkpoint {src.model} ({src.what}) not found: {src.missing}")
    try:
        load_checkpoint(src.model)
    except UserError:
        raise UserError(f"checkpoint {src.model} ({src.what}) cannot be read (damaged, or more than tensors and plain "
                        f"data): delete it, then {src.missing}") from None


def teacher_signal(src: SignalSource, split: Split, views: Views | None, data: Dataset, runtime: Runtime, mode: str,
                   batch_size: int, quiet: bool) -> TeacherSignal:
    """The online source model, or the cache of its logits for every (sample of ``split``, view)."""
    model, ckpt = load_model(src.model, data, runtime, src.what)
    if mode == "online":
        return OnlineTeacher(model)
    x = split.x
    key = cache_key(file_digest(src.model), x, split.y, views, ckpt.get("input_size"))

    def build() -> torch.Tensor:
        t0 = time.perf_counter()
        table = compute_view_logits(model, x.to(runtime.device), views, runtime, batch_size, quiet)
        log.info("%s cache: %d samples × %d views in %.1fs", src.what, x.shape[0], table.shape[1], time.perf_counter() - t0)
        return table

    table = load_or_build_cache(src.cache_dir, key, build, writer=runtime.dist.is_main)
    on_device = table.to(runtime.device) if runtime.device.type == "cuda" else table
    return CachedTeacher(on_device)


def _trained_with_seed(checkpoint: dict[str, Any], fallback: int) -> int:
    """The seed the teacher's own identity records (what trained it), else ``fallback`` (the config's).

    Why: the statistics nest students in teachers by this number, and a student run on
    its own (``selective-kd student``) may name another seed than the one its teacher had.
    """
    ident = checkpoint.get("identity") if isinstance(checkpoint, dict) else None
    seed = ident.get("seed") if isinstance(ident, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else fallback


def run_student(
    cfg: Config, paths: RunPaths, variant: str, data: Dataset, runtime: Runtime, quiet: bool = False
) -> dict[str, Any]:
    """Train one student variant (a row of Table 2)."""
    v = get_variant(cfg.distill, variant)
    scfg = cfg.student
    bs = scfg.batch_size or cfg.batch_size
    use_teacher, use_cur = needs_teacher(v), needs_curriculum(v)
    signal_name, teacher_digest, teacher_seed = "none", None, cfg.teacher_seed
    src = signal_source(cfg, paths)
    if use_teacher:
        read_source(src)
        teacher_seed = _trained_with_seed(read_teacher_checkpoint(paths.teacher.model), teacher_seed)
        signal_name, teacher_digest = teacher_signal_mode(cfg), file_digest(src.model)
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
        rescore = lambda m: fn(m, train.x, train.y, cfg.eval_batch_size, stratify).with_truth(train.clean_y)  # noqa: E731
    plan = StudentPlan(
        order=v.order, pacing=v.pacing, pacing_params=v.pacing_params, n=len(train), batch_size=bs, epochs=scfg.epochs,
        seed=cfg.seed, curriculum=cur, fixed_shift=cfg.distill.shift, device=runtime.device, rescore=rescore,
        every=int(v.scorer_params.get("every", 0)), write_to=files.curriculum if runtime.dist.is_main else None,
    )
    objective: Any = CrossEntropyObjective(scfg.label_smoothing)
    if use_teacher:
        signal = teacher_signal(src, data.student_train, student_views(cfg), data, runtime, signal_name,
                                cfg.eval_batch_size, quiet)
        objective = variant_objective(signal, make_policy(v.policy, v.policy_params, plan.source), v,
                                      cfg.distill.temperature, scfg.label_smoothing).to(runtime.device)
    torch.manual_seed(cfg.seed)  # every variant starts from the same weights for a seed: paired comparisons
    model = runtime.prepare(build_model_from(scfg, data.num_classes, data.in_channels, "student"))
    lam = v.policy_params.get("lam") if v.policy == "constant" else f"{v.policy} (s={plan.shift:.4f})" if plan.shift is not None else v.policy
    log.info("student %s: %s, order %s, pacing %s, λ %s, teacher %s%s", variant, scfg.arch, v.order, v.pacing, lam,
             f"{signal_name} ({src.what})" if use_teacher else signal_name, f", re-scored by {v.scorer}" if v.scorer else "")
    history = fit(
        model, train, val, stage=scfg, plan=plan, objective=objective, runtime=runtime, seed=cfg.seed,
        out_dir=files.dir, identity=identity, eval_batch_size=cfg.eval_batch_size, desc=f"student {variant}", quiet=quiet,
        callbacks=callbacks_for(cfg, files.dir, scfg.epochs),
    )
    result = {"model": variant, "arch": scfg.arch, "teacher_seed": teacher_seed, "shift": plan.shift, "teacher_signal": signal_name,
              **summarize_history(history), "identity": identity}
    log.info("student %s: val_acc %.4f val_loss %.4f mean λ %.4f (%.1fs)", variant, result["val_acc"], result["val_loss"],
             result["lam_mean"], result["seconds"])
    meta = _model_meta(scfg, data, identity, "student")
    if isinstance(objective, torch.nn.Module) and objective.state_dict():  # e.g. CTKD's learned temperature
        meta["objective"] = {k: v.detach().cpu() for k, v in objective.state_dict().items()}
    return finish_stage(files, model, meta, result, runtime)


