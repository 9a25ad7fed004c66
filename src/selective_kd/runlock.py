"""One process per run folder: two commands writing the same ``--out`` would corrupt it.

The lock is ``fcntl.flock`` on ``OUT/.lock``. The kernel drops it when the holder exits,
however it exits (Ctrl-C, kill -9, a crash), so a lock left by a dead process is simply
taken over; the file only records who holds it (pid and host) for the error message.
The file is never deleted: deleting it would let two processes lock two different files.
Only the stage commands take it; the grid schedules its own writers.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selective_kd.errors import UserError
from selective_kd.reading import file_kind

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


def _holder(fd: int) -> str:
    """``pid 123`` (``on host h`` when another machine holds it), from the lock file's content."""
    try:
        text = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    except OSError:
        text = []
    if not text:
        return "pid unknown (it is just starting)"
    pid = text[0]
    host = text[1] if len(text) > 1 else ""
    return f"pid {pid}" + (f" on host {host}" if host and host != socket.gethostname() else "")


def _open_lock(path: Path) -> int:
    """The lock file's descriptor; never through a symbolic link, never anything but a regular file.

    The holder truncates and writes the file: following a link named ``.lock`` would
    truncate whatever file it points to.
    """
    fix = f"remove it (a run folder's {LOCK_NAME} is a small file selective-kd creates), or use another --out"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if os.path.islink(path):
        raise UserError(f"{path} is a symbolic link, not the run folder's lock: {fix}")
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path} is a symbolic link, not the run folder's lock: {fix}") from None
        if exc.errno == errno.EISDIR:
            raise UserError(f"{path} is a folder, not the run folder's lock: {fix}") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UserError(f"{path} is {file_kind(mode)}, not the run folder's lock: {fix}")
    os.set_blocking(fd, True)
    return fd


@contextmanager
def run_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the run folder's lock while the block runs; refuse with a :class:`UserError` naming the holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if fcntl is None:
        yield path
        return
    fd = _open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(
                f"{folder} is in use by another selective-kd command ({_holder(fd)}): "
                "wait for it to finish, or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # nobody holds it now; the next holder writes its own pid
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
