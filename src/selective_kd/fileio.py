"""Atomic file writes: a reader never sees a half-written file.

Every output of a run goes through these helpers, so an interrupted run leaves either
the previous complete file or the new complete file, never a truncated one. Files get
the permissions any new file would (0666 less the umask), so collaborators can read
results; a full disk or a read-only folder is a one-line :class:`UserError` naming the
file, and the previous complete file stays as it was.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from selective_kd.errors import UserError

# Errors a user fixes by freeing space or choosing another folder, not bugs.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")  # what atomic_write leaves when killed mid-write
_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may be writing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def refuse_file_as_folder(folder: str | os.PathLike[str], flag: str = "--out") -> None:
    """Refuse, before any work, a folder to be written that cannot be: it, or a parent, is a file.

    Checked up front so a long run does not end in a traceback when it first writes.
    """
    folder = Path(folder)
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                what = "is a file" if place == folder else f"is inside {place}, which is a file"
                raise UserError(f"{flag} {folder} {what}, not a folder: pass a folder (it is created when missing)")
            return


def write_error(path: Path, exc: OSError) -> UserError | None:
    """The one-line error for a write a user can fix (full disk, read-only folder); None for other errors."""
    if exc.errno in _NO_SPACE:
        return UserError(f"cannot write {path}: {exc.strerror} (disk full); free some space and run the same command again "
                         f"(the previous {path.name}, if any, is unchanged)")
    if exc.errno in _NOT_WRITABLE:
        return UserError(f"cannot write {path}: {exc.strerror}; choose a writable folder (--out) or fix its permissions")
    return None


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` on a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise (write_error(path, exc) or exc) from None
    try:
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: nobody else could read the results
        except OSError:
            pass  # a file system without modes (some network shares): its own rules apply
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if (err := _user_write_error(path, exc)) is not None:
            raise err from None
        raise
    return path


# torch.save reports a failed write (a full disk under its zip writer) as a RuntimeError:
# "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598", or "PytorchStreamWriter failed writing file".
_TORCH_WRITE_FAILED = re.compile(r"inline_container\.cc|unexpected pos|PytorchStreamWriter failed writing")


def _user_write_error(path: Path, exc: BaseException) -> UserError | None:
    """The one-line error for ``exc`` or the OSError behind it (torch.save wraps ENOSPC in a RuntimeError)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and (err := write_error(path, cause)) is not None:
            return err
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, RuntimeError) and _TORCH_WRITE_FAILED.search(str(exc)):  # the OSError was not kept
        return UserError(f"cannot write {path}: the write stopped short (is the disk full?); free some space and run "
                         f"the same command again (the previous {path.name}, if any, is unchanged)")
    return None


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files a killed writer left in ``folder`` (not below it); returns them.

    Call it when a stage starts in a folder only this process writes to (a locked run
    folder, a stage's own folder): a temp file there belongs to no live writer.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return removed
    for entry in sorted(entries, key=lambda e: e.name):
        if _TEMP.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed.append(Path(entry.path))
    return removed


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> Path:
    return write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A JSON-lines file we wrote, read through :mod:`selective_kd.reading` (regular files only, bounded)."""
    from selective_kd.reading import read_jsonl as read_regular_jsonl

    return read_regular_jsonl(path, "metrics", "delete it, or the stage folder holding it, to redo that stage")


def torch_save(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` through :func:`atomic_write` (checkpoints are the files most often cut short)."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))
