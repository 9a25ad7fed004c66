"""``selective-kd grid``: datasets × sweeps × seeds × variants, expanded into runs and executed.

    selective-kd grid seeds=5 variants=[unguided,kd,kd-cl-sr]
    selective-kd grid --jobs 2 datasets=[cifar10,cifar100] data.root=~/data --config configs/paper/cifar10.yaml
    selective-kd grid --ray seeds=3 sweep.distill.temperature=[2,4]     # a local Ray, or the running cluster

Design
------
*Expansion.* The base config is ``--config`` plus every ordinary ``key=value``. Three keys
are axes instead of settings: ``seeds`` (a count from ``cfg.seed`` up, or a list),
``datasets`` and ``variants``; a ``sweep.<key>=[a,b]`` sweeps any other config key. The
base gets ``distill.variants`` = the variants axis, so every run sees the same variant set
(it decides, e.g., whether the teacher cache pays off, which is part of a student's identity).

*Jobs.* Two kinds, both plain data (:class:`Job`: an id, a full config tree and folders),
so one job runs the same way in this process, in a child process or in a Ray worker:

- a **shared** job per dataset × teacher-affecting sweep value trains the teacher and scores
  the curriculum once, in ``OUT/shared/<dataset>-<hash>/`` where the hash is that of
  :func:`teacher_identity`. Sweep values that leave the teacher unchanged (the temperature,
  the student's lr) hash alike and share it; the training ``seed`` is not swept for the
  teacher (it uses the base ``seed``), as the split is seeded apart (``data.split_seed``).
- a **student** job per dataset × sweep value × seed × variant, in the run folder
  ``OUT/runs/<dataset>[/<sweep tag>]/seed<k>/`` that all variants of a seed share (the layout
  of ``selective-kd run``), pointing at the shared teacher and curriculum.

*Order.* Shared jobs run first: in this process for local grids (all cores go to the
teacher, the largest model), as Ray tasks on Ray. Students then run on the chosen
executor; one whose teacher failed is reported failed without being started, while the
variants that need no teacher (``unguided``) still run. A finished student
(``students/<variant>/result.json`` exists) is not even scheduled; ``run_student``
itself refuses a folder made with other settings.

*Executors.* In-process (``--jobs 1``, with this process's torch threads, as ``selective-kd
run``: a sequential grid reproduces its runs exactly); child processes (``--jobs N``: one
fresh ``python -m selective_kd.experiments.grid`` per run, so each run has its own memory
and a crash or OOM takes down only that run; each child uses ``cpu_count // N`` torch
threads); Ray (``--ray``: one task per run with ``--cpus-per-run``/``--gpus-per-run`` and as
many torch threads as CPUs, Ray's own retries off). All three share one scheduler that
retries a failed run up to ``--retries`` times (at the back of the queue, so the others are
not held up) and counts attempts. On a CPU a run's numbers are reproducible at a given
number of torch threads, not across thread counts (convolutions split their sums by
thread), so ``--jobs 2`` matches a sequential grid run at ``cpu_count // 2`` threads.

*Logs.* Each job appends everything it prints, its log lines and any traceback to
``OUT/logs/<id>.log``, one ``=== attempt k ===`` header per attempt, ending with an
``error: ...`` line when it failed. On a multi-node Ray cluster ``OUT`` (and ``data.root``)
must be on a filesystem every node sees, and selective-kd installed on every node.

*Results.* ``OUT/grid.json`` (every job: status done/skipped/failed, attempts, seconds; written
even when interrupted) and the report of all finished runs: ``results.md``/``results.csv``
with per-seed statistics and Figure 3. Several sweep values cannot share one table (each
(dataset, model) cell would hold a seed several times), so each gets its own report under
``OUT/sweeps/<tag>/`` and ``OUT/results.md``/``results.csv`` gather them under their tag.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import itertools
import json
import logging
import os
import re
import subprocess
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from selective_kd.config import Config, config_from_dict, dump_yaml, load_config, parse_override, to_dict
from selective_kd.errors import UserError
from selective_kd.experiments.variants import get_variant, needs_curriculum, needs_teacher
from selective_kd.fileio import write_json, write_text

log = logging.getLogger("selective_kd")

DEFAULT_SEEDS = 3
AXES = ("seeds", "datasets", "variants")
SWEEP_PREFIX = "sweep."
# Keys a sweep may not name, and the axis to use instead.
NOT_SWEPT = {"seed": "seeds=[...]", "dataset": "datasets=[...]", "distill.variants": "variants=[...]"}
RAY_MISSING = "Ray is not installed: pip install -e '.[ray]'"


# --------------------------------------------------------------------------- command line


def add_grid_parser(sub: Any) -> None:
    """Register ``grid`` on an argparse subparsers object."""
    p = sub.add_parser("grid", help="datasets × variants × seeds (× swept keys): shared teachers, many students, one report")
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: the built-in digits config)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/grid-<name>)")
    p.add_argument("--jobs", type=int, default=1, help="local runs at a time, each in its own process (default 1: in this process)")
    p.add_argument("--ray", nargs="?", const="auto", default=None, metavar="ADDRESS",
                   help="run on Ray: alone or 'auto' joins a running cluster (RAY_ADDRESS or local) or starts a local Ray; "
                        "or a cluster address such as ray://head:10001")
    p.add_argument("--retries", type=int, default=1, help="times a failed run is tried again (default 1)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs reserved per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=None, help="Ray: GPUs reserved per run (default 1 if a GPU is visible here, else 0)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only results and errors")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, plus the axes seeds=3 | seeds=[0,4,7], datasets=[digits,cifar10], "
                        "variants=[kd,kd-cl], and sweeps such as sweep.distill.temperature=[2,4]")


def grid_command(args: argparse.Namespace) -> int:
    """Expand, run and report a grid; 0 when every run finished, 1 when some failed."""
    overrides, ray_address = _split_ray_address(list(args.overrides), args.ray)
    _check_flags(args)
    spec = build_spec(args.config, overrides)
    out = Path(args.out) if args.out is not None else Path("runs") / f"grid-{spec.base.name}"
    grid = expand(spec, out.resolve())
    say = _Progress(args.quiet)
    say(grid.describe())
    records = {job.id: Record() for job in grid.jobs()}
    grid_file = out / "grid.json"
    with _executors(args, ray_address, say) as (shared_executor, student_executor):
        try:
            run_grid(grid, records, shared_executor, student_executor, args.retries, say)
        finally:  # also when interrupted: what finished is on record
            write_json(grid_file, grid_summary(grid, records, spec))
    return _finish(grid, records, out, grid_file)


def _split_ray_address(overrides: list[str], ray: str | None) -> tuple[list[str], str | None]:
    """``--ray seeds=2`` takes ``seeds=2`` as its address; no Ray address has ``=``, so give it back."""
    if ray is not None and "=" in ray:
        return [*overrides, ray], "auto"
    return overrides, ray


def _check_flags(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: must be at least 1")
    if args.retries < 0:
        raise UserError(f"--retries {args.retries}: must be 0 or more")
    if args.cpus_per_run <= 0:
        raise UserError(f"--cpus-per-run {args.cpus_per_run:g}: must be positive")
    if args.gpus_per_run is not None and args.gpus_per_run < 0:
        raise UserError(f"--gpus-per-run {args.gpus_per_run:g}: must be 0 or more")
    if args.ray is not None and args.jobs != 1:
        raise UserError("--jobs is for local runs; with --ray, Ray runs as many as --cpus-per-run/--gpus-per-run allow")


# --------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class GridSpec:
    """What to run: the base config and the axes."""

    base: Config  # with distill.variants = variants
    datasets: list[str]
    seeds: list[int]
    variants: list[str]
    sweeps: dict[str, list[Any]]  # dotted config key -> values


def build_spec(config: Path | None, overrides: Sequence[str]) -> GridSpec:
    """Split the overrides into axes, sweeps and settings; check them all before anything runs."""
    axes: dict[str, Any] = {}
    sweeps: dict[str, list[Any]] = {}
    plain: list[str] = []
    for text in overrides:
        path, value = parse_override(text)
        key = ".".join(path)
        if key in AXES:
            axes[key] = value
        elif key.startswith(SWEEP_PREFIX):
            swept = key[len(SWEEP_PREFIX):]
            sweeps[swept] = _sweep_values(swept, value)
        else:
            plain.append(text)
    base = load_config(config, plain)
    variants = _names("variants", axes.get("variants", base.distill.variants))
    base = with_values(base, {"distill.variants": variants})
    return GridSpec(
        base=base,
        datasets=_names("datasets", axes.get("datasets", [base.dataset])),
        seeds=_seeds(axes.get("seeds", DEFAULT_SEEDS), base.seed),
        variants=variants,
        sweeps=sweeps,
    )


def _seeds(value: Any, base: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"seeds={value}: give a count of at least 1 (seeds=3) or a list (seeds=[0,4,7])")
        return list(range(base, base + value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        return _unique("seeds", value)
    raise UserError(f"seeds={value!r}: give a count (seeds=3: seeds {base}..{base + 2}) or a list of integers (seeds=[0,4,7])")


def _names(axis: str, value: Any) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"{axis}={value!r}: give a name or a list of names, e.g. {axis}=[a,b]")
    return _unique(axis, names)


def _unique(axis: str, values: list[Any]) -> list[Any]:
    dupes = sorted({str(v) for v in values if values.count(v) > 1})
    if dupes:
        raise UserError(f"{axis}: {', '.join(dupes)} given more than once; list each once")
    return list(values)


def _sweep_values(key: str, value: Any) -> list[Any]:
    if key in NOT_SWEPT:
        raise UserError(f"sweep.{key}: {key} is a grid axis; use {NOT_SWEPT[key]} instead")
    if not isinstance(value, list) or not value:
        raise UserError(f"sweep.{key}={value!r}: a sweep needs a list of values, e.g. sweep.{key}=[a,b]")
    return _unique(f"sweep.{key}", value)


def with_values(cfg: Config, values: dict[str, Any]) -> Config:
    """``cfg`` with dotted keys set, validated like any override."""
    tree = to_dict(cfg)
    for key, value in values.items():
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"config key {key!r}: {part!r} is not a section")
        node[last] = value
    return config_from_dict(tree)


@dataclass(frozen=True)
class Job:
    """One unit of work, as plain data (it crosses process and machine boundaries)."""

    id: str
    kind: str  # "shared" (teacher + curriculum) or "student"
    config: dict[str, Any]  # the full config tree
    out: str  # run folder (student) or shared folder
    teacher_dir: str
    curriculum: str
    log: str
    dataset: str
    sweep: dict[str, Any]  # swept key -> value
    tag: str = ""  # the sweep as a folder name ('' without a sweep)
    seed: int | None = None  # students
    variant: str | None = None  # students
    needs: str | None = None  # students: the id of the shared job they read, if any
    with_curriculum: bool = False  # shared: also score the curriculum

    def done(self) -> bool:
        """Finished by an earlier call (students: result.json; shared: teacher and curriculum)."""
        folder = Path(self.out)
        if self.kind == "student":
            return (folder / "students" / str(self.variant) / "result.json").exists()
        curriculum = Path(self.curriculum)
        have_curriculum = curriculum.exists() and curriculum.with_suffix(".json").exists()
        return (Path(self.teacher_dir) / "result.json").exists() and (have_curriculum or not self.with_curriculum)


@dataclass
class Grid:
    shared: list[Job]
    students: list[Job]
    out: Path

    def jobs(self) -> list[Job]:
        return [*self.shared, *self.students]

    def describe(self) -> str:
        def count(attr: str) -> int:
            return len({json.dumps(getattr(j, attr), sort_keys=True) for j in self.students})

        return (f"grid: {len(self.students)} student runs ({count('dataset')} dataset(s) × {count('sweep')} setting(s) × "
                f"{count('seed')} seed(s) × {count('variant')} variant(s)), {len(self.shared)} shared teacher(s), in {self.out}")


def expand(spec: GridSpec, out: Path) -> Grid:
    """Every shared and student job of the grid, all configs checked."""
    from selective_kd.experiments.pipeline import teacher_identity

    variants = {name: get_variant(spec.base.distill, name) for name in spec.variants}
    shared_needed = any(needs_teacher(v) or needs_curriculum(v) for v in variants.values())
    scoring = any(needs_curriculum(v) for v in variants.values())
    tags = _tag_keys(list(spec.sweeps))
    shared: dict[str, Job] = {}
    students: list[Job] = []
    for dataset, combo in itertools.product(spec.datasets, _combos(spec.sweeps)):
        teacher_cfg = with_values(spec.base, {"dataset": dataset, **combo})
        folder = out / "shared" / f"{dataset}-{_short_hash(teacher_identity(teacher_cfg))}"
        sjob = _shared_job(teacher_cfg, folder, out, dataset, combo, scoring) if shared_needed else None
        if sjob is not None:
            shared.setdefault(sjob.id, sjob)
        tag = _sweep_tag(combo, tags)
        for seed in spec.seeds:
            cfg = with_values(spec.base, {"dataset": dataset, "seed": seed, **combo})
            run_dir = out / "runs" / dataset / tag / f"seed{seed}" if tag else out / "runs" / dataset / f"seed{seed}"
            for name, variant in variants.items():
                needs = sjob.id if sjob is not None and (needs_teacher(variant) or needs_curriculum(variant)) else None
                students.append(_student_job(cfg, run_dir, folder, out, dataset, combo, tag, seed, name, needs))
    return Grid(list(shared.values()), students, out)


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


def _shared_job(cfg: Config, folder: Path, out: Path, dataset: str, combo: dict[str, Any], scoring: bool) -> Job:
    job_id = f"shared-{folder.name}"
    return Job(id=job_id, kind="shared", config=to_dict(cfg), out=str(folder), teacher_dir=str(folder / "teacher"),
               curriculum=str(folder / "curriculum.csv"), log=str(out / "logs" / f"{job_id}.log"),
               dataset=dataset, sweep=combo, with_curriculum=scoring)


def _student_job(cfg: Config, run_dir: Path, shared: Path, out: Path, dataset: str, combo: dict[str, Any],
                 tag: str, seed: int, variant: str, needs: str | None) -> Job:
    job_id = "-".join(p for p in (dataset, tag, f"seed{seed}", variant) if p)
    return Job(id=job_id, kind="student", config=to_dict(cfg), out=str(run_dir), teacher_dir=str(shared / "teacher"),
               curriculum=str(shared / "curriculum.csv"), log=str(out / "logs" / f"{job_id}.log"),
               dataset=dataset, sweep=combo, tag=tag, seed=seed, variant=variant, needs=needs)


# --------------------------------------------------------------------------- running one job


def execute(job: Job) -> dict[str, Any]:
    """Run a job here and now; returns its stage's result."""
    from selective_kd.engine import resolve_runtime
    from selective_kd.experiments.pipeline import RunPaths

    cfg = config_from_dict(job.config)
    paths = RunPaths(Path(job.out), Path(job.teacher_dir), Path(job.curriculum))
    paths.out.mkdir(parents=True, exist_ok=True)
    if not (paths.out / "config.yaml").exists():
        write_text(paths.out / "config.yaml", dump_yaml(cfg))
    runtime = resolve_runtime(cfg)
    return STAGES[job.kind](job, cfg, paths, _dataset(cfg), runtime)


def _shared_stage(job: Job, cfg: Config, paths: Any, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_curriculum, run_teacher

    result = run_teacher(cfg, paths, data, runtime, quiet=True)
    if job.with_curriculum:
        run_curriculum(cfg, paths, data, runtime, quiet=True)
    return result


def _student_stage(job: Job, cfg: Config, paths: Any, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_student

    return run_student(cfg, paths, str(job.variant), data, runtime, quiet=True)


STAGES: dict[str, Callable[[Job, Config, Any, Any, Any], dict[str, Any]]] = {
    "shared": _shared_stage,
    "student": _student_stage,
}

_DATA_CACHE: dict[str, Any] = {}  # the last dataset loaded in this process (runs in a row share it)


def _dataset(cfg: Config) -> Any:
    from selective_kd.data import load_dataset

    key = json.dumps({"dataset": cfg.dataset, "data": to_dict(cfg.data)}, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one at a time: CIFAR is hundreds of MB
        _DATA_CACHE[key] = load_dataset(cfg)
    return _DATA_CACHE[key]


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    error: str = ""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, UserError) else f"{type(exc).__name__}: {message}".rstrip(": ")


@contextlib.contextmanager
def _logs_to(stream: IO[str]) -> Iterator[None]:
    """The package's log lines go to ``stream`` for the duration (INFO and up)."""
    saved = (list(log.handlers), log.level, log.propagate)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[selective-kd] %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield
    finally:
        log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]


def run_logged(job: Job) -> Outcome:
    """Run a job in this process with its output, log lines and traceback appended to its log."""
    t0 = time.perf_counter()
    with open(job.log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), _logs_to(fh):
        try:
            execute(job)
        except Exception as exc:  # noqa: BLE001 - any failure of a run is reported and retried, never fatal to the grid
            traceback.print_exc(file=fh)
            print(f"error: {one_line(exc)}", file=fh)
            return Outcome(False, time.perf_counter() - t0, one_line(exc))
    return Outcome(True, time.perf_counter() - t0)


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def ray_entry(job: dict[str, Any], threads: int) -> dict[str, Any]:
    """The body of a Ray task: a job in the worker, its outcome as plain data."""
    _set_threads(threads)
    return asdict(run_logged(Job(**job)))


def worker_main(argv: Sequence[str]) -> int:
    """A child process of ``--jobs N``: the job (JSON) on stdin; stdout and stderr already go to its log."""
    p = argparse.ArgumentParser(prog="python -m selective_kd.experiments.grid")
    p.add_argument("--threads", type=int, required=True)
    threads = p.parse_args(argv).threads
    job = Job(**json.load(sys.stdin))
    _set_threads(threads)
    with _logs_to(sys.stderr):
        try:
            execute(job)
        except Exception as exc:  # noqa: BLE001 - reported through the exit status and the log
            traceback.print_exc()
            print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
            return 1
    return 0


# --------------------------------------------------------------------------- executors


class Executor(Protocol):
    """Runs jobs; ``wait`` blocks until at least one submitted job has ended."""

    slots: int

    def submit(self, job: Job) -> None: ...

    def wait(self) -> list[tuple[Job, Outcome]]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """One job at a time, in this process."""

    slots = 1

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def wait(self) -> list[tuple[Job, Outcome]]:
        job = self._queue.popleft()
        return [(job, run_logged(job))]

    def close(self) -> None:
        self._queue.clear()


@dataclass
class _Child:
    job: Job
    proc: subprocess.Popen[bytes]
    started: float
    log_offset: int


class SubprocessExecutor:
    """Up to ``slots`` child processes, one per job, each writing straight into the job's log."""

    POLL_S = 0.1

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.threads = max(1, (os.cpu_count() or 1) // slots)
        self._children: list[_Child] = []

    def _env(self) -> dict[str, str]:
        import selective_kd

        src = str(Path(selective_kd.__file__).resolve().parents[1])  # importable even when not installed
        path = os.environ.get("PYTHONPATH")
        threads = str(self.threads)
        return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else ""),
                "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def submit(self, job: Job) -> None:
        log_path = Path(job.log)
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "selective_kd.experiments.grid", "--threads", str(self.threads)],
                stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT, env=self._env(),
            )
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a child that died at once is reported by its exit status
            proc.stdin.write(json.dumps(asdict(job)).encode())
            proc.stdin.close()
        self._children.append(_Child(job, proc, time.perf_counter(), offset))

    def wait(self) -> list[tuple[Job, Outcome]]:
        while True:
            ended = [c for c in self._children if c.proc.poll() is not None]
            if ended:
                self._children = [c for c in self._children if c not in ended]
                return [(c.job, self._outcome(c)) for c in ended]
            time.sleep(self.POLL_S)

    @staticmethod
    def _outcome(child: _Child) -> Outcome:
        seconds = time.perf_counter() - child.started
        code = child.proc.returncode
        if code == 0:
            return Outcome(True, seconds)
        with open(child.job.log, encoding="utf-8", errors="replace") as fh:
            fh.seek(child.log_offset)
            errors = [line[len("error: "):].strip() for line in fh if line.startswith("error: ")]
        reason = errors[-1] if errors else (f"killed by signal {-code}" if code < 0 else f"exit status {code}")
        return Outcome(False, seconds, reason)

    def close(self) -> None:
        for child in self._children:  # only on an interruption: stop the runs this grid started
            child.proc.terminate()
        for child in self._children:
            child.proc.wait()
        self._children = []


class RayExecutor:
    """One Ray task per job; Ray queues them by the resources each reserves."""

    def __init__(self, ray: Any, cpus: float, gpus: float) -> None:
        self._ray = ray
        self.slots = 1 << 30  # no limit here: Ray holds back what does not fit
        self._threads = max(1, int(cpus))
        self._task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(ray_entry)
        self._pending: dict[Any, tuple[Job, float]] = {}

    def submit(self, job: Job) -> None:
        self._pending[self._task.remote(asdict(job), self._threads)] = (job, time.perf_counter())

    def wait(self) -> list[tuple[Job, Outcome]]:
        ready, _ = self._ray.wait(list(self._pending), num_returns=1)
        return [self._outcome(ref, *self._pending.pop(ref)) for ref in ready]

    def _outcome(self, ref: Any, job: Job, started: float) -> tuple[Job, Outcome]:
        try:
            return job, Outcome(**self._ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - the worker died (OOM, node lost): a failed attempt
            message = f"Ray task failed: {one_line(exc)}"
            with open(job.log, "a", encoding="utf-8") as fh:
                print(f"{exc}\nerror: {message}", file=fh)
            return job, Outcome(False, time.perf_counter() - started, message)

    def close(self) -> None:
        for ref in self._pending:  # only on an interruption
            self._ray.cancel(ref, force=True)
        self._pending.clear()


@contextlib.contextmanager
def _executors(args: argparse.Namespace, ray_address: str | None, say: Callable[[str], None]) -> Iterator[tuple[Executor, Executor]]:
    """(for the shared jobs, for the students): local ones, or one Ray executor for both."""
    if ray_address is None:
        students: Executor = SubprocessExecutor(args.jobs) if args.jobs > 1 else InProcessExecutor()
        try:
            yield InProcessExecutor(), students
        finally:
            students.close()
        return
    with _ray_session(ray_address, say) as ray:
        gpus = _gpus_per_run(args.gpus_per_run)
        _check_ray_resources(ray, args.cpus_per_run, gpus)
        executor = RayExecutor(ray, args.cpus_per_run, gpus)
        try:
            yield executor, executor
        finally:
            executor.close()


def _gpus_per_run(requested: float | None) -> float:
    if requested is not None:
        return requested
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


@contextlib.contextmanager
def _ray_session(address: str, say: Callable[[str], None]) -> Iterator[Any]:
    """Ray, connected; shut down afterwards only if this call connected or started it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    if ray.is_initialized():
        yield ray
        return
    _ray_connect(ray, address, say)
    try:
        yield ray
    finally:
        ray.shutdown()


def _ray_connect(ray: Any, address: str, say: Callable[[str], None]) -> None:
    if address != "auto" or os.environ.get("RAY_ADDRESS"):
        target = address if address != "auto" else os.environ["RAY_ADDRESS"]
        try:
            ray.init(address=target, log_to_driver=False)
        except Exception as exc:  # noqa: BLE001 - ray raises several kinds for a bad address
            raise UserError(f"cannot connect to Ray at {target} ({one_line(exc)}): check the address, "
                            "or pass --ray alone to start a local Ray") from None
        say(f"ray: connected to {target}")
        return
    try:
        ray.init(address="auto", log_to_driver=False)
        say("ray: connected to the running local cluster")
    except ConnectionError:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
        say(f"ray: started a local Ray with {os.cpu_count()} CPUs")


def _check_ray_resources(ray: Any, cpus: float, gpus: float) -> None:
    """A task asking for more than the whole cluster has would wait forever: refuse it now."""
    have = ray.cluster_resources()
    for name, flag, want in (("CPU", "--cpus-per-run", cpus), ("GPU", "--gpus-per-run", gpus)):
        if want > have.get(name, 0.0):
            raise UserError(f"{flag} {want:g}: the Ray cluster has {have.get(name, 0.0):g} {name}s in all; "
                            f"ask for at most that (or add nodes)")


# --------------------------------------------------------------------------- scheduling


@dataclass
class Record:
    """What happened to one job in this call."""

    status: str = "pending"  # then done | skipped | failed
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    log: str | None = None  # where to look when it failed (its own log, or its teacher's)


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[grid] {text}", file=sys.stderr, flush=True)


def run_grid(grid: Grid, records: dict[str, Record], shared_executor: Executor, student_executor: Executor,
             retries: int, say: Callable[[str], None]) -> None:
    """Shared jobs that pending students need, then the students whose teacher is there."""
    (grid.out / "logs").mkdir(parents=True, exist_ok=True)
    todo = [j for j in grid.students if not _skip(j, records)]
    needed = {j.needs for j in todo if j.needs}
    shared = [j for j in grid.shared if j.id in needed and not _skip(j, records)]
    for job in grid.shared:
        if job.id not in needed:
            records[job.id].status = "skipped"
    run_jobs(shared, shared_executor, records, retries, say)
    ready = [j for j in todo if _teacher_ok(j, records)]
    run_jobs(ready, student_executor, records, retries, say)


def _skip(job: Job, records: dict[str, Record]) -> bool:
    if job.done():
        records[job.id].status = "skipped"
        return True
    return False


def _teacher_ok(job: Job, records: dict[str, Record]) -> bool:
    if job.needs is None or records[job.needs].status != "failed":
        return True
    teacher = records[job.needs]
    records[job.id] = Record(status="failed", error=f"its teacher/curriculum {job.needs} failed ({teacher.error})", log=teacher.log)
    return False


def run_jobs(jobs: Sequence[Job], executor: Executor, records: dict[str, Record], retries: int,
             say: Callable[[str], None]) -> None:
    """Run every job, retrying a failed one up to ``retries`` times at the back of the queue."""
    queue = deque(jobs)
    running = 0
    while queue or running:
        while queue and running < executor.slots:
            job = queue.popleft()
            record = records[job.id]
            record.attempts += 1
            _log_header(job, record.attempts)
            executor.submit(job)
            running += 1
        for job, outcome in executor.wait():
            running -= 1
            if not _settle(job, outcome, records[job.id], retries, say):
                queue.append(job)


def _log_header(job: Job, attempt: int) -> None:
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a", encoding="utf-8") as fh:
        print(f"=== {job.id}: attempt {attempt}, {time.strftime('%Y-%m-%d %H:%M:%S')} ===", file=fh)


def _settle(job: Job, outcome: Outcome, record: Record, retries: int, say: Callable[[str], None]) -> bool:
    """Record an attempt's outcome; False when the job should be tried again."""
    record.seconds += outcome.seconds
    if outcome.ok:
        record.status, record.error = "done", ""
        say(f"done   {job.id} ({outcome.seconds:.1f}s{_metric(job)})")
        return True
    record.error, record.log = outcome.error, job.log
    if record.attempts <= retries:
        say(f"retry  {job.id}: attempt {record.attempts} failed: {outcome.error}")
        return False
    record.status = "failed"
    say(f"FAILED {job.id} after {record.attempts} attempt(s): {outcome.error}")
    return True


def _metric(job: Job) -> str:
    folder = Path(job.teacher_dir) if job.kind == "shared" else Path(job.out) / "students" / str(job.variant)
    try:
        return f", val_acc {100 * json.loads((folder / 'result.json').read_text())['val_acc']:.2f}%"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


# --------------------------------------------------------------------------- results


def grid_summary(grid: Grid, records: dict[str, Record], spec: GridSpec) -> dict[str, Any]:
    """The content of grid.json."""
    def entry(job: Job) -> dict[str, Any]:
        r = records[job.id]
        return {"id": job.id, "dataset": job.dataset, "seed": job.seed, "variant": job.variant, "sweep": job.sweep,
                "status": r.status, "attempts": r.attempts, "seconds": round(r.seconds, 3), "folder": job.out,
                "log": r.log or job.log, "error": r.error or None, **({"shared": job.needs} if job.kind == "student" else {})}

    return {
        "out": str(grid.out), "datasets": spec.datasets, "seeds": spec.seeds, "variants": spec.variants,
        "sweeps": spec.sweeps, "runs": [entry(j) for j in grid.students], "shared": [entry(j) for j in grid.shared],
    }


def _finish(grid: Grid, records: dict[str, Record], out: Path, grid_file: Path) -> int:
    """Print the student table, where the files are and each failure; the exit status."""
    table = write_results(grid, out)
    if table is not None:
        print(table)
        print(f"\nwritten: {out / 'results.md'}, {out / 'results.csv'}, {grid_file}; figures in {out}; logs in {out / 'logs'}")
    else:
        print(f"no run finished; see {grid_file} and the logs in {out / 'logs'}")
    failed = [j for j in grid.jobs() if records[j.id].status == "failed"]
    for job in failed:
        r = records[job.id]
        print(f"failed: {job.id} after {r.attempts} attempt(s): {r.error} (log: {r.log or job.log})", file=sys.stderr)
    return 1 if failed else 0


def _has_result(folder: Path) -> bool:
    return (folder / "teacher" / "result.json").exists() or any((folder / "students").glob("*/result.json"))


def _report_groups(grid: Grid) -> dict[str, list[Path]]:
    """Sweep tag -> the run and shared folders with finished results, in grid order."""
    shared = {j.id: Path(j.out) for j in grid.shared}
    groups: dict[str, list[Path]] = {}
    for job in grid.students:
        folders = groups.setdefault(job.tag, [])
        for folder in (Path(job.out), shared.get(job.needs or "")):
            if folder is not None and folder not in folders and _has_result(folder):
                folders.append(folder)
    return {tag: folders for tag, folders in groups.items() if folders}


def write_results(grid: Grid, out: Path) -> str | None:
    """The report of every finished run; the student table as text, None when nothing finished."""
    from selective_kd.report import write_report

    groups = _report_groups(grid)
    if len(groups) <= 1:
        return next((write_report(folders, out) for folders in groups.values()), None)
    texts = {tag: write_report(folders, out / "sweeps" / tag) for tag, folders in groups.items()}
    write_text(out / "results.md", _combined_markdown(out, list(groups)))
    write_text(out / "results.csv", _combined_csv(out, list(groups)))
    return "\n\n".join(f"{tag}:\n{text}" for tag, text in texts.items())


def _combined_markdown(out: Path, tags: list[str]) -> str:
    parts = ["# Results", "", "One section per swept setting; its CSV and figures are in sweeps/<setting>/.", ""]
    for tag in tags:
        body = (out / "sweeps" / tag / "results.md").read_text(encoding="utf-8")
        body = re.sub(r"^# Results\n", "", body)
        parts += [f"## {tag}", "", re.sub(r"^(#+) ", r"#\1 ", body, flags=re.M).strip(), ""]
    return "\n".join(parts)


def _combined_csv(out: Path, tags: list[str]) -> str:
    buf = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    for tag in tags:
        with open(out / "sweeps" / tag / "results.csv", encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if writer is None:
                    writer = csv.DictWriter(buf, fieldnames=["sweep", *row], lineterminator="\n")
                    writer.writeheader()
                writer.writerow({"sweep": tag, **row})
    return buf.getvalue()


if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
