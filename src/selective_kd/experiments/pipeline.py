"""The paper's pipeline as stages: teacher → curriculum → [assistant] → six students → report.

Each stage reads what the one before wrote, so stages run alone (``selective-kd
teacher`` ...) or together (``selective-kd run``). A finished stage leaves a
``result.json`` and is skipped when asked again with the same settings; an unfinished
one resumes from its last epoch; a folder made with other settings is refused.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from selective_kd.config import Config
from selective_kd.curriculum import SCORERS
from selective_kd.engine import resolve_runtime
from selective_kd.experiments.curriculum_stage import run_curriculum
from selective_kd.experiments.identity import teacher_identity
from selective_kd.experiments.assistant_stage import run_assistant
from selective_kd.experiments.stage import load_teacher
from selective_kd.experiments.teacher_stage import run_teacher
from selective_kd.experiments.student_stage import run_student, student_views, teacher_signal_mode
from selective_kd.experiments.variants import needs_curriculum, needs_teacher, resolve_variants
from selective_kd.fileio import read_jsonl
from selective_kd.layout import RunPaths, StageFiles

__all__ = [
    "RunPaths", "load_teacher", "read_history", "run_all", "run_assistant", "run_curriculum", "run_student", "run_teacher",
    "student_views", "teacher_identity", "teacher_signal_mode",
]

log = logging.getLogger("selective_kd")


def run_all(cfg: Config, paths: RunPaths, quiet: bool = False) -> str:
    """Every stage, then the report; returns Table 2 as markdown."""
    from selective_kd.config import resolve_curriculum
    from selective_kd.curriculum.scorers import check_scorer_data
    from selective_kd.data import load_dataset
    from selective_kd.report import write_report

    t0 = time.perf_counter()
    runtime = resolve_runtime(cfg)
    data = load_dataset(cfg)
    log.info("data: %s; device %s", data.describe(), runtime.device)
    variants = resolve_variants(cfg.distill)
    curriculum = any(needs_curriculum(v) for v in variants.values())
    scorer_teacher = "teacher" in SCORERS.get(cfg.curriculum.scorer).needs
    if curriculum:  # what the data cannot satisfy is refused before the teacher trains
        check_scorer_data(cfg.curriculum.scorer, resolve_curriculum(cfg).params, data.student_train.y, "curriculum.params")
    distils = any(needs_teacher(v) for v in variants.values())
    if distils or (curriculum and scorer_teacher):
        run_teacher(cfg, paths, data, runtime, quiet, keep=None if distils else [])
    if curriculum:
        run_curriculum(cfg, paths, data, runtime, quiet)
    if distils and cfg.assistant is not None:
        run_assistant(cfg, paths, data, runtime, quiet)
    for name in variants:
        run_student(cfg, paths, name, data, runtime, quiet)
    table = write_report([paths.out], paths.out) if runtime.dist.is_main else ""
    log.info("run: finished in %.1fs; results in %s", time.perf_counter() - t0, paths.out)
    return table


def read_history(stage_dir: Path) -> list[dict[str, Any]]:
    path = StageFiles(stage_dir).metrics
    return read_jsonl(path) if path.exists() else []
