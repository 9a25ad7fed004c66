"""``selective-kd grid``: the command line, and the executors it picks."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selective_kd.errors import UserError
from selective_kd.experiments.grid.cluster import RayExecutor, check_ray_resources, gpus_per_run, ray_session
from selective_kd.experiments.grid.executors import Executor, InProcessExecutor, SubprocessExecutor
from selective_kd.experiments.grid.jobs import expand
from selective_kd.experiments.grid.ledger import read_ledger, updated_ledger
from selective_kd.experiments.grid.results import GRID_FILE, finish, grid_summary
from selective_kd.experiments.grid.schedule import Progress, Record, Say, run_grid
from selective_kd.experiments.grid.spec import build_spec
from selective_kd.fileio import refuse_file_as_folder, write_json
from selective_kd.layout import check_outputs


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
    p.add_argument("--gpus-per-run", type=float, default=None, help="Ray: GPUs reserved per run (default 1 if the Ray cluster has GPUs when the grid starts, else 0; give it on an autoscaling cluster whose GPU nodes are not up yet)")
    p.add_argument("--quiet", action="store_true", help="no progress lines, only results and errors")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="config overrides, plus the axes seeds=3 | seeds=[0,4,7], datasets=[digits,cifar10], "
                        "variants=[kd,kd-cl], teacher_seeds=[0,1,2] (a teacher and curriculum each, students "
                        "nested under them), and sweeps such as sweep.distill.temperature=[2,4]")


def grid_command(args: argparse.Namespace) -> int:
    """Expand, run and report a grid; 0 when every run finished, else 1, or 2 when only refusals failed."""
    overrides, ray_address = _split_ray_address(list(args.overrides), args.ray)
    _check_flags(args)
    spec = build_spec(args.config, overrides, getattr(args, "plugin", []))
    out = Path(args.out) if args.out is not None else Path("runs") / f"grid-{spec.base.name}"
    refuse_file_as_folder(out)
    grid = expand(spec, out.resolve())
    # A folder where a job writes a file would fail that job only after its training: refuse it now.
    check_outputs([out / GRID_FILE, *(f for job in grid.jobs() for f in job.paths.outputs([job.variant] if job.variant else []))])
    say = Progress(args.quiet)
    say(grid.describe())
    grid_file = out / GRID_FILE
    ledger = read_ledger(grid_file)
    records = {job.id: Record() for job in grid.jobs()}
    with _executors(args, ray_address, say) as (shared_executor, student_executor):
        try:
            run_grid(grid, records, ledger, shared_executor, student_executor, args.retries, say)
        finally:  # also when interrupted: what finished is on record
            finished = [j for j in grid.jobs() if records[j.id].status in ("done", "skipped")]
            write_json(grid_file, grid_summary(grid, records, spec, updated_ledger(ledger, finished)))
    return finish(grid, records, out, grid_file)


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


@contextlib.contextmanager
def _executors(args: argparse.Namespace, ray_address: str | None, say: Say) -> Iterator[tuple[Executor, Executor]]:
    """(for the teachers and curricula, for the students): local ones, or one Ray executor for both.

    Locally the shared jobs run in this process: all cores go to the teacher, the largest model.
    """
    if ray_address is None:
        students: Executor = SubprocessExecutor(args.jobs) if args.jobs > 1 else InProcessExecutor()
        try:
            yield InProcessExecutor(), students
        finally:
            students.close()
        return
    with ray_session(ray_address, say) as ray:
        gpus = gpus_per_run(args.gpus_per_run, ray.cluster_resources())
        check_ray_resources(ray, args.cpus_per_run, gpus)
        executor = RayExecutor(ray, args.cpus_per_run, gpus)
        try:
            yield executor, executor
        finally:
            executor.close()
