"""CIFAR-10 / CIFAR-100 from the official "python version" archives, as uint8 arrays.

Why a loader of our own: the runs must be reproducible from the exact bytes the
authors published, so the archive (or each extracted file) is checked against the
official md5 sums, extraction cannot write outside the data folder, and every
problem a user can fix (missing file, damaged download, wrong folder) comes back as
one :class:`~selective_kd.errors.UserError` line that says what to do.

``root`` may be the archive itself, a folder holding it, a folder holding the
extracted folder, or the extracted folder. Only the archive present: it is extracted
beside itself, into a hidden temporary folder that is renamed into place only when
complete and safe: a failed or refused extraction leaves nothing behind, and a killed
one at most that hidden folder, never a half-filled data folder. Nothing present: the
archive is downloaded from the official URL when ``download=True``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from selective_kd.data.download import (
    NETWORK_ERRORS,
    digest,
    download,
    one_line,
    safe_extract,
)
from selective_kd.data.registry import DATASETS, RawData
from selective_kd.errors import UserError

if TYPE_CHECKING:
    from selective_kd.config import Config

__all__ = ["ARCHIVE_MD5", "FILE_MD5", "URLS", "CifarArrays", "load_cifar"]

# Module-level names on purpose: tests replace them so that they never touch the network.
_download = download
_safe_extract = safe_extract

#: md5 of the official archives (checked before extracting when ``verify=True``).
ARCHIVE_MD5: dict[str, str] = {
    "cifar10": "c58f30108f718f92721af3b95e74349a",
    "cifar100": "eb9058c3a382ffc7106e4002c42a8d85",
}

#: md5 of each file of the official extracted folders (checked when reading a folder
#: that was already extracted, with ``verify=True``).
FILE_MD5: dict[str, dict[str, str]] = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
}

#: Official download addresses.
URLS: dict[str, str] = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}

_IMAGE_BYTES = 3 * 32 * 32


@dataclass(frozen=True)
class _Layout:
    """Where each piece of one dataset lives inside the official archive."""

    key: str  # "cifar10" / "cifar100"
    title: str
    archive: str
    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    num_classes: dict[str, int]  # label kind -> number of classes


_LAYOUTS: dict[str, _Layout] = {
    "cifar10": _Layout(
        key="cifar10",
        title="CIFAR-10",
        archive="cifar-10-python.tar.gz",
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test="test_batch",
        meta="batches.meta",
        num_classes={"fine": 10},
    ),
    "cifar100": _Layout(
        key="cifar100",
        title="CIFAR-100",
        archive="cifar-100-python.tar.gz",
        folder="cifar-100-python",
        train=("train",),
        test="test",
        meta="meta",
        num_classes={"fine": 100, "coarse": 20},
    ),
}


@dataclass(frozen=True, eq=False)  # eq=False: comparing arrays field-wise would raise, not answer
class CifarArrays:
    """The whole dataset in memory, exactly as published (no normalisation, no split)."""

    x_train: np.ndarray  # uint8, shape (N, 3, 32, 32), channel order R,G,B
    y_train: np.ndarray  # int64, shape (N,)
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]  # label names in label order


def load_cifar(
    name: Literal["cifar10", "cifar100"],
    root: str | os.PathLike[str],
    *,
    verify: bool = True,
    labels: Literal["fine", "coarse"] = "fine",
    download: bool = True,
) -> CifarArrays:
    """Load CIFAR-10 or CIFAR-100 from ``root`` (archive, its folder, or the extracted folder).

    ``labels="coarse"`` selects the 20 CIFAR-100 superclasses. With ``verify=True`` the
    bytes must be the official ones (md5); pass ``verify=False`` for a modified copy.
    Raises :class:`UserError` for anything the user can fix.
    """
    if name not in _LAYOUTS:
        raise UserError(f"unknown CIFAR dataset {name!r}: use 'cifar10' or 'cifar100'")
    layout = _LAYOUTS[name]
    if labels not in ("fine", "coarse"):
        raise UserError(f"config key 'data.labels': must be 'fine' or 'coarse', got {labels!r}")
    if labels not in layout.num_classes:
        raise UserError(f"config key 'data.labels': {labels!r} exists only for cifar100, not {name}")

    folder = _locate(name, layout, Path(os.path.expanduser(os.fspath(root))), verify=verify, download=download)
    return _read_folder(name, layout, folder, verify=verify, labels=labels)


# --------------------------------------------------------------------------- locating


def _locate(name: str, layout: _Layout, root: Path, *, verify: bool, download: bool) -> Path:
    """Return the extracted folder, extracting (or first downloading) the archive if needed."""
    if root.is_file():
        archive = root
        sibling = root.parent / layout.folder
        if sibling.is_dir():  # already extracted earlier: read that
            return sibling
        return _extract(name, layout, archive, verify=verify)

    if root.is_dir():
        if (root / layout.folder).is_dir():
            return root / layout.folder
        if root.name == layout.folder or (root / layout.meta).is_file():
            return root
        archive = root / layout.archive
        if archive.is_file():
            return _extract(name, layout, archive, verify=verify)
        where = root
    else:
        # A path that does not exist: the archive's intended path, or a folder to create.
        archive = root if root.name.endswith((".tar.gz", ".tgz", ".tar")) else root / layout.archive
        where = archive.parent

    url = URLS[name]
    advice = f"put {layout.archive} (from {url}) in {where}, or point data.root at it"
    if not download:
        raise UserError(f"{layout.title} not found under {root} (download disabled): {advice}")
    created = not where.exists()
    try:
        where.mkdir(parents=True, exist_ok=True)
        _download(url, archive)
    except NETWORK_ERRORS as exc:
        if created:  # leave no empty folder behind a failed download
            shutil.rmtree(where, ignore_errors=True)
        raise UserError(
            f"{layout.title} not found under {root} and could not be downloaded (network error: {one_line(exc)}): {advice}"
        ) from exc
    return _extract(name, layout, archive, verify=verify)


# --------------------------------------------------------------------------- extracting


def _extract(name: str, layout: _Layout, archive: Path, *, verify: bool) -> Path:
    """Extract ``archive`` into its own folder atomically; return the extracted folder.

    Everything goes into a temporary folder beside the archive first; only a complete,
    safe extraction is renamed into place. Any failure removes the temporary folder.
    """
    if verify:
        _check_md5(layout, archive, ARCHIVE_MD5[name], what="archive")
    parent = archive.parent
    target = parent / layout.folder
    try:
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{layout.folder}.extract-"))
    except OSError as exc:
        raise UserError(
            f"cannot extract {archive} into {parent} ({one_line(exc)}): extract it yourself "
            f"somewhere writable and point data.root at the {layout.folder} folder"
        ) from exc
    try:
        _safe_extract(archive, tmp)
        extracted = tmp / layout.folder
        missing = [f for f in _files(layout) if not (extracted / f).is_file()]
        if missing:
            raise UserError(
                f"archive {archive} is incomplete or not the {layout.title} archive "
                f"(no {layout.folder}/{missing[0]} inside): delete it and download it again from {URLS[name]}"
            )
        try:
            os.rename(extracted, target)
        except OSError:
            if not target.is_dir():  # someone else extracting at the same time is fine
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- reading


def _files(layout: _Layout) -> tuple[str, ...]:
    return (*layout.train, layout.test, layout.meta)


def _read_folder(name: str, layout: _Layout, folder: Path, *, verify: bool, labels: str) -> CifarArrays:
    """Check and read an extracted folder."""
    for fname in _files(layout):
        if not (folder / fname).is_file():
            raise UserError(
                f"{layout.title} folder {folder} is incomplete: {fname} is missing; "
                f"delete the folder and extract {layout.archive} (from {URLS[name]}) again"
            )
    if verify:
        table = FILE_MD5[name]
        for fname in _files(layout):
            _check_md5(layout, folder / fname, table[fname], what="file")

    classes = _read_meta(layout, folder / layout.meta, labels)
    key = b"labels" if name == "cifar10" else f"{labels}_labels".encode()
    train = [_read_batch(folder / f, key, len(classes)) for f in layout.train]
    x_test, y_test = _read_batch(folder / layout.test, key, len(classes))
    x_train = np.concatenate([x for x, _ in train]) if len(train) > 1 else train[0][0]
    y_train = np.concatenate([y for _, y in train]) if len(train) > 1 else train[0][1]
    return CifarArrays(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, classes=classes)


def _read_meta(layout: _Layout, path: Path, labels: str) -> list[str]:
    key = b"label_names" if layout.key == "cifar10" else f"{labels}_label_names".encode()
    meta = _unpickle(path)
    names = meta.get(key)
    want = layout.num_classes[labels]
    if not isinstance(names, (list, tuple)) or len(names) != want:
        raise UserError(f"{path} is not a {layout.title} meta file: expected {key!r} with {want} label names")
    out: list[str] = []
    for n in names:
        if isinstance(n, bytes):
            n = n.decode("utf-8", errors="replace")
        if not isinstance(n, str):
            raise UserError(f"{path} is not a {layout.title} meta file: label name {n!r} is not text")
        out.append(n)
    return out


def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One batch as (uint8 N×3×32×32, int64 N): each row is 1024 R, 1024 G, 1024 B, row-major."""
    batch = _unpickle(path)
    data = batch.get(b"data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _IMAGE_BYTES:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path} is not a CIFAR batch: b'data' must be an N×{_IMAGE_BYTES} uint8 array, got {desc}")
    raw = batch.get(label_key)
    if not isinstance(raw, (list, tuple, np.ndarray)):
        raise UserError(f"{path} is not a CIFAR batch: no {label_key!r} label list")
    try:
        y = np.asarray(raw)
        if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
            raise ValueError
        y = y.astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        raise UserError(f"{path} is not a CIFAR batch: {label_key!r} must be a list of integers") from None
    if len(y) != len(data):
        raise UserError(f"{path} is not a CIFAR batch: {len(data)} images but {len(y)} labels")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(
            f"{path} is not a CIFAR batch: labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}"
        )
    x = data.reshape(len(data), 3, 32, 32)
    if not x.flags.writeable or not x.flags.c_contiguous:
        x = np.array(x, order="C")
    return x, y


# Globals an official batch (numpy arrays in a dict) may name; anything else is refused,
# so a doctored file read with verify=False cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        canonical = module.replace("numpy._core", "numpy.core", 1) if module.startswith("numpy._core") else module
        if (canonical, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if canonical.startswith("numpy.core") and hasattr(np, "_core"):
            module = canonical.replace("numpy.core", "numpy._core", 1)  # no deprecation detour on numpy 2
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[bytes, Any]:
    """Load one pickled dict (Python 2 pickles: bytes keys), with str keys turned to bytes."""
    from selective_kd.reading import open_regular

    try:
        with open_regular(path, "CIFAR file", "re-extract or re-download it", 1 << 30) as fh:
            obj = _SafeUnpickler(fh, encoding="bytes").load()
    except (OSError, UserError):
        raise
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise UserError(f"{path} is not a readable CIFAR pickle ({one_line(exc)}): re-extract or re-download it") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR pickle: expected a dict, got {type(obj).__name__}")
    return {(k.encode() if isinstance(k, str) else k): v for k, v in obj.items()}


# --------------------------------------------------------------------------- verifying


def _check_md5(layout: _Layout, path: Path, expected: str, *, what: str) -> None:
    actual = digest(path)
    if actual != expected:
        fix = (
            f"delete it and download {layout.archive} again from {URLS[layout.key]}"
            if what == "archive"
            else f"delete {path.parent} and extract {layout.archive} again (or download it again from {URLS[layout.key]})"
        )
        raise UserError(
            f"{layout.title} {what} {path} has md5 {actual}, expected {expected}: {fix}; "
            "or set data.verify=false if it is a deliberately modified copy"
        )


# --------------------------------------------------------------------------- registry


def _from_config(name: Literal["cifar10", "cifar100"], cfg: Config) -> RawData:
    if cfg.data.root is None:
        raise UserError(
            f"dataset {name} needs data.root: the official python-version archive or its folder "
            f"(e.g. data.root=~/data); see README 'CIFAR'"
        )
    a = load_cifar(name, cfg.data.root, verify=cfg.data.verify, labels=cfg.data.labels, download=cfg.data.download)
    return RawData(a.x_train, a.y_train, a.classes, a.x_test, a.y_test)


@DATASETS.register("cifar10", needs=("root", "verify", "download"))
def cifar10(cfg: Config) -> RawData:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32×32, 10 classes."""
    return _from_config("cifar10", cfg)


@DATASETS.register("cifar100", needs=("root", "verify", "download", "labels"))
def cifar100(cfg: Config) -> RawData:
    """CIFAR-100: as CIFAR-10 with 100 classes (or 20 superclasses with data.labels=coarse)."""
    return _from_config("cifar100", cfg)
