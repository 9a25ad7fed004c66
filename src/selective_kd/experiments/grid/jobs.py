"""A grid expanded into jobs: plain data that runs the same here, in a child process or on Ray.

Three kinds, each the stage of ``selective-kd run`` it is named after:

- **teacher**, one per dataset × teacher-affecting sweep value, in
  ``OUT/shared/<dataset>-<hash>/`` (the hash is that of the teacher's identity, so sweep
  values that leave the teacher unchanged share it);
- **curriculum**, one per teacher folder × curriculum-affecting settings, in
  ``OUT/shared/<dataset>-<hash>/curriculum-<hash>/`` (a sweep of ``curriculum.*`` gets
  one curriculum each, scored by the one teacher);
- **assistant** (TAKD, when the config has an ``assistant`` section), one per run folder,
  in its ``assistant/``: distilled from the teacher, read by that folder's students;
- **student**, one per dataset × sweep value × seed × variant, in the run folder
  ``OUT/runs/<dataset>[/<sweep tag>]/seed<k>/`` that the variants of a seed share.

With the ``teacher_seeds`` axis, each teacher seed t is a teacher of its own (its
``teacher.seed``, so its own hash folder and curriculum: the scorers' models are seeded
from it too), and its students sit under it: ``OUT/runs/<dataset>[/<tag>]/teacher<t>/seed<k>/``.
Every job's config names its teacher's seed (``teacher.seed``), so a run folder's
config.yaml says which teacher its students learned from; without the axis that is the
base ``seed``, the one teacher every seed has always shared.

A teacher job also keeps the epochs its students distil from (ESKD's
``distill.teacher_epoch``; every value of a sweep, since it leaves the teacher as it is).

A job lists the ids of the jobs whose files it reads (``needs``). Its *request* is a
digest of everything it was asked to do (kind, variant, full config); the grid skips a
job only when a previous call finished the same request (see ``ledger``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from selective_kd.config import Config, VariantConfig, resolve_curriculum, to_dict
from selective_kd.curriculum import SCORERS
from selective_kd.experiments.grid.spec import GridSpec, with_values
from selective_kd.experiments.identity import curriculum_identity, teacher_identity
from selective_kd.experiments.teacher_stage import kept_epochs
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher
from selective_kd.layout import RunPaths

# The grid folder's own layout (a run folder's is selective_kd.layout).
SHARED, RUNS, LOGS = "shared", "runs", "logs"
KINDS = ("teacher", "curriculum", "assistant", "student")


@dataclass(frozen=True)
class Job:
    """One unit of work, as plain data (it crosses process and machine boundaries)."""

    id: str
    kind: str  # one of KINDS
    config: dict[str, Any]  # the full config tree
    out: str  # the folder it writes: the teacher's shared folder, a curriculum folder or a run folder
    teacher_dir: str
    curriculum: str
    log: str
    dataset: str
    sweep: dict[str, Any]  # swept key -> value
    tag: str = ""  # the sweep as a folder name ('' without a sweep)
    seed: int | None = None  # students
    variant: str | None = None  # students
    teacher_seed: int | None = None  # the teacher.seed of every job (set by expand)
    needs: list[str] = field(default_factory=list)  # ids of the jobs whose files it reads
    inputs: list[str] = field(default_factory=list)  # their records (teacher result, curriculum meta)
    keep: list[int] = field(default_factory=list)  # teachers: the epochs whose weights students distil from (ESKD)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(Path(self.out), Path(self.teacher_dir), Path(self.curriculum))

    def result_file(self) -> Path | None:
        """The stage's result.json (None for a curriculum, which has its csv and meta)."""
        if self.kind == "teacher":
            return self.paths.teacher.result
        if self.kind == "assistant":
            return self.paths.assistant.result
        return self.paths.student(str(self.variant)).result if self.kind == "student" else None

    def outputs(self) -> list[Path]:
        """The files that exist once the job has finished."""
        result = self.result_file()
        return [result] if result is not None else [self.paths.curriculum, self.paths.curriculum_meta]

    def request(self) -> str:
        """A digest of what the job is asked to do: equal requests give equal results.

        It holds the digests of every plugin loaded here: an edited plugin makes each job
        run again, and the stage decides (reused at once where none of its components changed).
        """
        from selective_kd.plugins import loaded

        asked: dict[str, Any] = {"kind": self.kind, "variant": self.variant, "config": self.config,
                                 **({"keep": self.keep} if self.keep else {})}
        code = {p.spec: p.sha256 for p in loaded()}
        if code:
            asked["plugins"] = code
        return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


@dataclass
class Grid:
    shared: list[Job]  # teachers, then curricula, then assistants
    students: list[Job]
    out: Path

    def jobs(self) -> list[Job]:
        return [*self.shared, *self.students]

    def describe(self) -> str:
        def count(attr: str) -> int:
            return len({json.dumps(getattr(j, attr), sort_keys=True) for j in self.students})

        kinds = [j.kind for j in self.shared]
        return (f"grid: {len(self.students)} student runs ({count('dataset')} dataset(s) × {count('sweep')} setting(s) × "
                f"{count('seed')} seed(s) × {count('variant')} variant(s)), {kinds.count('teacher')} shared teacher(s) "
                f"and {kinds.count('curriculum')} curriculum(s)"
                f"{f', {n} assistant(s)' if (n := kinds.count('assistant')) else ''}, in {self.out}")


def expand(spec: GridSpec, out: Path) -> Grid:
    """Every teacher, curriculum and student job of the grid, all configs checked."""
    variants = {name: get_variant(spec.base.distill, name) for name in spec.variants}
    tags = _tag_keys(list(spec.sweeps))
    shared: dict[str, Job] = {}
    students: list[Job] = []
    nested = spec.teacher_seeds is not None  # the axis was asked for: a teacher level in the run folders
    for dataset, combo, t_seed in itertools.product(spec.datasets, _combos(spec.sweeps), spec.teacher_seeds or [spec.base.seed]):
        cfg = with_values(spec.base, {"dataset": dataset, **combo, "teacher.seed": t_seed})
        teacher, curriculum = _shared_jobs(cfg, variants, out, combo)
        for job in (teacher, curriculum):
            if job is not None:
                known = shared.setdefault(job.id, job)
                if known.keep != job.keep:  # a sweep of distill.teacher_epoch: one teacher keeps them all
                    shared[job.id] = replace(known, keep=sorted({*known.keep, *job.keep}))
        tag = _sweep_tag(combo, tags)
        level = f"teacher{t_seed}" if nested else ""
        offset = t_seed if nested and spec.base.grid.seeds_follow_teacher else 0
        for seed in (s + offset for s in spec.seeds):
            run_dir = out / RUNS / dataset
            for part in (tag, level, f"seed{seed}"):
                run_dir = run_dir / part if part else run_dir
            seed_cfg = with_values(cfg, {"seed": seed})
            signal = teacher
            if teacher is not None and seed_cfg.assistant is not None and any(needs_teacher(v) for v in variants.values()):
                a_id = "-".join(p for p in ("assistant", dataset, tag, f"seed{seed}") if p)
                signal = _job(a_id, "assistant", seed_cfg, RunPaths.under(run_dir), teacher, None, out, combo, tag=tag,
                              seed=seed, needs=[teacher.id], inputs=_records([teacher]))
                shared[a_id] = signal
            for name, variant in variants.items():
                read = [j for j, used in ((signal, needs_teacher(variant)), (curriculum, needs_curriculum(variant)))
                        if j is not None and used]
                job_id = "-".join(p for p in (dataset, tag, level, f"seed{seed}", name) if p)
                students.append(_job(job_id, "student", seed_cfg, RunPaths.under(run_dir), teacher, curriculum, out, combo,
                                     tag=tag, seed=seed, variant=name, needs=[j.id for j in read], inputs=_records(read)))
    ordered = sorted(shared.values(), key=lambda j: KINDS.index(j.kind))  # teachers first, then curricula
    return Grid(ordered, students, out)


def _shared_jobs(cfg: Config, variants: dict[str, VariantConfig], out: Path,
                 combo: dict[str, Any]) -> tuple[Job | None, Job | None]:
    """The teacher and curriculum jobs this setting's students read (None where none reads one)."""
    scoring = any(needs_curriculum(v) for v in variants.values())
    scorer_needs_teacher = scoring and "teacher" in SCORERS.get(resolve_curriculum(cfg).scorer).needs
    t_hash = _short_hash(teacher_identity(cfg, cfg.precision))
    folder = RunPaths.under(out / SHARED / f"{cfg.dataset}-{t_hash}")
    teacher = None
    distils = any(needs_teacher(v) for v in variants.values())
    if scorer_needs_teacher or distils:
        teacher = _job(f"teacher-{cfg.dataset}-{t_hash}", "teacher", cfg, folder, None, None, out, combo,
                       keep=kept_epochs(cfg) if distils else [])
    curriculum = None
    if scoring:
        c_hash = _short_hash(curriculum_identity(cfg, None, cfg.precision))
        where = RunPaths.under(folder.out / f"curriculum-{c_hash}", folder.teacher_dir)
        read = [teacher] if teacher is not None and scorer_needs_teacher else []
        curriculum = _job(f"curriculum-{cfg.dataset}-{t_hash}-{c_hash}", "curriculum", cfg, where, None, None, out, combo,
                          needs=[j.id for j in read], inputs=_records(read))
    return teacher, curriculum


def _job(job_id: str, kind: str, cfg: Config, paths: RunPaths, teacher: Job | None, curriculum: Job | None, out: Path,
         combo: dict[str, Any], **extra: Any) -> Job:
    """A job writing into ``paths.out``, reading the given teacher and curriculum jobs' files."""
    return Job(id=job_id, kind=kind, config=to_dict(cfg), out=str(paths.out),
               teacher_dir=teacher.teacher_dir if teacher is not None else str(paths.teacher_dir),
               curriculum=curriculum.curriculum if curriculum is not None else str(paths.curriculum),
               log=str(out / LOGS / f"{job_id}.log"), dataset=cfg.dataset, sweep=combo, teacher_seed=cfg.teacher.seed, **extra)


def _records(jobs: list[Job]) -> list[str]:
    """The files that say what the given jobs produced: a changed one means other inputs."""
    return [str(f) for j in jobs for f in j.outputs() if f.suffix == ".json"]


def _combos(sweeps: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(sweeps)
    return [dict(zip(keys, values)) for values in itertools.product(*(sweeps[k] for k in keys))]


def _tag_keys(keys: list[str]) -> dict[str, str]:
    """The name a swept key has in folder names: its last part unless two keys share it."""
    last = [k.split(".")[-1] for k in keys]
    return {k: (short if last.count(short) == 1 else k) for k, short in zip(keys, last)}


def _sweep_tag(combo: dict[str, Any], tags: dict[str, str]) -> str:
    """``temperature=2``, ``lr=0.05,temperature=2``; '' without a sweep. Safe as a folder name."""
    parts = [f"{tags[k]}={v if isinstance(v, str) else json.dumps(v)}" for k, v in combo.items()]
    return re.sub(r"[^A-Za-z0-9._=+,-]", "_", ",".join(parts))


def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:8]
