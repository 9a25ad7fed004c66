"""Running one job: here (in-process executor), in a child process (``--jobs N``), in a Ray task.

Whatever the executor, a job's output, log lines and any traceback go to its log file,
and its outcome is plain data: whether it finished, how long it took, and a one-line
error. ``user_error`` marks a :class:`UserError` (settings or files the user must fix):
it fails the same way every time, so the scheduler does not retry it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import IO, Any

from selective_kd.config import Config, config_from_dict, dump_yaml, to_dict
from selective_kd.errors import UserError
from selective_kd.experiments.grid.jobs import Job
from selective_kd.fileio import write_text
from selective_kd.layout import RunPaths

log = logging.getLogger("selective_kd")

#: ``python -m`` of the child process the subprocess executor starts (see ``__main__.py``).
WORKER_MODULE = "selective_kd.experiments.grid"
#: A child's exit status for a UserError (as the command line's), 1 for anything else.
USER_ERROR_STATUS = 2


@dataclass(frozen=True)
class Outcome:
    ok: bool
    seconds: float
    error: str = ""
    user_error: bool = False


def execute(job: Job) -> dict[str, Any]:
    """Run a job here and now; returns its stage's result (empty for a curriculum)."""
    from selective_kd.engine import resolve_runtime

    cfg = config_from_dict(job.config)
    paths = job.paths
    paths.out.mkdir(parents=True, exist_ok=True)
    if not paths.config.exists():
        write_text(paths.config, dump_yaml(cfg))
    runtime = resolve_runtime(cfg)
    return STAGES[job.kind](job, cfg, paths, _dataset(cfg), runtime)


def _teacher_stage(job: Job, cfg: Config, paths: RunPaths, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_teacher

    return run_teacher(cfg, paths, data, runtime, quiet=True, keep=job.keep)


def _assistant_stage(job: Job, cfg: Config, paths: RunPaths, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_assistant

    return run_assistant(cfg, paths, data, runtime, quiet=True)


def _curriculum_stage(job: Job, cfg: Config, paths: RunPaths, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_curriculum

    run_curriculum(cfg, paths, data, runtime, quiet=True)
    return {}


def _student_stage(job: Job, cfg: Config, paths: RunPaths, data: Any, runtime: Any) -> dict[str, Any]:
    from selective_kd.experiments.pipeline import run_student

    return run_student(cfg, paths, str(job.variant), data, runtime, quiet=True)


STAGES: dict[str, Callable[[Job, Config, RunPaths, Any, Any], dict[str, Any]]] = {
    "teacher": _teacher_stage,
    "curriculum": _curriculum_stage,
    "assistant": _assistant_stage,
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


def one_line(exc: BaseException) -> str:
    """A UserError's message as it is; anything else prefixed with its type."""
    text = str(exc).strip().splitlines()
    message = text[0] if text else ""
    return message if isinstance(exc, UserError) else f"{type(exc).__name__}: {message}".rstrip(": ")


@contextlib.contextmanager
def logs_to(stream: IO[str]) -> Iterator[None]:
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


def _attempt(job: Job, out: IO[str]) -> tuple[str, bool] | None:
    """Execute ``job``; None when it finished, else its one-line error and whether it was a UserError."""
    try:
        execute(job)
    except Exception as exc:  # noqa: BLE001 - any failure of a run is reported (and maybe retried), never fatal to the grid
        traceback.print_exc(file=out)
        print(f"error: {one_line(exc)}", file=out, flush=True)
        return one_line(exc), isinstance(exc, UserError)
    return None


def run_logged(job: Job) -> Outcome:
    """Run a job in this process with its output, log lines and traceback appended to its log."""
    t0 = time.perf_counter()
    with open(job.log, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh), logs_to(fh):
        failed = _attempt(job, fh)
    seconds = time.perf_counter() - t0
    return Outcome(True, seconds) if failed is None else Outcome(False, seconds, *failed)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def ray_entry(job: dict[str, Any], threads: int, import_roots: Sequence[str] = ()) -> dict[str, Any]:
    """The body of a Ray task: a job in the worker, its outcome as plain data.

    ``import_roots``: where the driver found its module plugins (file plugins travel in the
    job's config as absolute paths); the config's plugins are imported when it is read.
    """
    sys.path[:0] = [p for p in import_roots if p not in sys.path]
    set_threads(threads)
    return asdict(run_logged(Job(**job)))


def worker_main(argv: Sequence[str]) -> int:
    """A child process of ``--jobs N``: the job (JSON) on stdin; stdout and stderr already go to its log."""
    p = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
    p.add_argument("--threads", type=int, required=True)
    threads = p.parse_args(argv).threads
    job = Job(**json.load(sys.stdin))
    set_threads(threads)
    with logs_to(sys.stderr):
        failed = _attempt(job, sys.stderr)
    if failed is None:
        return 0
    return USER_ERROR_STATUS if failed[1] else 1
