"""The curriculum stage: score the student's training set with the configured scorer (Figure 1)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from torch import Tensor, nn

from selective_kd.config import Config, resolve_curriculum
from selective_kd.curriculum import SCORERS, Curriculum, read_curriculum, teacher_logits, write_curriculum
from selective_kd.data import Dataset, Split
from selective_kd.distill.teacher import (
    tensor_digest,
)
from selective_kd.distributed import barrier
from selective_kd.engine import Runtime
from selective_kd.experiments.identity import (
    curriculum_identity,
    file_digest,
    stage_identity,
)
from selective_kd.errors import UserError
from selective_kd.fileio import write_json
from selective_kd.layout import RunPaths, StageFiles
from selective_kd.reading import read_json

log = logging.getLogger("selective_kd")
from selective_kd.experiments.stage import load_teacher, precision, read_teacher_checkpoint, train_supervised, load_model


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
    def model_seed(self) -> int:
        return self.cfg.teacher_seed

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
            split = split.subset(idx)
        identity = {"role": f"scorer model {name}", **stage_identity(self.cfg, role, precision(self.runtime), seed),
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
    from selective_kd.curriculum.scorers import check_scorer_data

    cur_cfg = resolve_curriculum(cfg)
    comp = SCORERS.get(cur_cfg.scorer)
    check_scorer_data(cur_cfg.scorer, cur_cfg.params, data.student_train.y, "curriculum.params")
    digest = None
    if "teacher" in comp.needs:
        read_teacher_checkpoint(paths.teacher.model)
        digest = file_digest(paths.teacher.model)
    identity = curriculum_identity(cfg, digest, precision(runtime))
    meta_path = paths.curriculum_meta
    if paths.curriculum.exists() and meta_path.exists():
        try:
            meta = read_json(meta_path, "curriculum record")
        except UserError:  # unreadable: scored again, and the record rewritten
            meta = {}
        if isinstance(meta, dict) and meta.get("identity") == identity and meta.get("csv_sha256") == file_digest(paths.curriculum):
            log.info("curriculum: already in %s", paths.curriculum)
            return read_curriculum(paths.curriculum, data.student_train.y)
        log.info("curriculum: %s was made with other settings or edited; scoring again", paths.curriculum)
    t0 = time.perf_counter()
    cur = comp.fn(_Scoring(cfg, paths, data, runtime, quiet), **cur_cfg.params).with_truth(data.student_train.clean_y)
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


