"""Whether a job is finished *as asked*: the grid's memory of what earlier calls did.

A file on disk is not proof enough: a grid re-run into the same ``--out`` with other
settings finds the old ``result.json`` files, and counting those as done would report
the old numbers under the new settings. So ``grid.json`` keeps, per job id, the digest
of its files (its outputs, and the teacher and curriculum records it read) and of the
requests that finished with them. A job is skipped only when its request is one of those
and its files are unchanged; any other job is run, and its stage decides: an identical
finished result is reused in moments, a folder made with other settings is refused.

A student whose folder already holds a result of other *settings* is refused before
anything runs (``refusal``), with the keys that differ named, so no teacher is trained
for a grid that cannot finish; what only the stage can know (the new teacher's weights)
is still checked by the stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from selective_kd.config import config_from_dict
from selective_kd.engine import mismatch_message
from selective_kd.errors import UserError
from selective_kd.experiments.grid.jobs import Job
from selective_kd.experiments.identity import file_digest, stale_code, student_identity
from selective_kd.experiments.variants import get_variant, needs_teacher

Ledger = dict[str, dict[str, Any]]  # job id -> {"outputs": digest, "requests": [digests it satisfies]}
FINISHED = "finished"  # the ledger's key in grid.json
MAX_REQUESTS = 16  # requests remembered per job


def read_ledger(grid_file: Path) -> Ledger:
    """The ledger of an earlier call; empty when there is none or it cannot be read (then every job runs)."""
    from selective_kd.reading import read_json

    try:
        data = read_json(grid_file, "grid record")  # a FIFO or a folder is not waited on
    except UserError:
        return {}
    finished = data.get(FINISHED) if isinstance(data, dict) else None
    if not isinstance(finished, dict):
        return {}
    return {k: v for k, v in finished.items() if isinstance(v, dict)}


def files_digest(job: Job) -> str | None:
    """One digest over the job's outputs and the records of its inputs; None while one is missing."""
    files = [*job.outputs(), *map(Path, job.inputs)]
    if not all(f.is_file() for f in files):
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(file_digest(f).encode())
    return h.hexdigest()


def folder_state(job: Job) -> tuple[tuple[str, int, int], ...] | None:
    """Every file in the folder of the job's outputs: (name, size, mtime); None while an output is missing.

    The same state before and after a run means its stage wrote nothing there: it found the
    job finished (copied-in folders, a ledger that does not know them). A stage that trains
    anything, even epochs it had run before (a teacher keeping an early epoch), writes there.
    """
    outputs = job.outputs()
    if not all(f.is_file() for f in outputs):
        return None
    folder = outputs[0].parent
    return tuple(sorted((f.relative_to(folder).as_posix(), (st := f.stat()).st_size, st.st_mtime_ns)
                        for f in folder.rglob("*") if f.is_file()))


def is_current(job: Job, ledger: Ledger) -> bool:
    """Finished by an earlier call with this very request, its files unchanged since."""
    entry = ledger.get(job.id)
    if entry is None or job.request() not in entry.get("requests", []):
        return False
    digest = files_digest(job)
    return digest is not None and entry.get("outputs") == digest


def updated_ledger(ledger: Ledger, finished: Iterable[Job]) -> Ledger:
    """The ledger after this call, with the jobs that finished in it.

    Entries of other jobs stay: an entry only ever vouches for files with its digest. The
    requests a job's unchanged files satisfy accumulate (a setting outside its identity,
    such as ``eval_batch_size``, changes the request but not the result), the latest last.
    """
    new = dict(ledger)
    for job in finished:
        digest = files_digest(job)
        if digest is None:
            new.pop(job.id, None)
            continue
        old = new.get(job.id, {})
        known = [r for r in old.get("requests", []) if r != job.request()] if old.get("outputs") == digest else []
        new[job.id] = {"outputs": digest, "requests": [*known, job.request()][-MAX_REQUESTS:]}
    return new


def refusal(job: Job) -> str | None:
    """Why a student's folder cannot take this job (a result of other settings is there), or None.

    The settings part of the student's identity is compared; the digests of its teacher
    and curriculum and the precision are taken from the stored result, as only the stage
    can know them. An unreadable result is left to the stage, which names the fix.
    """
    result_file = job.result_file()
    if job.kind != "student" or result_file is None or not result_file.is_file():
        return None
    from selective_kd.reading import read_json

    try:
        stored = read_json(result_file, "result").get("identity")
    except (UserError, AttributeError):
        return None
    if not isinstance(stored, dict):
        return None
    from selective_kd.experiments.pipeline import teacher_signal_mode

    cfg = config_from_dict(job.config)
    variant = get_variant(cfg.distill, str(job.variant))
    asked: dict[str, Any] = student_identity(
        cfg, str(job.variant), variant, teacher_digest=stored.get("teacher_weights"),
        curriculum_digest=stored.get("curriculum"), signal=teacher_signal_mode(cfg) if needs_teacher(variant) else "none",
        precision=str(stored.get("precision")),
    )
    if asked == stored or stale_code(stored, asked):  # an edited plugin: the stage trains it again
        return None
    return mismatch_message(result_file.parent, stored, asked)
