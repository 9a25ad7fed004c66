"""Fetching, checksumming and safely extracting published data files.

Shared by every loader that reads files someone else published (CIFAR archives, MNIST
idx files): a download never leaves a partial file under its final name, a checksum
names the file and what it should have been, and an archive can only write regular
files strictly inside the folder it is extracted into.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tarfile
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from selective_kd.errors import UserError
from selective_kd.fileio import atomic_write

__all__ = [
    "DOWNLOAD_TIMEOUT_S",
    "NETWORK_ERRORS",
    "digest",
    "download",
    "download_first",
    "one_line",
    "safe_extract",
]

#: Seconds to wait on the network before giving up (offline machines should fail fast).
DOWNLOAD_TIMEOUT_S = 30.0

#: What a failed download raises: an offline machine, a refused connection, a bad URL.
NETWORK_ERRORS: tuple[type[Exception], ...] = (OSError, http.client.HTTPException, ValueError)


def one_line(exc: BaseException) -> str:
    """An exception's text squeezed onto one line (UserError messages are one line)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def digest(source: Path | bytes, algorithm: str = "md5") -> str:
    """Hex digest of a file (read in chunks) or of bytes already in memory.

    md5 and sha1 are what publishers print next to their files: integrity, not security.
    """
    h = hashlib.new(algorithm, usedforsecurity=False)
    if isinstance(source, bytes):
        h.update(source)
        return h.hexdigest()
    with open(source, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path) -> None:
    """Fetch ``url`` to ``dest`` via a temporary file beside it, so ``dest`` is never partial.

    A response shorter than its announced length is an error, not a short file.
    """

    def fetch(out: IO[bytes]) -> None:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            expected = resp.headers.get("Content-Length")
            got = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                got += len(chunk)
            if expected is not None and expected.isdigit() and got != int(expected):
                raise OSError(f"download cut short: {got} of {expected} bytes")

    atomic_write(dest, fetch)


def download_first(urls: Sequence[str], dest: Path, *, md5: str | None = None) -> None:
    """Download from the first of ``urls`` (mirrors of one file) that answers with the right bytes.

    With ``md5`` a download whose checksum differs is deleted and the next mirror tried.
    Raises the last network error (or an :class:`OSError` for a wrong checksum) when
    every mirror failed; the caller turns it into a :class:`UserError` saying what to do.
    """
    last: Exception = OSError("no address to download from")
    for url in urls:
        try:
            download(url, dest)
        except NETWORK_ERRORS as exc:
            last = exc
            continue
        if md5 is None or (got := digest(dest)) == md5:
            return
        dest.unlink(missing_ok=True)
        last = OSError(f"{url} sent a file with md5 {got}, expected {md5}")
    raise last


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract regular files and folders only, all strictly inside ``dest``.

    Every member is checked before anything is written. Links are refused outright: the
    official archives hold none, and a chain of links can escape any lexical check.
    """
    data_filter: dict[str, Any] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    filter_error: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = tf.getmembers()
            for member in members:
                _check_member(archive, member, dest)
            tf.extractall(dest, members=members, **data_filter)
    except UserError:
        raise
    except filter_error as exc:
        raise UserError(f"archive {archive} has an unsafe member ({one_line(exc)}); refusing to extract it") from exc
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"archive {archive} is corrupt or truncated ({one_line(exc)}): delete it and download it again") from exc


def _check_member(archive: Path, member: tarfile.TarInfo, dest: Path) -> None:
    name = member.name
    unsafe = f"archive {archive} has an unsafe member {name!r}"
    if member.issym() or member.islnk():
        raise UserError(f"{unsafe} (a link to {member.linkname!r}); refusing to extract it")
    if not (member.isfile() or member.isdir()):
        raise UserError(f"{unsafe} (not a regular file or folder); refusing to extract it")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or ".." in Path(name).parts:
        raise UserError(f"{unsafe} (it would land outside {dest.parent}); refusing to extract it")
    resolved = os.path.normpath(os.path.join(dest, name))
    if os.path.commonpath([resolved, str(dest)]) != str(dest):
        raise UserError(f"{unsafe} (it would land outside {dest.parent}); refusing to extract it")
