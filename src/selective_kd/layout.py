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

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from selective_kd.errors import UserError

CONFIG = "config.yaml"
RESULTS_MD = "results.md"
RESULTS_CSV = "results.csv"
FIGURE1 = "figure1_curriculum.png"
FIGURE3 = "figure3_convergence.png"
STUDENTS = "students"
LOCK = ".lock"

#: Bytes in one file name on Linux, macOS and Windows file systems (NAME_MAX).
NAME_MAX = 255


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one folder's name inside a run folder, or None if it can.

    Names from a config (the run, variants) become paths: ``../x`` or ``/abs`` would write
    outside the run folder and its lock, ``a/b`` where no reader looks, ``""`` into the
    parent itself; a control character or an over-long name fails only at the first write.
    """
    if not isinstance(name, str) or not name:
        return "is empty"
    if name in (".", ".."):
        return "is a relative path"
    if "/" in name or "\\" in name or os.sep in name:
        return "contains a path separator"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "contains a control character"
    if len(name.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return f"is longer than the {NAME_MAX} bytes a file name can have"
    return None


def check_folder_name(name: object, key: str) -> None:
    """Refuse, naming the config key, a name that cannot be a plain folder name (see :func:`name_problem`)."""
    if (why := name_problem(name)) is not None:
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "..."
        raise UserError(f"config key {key!r}: {shown} is not a plain folder name (it {why}), and it names a folder: "
                        "use letters, digits, '-', '_' or '.'")
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

    def outputs(self, variants: Iterable[str]) -> list[Path]:
        """Every file a run with these variants may write (checked before training starts)."""
        stages = [self.teacher, *(self.student(v) for v in variants)]
        files = [self.out / LOCK, self.config, self.out / RESULTS_MD, self.out / RESULTS_CSV, self.out / FIGURE1,
                 self.out / FIGURE3, self.curriculum, self.curriculum_meta]
        for s in stages:
            files += [s.result, s.metrics, s.model, s.last, s.curriculum]
        return files


def check_outputs(files: Iterable[Path]) -> None:
    """Refuse, before any training, an output path that is a folder or other non-file.

    Written only at the end of a stage, such a path would cost the whole stage's training.
    A symbolic link is not refused: writes replace it (they never follow it).
    """
    for path in files:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except NotADirectoryError:  # a parent is a file: refused by the --out check
            continue
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            continue
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise UserError(f"{path} is {kind}, but a run writes a file there: remove it, or use another --out")
