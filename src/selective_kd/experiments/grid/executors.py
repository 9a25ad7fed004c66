"""Local executors: one job at a time in this process, or up to N child processes.

In-process (``--jobs 1``) runs with this process's torch threads, as ``selective-kd run``
does, so a sequential grid reproduces its runs exactly. Child processes (``--jobs N``)
are fresh ``python -m selective_kd.experiments.grid`` per job: each has its own memory,
a crash or OOM takes down only that job, and each uses ``cores // N`` torch threads (the cores
this process may use), so N jobs never run more threads than there are cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from selective_kd.experiments.grid.jobs import Job
from selective_kd.experiments.grid.worker import USER_ERROR_STATUS, WORKER_MODULE, Outcome, run_logged
from selective_kd.runtime import usable_cores


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
        self.threads = max(1, usable_cores() // slots)  # N jobs share the cores, never oversubscribe them
        self._children: list[_Child] = []

    def _env(self) -> dict[str, str]:
        import selective_kd

        from selective_kd.plugins import import_roots

        src = str(Path(selective_kd.__file__).resolve().parents[1])  # importable even when not installed
        src = os.pathsep.join([src, *import_roots()])  # and the module plugins, from where this process found them
        path = os.environ.get("PYTHONPATH")
        threads = str(self.threads)
        return {**os.environ, "PYTHONPATH": src + (os.pathsep + path if path else ""),
                "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def submit(self, job: Job) -> None:
        log_path = Path(job.log)
        offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, "--threads", str(self.threads)],
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
        reason = errors[-1] if errors else (f"killed by signal {_signal_name(-code)}" if code < 0 else f"exit status {code}")
        return Outcome(False, seconds, reason, user_error=code == USER_ERROR_STATUS and bool(errors))

    def close(self) -> None:
        for child in self._children:  # only on an interruption: stop the runs this grid started
            child.proc.terminate()
        for child in self._children:
            child.proc.wait()
        self._children = []


def _signal_name(number: int) -> str:
    """``SIGSEGV (11)``: what a crash in native code looks like in the grid's summary."""
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return str(number)
