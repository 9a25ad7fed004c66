"""Tiny CIFAR-10 / CIFAR-100 look-alikes in the exact official on-disk layout.

Tests of anything that reads CIFAR use these instead of the real 170 MB archives: the
files have the official names, the official pickled-dict format (written the way
Python 2's cPickle wrote the originals, so the loader meets the same opcodes, bytes
keys and ``numpy.core`` globals as with the real files), and a deterministic archive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import struct
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

ARCHIVE = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
FILES = {
    "cifar10": [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    "cifar100": ["train", "test", "meta"],
}


def py2_dumps(obj: Any) -> bytes:
    """Pickle ``obj`` as Python 2's cPickle (protocol 2) did: byte strings as STRING opcodes.

    Handles what CIFAR files hold: dict, list, tuple, bytes, int, bool, None and 2-D
    C-contiguous numpy arrays (pickled through ``numpy.core.multiarray._reconstruct``).
    """
    out = bytearray(b"\x80\x02")

    def w(o: Any) -> None:
        if o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.extend(b"K" + bytes([o]))
            elif 0 <= o < 65536:
                out.extend(b"M" + struct.pack("<H", o))
            else:
                out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)]) if len(o) < 256 else b"T" + struct.pack("<I", len(o))) + o)
        elif isinstance(o, str):
            w(o.encode("ascii"))
        elif isinstance(o, tuple):
            out.extend(b"(")
            for x in o:
                w(x)
            out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"]")
            if o:
                out.extend(b"(")
                for x in o:
                    w(x)
                out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}")
            if o:
                out.extend(b"(")
                for k, v in o.items():
                    w(k)
                    w(v)
                out.extend(b"u")
        elif isinstance(o, np.ndarray):
            a = np.ascontiguousarray(o)
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            w((0,))
            w(b"b")
            out.extend(b"\x87R")  # TUPLE3, REDUCE
            # state: (version, shape, dtype, is_fortran, raw bytes)
            out.extend(b"(K\x01")
            w(tuple(a.shape))
            out.extend(b"cnumpy\ndtype\n")
            w((a.dtype.str[1:].encode(), False, True))
            out.extend(b"R")
            w((3, b"|" if a.dtype.itemsize == 1 else b"<", None, None, None, -1, -1, 0))
            out.extend(b"b")  # BUILD the dtype
            w(False)
            w(a.tobytes())
            out.extend(b"tb")  # the state tuple, BUILD the array
        else:
            raise TypeError(f"py2_dumps cannot write {type(o).__name__}")

    w(obj)
    out.extend(b".")
    return bytes(out)


def write_pickle(path: Path, obj: Any, protocol: int | None = None) -> None:
    """Write one CIFAR file: Python-2 style when ``protocol`` is None, else ``pickle.dump``."""
    data = py2_dumps(obj) if protocol is None else pickle.dumps(obj, protocol=protocol)
    Path(path).write_bytes(data)


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k)


def write_fake_cifar(
    dir: Path,
    name: str,
    n_train: int,
    n_test: int,
    *,
    archive: bool = True,
    seed: int = 0,
    pickle_protocol: int | None = None,
) -> Path:
    """Write a fake ``name`` ("cifar10"/"cifar100") under ``dir`` in the official layout.

    Returns the ``.tar.gz`` path (``archive=True``; the extracted folder is removed) or
    the extracted folder. Labels are ``i % num_classes`` shuffled; CIFAR-100 coarse label
    is ``fine // 5``. ``pickle_protocol=None`` writes Python-2 style pickles like the originals.
    """
    dir = Path(dir)
    rng = np.random.default_rng(seed)
    folder = dir / FOLDER[name]
    folder.mkdir(parents=True, exist_ok=False)

    def images(n: int) -> np.ndarray:
        return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)

    def filenames(tag: str, n: int) -> list[bytes]:
        return [f"{tag}_{i:05d}.png".encode() for i in range(n)]

    if name == "cifar10":
        y_train = _labels(rng, n_train, 10)
        x_train = images(n_train)
        for b, idx in enumerate(np.array_split(np.arange(n_train), 5), start=1):
            write_pickle(
                folder / f"data_batch_{b}",
                {
                    b"batch_label": f"training batch {b} of 5".encode(),
                    b"labels": [int(v) for v in y_train[idx]],
                    b"data": x_train[idx],
                    b"filenames": filenames(f"train{b}", len(idx)),
                },
                pickle_protocol,
            )
        write_pickle(
            folder / "test_batch",
            {
                b"batch_label": b"testing batch 1 of 1",
                b"labels": [int(v) for v in _labels(rng, n_test, 10)],
                b"data": images(n_test),
                b"filenames": filenames("test", n_test),
            },
            pickle_protocol,
        )
        write_pickle(
            folder / "batches.meta",
            {b"num_cases_per_batch": 10000, b"label_names": [s.encode() for s in CIFAR10_NAMES], b"num_vis": 3072},
            pickle_protocol,
        )
    elif name == "cifar100":
        for split, n in (("train", n_train), ("test", n_test)):
            fine = _labels(rng, n, 100)
            write_pickle(
                folder / split,
                {
                    b"filenames": filenames(split, n),
                    b"batch_label": f"{split}ing batch 1 of 1".encode(),
                    b"fine_labels": [int(v) for v in fine],
                    b"coarse_labels": [int(v) // 5 for v in fine],
                    b"data": images(n),
                },
                pickle_protocol,
            )
        write_pickle(
            folder / "meta",
            {
                b"fine_label_names": [f"fine{i:02d}".encode() for i in range(100)],
                b"coarse_label_names": [f"coarse{i:02d}".encode() for i in range(20)],
            },
            pickle_protocol,
        )
    else:
        raise ValueError(f"unknown CIFAR name {name!r}")

    if not archive:
        return folder
    path = dir / ARCHIVE[name]
    write_tar_gz(path, [(f"{FOLDER[name]}/{f}", (folder / f).read_bytes()) for f in FILES[name]], folders=[FOLDER[name]])
    shutil.rmtree(folder)
    return path


def write_tar_gz(path: Path, files: list[tuple[str, bytes]], *, folders: Sequence[str] = ()) -> Path:
    """A deterministic ``.tar.gz`` (fixed mtimes/owners) holding ``files`` (member name, bytes)."""
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for d in folders:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        for member, data in files:
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return Path(path)


def md5_file(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Md5Tables:
    """md5 sums of a fake copy, in the shape of ``cifar.ARCHIVE_MD5[name]`` / ``cifar.FILE_MD5[name]``."""

    archive: str | None
    files: dict[str, str]


def fake_md5_tables(path: Path, name: str) -> Md5Tables:
    """md5 of the archive (if ``path`` is one) and of every official file inside it / the folder."""
    path = Path(path)
    if path.is_file():
        files: dict[str, str] = {}
        with tarfile.open(path, "r:gz") as tf:
            for f in FILES[name]:
                fh = tf.extractfile(f"{FOLDER[name]}/{f}")
                assert fh is not None
                files[f] = hashlib.md5(fh.read()).hexdigest()
        return Md5Tables(md5_file(path), files)
    return Md5Tables(None, {f: md5_file(path / f) for f in FILES[name]})


def patch_md5(monkeypatch: Any, path: Path, name: str) -> Md5Tables:
    """Make ``load_cifar(..., verify=True)`` accept the fake copy at ``path`` (pytest monkeypatch)."""
    from selective_kd.data import cifar

    tables = fake_md5_tables(path, name)
    if tables.archive is not None:
        monkeypatch.setitem(cifar.ARCHIVE_MD5, name, tables.archive)
    monkeypatch.setitem(cifar.FILE_MD5, name, dict(tables.files))
    return tables
