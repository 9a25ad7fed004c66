"""The scheduler: what runs, in which order, and how often it is tried.

Teachers first, then curricula, then assistants (TAKD), then students, each phase on its executor; a job whose
teacher or curriculum failed is reported failed without being started, while the jobs
that need neither still run. A job finished by an earlier call with the same request is
skipped; a student whose folder holds a result of other settings is refused before
anything runs. A failed attempt is retried up to ``--retries`` times, at the back of the
queue so the others are not held up; a :class:`UserError` (settings or files to fix)
fails the same way every time and is not retried.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selective_kd.errors import UserError
from selective_kd.experiments.grid.executors import Executor
from selective_kd.experiments.grid.jobs import LOGS, Grid, Job
from selective_kd.experiments.grid.ledger import Ledger, folder_state, is_current, refusal
from selective_kd.experiments.grid.worker import Outcome

Say = Callable[[str], None]


@dataclass
class Record:
    """What happened to one job in this call."""

    # then done | skipped (finished earlier, as asked) | unused (nothing needed it) | refused (its folder holds
    # a result of other settings; nothing ran) | failed
    status: str = "pending"
    attempts: int = 0
    seconds: float = 0.0
    error: str = ""
    log: str | None = None  # where to look when it failed (its own log, or its teacher's)
    user_error: bool = False  # failed on settings or files the user must fix (not retried)
    before: tuple[tuple[str, int, int], ...] | None = None  # its folder's files when submitted (ledger.folder_state)
    found: bool = False  # done, but its stage found it finished in its folder: nothing was trained


class Progress:
    """``[grid] ...`` lines on stderr, unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, text: str) -> None:
        if not self.quiet:
            print(f"[grid] {text}", file=sys.stderr, flush=True)


def run_grid(grid: Grid, records: dict[str, Record], ledger: Ledger, shared_executor: Executor,
             student_executor: Executor, retries: int, say: Say) -> None:
    """Teachers and curricula that pending students need, then the students whose inputs are there."""
    (grid.out / LOGS).mkdir(parents=True, exist_ok=True)
    todo = [j for j in grid.students if not _skip(j, records, ledger, say) and not _refuse(j, records)]
    needed = {n for j in todo for n in j.needs}
    for kind in ("assistant", "curriculum", "teacher"):  # each may need the kinds after it
        for job in (j for j in grid.shared if j.kind == kind):
            if job.id not in needed:
                if not _skip(job, records, ledger, say):
                    records[job.id].status = "unused"
            elif not _skip(job, records, ledger, say):
                needed.update(job.needs)
    for kind in ("teacher", "curriculum"):
        ready = [j for j in grid.shared if j.kind == kind and records[j.id].status == "pending" and _inputs_ok(j, records)]
        run_jobs(ready, shared_executor, records, retries, say)
    assistants = [j for j in grid.shared if j.kind == "assistant" and records[j.id].status == "pending" and _inputs_ok(j, records)]
    run_jobs(assistants, student_executor, records, retries, say)  # one per run folder, sized like students
    run_jobs([j for j in todo if _inputs_ok(j, records)], student_executor, records, retries, say)


def _skip(job: Job, records: dict[str, Record], ledger: Ledger, say: Say) -> bool:
    if is_current(job, ledger):
        records[job.id].status = "skipped"
        say(f"skip   {job.id} (finished earlier with these settings)")
        return True
    return False


def _refuse(job: Job, records: dict[str, Record]) -> bool:
    """Refused before anything runs (status ``refused``); its one line comes with the summary."""
    reason = refusal(job)
    if reason is None:
        return False
    records[job.id] = Record(status="refused", error=reason, log=job.log, user_error=True)
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "a", encoding="utf-8") as fh:
        print(f"=== {job.id}: refused, {time.strftime('%Y-%m-%d %H:%M:%S')} ===\nerror: {reason}", file=fh)
    return True


def _inputs_ok(job: Job, records: dict[str, Record]) -> bool:
    """False (and the job failed) when a job it reads failed."""
    for need in job.needs:
        dep = records[need]
        if dep.status == "failed":
            records[job.id] = Record(status="failed", error=f"{need} failed ({dep.error})", log=dep.log,
                                     user_error=dep.user_error)
            return False
    return True


def run_jobs(jobs: Sequence[Job], executor: Executor, records: dict[str, Record], retries: int, say: Say) -> None:
    """Run every job, retrying a failed one up to ``retries`` times at the back of the queue."""
    queue = deque(jobs)
    running = 0
    while queue or running:
        while queue and running < executor.slots:
            job = queue.popleft()
            record = records[job.id]
            record.attempts += 1
            _log_header(job, record.attempts)
            record.before = folder_state(job)
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


def _settle(job: Job, outcome: Outcome, record: Record, retries: int, say: Say) -> bool:
    """Record an attempt's outcome; False when the job should be tried again."""
    record.seconds += outcome.seconds
    if outcome.ok:
        record.status, record.error, record.user_error = "done", "", False
        # Finished in its folder already (copied in, or a grid.json that does not know it):
        # the stage reused it, so it must not be counted as trained.
        record.found = record.before is not None and folder_state(job) == record.before
        say(f"{'found ' if record.found else 'done  '} {job.id} ({outcome.seconds:.1f}s{_metric(job)})")
        return True
    record.error, record.log, record.user_error = outcome.error, job.log, outcome.user_error
    if record.attempts <= retries and not outcome.user_error:
        say(f"retry  {job.id}: attempt {record.attempts} failed: {outcome.error}")
        return False
    record.status = "failed"  # its one line ("failed: ...") comes with the summary
    return True


def _metric(job: Job) -> str:
    result = job.result_file()
    from selective_kd.reading import read_json

    try:
        return f", val_acc {100 * read_json(result, 'result')['val_acc']:.2f}%" if result is not None else ""
    except (UserError, ValueError, KeyError, TypeError):
        return ""
