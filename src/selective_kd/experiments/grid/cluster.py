"""Ray: one task per job, queued by Ray by the CPUs and GPUs each reserves.

``--ray auto`` joins the cluster named by ``RAY_ADDRESS`` (or a running local one) and
otherwise starts a local Ray; ``--ray ADDRESS`` connects there. Ray's own retries are
off: the grid's scheduler retries, the same way for every executor. On a multi-node
cluster the grid folder (and ``data.root``) must be on storage every node sees.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

from selective_kd.errors import UserError
from selective_kd.experiments.grid.jobs import Job
from selective_kd.experiments.grid.worker import Outcome, one_line, ray_entry

RAY_MISSING = "Ray is not installed: pip install -e '.[ray]'"


class RayExecutor:
    """One Ray task per job; Ray queues them by the resources each reserves."""

    def __init__(self, ray: Any, cpus: float, gpus: float) -> None:
        self._ray = ray
        self.slots = 1 << 30  # no limit here: Ray holds back what does not fit
        self._threads = max(1, int(cpus))
        self._task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=0)(ray_entry)
        self._pending: dict[Any, tuple[Job, float]] = {}

    def submit(self, job: Job) -> None:
        from selective_kd.plugins import import_roots

        self._pending[self._task.remote(asdict(job), self._threads, import_roots())] = (job, time.perf_counter())

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


def gpus_per_run(requested: float | None, cluster: dict[str, float]) -> float:
    """``--gpus-per-run``, or 1 when the Ray cluster has GPUs, else 0.

    The cluster's resources decide, not this machine's: a grid submitted from a laptop
    without a GPU to a GPU cluster must still ask for GPUs (Ray hides the GPUs from a
    task that asked for none, so its runs would silently train on the CPU).
    """
    if requested is not None:
        return requested
    return 1.0 if cluster.get("GPU", 0.0) > 0 else 0.0


@contextlib.contextmanager
def ray_session(address: str, say: Callable[[str], None]) -> Iterator[Any]:
    """Ray, connected; shut down afterwards only if this call connected or started it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    if ray.is_initialized():
        yield ray
        return
    _connect(ray, address, say)
    try:
        yield ray
    finally:
        ray.shutdown()


def _connect(ray: Any, address: str, say: Callable[[str], None]) -> None:
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


def check_ray_resources(ray: Any, cpus: float, gpus: float) -> None:
    """A task asking for more than the whole cluster has would wait forever: refuse it now."""
    have = ray.cluster_resources()
    for name, flag, want in (("CPU", "--cpus-per-run", cpus), ("GPU", "--gpus-per-run", gpus)):
        if want > have.get(name, 0.0):
            raise UserError(f"{flag} {want:g}: the Ray cluster has {have.get(name, 0.0):g} {name}s in all; "
                            f"ask for at most that (or add nodes)")
