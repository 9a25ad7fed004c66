"""Reading every file we load through one door: regular files only, sizes and JSON bounded.

A run folder, a data folder or a teacher handed over by someone else may hold anything
under the expected name: a FIFO (a read blocks forever), a folder (Python says "Is a
directory" from deep inside a loader, or our own code says "not found"), a device, or a
file far larger than any we write. Every loader opens its file here: anything but a
regular file is refused in one line naming what it is, before a byte is read, and a file
over the caller's bound is refused instead of filling memory. JSON is parsed with bounded
nesting and integer size, so a hostile ``result.json`` cannot exhaust the recursion limit
or spend minutes converting a 100,000-digit number.

Symbolic links are followed when reading (a data folder may well be a link to shared
storage); writes never follow one (see :mod:`selective_kd.fileio`, :mod:`selective_kd.runlock`).
"""

from __future__ import annotations

import io
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from selective_kd.errors import UserError

__all__ = ["MAX_JSON_BYTES", "file_kind", "loads_json", "parse_json", "open_regular", "read_bytes", "read_json", "read_text",
           "regular_file"]

#: The largest JSON (or JSON-lines) file we read: ours are kilobytes to a few megabytes.
MAX_JSON_BYTES = 256 << 20
#: Nesting deeper than any file we write, shallower than Python's recursion limit.
MAX_JSON_DEPTH = 64
#: Digits in one JSON integer: ours are counts, seeds (< 2**63) and epochs.
MAX_INT_DIGITS = 40


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words (``a folder``, ``a FIFO (named pipe)``, ...)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refusal(path: Path, what: str, mode: int, fix: str) -> UserError:
    kind = file_kind(mode)
    return UserError(f"{what} {path} is {kind}, not a regular file: {fix}")


def regular_file(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself") -> Path:
    """``path`` if it is a regular file (after links); else a one-line :class:`UserError` saying what it is."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found: {fix}") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions") from None
    if not stat.S_ISREG(st.st_mode):
        raise _refusal(path, what, st.st_mode, fix)
    return path


@contextmanager
def open_regular(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself",
                 max_bytes: int | None = None) -> Iterator[IO[bytes]]:
    """A binary file object on ``path``, opened only if it is a regular file of at most ``max_bytes``.

    Opened non-blocking, so a FIFO cannot stall the open itself, and checked with ``fstat``
    on the opened descriptor, so the file checked is the file read.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise UserError(f"{what} {path} not found: {fix}") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a regular file: {fix}") from None
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read ({exc.strerror}): check the path and its permissions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refusal(path, what, st.st_mode, fix)
        if max_bytes is not None and st.st_size > max_bytes:
            raise UserError(f"{what} {path} is {st.st_size:,} bytes, more than the {max_bytes:,} such a file can be: {fix}")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def read_bytes(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself",
               max_bytes: int | None = None) -> bytes:
    """The whole content of a regular file of at most ``max_bytes`` (see :func:`open_regular`)."""
    with open_regular(path, what, fix, max_bytes) as fh:
        try:
            size = os.fstat(fh.fileno()).st_size  # read(n) allocates n bytes up front: never ask for the bound itself
            data = fh.read() if max_bytes is None else fh.read(min(size, max_bytes) + 1)
        except OSError as exc:
            raise UserError(f"{what} {path} cannot be read ({exc.strerror}): {fix}") from None
    if max_bytes is not None and len(data) > max_bytes:  # grew while read
        raise UserError(f"{what} {path} is more than the {max_bytes:,} bytes such a file can be: {fix}")
    return data


def read_text(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself",
              max_bytes: int | None = MAX_JSON_BYTES) -> str:
    """A regular file's UTF-8 text; undecodable bytes are a one-line :class:`UserError`."""
    data = read_bytes(path, what, fix, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is corrupt or cut short (not UTF-8 text: undecodable byte at offset {exc.start}): {fix}") from None


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits")
    return int(text)


def _depth(obj: Any) -> int:
    """Nesting depth of parsed JSON (iterative: no recursion on hostile input)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_JSON_DEPTH:
            return d
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def parse_json(text: str) -> Any:
    """``json.loads`` with integers of at most 40 digits and nesting of at most 64 levels.

    Raises :class:`ValueError` with a short reason (the callers word the error).
    """
    try:
        obj = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc).strip() else exc.__class__.__name__
        raise ValueError(f"not valid JSON: {reason}") from None
    if _depth(obj) > MAX_JSON_DEPTH:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return obj


def loads_json(text: str, where: str, fix: str) -> Any:
    """:func:`parse_json`, its problems a one-line :class:`UserError` naming ``where``."""
    try:
        return parse_json(text)
    except ValueError as exc:
        raise UserError(f"{where} is corrupt or cut short ({exc}): {fix}") from None


def read_json(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself",
              max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A regular JSON file, bounded in size, nesting and integer length; problems are one line."""
    return loads_json(read_text(path, what, fix, max_bytes), f"{what} {path}", fix)


def read_jsonl(path: str | os.PathLike[str], what: str = "file", fix: str = "replace it with the file itself",
               max_bytes: int = MAX_JSON_BYTES) -> list[Any]:
    """One JSON value per non-empty line of a regular file (see :func:`read_json`)."""
    text = read_text(path, what, fix, max_bytes)
    rows = []
    for i, line in enumerate(io.StringIO(text)):
        if line.strip():
            try:
                rows.append(parse_json(line))
            except ValueError as exc:
                raise UserError(f"{path} is corrupt or cut short (line {i + 1}: {exc}): {fix}") from None
    return rows
