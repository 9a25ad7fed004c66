"""Every path inside a run folder, named in one place.

    <out>/config.yaml                    the resolved config
    <out>/teacher/                       a stage folder (see StageFiles)
    <out>/teacher/cache/                 teacher logits per (sample, view)
    <out>/teacher/epoch-<k>.pt           the teacher after epoch k, kept for ESKD (distill.teacher_epoch)
    <out>/assistant/                     TAKD's teacher assistant, a stage folder (with its own cache/)
    <out>/curriculum.csv, .json          the scored, ordered training set and what made it
    <out>/scorers/<name>/                models a scorer trains (cross-fit folds, ensemble members)
    <out>/students/<variant>/            a stage folder per student variant
    <out>/results.md, results.csv        Tables 1-2
    <out>/figure1_curriculum.png, figure3_convergence.png

The teacher and the curriculum may live elsewhere (shared by a grid's runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
FIGURE1 = "figure1_curriculum.png"
FIGURE3 = "figure3_convergence.png"
STUDENTS = "students"
ASSISTANT = "assistant"


@dataclass(frozen=True)
class StageFiles:
    """The files of one training stage (teacher, student, or a scorer's model)."""

    dir: Path

    @property
    def result(self) -> Path:  # final metrics and the identity that produced them
        return self.dir / "result.json"

    @property
    def metrics(self) -> Path:  # one line per epoch
        return self.dir / "metrics.jsonl"

    @property
    def model(self) -> Path:  # final weights and architecture
        return self.dir / "model.pt"

    @property
    def last(self) -> Path:  # the resume point while the stage runs
        return self.dir / "last.pt"

    @property
    def curriculum(self) -> Path:  # a dynamic scorer's latest curriculum
        return self.dir / "curriculum.csv"


@dataclass(frozen=True)
class RunPaths:
    """Where a run's files go; the teacher and curriculum may be shared with other runs."""

    out: Path
    teacher_dir: Path
    curriculum: Path

    @classmethod
    def under(cls, out: Path, teacher_dir: Path | None = None, curriculum: Path | None = None) -> RunPaths:
        return cls(out, teacher_dir or out / "teacher", curriculum or out / "curriculum.csv")

    @property
    def teacher(self) -> StageFiles:
        return StageFiles(self.teacher_dir)

    @property
    def cache_dir(self) -> Path:
        return self.teacher_dir / "cache"

    def teacher_snapshot(self, epoch: int) -> Path:
        """The teacher's weights after ``epoch`` (ESKD), a model.pt of their own."""
        return self.teacher_dir / f"epoch-{epoch}.pt"

    @property
    def assistant(self) -> StageFiles:  # TAKD: always in the run folder (one per seed and setting)
        return StageFiles(self.out / ASSISTANT)

    @property
    def assistant_cache_dir(self) -> Path:
        return self.out / ASSISTANT / "cache"

    @property
    def curriculum_meta(self) -> Path:
        return self.curriculum.with_suffix(".json")

    @property
    def scorer_dir(self) -> Path:
        return self.curriculum.parent / "scorers"

    @property
    def config(self) -> Path:
        return self.out / CONFIG

    def student_dir(self, variant: str) -> Path:
        return self.out / STUDENTS / variant

    def student(self, variant: str) -> StageFiles:
        return StageFiles(self.student_dir(variant))
