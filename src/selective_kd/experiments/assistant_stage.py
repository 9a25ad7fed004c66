"""TAKD's teacher assistant (Mirzadeh et al., AAAI 2020): one more stage between teacher and students.

A large gap between teacher and student hurts distillation; an assistant of intermediate
size, distilled from the teacher, bridges it: the students then distil from the
assistant. The ``assistant`` config section holds its architecture and recipe (the keys
of ``student``) and how it distils: (1 − lam)·CE + lam·loss at ``temperature``, plain KD
with λ 0.5 at ``distill.temperature`` by default (the paper's TA is trained as the
student is). It trains on the students' training split, with a teacher signal of its
own (cached in the teacher's cache folder when its views are few enough, as a
student's), seeded by ``seed``; it lives in ``<run>/assistant/``, its logits for the
students in ``<run>/assistant/cache/``.

The curriculum is scored by the teacher, as in the paper the curriculum comes from: the
assistant changes which model the students distil from, not what is easy.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from selective_kd.config import Config, resolve_assistant
from selective_kd.curriculum.ordering import random_order
from selective_kd.data import Dataset
from selective_kd.data.augment import Views
from selective_kd.distill.objective import DistillObjective
from selective_kd.distill.policies import make_policy
from selective_kd.engine import OrderPlan, Runtime, fit
from selective_kd.errors import UserError
from selective_kd.experiments.identity import assistant_identity, file_digest
from selective_kd.experiments.stage import _model_meta, finish_stage, finished_result, precision, read_teacher_checkpoint, summarize_history
from selective_kd.experiments.student_stage import SignalSource, teacher_signal
from selective_kd.layout import RunPaths
from selective_kd.models import build_model_from
from selective_kd.watch import callbacks_for

log = logging.getLogger("selective_kd")


def assistant_views(cfg: Config) -> Views | None:
    a = cfg.assistant
    return Views(a.crop_padding, a.flip) if a is not None and a.augment else None


def assistant_signal_mode(cfg: Config) -> str:
    """"cached" or "online", as a student's (``distill.teacher_cache`` forces either)."""
    mode = cfg.distill.teacher_cache
    if mode != "auto":
        return "cached" if mode == "on" else "online"
    views = assistant_views(cfg)
    epochs = cfg.assistant.epochs if cfg.assistant is not None else 1
    return "cached" if (views.count if views else 1) <= epochs else "online"


def run_assistant(cfg: Config, paths: RunPaths, data: Dataset, runtime: Runtime, quiet: bool = False) -> dict[str, Any]:
    """Distil the assistant from the teacher (reused when finished with the same identity)."""
    if cfg.assistant is None:
        raise UserError("this config has no assistant: add an `assistant:` section (e.g. assistant.arch=resnet18 "
                        "assistant.width=0.25) to distil the students through one (TAKD)")
    a = resolve_assistant(cfg)
    read_teacher_checkpoint(paths.teacher.model)
    mode = assistant_signal_mode(cfg)
    identity = assistant_identity(cfg, teacher_digest=file_digest(paths.teacher.model), signal=mode, precision=precision(runtime))
    files = paths.assistant
    if (done := finished_result(files, identity, runtime)) is not None:
        log.info("assistant: already trained in %s (val_acc %.4f)", files.dir, done["val_acc"])
        return done
    train, val = data.student_train.to(runtime.device), data.val.to(runtime.device)
    n, bs, seed = len(train), a.batch_size or cfg.batch_size, cfg.seed
    source = SignalSource("teacher", paths.teacher.model, paths.cache_dir)
    signal = teacher_signal(source, data.student_train, assistant_views(cfg), data, runtime, mode, cfg.eval_batch_size, quiet)
    # loss_params are complete (resolve_assistant): they hold the method's temperature if it has one
    objective = DistillObjective(signal, make_policy("constant", {"lam": a.lam}), cfg.distill.temperature, a.label_smoothing,
                                 a.loss, dict(a.loss_params)).to(runtime.device)
    torch.manual_seed(seed)
    model = runtime.prepare(build_model_from(a, data.num_classes, data.in_channels, "assistant"))
    log.info("assistant: %s (width %g) distilled from the teacher (%s), loss %s, λ %g, τ %s, for %d epochs", a.arch, a.width,
             mode, a.loss, a.lam, a.temperature, a.epochs)
    history = fit(
        model, train, val, stage=a, plan=OrderPlan(lambda e: random_order(None, n, e, seed), bs), objective=objective,
        runtime=runtime, seed=seed, out_dir=files.dir, identity=identity, eval_batch_size=cfg.eval_batch_size,
        desc="assistant", quiet=quiet, callbacks=callbacks_for(cfg, files.dir, a.epochs),
    )
    result = {"model": "assistant", "arch": a.arch, "teacher_signal": mode, **summarize_history(history), "identity": identity}
    log.info("assistant: val_acc %.4f val_loss %.4f (%.1fs)", result["val_acc"], result["val_loss"], result["seconds"])
    return finish_stage(files, model, _model_meta(a, data, identity, "assistant"), result, runtime)
